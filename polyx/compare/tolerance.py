"""Tolerance checks (Polygraphy's semantics).

`elemwise` (default): an element passes when its absolute difference <= atol OR its relative difference <= rtol;
the tensor passes when every element does. `max` / `mean` / `median`: the tensor passes when that statistic of
the absolute differences <= atol OR that statistic of the relative differences <= rtol. `quantile`: the same with
the `error_quantile` quantile (0.99: all but the worst 1% of elements must be within tolerance).
Defaults: atol = rtol = 1e-5, error quantile 0.99, as in Polygraphy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import PolyxError

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
CHECK_ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
DEFAULT_ERROR_QUANTILE = 0.99


@dataclass
class Tolerances:
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    per_output_atol: dict[str, float] = field(default_factory=dict)
    per_output_rtol: dict[str, float] = field(default_factory=dict)
    check_error_stat: str = "elemwise"
    error_quantile: float = DEFAULT_ERROR_QUANTILE  # read by check_error_stat "quantile" only

    def __post_init__(self) -> None:
        if self.check_error_stat not in CHECK_ERROR_STATS:
            raise PolyxError(f"check error stat must be one of {', '.join(CHECK_ERROR_STATS)}, "
                             f"got '{self.check_error_stat}'")
        if not 0.0 <= self.error_quantile <= 1.0:
            raise PolyxError(f"error quantile must be within [0, 1], got {self.error_quantile}")
        for value in (self.atol, self.rtol, *self.per_output_atol.values(), *self.per_output_rtol.values()):
            if not value >= 0:
                raise PolyxError(f"tolerances must be >= 0, got {value}")

    def for_tensor(self, name: str) -> tuple[float, float]:
        """(atol, rtol) for one tensor: its own values when given, else the global ones."""
        return self.per_output_atol.get(name, self.atol), self.per_output_rtol.get(name, self.rtol)

    def unknown_names(self, names: set[str]) -> list[str]:
        """Per-output tolerances that name no compared tensor (a likely typo)."""
        return sorted((set(self.per_output_atol) | set(self.per_output_rtol)) - names)


@dataclass
class Verdict:
    passed: bool
    mismatches: int          # elements failing both tolerances (elemwise), or 0/1 for a statistic check
    min_atol: float          # the smallest atol that would have passed with this rtol
    min_rtol: float          # the smallest rtol that would have passed with this atol


def check(absolute: np.ndarray, relative: np.ndarray, atol: float, rtol: float, stat: str,
          quantile: float = DEFAULT_ERROR_QUANTILE) -> Verdict:
    if absolute.size == 0:
        return Verdict(True, 0, 0.0, 0.0)
    if stat == "elemwise":
        abs_fail, rel_fail = absolute > atol, relative > rtol
        failing = abs_fail & rel_fail
        return Verdict(passed=not failing.any(), mismatches=int(failing.sum()),
                       min_atol=float(absolute[rel_fail].max()) if rel_fail.any() else 0.0,
                       min_rtol=float(relative[abs_fail].max()) if abs_fail.any() else 0.0)
    reduce = {"max": np.max, "mean": np.mean, "median": np.median,
              # "higher": no interpolation, so an inf error stays inf rather than becoming NaN
              "quantile": lambda errors: np.quantile(errors, quantile, method="higher")}[stat]
    abs_value, rel_value = float(reduce(absolute)), float(reduce(relative))
    passed = abs_value <= atol or rel_value <= rtol
    return Verdict(passed=passed, mismatches=0 if passed else 1, min_atol=0.0 if rel_value <= rtol else abs_value,
                   min_rtol=0.0 if abs_value <= atol else rel_value)
