"""Tactic selection: time every eligible tactic of every device layer on real inputs, per optimization profile.

TensorRT tunes each profile separately (tactics tuned for batch 32 can be several times slower at batch 1), so the
sweep runs the network once per profile at that profile's opt shapes, choosing each device layer's tactic on the
way; the chosen tactic's outputs feed the next layers. Candidates run as Steps (engine/steps.py), the same code the
ExecutionContext runs, host operands and epilogue included. The timing cache, the algorithm selector, the
workspace limit and the tactic-source mask are honoured here.
"""
from __future__ import annotations

import statistics
from functools import partial
from typing import Any

import numpy as np

from .algorithm_selector import Algorithm, AlgorithmContext, AlgorithmIOInfo, AlgorithmVariant
from .bfloat16 import storage_dtype
from .body_tactic_choice import BodyTacticChooser
from .compatibility import HardwareCompatibilityLevel
from .config import BuilderConfig, BuilderFlag, MemoryPoolType
from .dtypes import DataType, nptype
from .eager_execution import has_control_flow, trial_shapes
from .enums import LayerType, allowed_by_sources
from .errors import BuildError, DataDependentShapeError, EngineError
from .graph import LayerSpec, LoweredGraph, resolve_shapes, tactic_context
from .logger import Severity
from .memory_plan import MEMORY_LIMIT_ENV, device_memory_limit, host_memory_limit, tensor_bytes, trial_run_peak
from .ops.base import layer_impl
from .steps import make_step, run_step
from .subgraph import CONTROL_FLOW_TYPES, observing_layers
from .tactics import Tactic, TacticContext, tactics_for
from .tactics.base import stable_tactic_id
from .tensor_formats import empty_in_format, layer_formats
from .timing_cache import TimingCache, layer_signature

# A reason shared by many tactics of one layer (the 128 cuDNN engine tactics without the cuDNN frontend) is logged
# once, naming this many of them and counting the rest, so a VERBOSE build log stays readable per layer.
SKIPPED_NAMES_SHOWN = 3


def skipped_tactic_lines(layer_name: str, skipped: dict[str, list[str]]) -> list[str]:
    """One VERBOSE line per distinct reason the layer's tactics were skipped for, in first-seen order."""
    lines = []
    for reason, names in skipped.items():
        if len(names) == 1:
            lines.append(f"[{layer_name}] tactic {names[0]} skipped: {reason}")
            continue
        shown = ", ".join(names[:SKIPPED_NAMES_SHOWN])
        more = f" and {len(names) - SKIPPED_NAMES_SHOWN} more" if len(names) > SKIPPED_NAMES_SHOWN else ""
        lines.append(f"[{layer_name}] {len(names)} tactics ({shown}{more}) skipped: {reason}")
    return lines


