"""GPU reformat tactic: the precision or format conversion as one kernel straight into the output buffer (the
reference kernel makes a converted temporary and copies it: two passes). A LINEAR <-> HWC conversion of 4-D
tensors is a per-sample transpose through shared-memory tiles (kernels/reformat.cu), other conversions one strided
cast-and-copy. CuPy is imported inside functions: this module is imported on every machine."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..enums import LayerType
from ..tensor_formats import STRIDED_FORMATS, is_channels_last, storage_order
from .base import Tactic, stable_tactic_id
from .registry import register_tactic

_STORAGE = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(np.int8): "i8"}
# (source, destination) storage pairs kernels/reformat.cu instantiates
_TRANSPOSES = {("f32", "f32"), ("f32", "f16"), ("f16", "f32"), ("f16", "f16"), ("i8", "i8")}
_GRID_LIMIT = 65535  # gridDim.y and .z


class CastCopy(Tactic):
    name = "gpu:reformat:cast_copy"
    id = stable_tactic_id(name)
    layer_type = LayerType.REFORMAT
    backend = "gpu"
    heuristic_rank = 20
    # both sides are indexed through their strides: the same tactic converts between LINEAR and HWC
    formats = STRIDED_FORMATS

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        if not transpose_copy(inputs[0], outputs[0]):
            xp.copyto(outputs[0], inputs[0], casting="unsafe")


def transpose_copy(src: Any, dst: Any) -> bool:
    """Copy a 4-D tensor between LINEAR and HWC memory (converting float32/float16, or int8 to int8) with the
    tiled transpose kernel; False (nothing done) for any other pair of layouts or types."""
    if src.ndim != 4 or src.size == 0:
        return False
    pair = (_STORAGE.get(src.dtype), _STORAGE.get(dst.dtype))
    if pair not in _TRANSPOSES:
        return False
    n, c, h, w = src.shape
    if src.flags.c_contiguous and is_channels_last(dst) and not dst.flags.c_contiguous:
        rows, cols, a, b = c, h * w, src, storage_order(dst)  # (N, C, HW) -> (N, HW, C)
    elif dst.flags.c_contiguous and is_channels_last(src) and not src.flags.c_contiguous:
        rows, cols, a, b = h * w, c, storage_order(src), dst  # (N, HW, C) -> (N, C, HW)
    else:
        return False
    grid = (-(-cols // 32), -(-rows // 32), n)
    if grid[1] > _GRID_LIMIT or grid[2] > _GRID_LIMIT:
        return False
    from ..backends.nvrtc import kernel

    kernel("reformat", f"transpose_{pair[0]}_{pair[1]}")(grid, (32, 8), (a, b, np.int32(rows), np.int32(cols)))
    return True


register_tactic(CastCopy())
