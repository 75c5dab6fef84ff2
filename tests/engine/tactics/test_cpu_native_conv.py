"""The compiled depthwise tactic: matches a float64 depthwise convolution, is chosen where it applies, and says
why it cannot run when no compiler is available."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.backends import native
from engine.dtypes import from_numpy
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext
from engine.tactics.cpu_native_conv import NativeDepthwise

RNG = np.random.default_rng(5)
needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="no C compiler on this machine")


def _depthwise_reference(x, w, b, stride, pad, dilation):
    n, c, h, wd = x.shape
    maps, _, kh, kw = w.shape
    m = maps // c
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])])
    oh = (h + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, maps, oh, ow))
    for o in range(maps):
        for ky in range(kh):
            for kx in range(kw):
                rows = slice(ky * dilation[0], ky * dilation[0] + stride[0] * (oh - 1) + 1, stride[0])
                cols = slice(kx * dilation[1], kx * dilation[1] + stride[1] * (ow - 1) + 1, stride[1])
                y[:, o] += w[o, 0, ky, kx] * xp[:, o // m, rows, cols]
    return y + b.astype(np.float64)[None, :, None, None]


def _context(x, w, b, stride, pad, dilation):
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", from_numpy(x.dtype), x.shape), w.shape[0], w.shape[2:], w, b)
    layer.num_groups, layer.stride_nd, layer.dilation_nd = x.shape[1], list(stride), list(dilation)
    layer.pre_padding, layer.post_padding = list(pad), list(pad)
    dtype = from_numpy(x.dtype)
    inputs = [TensorInfo(x.shape, dtype), TensorInfo(w.shape, dtype, w), TensorInfo(b.shape, dtype, b)]
    return TacticContext(layer, inputs, [TensorInfo(layer.get_output(0).shape, dtype)])


@needs_compiler
@pytest.mark.parametrize("shape,multiplier,kernel,stride,pad,dilation", [
    ((2, 16, 14, 13), 1, (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 8, 15, 15), 1, (3, 3), (2, 2), (1, 1), (1, 1)),
    ((2, 4, 9, 11), 2, (5, 5), (2, 1), (2, 2), (1, 1)),
    ((1, 3, 10, 10), 1, (3, 3), (1, 3), (2, 0), (2, 2)),
    ((1, 2, 4, 4), 3, (3, 3), (3, 3), (0, 0), (1, 1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_matches_float64_depthwise(shape, multiplier, kernel, stride, pad, dilation, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    w = RNG.standard_normal((shape[1] * multiplier, 1, *kernel)).astype(dtype)
    b = RNG.standard_normal(shape[1] * multiplier).astype(dtype)
    ctx = _context(x, w, b, stride, pad, dilation)
    tactic = NativeDepthwise()
    assert tactic.supports(ctx) is True
    out = np.full(ctx.outputs[0].shape, np.nan, dtype)
    tactic.run(tactic.prepare(ctx), [x, w, b], [out], np.empty(tactic.workspace_bytes(ctx), np.uint8), np)
    tol = 1e-5 if dtype == np.float32 else 2e-2
    np.testing.assert_allclose(out, _depthwise_reference(x, w, b, stride, pad, dilation), rtol=tol, atol=tol)


def test_rejects_what_it_cannot_run():
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)
    grouped = _context(x, RNG.standard_normal((4, 2, 3, 3)).astype(np.float32), np.zeros(4, np.float32),
                       (1, 1), (1, 1), (1, 1))
    grouped.layer.num_groups = 2
    assert "not a depthwise" in NativeDepthwise().supports(grouped)
    x64 = x.astype(np.float64)
    w64 = RNG.standard_normal((4, 1, 3, 3))
    assert "float32 only" in NativeDepthwise().supports(_context(x64, w64, np.zeros(4), (1, 1), (1, 1), (1, 1)))


def test_missing_compiler_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.raises(native.NativeUnavailable, match="no C compiler"):
        native._build("depthwise_conv2d")


def test_unwritable_cache_is_a_reason_not_a_crash(monkeypatch, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("POLYX_CACHE_DIR", str(blocker))  # the cache would have to live under a regular file
    with pytest.raises(native.NativeUnavailable, match="unavailable"):
        native._build("depthwise_conv2d")
