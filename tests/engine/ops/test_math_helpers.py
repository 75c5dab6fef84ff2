"""upcast_half is shared by the op kernels (one array) and the reference tactic (every input, some omitted)."""
from __future__ import annotations

import numpy as np

from engine.ops.math_helpers import upcast_half


def test_upcast_half_widens_only_float16():
    half = np.array([1.5, -2.25], np.float16)
    widened = upcast_half(half, np)
    assert widened.dtype == np.float32 and widened.tolist() == [1.5, -2.25]
    ints, doubles = np.arange(3, dtype=np.int64), np.ones(2, np.float64)
    assert upcast_half(ints, np) is ints and upcast_half(doubles, np) is doubles


def test_upcast_half_passes_omitted_inputs_through():
    assert upcast_half(None, np) is None
    assert upcast_half(3, np) == 3
