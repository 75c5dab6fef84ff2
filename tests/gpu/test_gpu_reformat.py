"""The GPU reformat tactic (engine/tactics/gpu_reformat.py): LINEAR <-> HWC copies through the tiled transpose
kernel, with float32/float16 conversion or int8 bytes, equal to NumPy's conversion of the same values at shapes
whose sides are not multiples of the 32-element tiles; other conversions keep the strided copy."""
from __future__ import annotations

import numpy as np
import pytest

from engine.enums import TensorFormat
from engine.tactics.gpu_reformat import CastCopy, transpose_copy
from engine.tensor_formats import empty_in_format, is_channels_last

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")

PAIRS = [(np.float32, np.float32), (np.float32, np.float16), (np.float16, np.float32), (np.float16, np.float16),
         (np.int8, np.int8)]
SHAPES = [(2, 3, 5, 7), (1, 64, 33, 31), (3, 40, 2, 45)]


def _values(shape, dtype, rng):
    if dtype == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("src_dtype,dst_dtype", PAIRS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("direction", ["to_hwc", "to_linear"])
def test_transposing_reformat_equals_numpy(src_dtype, dst_dtype, shape, direction):
    rng = np.random.default_rng(5)
    host = _values(shape, src_dtype, rng)
    src_format, dst_format = (TensorFormat.LINEAR, TensorFormat.HWC) if direction == "to_hwc" else \
        (TensorFormat.HWC, TensorFormat.LINEAR)
    src = empty_in_format(cupy, shape, src_dtype, src_format)
    src[...] = cupy.asarray(host)
    dst = empty_in_format(cupy, shape, dst_dtype, dst_format)
    dst[...] = 0
    assert transpose_copy(src, dst), "a LINEAR <-> HWC pair of these types takes the transpose kernel"
    assert is_channels_last(dst) == (dst_format == TensorFormat.HWC)
    np.testing.assert_array_equal(cupy.asnumpy(dst), host.astype(dst_dtype))


def test_other_conversions_fall_back_to_the_strided_copy():
    rng = np.random.default_rng(6)
    host = _values((2, 4, 3, 3), np.float32, rng)
    src, dst = cupy.asarray(host), cupy.zeros((2, 4, 3, 3), np.float16)
    assert not transpose_copy(src, dst), "LINEAR to LINEAR is not a transpose"
    CastCopy().run(None, [src], [dst], None, cupy)
    np.testing.assert_array_equal(cupy.asnumpy(dst), host.astype(np.float16))
