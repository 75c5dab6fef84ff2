"""The channels-last CPU convolution (tactics/cpu_nhwc_conv.py) on HWC tensors, against the float64 direct
convolution of test_cpu_conv_tactics: plain, asymmetric padding, grouped/strided/dilated, depthwise, pointwise; the
output written into its NHWC memory; float16 computed in float32; LINEAR layers and 1-D/3-D ones refused."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conv_reference import conv_float64
from test_cpu_conv_tactics import CASES, conv_context

from engine.enums import TensorFormat
from engine.tactics.cpu_nhwc_conv import ChannelsLastGemm
from engine.tensor_formats import empty_in_format, is_channels_last

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
TACTIC = ChannelsLastGemm()
RNG = np.random.default_rng(31)
CASES_2D = [name for name, case in CASES.items() if len(case[3]) == 2]


def hwc_context(x, w, b, stride, dilation, pre, post, groups):
    ctx = conv_context(x, w, b, stride, dilation, pre, post, groups)
    return dataclasses.replace(ctx, input_formats=(HWC, LINEAR, None if b is None else LINEAR),
                               output_formats=(HWC,))


def hwc(array: np.ndarray) -> np.ndarray:
    view = empty_in_format(np, array.shape, array.dtype, HWC)
    view[...] = array
    return view


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name", CASES_2D)
def test_matches_the_float64_convolution_in_nhwc_memory(name, with_bias):
    shape, maps, groups, kernel, stride, dilation, pre, post = CASES[name]
    x = RNG.standard_normal(shape).astype(np.float32)
    w = RNG.standard_normal((maps, shape[1] // groups, *kernel)).astype(np.float32)
    b = RNG.standard_normal(maps).astype(np.float32) if with_bias else None
    ctx = hwc_context(x, w, b, stride, dilation, pre, post, groups)
    assert TACTIC.supports(ctx) is True
    out = empty_in_format(np, ctx.outputs[0].shape, np.float32, HWC)
    out[...] = np.nan
    TACTIC.run(TACTIC.prepare(ctx), [hwc(x), w, b], [out], np.empty(TACTIC.workspace_bytes(ctx), np.uint8), np)
    assert is_channels_last(out)
    np.testing.assert_allclose(out, conv_float64(x, w, b, stride, dilation, pre, post, groups), rtol=1e-4, atol=1e-4)


def test_float16_layers_compute_in_float32():
    x = RNG.standard_normal((2, 6, 7, 9)).astype(np.float16)
    w = (RNG.standard_normal((6, 3, 3, 3)) * 0.3).astype(np.float16)
    ctx = hwc_context(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 2)
    out = empty_in_format(np, ctx.outputs[0].shape, np.float16, HWC)
    TACTIC.run(TACTIC.prepare(ctx), [hwc(x), w, None], [out], None, np)
    want = conv_float64(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 2)
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=1e-2, atol=1e-2)


def test_refuses_linear_layers_and_non_2d_convolutions():
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert "channels-last build" in TACTIC.supports(conv_context(x, w, None, (1, 1), (1, 1), (0, 0), (0, 0), 1))
    x1 = RNG.standard_normal((1, 3, 11)).astype(np.float32)
    ctx = dataclasses.replace(conv_context(x1, w[..., 0], None, (1,), (1,), (0,), (0,), 1),
                              input_formats=(HWC, LINEAR, None), output_formats=(HWC,))
    assert TACTIC.supports(ctx) == "HWC tensors are 4-D: a 2-D convolution"
