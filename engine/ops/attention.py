"""Scaled dot-product attention (LayerType.ATTENTION): softmax(q @ k^T * scale + mask) @ v, the MatMul → scale →
mask Add → Softmax → MatMul chain that transformer exports emit, fused by a builder rule
(passes/transformer_fusions.py) so the GPU never writes the (queries x keys) score matrix
(tactics/gpu_attention.py: a flash-attention kernel, and cuBLAS GEMMs around one fused softmax kernel).

Inputs: q (..., Sq, D), k (..., Sk, D) — or (..., D, Sk) with `k_transposed`, the K^T exporters compute with a
Transpose — v (..., Sk, Dv), and optionally an additive mask that broadcasts to the scores (..., Sq, Sk) without
enlarging them. q, k and v have one floating type, the same rank (3 or 4: (batch, heads, ...) or (batch, ...))
and the same leading dims. Output: (..., Sq, Dv) of q's type.

params: `scale` (a finite number: the Mul/Div constants of the chain multiplied together, wherever they stood),
`k_transposed` and `nan_to_zero` (bools; see ops/masked_softmax.py for the latter).
The reference computes in float32 for float16 (float64 stays float64): equal to the unfused layers up to the
roundings of their intermediates.
"""
from __future__ import annotations

import math

from ..enums import LayerType
from ..errors import EngineError
from .base import register_layer
from .masked_softmax import check_flag, check_mask_shape, softmax_last_axis
from .math_helpers import upcast_half

RANKS = (3, 4)


def attention_scale(layer) -> float:
    value = layer.params.get("scale")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise EngineError(f"layer '{layer.name}': params.scale must be a finite number, got {value!r:.40}")
    return float(value)


def attention_dims(layer, q_shape, k_shape, v_shape) -> tuple[tuple[int, ...], int, int, int, int]:
    """(leading dims, Sq, Sk, D, Dv) after checking that the operands fit together; -1 stays unknown."""
    transposed = check_flag(layer, "k_transposed")
    shapes = {"q": tuple(q_shape), "k": tuple(k_shape), "v": tuple(v_shape)}
    ranks = {len(s) for s in shapes.values()}
    if len(ranks) != 1 or ranks.pop() not in RANKS:
        raise EngineError(f"layer '{layer.name}': q, k and v must have one rank among {RANKS}, got "
                          + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))
    q, k, v = shapes["q"], shapes["k"], shapes["v"]
    kd, ks = (k[-2], k[-1]) if transposed else (k[-1], k[-2])
    leading = []
    for dims in zip(q[:-2], k[:-2], v[:-2]):
        known = {d for d in dims if d >= 0}
        if len(known) > 1:
            raise EngineError(f"layer '{layer.name}': q {q}, k {k} and v {v} must share their leading dims")
        leading.append(known.pop() if known else -1)
    for what, a, b in (("head dim of q and k", q[-1], kd), ("key count of k and v", ks, v[-2])):
        if a >= 0 and b >= 0 and a != b:
            raise EngineError(f"layer '{layer.name}': the {what} differ ({a} and {b}; q {q}, k {k}, v {v}"
                              f"{', k given transposed' if transposed else ''})")
    return tuple(leading), q[-2], ks if ks >= 0 else v[-2], q[-1] if q[-1] >= 0 else kd, v[-1]


def _infer(layer, inputs):
    if len(inputs) not in (3, 4) or any(x is None for x in inputs[:3]):
        raise EngineError(f"layer '{layer.name}': ATTENTION takes q, k, v and an optional mask")
    q, k, v = inputs[:3]
    mask = inputs[3] if len(inputs) > 3 else None
    attention_scale(layer)
    check_flag(layer, "nan_to_zero")
    dtypes = {x.dtype for x in inputs if x is not None}
    if len(dtypes) != 1 or not q.dtype.is_floating:
        raise EngineError(f"layer '{layer.name}': q, k, v (and the mask) must share one floating type, got "
                          f"{sorted(d.value for d in dtypes)}")
    if any(x.shape is None for x in (q, k, v)):
        return [(None, q.dtype)]
    leading, sq, sk, _, dv = attention_dims(layer, q.shape, k.shape, v.shape)
    if mask is not None:
        check_mask_shape(layer, mask.shape, leading + (sq, sk))
    return [(leading + (sq, dv), q.dtype)]


def _compute(layer, inputs, xp):
    q, k, v = inputs[:3]
    mask = inputs[3] if len(inputs) > 3 else None
    leading, sq, sk, _, _ = attention_dims(layer, q.shape, k.shape, v.shape)
    kt = upcast_half(k, xp)
    kt = kt if check_flag(layer, "k_transposed") else xp.swapaxes(kt, -1, -2)
    scores = xp.matmul(upcast_half(q, xp), kt) * attention_scale(layer)
    if mask is not None:
        check_mask_shape(layer, tuple(mask.shape), leading + (sq, sk))
        scores = scores + upcast_half(mask, xp)
    probs = softmax_last_axis(scores, check_flag(layer, "nan_to_zero"), xp)
    return [xp.matmul(probs, upcast_half(v, xp)).astype(q.dtype, copy=False)]


register_layer(LayerType.ATTENTION, _infer, _compute)
