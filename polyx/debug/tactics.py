"""`debug tactics`: which (layer, tactic) choices make an engine wrong, found through the algorithm selector only.

One recorded build gives every layer's candidates and choice. Each later build forces a tactic on every layer (a
replay, so builds are deterministic whatever the timing noise) and differs only in which suspect layers (those
with more than one candidate) are *reverted* to a known-good tactic: the layer's reference tactic when it has one
(the registered compute kernel, `*_reference_*`), else its next candidate that is not known bad.

The search runs over the distinct tactics the suspects picked (group testing, see `group_testing`): reverting a
tactic on every layer that picked it finds each bad tactic in about log2(#tactics) + 1 builds. A wrong kernel is
wrong wherever it runs, so a bad tactic is reported with every layer that picked it and the replay avoids it on
all of them. With `per_layer`, a second search over those layers keeps only the ones whose error alone fails the
check (log2(K) + 1 builds per such layer): useful when a tactic is wrong for some shapes only, but it can leave a
wrong kernel on layers whose error the check does not see.
Every reported set was verified by a passing build, whose replay avoids the culprits.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import engine as trt

from ..build import BuildOptions
from ..tactic_replay import Replay, TacticRecorder, TacticReplayer, load_replay
from .checks import Candidate, Verdict, build_candidate, refuse_passing_original, refuse_same_failure
from .group_testing import CulpritSearch, Step
from .journal import VerdictJournal

REFERENCE_MARK = "_reference_"


@dataclass
class TacticCulprit:
    tactic_id: int
    tactic: str
    layer_type: str
    layers: list[str]      # the layers that fail with it (every layer that picked it unless `narrowed`)
    picked_by: int         # how many suspect layers picked it
    narrowed: bool = False


@dataclass
class TacticDebugResult:
    """What the search found; partial after an interruption."""

    initial: Verdict | None = None
    culprits: list[TacticCulprit] = field(default_factory=list)
    builds: int = 0
    layers: int = 0
    suspects: int = 0
    tactics: int = 0                       # distinct tactics the layers of the first build used
    good_replay: Replay | None = None      # the last passing forced build's tactics
    unexplained: str = ""                  # why tactics cannot explain the failure, when they cannot
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


class TacticDebugger:
    """`judge(candidate)` says whether one build is good; `progress(line)` receives one line per build."""

    def __init__(self, model: Path, options: BuildOptions, judge: Callable[[Candidate], Verdict],
                 per_layer: bool = False, progress: Callable[..., None] | None = None,
                 logger: trt.Logger | None = None, journal: VerdictJournal | None = None):
        self.model = Path(model)
        self.journal = journal
        self.options = replace(options, save_tactics=None, load_tactics=None, algorithm_selector=None)
        self.initial_replay = load_replay(options.load_tactics) if options.load_tactics is not None else None
        self.judge = judge
        self.per_layer = per_layer
        self.progress = progress or (lambda line, done=None, total=None: None)
        self.logger = logger or trt.Logger(trt.Logger.ERROR)
        self.result = TacticDebugResult()
        self.choices: dict[str, list[dict]] = {}
        self.chosen: Replay = {}
        self.bad_ids: list[int] = []
        self.last: tuple[str, Verdict] = ("", Verdict(False, ""))
        self.passing: dict[frozenset[str], Replay] = {}
        self.suspects: list[str] = []
        self.strict = bool(getattr(judge, "is_command", False))  # a user's command: refuse checks that cannot work
        self.fallbacks_chosen_elsewhere: dict[str, dict] = {}  # layer -> its fallback, a tactic other layers chose

    def run(self) -> TacticDebugResult:
        """The search; Ctrl-C stops it and returns what was found so far (`interrupted` set)."""
        try:
            self._run()
        except KeyboardInterrupt:
            self.result.interrupted = True
            found = {c.tactic_id for c in self.result.culprits}
            self.result.culprits += [self._culprit(t) for t in self.bad_ids if t not in found]
        return self.result

    def _run(self) -> None:
        result = self.result
        recorder = TacticRecorder(inner=TacticReplayer(self.initial_replay) if self.initial_replay else None)
        result.initial = self._build(recorder, "initial build, recording every layer's candidates")
        self._announce()
        self.choices, self.chosen = recorder.choices, recorder.replay
        result.layers = len(self.chosen)
        result.tactics = len({int(entry["tactic_id"]) for entry in self.chosen.values()})
        suspects = [layer for layer in self.chosen if len(self.choices.get(layer, [])) > 1]
        result.suspects = len(suspects)
        if result.initial.passed:
            if self.strict:
                refuse_passing_original(result.initial, "the original engine")
            result.good_replay = dict(self.chosen)
            return
        if not suspects:
            result.unexplained = "no layer has a second tactic to try, so tactic choice cannot be the cause"
            return
        initial = result.initial
        every_reverted_fails = self._fails(set(suspects), "revert every suspect layer to a known-good tactic")
        self._announce()
        if self.strict:
            refuse_same_failure(initial, self.last[1], "the engine with every suspect layer reverted",
                                self._still_running(suspects))
        if not every_reverted_fails:
            self._search(suspects)
        else:
            result.unexplained = self._unexplained(suspects)

    def _still_running(self, suspects: list[str]) -> str:
        """Where the every-suspect-reverted build still ran a tactic the first build chose: layers with no other
        tactic, and reverted layers whose fallback another layer chose ("" when nowhere)."""
        chosen_ids = {int(self.chosen[layer]["tactic_id"]) for layer in suspects}
        chosen_ids |= {int(entry["tactic_id"]) for entry in self.fallbacks_chosen_elsewhere.values()}
        places: dict[str, list[str]] = {}
        for layer, entry in self.chosen.items():
            if layer not in suspects and int(entry["tactic_id"]) in chosen_ids:
                places.setdefault(entry["tactic"], []).append(f"{layer} (its only tactic)")
        for layer, entry in self.fallbacks_chosen_elsewhere.items():
            places.setdefault(entry["tactic"], []).append(f"{layer} (as its fallback)")
        if not places:
            return ""
        listed = "; ".join(f"{tactic} on {', '.join(layers[:4])}" + (f" and {len(layers) - 4} more"
                                                                     if len(layers) > 4 else "")
                           for tactic, layers in places.items())
        return (f"that build still ran tactics the first build chose ({listed}): the known-good fallback is itself "
                "a suspect there, so if one of those tactics is wrong, debug tactics cannot avoid it")

    def _unexplained(self, suspects: list[str]) -> str:
        """Why reverting every suspect does not settle it, honest about what the reverted build still ran."""
        note = self._still_running(suspects)
        if note:
            return f"the engine still fails with every suspect layer reverted, but {note}"
        return ("the engine still fails with every layer on a known-good (reference or alternative) tactic, so the "
                "cause is not the choice of tactics")

    def _search(self, suspects: list[str]) -> None:
        result = self.result
        self.suspects = suspects
        tactic_of = {layer: int(self.chosen[layer]["tactic_id"]) for layer in suspects}
        tactic_ids = list(dict.fromkeys(tactic_of.values()))

        def tactics_fail(active: list[int]) -> bool:
            reverted = {layer for layer, tactic in tactic_of.items() if tactic not in active}
            return self._fails(reverted, f"keep {len(active)} of {len(tactic_ids)} tactics, revert the rest")

        search = CulpritSearch(tactic_ids, tactics_fail, on_step=self._announce)
        self.bad_ids = search.culprits  # the same list: alternatives avoid culprits as soon as they are found
        search.run()
        reverted = {layer for layer, tactic in tactic_of.items() if tactic in self.bad_ids}
        for tactic_id in search.culprits:
            culprit = self._culprit(tactic_id)
            result.culprits.append(culprit)
            if REFERENCE_MARK in culprit.tactic:
                result.notes.append(f"the bad tactic {culprit.tactic} is the reference kernel, the fallback debug "
                                    "tactics treats as known-good; layers avoid it through their other candidates")
            if self.per_layer and culprit.picked_by > 1:
                reverted = self._narrow(culprit, reverted)
        result.good_replay = self.passing.get(frozenset(reverted))
        if result.good_replay is None:
            self._fails(reverted, "verify the replay that avoids the culprits")
            self._announce()
            result.good_replay = self.passing.get(frozenset(reverted))

    def _verify_left(self) -> int:
        """The build that verifies the final replay, when the search may still need it (not with --per-layer,
        whose narrowing searches state their own bounds)."""
        return 0 if self.per_layer else 1

    def _culprit(self, tactic_id: int) -> TacticCulprit:
        layers = [layer for layer in self.suspects if int(self.chosen[layer]["tactic_id"]) == tactic_id]
        first = self.chosen[layers[0]]
        return TacticCulprit(tactic_id, first["tactic"], first["layer_type"], layers, len(layers))

    def _narrow(self, culprit: TacticCulprit, reverted: set[str]) -> set[str]:
        """The culprit's layers whose error alone fails the check; returns the reverted set with only those."""
        layers = culprit.layers
        others = reverted - set(layers)

        def layers_fail(active: list[str]) -> bool:
            return self._fails(others | (set(layers) - set(active)),
                               f"keep {culprit.tactic} on {len(active)} of {len(layers)} layers")

        failing = CulpritSearch(layers, layers_fail, on_step=self._announce).run()
        culprit.layers = [layer for layer in layers if layer in failing]
        culprit.narrowed = True
        return others | set(culprit.layers)

    def _fails(self, reverted: set[str], description: str) -> bool:
        replay = {layer: self._alternative(layer) if layer in reverted else entry
                  for layer, entry in self.chosen.items()}
        key = {layer: int(entry["tactic_id"]) for layer, entry in replay.items()}
        verdict = self.journal.get(key) if self.journal is not None else None
        if verdict is not None:  # judged by an earlier, interrupted run: every layer was forced, so this replay
            self.result.builds += 1
            self.last = (f"{description} (verdict from the --resume journal)", verdict)
            passing_replay = replay
        else:
            recorder = TacticRecorder(inner=TacticReplayer(replay))
            verdict = self._build(recorder, description)
            passing_replay = recorder.replay
            if self.journal is not None:
                self.journal.record(key, verdict)
        if verdict.passed:
            self.passing[frozenset(reverted)] = passing_replay
            self.result.good_replay = passing_replay
        return not verdict.passed

    def _alternative(self, layer: str) -> dict:
        """The reference tactic when the layer has one, else its first candidate that no layer chose (so the
        reverted build is free of the suspects), else its first candidate not known to be bad (noted: that
        fallback is itself a suspect)."""
        banned = {int(self.chosen[layer]["tactic_id"]), *self.bad_ids}
        allowed = [c for c in self.choices[layer] if int(c["tactic_id"]) not in banned]
        if not allowed:
            return self.chosen[layer]
        chosen_ids = {int(entry["tactic_id"]) for entry in self.chosen.values()}
        unchosen = [c for c in allowed if int(c["tactic_id"]) not in chosen_ids]
        choice = next((c for c in allowed if REFERENCE_MARK in c["tactic"]), unchosen[0] if unchosen else allowed[0])
        if int(choice["tactic_id"]) in chosen_ids:
            self.fallbacks_chosen_elsewhere[layer] = choice
        else:
            self.fallbacks_chosen_elsewhere.pop(layer, None)
        return {"tactic_id": choice["tactic_id"], "tactic": choice["tactic"],
                "layer_type": self.chosen[layer]["layer_type"]}

    def _build(self, selector: TacticRecorder, description: str) -> Verdict:
        candidate = build_candidate(self.model, self.options, self.logger, selector, self.result.builds + 1,
                                    description)
        self.result.builds += 1
        verdict = self.judge(candidate)
        self.last = (description, verdict)
        return verdict

    def _announce(self, step: Step | None = None) -> None:
        """One progress line for the last build; inside a search, with the most builds it may still take."""
        description, verdict = self.last
        builds = self.result.builds
        base = builds - step.index + self._verify_left() if step is not None else 0
        bound = "" if step is None else (f" of <= {base + step.bound} (about {base + step.expected} if no other "
                                         "culprit)")
        # The bound covers the whole run except --per-layer's narrowing searches, which state their own.
        total = base + step.bound if step is not None and not self.per_layer else None
        self.progress(f"build {builds}{bound}: {description} -> {'good' if verdict.passed else 'bad'} "
                      f"({verdict.summary})", done=builds, total=total)
