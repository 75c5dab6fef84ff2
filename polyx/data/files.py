"""Saved tensors: a list of iterations, each a {tensor name: array} dict, as `.npz` or `.json`.

`.npz`: arrays `t0`, `t1`, ... plus `__index__`, a JSON string mapping each array key to its iteration and
tensor name (so any tensor name is allowed). Loaded with allow_pickle=False.
`.json`: `{"format": "polyx-tensors", "version": 1, "iterations": [{name: {"dtype", "shape", "data"}}]}` with
`data` a flat list. Polygraphy's JSON (input lists and RunResults, see `polygraphy_format.py`) loads too; its
.npy payloads are read with allow_pickle=False.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from engine.errors import OutputFileError
from engine.output_files import check_output, note_input, write_output

from ..errors import PolyxError
from .polygraphy_format import is_polygraphy_document, load_iterations

Iterations = list[dict[str, np.ndarray]]
FORMAT = "polyx-tensors"
VERSION = 1


# Arrays a tensor file may hold (numbers and booleans; never objects, strings or structured records).
_NUMERIC_KINDS = "biuf"
# More iterations than any real run has: an __index__ claiming more is damaged or crafted.
MAX_ITERATIONS = 1_000_000


def check_writable(path: str | os.PathLike) -> Path:
    """An output path must sit in an existing directory (we never create directories silently) and must not be
    a file the command reads (engine.output_files)."""
    try:
        return check_output(path)
    except OutputFileError as exc:
        raise PolyxError(str(exc)) from None


def check_outputs_apart(path: str | os.PathLike, inputs: list) -> Path:
    """Before any work: `path` can be written and is none of `inputs` (paths or None)."""
    try:
        return check_output(path, inputs)
    except OutputFileError as exc:
        raise PolyxError(str(exc)) from None


def save_tensors(path: str | os.PathLike, iterations: Iterations) -> None:
    path = check_writable(path)
    if isinstance(iterations, dict):
        iterations = [iterations]
    if path.suffix == ".json":
        doc = {"format": FORMAT, "version": VERSION, "iterations": [
            {name: {"dtype": np.asarray(a).dtype.str, "shape": list(np.shape(a)),
                    "data": np.asarray(a).ravel().tolist()} for name, a in it.items()} for it in iterations]}
        write_file(path, json.dumps(doc).encode())
        return
    arrays, index = {}, {}
    for i, it in enumerate(iterations):
        for name, array in it.items():
            key = f"t{len(arrays)}"
            arrays[key] = np.asarray(array)
            index[key] = [i, name]
    arrays["__index__"] = np.frombuffer(json.dumps({"format": FORMAT, "version": VERSION, "iterations":
                                                    len(iterations), "index": index}).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_file(path, buffer.getvalue())


def write_file(path: str | os.PathLike, data: bytes | str) -> None:
    """Every polyx output goes through here: written to a temporary file beside `path` and renamed into place,
    never over a file the command reads (a PolyxError naming the path, before anything is written)."""
    try:
        write_output(path, data)
    except OutputFileError as exc:
        raise PolyxError(str(exc)) from None


def load_tensors(path: str | os.PathLike, runner: str | None = None) -> Iterations:
    """Iterations of a tensor file (`runner` picks one runner of a Polygraphy RunResults file); anything
    unreadable or inconsistent is one PolyxError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PolyxError(f"{path}: no such file")
    note_input(path)
    if path.suffix == ".json":
        return _load_json(path, runner)
    if runner is not None:
        raise PolyxError(f"{path}: a runner ('{runner}') can only be picked from Polygraphy's JSON RunResults")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "__index__" not in data.files:
                # A plain .npz from np.savez: one iteration, array names as tensor names.
                return [{name: _checked(data[name], path, name) for name in data.files}]
            return _indexed(data, path)
    except PolyxError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many types for a damaged file
        raise PolyxError(f"{path}: not a readable tensor file (.npz or .json): {_describe(exc)}") from None


def _indexed(data, path: Path) -> Iterations:
    """A polyx .npz: `__index__` maps every array key to [iteration, tensor name]."""
    try:
        meta = json.loads(data["__index__"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolyxError(f"{path}: __index__ is not valid JSON ({exc})") from None
    count, index = (meta.get("iterations"), meta.get("index")) if isinstance(meta, dict) else (None, None)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_ITERATIONS or \
            not isinstance(index, dict):
        raise PolyxError(f"{path}: __index__ must be {{\"iterations\": 1..{MAX_ITERATIONS}, \"index\": {{key: "
                         f"[iteration, name]}}}}, got {str(meta)[:120]}")
    iterations: Iterations = [{} for _ in range(count)]
    for key, entry in index.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int) and
                0 <= entry[0] < count and isinstance(entry[1], str)):
            raise PolyxError(f"{path}: __index__ entry {key!r} must be [iteration 0..{count - 1}, tensor name], "
                             f"got {entry!r}")
        if key not in data.files or key == "__index__":
            raise PolyxError(f"{path}: __index__ names array {key!r}, which the file does not hold")
        iterations[entry[0]][entry[1]] = _checked(data[key], path, entry[1])
    return iterations


def _checked(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise PolyxError(f"{path}: tensor '{name}' has dtype {array.dtype}; only numbers and booleans are allowed")
    return array


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _load_json(path: Path, runner: str | None) -> Iterations:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolyxError(f"{path}: not valid JSON: {exc}") from None
    if runner is not None or is_polygraphy_document(doc):
        return load_iterations(doc, path, runner)
    raw = doc.get("iterations") if isinstance(doc, dict) else doc
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(it, dict) for it in raw):
        raise PolyxError(f"{path}: expected a list of iterations ({{tensor name: array}} objects)")
    try:
        return [{name: _checked(_decode(entry), path, name) for name, entry in it.items()} for it in raw]
    except PolyxError:
        raise
    except Exception as exc:  # noqa: BLE001 - base64, numpy and the entry's fields raise many types
        raise PolyxError(f"{path}: malformed tensor entry: {_describe(exc)}") from None


def _decode(entry) -> np.ndarray:
    if isinstance(entry, dict):
        return np.asarray(entry["data"], dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])
    return np.asarray(entry)
