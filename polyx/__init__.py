"""polyx: debugging and accuracy toolkit for ONNX models on the polyx engine (CLI: `polyx --help`)."""
__version__ = "0.1.0"
