"""GPU row-reduction tactics: NVRTC kernels (backends/kernels/gpu_kernels.cu) with one thread block per row and
block-wide reductions in shared memory, reading each row from global memory a fixed number of times and writing
the result once (the reference kernels make a temporary per NumPy operation).

- softmax_rows: SOFTMAX / log-softmax along any axis, the tensor seen as (outer, axis, inner).
- layer_norm_rows: NORMALIZATION over the trailing axes (LayerNormalization), scale/bias per normalized element.

float16 layers are staged through float32 workspace buffers and computed in float32. CuPy is imported inside
functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..ops.base import normalize_axis
from ..ops.softmax import softmax_axis
from .base import Tactic, TacticContext, register_tactic, stable_tactic_id
from .scratch import carve, total_bytes

FLOATS = (DataType.FLOAT, DataType.HALF)


def _staged(x: Any, buffer: Any, xp: Any) -> Any:
    """`x` as a contiguous float32 array: itself, or copied into the flat workspace `buffer` (sized for float16
    inputs; a strided float32 input gets a new array)."""
    if x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    if buffer.size != x.size:
        return xp.ascontiguousarray(x, dtype=xp.float32)
    staged = buffer.reshape(x.shape)
    xp.copyto(staged, x, casting="unsafe")
    return staged


def _target(out: Any, buffer: Any, xp: Any) -> Any:
    """Where the float32 kernel writes: `out` itself, or a float32 buffer copied into `out` afterwards."""
    if out.dtype == np.float32 and out.flags.c_contiguous:
        return out
    return buffer.reshape(out.shape) if buffer.size == out.size else xp.empty(out.shape, dtype=xp.float32)


class SoftmaxRows(Tactic):
    name = "gpu:softmax:softmax_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.SOFTMAX
    backend = "gpu"
    heuristic_rank = 20

    def supports(self, ctx: TacticContext) -> bool | str:
        if ctx.inputs[0].dtype not in FLOATS:
            return f"the kernel takes FLOAT or HALF, not {ctx.inputs[0].dtype.value}"
        return True

    def _specs(self, shape, dtype: DataType) -> list:
        size = math.prod(shape) if dtype != DataType.FLOAT else 0
        return [((size,), np.float32), ((size,), np.float32)]

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return total_bytes(self._specs(ctx.inputs[0].shape, ctx.inputs[0].dtype))

    def prepare(self, ctx: TacticContext) -> dict:
        return {"layer": ctx.layer, "log": bool(ctx.layer.params["log"]), "dtype": ctx.inputs[0].dtype}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import block_size, kernel

        x, out = inputs[0], outputs[0]
        if x.size == 0:
            return
        axis = softmax_axis(state["layer"], x.ndim)
        length, inner = x.shape[axis] if x.ndim else 1, math.prod(x.shape[axis + 1:])
        x_stage, y_stage = carve(workspace, self._specs(x.shape, state["dtype"]), xp)
        src, dst = _staged(x, x_stage, xp), _target(out, y_stage, xp)
        threads = block_size(length)
        kernel("gpu_kernels", "softmax_rows")((x.size // length,), (threads,),
                                              (src, dst, np.int32(length), np.int32(inner), np.int32(state["log"])),
                                              shared_mem=threads * 4)
        if dst is not out:
            xp.copyto(out, dst, casting="unsafe")


class LayerNormRows(Tactic):
    name = "gpu:normalization:layer_norm_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.NORMALIZATION
    backend = "gpu"
    heuristic_rank = 20

    def supports(self, ctx: TacticContext) -> bool | str:
        x = ctx.inputs[0]
        if x.dtype not in FLOATS:
            return f"the kernel takes FLOAT or HALF, not {x.dtype.value}"
        if int(ctx.layer.params["num_groups"]) > 1:
            return "group normalization is left to the reference kernel"
        rank = len(x.shape)
        axes = sorted({normalize_axis(a, rank) for a in ctx.layer.params["axes"]})
        if not axes or axes != list(range(rank - len(axes), rank)):
            return f"axes {axes} are not the trailing axes of a rank-{rank} input"
        normalized = tuple(x.shape[rank - len(axes):])
        for role, info in (("scale", ctx.inputs[1] if len(ctx.inputs) > 1 else None),
                           ("bias", ctx.inputs[2] if len(ctx.inputs) > 2 else None)):
            if info is None:
                continue
            if info.dtype != x.dtype:
                return f"the {role} type {info.dtype.value} differs from the input's"
            trimmed = tuple(info.shape)
            while trimmed and trimmed[0] == 1 and len(trimmed) > len(normalized):
                trimmed = trimmed[1:]
            if trimmed != normalized:
                return f"the {role} of shape {tuple(info.shape)} is not one value per normalized element"
        return True

    def _specs(self, shape, dtype: DataType, length: int) -> list:
        half = dtype != DataType.FLOAT
        size = math.prod(shape) if half else 0
        return [((size,), np.float32), ((size,), np.float32), ((length if half else 0,), np.float32),
                ((length if half else 0,), np.float32)]

    def workspace_bytes(self, ctx: TacticContext) -> int:
        x = ctx.inputs[0]
        return total_bytes(self._specs(x.shape, x.dtype, math.prod(x.shape[-self._axis_count(ctx):])))

    @staticmethod
    def _axis_count(ctx: TacticContext) -> int:
        rank = len(ctx.inputs[0].shape)
        return len({normalize_axis(a, rank) for a in ctx.layer.params["axes"]})

    def prepare(self, ctx: TacticContext) -> dict:
        return {"axis_count": self._axis_count(ctx), "dtype": ctx.inputs[0].dtype,
                "epsilon": float(ctx.layer.params["epsilon"])}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import block_size, kernel

        x, out = inputs[0], outputs[0]
        scale, bias = (list(inputs[1:]) + [None, None])[:2]
        if x.size == 0:
            return
        length = math.prod(x.shape[-state["axis_count"]:])
        x_stage, y_stage, s_stage, b_stage = carve(workspace, self._specs(x.shape, state["dtype"], length), xp)
        src, dst = _staged(x, x_stage, xp), _target(out, y_stage, xp)
        scale = src if scale is None else _staged(scale.reshape(-1), s_stage, xp)
        bias = src if bias is None else _staged(bias.reshape(-1), b_stage, xp)
        threads = block_size(length)
        kernel("gpu_kernels", "layer_norm_rows")(
            (x.size // length,), (threads,),
            (src, scale, np.int32(len(inputs) > 1 and inputs[1] is not None), bias,
             np.int32(len(inputs) > 2 and inputs[2] is not None), dst, np.int32(length), np.float32(state["epsilon"])),
            shared_mem=threads * 4)
        if dst is not out:
            xp.copyto(out, dst, casting="unsafe")


register_tactic(SoftmaxRows())
register_tactic(LayerNormRows())
