"""polyx: debugging and accuracy toolkit for ONNX models on the polyx engine (CLI: `polyx --help`)."""
from .version import __version__
