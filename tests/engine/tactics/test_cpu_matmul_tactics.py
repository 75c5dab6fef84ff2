"""Every CPU matrix-multiply and einsum tactic run directly against float64 NumPy, plus `supports` rejections."""
from __future__ import annotations

import numpy as np
import pytest

from engine.dtypes import from_numpy
from engine.enums import LayerType, MatrixOperation
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactics_for
from engine.tactics.cpu_matmul import ConstantWeightGemm, EinsumDirect, FlattenedGemm

RNG = np.random.default_rng(22)
NONE, TRANSPOSE, VECTOR = MatrixOperation.NONE, MatrixOperation.TRANSPOSE, MatrixOperation.VECTOR


def _context(a, b, op0, op1, bias=None, alpha=1.0, beta=1.0, constant=True):
    net = NetworkDefinition()
    dtype = from_numpy(a.dtype)
    inputs = [net.add_input("a", dtype, a.shape), net.add_constant(b.shape, b).get_output(0)]
    infos = [TensorInfo(a.shape, dtype), TensorInfo(b.shape, dtype, b if constant else None)]
    if bias is not None:
        inputs.append(net.add_constant(bias.shape, bias).get_output(0))
        infos.append(TensorInfo(bias.shape, dtype, bias))
    layer = net.add_layer(LayerType.MATRIX_MULTIPLY, inputs, {"op0": op0, "op1": op1, "alpha": alpha, "beta": beta})
    return TacticContext(layer, infos, [TensorInfo(layer.get_output(0).shape, dtype)])


def _reference(a, b, op0, op1, bias, alpha, beta):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 = a64.swapaxes(-1, -2) if op0 == TRANSPOSE else a64[..., None, :] if op0 == VECTOR else a64
    b64 = b64.swapaxes(-1, -2) if op1 == TRANSPOSE else b64[..., None] if op1 == VECTOR else b64
    y = alpha * np.matmul(a64, b64) + (0 if bias is None else beta * bias.astype(np.float64))
    y = y[..., 0] if op1 == VECTOR else y
    return y[..., 0, :] if op0 == VECTOR else y


CASES = [  # (a shape, b shape, op0, op1, bias shape, alpha, beta)
    ((2, 3, 4, 5), (5, 6), NONE, NONE, None, 1.0, 1.0),
    ((2, 3, 5, 4), (6, 5), TRANSPOSE, TRANSPOSE, None, 1.0, 1.0),
    ((3, 4, 5), (6, 5), NONE, TRANSPOSE, (6,), 0.5, 2.0),
    ((4, 5), (5, 6), NONE, NONE, (4, 1), 1.0, 0.0),
    ((3, 1, 4, 5), (2, 5, 6), NONE, NONE, None, 1.0, 1.0),
    ((5,), (2, 5, 3), VECTOR, NONE, None, 1.0, 1.0),
    ((2, 4, 5), (5,), NONE, VECTOR, None, 1.0, 1.0),
    ((2, 5), (5, 3), VECTOR, NONE, None, 1.0, 1.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("a_shape, b_shape, op0, op1, bias_shape, alpha, beta", CASES)
def test_every_supporting_tactic_matches_float64(a_shape, b_shape, op0, op1, bias_shape, alpha, beta, dtype):
    a, b = RNG.standard_normal(a_shape).astype(dtype), RNG.standard_normal(b_shape).astype(dtype)
    bias = None if bias_shape is None else RNG.standard_normal(bias_shape).astype(dtype)
    ctx = _context(a, b, op0, op1, bias, alpha, beta)
    want = _reference(a, b, op0, op1, bias, alpha, beta)
    tol = 1e-2 if dtype == np.float16 else 1e-5
    ran = 0
    for tactic in tactics_for(LayerType.MATRIX_MULTIPLY, "cpu"):
        if tactic.supports(ctx) is not True:
            continue
        out = np.full(ctx.outputs[0].shape, np.nan, dtype)
        tactic.run(tactic.prepare(ctx), [a, b, bias], [out], None, np)
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=tactic.name)
        ran += 1
    assert ran >= 2


def test_supports_rejections():
    a, b = np.zeros((2, 5, 4), np.float32), np.zeros((5, 6), np.float32)
    transposed_a = _context(a, b, TRANSPOSE, NONE)
    assert "transposed" in FlattenedGemm().supports(transposed_a)
    assert "constant" in ConstantWeightGemm().supports(_context(a.swapaxes(1, 2).copy(), b, NONE, NONE,
                                                                constant=False))
    batched_b = _context(np.zeros((2, 4, 5), np.float32), np.zeros((2, 5, 6), np.float32), NONE, NONE)
    assert "single matrix" in FlattenedGemm().supports(batched_b)
    ints = _context(np.zeros((4, 5), np.int32), np.zeros((5, 6), np.int32), NONE, NONE)
    assert "float" in ConstantWeightGemm().supports(ints)
    assert ConstantWeightGemm().workspace_bytes(transposed_a) == 0


@pytest.mark.parametrize("equation, shapes", [("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
                                              ("...j,j", [(2, 3, 4), (4,)])])
def test_einsum_tactics(equation, shapes):
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    net = NetworkDefinition()
    inputs = [net.add_input(f"x{i}", from_numpy(np.float32), a.shape) for i, a in enumerate(arrays)]
    layer = net.add_layer(LayerType.EINSUM, inputs, {"equation": equation})
    infos = [TensorInfo(a.shape, from_numpy(np.float32)) for a in arrays]
    ctx = TacticContext(layer, infos, [TensorInfo(layer.get_output(0).shape, from_numpy(np.float32))])
    want = np.einsum(equation, *[a.astype(np.float64) for a in arrays])
    tactics = tactics_for(LayerType.EINSUM, "cpu")
    assert any(isinstance(t, EinsumDirect) for t in tactics) and len(tactics) >= 2
    for tactic in tactics:
        out = np.empty(ctx.outputs[0].shape, np.float32)
        tactic.run(tactic.prepare(ctx), arrays, [out], None, np)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
