"""Activation layers (LayerType.ACTIVATION, `network.add_activation`: activation_type, alpha, beta) and
PARAMETRIC_RELU (`network.add_parametric_relu`: slopes broadcast to the input).

Semantics follow TensorRT 8.6 where it defines the type, and these for the extra types:
  LEAKY_RELU x>=0 ? x : alpha*x            ELU       x>0 ? x : alpha*(exp(x)-1)
  SELU  beta * (x>0 ? x : alpha*(exp(x)-1)) SOFTPLUS  alpha*log(exp(beta*x)+1)
  CLIP  min(max(x, alpha), beta)            HARD_SIGMOID  max(0, min(1, alpha*x+beta))
  SCALED_TANH alpha*tanh(beta*x)            THRESHOLDED_RELU  x>alpha ? x : 0
  CELU  max(0,x) + min(0, alpha*(exp(x/alpha)-1))   MISH  x*tanh(log(1+exp(x)))
  HARD_SWISH x * max(0, min(1, alpha*x+beta))       SWISH x*sigmoid(alpha*x)
  GELU_ERF 0.5*x*(1+erf(x/sqrt(2)))        GELU_TANH 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))
Float types only, except RELU, which also takes signed integers (ONNX Relu). float16 computes in float32.

ONNX: Relu LeakyRelu PRelu Sigmoid HardSigmoid HardSwish Tanh Elu Selu Celu Softplus Softsign ThresholdedRelu
Clip Gelu Mish Swish Shrink. Clip with runtime or integer bounds becomes MAX/MIN elementwise layers; Shrink
becomes comparisons and selects (computed in float64 for integer inputs, then cast back as ONNX Runtime does).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import ActivationType as Act
from ..enums import ElementWiseOperation, LayerType
from ..errors import EngineError, UnsupportedCategory
from ..network import Tensor
from .base import broadcast_shapes, onnx_op, register_layer, same_as_input
from .elementwise import add_binary
from .math_helpers import erf, upcast_half

_SIGNED_INTEGERS = frozenset({DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64})


def _infer_activation(layer, inputs):
    kind = Act(layer.params["activation_type"])
    dtype = inputs[0].dtype
    if not dtype.is_floating and not (kind == Act.RELU and dtype in _SIGNED_INTEGERS):
        raise EngineError(f"activation {kind.value} does not take {dtype.value} inputs")
    return same_as_input(0)(layer, inputs)


def _sigmoid(x, xp):
    # exp of -|x| never overflows, and keeps the tiny values of the far negative side accurate.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x, xp):
    return xp.logaddexp(0, x).astype(x.dtype, copy=False)


_KERNELS: dict[Act, Callable] = {
    Act.RELU: lambda x, a, b, xp: xp.maximum(x, 0),
    Act.SIGMOID: lambda x, a, b, xp: _sigmoid(x, xp),
    Act.TANH: lambda x, a, b, xp: xp.tanh(x),
    Act.LEAKY_RELU: lambda x, a, b, xp: xp.where(x >= 0, x, a * x),
    Act.ELU: lambda x, a, b, xp: xp.where(x > 0, x, a * xp.expm1(x)),
    Act.SELU: lambda x, a, b, xp: b * xp.where(x > 0, x, a * xp.expm1(x)),
    Act.SOFTSIGN: lambda x, a, b, xp: x / (1 + xp.abs(x)),
    Act.SOFTPLUS: lambda x, a, b, xp: a * _softplus(b * x, xp),
    Act.CLIP: lambda x, a, b, xp: xp.minimum(xp.maximum(x, a), b),
    Act.HARD_SIGMOID: lambda x, a, b, xp: xp.clip(a * x + b, 0, 1),
    Act.SCALED_TANH: lambda x, a, b, xp: a * xp.tanh(b * x),
    Act.THRESHOLDED_RELU: lambda x, a, b, xp: xp.where(x > a, x, 0),
    Act.GELU_ERF: lambda x, a, b, xp: 0.5 * x * (1 + erf(x * (1 / math.sqrt(2)), xp)),
    Act.GELU_TANH: lambda x, a, b, xp: 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    Act.CELU: lambda x, a, b, xp: xp.maximum(x, 0) + xp.minimum(0, a * xp.expm1(x / a)),
    Act.MISH: lambda x, a, b, xp: x * xp.tanh(_softplus(x, xp)),
    Act.HARD_SWISH: lambda x, a, b, xp: x * xp.clip(a * x + b, 0, 1),
    Act.SWISH: lambda x, a, b, xp: x * _sigmoid(a * x, xp),
}


def _compute_activation(layer, inputs, xp):
    x = xp.asarray(inputs[0])
    kernel = _KERNELS[Act(layer.params["activation_type"])]
    # exp overflows in the branch xp.where discards; that is expected, not worth a warning.
    with np.errstate(all="ignore"):
        result = kernel(upcast_half(x, xp), layer.params["alpha"], layer.params["beta"], xp)
    return [result.astype(x.dtype, copy=False)]


def _infer_prelu(layer, inputs):
    x, slopes = inputs
    if slopes.dtype != x.dtype:
        raise EngineError(f"slopes ({slopes.dtype.value}) and input ({x.dtype.value}) data types differ")
    return [(broadcast_shapes(x.shape, slopes.shape), x.dtype)]


def _compute_prelu(layer, inputs, xp):
    x, slopes = (xp.asarray(t) for t in inputs)
    return [xp.where(x >= 0, x, slopes * x).astype(x.dtype, copy=False)]


register_layer(LayerType.ACTIVATION, _infer_activation, _compute_activation)
register_layer(LayerType.PARAMETRIC_RELU, _infer_prelu, _compute_prelu)


def _attrs(alpha: tuple[str, float] | float = 0.0, beta: tuple[str, float] | float = 0.0):
    """(alpha, beta) of the layer from ONNX attributes (name, default) or fixed values."""

    def read(ctx):
        return tuple(float(ctx.attr(*spec)) if isinstance(spec, tuple) else spec for spec in (alpha, beta))

    return read


_ACTIVATIONS = {
    "Relu": (Act.RELU, _attrs()),
    "Sigmoid": (Act.SIGMOID, _attrs()),
    "Tanh": (Act.TANH, _attrs()),
    "Softsign": (Act.SOFTSIGN, _attrs()),
    "LeakyRelu": (Act.LEAKY_RELU, _attrs(("alpha", 0.01))),
    "Elu": (Act.ELU, _attrs(("alpha", 1.0))),
    "Selu": (Act.SELU, _attrs(("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875))),
    "Celu": (Act.CELU, _attrs(("alpha", 1.0))),
    "ThresholdedRelu": (Act.THRESHOLDED_RELU, _attrs(("alpha", 1.0))),
    "HardSigmoid": (Act.HARD_SIGMOID, _attrs(("alpha", 0.2), ("beta", 0.5))),
    "HardSwish": (Act.HARD_SWISH, _attrs(1 / 6, 0.5)),
    "Softplus": (Act.SOFTPLUS, _attrs(1.0, 1.0)),
    "Mish": (Act.MISH, _attrs()),
    "Swish": (Act.SWISH, _attrs(("alpha", 1.0))),
}


def add_activation(ctx, x, kind: Act, alpha: float = 0.0, beta: float = 0.0):
    return ctx.network.add_activation(x, kind, alpha, beta, name=ctx.layer_name()).get_output(0)


@onnx_op(*_ACTIVATIONS)
def import_activation(ctx):
    kind, read_params = _ACTIVATIONS[ctx.op_type]
    return [add_activation(ctx, ctx.input(0), kind, *read_params(ctx))]


@onnx_op("Gelu", min_opset=20)
def import_gelu(ctx):
    approximate = ctx.attr("approximate", "none")
    kinds = {"none": Act.GELU_ERF, "tanh": Act.GELU_TANH}
    if approximate not in kinds:
        ctx.unsupported(f"approximate={approximate!r} is not supported (none or tanh)", UnsupportedCategory.ATTRIBUTE)
    return [add_activation(ctx, ctx.input(0), kinds[approximate])]


@onnx_op("PRelu")
def import_prelu(ctx):
    layer = ctx.network.add_parametric_relu(ctx.input(0), ctx.input(1), name=ctx.layer_name())
    return [layer.get_output(0)]


def _clip_bounds(ctx):
    """(min, max) each as None (absent), a float (known at parse time) or a Tensor (runtime value)."""
    if ctx.opset < 11:
        return tuple(float(v) if (v := ctx.attr(name)) is not None else None for name in ("min", "max"))
    bounds = []
    for index in (1, 2):
        tensor, value = ctx.input(index), ctx.const(index)
        bounds.append(tensor if value is None else value.reshape(()).item())
    return tuple(bounds)


@onnx_op("Clip")
def import_clip(ctx):
    x = ctx.input(0)
    low, high = _clip_bounds(ctx)
    if low is None and high is None:
        return [ctx.network.add_identity(x, name=ctx.layer_name()).get_output(0)]
    if x.dtype.is_floating and not any(isinstance(b, Tensor) for b in (low, high)):
        low = -math.inf if low is None else low
        high = math.inf if high is None else high
        return [add_activation(ctx, x, Act.CLIP, low, high)]
    result = x
    for bound, op in ((low, ElementWiseOperation.MAX), (high, ElementWiseOperation.MIN)):
        if bound is None:
            continue
        if not isinstance(bound, Tensor):
            bound = ctx.constant(np.array(bound, dtype=nptype(x.dtype)))
        result = add_binary(ctx, result, bound, op)
    return [result]


@onnx_op("Shrink", min_opset=9)
def import_shrink(ctx):
    """x < -lambd ? x + bias : (x > lambd ? x - bias : 0)."""
    Op = ElementWiseOperation
    x = ctx.input(0)
    lambd, bias = float(ctx.attr("lambd", 0.5)), float(ctx.attr("bias", 0.0))
    compute_dtype = x.dtype if x.dtype.is_floating else DataType.DOUBLE
    work = x if compute_dtype == x.dtype else ctx.network.add_cast(x, compute_dtype,
                                                                  name=ctx.layer_name("to_float")).get_output(0)

    def const(value, suffix):
        return ctx.constant(np.array(value, dtype=nptype(compute_dtype)), name=ctx.layer_name(suffix))

    above = add_binary(ctx, work, const(lambd, "lambd"), Op.GREATER)
    below = add_binary(ctx, work, const(-lambd, "neg_lambd"), Op.LESS)
    bias_t = const(bias, "bias")
    shrunk = ctx.network.add_select(above, add_binary(ctx, work, bias_t, Op.SUB), const(0, "zero"),
                                    name=ctx.layer_name()).get_output(0)
    result = ctx.network.add_select(below, add_binary(ctx, work, bias_t, Op.SUM), shrunk,
                                    name=ctx.layer_name()).get_output(0)
    if compute_dtype != x.dtype:
        result = ctx.network.add_cast(result, x.dtype, name=ctx.layer_name("to_input_type")).get_output(0)
    return [result]
