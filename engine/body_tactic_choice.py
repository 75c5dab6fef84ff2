"""The builder's tactic choice for the layers inside control-flow subgraphs.

While the tactic sweep's trial run goes through a conditional or loop, every subgraph layer it reaches is seen
with the arrays of that run (engine/subgraph.py's `observing_layers`): the first time, its eligible tactics are
timed at those very shapes as a top-level layer's are — tactic-source mask, optimization level, workspace limit,
timing cache and algorithm selector included — and the chosen one runs from then on (later iterations and later
profiles keep it: a subgraph layer has one tactic). A layer the trial run never reaches (the branch not taken, a
loop that did not iterate) gets the best heuristic rank among the tactics that support its build-time shapes.
Every choice is prepared from the build-time shapes, as the runtime will prepare it from the plan.
"""
from __future__ import annotations

import statistics
from functools import partial
from typing import Any

from .algorithm_selector import AlgorithmContext
from .body_tactics import REFERENCE_ID, backend_of, remember, run_tactic, runtime_context, tactic_eligible
from .compatibility import HardwareCompatibilityLevel
from .config import MemoryPoolType
from .enums import allowed_by_sources
from .graph import LayerSpec, LoweredGraph, tactic_context
from .logger import Severity
from .tactics import Tactic, TacticContext, tactics_for
from .tactics.reference import ReferenceTactic
from .tensor_formats import layer_formats
from .timing_cache import layer_signature


