"""Reductions (LayerType.REDUCE, `network.add_reduce`, params `op` ReduceOperation, `axes` list, `keep_dims`).

An empty `axes` list reduces nothing (identity). Optional input 1 is a runtime INT64 axes tensor of static
length that replaces `axes` (ONNX feeds axes as an input since opset 13/18, and the backend cases feed them as
graph inputs); the output rank is then known but the reduced dims only at run time.
Reducing over an empty axis gives the reduction's identity (SUM 0, PROD 1, MAX the lowest value: -inf for
floats, MIN the highest, AVG NaN or 0 for integers), as ONNX says. float16 is accumulated in float32.

ONNX: ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd map to one layer; ReduceL1 ReduceL2 ReduceSumSquare
ReduceLogSum ReduceLogSumExp expand into unary/elementwise layers around it, as TensorRT's parser does
(LogSumExp subtracts the max first, for stability). Those expansions compute float16 in float32 and integers in
float64 (cast layers around them), the way onnxruntime does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import ElementWiseOperation, LayerType, ReduceOperation, UnaryOperation
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, normalize_axis, onnx_op, register_layer

_INTEGER_TYPES = frozenset({DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8,
                            DataType.UINT16, DataType.UINT32, DataType.UINT64})


def reduce_axes(layer, axes_input: Any, rank: int) -> list[int] | None:
    """Sorted non-negative reduction axes: from the runtime axes input when present, else the `axes` param.
    None when the axes input's value is not known (build time)."""
    if axes_input is not None:
        value = axes_input.value if isinstance(axes_input, TensorInfo) else axes_input
        if value is None:
            return None
        axes = [int(a) for a in value.tolist()]
    else:
        axes = [int(a) for a in layer.params["axes"]]
    normalized = sorted(normalize_axis(a, rank, "reduction axis") for a in axes)
    if len(set(normalized)) != len(normalized):
        raise EngineError(f"reduction axes {axes} repeat an axis")
    return normalized


def reduced_shape(shape: tuple[int, ...], axes: list[int], keep_dims: bool) -> tuple[int, ...]:
    if keep_dims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _infer(layer, inputs):
    x = inputs[0]
    axes_input = inputs[1] if len(inputs) > 1 else None
    keep_dims = bool(layer.params["keep_dims"])
    axes = reduce_axes(layer, axes_input, len(x.shape))
    if axes is not None:
        return [(reduced_shape(x.shape, axes, keep_dims), x.dtype)]
    if keep_dims:
        return [(tuple(1 if d == 1 else -1 for d in x.shape), x.dtype)]
    count = axes_input.shape[0] if axes_input.shape else -1
    if count < 0:
        raise EngineError("a runtime axes tensor needs a static length when keep_dims is false")
    return [((-1,) * (len(x.shape) - count), x.dtype)]


def _empty_fill(op: ReduceOperation, dtype: Any) -> Any:
    """Value of a reduction over no elements."""
    if op == ReduceOperation.SUM:
        return 0
    if op == ReduceOperation.PROD:
        return 1
    if op == ReduceOperation.AVG:
        return np.nan if dtype.kind == "f" else 0  # 0/0: NaN where the dtype has one
    if dtype == np.bool_:
        return op == ReduceOperation.MIN
    if dtype.kind == "f":
        return -np.inf if op == ReduceOperation.MAX else np.inf
    info = np.iinfo(dtype)
    return info.min if op == ReduceOperation.MAX else info.max


def _mean(x, axes, keep_dims, xp):
    if x.dtype.kind in "iu":
        # Integer means truncate toward zero, as onnxruntime's integer division does (floor division rounds
        # negative totals down, so those with a remainder move up by one).
        total = xp.sum(x, axis=axes, keepdims=keep_dims, dtype=xp.uint64 if x.dtype.kind == "u" else xp.int64)
        count = _count(x.shape, axes)
        return total // count + ((total % count != 0) & (total < 0))
    return xp.mean(x, axis=axes, keepdims=keep_dims, dtype=xp.float32 if x.dtype == xp.float16 else x.dtype)


