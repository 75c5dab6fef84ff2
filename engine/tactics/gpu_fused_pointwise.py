"""The GPU tactic of POINTWISE layers: the layer's program becomes the body of one generated elementwise kernel
(cupy.ElementwiseKernel, compiled by NVRTC on first use and cached per program), so a chain of elementwise,
activation and unary ops is one launch and one pass over memory. Every step computes in float32 (float16 inputs are
widened, the output rounded once). Parameters (alpha, beta) are literals of the generated source. CuPy is imported
inside functions: this module is imported on every machine, and the source is generated (and NVRTC-checked in the
CPU tests) without it.
"""
from __future__ import annotations

import functools
import json
import math
from typing import Any

from ..dtypes import GPU_KERNEL_FLOAT_TYPES
from ..enums import ActivationType, ElementWiseOperation, LayerType, UnaryOperation
from ..ops.pointwise import step_layer
from ..tensor_formats import STRIDED_FORMATS
from .base import Tactic, TacticContext, stable_tactic_id
from .gpu_pointwise import ACTIVATION_EXPRESSIONS, BINARY_EXPRESSIONS, KERNEL_PREAMBLE
from .registry import register_tactic

_UNARY = {
    UnaryOperation.EXP: "expf(v)", UnaryOperation.LOG: "logf(v)", UnaryOperation.SQRT: "sqrtf(v)",
    UnaryOperation.RECIP: "1.0f / v", UnaryOperation.ABS: "fabsf(v)", UnaryOperation.NEG: "-v",
    UnaryOperation.SIN: "sinf(v)", UnaryOperation.COS: "cosf(v)", UnaryOperation.TAN: "tanf(v)",
    UnaryOperation.SINH: "sinhf(v)", UnaryOperation.COSH: "coshf(v)", UnaryOperation.ASIN: "asinf(v)",
    UnaryOperation.ACOS: "acosf(v)", UnaryOperation.ATAN: "atanf(v)", UnaryOperation.ASINH: "asinhf(v)",
    UnaryOperation.ACOSH: "acoshf(v)", UnaryOperation.ATANH: "atanhf(v)", UnaryOperation.CEIL: "ceilf(v)",
    UnaryOperation.FLOOR: "floorf(v)", UnaryOperation.ERF: "erff(v)",
    UnaryOperation.SIGN: "(v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v))",  # keeps 0 and NaN, as NumPy's sign
    UnaryOperation.ROUND: "rintf(v)",  # half to even, as NumPy's round
}


def float_literal(value: float) -> str:
    """A C float literal of `value` (infinities and NaN as bit patterns: NVRTC has no math.h macros by default)."""
    value = float(value)
    if math.isnan(value):
        return "__int_as_float(0x7fc00000)"
    if math.isinf(value):
        return ("-" if value < 0 else "") + "__int_as_float(0x7f800000)"
    return f"{value!r}f"


def kernel_body(program: list[dict[str, Any]], num_inputs: int) -> str | None:
    """The kernel body computing `y` from `x0..x{n-1}` (elements of type T), or None when a step has no kernel
    expression here."""
    lines = []

    def operand(ref: list) -> str:
        return f"(float)x{ref[1]}" if ref[0] == "input" else f"s{ref[1]}"

    for i, step in enumerate(program):
        layer = step_layer(_Named(), i, step, num_inputs)
        args = [operand(ref) for ref in step["args"]]
        if layer.type == LayerType.ELEMENTWISE:
            expression = BINARY_EXPRESSIONS.get(ElementWiseOperation(layer.params["op"]))
            setup = f"float a = {args[0]}, b = {args[1]};"
        elif layer.type == LayerType.UNARY:
            expression = _UNARY.get(UnaryOperation(layer.params["op"]))
            setup = f"float v = {args[0]};"
        else:
            expression = ACTIVATION_EXPRESSIONS.get(ActivationType(layer.params["activation_type"]))
            setup = (f"float v = {args[0]}; const float alpha = {float_literal(layer.params.get('alpha', 0.0))}, "
                     f"beta = {float_literal(layer.params.get('beta', 0.0))};")
        if expression is None:
            return None
        lines.append(f"float s{i}; {{ {setup} s{i} = ({expression}); }}")
    lines.append(f"y = (T)s{len(program) - 1};")
    return "\n".join(lines)


class _Named:
    name = "pointwise"


@functools.cache
def _kernel(program_json: str, num_inputs: int):
    import cupy

    body = kernel_body(json.loads(program_json), num_inputs)
    params = ", ".join(f"T x{i}" for i in range(num_inputs))
    name = f"polyx_pointwise_{stable_tactic_id(program_json):08x}"
    return cupy.ElementwiseKernel(params, "T y", body, name, preamble=KERNEL_PREAMBLE)


class FusedPointwiseKernelTactic(Tactic):
    name = "gpu:pointwise:generated_kernel"
    id = stable_tactic_id(name)
    layer_type = LayerType.POINTWISE
    backend = "gpu"
    heuristic_rank = 10
    formats = STRIDED_FORMATS  # a CuPy elementwise kernel indexes every operand through its strides

    def supports(self, ctx: TacticContext) -> bool | str:
        dtypes = {v.dtype for v in ctx.inputs} | {ctx.outputs[0].dtype}
        if len(dtypes) != 1 or dtypes.pop() not in GPU_KERNEL_FLOAT_TYPES:
            return "inputs and output must all be FLOAT or all HALF"
        if kernel_body(ctx.layer.params["program"], len(ctx.inputs)) is None:
            return "a step of the program has no kernel expression"
        return True

    def prepare(self, ctx: TacticContext):
        return _kernel(json.dumps(ctx.layer.params["program"], sort_keys=True), len(ctx.inputs))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        state(*inputs, outputs[0])


register_tactic(FusedPointwiseKernelTactic())
