"""Small math helpers shared by the activation and unary kernels.

`erf` is not a NumPy function: it comes from scipy.special on NumPy and cupyx.scipy.special on CuPy, both
accurate to the working precision. `upcast_half` lets kernels compute float16 tensors in float32, because
chains of float16 operations lose more precision than ONNX references allow.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import BFLOAT16


def erf(x: Any, xp: Any) -> Any:
    """Error function of `x` in x's dtype (float16 is evaluated in float32)."""
    if xp is np:
        from scipy import special
    else:
        from cupyx.scipy import special
    if x.dtype == xp.float16:
        return special.erf(x.astype(xp.float32)).astype(xp.float16)
    return special.erf(x)


def upcast_bfloat16(x: Any) -> Any:
    """bfloat16 (ml_dtypes, NumPy only) → float32; anything else unchanged. No kernel computes in bfloat16: its
    8-bit mantissa loses too much in a chain of operations, so bfloat16 data is computed in float32 and rounded
    once when the result is stored, as a GPU kernel accumulating in float32 does."""
    return x.astype(np.float32) if getattr(x, "dtype", None) == BFLOAT16 else x


def upcast_half(x: Any, xp: Any) -> Any:
    """float16 → float32 (the precision kernels compute in, the way tensor cores accumulate); other dtypes, None
    (an omitted optional input) and non-arrays unchanged."""
    return x.astype(xp.float32) if getattr(x, "dtype", None) == xp.float16 else x