class BodyTacticChooser:
    """Chooses each subgraph layer's tactic once, for the TacticSelection `selection` (whose config, log, backend,
    timing cache and algorithm-selector records it shares)."""

    def __init__(self, selection: Any):
        self.selection = selection
        self.profile_index = 0
        self._decided: dict[int, LayerSpec] = {}  # id(spec) -> spec (kept alive so the ids stay unique)
        self.chosen = 0  # layers given a tactic other than the reference

    # ------------------------------------------------------------------ at the shapes of the trial run
    def observe(self, graph: LoweredGraph, spec: LayerSpec, arrays: list[Any], xp: Any) -> None:
        if id(spec) in self._decided or backend_of(xp) != self.selection.device:
            return
        self._decided[id(spec)] = spec
        spec.tactic_id, spec.tactic_name = REFERENCE_ID, ""
        if not tactic_eligible(graph, spec):
            return
        tctx = runtime_context(graph, spec, arrays, self.selection.device, self.selection.build_options)
        if tctx is None:
            self._by_heuristic(graph, spec)
            return
        level = int(self.selection.config.builder_optimization_level)
        candidates = self._candidates(spec, tctx, level)
        timings = self._time(graph, spec, tctx, candidates, level, arrays, xp)
        candidates = [t for t in candidates if not timings or t.id in timings]
        self._settle(graph, spec, tctx, candidates, timings)

    # ------------------------------------------------------------------ layers the trial run never reached
    def finish(self, graph: LoweredGraph) -> None:
        """Give every subgraph layer of `graph` (nested too) not yet seen its heuristic choice."""
        from .subgraph import as_lowered, subgraphs_of

        for spec in graph.layers:
            for sub in subgraphs_of(spec.layer).values():
                body = as_lowered(sub)
                for body_spec in body.layers:
                    if id(body_spec) not in self._decided:
                        self._decided[id(body_spec)] = body_spec
                        body_spec.tactic_id, body_spec.tactic_name = REFERENCE_ID, ""
                        if tactic_eligible(body, body_spec):
                            self._by_heuristic(body, body_spec)
                self.finish(body)

    def _by_heuristic(self, graph: LoweredGraph, spec: LayerSpec) -> None:
        tctx = tactic_context(graph, spec, self.selection.device, extra=self.selection.build_options)
        self.selection.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) shapes unknown at build time: "
                                             "tactic by heuristic rank")
        self._settle(graph, spec, tctx, self._candidates(spec, tctx, 0, check_workspace=False), {})

    # ------------------------------------------------------------------ shared steps
    def _candidates(self, spec: LayerSpec, tctx: TacticContext, level: int,
                    check_workspace: bool = True) -> list[Tactic]:
        """The tactics allowed to run the layer at `tctx`'s shapes, best heuristic rank first (the reference is
        always among them)."""
        config = self.selection.config
        limit = config.get_memory_pool_limit(MemoryPoolType.WORKSPACE)
        sources = config.get_tactic_sources()
        portable_only = config.hardware_compatibility_level != HardwareCompatibilityLevel.NONE
        eligible = []
        for tactic in sorted(tactics_for(spec.layer.type, self.selection.device), key=lambda t: (t.heuristic_rank,
                                                                                                  t.id)):
            if tactic.min_optimization_level > level or tactic.runs_int8 or tactic.reads_bfloat16:
                continue
            if (portable_only and not tactic.hardware_compatible) or layer_formats(tctx) - tactic.formats:
                continue
            if not allowed_by_sources(tactic, sources):
                continue
            try:
                if tactic.supports(tctx) is not True:
                    continue
                if check_workspace and int(tactic.workspace_bytes(tctx)) > limit:
                    continue
            except Exception:  # noqa: BLE001 - a crashing supports() or workspace_bytes() only removes the tactic
                continue
            eligible.append(tactic)
        capturable = [t for t in eligible if t.capturable]
        if self.selection.device == "gpu" and capturable:
            eligible = capturable
        return eligible

    def _time(self, graph: LoweredGraph, spec: LayerSpec, tctx: TacticContext, candidates: list[Tactic],
              level: int, arrays: list[Any], xp: Any) -> dict[int, float]:
        """Median ms of each candidate at the observed arrays; {} when not timed (one candidate, level 0)."""
        sel = self.selection
        if level == 0 or len(candidates) < 2:
            return {}
        key = layer_signature(spec.layer.type.value, spec.layer.params, tctx.inputs, spec.layer.precision.value,
                              f"{sel.device}:{sel.backend.device_name}", spec.layer.epilogue.to_json())
        if sel.cache is not None:
            entry = sel.cache.query(key)
            if entry is not None and all(str(t.id) in entry["timings_ms"] for t in candidates):
                sel.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) timing cache hit")
                return {t.id: entry["timings_ms"][str(t.id)] for t in candidates}
        iterations = max(3, int(sel.config.avg_timing_iterations))
        timings: dict[int, float] = {}
        for tactic in candidates:
            try:
                state = tactic.prepare(tctx)
                run_tactic(tactic, state, tctx, graph, spec, arrays, xp)  # warm-up
                samples = sel.backend.time_runs(partial(run_tactic, tactic, state, tctx, graph, spec, arrays, xp),
                                                iterations)
            except Exception as exc:  # noqa: BLE001 - a failing candidate is dropped
                sel.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) {tactic.name} failed: {exc}")
                continue
            timings[tactic.id] = statistics.median(samples)
            sel.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) {tactic.name} (0x{tactic.id:08x}): "
                                      f"{timings[tactic.id]:.4f} ms")
        if timings and sel.cache is not None:
            fastest = min(timings, key=timings.get)
            source = next((t.source for t in candidates if t.id == fastest), None)
            sel.cache.update(key, timings, fastest, None if source is None else source.name)
        return timings

    def _settle(self, graph: LoweredGraph, spec: LayerSpec, tctx: TacticContext, candidates: list[Tactic],
                timings: dict[int, float]) -> None:
        """Ask the algorithm selector, then record the best candidate that prepares from the build-time shapes."""
        sel = self.selection
        if not candidates:
            return
        allowed = list(range(len(candidates)))
        if sel.selector is not None:
            shapes_in = tuple((tuple(i.shape),) * 3 if i is not None else () for i in tctx.inputs)
            context = AlgorithmContext(spec.layer.name, spec.layer.type.value, shapes_in,
                                       tuple((tuple(o.shape),) * 3 for o in tctx.outputs),
                                       spec.layer.precision.value, self.profile_index)
            algorithms = [sel.algorithm_record(t, timings.get(t.id, 0.0), tctx) for t in candidates]
            allowed = sel.ask_selector(sel.selector, context, algorithms)
            sel.contexts.append(context)
        ranked = sorted(allowed, key=lambda k: (timings.get(candidates[k].id, 0.0), candidates[k].heuristic_rank,
                                                candidates[k].id))
        build_ctx = tactic_context(graph, spec, sel.device)
        for k in ranked:
            tactic = candidates[k]
            try:
                state = tactic.prepare(build_ctx)
            except Exception as exc:  # noqa: BLE001 - the next-best candidate is tried
                sel.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) tactic {tactic.name} dropped: it cannot "
                                          f"prepare from the subgraph's shapes ({type(exc).__name__}: {exc})")
                continue
            if sel.selector is not None:
                sel.chosen.append(sel.algorithm_record(tactic, timings.get(tactic.id, 0.0), tctx))
            if not isinstance(tactic, ReferenceTactic):  # the reference is recorded as 0: run_subgraph's default
                spec.tactic_id, spec.tactic_name = tactic.id, tactic.name
                remember(spec, sel.device, tactic, state)
                self.chosen += 1
            sel.log(Severity.VERBOSE, f"[{spec.layer.name}] (subgraph) chose {tactic.name}")
            return
        if sel.selector is not None:  # nothing allowed prepared: the reference runs, unreported
            sel.contexts.pop()
