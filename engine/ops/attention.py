"""Scaled dot-product attention (LayerType.ATTENTION): softmax(q @ k^T * scale + mask) @ v, the MatMul → scale →
mask Add → Softmax → MatMul chain that transformer exports emit, fused by a builder rule
(passes/transformer_fusions.py) so the GPU never writes the (queries x keys) score matrix
(tactics/gpu_attention.py: a flash-attention kernel, and cuBLAS GEMMs around one fused softmax kernel;
tactics/gpu_cudnn_attention.py: cuDNN's fused flash attention).

Logical operands: q (..., Sq, D), k (..., Sk, D), v (..., Sk, Dv) of one floating type, one rank (3 or 4:
(batch, heads, ...) or (batch, ...)) and the same leading dims, and optionally an additive mask that broadcasts to
the scores (..., Sq, Sk) without enlarging them. Output (..., Sq, Dv) of q's type.
The layer's inputs are stored operands: logical q = transpose(input 0, q_perm), likewise k and v, and the stored
output is transpose(logical output, out_perm). That is how the rule absorbs the Transposes exporters put around
attention (heads moved in front of the sequence, K^T, and back): the kernels read and write through strides.

params: `scale` (a finite number: the Mul/Div constants of the chain multiplied together, wherever they stood),
`q_perm`, `k_perm`, `v_perm`, `out_perm` (permutations of the rank) and `nan_to_zero` (a bool; see
ops/masked_softmax.py). The reference computes in float32 for float16 (float64 stays float64): equal to the
unfused layers up to the roundings of their intermediates.
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


PERMS = ("q_perm", "k_perm", "v_perm", "out_perm")


def attention_perms(layer, rank: int) -> dict[str, tuple[int, ...]]:
    """The four permutations, validated (a plan is checked field by field before anything runs)."""
    perms = {}
    for key in PERMS:
        perm = layer.params.get(key)
        if not isinstance(perm, list) or sorted(perm) != list(range(rank)) or \
                any(isinstance(a, bool) for a in perm):
            raise EngineError(f"layer '{layer.name}': params.{key} must be a permutation of the {rank} axes, got "
                              f"{perm!r:.60}")
        perms[key] = tuple(perm)
    return perms


def permuted(shape, perm) -> tuple[int, ...]:
    return tuple(shape[a] for a in perm)


def logical_shapes(layer, q_shape, k_shape, v_shape) -> tuple[tuple[int, ...], ...]:
    """The logical q, k, v shapes of stored operand shapes (ranks checked first)."""
    shapes = {"q": tuple(q_shape), "k": tuple(k_shape), "v": tuple(v_shape)}
    ranks = {len(s) for s in shapes.values()}
    if len(ranks) != 1 or next(iter(ranks)) not in RANKS:
        raise EngineError(f"layer '{layer.name}': q, k and v must have one rank among {RANKS}, got "
                          + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))
    perms = attention_perms(layer, len(shapes["q"]))
    return tuple(permuted(shapes[name], perms[f"{name}_perm"]) for name in ("q", "k", "v"))


def attention_dims(layer, q_shape, k_shape, v_shape) -> tuple[tuple[int, ...], int, int, int, int]:
    """(leading dims, Sq, Sk, D, Dv) of the logical operands after checking that they fit together; -1 stays
    unknown."""
    q, k, v = logical_shapes(layer, q_shape, k_shape, v_shape)
    leading = []
    for dims in zip(q[:-2], k[:-2], v[:-2]):
        known = {d for d in dims if d >= 0}
        if len(known) > 1:
            raise EngineError(f"layer '{layer.name}': q {q}, k {k} and v {v} (as permuted) must share their "
                              "leading dims")
        leading.append(known.pop() if known else -1)
    for what, a, b in (("head dim of q and k", q[-1], k[-1]), ("key count of k and v", k[-2], v[-2])):
        if a >= 0 and b >= 0 and a != b:
            raise EngineError(f"layer '{layer.name}': the {what} differ ({a} and {b}; q {q}, k {k}, v {v} as "
                              "permuted)")
    return tuple(leading), q[-2], k[-2] if k[-2] >= 0 else v[-2], q[-1] if q[-1] >= 0 else k[-1], v[-1]


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
    return [(permuted(leading + (sq, dv), attention_perms(layer, len(q.shape))["out_perm"]), q.dtype)]


def _compute(layer, inputs, xp):
    q, k, v = inputs[:3]
    mask = inputs[3] if len(inputs) > 3 else None
    leading, sq, sk, _, _ = attention_dims(layer, q.shape, k.shape, v.shape)
    perms = attention_perms(layer, q.ndim)
    q, k, v = (xp.transpose(upcast_half(x, xp), perms[key]) for x, key in zip((q, k, v), PERMS))
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2)) * attention_scale(layer)
    if mask is not None:
        check_mask_shape(layer, tuple(mask.shape), leading + (sq, sk))
        scores = scores + upcast_half(mask, xp)
    probs = softmax_last_axis(scores, check_flag(layer, "nan_to_zero"), xp)
    out = xp.transpose(xp.matmul(probs, v), perms["out_perm"])
    return [xp.ascontiguousarray(out).astype(inputs[0].dtype, copy=False)]


register_layer(LayerType.ATTENTION, _infer, _compute)
