import base64
import io
import json

import numpy as np
import pytest

from polyx.data.files import load_tensors, save_tensors
from polyx.errors import PolyxError


def _iterations():
    rng = np.random.default_rng(3)
    return [{"x": rng.standard_normal((2, 3)).astype(np.float32), "ids:0/weird": np.arange(4, dtype=np.int64)},
            {"x": rng.standard_normal((1, 3)).astype(np.float16), "mask": np.array([True, False])}]


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_keeps_names_dtypes_values(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    saved = _iterations()
    save_tensors(path, saved)
    loaded = load_tensors(path)
    assert len(loaded) == 2
    for a, b in zip(saved, loaded):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name].dtype == a[name].dtype
            np.testing.assert_array_equal(b[name], a[name])


def test_plain_npz_is_one_iteration(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, input=np.ones((2, 2), np.float32))
    (it,) = load_tensors(path)
    np.testing.assert_array_equal(it["input"], np.ones((2, 2)))


def test_polygraphy_style_json(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    doc = [{"input": {"polygraphy_class": "ndarray", "array": base64.b64encode(buf.getvalue()).decode()}}]
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(doc))
    (it,) = load_tensors(path)
    np.testing.assert_array_equal(it["input"], array)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PolyxError, match="evil.npz"):
        load_tensors(path)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(PolyxError, match="no such file"):
        load_tensors(tmp_path / "missing.npz")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PolyxError, match="bad.json: not valid JSON"):
        load_tensors(bad)
    with pytest.raises(PolyxError, match="does not exist"):
        save_tensors(tmp_path / "no_dir" / "x.npz", [{"x": np.zeros(1)}])
