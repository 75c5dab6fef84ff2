"""The scripting API's Comparator and CompareFunc (Polygraphy's names), on polyx's own run and compare code:
`Comparator.run` infers with each runner on the same inputs; `Comparator.compare_accuracy` compares the results
pairwise with a compare function and returns an AccuracyResult that is true when everything passed and prints
the same report lines as `polyx run`."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..compare import Comparator as TensorComparator
from ..compare import TensorComparison, Tolerances
from ..compare.postprocess import Postprocess, apply_postprocess, parse_postprocess
from ..compare.run_comparison import RunnerOutputs, compare_iterations, pair_near_miss_names
from ..compare.tolerance import DEFAULT_ATOL, DEFAULT_ERROR_QUANTILE, DEFAULT_RTOL
from ..compare.user_compare import UserCompareFunc
from ..errors import PolyxError
from ..run_session import RunResult, run_runner
from ..runners import Runner
from .data_loader import DataLoader

Feeds = dict[str, np.ndarray]


class RunResults(list):
    """[RunnerOutputs (runner, iterations, inference_ms)] in the order of the runners, and the inputs used."""

    def __init__(self, outputs: list[RunnerOutputs], feeds: list[Feeds]):
        super().__init__(outputs)
        self.feeds = feeds


class AccuracyResult:
    """The comparisons of compare_accuracy; bool() is True when every one passed."""

    def __init__(self, run_results: RunResults, comparisons: list[TensorComparison], notes: list[str],
                 reference: str):
        self.run_results, self.comparisons, self.notes, self.reference = run_results, comparisons, notes, reference

    def __bool__(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    def report(self, verbose: int = 0) -> list[str]:
        """The lines `polyx run` prints for these comparisons, ending with `RESULT: PASSED|FAILED (...)`."""
        from ..report.text import format_run_result

        names = list(dict.fromkeys(c.name for c in self.comparisons))
        result = RunResult(feeds=self.run_results.feeds, outputs=list(self.run_results), reference=self.reference,
                           comparisons=self.comparisons, notes=self.notes, model_outputs=names)
        return format_run_result(result, verbose=verbose)


def _tolerance(value: float | Mapping[str, float] | None, default: float) -> tuple[float, dict[str, float]]:
    """Polygraphy's tolerance argument: a number, or {output: number} where "" is the default."""
    if value is None:
        return default, {}
    if isinstance(value, Mapping):
        per_output = {name: float(v) for name, v in value.items() if name}
        return float(value.get("", default)), per_output
    return float(value), {}


class CompareFunc:
    """Compare functions for Comparator.compare_accuracy."""

    @staticmethod
    def simple(atol: float | Mapping[str, float] | None = None, rtol: float | Mapping[str, float] | None = None,
               check_shapes: bool = True, check_error_stat: str = "elemwise",
               error_quantile: float = DEFAULT_ERROR_QUANTILE) -> TensorComparator:
        """Tolerances (defaults 1e-5): an element passes when abs diff <= atol or rel diff <= rtol."""
        default_atol, per_atol = _tolerance(atol, DEFAULT_ATOL)
        default_rtol, per_rtol = _tolerance(rtol, DEFAULT_RTOL)
        return TensorComparator(Tolerances(default_atol, default_rtol, per_atol, per_rtol, check_error_stat,
                                           error_quantile), check_shapes=check_shapes)

    @staticmethod
    def indices(index_tolerance: int = 0, check_shapes: bool = True) -> TensorComparator:
        """Index lists (e.g. after a top-K postprocess) must agree within `index_tolerance` positions."""
        return TensorComparator(compare_func="indices", index_tolerance=index_tolerance, check_shapes=check_shapes)

    @staticmethod
    def user(function: Callable[[Feeds, Feeds], Mapping[str, bool]], name: str = "") -> TensorComparator:
        """A function(reference outputs, candidate outputs) -> {output: passed}, called per iteration."""
        return TensorComparator(user_func=UserCompareFunc(function, f"compare func {name or function.__name__}"))

    @staticmethod
    def from_script(spec: str) -> TensorComparator:
        """FILE.py:FUNCTION, as `polyx run --compare-func-script` takes it."""
        return TensorComparator(user_func=UserCompareFunc.from_spec(spec))


class Comparator:
    @staticmethod
    def run(runners: list[Runner], data_loader: DataLoader | None = None) -> RunResults:
        """Infer every iteration with each runner (in order) on the same inputs; the first runner's inputs name
        the tensors the data loader makes."""
        if not runners:
            raise PolyxError("Comparator.run: no runners")
        names = [runner.name for runner in runners]
        if len(set(names)) != len(names):
            raise PolyxError(f"Comparator.run: runner names must differ, got {names} (pass name=...)")
        data_loader = data_loader or DataLoader()
        with runners[0] as first:
            feeds = list(data_loader.feeds(first.input_metadata()))
        return RunResults([run_runner(runner, feeds) for runner in runners], feeds)

    @staticmethod
    def postprocess(run_results: RunResults, postprocess: Postprocess | list[str]) -> RunResults:
        """Post-process every runner's outputs, e.g. ["top-5"] or ["probs:top-3,axis=1"]; returns new results."""
        specs = parse_postprocess(postprocess) if isinstance(postprocess, list) else postprocess
        return RunResults([RunnerOutputs(r.runner, [apply_postprocess(it, specs) for it in r.iterations],
                                         r.inference_ms) for r in run_results], run_results.feeds)

    @staticmethod
    def compare_accuracy(run_results: RunResults, compare_func: TensorComparator | None = None,
                         fail_fast: bool = False,
                         comparisons: list[tuple[int, int]] | None = None) -> AccuracyResult:
        """Compare result i (the reference) with result j for each (i, j) of `comparisons` (default: each result
        with the next, as Polygraphy does)."""
        comparator = compare_func or CompareFunc.simple()
        pairs = comparisons if comparisons is not None else [(i, i + 1) for i in range(len(run_results) - 1)]
        if not pairs:
            raise PolyxError("Comparator.compare_accuracy: needs the results of at least two runners")
        found, notes = [], []
        for ref_index, out_index in pairs:
            reference, candidate = run_results[ref_index], run_results[out_index]
            candidate, renamed = pair_near_miss_names(reference, candidate, notes)
            names = [n for n in reference.iterations[0] if n in candidate.iterations[0]]
            if not names:
                raise PolyxError(f"no tensor to compare: {reference.runner} produced {sorted(reference.iterations[0])}"
                                 f", {candidate.runner} produced {sorted(candidate.iterations[0])}")
            found += compare_iterations(comparator, reference, candidate, names, renamed, fail_fast=fail_fast)
            if fail_fast and not all(c.passed for c in found):
                break
        return AccuracyResult(run_results, found, notes, run_results[pairs[0][0]].runner)
