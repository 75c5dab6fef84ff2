"""Masked softmax (LayerType.MASKED_SOFTMAX): softmax(scores + mask) along the last axis, the Add → Softmax pair
of a transformer's attention scores fused by a builder rule (passes/transformer_fusions.py) so the GPU reads the
scores and the mask once and writes the probabilities once (tactics/gpu_attention.py).

Inputs: scores (rank >= 2, floating) and an additive mask of the same type that broadcasts to the scores' shape
without enlarging it (BERT's (batch, 1, 1, keys) padding mask, GPT-2's (queries, keys) causal mask). params
`nan_to_zero`: probabilities that come out NaN (a row masked entirely with -inf) become 0, which is what the
IsNaN → Where guard of newer exports computes. float16 is computed in float32 and rounded once, as the unfused
Add (rounded to float16) → Softmax would, up to that one rounding of the sum.

The shape rule and the softmax are shared with the ATTENTION layer (ops/attention.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..enums import LayerType
from ..errors import EngineError
from .base import broadcast_shapes, register_layer
from .math_helpers import upcast_half


def check_flag(layer, key: str) -> bool:
    """A boolean param, validated (a plan is checked field by field before anything runs)."""
    value = layer.params.get(key, False)
    if not isinstance(value, bool):
        raise EngineError(f"layer '{layer.name}': params.{key} must be true or false, got {value!r:.40}")
    return value


def check_mask_shape(layer, mask_shape: tuple[int, ...] | None, scores_shape: tuple[int, ...] | None) -> None:
    """The mask must broadcast to the scores' shape without enlarging it: its rank is at most theirs and each of
    its dims is 1 or theirs (unknown dims, -1, are checked again when the shapes are bound)."""
    if mask_shape is None or scores_shape is None:
        return
    if len(mask_shape) > len(scores_shape):
        raise EngineError(f"layer '{layer.name}': the mask of shape {tuple(mask_shape)} has more dims than the "
                          f"scores {tuple(scores_shape)}")
    try:
        merged = broadcast_shapes(mask_shape, scores_shape)
    except EngineError:
        merged = None
    if merged is None or any(m != s and s >= 0 for m, s in zip(merged, scores_shape)):
        raise EngineError(f"layer '{layer.name}': the mask of shape {tuple(mask_shape)} does not broadcast to the "
                          f"scores of shape {tuple(scores_shape)} (each mask dim must be 1 or the scores' dim)")


def softmax_last_axis(scores: Any, nan_to_zero: bool, xp: Any) -> Any:
    """Softmax along the last axis with the row maximum subtracted first; a row of -inf gives NaN (0 with
    `nan_to_zero`), as Softmax (→ IsNaN → Where) does."""
    with np.errstate(invalid="ignore"):
        shifted = scores - xp.max(scores, axis=-1, keepdims=True)
        exp = xp.exp(shifted)
        probs = exp / xp.sum(exp, axis=-1, keepdims=True)
    return xp.where(xp.isnan(probs), 0, probs).astype(probs.dtype, copy=False) if nan_to_zero else probs


def _infer(layer, inputs):
    scores, mask = inputs[0], inputs[1]
    check_flag(layer, "nan_to_zero")
    if len(inputs) != 2 or mask is None:
        raise EngineError(f"layer '{layer.name}': MASKED_SOFTMAX takes two inputs (scores, mask)")
    if not scores.dtype.is_floating or mask.dtype != scores.dtype:
        raise EngineError(f"layer '{layer.name}': scores and mask must share one floating type, got "
                          f"{scores.dtype.value} and {mask.dtype.value}")
    if scores.shape is not None and len(scores.shape) < 1:
        raise EngineError(f"layer '{layer.name}': the scores must have at least one dim")
    check_mask_shape(layer, mask.shape, scores.shape)
    return [(scores.shape, scores.dtype)]


def _compute(layer, inputs, xp):
    scores, mask = inputs
    check_mask_shape(layer, tuple(mask.shape), tuple(scores.shape))
    work = upcast_half(scores, xp) + upcast_half(mask, xp)
    return [softmax_last_axis(work, check_flag(layer, "nan_to_zero"), xp).astype(scores.dtype, copy=False)]


register_layer(LayerType.MASKED_SOFTMAX, _infer, _compute)
