"""Finding the items whose "suspicious" state makes a build fail, with as few builds as possible.

The model is group testing: every item (a tactic, a layer) can be kept in its suspicious state (*active*: the
chosen tactic, FP16) or reverted to a known-good one (a reference tactic, FP32), and a build fails when at least
one culprit is active. `fails(active)` builds with exactly `active` kept and everything else reverted.

Bisect mode finds one culprit by binary splitting (ceil(log2 n) builds), then one build checks whether the others
still fail; each further culprit costs the same again, so a single culprit among n items takes
ceil(log2 n) + 1 builds instead of n. A passing build proves all its active items clean, and clean items stay
active from then on, so later searches cover only what is still unknown. Linear mode activates the items one at a
time in the given order (n builds) and reports each item whose activation first makes the build fail.
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
    """One build of a search, for progress lines: `index` of at most `bound` (assuming no further culprit)."""

    index: int
    bound: int
    active: int
    total: int
    failed: bool


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
            if not unknown or not self._test(unknown, remaining=0):
                self.clean.extend(unknown)
                break
        return self.culprits

    def _bisect(self, candidates: list[T]) -> T:
        """One culprit among `candidates`, knowing that activating all of them fails."""
        while len(candidates) > 1:
            half = candidates[:len(candidates) // 2]
            rest = candidates[len(candidates) // 2:]
            remaining = math.ceil(math.log2(len(half) if len(half) >= len(rest) else len(rest))) + 1
            if self._test(half, remaining):
                candidates = half
            else:
                self.clean.extend(half)
                candidates = rest
        return candidates[0]

    def _linear(self, candidates: list[T]) -> None:
        for position, item in enumerate(candidates):
            if self._test([item], remaining=len(candidates) - position - 1):
                self.culprits.append(item)
            else:
                self.clean.append(item)

    def _test(self, extra: list[T], remaining: int) -> bool:
        active = list(self.clean) + list(extra)
        failed = bool(self.fails(active))
        self.builds += 1
        if self.on_step is not None:
            self.on_step(Step(self.builds, self.builds + remaining, len(active), len(self.items), failed))
        return failed


def find_culprits(items: Sequence[T], fails: Callable[[list[T]], bool], clean: Sequence[T] = (),
                  mode: str = "bisect", on_step: Callable[[Step], None] | None = None) -> list[T]:
    """The culprits among `items` (see the module docstring); `clean` items are known good and stay active."""
    return CulpritSearch(items, fails, list(clean), mode, on_step).run()
