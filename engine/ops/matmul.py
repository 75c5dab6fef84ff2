"""Matrix multiply (LayerType.MATRIX_MULTIPLY) and ONNX MatMul, Gemm.

Params are those of `NetworkDefinition.add_matrix_multiply` (op0, op1: NONE | TRANSPOSE | VECTOR; batch dims
broadcast as in NumPy matmul), extended so a Gemm is one layer and one GEMM call: optional params `alpha`
(default 1) and `beta` (default 1) and an optional third input `bias`, giving alpha * op0(A) @ op1(B) + beta * bias
(bias broadcast to the result). VECTOR treats that operand's last dim as a vector: the matching result dim is
dropped, which is how ONNX MatMul's 1-D operands are expressed.
"""
from __future__ import annotations

from typing import Any

from ..dtypes import DataType
from ..enums import LayerType, MatrixOperation
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, broadcast_shapes, onnx_op, register_layer

MATMUL_TYPES = (DataType.FLOAT, DataType.HALF, DataType.BF16, DataType.DOUBLE,
                DataType.INT32, DataType.INT64, DataType.UINT32,
                DataType.UINT64)


def _as_matrix(shape: tuple[int, ...], op: MatrixOperation, is_first: bool) -> tuple[int, ...]:
    if op == MatrixOperation.VECTOR:
        return (*shape[:-1], 1, shape[-1]) if is_first else (*shape, 1)
    if len(shape) < 2:
        raise EngineError(f"a matrix operand needs rank >= 2, got shape {shape} (use MatrixOperation.VECTOR)")
    if op == MatrixOperation.TRANSPOSE:
        return (*shape[:-2], shape[-1], shape[-2])
    return shape


def _agree(a: int, b: int) -> bool:
    return a < 0 or b < 0 or a == b


def _infer_matmul(layer, inputs: list[TensorInfo | None]):
    op0, op1 = MatrixOperation(layer.params["op0"]), MatrixOperation(layer.params["op1"])
    a, b = inputs[0], inputs[1]
    sa, sb = _as_matrix(a.shape, op0, True), _as_matrix(b.shape, op1, False)
    if not _agree(sa[-1], sb[-2]):
        raise EngineError(f"inner dims differ: {a.shape} ({op0.value}) x {b.shape} ({op1.value})")
    shape = (*broadcast_shapes(sa[:-2], sb[:-2]), sa[-2], sb[-1])
    if op1 == MatrixOperation.VECTOR:
        shape = shape[:-1]
    if op0 == MatrixOperation.VECTOR:
        shape = shape[:-2] + shape[-1:] if op1 != MatrixOperation.VECTOR else shape[:-1]
    if len(inputs) > 2 and inputs[2] is not None:
        shape = broadcast_shapes(shape, inputs[2].shape)
    return [(shape, a.dtype)]


def apply_matrix_op(x: Any, op: MatrixOperation, is_first: bool) -> Any:
    """The operand as the matrix (stack) the product reads: a view, never a copy."""
    if op == MatrixOperation.VECTOR:
        return x[..., None, :] if is_first else x[..., None]
    if op == MatrixOperation.TRANSPOSE:
        return x.swapaxes(-1, -2)
    return x


def drop_vector_dims(y: Any, op0: MatrixOperation, op1: MatrixOperation) -> Any:
    if op1 == MatrixOperation.VECTOR:
        y = y[..., 0]
    if op0 == MatrixOperation.VECTOR:
        y = y[..., 0, :] if op1 != MatrixOperation.VECTOR else y[..., 0]
    return y


def _compute_matmul(layer, inputs, xp):
    p = layer.params
    op0, op1 = MatrixOperation(p["op0"]), MatrixOperation(p["op1"])
    a, b = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    dtype = a.dtype
    if dtype == xp.float16:
        a, b = a.astype(xp.float32), b.astype(xp.float32)
        bias = None if bias is None else bias.astype(xp.float32)
    y = drop_vector_dims(xp.matmul(apply_matrix_op(a, op0, True), apply_matrix_op(b, op1, False)), op0, op1)
    alpha, beta = p.get("alpha", 1.0), p.get("beta", 1.0)
    if alpha != 1:
        y = y * xp.asarray(alpha, dtype=y.dtype)
    if bias is not None and beta != 0:
        y = y + (bias if beta == 1 else bias * xp.asarray(beta, dtype=y.dtype))
    return [y.astype(dtype, copy=False)]


register_layer(LayerType.MATRIX_MULTIPLY, _infer_matmul, _compute_matmul)


def _check(ctx, *tensors):
    for t in tensors:
        if t is not None and t.dtype not in MATMUL_TYPES:
            ctx.unsupported(f"input '{t.name}' has data type {t.dtype.value}, which {ctx.op_type} does not take",
                            UnsupportedCategory.DTYPE)


@onnx_op("MatMul")
def import_matmul(ctx):
    a, b = ctx.input(0), ctx.input(1)
    _check(ctx, a, b)
    ops = [MatrixOperation.VECTOR if t.shape is not None and len(t.shape) == 1 else MatrixOperation.NONE
           for t in (a, b)]
    return [ctx.network.add_matrix_multiply(a, ops[0], b, ops[1], name=ctx.layer_name()).get_output(0)]


@onnx_op("Gemm")
def import_gemm(ctx):
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    _check(ctx, a, b, c)
    for t in (a, b):
        if t.shape is None or len(t.shape) != 2:
            ctx.unsupported(f"Gemm input '{t.name}' must be a matrix", UnsupportedCategory.OTHER)
    params = {"op0": MatrixOperation.TRANSPOSE if ctx.attr("transA", 0) else MatrixOperation.NONE,
              "op1": MatrixOperation.TRANSPOSE if ctx.attr("transB", 0) else MatrixOperation.NONE,
              "alpha": float(ctx.attr("alpha", 1.0)), "beta": float(ctx.attr("beta", 1.0))}
    inputs = [a, b] if c is None else [a, b, c]
    return [ctx.network.add_layer(LayerType.MATRIX_MULTIPLY, inputs, params, name=ctx.layer_name()).get_output(0)]
