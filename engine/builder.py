"""Builder: network + config → optimized, tactic-selected, serialized plan.

Order of work: copy and validate the network, infer shapes, check profiles, run the passes (passes/pipeline.py),
lower, then select a tactic per device layer and optimization profile by timing every eligible tactic on real
inputs of that profile's opt shape (one reference sweep through the network per profile provides them), consult
the timing cache and the algorithm selector, plan activation memory, and write the plan.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from . import __version__
from .algorithm_selector import Algorithm, AlgorithmContext, AlgorithmIOInfo, AlgorithmVariant
from .backends import get_backend
from .config import BuilderConfig, BuilderFlag, MemoryPoolType, resolve_device
from .dtypes import DataType, nptype
from .enums import LayerType
from .errors import BuildError, EngineError
from .graph import (
    LoweredGraph,
    device_lifetimes,
    lower,
    resolve_shapes,
    shape_input_names,
    tactic_infos,
    tensor_nbytes,
)
from .logger import Logger, Severity
from .network import NetworkDefinition
from .ops.activation_post import apply_post_ops, pending_post_ops
from .passes.memory import plan_activation_memory
from .passes.pipeline import run_passes
from .plan import serialize_plan
from .profile import OptimizationProfile
from .shape_inference import infer_network
from .tactics import TacticContext, tactics_for
from .tactics.base import stable_tactic_id
from .timing_cache import TimingCache, layer_signature


class NetworkDefinitionCreationFlag:
    EXPLICIT_BATCH = 0


class Builder:
    def __init__(self, logger: Logger | None = None):
        self.logger = logger or Logger()
        self.max_threads = 1

    def create_network(self, flags: int = 0) -> NetworkDefinition:
        return NetworkDefinition()

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig()

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile()

    @property
    def platform_has_fast_fp16(self) -> bool:
        from .backends import gpu_available

        return gpu_available()

    @property
    def platform_has_tf32(self) -> bool:
        from .backends import gpu_available

        return gpu_available()

    def is_network_supported(self, network: NetworkDefinition, config: BuilderConfig) -> bool:
        try:
            network.validate()
            infer_network(network)
        except EngineError:
            return False
        return True

    def build_serialized_network(self, network: NetworkDefinition, config: BuilderConfig) -> bytes:
        """Build and serialize. Raises BuildError/ShapeError with a message naming the layer or tensor."""
        return _Build(self.logger, network, config).run()

    def build_engine(self, network: NetworkDefinition, config: BuilderConfig):
        """Build and deserialize in one step (TensorRT's deprecated convenience, kept for scripts)."""
        from .runtime import Runtime

        return Runtime(self.logger).deserialize_cuda_engine(self.build_serialized_network(network, config))


class _Build:
    def __init__(self, logger: Logger, network: NetworkDefinition, config: BuilderConfig):
        self.logger = logger
        self.source = network
        self.config = config
        self.log = lambda sev, msg: logger.log(sev, msg)

    def run(self) -> bytes:
        start = time.perf_counter()
        config = self.config
        device = resolve_device(config.device)
        if not 0 <= int(config.builder_optimization_level) <= 5:
            raise BuildError(f"builder_optimization_level must be 0..5, got {config.builder_optimization_level}")
        if config.get_flag(BuilderFlag.INT8) and config.int8_calibrator is None:
            self.log(Severity.WARNING, "INT8 flag set without a calibrator or Q/DQ layers: INT8 is not used")
        self.source.validate()  # before cloning: a misordered network must fail with a message, not a KeyError
        network = clone_network(self.source)
        infer_network(network)
        profiles = self._profiles(network)
        self.shape_values = self._shape_input_values(network)
        layers_before = network.num_layers
        constraints = "obey" if config.get_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS) else \
            "prefer" if config.get_flag(BuilderFlag.PREFER_PRECISION_CONSTRAINTS) else "none"
        report = run_passes(network, fp16=config.get_flag(BuilderFlag.FP16), constraints=constraints,
                            log=self.log)
        graph = lower(network)
        host_layers = sum(1 for s in graph.layers if s.host and s.layer.type != LayerType.CONSTANT)
        self.log(Severity.INFO, f"optimized network: {layers_before} layers -> {len(graph.device_layers)} device "
                                f"layers, {host_layers} host shape layers, {len(graph.constants)} constants")
        backend = get_backend(device)
        cache = config.get_timing_cache()
        if config.get_flag(BuilderFlag.DISABLE_TIMING_CACHE):
            cache = None
        elif cache is None:
            cache = TimingCache()  # a private cache still deduplicates identical layers within this build
        selection = _TacticSelection(self, graph, profiles, backend, device, cache)
        with np.errstate(all="ignore"):  # the sweep runs on synthetic inputs: overflow or NaN there means nothing
            selection.run()
        memory = self._memory_report(graph, profiles, selection.max_workspace)
        build_ms = (time.perf_counter() - start) * 1e3
        meta = {
            "name": self.source.name,
            "device": device,
            "device_name": backend.device_name,
            "profiles": [{k: [list(s) for s in v] for k, v in p.items()} for p in profiles],
            "shape_input_values": [{k: [list(s) for s in v] for k, v in p.items()} for p in self.shape_values],
            "flags": {f.name: config.get_flag(f) for f in BuilderFlag},
            "optimization_level": int(config.builder_optimization_level),
            "passes": report,
            "layers_before": layers_before,
            "memory": memory,
            "builder": f"polyx-engine {__version__}",
        }
        plan = serialize_plan(graph, meta)
        self.log(Severity.INFO, f"build finished in {build_ms:.0f} ms: plan {len(plan)} bytes, activation memory "
                                f"{memory['planned_peak_bytes']} bytes planned vs {memory['naive_bytes']} naive")
        self.build_time_ms = build_ms
        return plan

    def _profiles(self, network: NetworkDefinition) -> list[dict[str, tuple]]:
        dynamic = {t.name: t for t in network.inputs if t.shape is None or any(d < 0 for d in t.shape)}
        user = [p for p in self.config.profiles if p]
        names = {t.name for t in network.inputs}
        profiles = []
        for index, profile in enumerate(user or [OptimizationProfile()]):
            shapes = {}
            for name in profile.inputs:
                if name not in names:
                    raise BuildError(f"optimization profile {index} names '{name}', which is not a network input "
                                     f"(inputs: {sorted(names)})")
            for tensor in network.inputs:
                entry = profile.get_shape(tensor.name)
                if entry is None:
                    if tensor.name in dynamic:
                        raise BuildError(f"input '{tensor.name}' has dynamic shape {tensor.shape}: optimization "
                                         f"profile {index} must give its min/opt/max shapes")
                    continue
                lo, opt, hi = entry
                if len(lo) != len(tensor.shape):
                    raise BuildError(f"optimization profile {index}: '{tensor.name}' has rank {len(tensor.shape)} "
                                     f"{tensor.shape} but the profile gives rank {len(lo)} {lo}")
                for d, a, c in zip(tensor.shape, lo, hi):
                    if d >= 0 and not a == d == c:
                        raise BuildError(f"optimization profile {index}: '{tensor.name}' has static shape "
                                         f"{tensor.shape}, profile min {lo} / max {hi} must match it")
                shapes[tensor.name] = (tuple(lo), tuple(opt), tuple(hi))
            profiles.append(shapes)
        return profiles

    def _shape_input_values(self, network: NetworkDefinition) -> list[dict[str, tuple]]:
        """Per profile, (min, opt, max) values of each shape input (set_shape_input); zeros when not given."""
        result = []
        for index, profile in enumerate([p for p in self.config.profiles if p] or [OptimizationProfile()]):
            values = {}
            shape_names = shape_input_names(network)
            for tensor in network.inputs:
                if tensor.name not in shape_names:
                    continue
                given = profile.get_shape_input(tensor.name)
                size = int(np.prod(tensor.shape, dtype=np.int64))
                if given is None:
                    self.log(Severity.WARNING, f"input '{tensor.name}' is a shape input (small integer tensor); "
                                               f"profile {index} gives no value range (set_shape_input): building "
                                               "with zeros")
                    given = ((0,) * size,) * 3
                if any(len(v) != size for v in given):
                    raise BuildError(f"optimization profile {index}: shape input '{tensor.name}' holds {size} "
                                     f"values, set_shape_input gave {[len(v) for v in given]}")
                cast = float if tensor.dtype.is_floating else int
                values[tensor.name] = tuple(tuple(cast(x) for x in v) for v in given)
            result.append(values)
        return result

    def _memory_report(self, graph: LoweredGraph, profiles, workspace: int) -> dict[str, Any]:
        lifetimes = device_lifetimes(graph)
        order = sorted(lifetimes)
        peak = naive = 0
        for profile, values in zip(profiles, self.shape_values):
            resolved = resolve_shapes(graph, _input_shapes(graph, profile, which=2),
                                      _input_values(graph, values, which=2))
            plan = plan_activation_memory([tensor_nbytes(graph, resolved.shapes, i) for i in order],
                                          [lifetimes[i] for i in order])
            peak, naive = max(peak, plan.peak_bytes), max(naive, plan.naive_bytes)
        return {"planned_peak_bytes": peak, "naive_bytes": naive, "workspace_bytes": workspace,
                "planned_tensors": len(order)}


