"""Reading an ONNX file, for every package (engine parser, surgeon, polyx commands): one place decides what
counts as unreadable, and the ParseError it raises names the file and what was wrong in one line."""
from __future__ import annotations

import os

import onnx

from .errors import ParseError


def load_onnx_file(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """The model at `path`, with its external data (next to it) unless `load_external_data` is False."""
    if os.path.isdir(path):
        raise ParseError(f"{path}: is a directory, expected an ONNX model file")
    if not os.path.isfile(path):
        raise ParseError(f"{path}: no such file")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for a damaged file
        raise ParseError(_unreadable(path, exc)) from None
    _require_graph(model, path)
    if load_external_data:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except Exception as exc:  # noqa: BLE001 - a missing or short data file raises OSError or ValidationError
            raise ParseError(f"{path}: cannot load the model's external data ({_describe(exc)})") from None
    return model


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
    return f"{source}: not a readable ONNX model ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    """'Type: first line of the message': the whole message may span many lines, the CLI prints one."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
