"""Loading and saving ONNX models safely: checked on load, never half-written, never over the input file.

Models above the 2 GiB protobuf limit keep their weights in an external data file next to the model.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import external_data_helper

from engine.errors import ParseError
from engine.onnx_file import load_onnx_file

from .errors import SurgeonError
from .graph_order import find_cycle, is_topologically_sorted, toposorted_nodes

# Protobuf refuses to serialize a message of 2 GiB or more; leave room for the graph itself.
PROTOBUF_LIMIT_BYTES = 2**31 - 64 * 2**20


def load_model(path: Path, check: bool = True, load_external_data: bool = True) -> onnx.ModelProto:
    """Read `path` (and its external data unless told not to); with `check`, reject cyclic graphs and models
    onnx.checker rejects. The engine's reader decides what is unreadable; surgeon reports it as a SurgeonError."""
    path = Path(path)
    try:
        model = load_onnx_file(path, load_external_data=load_external_data)
    except ParseError as exc:
        raise SurgeonError(str(exc)) from exc
    if check:
        check_model(model, path)
    return model


def check_model(model: onnx.ModelProto, source: Path | str) -> None:
    """onnx.checker plus a cycle check; a merely unsorted (acyclic) graph passes, since surgeon sorts it."""
    cycle = find_cycle(model.graph)
    if cycle:
        raise SurgeonError(f"{source}: the graph has a cycle through node(s) {', '.join(repr(n) for n in cycle)}")
    candidate = model
    if not is_topologically_sorted(model.graph):
        candidate = onnx.ModelProto()
        candidate.CopyFrom(model)
        sorted_nodes = toposorted_nodes(model.graph)
        del candidate.graph.node[:]
        candidate.graph.node.extend(sorted_nodes)
    try:
        if uses_external_data(candidate) or candidate.ByteSize() > PROTOBUF_LIMIT_BYTES:
            onnx.checker.check_model(str(source))  # only a path lets the checker follow external data
        else:
            onnx.checker.check_model(candidate)
    except onnx.checker.ValidationError as exc:
        raise SurgeonError(f"{source}: fails onnx.checker: {_first_line(exc)}") from exc


def uses_external_data(model: onnx.ModelProto) -> bool:
    return any(external_data_helper.uses_external_data(t) for t in model.graph.initializer)


def _file_uses_external_data(path: Path) -> bool:
    try:
        return uses_external_data(load_onnx_file(path, load_external_data=False))
    except ParseError:  # an unreadable input was reported when it was loaded
        return False


def save_model(model: onnx.ModelProto, path: Path, *, input_path: Path | None = None,
               external_data: bool | None = None) -> Path | None:
    """Write `model` to `path` (overwriting it: it is the explicit target) and return the external data file, if any.

    The folder must exist; `path` may not be the input model. Weights go to `<path>.data` when `external_data`
    is True, or when it is None and the model is above the protobuf limit.
    """
    path = Path(path)
    check_output_path(path, input_path)
    if external_data is None:
        external_data = (input_path is not None and _file_uses_external_data(Path(input_path))) \
            or uses_external_data(model) or model.ByteSize() > PROTOBUF_LIMIT_BYTES
    if external_data:
        data_path = path.with_name(path.name + ".data")
        if data_path.exists():
            data_path.unlink()  # onnx appends to an existing data file
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_path.name, size_threshold=1024)
        return data_path
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the output follows the umask like any other file
        with os.fdopen(fd, "wb") as handle:
            handle.write(model.SerializeToString())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_path(path: Path, input_path: Path | None = None) -> None:
    """Fail before any work when `path` cannot be written: missing folder, a directory, or the input model itself."""
    path = Path(path)
    if path.is_dir():
        raise SurgeonError(f"{path}: is a directory, expected an output .onnx file path")
    if not path.parent.is_dir():
        raise SurgeonError(f"{path}: output folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SurgeonError(f"{path}: not writable")
    if input_path is not None and path.resolve() == Path(input_path).resolve():
        raise SurgeonError(f"{path}: refusing to overwrite the input model; choose another output path")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
