"""Reading an ONNX file, for every package (engine parser, surgeon, polyx commands): one place decides what
counts as unreadable, and the ParseError it raises names the file and what was wrong in one line."""
from __future__ import annotations

import os

import onnx

from .errors import ParseError
from .output_files import note_input


def load_onnx_file(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """The model at `path`, with its external data (next to it) unless `load_external_data` is False."""
    if os.path.isdir(path):
        raise ParseError(f"{path}: is a directory, expected an ONNX model file")
    if not os.path.isfile(path):
        raise ParseError(f"{path}: no such file")
    note_input(path)
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for a damaged file
        raise ParseError(_unreadable(path, exc)) from None
    _require_graph(model, path)
    if load_external_data:
        read_external_data(model, path)
    return model


def external_data_paths(model: onnx.ModelProto, model_path: str | os.PathLike) -> list[str]:
    """Resolved paths of the external-data files `model` (stored at `model_path`) refers to. A location that
    leaves the model's folder (an absolute path, '..', a link out) is a ParseError naming the tensor."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(model_path)))
    paths = []
    for tensor in onnx.external_data_helper._get_all_tensors(model):  # initializers and Constant attributes
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if not location:
            raise ParseError(f"{model_path}: tensor '{tensor.name}' is stored externally but names no location")
        resolved = os.path.realpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, resolved]) != folder:
            raise ParseError(f"{model_path}: tensor '{tensor.name}': external data location {location!r} lies "
                             "outside the model's folder")
        paths.append(resolved)
    return paths


def model_files(path: str | os.PathLike) -> list[str]:
    """The files a command reads for the model at `path`: the model and its external data (just the model when
    it cannot be read; loading it reports that)."""
    try:
        return [os.path.realpath(path), *external_data_paths(onnx.load(os.fspath(path), load_external_data=False),
                                                               path)]
    except Exception:  # noqa: BLE001 - unreadable or not ONNX (a plan): only the file itself is known
        return [os.path.realpath(path)]


def read_external_data(model: onnx.ModelProto, model_path: str | os.PathLike) -> None:
    """Load the external data of `model` (stored at `model_path`) in place; every failure is a ParseError."""
    for data_path in external_data_paths(model, model_path):
        note_input(data_path)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, os.path.dirname(os.path.abspath(model_path)))
    except Exception as exc:  # noqa: BLE001 - a missing or short data file raises OSError or ValidationError
        raise ParseError(f"{model_path}: cannot load the model's external data ({describe_exception(exc)})") from None


def load_onnx_bytes(data: bytes, source: str = "<bytes>") -> onnx.ModelProto:
    """The model serialized in `data` (external data is the caller's business); `source` names it in errors."""
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for damaged bytes
        raise ParseError(_unreadable(source, exc)) from None
    _require_graph(model, source)
    return model


def _require_graph(model: onnx.ModelProto, source: str | os.PathLike) -> None:
    # An empty file (or any bytes protobuf happens to accept) decodes to a ModelProto without a graph.
    if not model.HasField("graph"):
        raise ParseError(f"{source}: not a readable ONNX model (no graph in the file)")


def _unreadable(source: str | os.PathLike, exc: Exception) -> str:
    return f"{source}: not a readable ONNX model ({describe_exception(exc)})"


def describe_exception(exc: BaseException) -> str:
    """'Type: first line of the message': the whole message may span many lines, the CLI prints one."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
