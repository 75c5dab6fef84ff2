"""Statistics of one tensor and of the differences between two, computed in float64.

Relative difference is |candidate - reference| / |reference| (Polygraphy's definition): where the reference is
0 it is 0 when the values agree and inf otherwise. Positions where both sides hold the same NaN or infinity
count as equal; a NaN or infinity on one side only is an infinite difference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class TensorStats:
    mean: float
    std: float
    min: float
    min_index: tuple[int, ...]
    max: float
    max_index: tuple[int, ...]
    median: float
    nan_count: int
    inf_count: int
    size: int

    @classmethod
    def of(cls, array: np.ndarray) -> TensorStats:
        values = np.asarray(array).astype(np.float64, copy=False)
        if values.size == 0:
            return cls(math.nan, math.nan, math.nan, (), math.nan, (), math.nan, 0, 0, 0)
        finite = np.isfinite(values)
        nan_count = int(np.isnan(values).sum())
        inf_count = int(values.size - finite.sum() - nan_count)
        usable = values[finite] if not finite.all() else values.ravel()
        if usable.size == 0:
            return cls(math.nan, math.nan, math.nan, (), math.nan, (), math.nan, nan_count, inf_count, values.size)
        masked_low = np.where(finite, values, np.inf)
        masked_high = np.where(finite, values, -np.inf)
        low, high = int(np.argmin(masked_low)), int(np.argmax(masked_high))
        return cls(mean=float(usable.mean()), std=float(usable.std()), min=float(values.flat[low]),
                   min_index=_index(low, values.shape), max=float(values.flat[high]),
                   max_index=_index(high, values.shape), median=float(np.median(usable)), nan_count=nan_count,
                   inf_count=inf_count, size=int(values.size))


@dataclass
class DiffStats:
    """Statistics of an error array (absolute or relative); max_index locates the worst element."""

    mean: float
    median: float
    max: float
    max_index: tuple[int, ...]
    percentiles: dict[float, float]

    @classmethod
    def of(cls, errors: np.ndarray) -> DiffStats:
        if errors.size == 0:
            return cls(0.0, 0.0, 0.0, (), {p: 0.0 for p in PERCENTILES})
        flat = errors.ravel()
        worst = int(np.argmax(flat))
        ranks = np.percentile(flat, PERCENTILES, method="higher")  # no interpolation: inf stays inf, never NaN
        return cls(mean=float(flat.mean()), median=float(np.percentile(flat, 50, method="higher")),
                   max=float(flat[worst]), max_index=_index(worst, errors.shape),
                   percentiles={p: float(v) for p, v in zip(PERCENTILES, ranks)})


def differences(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(absolute, relative) differences, float64, same shape as the inputs."""
    ref = np.asarray(reference).astype(np.float64, copy=False)
    out = np.asarray(candidate).astype(np.float64, copy=False)
    same = (ref == out) | (np.isnan(ref) & np.isnan(out))
    with np.errstate(invalid="ignore", over="ignore"):
        absolute = np.where(same, 0.0, np.abs(out - ref))
    absolute[np.isnan(absolute)] = np.inf
    magnitude = np.abs(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(absolute == 0, 0.0, absolute / np.where(magnitude == 0, 1.0, magnitude))
    relative[(magnitude == 0) & (absolute > 0)] = np.inf
    relative[~np.isfinite(magnitude) & (absolute > 0)] = np.inf
    return absolute, relative


def error_histogram(errors: np.ndarray, width: int = 40) -> list[str]:
    """ASCII histogram of error magnitudes by decade (errors span orders of magnitude, so decades read best)."""
    flat = errors.ravel()
    if flat.size == 0:
        return []
    rows: list[tuple[str, int]] = [("== 0", int((flat == 0).sum()))]
    nonzero = flat[(flat > 0) & np.isfinite(flat)]
    if nonzero.size:
        smallest, hi = math.floor(math.log10(nonzero.min())), math.floor(math.log10(nonzero.max()))
        lo = max(smallest, hi - 11)  # at most 12 rows; the first one gathers everything smaller
        decades = np.clip(np.floor(np.log10(nonzero)).astype(int), lo, hi)
        counts = np.bincount(decades - lo, minlength=hi - lo + 1)
        for offset, count in enumerate(counts):
            decade = lo + offset
            label = f"< 1e{decade + 1}" if offset == 0 and smallest < lo else f"[1e{decade}, 1e{decade + 1})"
            rows.append((label, int(count)))
    rows.append(("inf / NaN", int((~np.isfinite(flat)).sum())))
    rows = [row for row in rows if row[1]] or rows[:1]
    peak = max(count for _, count in rows) or 1
    label_width = max(len(label) for label, _ in rows)
    return [f"{label:>{label_width}} | {'#' * max(1 if count else 0, round(width * count / peak)):<{width}} {count}"
            for label, count in rows]


def _index(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()
