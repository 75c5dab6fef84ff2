import numpy as np
import pytest

from polyx.data.loader import DataLoader
from polyx.errors import PolyxError

META = {"x": ((-1, 3), np.float32), "ids": ((2, -1), np.int64), "flag": ((4,), np.bool_)}


def test_seeded_and_respects_dtypes_ranges_shapes():
    loader = DataLoader(META, seed=7, val_ranges={"x": (-2.0, -1.0), "ids": (5, 9)}, iterations=2,
                        shapes={"x": (4, 3), "ids": (2, 6)})
    first, second = list(loader), list(DataLoader(META, seed=7, val_ranges={"x": (-2.0, -1.0), "ids": (5, 9)},
                                                  iterations=2, shapes={"x": (4, 3), "ids": (2, 6)}))
    for a, b in zip(first, second):
        for name in META:
            np.testing.assert_array_equal(a[name], b[name])
    feeds = first[0]
    assert feeds["x"].shape == (4, 3) and feeds["x"].dtype == np.float32
    assert feeds["x"].min() >= -2.0 and feeds["x"].max() < -1.0
    assert feeds["ids"].shape == (2, 6) and feeds["ids"].dtype == np.int64
    assert feeds["ids"].min() >= 5 and feeds["ids"].max() <= 9
    assert feeds["flag"].dtype == np.bool_
    assert not np.array_equal(first[0]["x"], first[1]["x"])  # iterations differ


def test_dynamic_dims_default_to_one_and_ints_default_to_0_1():
    feeds = next(iter(DataLoader(META)))
    assert feeds["x"].shape == (1, 3)
    assert set(np.unique(feeds["ids"])) <= {0, 1}


def test_script_loader(tmp_path):
    script = tmp_path / "data.py"
    script.write_text("import numpy as np\ndef load():\n    yield {'x': np.full((1, 3), 5, np.float32)}\n")
    (feeds,) = list(DataLoader(META, script=f"{script}:load"))
    np.testing.assert_array_equal(feeds["x"], np.full((1, 3), 5))


@pytest.mark.parametrize("kwargs,message", [
    ({"val_ranges": {"nope": (0, 1)}}, "'nope' is not an input"),
    ({"val_ranges": {"x": (2, 1)}}, "low 2 is above high 1"),
    ({"shapes": {"x": (4, 4)}}, "does not match"),
    ({"script": "missing.py:fn"}, "no such file"),
])
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(PolyxError, match=message):
        list(DataLoader(META, **kwargs))


def test_bfloat16_inputs_get_float_values_in_their_range():
    import ml_dtypes

    feeds = next(iter(DataLoader({"x": ((64,), np.dtype(ml_dtypes.bfloat16))}, val_ranges={"x": (2.0, 3.0)})))
    values = feeds["x"].astype(np.float32)
    assert feeds["x"].dtype == ml_dtypes.bfloat16
    assert values.min() >= 2.0 and values.max() <= 3.0 and len(np.unique(values)) > 10
