"""Summary statistics of a list of per-iteration times (NumPy on the whole list, no streaming estimates)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STAT_NAMES = ("min", "mean", "median", "p90", "p99", "max")


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """min/mean/median/p90/p99/max of the samples (percentiles by linear interpolation, NumPy's default)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        return dict.fromkeys(STAT_NAMES, 0.0)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"min": float(values.min()), "mean": float(values.mean()), "median": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(values.max())}
