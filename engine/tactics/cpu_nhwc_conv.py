"""A CPU convolution that computes in channels-last order, for the HWC layers of BuilderConfig.channels_last.

The other CPU convolution tactics reshape their NCHW buffers (LINEAR only). This one reads the input as N, H, W, C
(for an HWC tensor that is its own memory, engine/tensor_formats.py), pads it into an NHWC scratch buffer, views the
windows of it (N, OH, OW, KH, KW, C) and contracts them with the weights laid out (KH, KW, C/G, M) once in
`prepare`: one GEMM for ungrouped convolutions, per-tap multiply-adds for depthwise ones, an einsum over the groups
otherwise; the result, N, OH, OW, M, is the HWC output's memory. 2-D convolutions only (HWC tensors are 4-D).
"""
from __future__ import annotations

import numpy as np

from ..tensor_formats import STRIDED_FORMATS, TO_CHANNELS_LAST
from .base import TacticContext, stable_tactic_id
from .cpu_conv import ConvGeometry, ConvTactic, KernelGeometry
from .nhwc_windows import channels_last_refusal, grouped_hwc_weights, nhwc_windows
from .registry import register_tactic


class ChannelsLastGemm(ConvTactic):
    name = "cpu:conv:nhwc_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 15  # ahead of the reference kernel on HWC layers (the other CPU convolutions run LINEAR only)
    formats = STRIDED_FORMATS  # the weights and bias stay LINEAR constants; the activations must be HWC

    def supports(self, ctx: TacticContext) -> bool | str:
        return channels_last_refusal(ctx) or super().supports(ctx)

    def prepare_weights(self, w: np.ndarray, g: KernelGeometry) -> dict:
        return {"w": np.ascontiguousarray(grouped_hwc_weights(w, g.groups))}

    def scratch(self, g: ConvGeometry, dtype) -> list:
        return [((g.batch, *g.padded_sizes, g.channels), dtype)]

    def convolve(self, state, g: ConvGeometry, x, y, buffers, xp) -> None:
        (padded,) = buffers
        padded.fill(0)
        windows = nhwc_windows(padded, x.transpose(TO_CHANNELS_LAST), g, np)
        (kh, kw), (oh, ow) = g.kernel, g.out_sizes
        w = state["w"]  # (G, KH, KW, C/G, M/G)
        if g.groups == 1:
            cols = windows.reshape(g.batch * oh * ow, kh * kw * g.channels)  # the one copy: im2col, NHWC order
            result = cols @ w.reshape(kh * kw * g.channels, g.maps)
        elif g.channels == g.groups:  # depthwise: per tap, a scaled slice accumulated (no GEMM to make)
            result = np.zeros((g.batch, oh, ow, g.groups, g.maps // g.groups), padded.dtype)
            for i in range(kh):
                for j in range(kw):
                    result += windows[:, :, :, i, j, :, None] * w[:, i, j, 0, :]
        else:
            grouped = windows.reshape(g.batch, oh, ow, kh, kw, g.groups, g.channels // g.groups)
            result = np.einsum("nhwijgc,gijcm->nhwgm", grouped, w, optimize=True)
        result = result.reshape(g.batch, oh, ow, g.maps)
        if state["bias"] is not None:
            result += state["bias"]
        y.transpose(TO_CHANNELS_LAST)[...] = result


register_tactic(ChannelsLastGemm())
