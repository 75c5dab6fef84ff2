"""Polygraphy's JSON files, read and written without Polygraphy and without ever unpickling.

What `polygraphy run --save-inputs/--save-outputs` writes (Polygraphy's JSON encoder tags every custom object
with `"polygraphy_class": TYPE`; files of older releases carry `"__polygraphy_encoded_TYPE":
"polygraphy_serialized_json_type"` instead):

- an input list: `[{input name: ndarray}, ...]`, one dict per iteration (or, streamed to a directory, one
  `{input name: ndarray}` per file: `0000000000.json`, `0000000001.json`, ...; RunResults likewise hold one
  iteration per file);
- RunResults: `{"lst": [[runner name, [IterationResult, ...]], ...], "polygraphy_class": "RunResults"}` with
  `IterationResult = {"outputs": {name: LazyArray}, "runtime": seconds, "runner_name": ..., "polygraphy_class":
  "IterationResult"}` and `LazyArray = {"values": ndarray, "polygraphy_class": "LazyArray"}` ("LazyNumpyArray"
  in older releases);
- `ndarray = {"array": base64 of a .npy file, "polygraphy_class": "ndarray"}` (old files: latin-1 text, or an
  .npz holding one array).

A .npy payload is read with `allow_pickle=False`, so an object array (a pickled Python object) is refused with
a clear error; so are raw pickles and `torch.Tensor` payloads (Polygraphy stores those with `torch.save`, a
pickle).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import OutputFileError
from engine.output_files import write_output

from ..errors import PolyxError

Iterations = list[dict[str, np.ndarray]]
TYPE_MARKER = "polygraphy_class"
LEGACY_PREFIX = "__polygraphy_encoded_"
_PICKLE_OPCODE_PROTO = 0x80  # every pickle of protocol >= 2 starts with this byte
ARRAY_CLASSES = ("ndarray",)
LAZY_CLASSES = ("LazyArray", "LazyNumpyArray")


def polygraphy_class(value: Any) -> str | None:
    """The Polygraphy type a decoded JSON object was encoded from, or None for a plain object."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get(TYPE_MARKER), str):
        return value[TYPE_MARKER]
    legacy = next((key for key in value if isinstance(key, str) and key.startswith(LEGACY_PREFIX)), None)
    return legacy[len(LEGACY_PREFIX):] if legacy else None


def is_polygraphy_document(doc: Any) -> bool:
    """RunResults, an input list whose iterations hold Polygraphy-encoded arrays, or one such iteration (the
    per-iteration files of a directory Polygraphy streams to)."""
    if polygraphy_class(doc) is not None or _is_feed_dict(doc):
        return True
    return isinstance(doc, list) and any(_is_feed_dict(it) for it in doc)


def _is_feed_dict(value: Any) -> bool:
    return isinstance(value, dict) and any(polygraphy_class(v) for v in value.values())


def iteration_files(path: str | os.PathLike) -> list[Path]:
    """A file, or the `*.json` files of a directory in lexical (= iteration) order, as Polygraphy streams them
    (`--save-inputs DIR` writes 0000000000.json, 0000000001.json, ...)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.json"))
    if not files:
        raise PolyxError(f"{path}: a directory without any per-iteration .json file")
    return files


def runner_names(doc: Any) -> list[str]:
    """The runners of a RunResults document (empty for an input list)."""
    if polygraphy_class(doc) != "RunResults":
        return []
    return [str(entry[0]) for entry in doc.get("lst", []) if isinstance(entry, list) and entry]


def load_run_results(doc: Any, path: Path) -> list[tuple[str, Iterations]]:
    """Every runner of a RunResults document with its iterations, in file order."""
    return [(name, load_iterations(doc, path, runner=name)) for name in dict.fromkeys(runner_names(doc))]


def load_iterations(doc: Any, path: Path, runner: str | None = None) -> Iterations:
    """An input list or one runner's iterations of a RunResults document; PolyxError names the file and place."""
    kind = polygraphy_class(doc)
    if kind == "RunResults":
        name, iterations = _select_runner(doc, path, runner)
        return [_iteration_outputs(result, path, f"runner '{name}', iteration {index}")
                for index, result in enumerate(iterations)]
    if runner is not None:
        raise PolyxError(f"{path}: an input list (not Polygraphy RunResults), so there is no runner '{runner}' "
                         "to pick")
    if kind is not None:
        raise PolyxError(f"{path}: holds a Polygraphy {kind}; expected RunResults or a list of input dicts")
    if _is_feed_dict(doc):
        return [_tensors(doc, path, "iteration 0")]
    if not isinstance(doc, list):
        raise PolyxError(f"{path}: expected a list of iterations ({{tensor name: array}} objects)")
    return [_tensors(iteration, path, f"iteration {index}") for index, iteration in enumerate(doc)]