def _input_shapes(graph: LoweredGraph, profile: dict[str, tuple], which: int) -> dict[int, tuple[int, ...]]:
    """Input shapes at min (0), opt (1) or max (2) of a profile; static inputs use their shape."""
    shapes = {}
    for i in graph.inputs:
        spec = graph.tensors[i]
        shapes[i] = tuple(profile[spec.name][which]) if spec.name in profile else tuple(spec.shape)
    return shapes


def _input_values(graph: LoweredGraph, values: dict[str, tuple], which: int) -> dict[int, np.ndarray]:
    """Values of the shape inputs at min (0), opt (1) or max (2) of a profile."""
    result = {}
    for i in graph.shape_inputs:
        spec = graph.tensors[i]
        result[i] = np.asarray(values[spec.name][which], dtype=nptype(spec.dtype)).reshape(spec.shape)
    return result


class _TacticSelection:
    """Sweeps the network once per optimization profile at that profile's opt shapes (TensorRT tunes each profile
    separately: tactics tuned for batch 32 can be several times slower at batch 1), choosing each device layer's
    tactic for that profile on the way."""

    def __init__(self, build: _Build, graph: LoweredGraph, profiles, backend, device: str, cache: TimingCache | None):
        self.build = build
        self.config = build.config
        self.graph = graph
        self.profiles = profiles
        self.backend = backend
        self.device = device
        self.cache = cache
        self.max_workspace = 0
        self.max_shapes: Any = None  # tensor shapes at the max of the profile being swept
        self.contexts: list[AlgorithmContext] = []
        self.chosen: list[Algorithm] = []
        self.timed_layers = 0
        # TF32 tensor-core math for FP32 layers only when asked for (BuilderFlag.TF32): it rounds inputs to 10
        # mantissa bits, which FP32 accuracy checks against onnxruntime (1e-4) do not tolerate.
        self.build_options = {"tf32": self.config.get_flag(BuilderFlag.TF32)}

    def run(self) -> None:
        for spec in self.graph.layers:
            spec.tactic_ids, spec.tactic_names = [], []
        for index in range(len(self.profiles)):
            self._sweep(index)
        for spec in self.graph.device_layers:
            spec.tactic_id, spec.tactic_name = spec.tactic_ids[0], spec.tactic_names[0]
        selector = self.config.algorithm_selector
        if selector is not None:
            selector.report_algorithms(self.contexts, self.chosen)
        if self.cache is not None:
            self.build.log(Severity.VERBOSE, f"timing cache: {self.cache.hits} hits, {self.cache.misses} misses")
        profiles = f" in each of {len(self.profiles)} profiles" if len(self.profiles) > 1 else ""
        self.build.log(Severity.INFO, f"tactic selection: {len(self.graph.device_layers)} layers{profiles}, "
                                      f"{self.timed_layers} timed")

    def _sweep(self, profile_index: int) -> None:
        """Run the network at profile `profile_index`'s opt shapes, appending each device layer's tactic choice."""
        graph, backend, xp = self.graph, self.backend, self.backend.xp
        shape_values = self.build.shape_values[profile_index]
        shapes_by_which = [resolve_shapes(graph, _input_shapes(graph, self.profiles[profile_index], which),
                                          _input_values(graph, shape_values, which)) for which in (0, 1, 2)]
        resolved = shapes_by_which[1]
        shapes = resolved.shapes
        self.max_shapes = shapes_by_which[2].shapes
        values: dict[int, Any] = {i: backend.to_device(v) for i, v in resolved.host_values.items()}
        rng = np.random.default_rng(0)
        for i in graph.inputs:
            if i not in values:  # shape inputs already hold their profile values
                values[i] = backend.to_device(_sample(rng, shapes[i], graph.tensors[i].dtype))
        last_use = {}
        for step, spec in enumerate(graph.layers):
            for i in spec.inputs:
                if i is not None:
                    last_use[i] = step
        keep = set(graph.outputs) | set(resolved.host_values)
        level = int(self.config.builder_optimization_level)
        limit = self.config.get_memory_pool_limit(MemoryPoolType.WORKSPACE)
        selector = self.config.algorithm_selector
        for step, spec in enumerate(graph.layers):
            if spec.host or spec.layer.type == LayerType.CONSTANT:
                continue
            ins_info, outs_info = tactic_infos(graph, spec, shapes)
            tctx = TacticContext(spec.layer, ins_info, outs_info, self.device, dict(self.build_options))
            candidates = self._candidates(spec, tctx, level, limit)
            inputs = [None if i is None else values[i] for i in spec.inputs]
            timings = self._time(spec, tctx, candidates, inputs, level, shapes)
            algorithms = [self._algorithm(t, timings.get(t.id, 0.0), tctx) for t in candidates]
            context = AlgorithmContext(
                spec.layer.name, spec.layer.type.value,
                tuple(tuple(tuple(r.shapes[i]) if i is not None else () for r in shapes_by_which) for i in spec.inputs),
                tuple(tuple(tuple(r.shapes[o]) for r in shapes_by_which) for o in spec.outputs),
                spec.layer.precision.value, profile_index)
            allowed = list(range(len(candidates)))
            if selector is not None:
                allowed = self._ask_selector(selector, context, algorithms)
            best = min(allowed, key=lambda k: (timings.get(candidates[k].id, 0.0) if timings else
                                               candidates[k].heuristic_rank, candidates[k].heuristic_rank,
                                               candidates[k].id))
            tactic = candidates[best]
            spec.tactic_ids.append(tactic.id)
            spec.tactic_names.append(tactic.name)
            self.max_workspace = max(self.max_workspace, self._workspace_need(tactic, spec, tctx))
            self.contexts.append(context)
            self.chosen.append(algorithms[best])
            outputs = [xp.empty(shapes[o], dtype=nptype(graph.tensors[o].dtype)) for o in spec.outputs]
            self._run_once(spec, tactic, tactic.prepare(tctx), inputs, outputs, self._workspace(tactic, tctx))
            for o, array in zip(spec.outputs, outputs):
                values[o] = array
            for i in spec.inputs:
                if i is not None and last_use.get(i) == step and i not in keep:
                    values.pop(i, None)

    def _candidates(self, spec, tctx: TacticContext, level: int, limit: int):
        from .enums import allowed_by_sources

        eligible = []
        sources = self.config.get_tactic_sources()
        for tactic in sorted(tactics_for(spec.layer.type, self.device), key=lambda t: (t.heuristic_rank, t.id)):
            if tactic.min_optimization_level > level:
                continue
            if not allowed_by_sources(tactic, sources):
                self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] tactic {tactic.name} skipped: tactic source "
                                                 f"{tactic.source.name} is disabled (set_tactic_sources)")
                continue
            try:
                ok = tactic.supports(tctx)
            except Exception as exc:  # noqa: BLE001 - a crashing supports() only removes that tactic
                ok = f"supports() raised {exc!r}"
            if ok is not True:
                self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] tactic {tactic.name} skipped: {ok or 'no'}")
                continue
            workspace = self._workspace_need(tactic, spec, tctx)
            if workspace > limit:
                self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] tactic {tactic.name} skipped: workspace "
                                                 f"{workspace} bytes exceeds the limit of {limit}")
                continue
            eligible.append(tactic)
        if not eligible:
            raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): no tactic can run it within the "
                             f"workspace limit of {limit} bytes")
        capturable = [tactic for tactic in eligible if tactic.capturable]
        if self.device == "gpu" and capturable and len(capturable) < len(eligible):
            self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] left out, CUDA graphs cannot capture them: "
                                             + ", ".join(t.name for t in eligible if not t.capturable))
            eligible = capturable
        return eligible

    def _time(self, spec, tctx, candidates, inputs, level: int, shapes) -> dict[int, float]:
        """Median time (ms) of each candidate; {} when not timed (single candidate or optimization level 0)."""
        if level == 0 or len(candidates) < 2:
            return {}
        key = layer_signature(spec.layer.type.value, spec.layer.params, tctx.inputs, spec.layer.precision.value,
                              f"{self.device}:{self.backend.device_name}")
        if self.cache is not None:
            entry = self.cache.query(key)
            if entry is not None and all(str(t.id) in entry["timings_ms"] for t in candidates):
                self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] timing cache hit")
                return {t.id: entry["timings_ms"][str(t.id)] for t in candidates}
            self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] timing cache miss")
        graph, xp = self.graph, self.backend.xp
        iterations = max(3, int(self.config.avg_timing_iterations)) + (2 if level >= 4 else 0)
        timings: dict[int, float] = {}
        failures = []
        for tactic in candidates:
            outputs = [xp.empty(shapes[o], dtype=nptype(graph.tensors[o].dtype)) for o in spec.outputs]
            try:
                state, workspace = tactic.prepare(tctx), self._workspace(tactic, tctx)
                self._run_once(spec, tactic, state, inputs, outputs, workspace)  # warm-up
                samples = []
                for _ in range(iterations):
                    with self.backend.timer() as timer:
                        self._run_once(spec, tactic, state, inputs, outputs, workspace)
                    samples.append(timer.elapsed_ms)
            except Exception as exc:  # noqa: BLE001 - a failing candidate is dropped, not fatal
                failures.append(f"{tactic.name}: {exc}")
                continue
            timings[tactic.id] = statistics.median(samples)
            self.build.log(Severity.VERBOSE, f"[{spec.layer.name}] {tactic.name} (0x{tactic.id:08x}): "
                                             f"{timings[tactic.id]:.4f} ms")
        if not timings:
            raise BuildError(f"layer '{spec.layer.name}' ({spec.layer.type.value}): every tactic failed: "
                             + "; ".join(failures))
        for tactic in list(candidates):
            if tactic.id not in timings:
                candidates.remove(tactic)
        self.timed_layers += 1
        if self.cache is not None:
            self.cache.update(key, timings, min(timings, key=timings.get))
        return timings

    def _workspace_need(self, tactic, spec, tctx: TacticContext) -> int:
        """Workspace at the opt shape and at the max shape of the profile being swept: the runtime runs this
        profile's tactic only on shapes inside the profile and sizes the workspace by them."""
        at_max = TacticContext(spec.layer, *tactic_infos(self.graph, spec, self.max_shapes), self.device, tctx.extra)
        return max(int(tactic.workspace_bytes(c)) for c in (tctx, at_max))

    def _workspace(self, tactic, tctx: TacticContext):
        """Tactics are timed and run with the workspace they ask for, as the runtime gives it."""
        nbytes = int(tactic.workspace_bytes(tctx))
        return self.backend.allocate(nbytes) if nbytes else None

    def _run_once(self, spec, tactic, state, inputs, outputs, workspace) -> None:
        tactic.run(state, inputs, outputs, workspace, self.backend.xp)
        residual, activation = pending_post_ops(tactic, spec.layer)
        if activation is not None or residual is not None:
            apply_post_ops(outputs[0], None if residual is None else inputs[residual], activation, self.backend.xp)
        self.backend.synchronize()

    def _algorithm(self, tactic, timing: float, tctx: TacticContext) -> Algorithm:
        return Algorithm(
            AlgorithmVariant(stable_tactic_id(f"{tactic.backend}:{tactic.layer_type.value}"), tactic.id),
            tactic.name, float(timing), int(tactic.workspace_bytes(tctx)),
            tuple(AlgorithmIOInfo(i.dtype, tuple(i.shape)) for i in tctx.inputs if i is not None),
            tuple(AlgorithmIOInfo(o.dtype, tuple(o.shape)) for o in tctx.outputs))

    def _ask_selector(self, selector, context: AlgorithmContext, algorithms: list[Algorithm]) -> list[int]:
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


