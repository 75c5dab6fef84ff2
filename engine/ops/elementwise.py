"""Binary elementwise layers (LayerType.ELEMENTWISE, `network.add_elementwise`, param `op`).

NumPy (multidirectional) broadcasting. Both inputs share one dtype, except POW, whose exponent may be of any
numeric type (the output keeps the base's dtype, as ONNX Pow says). Comparisons and AND/OR/XOR give BOOL.
DIV on integers truncates toward zero (C, ONNX); FLOOR_DIV rounds down; MOD takes the divisor's sign (Python),
FMOD the dividend's (C fmod). Bit shifts by a count outside [0, bits) give 0 (left, or right of a non-negative
value) or -1 (right shift of a negative value), as ONNX BitShift does.

ONNX: Add Sub Mul Div Pow Max Min Sum Mean Equal Greater Less GreaterOrEqual LessOrEqual And Or Xor Mod BitShift
BitwiseAnd BitwiseOr BitwiseXor. The variadic ops (Max Min Sum Mean) become a chain of binary layers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import ElementWiseOperation as Op
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import broadcast_shapes, onnx_op, register_layer

_BOOL_RESULT = frozenset({Op.EQUAL, Op.GREATER, Op.LESS, Op.GREATER_OR_EQUAL, Op.LESS_OR_EQUAL, Op.AND, Op.OR,
                          Op.XOR})
_BOOL_ONLY = frozenset({Op.AND, Op.OR, Op.XOR})
_INTEGER_ONLY = frozenset({Op.BITWISE_AND, Op.BITWISE_OR, Op.BITWISE_XOR, Op.BIT_SHIFT_LEFT, Op.BIT_SHIFT_RIGHT})
_INTEGER_TYPES = frozenset({DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8,
                            DataType.UINT16, DataType.UINT32, DataType.UINT64})


def _infer(layer, inputs):
    op = Op(layer.params["op"])
    a, b = inputs
    if op != Op.POW and a.dtype != b.dtype:
        raise EngineError(f"{op.value} inputs have different data types ({a.dtype.value}, {b.dtype.value})")
    if op in _BOOL_ONLY and a.dtype != DataType.BOOL:
        raise EngineError(f"{op.value} needs BOOL inputs, got {a.dtype.value}")
    if op in _INTEGER_ONLY and a.dtype not in _INTEGER_TYPES:
        raise EngineError(f"{op.value} needs integer inputs, got {a.dtype.value}")
    dtype = DataType.BOOL if op in _BOOL_RESULT else a.dtype
    return [(broadcast_shapes(a.shape, b.shape), dtype)]


def _is_integer(x: Any) -> bool:
    return x.dtype.kind in "iu"


def _divide(a, b, xp):
    if not _is_integer(a):
        return xp.divide(a, b)
    quotient = xp.floor_divide(a, b)
    # floor division rounds toward -inf; ONNX (like C) truncates toward zero.
    inexact = (xp.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))
    return quotient + inexact.astype(quotient.dtype)


def _power(a, b, xp):
    if _is_integer(a) and _is_integer(b):
        # Integers to negative powers: C pow then truncation gives 1 for base 1, ±1 for base -1, else 0.
        negative = b < 0
        exponent = xp.where(negative, 0, b)
        if xp.result_type(a, exponent).kind == "f":  # uint64 with a signed exponent would go through float64
            exponent = exponent.astype(a.dtype)
        small = xp.where(a == 1, 1, 0)
        if a.dtype.kind == "i":
            small = xp.where(a == -1, xp.where(b % 2 == 0, 1, -1), small)
        result = xp.where(negative, small, xp.power(a, exponent))
    elif _is_integer(a):
        # Integer base, float exponent: pow in double precision, then truncation as in C. CUDA's pow is not
        # correctly rounded (3.0 ** 1.0 can come out one ulp under 3), so results within rounding of an integer
        # snap to it before truncating.
        exact = xp.power(a.astype(xp.float64), b.astype(xp.float64))
        nearest = xp.rint(exact)
        close = xp.abs(exact - nearest) <= 1e-12 * xp.maximum(1.0, xp.abs(nearest))
        result = xp.where(close, nearest, xp.trunc(exact))
    else:
        result = xp.power(a, b)
    return result.astype(a.dtype, copy=False)


def _mod(a, b, xp):
    """Python-style modulo (sign of the divisor). For floats this is NumPy's own algorithm written out, because
    CuPy's mod computes a - floor(a / b) * b, which gives NaN for an infinite divisor and loses signed zeros."""
    if a.dtype.kind != "f":
        return xp.mod(a, b)
    remainder = xp.fmod(a, b)
    remainder = xp.where((remainder != 0) & ((b < 0) != (remainder < 0)), remainder + b, remainder)
    return xp.where(remainder == 0, xp.copysign(xp.zeros_like(remainder), b), remainder).astype(a.dtype, copy=False)