class TacticSelection:
    def __init__(self, config: BuilderConfig, log, graph: LoweredGraph, profiles: list[dict[str, tuple]],
                 shape_values: list[dict[str, tuple]], backend, device: str, cache: TimingCache | None,
                 measure: frozenset[str] = frozenset(), with_selector: bool = True):
        self.config = config
        self.log = log
        self.graph = graph
        self.profiles = profiles
        self.shape_values = shape_values
        self.backend = backend
        self.device = device
        self.cache = cache
        self.max_workspace = 0
        self._raw: TacticContext | None = None  # the layer being chosen, unwidened (_seen_by)
        self.max_shapes: Any = None  # tensor shapes at the max of the profile being swept
        self.contexts: list[AlgorithmContext] = []
        self.chosen: list[Algorithm] = []
        self.timed_layers = 0
        # TF32 tensor-core math for FP32 layers only when asked for (BuilderFlag.TF32): it rounds inputs to 10
        # mantissa bits, which FP32 accuracy checks against onnxruntime (1e-4) do not tolerate.
        self.build_options = {"tf32": config.get_flag(BuilderFlag.TF32)}
        self.body_chooser = BodyTacticChooser(self)  # the layers inside control-flow subgraphs
        # BuilderConfig.channels_last "auto" (engine/channels_last_choice.py): the layers whose chosen tactic is
        # timed in the sweep of profile 0, and their times (ms); empty for every other build, which stays as fast
        self.measure = measure
        self.measured: dict[str, float] = {}
        # The user's algorithm selector, asked and told only for the engine built: not for the variants of a
        # channels-last "auto" build (a tactic replay recorded LINEAR cannot force a layer's tactic when it is HWC)
        self.selector = config.algorithm_selector if with_selector else None

    def run(self) -> None:
        for spec in self.graph.layers:
            spec.tactic_ids, spec.tactic_names = [], []
        with np.errstate(all="ignore"):  # the sweep runs on synthetic inputs: overflow or NaN there means nothing
            for index in range(len(self.profiles)):
                self._sweep(index)
        for spec in self.graph.device_layers:
            spec.tactic_id, spec.tactic_name = spec.tactic_ids[0], spec.tactic_names[0]
        self.body_chooser.finish(self.graph)
        if self.body_chooser.chosen:
            self.log(Severity.INFO, f"tactic selection: {self.body_chooser.chosen} control-flow subgraph layers run "
                                    "a tactic other than their reference kernel")
        if self.selector is not None:
            self.selector.report_algorithms(self.contexts, self.chosen)
        if self.cache is not None:
            self.log(Severity.VERBOSE, f"timing cache: {self.cache.hits} hits, {self.cache.misses} misses")
        profiles = f" in each of {len(self.profiles)} profiles" if len(self.profiles) > 1 else ""
        self.log(Severity.INFO, f"tactic selection: {len(self.graph.device_layers)} layers{profiles}, "
                                f"{self.timed_layers} timed")

    def _sweep(self, profile_index: int) -> None:
        """Run the network at profile `profile_index`'s opt shapes, appending each device layer's tactic choice."""
        graph, backend = self.graph, self.backend
        profile, values = self.profiles[profile_index], self.shape_values[profile_index]
        try:
            # Data-dependent layers (NonZero, NMS) are timed, and the layers after them run, at their upper bound.
            by_which = [resolve_shapes(graph, input_shapes(graph, profile, which), input_values(graph, values, which),
                                       upper_bounds=True) for which in (0, 1, 2)]
        except DataDependentShapeError:
            if not has_control_flow(graph):
                raise
            by_which = None  # shapes known only by running: learnt from the sample inputs below
        if by_which is not None:  # before the sample inputs are made: a [2**40, 4] input is refused, not allocated
            self._check_trial_memory(by_which[1].shapes, profile_index)
        rng = np.random.default_rng(0)
        opt_values = input_values(graph, values, 1)
        samples = {i: backend.to_device(_sample(rng, shape, graph.tensors[i].dtype))
                   for i, shape in input_shapes(graph, profile, 1).items() if i not in opt_values}
        if by_which is None:
            self.log(Severity.INFO, f"profile {profile_index}: shapes depend on values computed by control flow; "
                                    "tactics are timed at the shapes of one run on sample inputs at the opt shapes")
            by_which = [trial_shapes(graph, backend, samples, opt_values)] * 3
            self._check_trial_memory(by_which[1].shapes, profile_index)
        learnt = by_which[0] is by_which[1]  # shapes of one reference run, which later values may not repeat
        resolved = by_which[1]
        shapes, self.max_shapes = resolved.shapes, by_which[2].shapes
        slots: list[Any] = [None] * len(graph.tensors)
        for i, value in resolved.host_values.items():
            slots[i] = backend.to_device(value)
        for i, sample in samples.items():
            slots[i] = sample
        last_use = {i: index for index, spec in enumerate(graph.layers) for i in spec.inputs if i is not None}
        keep = set(graph.outputs) | set(resolved.host_values)
        for index, spec in enumerate(graph.layers):
            if spec.host or spec.layer.type == LayerType.CONSTANT:
                continue
            try:
                tactic, state = self._choose(spec, profile_index, by_which, slots, resolved.host_values)
                step = make_step(spec, tactic, state, resolved.host_values, graph)
                if spec.layer.type in CONTROL_FLOW_TYPES:
                    self.body_chooser.profile_index = profile_index
                    with observing_layers(self.body_chooser.observe):
                        self._run_control_flow_layer(spec, step, slots, shapes, learnt, tactic)
                else:
                    for o in spec.outputs:
                        slots[o] = empty_in_format(backend.xp, shapes[o],
                                                   storage_dtype(graph.tensors[o].dtype, self.device),
                                                   graph.tensors[o].format)
                    workspace = self._workspace(tactic, spec, shapes)
                    self._run_once(step, slots, workspace)
                    if profile_index == 0 and spec.layer.name in self.measure:  # after its first, untimed run
                        self.measured[spec.layer.name] = self.measure_step(spec, step, slots, workspace)
                    if step.data_dependent:
                        for o in spec.outputs:
                            slots[o] = _fit_to(slots[o], shapes[o], backend.xp)
            except EngineError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. a constant Gather index out of range: name the layer
                raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}) failed in the trial run at "
                                 f"the opt shapes: {type(exc).__name__}: {exc}") from exc
            for i in spec.inputs:
                if i is not None and last_use.get(i) == index and i not in keep:
                    slots[i] = None

    def measure_step(self, spec: LayerSpec, step, slots: list[Any], workspace: Any) -> float:
        """Median time (ms) of the layer's chosen step, run as the engine will run it, at profile 0's opt shapes
        (its outputs are written again with the same values)."""
        samples = self.backend.time_runs(partial(run_step, step, slots, workspace, self.backend.xp),
                                         max(3, int(self.config.avg_timing_iterations)))
        return statistics.median(samples)

    def _check_trial_memory(self, shapes, profile_index: int) -> None:
        """Refuse, before allocating, a trial run that cannot fit in host memory (a [2**40, 4] input, an Expand
        to [100000, 100000]), naming the layer where it would peak and its largest output."""
        peak, step = trial_run_peak(self.graph, shapes)
        on_gpu = self.device == "gpu"
        limit = device_memory_limit() if on_gpu else host_memory_limit()
        if peak <= limit:
            return
        spec = self.graph.layers[step]
        largest = max(spec.outputs, key=lambda o: tensor_bytes(self.graph, o, shapes[o]))
        tensor = self.graph.tensors[largest]
        raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): the trial run at optimization "
                         f"profile {profile_index}'s opt shapes would hold {peak:,} bytes there (output "
                         f"'{tensor.name}' of shape {list(shapes[largest])} alone is "
                         f"{tensor_bytes(self.graph, largest, shapes[largest]):,}), more than the {limit:,} bytes "
                         f"available{' on the GPU' if on_gpu else ''}; use smaller opt shapes or set "
                         f"{MEMORY_LIMIT_ENV}")

    def _choose(self, spec: LayerSpec, profile_index: int, by_which, slots, host_values) -> tuple[Tactic, Any]:
        """Time the candidates for one layer, ask the selector, record and return the choice (prepared)."""
        shapes = by_which[1].shapes
        tctx = tactic_context(self.graph, spec, self.device, shapes, self.build_options)
        # what a tactic with reads_bfloat16 sees instead: BF16 tensors as BF16 (the same as tctx without any)
        self._raw = tactic_context(self.graph, spec, self.device, shapes, self.build_options, widen=False)
        level = int(self.config.builder_optimization_level)
        candidates = self._candidates(spec, tctx, level)
        timings = self._time(spec, tctx, candidates, level, slots, host_values, shapes)
        algorithms = [self.algorithm_record(t, timings.get(t.id, 0.0), self._seen_by(t, tctx)) for t in candidates]
        context = AlgorithmContext(
            spec.layer.name, spec.layer.type.value,
            tuple(tuple(tuple(r.shapes[i]) if i is not None else () for r in by_which) for i in spec.inputs),
            tuple(tuple(tuple(r.shapes[o]) for r in by_which) for o in spec.outputs),
            spec.layer.precision.value, profile_index)
        selector = self.selector
        allowed = list(range(len(candidates))) if selector is None else self.ask_selector(selector, context,
                                                                                            algorithms)
        ranked = sorted(allowed, key=lambda k: (timings.get(candidates[k].id, 0.0) if timings else
                                                candidates[k].heuristic_rank, candidates[k].heuristic_rank,
                                                candidates[k].id))
        # The runtime prepares a layer's tactic from the plan's build-time shapes (dynamic dims as -1), not from
        # the opt shapes it was timed at: prepare it that way here, so the trial run uses the very state the
        # runtime will, and a tactic that cannot prepare from those shapes is never chosen.
        failures = []
        for best in ranked:
            tactic = candidates[best]
            try:
                state = tactic.prepare(tactic_context(self.graph, spec, self.device, widen=not tactic.reads_bfloat16))
                break
            except Exception as exc:  # noqa: BLE001 - the next-best candidate is tried
                failures.append(f"{tactic.name}: {type(exc).__name__}: {exc}")
                self.log(Severity.VERBOSE, f"[{spec.layer.name}] tactic {tactic.name} dropped: it cannot prepare "
                                           f"from the plan's shapes ({failures[-1]})")
        else:
            raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): no allowed tactic can prepare "
                             "from the plan's shapes: " + "; ".join(failures))
        spec.tactic_ids.append(tactic.id)
        spec.tactic_names.append(tactic.name)
        self.max_workspace = max(self.max_workspace, self._workspace_need(tactic, spec, self._seen_by(tactic, tctx)))
        self.contexts.append(context)
        self.chosen.append(algorithms[best])
        return tactic, state

    def _candidates(self, spec: LayerSpec, tctx: TacticContext, level: int) -> list[Tactic]:
        limit = self.config.get_memory_pool_limit(MemoryPoolType.WORKSPACE)
        eligible = []
        sources = self.config.get_tactic_sources()
        portable_only = self.config.hardware_compatibility_level != HardwareCompatibilityLevel.NONE
        skipped: dict[str, list[str]] = {}  # reason -> names of the tactics skipped for it, logged once per reason
        for tactic in sorted(tactics_for(spec.layer.type, self.device), key=lambda t: (t.heuristic_rank, t.id)):
            if tactic.min_optimization_level > level:
                continue
            if tactic.runs_int8 != (spec.layer.precision == DataType.INT8 and spec.layer.type != LayerType.REFORMAT):
                continue  # INT8 layers run only on INT8 tactics, and those only on INT8 layers (an int8 REFORMAT
                # copies bytes between formats: the ordinary copy tactics run it)
            if portable_only and not tactic.hardware_compatible:
                skipped.setdefault("it runs only on the build device's architecture (hardware_compatibility_level "
                                   "AMPERE_PLUS)", []).append(tactic.name)
                continue
            unhandled = layer_formats(tctx) - tactic.formats
            if unhandled:
                self.log(Severity.VERBOSE, f"[{spec.layer.name}] tactic {tactic.name} skipped: it does not run "
                                           f"{'/'.join(sorted(f.value for f in unhandled))} tensors")
                continue
            if not allowed_by_sources(tactic, sources):
                skipped.setdefault(f"tactic source {tactic.source.name} is disabled (set_tactic_sources)",
                                   []).append(tactic.name)
                continue
            try:
                ok = tactic.supports(self._seen_by(tactic, tctx))
            except Exception as exc:  # noqa: BLE001 - a crashing supports() only removes that tactic
                ok = f"supports() raised {exc!r}"
            if ok is not True:
                skipped.setdefault(str(ok or "no"), []).append(tactic.name)
                continue
            try:
                workspace = self._workspace_need(tactic, spec, self._seen_by(tactic, tctx))
            except Exception as exc:  # noqa: BLE001 - e.g. a cuDNN engine that builds at the opt shape, not the max
                skipped.setdefault(f"workspace_bytes() raised {exc!r}", []).append(tactic.name)
                continue
            if workspace > limit:
                skipped.setdefault(f"workspace {workspace} bytes exceeds the limit of {limit}", []).append(tactic.name)
                continue
            eligible.append(tactic)
        for line in skipped_tactic_lines(spec.layer.name, skipped):
            self.log(Severity.VERBOSE, line)
        if not eligible:
            raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): no tactic can run it within the "
                             f"workspace limit of {limit} bytes")
        capturable = [tactic for tactic in eligible if tactic.capturable]
        if self.device == "gpu" and capturable and len(capturable) < len(eligible):
            self.log(Severity.VERBOSE, f"[{spec.layer.name}] left out, CUDA graphs cannot capture them: "
                                       + ", ".join(t.name for t in eligible if not t.capturable))
            eligible = capturable
        return eligible

    def _time(self, spec: LayerSpec, tctx: TacticContext, candidates: list[Tactic], level: int, slots, host_values,
              shapes) -> dict[int, float]:
        """Median time (ms) of each candidate; {} when not timed (single candidate or optimization level 0)."""
        if level == 0 or len(candidates) < 2:
            return {}
        key = layer_signature(spec.layer.type.value, spec.layer.params, tctx.inputs, spec.layer.precision.value,
                              f"{self.device}:{self.backend.device_name}", spec.layer.epilogue.to_json(),
                              _format_key(tctx))
        if self.cache is not None:
            entry = self.cache.query(key)
            if entry is not None and all(str(t.id) in entry["timings_ms"] for t in candidates):
                self.log(Severity.VERBOSE, f"[{spec.layer.name}] timing cache hit")
                return {t.id: entry["timings_ms"][str(t.id)] for t in candidates}
            self.log(Severity.VERBOSE, f"[{spec.layer.name}] timing cache miss")
        iterations = max(3, int(self.config.avg_timing_iterations)) + (2 if level >= 4 else 0)
        timings: dict[int, float] = {}
        failures = []
        trial = list(slots)  # candidates write into their own output buffers
        for tactic in candidates:
            for o in spec.outputs:
                trial[o] = empty_in_format(self.backend.xp, shapes[o],
                                           storage_dtype(self.graph.tensors[o].dtype, self.device),
                                           self.graph.tensors[o].format)
            try:
                step = make_step(spec, tactic, tactic.prepare(self._seen_by(tactic, tctx)), host_values, self.graph)
                workspace = self._workspace(tactic, spec, shapes)
                self._run_once(step, trial, workspace)  # warm-up
                samples = self.backend.time_runs(partial(run_step, step, trial, workspace, self.backend.xp),
                                                 iterations)
            except Exception as exc:  # noqa: BLE001 - a failing candidate is dropped, not fatal
                failures.append(f"{tactic.name}: {exc}")
                continue
            timings[tactic.id] = statistics.median(samples)
            self.log(Severity.VERBOSE, f"[{spec.layer.name}] {tactic.name} (0x{tactic.id:08x}): "
                                       f"{timings[tactic.id]:.4f} ms")
        if not timings:
            raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): every tactic failed: "
                             + "; ".join(failures))
        candidates[:] = [t for t in candidates if t.id in timings]
        self.timed_layers += 1
        if self.cache is not None:
            fastest = min(timings, key=timings.get)
            source = next((t.source for t in candidates if t.id == fastest), None)
            self.cache.update(key, timings, fastest, None if source is None else source.name)
        return timings

    def _seen_by(self, tactic: Tactic, tctx: TacticContext) -> TacticContext:
        """The layer's context as `tactic` sees it: `tctx` (BF16 widened to FLOAT), or the unwidened one of the
        layer being chosen for a tactic that reads bfloat16 itself."""
        return self._raw if tactic.reads_bfloat16 else tctx

    def _workspace_need(self, tactic: Tactic, spec: LayerSpec, tctx: TacticContext) -> int:
        """Workspace at the opt shape and at the max shape of the profile being swept: the runtime runs this
        profile's tactic only on shapes inside the profile and sizes the workspace by them."""
        at_max = tactic_context(self.graph, spec, self.device, self.max_shapes, tctx.extra,
                                widen=not tactic.reads_bfloat16)
        return max(int(tactic.workspace_bytes(c)) for c in (tctx, at_max))

    def _workspace(self, tactic: Tactic, spec: LayerSpec, shapes) -> Any:
        """Tactics are timed and run with the workspace they ask for at these shapes, as the runtime gives it."""
        nbytes = int(tactic.workspace_bytes(tactic_context(self.graph, spec, self.device, shapes, self.build_options,
                                                           widen=not tactic.reads_bfloat16)))
        return self.backend.allocate(nbytes) if nbytes else None

    def _run_control_flow_layer(self, spec: LayerSpec, step, slots: list[Any], shapes, learnt: bool,
                                tactic: Tactic) -> None:
        """Run a conditional or loop in the trial run (its subgraph layers' tactics are chosen on the way)."""
        if learnt:
            self._run_control_flow(spec, step, slots, shapes)
            return
        for o in spec.outputs:
            slots[o] = empty_in_format(self.backend.xp, shapes[o], storage_dtype(self.graph.tensors[o].dtype,
                                                                                 self.device),
                                       self.graph.tensors[o].format)
        self._run_once(step, slots, self._workspace(tactic, spec, shapes))
        if step.data_dependent:
            for o in spec.outputs:
                slots[o] = _fit_to(slots[o], shapes[o], self.backend.xp)

    def _run_control_flow(self, spec: LayerSpec, step, slots: list[Any], shapes) -> None:
        """Run a conditional or loop whose output shapes were learnt from the reference run on the sample inputs.
        Its inputs now come from the chosen tactics, whose slightly different values can take the other branch or
        loop another number of times (Faster R-CNN's If gave 17 values where the trial had 19): run its kernel
        into arrays of the sizes it makes, then fit them to the learnt shapes the layers after it are timed at."""
        xp = self.backend.xp
        inputs = [None if i is None else slots[i] for i in step.inputs]
        for position, value in step.host_operands:
            inputs[position] = value
        results = layer_impl(spec.layer.type).compute(spec.layer, inputs, xp)
        for o, result in zip(spec.outputs, results):
            dtype = storage_dtype(self.graph.tensors[o].dtype, self.device)
            slots[o] = _fit_to(xp.asarray(result).astype(dtype, copy=False), shapes[o], xp)
        self.backend.synchronize()

    def _run_once(self, step, slots: list[Any], workspace: Any) -> None:
        run_step(step, slots, workspace, self.backend.xp)
        self.backend.synchronize()

    def algorithm_record(self, tactic: Tactic, timing: float, tctx: TacticContext) -> Algorithm:
        """The IAlgorithm an algorithm selector sees for `tactic` at tctx's shapes (also the body-tactic chooser's,
        engine/body_tactic_choice.py)."""
        return Algorithm(
            AlgorithmVariant(stable_tactic_id(f"{tactic.backend}:{tactic.layer_type.value}"), tactic.id),
            tactic.name, float(timing), int(tactic.workspace_bytes(tctx)),
            tuple(AlgorithmIOInfo(i.dtype, tuple(i.shape)) for i in tctx.inputs if i is not None),
            tuple(AlgorithmIOInfo(o.dtype, tuple(o.shape)) for o in tctx.outputs))

    def ask_selector(self, selector, context: AlgorithmContext, algorithms: list[Algorithm]) -> list[int]:
        """The indices of `algorithms` the user's selector allows; a selector that raises or answers nothing valid
        is a BuildError naming the layer (shared with the body-tactic chooser)."""
        try:
            chosen = list(selector.select_algorithms(context, list(algorithms)))
        except Exception as exc:
            raise BuildError(f"layer '{context.name}': the algorithm selector raised {type(exc).__name__}: {exc}") \
                from exc
        if not chosen:
            raise BuildError(f"layer '{context.name}': the algorithm selector returned no algorithm "
                             f"(choices: {[a.tactic_name for a in algorithms]})")
        for index in chosen:
            if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < len(algorithms):
                raise BuildError(f"layer '{context.name}': the algorithm selector returned index {index!r}, valid "
                                 f"indices are 0..{len(algorithms) - 1}")
        return [int(i) for i in chosen]


