"""Residual + layer normalization (LayerType.RESIDUAL_NORMALIZATION): LayerNorm(x + residual), the Add →
LayerNormalization pair every transformer block ends its sublayers with, fused by a builder rule
(passes/transformer_fusions.py) so the GPU reads both summands once and writes the result once
(tactics/gpu_rows.py, residual_layer_norm_rows).

Inputs: x, residual (same type; they broadcast as the Add did), scale, bias (either may be None, as for
NORMALIZATION). params: `axes` (the trailing axes normalized over) and `epsilon`, as NORMALIZATION's. Outputs:
the normalized sum, and — when the Add's result is read elsewhere too (a pre-LN block's next residual) — the sum
itself as a second output. The sum is rounded to the storage type before it is normalized, exactly as the unfused
Add stored it, so the result equals the unfused layers'.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..enums import LayerType
from ..errors import EngineError
from .base import broadcast_shapes, layer_impl, normalize_axis, register_layer


def normalized_axis_count(layer, rank: int) -> int:
    """How many trailing axes are normalized; the axes must be exactly the trailing ones."""
    axes = layer.params.get("axes")
    if not isinstance(axes, list) or not axes or not all(isinstance(a, int) and not isinstance(a, bool)
                                                         for a in axes):
        raise EngineError(f"layer '{layer.name}': params.axes must be a non-empty list of axes, got {axes!r:.60}")
    normalized = sorted({normalize_axis(a, rank, f"layer '{layer.name}' normalization axis") for a in axes})
    if normalized != list(range(rank - len(normalized), rank)):
        raise EngineError(f"layer '{layer.name}': axes {axes} are not the trailing axes of a rank-{rank} input")
    return len(normalized)


def _epsilon(layer) -> float:
    value = layer.params.get("epsilon")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
        raise EngineError(f"layer '{layer.name}': params.epsilon must be a finite number >= 0, got {value!r:.40}")
    return float(value)


def _normalization(layer) -> SimpleNamespace:
    """The NORMALIZATION layer this one ends with, for its reference kernel."""
    return SimpleNamespace(type=LayerType.NORMALIZATION, name=layer.name, precision=getattr(layer, "precision", None),
                           params={"axes": list(layer.params["axes"]), "epsilon": _epsilon(layer), "num_groups": 1})


def _infer(layer, inputs):
    if len(inputs) != 4 or inputs[0] is None or inputs[1] is None:
        raise EngineError(f"layer '{layer.name}': RESIDUAL_NORMALIZATION takes x, residual, scale, bias")
    x, residual = inputs[0], inputs[1]
    _epsilon(layer)
    if not x.dtype.is_floating or residual.dtype != x.dtype:
        raise EngineError(f"layer '{layer.name}': x and residual must share one floating type, got "
                          f"{x.dtype.value} and {residual.dtype.value}")
    shape = None if x.shape is None or residual.shape is None else broadcast_shapes(x.shape, residual.shape)
    if shape is not None:
        normalized_axis_count(layer, len(shape))
    outputs = int(layer.params.get("outputs", 1))
    if outputs not in (1, 2):
        raise EngineError(f"layer '{layer.name}': params.outputs must be 1 or 2, got {layer.params.get('outputs')!r}")
    return [(shape, x.dtype)] * outputs


def _compute(layer, inputs, xp):
    x, residual, scale, bias = inputs
    total = x + residual  # in the storage type, as the unfused Add stored it
    normalized_axis_count(layer, total.ndim)
    out = layer_impl(LayerType.NORMALIZATION).compute(_normalization(layer), [total, scale, bias], xp)[0]
    return [out, total][:int(layer.params.get("outputs", 1))]


register_layer(LayerType.RESIDUAL_NORMALIZATION, _infer, _compute)
