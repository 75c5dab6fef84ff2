"""GPU row-reduction tactics: NVRTC kernels (backends/kernels/gpu_kernels.cu) with one thread block per row and
block-wide reductions in shared memory, reading each row from global memory a fixed number of times and writing
the result once (the reference kernels make a temporary per NumPy operation).

- softmax_rows: SOFTMAX / log-softmax along any axis, the tensor seen as (outer, axis, inner).
- layer_norm_rows: NORMALIZATION over the trailing axes (LayerNormalization), scale/bias per normalized element.
- residual_layer_norm_rows: RESIDUAL_NORMALIZATION, LayerNorm(x + residual) reading each summand once, the sum
  kept in shared memory (and written out when the layer has the sum as its second output).

The kernels read and write float32 or float16 directly and compute in float32; constant scale and bias are
converted to float32 once, at prepare time. CuPy is imported inside functions: this module is imported on every
machine.
"""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.kernel_sources import storage_kernel
from ..dtypes import GPU_KERNEL_FLOAT_TYPES, DataType
from ..enums import LayerType
from ..evaluator import is_static
from ..ops.base import normalize_axis
from ..ops.softmax import softmax_axis
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic
from .scratch import carve, total_bytes


def _as_float32(value: Any, buffer: Any, xp: Any) -> Any:
    """A flat float32 copy of a small runtime operand (scale or bias), in `buffer` when it is sized for it."""
    flat = value.reshape(-1)
    if flat.dtype == np.float32 and flat.flags.c_contiguous:
        return flat
    target = buffer if buffer.size == flat.size else xp.empty(flat.size, xp.float32)
    xp.copyto(target, flat, casting="unsafe")
    return target


# residual_layer_norm_rows and masked_softmax_rows (gpu_attention.py) keep a row in shared memory, after up to 1024
# per-thread partials: (threads + row) floats <= 36 KiB, inside every GPU's 48 KiB default per block.
MAX_SHARED_ROW = 8192


