"""The host side of the GPU transformer tactics (tactics/gpu_attention.py and gpu_rows.py's residual LayerNorm)
run on the CPU: NumPy stands in for CuPy, and the launches (cuBLAS's strided-batched GEMM, the flash-attention,
masked-softmax and residual-LayerNorm kernels) are emulated here from their documented argument contracts
(kernels/attention.cu, gpu_kernels.cu) in float64. So the arguments, strides, workspace carving, operand staging
and output permutations the tactics pass are checked without a GPU; the CUDA kernels themselves are checked in
tests/gpu/test_attention_kernels.py, on a GPU."""
from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from engine.dtypes import from_numpy
from engine.enums import LayerType
from engine.ir import Node
from engine.ops.attention import PERMS
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id
from engine.tactics.base import stable_tactic_id

RNG = np.random.default_rng(17)


def strided(array, offset, shape, strides):
    """The elements a kernel addresses at array[offset + sum(index * stride)]."""
    flat = array.reshape(-1)[offset:]
    return as_strided(flat, shape, [s * flat.itemsize for s in strides])


@dataclass(frozen=True)
class Operand:  # backends/cublas_gemm.Operand's fields
    array: Any
    rows: int
    cols: int
    transposed: bool
    batch_stride: int


def gemm(a, b, c, batch, compute_type, alpha=1.0, beta=0.0):
    def matrix(op, i):
        m = strided(op.array, i * op.batch_stride, (op.rows, op.cols), (op.cols, 1)).astype(np.float64)
        return m.T if op.transposed else m

    for i in range(batch):
        target = strided(c.array, i * c.batch_stride, (c.rows, c.cols), (c.cols, 1))
        target[...] = alpha * matrix(a, i) @ matrix(b, i) + beta * target