def _shift(a, b, xp, left: bool):
    bits = a.dtype.itemsize * 8
    out_of_range = (b < 0) | (b >= bits)
    count = xp.where(out_of_range, 0, b).astype(a.dtype)
    if left:
        return xp.where(out_of_range, 0, xp.left_shift(a, count)).astype(a.dtype)
    fill = xp.where(a < 0, -1, 0) if a.dtype.kind == "i" else 0
    return xp.where(out_of_range, fill, xp.right_shift(a, count)).astype(a.dtype)


_KERNELS: dict[Op, Callable[[Any, Any, Any], Any]] = {
    Op.SUM: lambda a, b, xp: xp.add(a, b),
    Op.PROD: lambda a, b, xp: xp.multiply(a, b),
    Op.SUB: lambda a, b, xp: xp.subtract(a, b),
    Op.DIV: _divide,
    Op.POW: _power,
    Op.MAX: lambda a, b, xp: xp.maximum(a, b),
    Op.MIN: lambda a, b, xp: xp.minimum(a, b),
    Op.FLOOR_DIV: lambda a, b, xp: xp.floor_divide(a, b),
    Op.AND: lambda a, b, xp: xp.logical_and(a, b),
    Op.OR: lambda a, b, xp: xp.logical_or(a, b),
    Op.XOR: lambda a, b, xp: xp.logical_xor(a, b),
    Op.EQUAL: lambda a, b, xp: xp.equal(a, b),
    Op.GREATER: lambda a, b, xp: xp.greater(a, b),
    Op.LESS: lambda a, b, xp: xp.less(a, b),
    Op.GREATER_OR_EQUAL: lambda a, b, xp: xp.greater_equal(a, b),
    Op.LESS_OR_EQUAL: lambda a, b, xp: xp.less_equal(a, b),
    Op.MOD: _mod,
    Op.FMOD: lambda a, b, xp: xp.fmod(a, b),
    Op.BITWISE_AND: lambda a, b, xp: xp.bitwise_and(a, b),
    Op.BITWISE_OR: lambda a, b, xp: xp.bitwise_or(a, b),
    Op.BITWISE_XOR: lambda a, b, xp: xp.bitwise_xor(a, b),
    Op.BIT_SHIFT_LEFT: lambda a, b, xp: _shift(a, b, xp, left=True),
    Op.BIT_SHIFT_RIGHT: lambda a, b, xp: _shift(a, b, xp, left=False),
}


def _compute(layer, inputs, xp):
    a, b = (xp.asarray(x) for x in inputs)
    # Integer division by zero and float overflow follow IEEE / NumPy results; NumPy's warnings are noise here.
    with np.errstate(all="ignore"):
        return [_KERNELS[Op(layer.params["op"])](a, b, xp)]


register_layer(LayerType.ELEMENTWISE, _infer, _compute)


