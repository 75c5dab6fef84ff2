"""Unary layers (LayerType.UNARY, `network.add_unary`, param `op`).

ROUND rounds half to even (ONNX Round). ISINF and ISNAN give BOOL; ISINF also reads the optional params
`detect_positive` / `detect_negative` (default true, set by the IsInf importer). ABS, NEG and SIGN take integers
too, NOT takes BOOL, BITWISE_NOT integers; the rest are float-only. float16 computes in float32.

ONNX: Exp Log Sqrt Reciprocal Abs Neg Floor Ceil Round Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Erf
Sign Not IsNaN IsInf BitwiseNot.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..enums import UnaryOperation as Op
from ..errors import EngineError
from .base import onnx_op, register_layer
from .math_helpers import erf, upcast_half


def _isinf(layer, x, xp):
    positive = layer.params.get("detect_positive", True)
    negative = layer.params.get("detect_negative", True)
    if positive and negative:
        return xp.isinf(x)
    if positive:
        return x == xp.inf
    if negative:
        return x == -xp.inf
    return xp.zeros(x.shape, dtype=bool)


_KERNELS: dict[Op, Callable] = {
    Op.EXP: lambda layer, x, xp: xp.exp(x),
    Op.LOG: lambda layer, x, xp: xp.log(x),
    Op.SQRT: lambda layer, x, xp: xp.sqrt(x),
    Op.RECIP: lambda layer, x, xp: xp.reciprocal(x),
    Op.ABS: lambda layer, x, xp: xp.abs(x),
    Op.NEG: lambda layer, x, xp: xp.negative(x),
    Op.SIN: lambda layer, x, xp: xp.sin(x),
    Op.COS: lambda layer, x, xp: xp.cos(x),
    Op.TAN: lambda layer, x, xp: xp.tan(x),
    Op.SINH: lambda layer, x, xp: xp.sinh(x),
    Op.COSH: lambda layer, x, xp: xp.cosh(x),
    Op.ASIN: lambda layer, x, xp: xp.arcsin(x),
    Op.ACOS: lambda layer, x, xp: xp.arccos(x),
    Op.ATAN: lambda layer, x, xp: xp.arctan(x),
    Op.ASINH: lambda layer, x, xp: xp.arcsinh(x),
    Op.ACOSH: lambda layer, x, xp: xp.arccosh(x),
    Op.ATANH: lambda layer, x, xp: xp.arctanh(x),
    Op.CEIL: lambda layer, x, xp: xp.ceil(x),
    Op.FLOOR: lambda layer, x, xp: xp.floor(x),
    Op.ERF: lambda layer, x, xp: erf(x, xp),
    Op.NOT: lambda layer, x, xp: xp.logical_not(x),
    Op.SIGN: lambda layer, x, xp: xp.sign(x),
    Op.ROUND: lambda layer, x, xp: xp.round(x),
    Op.ISINF: _isinf,
    Op.ISNAN: lambda layer, x, xp: xp.isnan(x),
    Op.BITWISE_NOT: lambda layer, x, xp: xp.invert(x),
}

_BOOL_RESULT = frozenset({Op.ISINF, Op.ISNAN})
_NUMERIC = frozenset({Op.ABS, Op.NEG, Op.SIGN})


def _infer(layer, inputs):
    op = Op(layer.params["op"])
    dtype = inputs[0].dtype
    if op == Op.NOT:
        valid = dtype == DataType.BOOL
    elif op == Op.BITWISE_NOT:
        valid = dtype != DataType.BOOL and not dtype.is_floating
    elif op in _NUMERIC:
        valid = dtype != DataType.BOOL
    else:
        valid = dtype.is_floating
    if not valid:
        raise EngineError(f"unary {op.value} does not take {dtype.value} inputs")
    return [(inputs[0].shape, DataType.BOOL if op in _BOOL_RESULT else dtype)]


def _compute(layer, inputs, xp):
    x = xp.asarray(inputs[0])
    op = Op(layer.params["op"])
    # log(0), sqrt(-1), arcsin(2)... give IEEE inf/nan as ONNX expects; NumPy's warnings are noise here.
    with np.errstate(all="ignore"):
        result = _KERNELS[op](layer, upcast_half(x, xp), xp)
    return [result if op in _BOOL_RESULT else result.astype(x.dtype, copy=False)]


register_layer(LayerType.UNARY, _infer, _compute)

_ONNX_OPS = {
    "Exp": Op.EXP, "Log": Op.LOG, "Sqrt": Op.SQRT, "Reciprocal": Op.RECIP, "Abs": Op.ABS, "Neg": Op.NEG,
    "Floor": Op.FLOOR, "Ceil": Op.CEIL, "Round": Op.ROUND, "Sin": Op.SIN, "Cos": Op.COS, "Tan": Op.TAN,
    "Asin": Op.ASIN, "Acos": Op.ACOS, "Atan": Op.ATAN, "Sinh": Op.SINH, "Cosh": Op.COSH, "Asinh": Op.ASINH,
    "Acosh": Op.ACOSH, "Atanh": Op.ATANH, "Erf": Op.ERF, "Sign": Op.SIGN, "Not": Op.NOT, "IsNaN": Op.ISNAN,
    "BitwiseNot": Op.BITWISE_NOT,
}


@onnx_op(*_ONNX_OPS)
def import_unary(ctx):
    return [ctx.network.add_unary(ctx.input(0), _ONNX_OPS[ctx.op_type], name=ctx.layer_name()).get_output(0)]


@onnx_op("IsInf", min_opset=10)
def import_isinf(ctx):
    layer = ctx.network.add_unary(ctx.input(0), Op.ISINF, name=ctx.layer_name())
    layer.params["detect_positive"] = bool(ctx.attr("detect_positive", 1))
    layer.params["detect_negative"] = bool(ctx.attr("detect_negative", 1))
    return [layer.get_output(0)]
