"""GPU elementwise and activation tactics: one cupy.ElementwiseKernel per operation, broadcasting the inputs
straight into the output buffer in a single pass (the reference kernels allocate a temporary per NumPy-style
operation and copy it into the output). float16 is computed in float32 inside the kernel. CuPy is imported
inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import functools

from ..dtypes import GPU_KERNEL_FLOAT_TYPES
from ..enums import ActivationType as Act
from ..enums import ElementWiseOperation as Op
from ..enums import LayerType
from ..tensor_formats import STRIDED_FORMATS
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic

# Binary operations on floats a, b (public: the fused POINTWISE tactic generates its kernels from the same
# expressions). MAX/MIN propagate NaN as NumPy's maximum/minimum do.
BINARY_EXPRESSIONS = {
    Op.SUM: "a + b", Op.SUB: "a - b", Op.PROD: "a * b", Op.DIV: "a / b", Op.POW: "powf(a, b)",
    Op.MAX: "(a > b || a != a) ? a : b", Op.MIN: "(a < b || a != a) ? a : b",
}

# exp of -|z| never overflows: the same formulations as the reference kernels.
KERNEL_PREAMBLE = """
__device__ float polyx_sigmoid(float z) {
    float e = expf(-fabsf(z));
    return z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
__device__ float polyx_softplus(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }
__device__ float polyx_clip(float v, float lo, float hi) {  // min(max(v, lo), hi), NaN kept, as NumPy's clip
    float t = v < lo ? lo : v;
    return t > hi ? hi : t;
}
"""

# Activations of float v with float parameters alpha, beta (semantics: engine/ops/activation.py).
ACTIVATION_EXPRESSIONS = {
    Act.RELU: "v < 0.0f ? 0.0f : v",
    Act.SIGMOID: "polyx_sigmoid(v)",
    Act.TANH: "tanhf(v)",
    Act.LEAKY_RELU: "v >= 0.0f ? v : alpha * v",
    Act.ELU: "v > 0.0f ? v : alpha * expm1f(v)",
    Act.SELU: "beta * (v > 0.0f ? v : alpha * expm1f(v))",
    Act.SOFTSIGN: "v / (1.0f + fabsf(v))",
    Act.SOFTPLUS: "alpha * polyx_softplus(beta * v)",
    Act.CLIP: "polyx_clip(v, alpha, beta)",
    Act.HARD_SIGMOID: "fminf(fmaxf(alpha * v + beta, 0.0f), 1.0f)",
    Act.SCALED_TANH: "alpha * tanhf(beta * v)",
    Act.THRESHOLDED_RELU: "v > alpha ? v : 0.0f",
    Act.GELU_ERF: "0.5f * v * (1.0f + erff(v * 0.70710678118654752f))",
    Act.GELU_TANH: "0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)))",
    Act.CELU: "fmaxf(v, 0.0f) + fminf(0.0f, alpha * expm1f(v / alpha))",
    Act.MISH: "v * tanhf(polyx_softplus(v))",
    Act.HARD_SWISH: "v * fminf(fmaxf(alpha * v + beta, 0.0f), 1.0f)",
    Act.SWISH: "v * polyx_sigmoid(alpha * v)",
}


@functools.cache
def _binary_kernel(op: Op):
    import cupy

    return cupy.ElementwiseKernel("T x, T y", "T out",
                                  f"float a = (float)x, b = (float)y; out = (T)({BINARY_EXPRESSIONS[op]});",
                                  f"polyx_elementwise_{op.value.lower()}")


@functools.cache
def _activation_kernel(kind: Act):
    import cupy

    return cupy.ElementwiseKernel("T x, float32 alpha, float32 beta", "T y",
                                  f"float v = (float)x; y = (T)({ACTIVATION_EXPRESSIONS[kind]});",
                                  f"polyx_activation_{kind.value.lower()}", preamble=KERNEL_PREAMBLE)


class ElementwiseKernelTactic(Tactic):
    name = "gpu:elementwise:elementwise_kernel"
    id = stable_tactic_id(name)
    layer_type = LayerType.ELEMENTWISE
    backend = "gpu"
    heuristic_rank = 20
    formats = STRIDED_FORMATS  # CuPy elementwise kernels index every operand through its strides

    def supports(self, ctx: TacticContext) -> bool | str:
        op = Op(ctx.layer.params["op"])
        if op not in BINARY_EXPRESSIONS:
            return f"{op.value} has no elementwise kernel here"
        dtypes = {ctx.inputs[0].dtype, ctx.inputs[1].dtype, ctx.outputs[0].dtype}
        if len(dtypes) != 1 or dtypes.pop() not in GPU_KERNEL_FLOAT_TYPES:
            return "inputs and output must all be FLOAT or all HALF"
        return True

    def prepare(self, ctx: TacticContext):
        return _binary_kernel(Op(ctx.layer.params["op"]))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        state(inputs[0], inputs[1], outputs[0])


class ActivationKernelTactic(Tactic):
    name = "gpu:activation:elementwise_kernel"
    id = stable_tactic_id(name)
    layer_type = LayerType.ACTIVATION
    backend = "gpu"
    heuristic_rank = 20
    formats = STRIDED_FORMATS  # CuPy elementwise kernels index every operand through its strides

    def supports(self, ctx: TacticContext) -> bool | str:
        kind = Act(ctx.layer.params["activation_type"])
        if kind not in ACTIVATION_EXPRESSIONS:
            return f"{kind.value} has no activation kernel here"
        if ctx.inputs[0].dtype not in GPU_KERNEL_FLOAT_TYPES:
            return f"the kernel takes FLOAT or HALF, not {ctx.inputs[0].dtype.value}"
        return True

    def prepare(self, ctx: TacticContext):
        p = ctx.layer.params
        return _activation_kernel(Act(p["activation_type"])), float(p.get("alpha", 0.0)), float(p.get("beta", 0.0))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        kernel, alpha, beta = state
        kernel(inputs[0], alpha, beta, outputs[0])


register_tactic(ElementwiseKernelTactic())
register_tactic(ActivationKernelTactic())