def _sample(rng: np.random.Generator, shape, dtype: DataType) -> np.ndarray:
    """Timing inputs: standard normal floats; zeros for integers and booleans (always valid as indices)."""
    if DataType(dtype).is_floating:
        return rng.standard_normal(shape).astype(nptype(dtype))
    return np.zeros(shape, dtype=nptype(dtype))


def clone_network(network: NetworkDefinition) -> NetworkDefinition:
    """Copy the IR so passes never modify the user's network (weights arrays are shared, never mutated)."""
    from .network import Layer, Tensor

    copy = NetworkDefinition(network.name)
    mapping: dict[int, Tensor] = {}

    def clone_tensor(t: Tensor) -> Tensor:
        new = Tensor(t.name, t.dtype, t.shape)
        new.is_network_input = t.is_network_input
        mapping[id(t)] = new
        return new

    for t in network.inputs:
        copy._inputs.append(clone_tensor(t))
        copy._tensor_names.add(t.name)
    for layer in network.layers:
        new = Layer(layer.type, layer.name, [None if t is None else mapping[id(t)] for t in layer.inputs],
                    {k: (v if k == "weights" else _copy_param(v)) for k, v in layer.params.items()})
        object.__setattr__(new, "precision", layer.precision)
        object.__setattr__(new, "precision_is_set", layer.precision_is_set)
        new.output_types.update(layer.output_types)
        new.metadata.update(layer.metadata)
        for t in layer.outputs:
            out = clone_tensor(t)
            out.producer = new
            new.outputs.append(out)
            copy._tensor_names.add(t.name)
        copy.layers.append(new)
        copy._layer_names.add(new.name)
    for t in network.outputs:
        if id(t) not in mapping:
            raise BuildError(f"network output '{t.name}' is not produced by any layer of the network")
        copy.mark_output(mapping[id(t)])
    return copy