def decode_array(value: Any, where: str) -> np.ndarray:
    """One Polygraphy-encoded array (ndarray or LazyArray wrapping one) -> a NumPy array, never unpickling."""
    kind = polygraphy_class(value)
    if kind in LAZY_CLASSES:
        return decode_array(value.get("values"), where)
    if kind == "Tensor":
        raise PolyxError(f"{where}: is a torch.Tensor that Polygraphy stored with torch.save, a pickle; polyx never "
                         "unpickles. Save NumPy arrays instead (convert the tensors with .numpy() before saving)")
    if kind not in ARRAY_CLASSES:
        raise PolyxError(f"{where}: expected a Polygraphy ndarray, got {kind or type(value).__name__}")
    text = value.get("array")
    if not isinstance(text, str):
        raise PolyxError(f"{where}: ndarray without an 'array' string")
    try:
        payload = base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        payload = text.encode("latin-1")  # files of old Polygraphy releases
    return _load_npy(payload, where)


def encode_array(array: np.ndarray) -> dict[str, str]:
    """A NumPy array as Polygraphy's ndarray object (base64 of a .npy written with allow_pickle=False)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode(), TYPE_MARKER: "ndarray"}


def save_input_list(path: str | os.PathLike, iterations: Iterations) -> None:
    """What `polygraphy run --save-inputs` writes: a JSON list of {input name: ndarray}."""
    _write(path, [{name: encode_array(a) for name, a in it.items()} for it in iterations])


def save_run_results(path: str | os.PathLike, runs: list[tuple[str, Iterations, list[float]]]) -> None:
    """What `polygraphy run --save-outputs` writes: RunResults of (runner name, iterations, runtimes in seconds)."""
    lst = []
    for runner, iterations, runtimes in runs:
        results = [{"outputs": {name: {"values": encode_array(a), TYPE_MARKER: "LazyArray"} for name, a in it.items()},
                    "runtime": runtimes[index] if index < len(runtimes) else None,
                    "runner_name": runner, TYPE_MARKER: "IterationResult"} for index, it in enumerate(iterations)]
        lst.append([runner, results])
    _write(path, {"lst": lst, TYPE_MARKER: "RunResults"})


def _write(path: str | os.PathLike, doc: Any) -> None:
    """Atomically and never over an input (the one writer, engine.output_files; files.py imports this module)."""
    try:
        write_output(path, json.dumps(doc, indent=4))
    except OutputFileError as exc:
        raise PolyxError(str(exc)) from None


def _select_runner(doc: dict, path: Path, runner: str | None) -> tuple[str, list]:
    entries = [entry for entry in doc.get("lst", []) if isinstance(entry, list) and len(entry) == 2]
    if not entries:
        raise PolyxError(f"{path}: Polygraphy RunResults without any runner")
    names = [str(name) for name, _ in entries]
    if runner is None:
        if len(entries) > 1:
            raise PolyxError(f"{path}: holds the results of {len(entries)} runners ({', '.join(names)}); pick one "
                             "by name (run: --load-outputs-runner NAME; inspect data: --runner NAME)")
        matches = entries
    else:
        matches = [entry for entry in entries if str(entry[0]) == runner] or \
                  [entry for entry in entries if str(entry[0]).startswith(runner)]
        if len(matches) != 1:
            problem = "no runner" if not matches else f"{len(matches)} runners"
            raise PolyxError(f"{path}: {problem} named '{runner}' or starting with it (runners: {', '.join(names)})")
    name, iterations = matches[0]
    if not isinstance(iterations, list):
        raise PolyxError(f"{path}: runner '{name}': expected a list of IterationResults")
    return str(name), iterations


def _iteration_outputs(result: Any, path: Path, where: str) -> dict[str, np.ndarray]:
    if polygraphy_class(result) != "IterationResult" or not isinstance(result.get("outputs"), dict):
        raise PolyxError(f"{path}: {where}: expected a Polygraphy IterationResult with 'outputs'")
    return _tensors(result["outputs"], path, where)


def _tensors(iteration: Any, path: Path, where: str) -> dict[str, np.ndarray]:
    if not isinstance(iteration, dict):
        raise PolyxError(f"{path}: {where}: expected {{tensor name: array}}, got {type(iteration).__name__}")
    return {name: decode_array(value, f"{path}: {where}: tensor '{name}'") for name, value in iteration.items()
            if name != TYPE_MARKER}


def _load_npy(payload: bytes, where: str) -> np.ndarray:
    if payload[:1] == bytes([_PICKLE_OPCODE_PROTO]):
        raise PolyxError(f"{where}: holds a pickled Python object, which polyx never unpickles")
    try:
        loaded = np.load(io.BytesIO(payload), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):  # old releases saved one array as an .npz
            with loaded:
                if len(loaded.files) != 1:
                    raise PolyxError(f"{where}: an .npz payload with {len(loaded.files)} arrays, expected one")
                loaded = loaded[loaded.files[0]]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise PolyxError(f"{where}: is an object array (pickled Python objects), which polyx never "
                             "unpickles") from None
        raise PolyxError(f"{where}: not a readable .npy array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise PolyxError(f"{where}: not a readable .npy array ({exc})") from None
    return _checked(loaded, where)


def _checked(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.hasobject:
        raise PolyxError(f"{where}: is an object array (pickled Python objects), which polyx never unpickles")
    return array
