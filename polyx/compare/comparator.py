"""The Comparator: compares a candidate runner's outputs with a reference's, tensor by tensor.

How a tensor passes: `compare_func` "simple" checks the tolerances (tolerance.py); "indices" checks that index
lists agree within `index_tolerance` positions (index_check.py); a user's function (user_compare.py) decides per
iteration. With `check_shapes` off, a candidate whose shape differs but holds as many elements is reshaped to the
reference's shape (Polygraphy's `--no-shape-check`), said in the comparison's note.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import PolyxError
from .index_check import check_indices
from .similarity import cosine_similarity, psnr
from .statistics import DiffStats, TensorStats, differences, error_histogram
from .tolerance import Tolerances, check
from .user_compare import UserCompareFunc

COMPARE_FUNCS = ("simple", "indices")


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
    cosine_similarity: float = math.nan
    psnr: float = math.nan
    compare_func: str = "simple"            # simple | indices | the user's script
    error_quantile: float = 0.99            # the quantile of check_error_stat "quantile"
    index_tolerance: int = 0
    note: str = ""                          # e.g. the reshape of --no-shape-check
    verdict_detail: str = ""                # why indices or a user's function failed the tensor
    candidate_name: str = ""                # the candidate's own name when it was paired with a differing name

    @property
    def max_absolute(self) -> float:
        return self.absolute.max if self.absolute else float("inf")

    @property
    def max_relative(self) -> float:
        return self.relative.max if self.relative else float("inf")


class Comparator:
    def __init__(self, tolerances: Tolerances | None = None, histograms: bool = False, compare_func: str = "simple",
                 index_tolerance: int = 0, check_shapes: bool = True, user_func: UserCompareFunc | None = None,
                 observer: Callable[[TensorComparison, np.ndarray, np.ndarray], None] | None = None):
        """`observer` sees both arrays of each compared tensor (the per-tensor pictures are drawn there, while
        the arrays exist)."""
        if compare_func not in COMPARE_FUNCS:
            raise PolyxError(f"compare func must be one of {', '.join(COMPARE_FUNCS)}, got '{compare_func}'")
        if index_tolerance < 0:
            raise PolyxError(f"index tolerance must be >= 0, got {index_tolerance}")
        self.tolerances = tolerances or Tolerances()
        self.histograms = histograms
        self.compare_func = compare_func
        self.index_tolerance = int(index_tolerance)
        self.check_shapes = check_shapes
        self.user_func = user_func
        self.observer = observer

    def compare_tensor(self, name: str, reference: np.ndarray, candidate: np.ndarray, iteration: int = 0,
                       runners: tuple[str, str] = ("reference", "candidate"),
                       user_verdict: bool | None = None) -> TensorComparison:
        atol, rtol = self.tolerances.for_tensor(name)
        reference, candidate = np.asarray(reference), np.asarray(candidate)
        result = TensorComparison(name=name, iteration=iteration, reference_runner=runners[0],
                                  candidate_runner=runners[1], reference_shape=tuple(reference.shape),
                                  candidate_shape=tuple(candidate.shape), reference_dtype=str(reference.dtype),
                                  candidate_dtype=str(candidate.dtype), atol=atol, rtol=rtol,
                                  check_error_stat=self.tolerances.check_error_stat, passed=False,
                                  reference_stats=TensorStats.of(reference), candidate_stats=TensorStats.of(candidate),
                                  size=int(reference.size), error_quantile=self.tolerances.error_quantile,
                                  index_tolerance=self.index_tolerance,
                                  compare_func=self.user_func.label if self.user_func else self.compare_func)
        if reference.shape != candidate.shape:
            if self.check_shapes or reference.size != candidate.size:
                result.problem = f"shape mismatch: {runners[0]} {tuple(reference.shape)} vs {runners[1]} " \
                                 f"{tuple(candidate.shape)}"
                if not self.check_shapes:
                    result.problem += " (different element counts, so no reshape can match them)"
                return result
            result.note = f"{runners[1]}'s shape {tuple(candidate.shape)} reshaped to {tuple(reference.shape)} " \
                          "(--no-shape-check)"
            candidate = candidate.reshape(reference.shape)
        absolute, relative = differences(reference, candidate)
        verdict = check(absolute, relative, atol, rtol, self.tolerances.check_error_stat,
                        self.tolerances.error_quantile)
        result.absolute, result.relative = DiffStats.of(absolute), DiffStats.of(relative)
        result.min_atol, result.min_rtol = verdict.min_atol, verdict.min_rtol
        result.cosine_similarity, result.psnr = cosine_similarity(reference, candidate), psnr(reference, candidate)
        if user_verdict is not None:
            result.passed, result.mismatches = user_verdict, 0 if user_verdict else 1
            result.verdict_detail = "" if user_verdict else "the compare function failed it"
        elif self.compare_func == "indices":
            indices = check_indices(reference, candidate, self.index_tolerance)
            result.passed, result.mismatches, result.verdict_detail = (indices.passed, indices.mismatches,
                                                                       indices.first_problem)
        else:
            result.passed, result.mismatches = verdict.passed, verdict.mismatches
        if self.histograms:
            result.histogram = error_histogram(absolute)
        if self.observer is not None:
            self.observer(result, reference, candidate)
        return result

    def compare(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], names: Iterable[str],
                iteration: int = 0, runners: tuple[str, str] = ("reference", "candidate"), fail_fast: bool = False,
                on_tensor: Callable[[], None] | None = None) -> list[TensorComparison]:
        """Compare the named tensors in order; with fail_fast, stop after the first failure."""
        names = list(names)
        verdicts = self.user_func.verdicts(reference, candidate, names) if self.user_func else {}
        results = []
        for name in names:
            result = self.compare_tensor(name, reference[name], candidate[name], iteration, runners,
                                         user_verdict=verdicts.get(name))
            results.append(result)
            if on_tensor is not None:
                on_tensor()
            if fail_fast and not result.passed:
                break
        return results
