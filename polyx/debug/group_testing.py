"""Finding the items whose "suspicious" state makes a build fail, with as few builds as possible.

The model is group testing: every item (a tactic, a layer) can be kept in its suspicious state (*active*: the
chosen tactic, FP16) or reverted to a known-good one (a reference tactic, FP32), and a build fails when at least
one culprit is active. `fails(active)` builds with exactly `active` kept and everything else reverted.

Bisect mode finds one culprit by binary splitting (ceil(log2 n) builds), then one build checks whether the others
still fail; each further culprit costs the same again, so a single culprit among n items takes
ceil(log2 n) + 1 builds instead of n. A passing build proves all its active items clean, and clean items stay
active from then on, so later searches cover only what is still unknown. Linear mode activates the items one at a
time in the given order (n builds) and reports each item whose activation first makes the build fail.

Progress states two numbers per build: `bound`, the most builds the search can take whatever the outcomes (every
unknown item a culprit; never exceeded, and it only shrinks), and `expected`, the count when no further culprit
turns up (what usually happens).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)
MODES = ("bisect", "linear")


@dataclass
class Step:
    """One build of a search, for progress lines: `index` of at most `bound` builds (a worst case that is never
    exceeded), `expected` when no further culprit turns up."""

    index: int
    bound: int
    active: int
    total: int
    failed: bool
    expected: int = 0


def worst_case_builds(unknown: int) -> int:
    """The most builds bisect mode takes over `unknown` items when activating all of them is known to fail: every
    item a culprit, each found by ceil(log2 u) builds and followed by one build of the rest."""
    total = 0
    while unknown > 0:
        total += math.ceil(math.log2(unknown)) if unknown > 1 else 0
        unknown -= 1
        total += 1 if unknown else 0
    return total


def _finish_bisect(candidates: int, rest_unknown: int) -> int:
    """Worst-case builds left once a bisection is down to `candidates` items with `rest_unknown` others unknown."""
    return (math.ceil(math.log2(candidates)) if candidates > 1 else 0) + \
        (1 + worst_case_builds(rest_unknown) if rest_unknown else 0)


@dataclass
class CulpritSearch(Generic[T]):
    """State of one search; readable after an interruption (Ctrl-C) to report what was found so far."""

    items: Sequence[T]
    fails: Callable[[list[T]], bool]
    clean: list[T] = field(default_factory=list)   # known clean, kept active in every build
    mode: str = "bisect"
    on_step: Callable[[Step], None] | None = None
    culprits: list[T] = field(default_factory=list)
    builds: int = 0

    def run(self) -> list[T]:
        """Precondition (checked by the caller): `fails(clean + items)` and not `fails(clean)`."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        unknown = [item for item in self.items if item not in self.clean]
        if self.mode == "linear":
            self._linear(unknown)
            return self.culprits
        while unknown:
            culprit = self._bisect(unknown)
            self.culprits.append(culprit)
            unknown = [item for item in unknown if item != culprit and item not in self.clean]
            if not unknown or not self._test(unknown, worst_case_builds(len(unknown)), 0, 0):
                self.clean.extend(unknown)
                break
        return self.culprits

    def _bisect(self, candidates: list[T]) -> T:
        """One culprit among `candidates`, knowing that activating all of them fails."""
        others = 0  # unknown items outside `candidates` (the halves not searched yet)
        while len(candidates) > 1:
            half = candidates[:len(candidates) // 2]
            rest = candidates[len(candidates) // 2:]
            optimistic = math.ceil(math.log2(max(len(half), len(rest)))) + 1
            after_fail = _finish_bisect(len(half), len(half) - 1 + len(rest) + others)
            after_pass = _finish_bisect(len(rest), len(rest) - 1 + others)
            if self._test(half, after_fail, after_pass, optimistic):
                candidates, others = half, others + len(rest)
            else:
                self.clean.extend(half)
                candidates = rest
        return candidates[0]

    def _linear(self, candidates: list[T]) -> None:
        for position, item in enumerate(candidates):
            left = len(candidates) - position - 1
            if self._test([item], left, left, left):
                self.culprits.append(item)
            else:
                self.clean.append(item)

    def _test(self, extra: list[T], after_fail: int, after_pass: int, expected_after: int) -> bool:
        """One build; the worst-case builds left after it depend on its outcome (`after_fail`, `after_pass`)."""
        active = list(self.clean) + list(extra)
        failed = bool(self.fails(active))
        self.builds += 1
        if self.on_step is not None:
            left = after_fail if failed else after_pass
            self.on_step(Step(self.builds, self.builds + left, len(active), len(self.items), failed,
                              self.builds + min(left, expected_after)))
        return failed


def find_culprits(items: Sequence[T], fails: Callable[[list[T]], bool], clean: Sequence[T] = (),
                  mode: str = "bisect", on_step: Callable[[Step], None] | None = None) -> list[T]:
    """The culprits among `items` (see the module docstring); `clean` items are known good and stay active."""
    return CulpritSearch(items, fails, list(clean), mode, on_step).run()
