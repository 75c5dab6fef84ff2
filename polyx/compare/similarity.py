"""Whole-tensor similarity beside the element errors: cosine similarity (direction, blind to scale) and PSNR
(error energy against the reference's peak), computed in float64 over positions finite on both sides."""
from __future__ import annotations

import math

import numpy as np


def cosine_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """1.0 for the same direction; 1.0 when both are all zero, 0.0 when only one is; NaN when nothing is finite."""
    ref, out = _finite_pairs(reference, candidate)
    if ref.size == 0:
        return math.nan
    norm_ref, norm_out = float(np.linalg.norm(ref)), float(np.linalg.norm(out))
    if norm_ref == 0 or norm_out == 0:
        return 1.0 if norm_ref == norm_out else 0.0
    return float(np.dot(ref / norm_ref, out / norm_out))


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """10 log10(peak^2 / MSE) in dB, peak = max |reference|; inf when the values are identical."""
    ref, out = _finite_pairs(reference, candidate)
    if ref.size == 0:
        return math.nan
    mse = float(np.mean((out - ref) ** 2))
    if mse == 0:
        return math.inf
    peak = float(np.max(np.abs(ref)))
    return -math.inf if peak == 0 else 10.0 * math.log10(peak * peak / mse)


def _finite_pairs(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference).astype(np.float64, copy=False).ravel()
    out = np.asarray(candidate).astype(np.float64, copy=False).ravel()
    keep = np.isfinite(ref) & np.isfinite(out)
    return (ref, out) if keep.all() else (ref[keep], out[keep])
