"""Saved tensors: a list of iterations, each a {tensor name: array} dict, as `.npz` or `.json`.

`.npz`: arrays `t0`, `t1`, ... plus `__index__`, a JSON string mapping each array key to its iteration and
tensor name (so any tensor name is allowed). Loaded with allow_pickle=False.
`.json`: `{"format": "polyx-tensors", "version": 1, "iterations": [{name: {"dtype", "shape", "data"}}]}` with
`data` a flat list. Polygraphy's JSON (input lists and RunResults, see `polygraphy_format.py`) loads too; its
.npy payloads are read with allow_pickle=False.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import PolyxError
from .polygraphy_format import is_polygraphy_document, load_iterations

Iterations = list[dict[str, np.ndarray]]
FORMAT = "polyx-tensors"
VERSION = 1


def check_writable(path: str | os.PathLike) -> Path:
    """An output path must sit in an existing directory; we never create directories silently."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PolyxError(f"{path}: directory '{parent}' does not exist")
    if path.is_dir():
        raise PolyxError(f"{path}: is a directory, expected a file path")
    return path


def save_tensors(path: str | os.PathLike, iterations: Iterations) -> None:
    path = check_writable(path)
    if isinstance(iterations, dict):
        iterations = [iterations]
    if path.suffix == ".json":
        doc = {"format": FORMAT, "version": VERSION, "iterations": [
            {name: {"dtype": np.asarray(a).dtype.str, "shape": list(np.shape(a)),
                    "data": np.asarray(a).ravel().tolist()} for name, a in it.items()} for it in iterations]}
        path.write_text(json.dumps(doc))
        return
    arrays, index = {}, {}
    for i, it in enumerate(iterations):
        for name, array in it.items():
            key = f"t{len(arrays)}"
            arrays[key] = np.asarray(array)
            index[key] = [i, name]
    arrays["__index__"] = np.frombuffer(json.dumps({"format": FORMAT, "version": VERSION, "iterations":
                                                    len(iterations), "index": index}).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_tensors(path: str | os.PathLike, runner: str | None = None) -> Iterations:
    """Iterations of a tensor file; `runner` picks one runner of a Polygraphy RunResults file."""
    path = Path(path)
    if not path.is_file():
        raise PolyxError(f"{path}: no such file")
    if path.suffix == ".json":
        return _load_json(path, runner)
    if runner is not None:
        raise PolyxError(f"{path}: a runner ('{runner}') can only be picked from Polygraphy's JSON RunResults")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "__index__" not in data.files:
                # A plain .npz from np.savez: one iteration, array names as tensor names.
                return [{name: data[name] for name in data.files}]
            meta = json.loads(data["__index__"].tobytes().decode())
            iterations: Iterations = [{} for _ in range(int(meta["iterations"]))]
            for key, (i, name) in meta["index"].items():
                iterations[i][name] = data[key]
            return iterations
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise PolyxError(f"{path}: not a readable tensor file (.npz or .json): {exc}") from None


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
    if not isinstance(raw, list):
        raise PolyxError(f"{path}: expected a list of iterations ({{tensor name: array}} objects)")
    try:
        return [{name: _decode(entry) for name, entry in it.items()} for it in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise PolyxError(f"{path}: malformed tensor entry: {exc}") from None


def _decode(entry) -> np.ndarray:
    if isinstance(entry, dict):
        return np.asarray(entry["data"], dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])
    return np.asarray(entry)