def _copy_param(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_param(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_param(v) for k, v in value.items()}
    return value


def build_engine_for_feeds(network: NetworkDefinition, feeds: dict[str, np.ndarray], logger: Logger | None = None,
                           **config_options):
    """Test helper: one profile whose min = opt = max are the feeds' shapes; options set config attributes
    (`fp16=True` sets the FP16 flag)."""
    from .runtime import Runtime

    logger = logger or Logger(Logger.ERROR)
    builder = Builder(logger)
    config = builder.create_builder_config()
    config.builder_optimization_level = config_options.pop("optimization_level", 0)
    config.device = config_options.pop("device", None)
    if config_options.pop("fp16", False):
        config.set_flag(BuilderFlag.FP16)
    for key, value in config_options.items():
        setattr(config, key, value)
    profile = builder.create_optimization_profile()
    shape_names = shape_input_names(network)
    for tensor in network.inputs:
        if tensor.name in feeds and (tensor.shape is None or any(d < 0 for d in tensor.shape)):
            shape = np.shape(feeds[tensor.name])
            profile.set_shape(tensor.name, shape, shape, shape)
        if tensor.name in feeds and tensor.name in shape_names:
            value = np.asarray(feeds[tensor.name]).ravel().tolist()
            profile.set_shape_input(tensor.name, value, value, value)
    config.add_optimization_profile(profile)
    return Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
