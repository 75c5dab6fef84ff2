"""Per-tensor INT8 quantization on the GPU in one NVRTC kernel (kernels/int8.cu `quantize_int8`): the
QuantizeLinear layers that stay at the boundaries of INT8 regions (a network's input, the output of a float
layer feeding an INT8 convolution: ResNet-50's max pool under implicit calibration) run over whole activations,
where the reference kernel's chain of CuPy operations (cast, divide, round, add, clip, cast) reads and writes
them six times. Same arithmetic as the reference: float32 division, round half to even, the zero point, saturation.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic

_INPUTS = {DataType.FLOAT: "quantize_int8_f32", DataType.HALF: "quantize_int8_f16"}


class GpuQuantizeInt8(Tactic):
    name = "gpu:quantize:int8_kernel"
    id = stable_tactic_id(name)
    layer_type = LayerType.QUANTIZE
    backend = "gpu"
    heuristic_rank = 10  # ahead of the reference (50)

    def supports(self, ctx: TacticContext) -> bool | str:
        x, scale = ctx.inputs[0], ctx.inputs[1]
        zero = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        if x.dtype not in _INPUTS or ctx.outputs[0].dtype != DataType.INT8:
            return f"the kernel quantizes FLOAT or HALF to INT8, not {x.dtype.value} -> {ctx.outputs[0].dtype.value}"
        if scale.value is None or np.size(scale.value) != 1:  # one value: the same along any axis
            return "the kernel takes one constant scale per tensor"
        if zero is not None and (zero.value is None or np.size(zero.value) != 1):
            return "the kernel takes one constant zero point per tensor"
        return True

    def prepare(self, ctx: TacticContext) -> tuple:
        zero = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        return (np.float32(np.asarray(ctx.inputs[1].value).reshape(())),
                np.int32(0 if zero is None else np.asarray(zero.value).reshape(())))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.kernel_sources import storage_kernel
        from ..backends.nvrtc import kernel, launch_1d

        scale, zero = state
        x, out = xp.ascontiguousarray(inputs[0]), outputs[0]
        q = out if out.flags.c_contiguous else xp.empty(out.shape, out.dtype)
        grid, block = launch_1d(x.size)
        kernel("int8", storage_kernel("quantize_int8", x.dtype))(grid, block, (x, q, scale, zero, np.int64(x.size)))
        if q is not out:
            xp.copyto(out, q)


register_tactic(GpuQuantizeInt8())
