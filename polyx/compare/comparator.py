"""The Comparator: compares a candidate runner's outputs with a reference's, tensor by tensor."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .statistics import DiffStats, TensorStats, differences, error_histogram
from .tolerance import Tolerances, check


@dataclass
class TensorComparison:
    name: str
    iteration: int
    reference_runner: str
    candidate_runner: str
    reference_shape: tuple[int, ...]
    candidate_shape: tuple[int, ...]
    reference_dtype: str
    candidate_dtype: str
    atol: float
    rtol: float
    check_error_stat: str
    passed: bool
    problem: str = ""                       # why the values could not be compared (shape mismatch)
    reference_stats: TensorStats | None = None
    candidate_stats: TensorStats | None = None
    absolute: DiffStats | None = None
    relative: DiffStats | None = None
    mismatches: int = 0
    size: int = 0
    min_atol: float = 0.0
    min_rtol: float = 0.0
    histogram: list[str] = field(default_factory=list)

    @property
    def max_absolute(self) -> float:
        return self.absolute.max if self.absolute else float("inf")

    @property
    def max_relative(self) -> float:
        return self.relative.max if self.relative else float("inf")


class Comparator:
    def __init__(self, tolerances: Tolerances | None = None, histograms: bool = False,
                 observer: Callable[[TensorComparison, np.ndarray, np.ndarray], None] | None = None):
        """`observer` sees both arrays of each compared tensor (the per-tensor pictures are drawn there, while
        the arrays exist)."""
        self.tolerances = tolerances or Tolerances()
        self.histograms = histograms
        self.observer = observer

    def compare_tensor(self, name: str, reference: np.ndarray, candidate: np.ndarray, iteration: int = 0,
                       runners: tuple[str, str] = ("reference", "candidate")) -> TensorComparison:
        atol, rtol = self.tolerances.for_tensor(name)
        reference, candidate = np.asarray(reference), np.asarray(candidate)
        result = TensorComparison(name=name, iteration=iteration, reference_runner=runners[0],
                                  candidate_runner=runners[1], reference_shape=tuple(reference.shape),
                                  candidate_shape=tuple(candidate.shape), reference_dtype=str(reference.dtype),
                                  candidate_dtype=str(candidate.dtype), atol=atol, rtol=rtol,
                                  check_error_stat=self.tolerances.check_error_stat, passed=False,
                                  reference_stats=TensorStats.of(reference), candidate_stats=TensorStats.of(candidate),
                                  size=int(reference.size))
        if reference.shape != candidate.shape:
            result.problem = f"shape mismatch: {runners[0]} {tuple(reference.shape)} vs {runners[1]} " \
                             f"{tuple(candidate.shape)}"
            return result
        absolute, relative = differences(reference, candidate)
        verdict = check(absolute, relative, atol, rtol, self.tolerances.check_error_stat)
        result.absolute, result.relative = DiffStats.of(absolute), DiffStats.of(relative)
        result.passed, result.mismatches = verdict.passed, verdict.mismatches
        result.min_atol, result.min_rtol = verdict.min_atol, verdict.min_rtol
        if self.histograms:
            result.histogram = error_histogram(absolute)
        if self.observer is not None:
            self.observer(result, reference, candidate)
        return result

    def compare(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], names: Iterable[str],
                iteration: int = 0, runners: tuple[str, str] = ("reference", "candidate"), fail_fast: bool = False,
                on_tensor: Callable[[], None] | None = None) -> list[TensorComparison]:
        """Compare the named tensors in order; with fail_fast, stop after the first failure."""
        results = []
        for name in names:
            result = self.compare_tensor(name, reference[name], candidate[name], iteration, runners)
            results.append(result)
            if on_tensor is not None:
                on_tensor()
            if fail_fast and not result.passed:
                break
        return results
