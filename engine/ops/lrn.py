"""Local response normalization across channels (LayerType.LRN; TensorRT ILRNLayer, no `add_*` method here).

Params `window_size`, `alpha`, `beta`, `k`: y = x / (k + alpha / window_size * sum(x[c'] ** 2)) ** beta, the sum
over channels c - floor((window_size - 1) / 2) .. c + ceil((window_size - 1) / 2) of axis 1 (clipped at the
edges), which is ONNX's definition and what TensorRT's parser passes through unchanged. float16 is computed in
float32. Build with `add_lrn`.

ONNX: LRN (size, alpha, beta, bias).
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer
from .math_helpers import upcast_half


def add_lrn(network, x, window_size: int, alpha: float, beta: float, k: float, name: str | None = None):
    """Add an LRN layer over axis 1 of `x`."""
    params = {"window_size": int(window_size), "alpha": float(alpha), "beta": float(beta), "k": float(k)}
    return network.add_layer(LayerType.LRN, [x], params, name=name)


def _infer(layer, inputs):
    x = inputs[0]
    if not x.dtype.is_floating:
        raise EngineError(f"LRN needs a floating-point input, got {x.dtype.value}")
    if len(x.shape) < 2:
        raise EngineError(f"LRN needs an (N, C, ...) input, got rank {len(x.shape)}")
    if int(layer.params["window_size"]) < 1:
        raise EngineError(f"LRN window size must be positive, got {layer.params['window_size']}")
    return [(x.shape, x.dtype)]


def _compute(layer, inputs, xp):
    x = inputs[0]
    size = int(layer.params["window_size"])
    before, after = (size - 1) // 2, size // 2
    work = upcast_half(x, xp)
    square = work * work
    channels = x.shape[1]
    pad = [(0, 0)] * x.ndim
    pad[1] = (before, after)
    padded = xp.pad(square, pad)
    # A loop over the (small) window offsets, each adding one shifted view: exact and vectorized.
    window_sum = xp.zeros_like(square)
    for offset in range(size):
        window_sum += padded[:, offset:offset + channels]
    denominator = (layer.params["k"] + layer.params["alpha"] / size * window_sum) ** layer.params["beta"]
    return [(work / denominator).astype(x.dtype, copy=False)]


register_layer(LayerType.LRN, _infer, _compute)


@onnx_op("LRN")
def import_lrn(ctx):
    x = ctx.input(0)
    if not x.dtype.is_floating:
        ctx.unsupported(f"LRN needs a floating-point input, got {x.dtype.value}", UnsupportedCategory.DTYPE)
    size = ctx.attr("size")
    if size is None or size < 1:
        ctx.unsupported(f"LRN needs a positive size, got {size}", UnsupportedCategory.OTHER)
    layer = add_lrn(ctx.network, x, size, ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0),
                    name=ctx.layer_name())
    return [layer.get_output(0)]