def add_binary(ctx, a, b, op: Op, suffix: str | None = None):
    """One ELEMENTWISE layer named after the node; returns its output tensor."""
    return ctx.network.add_elementwise(a, b, op, name=ctx.layer_name(suffix)).get_output(0)


_BINARY_OPS = {
    "Add": Op.SUM, "Sub": Op.SUB, "Mul": Op.PROD, "Div": Op.DIV, "Pow": Op.POW,
    "Equal": Op.EQUAL, "Greater": Op.GREATER, "Less": Op.LESS, "GreaterOrEqual": Op.GREATER_OR_EQUAL,
    "LessOrEqual": Op.LESS_OR_EQUAL, "And": Op.AND, "Or": Op.OR, "Xor": Op.XOR,
    "BitwiseAnd": Op.BITWISE_AND, "BitwiseOr": Op.BITWISE_OR, "BitwiseXor": Op.BITWISE_XOR,
}


def _legacy_broadcast_operand(ctx):
    """Before opset 7, `broadcast=1` aligned B's dims with A's starting at `axis` (default: trailing dims).
    Reshaping B with trailing 1s turns that into NumPy broadcasting."""
    b = ctx.input(1)
    if ctx.opset >= 7 or not ctx.attr("broadcast", 0) or not ctx.has_attr("axis"):
        return b
    rank_a, rank_b = len(ctx.input(0).shape), len(b.shape)
    axis = ctx.attr("axis") % rank_a if rank_a else 0
    trailing = rank_a - axis - rank_b
    if trailing < 0:
        ctx.unsupported(f"legacy broadcast axis {ctx.attr('axis')} does not fit B of rank {rank_b}",
                        UnsupportedCategory.OTHER)
    if trailing == 0:
        return b
    shuffle = ctx.network.add_shuffle(b, name=ctx.layer_name("broadcast_reshape"))
    shuffle.reshape_dims = [0] * rank_b + [1] * trailing
    return shuffle.get_output(0)


@onnx_op(*_BINARY_OPS)
def import_binary(ctx):
    return [add_binary(ctx, ctx.input(0), _legacy_broadcast_operand(ctx), _BINARY_OPS[ctx.op_type])]


@onnx_op("Mod", min_opset=10)
def import_mod(ctx):
    return [add_binary(ctx, ctx.input(0), ctx.input(1), Op.FMOD if ctx.attr("fmod", 0) else Op.MOD)]


@onnx_op("BitShift", min_opset=11)
def import_bitshift(ctx):
    direction = ctx.attr("direction")
    ops = {"LEFT": Op.BIT_SHIFT_LEFT, "RIGHT": Op.BIT_SHIFT_RIGHT}
    if direction not in ops:
        ctx.unsupported(f"direction must be LEFT or RIGHT, got {direction!r}", UnsupportedCategory.OTHER)
    return [add_binary(ctx, ctx.input(0), ctx.input(1), ops[direction])]


_VARIADIC_OPS = {"Max": Op.MAX, "Min": Op.MIN, "Sum": Op.SUM, "Mean": Op.SUM}


@onnx_op(*_VARIADIC_OPS)
def import_variadic(ctx):
    """Max/Min/Sum/Mean of N broadcast inputs: a left fold of binary layers (Mean divides the sum by N)."""
    operands = [t for t in ctx.inputs() if t is not None]
    if not operands:
        ctx.unsupported("needs at least one input", UnsupportedCategory.OTHER)
    if len(operands) == 1:
        result = ctx.network.add_identity(operands[0], name=ctx.layer_name()).get_output(0)
    else:
        result = operands[0]
        for operand in operands[1:]:
            result = add_binary(ctx, result, operand, _VARIADIC_OPS[ctx.op_type])
    if ctx.op_type == "Mean" and len(operands) > 1:
        count = ctx.constant(np.array(len(operands), dtype=nptype(result.dtype)), name=ctx.layer_name("count"))
        result = add_binary(ctx, result, count, Op.DIV)
    return [result]
