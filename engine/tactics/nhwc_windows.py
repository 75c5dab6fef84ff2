"""What the channels-last convolution tactics share: the HWC-only refusal, the (G, KH, KW, C/G, M/G) weight layout
and the zero-padded NHWC windows (N, OH, OW, KH, KW, C) their GEMMs contract.

The float convolution (cpu_nhwc_conv.py) and the float64 INT8 one (cpu_int8_nhwc.py) read their input the same
way; one copy keeps their window arithmetic (padding, strides, dilations) from drifting apart. The GPU INT8 ones
(gpu_int8_nhwc.py, gpu_int8_cublaslt.py) share the refusal only: their windows are an NVRTC im2col.
"""
from __future__ import annotations

from typing import Any

from .base import TacticContext
from .cpu_conv import ConvGeometry


def channels_last_refusal(ctx: TacticContext) -> str | None:
    """Why a channels-last convolution tactic cannot run `ctx`'s layer before its own checks (None: it may)."""
    if not ctx.channels_last:
        return "it runs the HWC layers of a channels-last build (BuilderConfig.channels_last)"
    if ctx.inputs[0].shape is None or len(ctx.inputs[0].shape) != 4:
        return "HWC tensors are 4-D: a 2-D convolution"
    return None


def grouped_hwc_weights(w: Any, groups: int) -> Any:
    """(M, C/G, KH, KW) weights -> (G, KH, KW, C/G, M/G): the windows' channel order, one matrix per group."""
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:]).transpose(0, 3, 4, 2, 1)


def nhwc_windows(padded: Any, x_nhwc: Any, g: ConvGeometry, xp: Any) -> Any:
    """Copy `x_nhwc` (N, H, W, C) into the zero-filled `padded` (N, *g.padded_sizes, C) at g.pre (cropped to what
    the windows read) and return the read-only windows (N, OH, OW, KH, KW, C) over it, without a copy."""
    source, target = [], []
    for size, pre, total in zip(g.in_sizes, g.pre, g.padded_sizes):
        lo, hi = max(0, -pre), min(size, total - pre)
        source.append(slice(lo, hi))
        target.append(slice(lo + pre, hi + pre))
    padded[(slice(None), *target, slice(None))] = x_nhwc[(slice(None), *source, slice(None))]
    (kh, kw), (oh, ow) = g.kernel, g.out_sizes
    n_stride, h_stride, w_stride, c_stride = padded.strides
    shape = (g.batch, oh, ow, kh, kw, g.channels)
    strides = (n_stride, h_stride * g.strides[0], w_stride * g.strides[1], h_stride * g.dilations[0],
               w_stride * g.dilations[1], c_stride)
    if xp.__name__ == "numpy":  # CuPy's as_strided has no writeable flag
        return xp.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(padded, shape, strides)