def _count(shape, axes) -> int:
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _compute(layer, inputs, xp):
    x = inputs[0]
    axes = reduce_axes(layer, inputs[1] if len(inputs) > 1 else None, x.ndim)
    if not axes:
        return [x]
    op = ReduceOperation(layer.params["op"])
    keep_dims = bool(layer.params["keep_dims"])
    if _count(x.shape, axes) == 0:
        out_shape = reduced_shape(x.shape, axes, keep_dims)
        return [xp.full(out_shape, _empty_fill(op, x.dtype), dtype=x.dtype)]
    axis = tuple(axes)
    accumulate = xp.float32 if x.dtype == xp.float16 else x.dtype
    if op == ReduceOperation.SUM:
        result = xp.sum(x, axis=axis, keepdims=keep_dims, dtype=accumulate)
    elif op == ReduceOperation.PROD:
        result = xp.prod(x, axis=axis, keepdims=keep_dims, dtype=accumulate)
    elif op == ReduceOperation.MAX:
        result = xp.max(x, axis=axis, keepdims=keep_dims)
    elif op == ReduceOperation.MIN:
        result = xp.min(x, axis=axis, keepdims=keep_dims)
    else:
        result = _mean(x, axis, keep_dims, xp)
    return [xp.asarray(result).astype(x.dtype, copy=False)]


register_layer(LayerType.REDUCE, _infer, _compute, host_operands=(1,))


# ---------------------------------------------------------------------------------------------------- ONNX
_DIRECT = {"ReduceSum": ReduceOperation.SUM, "ReduceMean": ReduceOperation.AVG, "ReduceMax": ReduceOperation.MAX,
           "ReduceMin": ReduceOperation.MIN, "ReduceProd": ReduceOperation.PROD}
_EXPANDED = ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


class ReduceSpec:
    """The axes of one ONNX reduction: a static list, or a runtime tensor of static length."""

    def __init__(self, axes: list[int], axes_tensor: Any, keep_dims: bool):
        self.axes = axes
        self.axes_tensor = axes_tensor
        self.keep_dims = keep_dims

    def add(self, ctx, x, op: ReduceOperation, keep_dims: bool | None = None, suffix: str | None = None):
        """Add one REDUCE layer over these axes; returns its output tensor."""
        keep = self.keep_dims if keep_dims is None else keep_dims
        layer = ctx.network.add_reduce(x, op, self.axes, keep, name=ctx.layer_name(suffix))
        if self.axes_tensor is not None:
            layer.set_input(1, self.axes_tensor)
        return layer.get_output(0)


def reduce_spec(ctx, axes_input_since: int) -> ReduceSpec | None:
    """Read keepdims/axes/noop_with_empty_axes of a Reduce* node; None means 'no reduction' (noop)."""
    rank = len(ctx.input(0).shape)
    keep_dims = bool(ctx.attr("keepdims", 1))
    if ctx.opset < axes_input_since:
        axes = ctx.attr("axes", None)
        return ReduceSpec(_static_axes(ctx, axes, rank), None, keep_dims)
    noop = bool(ctx.attr("noop_with_empty_axes", 0))
    tensor = ctx.input(1)
    value = ctx.const(1) if tensor is not None else np.zeros(0, np.int64)
    if value is None:
        if tensor.shape is None or len(tensor.shape) != 1 or tensor.shape[0] < 0:
            ctx.unsupported("axes must be a constant or a 1-D tensor of static length",
                            UnsupportedCategory.DYNAMIC_SHAPE)
        if tensor.shape[0] > 0:
            return ReduceSpec([], tensor, keep_dims)
        value = np.zeros(0, np.int64)
    if value.size == 0 and noop:
        return None
    return ReduceSpec(_static_axes(ctx, value.reshape(-1).tolist(), rank), None, keep_dims)


def _static_axes(ctx, axes, rank: int) -> list[int]:
    if not axes:
        return list(range(rank))
    try:
        normalized = sorted({normalize_axis(int(a), rank, "axis") for a in axes})
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    if len(normalized) != len(axes):
        ctx.unsupported(f"axes {list(axes)} repeat an axis", UnsupportedCategory.OTHER)
    return normalized


