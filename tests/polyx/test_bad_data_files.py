"""Damaged or crafted data files and value ranges: each is one PolyxError naming the file and the problem (never a
raw exception, never unpickled)."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from polyx.cli.build_options import parse_value_ranges
from polyx.data.files import load_tensors, save_tensors
from polyx.data.loader import DataLoader
from polyx.errors import PolyxError


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "data.npz"
    save_tensors(path, [{"x": np.arange(64, dtype=np.float32)}, {"x": np.ones(64, np.float32)}])
    return path


def npz_with(path: Path, **arrays) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def index_of(doc) -> np.ndarray:
    return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)


def test_round_trip_still_works(tmp_path: Path) -> None:
    loaded = load_tensors(saved(tmp_path))
    assert [sorted(it) for it in loaded] == [["x"], ["x"]]
    np.testing.assert_array_equal(loaded[0]["x"], np.arange(64, dtype=np.float32))


def test_truncated_npz(tmp_path: Path) -> None:
    path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(PolyxError, match=rf"^{path}: not a readable tensor file \(\.npz or \.json\): BadZipFile: "):
        load_tensors(path)


def test_crc_error(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("t0.npy")
    payload = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 10  # inside t0's values
    data[payload] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PolyxError, match=rf"^{path}: not a readable tensor file .*: BadZipFile: Bad CRC-32"):
        load_tensors(path)


@pytest.mark.parametrize("index, problem", [
    ([1, 2], r"__index__ must be \{\"iterations\": 1\.\.1000000"),
    ({"iterations": 10**9, "index": {}}, r"__index__ must be \{\"iterations\": 1\.\.1000000"),
    ({"iterations": 1, "index": {"t0": [5, "x"]}}, r"__index__ entry 't0' must be \[iteration 0\.\.0, tensor name\]"),
    ({"iterations": 1, "index": {"t9": [0, "x"]}}, r"__index__ names array 't9', which the file does not hold"),
    ({"iterations": 1, "index": {"t0": "x"}}, r"__index__ entry 't0' must be \[iteration"),
])
def test_bad_index(tmp_path: Path, index, problem: str) -> None:
    path = npz_with(tmp_path / "bad.npz", t0=np.zeros(3, np.float32), __index__=index_of(index))
    with pytest.raises(PolyxError, match=rf"^{path}: {problem}"):
        load_tensors(path)


def test_index_that_is_not_json(tmp_path: Path) -> None:
    path = npz_with(tmp_path / "bad.npz", t0=np.zeros(3), __index__=np.frombuffer(b"\xff{", dtype=np.uint8))
    with pytest.raises(PolyxError, match=rf"^{path}: __index__ is not valid JSON"):
        load_tensors(path)


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    path = npz_with(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PolyxError, match=rf"^{path}: not a readable tensor file .*ValueError: Object arrays cannot"):
        load_tensors(path)


def test_string_arrays_are_not_tensors(tmp_path: Path) -> None:
    path = npz_with(tmp_path / "strings.npz", x=np.array(["a", "b"]))
    with pytest.raises(PolyxError, match=rf"^{path}: tensor 'x' has dtype <U1; only numbers and booleans"):
        load_tensors(path)


@pytest.mark.parametrize("doc, problem", [
    (["a", "b"], r"expected a list of iterations"),
    ([{"x": "abc"}], r"tensor 'x' has dtype <U3"),
    ([{"x": {"dtype": "float32", "shape": [2], "data": [1, 2, 3]}}], r"malformed tensor entry: ValueError: "),
    ([{"x": {"dtype": "nonsense", "shape": [1], "data": [1]}}], r"malformed tensor entry: TypeError: "),
    ([{"x": {"polygraphy_class": "ndarray", "array": "!!!"}}], r"iteration 0: tensor 'x': is an object array"),
])
def test_bad_json_inputs(tmp_path: Path, doc, problem: str) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PolyxError, match=rf"^{path}: {problem}"):
        load_tensors(path)


@pytest.mark.parametrize("text", ["[-inf,inf]", "[nan,1]", "x:[0,inf]"])
def test_non_finite_value_ranges(text: str) -> None:
    with pytest.raises(PolyxError, match=rf"^--val-range '{re.escape(text)}': bounds must be finite numbers"):
        parse_value_ranges([text])
    with pytest.raises(PolyxError, match="bounds must be finite numbers"):
        DataLoader({"x": ((2,), np.float32)}, val_ranges={"x": (float("nan"), 1.0)})


def test_generating_an_input_past_the_memory_limit_is_refused(monkeypatch) -> None:
    loader = DataLoader({"x": ((2**40, 4), np.float32)})
    with pytest.raises(PolyxError, match=r"^input 'x': generating shape \[1099511627776, 4\] of float32 needs "
                                         r"52,776,558,133,248 bytes, more than the [\d,]+ available \(pass smaller "
                                         r"shapes, or set POLYX_MEMORY_LIMIT\)$"):
        next(iter(loader))
    monkeypatch.setenv("POLYX_MEMORY_LIMIT", "100")
    with pytest.raises(PolyxError, match=r"needs 120 bytes, more than the 100 available"):
        next(iter(DataLoader({"x": ((10,), np.float32)})))
