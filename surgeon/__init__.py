"""surgeon: ONNX graph surgery on onnx-graphsurgeon (sanitize, extract, insert, lint) and engine capability
partitioning. Depends on onnx and onnx-graphsurgeon; from `engine` it takes the one ONNX file reader
(engine/onnx_file.py) and asks which nodes the engine can take."""
from .errors import SurgeonError
from .extract import extract
from .insert import insert
from .lint import Finding, lint
from .model_io import load_model, save_model
from .partition import CapabilityReport, NodeVerdict, Subgraph, analyze_capability, write_capability
from .sanitize import SanitizeOptions, SanitizeReport, sanitize
from .tensor_specs import TensorSpec

__all__ = [name for name in dir() if not name.startswith("_")]