def _format_key(tctx: TacticContext) -> list[str] | None:
    """The formats as the timing cache's key takes them: only for channels-last layers (other keys unchanged)."""
    if not tctx.channels_last:
        return None
    return [None if f is None else f.value for f in (*tctx.input_formats, *tctx.output_formats)]


def input_shapes(graph: LoweredGraph, profile: dict[str, tuple], which: int) -> dict[int, tuple[int, ...]]:
    """Input shapes at min (0), opt (1) or max (2) of a profile; static inputs use their shape."""
    shapes = {}
    for i in graph.inputs:
        spec = graph.tensors[i]
        shapes[i] = tuple(profile[spec.name][which]) if spec.name in profile else tuple(spec.shape)
    return shapes


def input_values(graph: LoweredGraph, values: dict[str, tuple], which: int) -> dict[int, np.ndarray]:
    """Values of the shape inputs at min (0), opt (1) or max (2) of a profile."""
    result = {}
    for i in graph.shape_inputs:
        spec = graph.tensors[i]
        result[i] = np.asarray(values[spec.name][which], dtype=nptype(spec.dtype)).reshape(spec.shape)
    return result


def _fit_to(array: Any, shape: tuple[int, ...], xp: Any) -> Any:
    """A data-dependent output grown with zeros (or cut) to the shape the sweep times the layers after it at: its
    upper bound, or the size one reference run on the sample inputs gave. The chosen tactics compute slightly
    different values from that run, and a score near a threshold then selects a few more or fewer boxes (zeros
    are valid indices, as _sample's are)."""
    if tuple(array.shape) == tuple(shape):
        return array
    fitted = xp.zeros(shape, dtype=array.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(array.shape, shape))
    fitted[common] = array[common]
    return fitted


def _sample(rng: np.random.Generator, shape, dtype: DataType) -> np.ndarray:
    """Timing inputs: standard normal floats; zeros for integers (always valid as indices); True for booleans (a
    loop's condition that holds runs its body, which is what is worth timing)."""
    if DataType(dtype).is_floating:
        return rng.standard_normal(shape).astype(nptype(dtype))
    if DataType(dtype) == DataType.BOOL:
        return np.ones(shape, dtype=np.bool_)
    return np.zeros(shape, dtype=nptype(dtype))