def softmax_rows(s, nan_to_zero):
    with np.errstate(invalid="ignore"):
        e = np.exp(s - s.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    return np.where(np.isnan(p), 0, p) if nan_to_zero else p


def flash_attention(grid, block, args, shared_mem=0):
    q, k, v, mask, out, heads, sq, sk, d, dv, scale = args[:11]
    qs, ks, vs, os_ = (tuple(int(x) for x in args[11 + 4 * i:15 + 4 * i]) for i in range(4))
    has_mask, ms, nan_to_zero = int(args[27]), tuple(int(x) for x in args[28:32]), int(args[32])
    assert block == (128,) and grid[1] == -(-int(sq) // 16)
    for bh in range(grid[0]):
        b, h = divmod(bh, int(heads))

        def view(array, strides, rows, cols, b=b, h=h):
            return strided(array, b * strides[0] + h * strides[1], (rows, cols), strides[2:])

        s = view(q, qs, sq, d).astype(np.float64) @ view(k, ks, sk, d).astype(np.float64).T * float(scale)
        if has_mask:
            s = s + view(mask, ms, sq, sk)
        view(out, os_, sq, dv)[...] = softmax_rows(s, nan_to_zero) @ view(v, vs, sk, dv)


def masked_softmax_rows(grid, block, args, shared_mem=0):
    x, mask, has_mask, y, length, n1, n2 = args[:7]
    m, nan_to_zero = tuple(int(s) for s in args[7:11]), int(args[11])
    length, n1, n2 = int(length), int(n1), int(n2)
    assert shared_mem == (block[0] + length) * 4
    for r in range(grid[0]):
        i0, i1, i2 = r // (n1 * n2), (r // n2) % n1, r % n2
        s = x.reshape(-1)[r * length:(r + 1) * length].astype(np.float64)
        if has_mask:
            s = s + strided(mask, i0 * m[0] + i1 * m[1] + i2 * m[2], (length,), (m[3],))
        y.reshape(-1)[r * length:(r + 1) * length] = softmax_rows(s, nan_to_zero)


KERNELS = {"flash_attention": flash_attention, "masked_softmax_rows": masked_softmax_rows}  # by entry point base


@pytest.fixture(autouse=True)
def emulated_launches(monkeypatch):
    """NumPy stand-ins for the modules the tactics import inside `run` (they need CuPy)."""
    def kernel(module, name):
        base = name.replace("_f32_to_f16", "").rsplit("_", 1)[0]
        assert (module, base) in (("attention", "flash_attention"), ("gpu_kernels", "masked_softmax_rows")), name
        return KERNELS[base]

    def block_size(length):
        return 1 << max(5, min(10, math.ceil(math.log2(max(length, 1)))))

    nvrtc = types.SimpleNamespace(kernel=kernel, block_size=block_size, GRID_YZ_LIMIT=65535)
    cublas = types.SimpleNamespace(COMPUTE_32F=68, Operand=Operand, gemm=gemm)
    monkeypatch.setitem(sys.modules, "engine.backends.nvrtc", nvrtc)
    monkeypatch.setitem(sys.modules, "engine.backends.cublas_gemm", cublas)


def attention_reference(q, k, v, mask, scale, nan_to_zero):
    s = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2) * scale
    return softmax_rows(s if mask is None else s + mask, nan_to_zero) @ v


BSHD = [0, 2, 1, 3]
CASES = {  # (leading, Sq, Sk, D, Dv, mask shape or None, {perm key: perm})
    "heads_last": ((2, 3), 5, 6, 4, 7, (2, 1, 1, 6), {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD,
                                                      "out_perm": BSHD}),
    "k_transposed": ((2, 2), 4, 9, 8, 8, (4, 9), {"k_perm": [0, 1, 3, 2]}),
    "rank3": ((3,), 5, 5, 4, 4, (3, 5, 5), {"k_perm": [0, 2, 1]}),
    "no_mask_fully_masked_row": ((1, 2), 3, 4, 2, 2, "row", {}),
}


@pytest.mark.parametrize("name", ["gpu:attention:flash_attention", "gpu:attention:cublas_softmax"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("nan_to_zero", [False, True])
def test_attention_tactics_pass_what_the_kernels_expect(name, case, nan_to_zero) -> None:
    lead, sq, sk, d, dv, mask_shape, layout = CASES[case]
    identity = list(range(len(lead) + 2))
    perms = {key: layout.get(key, identity) for key in PERMS}
    q, k, v = (RNG.standard_normal(lead + shape).astype(np.float32) for shape in ((sq, d), (sk, d), (sk, dv)))
    if mask_shape == "row":
        mask = np.zeros((1, 1, sq, sk), np.float32)
        mask[..., 1, :] = -np.inf
    else:
        mask = RNG.standard_normal(mask_shape).astype(np.float32)
    stored = [np.ascontiguousarray(x.transpose(np.argsort(perms[key]))) for x, key in zip((q, k, v), PERMS)]
    layer = Node(LayerType.ATTENTION, "attention", {"scale": 0.5, "nan_to_zero": nan_to_zero, **perms})
    want = attention_reference(q, k, v, mask, 0.5, nan_to_zero).transpose(perms["out_perm"])
    tactic = tactic_by_id(stable_tactic_id(name))
    ctx = TacticContext(layer, [TensorInfo(a.shape, from_numpy(a.dtype)) for a in stored + [mask]],
                        [TensorInfo(want.shape, from_numpy(np.dtype(np.float32)))], backend="gpu")
    assert tactic.supports(ctx) is True
    out = np.full(want.shape, 7.0, np.float32)
    nbytes = tactic.workspace_bytes(ctx)
    tactic.run(tactic.prepare(ctx), stored + [mask], [out], np.zeros(nbytes, np.uint8) if nbytes else None, np)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, equal_nan=True)


IDENTITY_PERMS = {key: [0, 1, 2, 3] for key in PERMS}


@pytest.mark.parametrize("name", ["gpu:attention:flash_attention", "gpu:attention:cublas_softmax"])
def test_attention_over_no_keys_writes_zeros_without_a_launch(name) -> None:
    """softmax over zero keys weighs nothing: q (1, 2, 3, 4) @ no keys -> zeros (1, 2, 3, 5), as MatMul gives."""
    q = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    k, v = np.zeros((1, 2, 0, 4), np.float32), np.zeros((1, 2, 0, 5), np.float32)
    layer = Node(LayerType.ATTENTION, "attention", {"scale": 1.0, "nan_to_zero": False, **IDENTITY_PERMS})
    tactic = tactic_by_id(stable_tactic_id(name))
    ctx = TacticContext(layer, [TensorInfo(a.shape, from_numpy(a.dtype)) for a in (q, k, v)],
                        [TensorInfo((1, 2, 3, 5), from_numpy(np.dtype(np.float32)))], backend="gpu")
    out = np.full((1, 2, 3, 5), 7.0, np.float32)
    tactic.run(tactic.prepare(ctx), [q, k, v], [out], None, np)
    np.testing.assert_array_equal(out, np.zeros((1, 2, 3, 5)))


def test_each_attention_tactic_names_its_own_size_limit() -> None:
    def context(d, sk):
        shapes = ((1, 1, 2, d), (1, 1, sk, d), (1, 1, sk, d))
        layer = Node(LayerType.ATTENTION, "attention", {"scale": 1.0, "nan_to_zero": False, **IDENTITY_PERMS})
        return TacticContext(layer, [TensorInfo(shape, from_numpy(np.dtype(np.float32))) for shape in shapes],
                             [TensorInfo((1, 1, 2, d), from_numpy(np.dtype(np.float32)))], backend="gpu")

    flash, cublas = (tactic_by_id(stable_tactic_id(f"gpu:attention:{name}"))
                     for name in ("flash_attention", "cublas_softmax"))
    assert flash.supports(context(129, 4)) == "head dims 129 and 129 must be at most 128"
    assert cublas.supports(context(129, 4)) is True
    assert flash.supports(context(8, 8193)) is True
    assert cublas.supports(context(8, 8193)) == "8193 keys exceed the softmax kernel's row of 8192"
    assert flash.supports(context(8, -1)) == cublas.supports(context(8, -1)) == "the shapes must be concrete"


def test_masked_softmax_tactic_passes_what_the_kernel_expects() -> None:
    scores = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    mask = RNG.standard_normal((3, 1, 5)).astype(np.float32)
    layer = Node(LayerType.MASKED_SOFTMAX, "masked_softmax", {"nan_to_zero": False})
    tactic = tactic_by_id(stable_tactic_id("gpu:masked_softmax:masked_softmax_rows"))
    ctx = TacticContext(layer, [TensorInfo(a.shape, from_numpy(a.dtype)) for a in (scores, mask)],
                        [TensorInfo(scores.shape, from_numpy(scores.dtype))], backend="gpu")
    assert tactic.supports(ctx) is True
    out = np.full(scores.shape, 7.0, np.float32)
    tactic.run(tactic.prepare(ctx), [scores, mask], [out], None, np)
    np.testing.assert_allclose(out, softmax_rows(scores.astype(np.float64) + mask, False), rtol=1e-6, atol=1e-7)


def residual_layer_norm_rows(grid, block, args, shared_mem=0):
    x, r, scale, has_scale, bias, has_bias, y, total, has_sum, length, eps = args
    length = int(length)
    assert shared_mem == (block[0] + length) * 4
    rows = (x.reshape(-1) + r.reshape(-1)).astype(x.dtype).astype(np.float64).reshape(grid[0], length)
    if has_sum:
        total.reshape(-1)[:] = rows.reshape(-1)
    mean = rows.mean(-1, keepdims=True)
    normalized = (rows - mean) / np.sqrt(((rows - mean) ** 2).mean(-1, keepdims=True) + float(eps))
    normalized = normalized * (scale if has_scale else 1) + (bias if has_bias else 0)
    y.reshape(-1)[:] = normalized.reshape(-1)


@pytest.mark.parametrize("outputs", [1, 2])
@pytest.mark.parametrize("constant_scale", [True, False])
def test_residual_layer_norm_tactic_passes_what_the_kernel_expects(monkeypatch, outputs, constant_scale) -> None:
    monkeypatch.setitem(sys.modules, "engine.backends.nvrtc", types.SimpleNamespace(
        kernel=lambda module, name: residual_layer_norm_rows, block_size=lambda n: 32))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(asarray=np.asarray))
    x, r = (RNG.standard_normal((2, 3, 6)).astype(np.float32) for _ in range(2))
    gamma, beta = RNG.uniform(0.5, 1.5, 6).astype(np.float32), RNG.standard_normal(6).astype(np.float32)
    layer = Node(LayerType.RESIDUAL_NORMALIZATION, "residual_norm", {"axes": [2], "epsilon": 1e-5,
                                                                      "outputs": outputs})
    tactic = tactic_by_id(stable_tactic_id("gpu:residual_normalization:residual_layer_norm_rows"))
    f32 = from_numpy(np.dtype(np.float32))
    ctx = TacticContext(layer, [TensorInfo(x.shape, f32), TensorInfo(r.shape, f32),
                                TensorInfo(gamma.shape, f32, gamma if constant_scale else None),
                                TensorInfo(beta.shape, f32, beta)], [TensorInfo(x.shape, f32)] * outputs,
                        backend="gpu")
    assert tactic.supports(ctx) is True
    outs = [np.full(x.shape, 7.0, np.float32) for _ in range(outputs)]
    nbytes = tactic.workspace_bytes(ctx)
    tactic.run(tactic.prepare(ctx), [x, r, gamma, beta], outs, np.zeros(nbytes, np.uint8) if nbytes else None, np)
    s = x.astype(np.float64) + r
    mean = s.mean(-1, keepdims=True)
    want = (s - mean) / np.sqrt(((s - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(outs[0], want, rtol=1e-5, atol=1e-5)
    if outputs == 2:
        np.testing.assert_array_equal(outs[1], x + r)