def _check_dtype(ctx, dtype: DataType) -> None:
    if dtype == DataType.BOOL and not (ctx.op_type in ("ReduceMax", "ReduceMin") and ctx.opset >= 20):
        ctx.unsupported(f"{ctx.op_type} does not take BOOL input at opset {ctx.opset}", UnsupportedCategory.DTYPE)


@onnx_op(*_DIRECT)
def import_reduce(ctx):
    x = ctx.input(0)
    _check_dtype(ctx, x.dtype)
    spec = reduce_spec(ctx, 13 if ctx.op_type == "ReduceSum" else 18)
    if spec is None:
        return [ctx.network.add_identity(x, name=ctx.layer_name()).get_output(0)]
    return [spec.add(ctx, x, _DIRECT[ctx.op_type])]


@onnx_op(*_EXPANDED)
def import_expanded_reduce(ctx):
    x = ctx.input(0)
    _check_dtype(ctx, x.dtype)
    spec = reduce_spec(ctx, 18)
    if spec is None:
        spec = ReduceSpec([], None, True)
    net = ctx.network
    compute_type = _compute_type(ctx.op_type, x.dtype)
    source = x if compute_type is None else net.add_cast(x, compute_type, name=ctx.layer_name("cast_in")).get_output(0)
    result = _EXPANSIONS[ctx.op_type](ctx, source, spec)
    if compute_type is not None:
        result = net.add_cast(result, x.dtype, name=ctx.layer_name("cast_out")).get_output(0)
    return [result]


def _compute_type(op_type: str, dtype: DataType) -> DataType | None:
    """The dtype an expansion computes in when it is not the input's: float32 for float16, float64 for integers
    going through sqrt/log/exp (L1 and SumSquare stay exact in integers)."""
    if dtype == DataType.HALF:
        return DataType.FLOAT
    if dtype in _INTEGER_TYPES and op_type not in ("ReduceL1", "ReduceSumSquare"):
        return DataType.DOUBLE
    return None


def _unary(ctx, x, op: UnaryOperation, suffix: str):
    return ctx.network.add_unary(x, op, name=ctx.layer_name(suffix)).get_output(0)


def _binary(ctx, a, b, op: ElementWiseOperation, suffix: str):
    return ctx.network.add_elementwise(a, b, op, name=ctx.layer_name(suffix)).get_output(0)


def _l1(ctx, x, spec: ReduceSpec):
    return spec.add(ctx, _unary(ctx, x, UnaryOperation.ABS, "abs"), ReduceOperation.SUM)


def _sum_square(ctx, x, spec: ReduceSpec):
    return spec.add(ctx, _binary(ctx, x, x, ElementWiseOperation.PROD, "square"), ReduceOperation.SUM)


def _l2(ctx, x, spec: ReduceSpec):
    return _unary(ctx, _sum_square(ctx, x, spec), UnaryOperation.SQRT, "sqrt")


def _log_sum(ctx, x, spec: ReduceSpec):
    return _unary(ctx, spec.add(ctx, x, ReduceOperation.SUM), UnaryOperation.LOG, "log")


def _log_sum_exp(ctx, x, spec: ReduceSpec):
    """log(sum(exp(x - m))) + m with m the max over the axes: exp never overflows."""
    peak = spec.add(ctx, x, ReduceOperation.MAX, keep_dims=True, suffix="max")
    shifted = _binary(ctx, x, peak, ElementWiseOperation.SUB, "sub")
    total = spec.add(ctx, _unary(ctx, shifted, UnaryOperation.EXP, "exp"), ReduceOperation.SUM)
    if not spec.keep_dims:
        # Drop the kept size-1 axes of the max by reducing over them once more.
        peak = spec.add(ctx, peak, ReduceOperation.MAX, suffix="squeeze")
    return _binary(ctx, _unary(ctx, total, UnaryOperation.LOG, "log"), peak, ElementWiseOperation.SUM, "add")


_EXPANSIONS = {"ReduceL1": _l1, "ReduceL2": _l2, "ReduceSumSquare": _sum_square, "ReduceLogSum": _log_sum,
               "ReduceLogSumExp": _log_sum_exp}