class SoftmaxRows(Tactic):
    name = "gpu:softmax:softmax_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.SOFTMAX
    backend = "gpu"
    heuristic_rank = 20

    def supports(self, ctx: TacticContext) -> bool | str:
        if ctx.inputs[0].dtype not in GPU_KERNEL_FLOAT_TYPES or ctx.outputs[0].dtype != ctx.inputs[0].dtype:
            return f"the kernel takes FLOAT or HALF to the same type, not {ctx.inputs[0].dtype.value}"
        return True

    def prepare(self, ctx: TacticContext) -> dict:
        return {"layer": ctx.layer, "log": bool(ctx.layer.params["log"])}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import block_size, kernel

        x, out = inputs[0], outputs[0]
        if x.size == 0:
            return
        axis = softmax_axis(state["layer"], x.ndim)
        length, inner = x.shape[axis] if x.ndim else 1, math.prod(x.shape[axis + 1:])
        src = xp.ascontiguousarray(x)
        dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        threads = block_size(length)
        kernel("gpu_kernels", storage_kernel("softmax_rows", x.dtype))(
            (x.size // length,), (threads,), (src, dst, np.int32(length), np.int32(inner), np.int32(state["log"])),
            shared_mem=threads * 4)
        if dst is not out:
            xp.copyto(out, dst)


class LayerNormRows(Tactic):
    name = "gpu:normalization:layer_norm_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.NORMALIZATION
    backend = "gpu"
    heuristic_rank = 20

    def supports(self, ctx: TacticContext) -> bool | str:
        x = ctx.inputs[0]
        if x.dtype not in GPU_KERNEL_FLOAT_TYPES or ctx.outputs[0].dtype != x.dtype:
            return f"the kernel takes FLOAT or HALF to the same type, not {x.dtype.value}"
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

    def _specs(self, ctx: TacticContext) -> list:
        """float32 copies of a runtime (non-constant) scale and bias of another type."""
        length = math.prod(ctx.inputs[0].shape[-self._axis_count(ctx):])
        return [((length if info is not None and info.value is None and info.dtype != DataType.FLOAT else 0,),
                 np.float32) for info in (list(ctx.inputs[1:3]) + [None, None])[:2]]

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return total_bytes(self._specs(ctx))

    @staticmethod
    def _axis_count(ctx: TacticContext) -> int:
        rank = len(ctx.inputs[0].shape)
        return len({normalize_axis(a, rank) for a in ctx.layer.params["axes"]})

    def prepare(self, ctx: TacticContext) -> dict:
        import cupy

        constants = [None if info is None or info.value is None else
                     cupy.asarray(np.asarray(info.value, dtype=np.float32).reshape(-1))
                     for info in (list(ctx.inputs[1:3]) + [None, None])[:2]]
        return {"axis_count": self._axis_count(ctx), "epsilon": float(ctx.layer.params["epsilon"]),
                "constants": constants, "specs": self._specs(ctx)}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import block_size, kernel

        x, out = inputs[0], outputs[0]
        scale, bias = (list(inputs[1:]) + [None, None])[:2]
        if x.size == 0:
            return
        length = math.prod(x.shape[-state["axis_count"]:])
        operands = []
        for value, constant, buffer in zip((scale, bias), state["constants"], carve(workspace, state["specs"], xp)):
            operands.append(None if value is None else constant if constant is not None else
                            _as_float32(value, buffer, xp))
        src = xp.ascontiguousarray(x)
        dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        threads = block_size(length)
        kernel("gpu_kernels", storage_kernel("layer_norm_rows", x.dtype))(
            (x.size // length,), (threads,),
            (src, src if operands[0] is None else operands[0], np.int32(operands[0] is not None),
             src if operands[1] is None else operands[1], np.int32(operands[1] is not None), dst, np.int32(length),
             np.float32(state["epsilon"])),
            shared_mem=threads * 4)
        if dst is not out:
            xp.copyto(out, dst)


class ResidualLayerNormRows(LayerNormRows):
    """The layer_norm_rows kernel with the residual sum done on the way in (its constants prepared the same way:
    the scale and bias are inputs 2 and 3 here, so the context is shifted by one before the parent sees it)."""

    name = "gpu:residual_normalization:residual_layer_norm_rows"
    id = stable_tactic_id(name)
    layer_type = LayerType.RESIDUAL_NORMALIZATION

    @staticmethod
    def _as_normalization(ctx: TacticContext) -> TacticContext:
        layer = SimpleNamespace(name=ctx.layer.name, params={**ctx.layer.params, "num_groups": 1})
        return replace(ctx, layer=layer, inputs=[ctx.inputs[0]] + list(ctx.inputs[2:4]))

    def supports(self, ctx: TacticContext) -> bool | str:
        x, residual = ctx.inputs[0], ctx.inputs[1]
        if residual.dtype != x.dtype:
            return f"the residual type {residual.dtype.value} differs from the input's"
        if not is_static(x.shape):
            return "the shapes must be concrete"
        if tuple(residual.shape) != tuple(x.shape):
            return f"the residual {tuple(residual.shape)} broadcasts against {tuple(x.shape)} (the reference does that)"
        rows = self._as_normalization(ctx)
        found = super().supports(rows)
        if found is not True:
            return found
        length = math.prod(x.shape[-self._axis_count(rows):])
        return True if length <= MAX_SHARED_ROW else f"rows of {length} exceed the kernel's cached {MAX_SHARED_ROW}"

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return super().workspace_bytes(self._as_normalization(ctx))

    def prepare(self, ctx: TacticContext) -> dict:
        return super().prepare(self._as_normalization(ctx))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.nvrtc import block_size, kernel

        x, residual, scale, bias = inputs
        out = outputs[0]
        total = outputs[1] if len(outputs) > 1 else None
        if x.size == 0:
            return
        if tuple(residual.shape) != tuple(x.shape):  # bound shapes the build did not see: the Add's broadcast
            x, residual = x + residual, xp.zeros_like(x + residual)
        length = math.prod(x.shape[-state["axis_count"]:])
        operands = []
        for value, constant, buffer in zip((scale, bias), state["constants"], carve(workspace, state["specs"], xp)):
            operands.append(None if value is None else constant if constant is not None else
                            _as_float32(value, buffer, xp))
        src, res = xp.ascontiguousarray(x), xp.ascontiguousarray(residual)
        dst = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        sum_dst = None if total is None else total if total.flags.c_contiguous else xp.empty(total.shape, total.dtype)
        threads = block_size(length)
        kernel("gpu_kernels", storage_kernel("residual_layer_norm_rows", x.dtype))(
            (x.size // length,), (threads,),
            (src, res, src if operands[0] is None else operands[0], np.int32(operands[0] is not None),
             src if operands[1] is None else operands[1], np.int32(operands[1] is not None), dst,
             dst if sum_dst is None else sum_dst, np.int32(sum_dst is not None), np.int32(length),
             np.float32(state["epsilon"])),
            shared_mem=(threads + length) * 4)
        for result, target in ((dst, out), (sum_dst, total)):
            if result is not None and result is not target:
                xp.copyto(target, result)


register_tactic(SoftmaxRows())
register_tactic(LayerNormRows())
register_tactic(ResidualLayerNormRows())
