"""Loading and saving ONNX models safely: checked on load, never half-written, never over the input file.

Models above the 2 GiB protobuf limit keep their weights in an external data file next to the model.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import external_data_helper

from engine.errors import OutputFileError, ParseError
from engine.onnx_file import load_onnx_file, model_files
from engine.output_files import check_output, note_output, write_output

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

    The folder must exist; neither `path` nor its data file may be the input model or one of the input's
    external-data files (or any file the command read). Weights go to `<path>.data` when `external_data` is
    True, or when it is None and the model is above the protobuf limit. Everything is written under temporary
    names beside the target and renamed into place at the end, so a failure leaves the old files as they were.
    """
    path = Path(path)
    inputs = model_files(input_path) if input_path is not None else []
    check_output_path(path, input_path)
    if external_data is None:
        external_data = (input_path is not None and _file_uses_external_data(Path(input_path))) \
            or uses_external_data(model) or model.ByteSize() > PROTOBUF_LIMIT_BYTES
    try:
        if not external_data:
            write_output(path, model.SerializeToString(), inputs, "output model")
            return None
        data_path = path.with_name(path.name + ".data")
        check_output(data_path, inputs, "output model's external data")
        # onnx writes the data file next to the model under the name it records: write both in a fresh folder
        # beside the target, then move them into place (data first, so the model never points at missing data).
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
            staged = Path(folder) / path.name
            onnx.save_model(model, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_path.name, size_threshold=1024)
            staged_data = staged.with_name(data_path.name)
            if not staged_data.exists():  # no tensor above the threshold: an empty data file keeps the pair
                staged_data.write_bytes(b"")
            os.replace(staged_data, data_path)
            os.replace(staged, path)
            note_output(data_path)
            note_output(path)
        return data_path
    except OutputFileError as exc:
        raise SurgeonError(str(exc)) from None


def check_output_path(path: Path, input_path: Path | None = None) -> None:
    """Fail before any work when `path` cannot be written: missing folder, a directory, not writable, or one of
    the input model's files (the model or its external data)."""
    path = Path(path)
    if path.is_dir():
        raise SurgeonError(f"{path}: is a directory, expected an output .onnx file path")
    if not path.parent.is_dir():
        raise SurgeonError(f"{path}: output folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SurgeonError(f"{path}: not writable")
    if input_path is not None and path.resolve() == Path(input_path).resolve():
        raise SurgeonError(f"{path}: refusing to overwrite the input model; choose another output path")
    inputs = model_files(input_path) if input_path is not None else []
    try:
        check_output(path, inputs, "output model")
        check_output(path.with_name(path.name + ".data"), inputs, "output model's external data")
    except OutputFileError as exc:
        raise SurgeonError(str(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
