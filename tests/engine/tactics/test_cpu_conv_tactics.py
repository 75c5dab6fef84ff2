"""Every CPU convolution tactic run directly (prepare + run into preallocated outputs) against a float64 NumPy
convolution, plus what `supports` rejects and the workspace each tactic claims."""
from __future__ import annotations

import numpy as np
import pytest
from conv_reference import conv_float64

from engine.dtypes import from_numpy
from engine.enums import LayerType, PaddingMode
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactics_for
from engine.tactics.cpu_conv import Depthwise, Im2colGemm, PointwiseGemm, ShiftGemm, WinogradF2x2, conv_geometry

RNG = np.random.default_rng(21)
CONV_TACTICS = [t for t in tactics_for(LayerType.CONVOLUTION, "cpu")]


def conv_context(x, w, b, stride, dilation, pre, post, groups, mode=PaddingMode.EXPLICIT_ROUND_DOWN):
    net = NetworkDefinition()
    xt = net.add_input("x", from_numpy(x.dtype), x.shape)
    layer = net.add_convolution_nd(xt, w.shape[0], w.shape[2:], w, b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding, layer.padding_mode = list(pre), list(post), mode
    dtype = from_numpy(x.dtype)
    inputs = [TensorInfo(x.shape, dtype), TensorInfo(w.shape, dtype, w),
              None if b is None else TensorInfo(b.shape, dtype, b)]
    return TacticContext(layer, inputs, [TensorInfo(layer.get_output(0).shape, dtype)])


def _run(tactic, ctx, x, w, b):
    out = np.full(ctx.outputs[0].shape, np.nan, dtype=x.dtype)
    workspace = np.empty(tactic.workspace_bytes(ctx), np.uint8)
    tactic.run(tactic.prepare(ctx), [x, w, b], [out], workspace, np)
    return out


CASES = {  # name: (x shape, K, groups, kernel, stride, dilation, pre, post)
    "3x3": ((2, 4, 9, 8), 6, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
    "3x3_odd_unpadded": ((1, 4, 7, 7), 5, 1, (3, 3), (1, 1), (1, 1), (0, 0), (0, 0)),
    "3x3_asym_pad": ((1, 3, 6, 5), 4, 1, (3, 3), (1, 1), (1, 1), (2, 0), (0, 1)),
    "grouped_strided_dilated": ((2, 4, 9, 8), 6, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1)),
    "depthwise": ((2, 6, 7, 9), 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
    "depthwise_s2_multiplier2": ((2, 6, 7, 9), 12, 6, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)),
    "depthwise_5x5_dilated_s3": ((1, 4, 11, 10), 4, 4, (5, 5), (3, 2), (2, 1), (2, 0), (1, 3)),
    "pointwise": ((2, 8, 5, 6), 4, 1, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0)),
    "pointwise_grouped_strided": ((2, 8, 5, 6), 4, 2, (1, 1), (2, 2), (1, 1), (0, 0), (0, 0)),
    "1d": ((1, 3, 11), 5, 1, (3,), (1,), (2,), (2,), (0,)),
    "3d": ((1, 4, 5, 6, 4), 4, 2, (2, 3, 2), (1, 2, 1), (1, 1, 1), (1, 0, 1), (0, 1, 1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name", CASES)
def test_every_supporting_tactic_matches_float64_reference(name, with_bias, dtype):
    shape, maps, groups, kernel, stride, dilation, pre, post = CASES[name]
    x = RNG.standard_normal(shape).astype(dtype)
    w = RNG.standard_normal((maps, shape[1] // groups, *kernel)).astype(dtype)
    b = RNG.standard_normal(maps).astype(dtype) if with_bias else None
    ctx = conv_context(x, w, b, stride, dilation, pre, post, groups)
    want = conv_float64(x, w, b, stride, dilation, pre, post, groups)
    ran = []
    for tactic in CONV_TACTICS:
        if tactic.supports(ctx) is True:
            np.testing.assert_allclose(_run(tactic, ctx, x, w, b), want, rtol=1e-4, atol=1e-4, err_msg=tactic.name)
            ran.append(tactic.name)
    assert len(ran) >= 3, ran  # reference + im2col + shift at least


def test_float16_layers_compute_in_float32():
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float16)
    w = (RNG.standard_normal((4, 1, 3, 3)) * 0.3).astype(np.float16)
    want = conv_float64(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 4)
    ctx = conv_context(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 4)
    for tactic in CONV_TACTICS:
        if tactic.supports(ctx) is True:
            got = _run(tactic, ctx, x, w, None)
            assert got.dtype == np.float16
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3, err_msg=tactic.name)
    x1 = RNG.standard_normal((1, 4, 8, 8)).astype(np.float16)
    w1 = RNG.standard_normal((6, 4, 3, 3)).astype(np.float16)
    ctx = conv_context(x1, w1, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(_run(WinogradF2x2(), ctx, x1, w1, None),
                               conv_float64(x1, w1, None, (1, 1), (1, 1), (1, 1), (1, 1), 1), rtol=5e-3, atol=5e-3)


def test_same_padding_modes():
    x = RNG.standard_normal((1, 3, 8, 7)).astype(np.float32)
    w = RNG.standard_normal((3, 1, 3, 3)).astype(np.float32)
    for mode, pre, post in ((PaddingMode.SAME_UPPER, (0, 1), (1, 1)), (PaddingMode.SAME_LOWER, (1, 1), (0, 1))):
        ctx = conv_context(x, w, None, (2, 2), (1, 1), (0, 0), (0, 0), 3, mode)
        want = conv_float64(x, w, None, (2, 2), (1, 1), pre, post, 3)
        for tactic in (Im2colGemm(), ShiftGemm(), Depthwise()):
            np.testing.assert_allclose(_run(tactic, ctx, x, w, None), want, rtol=1e-5, atol=1e-5)


def test_supports_rejects_what_it_cannot_run():
    x = np.zeros((1, 4, 6, 6), np.float32)
    w3 = np.zeros((4, 4, 3, 3), np.float32)
    strided = conv_context(x, w3, None, (2, 2), (1, 1), (1, 1), (1, 1), 1)
    assert "stride" in WinogradF2x2().supports(strided)
    assert "1x1" in PointwiseGemm().supports(strided)
    assert "depthwise" in Depthwise().supports(strided)
    grouped = conv_context(x, np.zeros((4, 2, 3, 3), np.float32), None, (1, 1), (1, 1), (1, 1), (1, 1), 2)
    assert "grouped" in WinogradF2x2().supports(grouped)
    padded_1x1 = conv_context(x, np.zeros((4, 4, 1, 1), np.float32), None, (1, 1), (1, 1), (1, 1), (0, 0), 1)
    assert "padded" in PointwiseGemm().supports(padded_1x1)
    runtime_kernel = conv_context(x, w3, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    runtime_kernel.inputs[1] = TensorInfo(w3.shape, runtime_kernel.inputs[1].dtype, None)
    for tactic in (Im2colGemm(), ShiftGemm(), WinogradF2x2()):
        assert "constant" in tactic.supports(runtime_kernel)
    ints = conv_context(x.astype(np.int32), w3.astype(np.int32), None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    assert "float" in Im2colGemm().supports(ints)


def test_workspace_sizes_are_what_the_buffers_need():
    x = np.zeros((2, 8, 10, 12), np.float32)
    w = np.zeros((16, 8, 3, 3), np.float32)
    ctx = conv_context(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    g = conv_geometry(ctx.layer, x.shape, w.shape)
    # im2col: one sample's padded image (8x12x14) + the column matrix (8*9 x 10*12), float32, 64-byte aligned.
    assert Im2colGemm().workspace_bytes(ctx) == 8 * 12 * 14 * 4 + 8 * 9 * 120 * 4
    # Winograd: padded tiles image, 16 row- and 16 column-transformed planes, the GEMM output, 8 partial sums and
    # the even-sized output (tiles 5x6).
    tiles = 5 * 6
    assert WinogradF2x2().workspace_bytes(ctx) == 4 * (2 * 8 * 12 * 14 + 2 * 16 * 2 * 8 * tiles + 16 * 2 * 16 * tiles
                                                       + 8 * 2 * 16 * tiles + 2 * 16 * 10 * 12)
    pointwise = conv_context(x, np.zeros((16, 8, 1, 1), np.float32), None, (1, 1), (1, 1), (0, 0), (0, 0), 1)
    assert PointwiseGemm().workspace_bytes(pointwise) == 0
    half = conv_context(x.astype(np.float16), w.astype(np.float16), None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    staging = (2 * 8 * 10 * 12 + 2 * 16 * 10 * 12) * 4  # float32 copies of the float16 input and output
    assert Im2colGemm().workspace_bytes(half) == Im2colGemm().workspace_bytes(ctx) + staging
    assert g.padded_sizes == (12, 14)


def test_runs_without_workspace_and_with_a_larger_batch_than_built_for():
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    ctx = conv_context(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 4)
    big = RNG.standard_normal((3, 4, 6, 6)).astype(np.float32)
    want = conv_float64(big, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 4)
    for tactic in (Depthwise(), Im2colGemm(), ShiftGemm()):
        state = tactic.prepare(ctx)
        out = np.empty(want.shape, np.float32)
        tactic.run(state, [big, w, None], [out], np.empty(tactic.workspace_bytes(ctx), np.uint8), np)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
        tactic.run(state, [big, w, None], [out], None, np)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
