"""Comparing two runners' outputs over every iteration: the one loop behind `polyx run` and the scripting API's
`Comparator.compare_accuracy`. It pairs near-miss output names (with a note), applies post-processing to both
sides, asks the Comparator per tensor and honours fail-fast."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .comparator import Comparator, TensorComparison
from .name_matching import match_names
from .postprocess import Postprocess, apply_postprocess

Feeds = dict[str, np.ndarray]


@dataclass
class RunnerOutputs:
    """One runner's outputs for every iteration (Polygraphy's (runner name, [IterationResult]) pair)."""

    runner: str
    iterations: list[Feeds]
    inference_ms: list[float]


def pair_near_miss_names(reference: RunnerOutputs, candidate: RunnerOutputs,
                         notes: list[str]) -> tuple[RunnerOutputs, dict[str, str]]:
    """The candidate with outputs whose names nearly match a reference name renamed to it (a note each), and
    {reference name: candidate's own name} of those."""
    if not reference.iterations or not candidate.iterations:
        return candidate, {}
    pairs = match_names(list(reference.iterations[0]), list(candidate.iterations[0]))
    if not pairs:
        return candidate, {}
    for ref_name, out_name in pairs.items():
        notes.append(f"output names differ: compared {reference.runner}'s '{ref_name}' with {candidate.runner}'s "
                     f"'{out_name}' (the closest name)")
    back = {out_name: ref_name for ref_name, out_name in pairs.items()}
    iterations = [{back.get(name, name): array for name, array in outputs.items()} for outputs in candidate.iterations]
    return replace(candidate, iterations=iterations), pairs


def compare_iterations(comparator: Comparator, reference: RunnerOutputs, candidate: RunnerOutputs, names: list[str],
                       renamed: dict[str, str] | None = None, postprocess: Postprocess | None = None,
                       fail_fast: bool = False,
                       on_tensor: Callable[[], None] | None = None) -> list[TensorComparison]:
    """Every named tensor of every iteration, in order; with fail_fast, nothing after the first failed one."""
    results: list[TensorComparison] = []
    runners = (reference.runner, candidate.runner)
    for iteration, (ref, out) in enumerate(zip(reference.iterations, candidate.iterations)):
        ref, out = apply_postprocess(ref, postprocess or {}), apply_postprocess(out, postprocess or {})
        compared = comparator.compare(ref, out, names, iteration, runners, fail_fast, on_tensor=on_tensor)
        for comparison in compared:
            comparison.candidate_name = (renamed or {}).get(comparison.name, "")
        results.extend(compared)
        if fail_fast and not all(c.passed for c in compared):
            break
    return results
