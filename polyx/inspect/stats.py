"""Summary statistics of one tensor, shared by `inspect data` and the weights views of `inspect model`."""
from __future__ import annotations

from typing import Any

import numpy as np

STAT_NAMES = ("mean", "std", "min", "max", "median")


def dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


def has_numeric_values(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind in "biuf" or dtype.name.startswith(("bfloat", "float8"))


def tensor_stats(array: Any) -> dict[str, Any]:
    """shape, dtype and mean/std/min/max/median in float64 over the finite values, plus NaN/inf counts.

    Statistics skip NaN and inf so one bad value does not hide the distribution; the counts say they are there.
    Non-numeric tensors (strings) and empty ones get None statistics.
    """
    array = np.asarray(array)
    report: dict[str, Any] = {"shape": list(array.shape), "dtype": dtype_name(array.dtype), "size": int(array.size),
                              "nbytes": int(array.nbytes)}
    report.update(dict.fromkeys(STAT_NAMES))
    report.update(nan_count=0, inf_count=0)
    if not has_numeric_values(array.dtype) or array.size == 0:
        return report
    values = array.astype(np.float64).ravel()
    finite = values[np.isfinite(values)]
    report.update(nan_count=int(np.isnan(values).sum()), inf_count=int(np.isinf(values).sum()))
    if finite.size:
        report.update(mean=float(finite.mean()), std=float(finite.std()), min=float(finite.min()),
                      max=float(finite.max()), median=float(np.median(finite)))
    return report


def non_finite_text(stats: dict[str, Any]) -> str:
    parts = [f"{stats[key]} {label}" for key, label in (("nan_count", "NaN"), ("inf_count", "inf")) if stats[key]]
    return ", ".join(parts) or "-"
