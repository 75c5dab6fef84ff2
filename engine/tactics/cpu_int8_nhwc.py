"""The float64 INT8 convolution of a channels-last build: the HWC layers of BuilderConfig.channels_last on the CPU
(and the GPU's fallback for them, through CuPy).

Same arithmetic as cpu_int8.py's LINEAR tactic, only the accumulation reads the input channels-last: the int8
input's NHWC memory (engine/tensor_formats.py) is padded into a float64 NHWC buffer, its windows (N, OH, OW, KH,
KW, C) are contracted with the weights laid out (G, KH, KW, C/G, M/G) once in `prepare`. Every partial sum of int8
products is an integer below 2**53, so float64 holds it exactly whatever the summation order: the accumulators
equal the LINEAR tactic's, and the epilogue (scales, bias, residual, activation, requantization) is the base
class's own code on an NCHW-shaped view of the result, so the outputs are bit-identical to the LINEAR tactic's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..enums import LayerType
from ..tensor_formats import FROM_CHANNELS_LAST, STRIDED_FORMATS, storage_order
from .base import TacticContext, stable_tactic_id
from .cpu_conv import conv_geometry
from .cpu_int8 import Int8Convolution
from .nhwc_windows import channels_last_refusal, grouped_hwc_weights, nhwc_windows
from .registry import register_tactic


class ChannelsLastInt8Convolution(Int8Convolution):
    """Registered for both backends: on the GPU (CuPy, float64) it is the fallback every HWC INT8 convolution
    has (grouped ones, activations the IMMA epilogue lacks), as the reference kernels are for float layers
    (`is_fallback`: the channels-last pass does not form a GPU chain for it alone)."""

    formats = STRIDED_FORMATS  # weights and bias stay LINEAR constants; the activations are HWC
    is_fallback = True

    def __init__(self, backend: str) -> None:
        super().__init__(LayerType.CONVOLUTION, backend)
        self.name = f"{backend}:convolution:int8_nhwc"
        self.id = stable_tactic_id(self.name)
        self.heuristic_rank = 9  # ahead of the float64 LINEAR INT8 tactic (10), behind the GPU IMMA ones (5)

    def supports(self, ctx: TacticContext) -> bool | str:
        return channels_last_refusal(ctx) or super().supports(ctx)

    def prepare(self, ctx: TacticContext) -> dict[str, Any]:
        state = super().prepare(ctx)
        w = state["weights"]  # (M, C/G, KH, KW)
        state["weights"] = np.ascontiguousarray(grouped_hwc_weights(w, int(ctx.layer.params["num_groups"])))
        return state

    def accumulate(self, layer: Any, x: Any, weights: Any, xp: Any) -> Any:
        """The exact int32 sums as float64, returned as an NCHW-shaped view of NHWC memory."""
        groups, kh, kw, per_group, maps_per_group = weights.shape
        g = conv_geometry(layer, tuple(x.shape), (groups * maps_per_group, per_group, kh, kw))
        padded = xp.zeros((g.batch, *g.padded_sizes, g.channels), xp.float64)
        windows = nhwc_windows(padded, storage_order(x), g, xp)
        (oh, ow) = g.out_sizes
        if groups == 1:
            depth = kh * kw * g.channels
            result = windows.reshape(g.batch * oh * ow, depth) @ weights.reshape(depth, g.maps)
        else:
            grouped = windows.reshape(g.batch, oh, ow, kh, kw, groups, per_group)
            path = {"optimize": True} if xp is np else {}  # NumPy's unoptimized einsum loops in Python order
            result = xp.einsum("nhwijgc,gijcm->nhwgm", grouped, weights, **path)
        return result.reshape(g.batch, oh, ow, g.maps).transpose(FROM_CHANNELS_LAST)


for _backend in ("cpu", "gpu"):
    register_tactic(ChannelsLastInt8Convolution(_backend))
