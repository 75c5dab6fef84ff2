"""Builder: network + config → optimized, tactic-selected, serialized plan.

Order of work: validate the network, lower it once into the builder's own ir.Graph (the user's network is never
edited), infer shapes strictly, check profiles, run the pass pipeline (passes/pipeline.py), index the graph
(graph.lower), select a tactic per device layer and optimization profile by timing (tactic_selection.py), plan
activation memory (memory_plan.py), and write the plan.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np

from .backends import get_backend
from .calibration import DynamicRanges, calibrate
from .calibrator import read_cache, write_cache
from .channels_last_choice import choice_record, choose_chains, layers_to_time, same_chains
from .compatibility import build_record
from .config import CHANNELS_LAST_AUTO, BuilderConfig, BuilderFlag, channels_last_mode, resolve_device
from .dtypes import DataType
from .enums import LayerType, TensorFormat, allowed_by_sources
from .error_recorder import reports_errors
from .errors import BuildError, DataDependentShapeError, EngineError
from .gpu_allocator import allocation_scope
from .graph import LoweredGraph, lower, resolve_shapes, shape_input_names
from .ir import Graph, graph_from_network
from .logger import Logger, Severity
from .memory_plan import device_lifetimes, plan_graph_memory
from .network import NetworkDefinition, max_abs
from .passes.base import PassContext
from .passes.pipeline import PassPipeline
from .plan import serialize_plan
from .profile import OptimizationProfile
from .refittable import mark_refittable_weights, network_digest, refit_table
from .shape_inference import infer_graph
from .shuffle_views import mark_views
from .tactic_selection import TacticSelection, input_shapes, input_values
from .tactics import tactics_for
from .timing_cache import TimingCache
from .user_hooks import UserHooks
from .version import __version__

# Explicit quantization: INT8 layers come from these (passes/int8_fusion.py).
QDQ_TYPES = (LayerType.QUANTIZE, LayerType.DEQUANTIZE)


class NetworkDefinitionCreationFlag:
    """TensorRT's values. EXPLICIT_BATCH: every network here is (accepted for TensorRT code). STRONGLY_TYPED
    (TensorRT 9+): layers run in the types their tensors have, as the ONNX model says; the builder refuses the
    FP16/BF16/INT8 flags and layer precisions on such a network (docs/precision.md)."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


# Flags that choose precisions for the builder: a strongly typed network takes its precisions from its types.
TYPE_CHOOSING_FLAGS = (BuilderFlag.FP16, BuilderFlag.BF16, BuilderFlag.INT8)


class Builder(UserHooks):
    def __init__(self, logger: Logger | None = None):
        self.logger = logger or Logger()
        self.max_threads = 1

    def create_network(self, flags: int = 0) -> NetworkDefinition:
        """`flags`: bit mask of NetworkDefinitionCreationFlag (1 << STRONGLY_TYPED for a strongly typed network)."""
        known = 1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH | 1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED
        if int(flags) < 0 or int(flags) & ~known:
            raise BuildError(f"network creation flags 0x{int(flags):x}: only EXPLICIT_BATCH (bit 0) and STRONGLY_TYPED "
                             "(bit 1) exist")
        network = NetworkDefinition()
        network.flags = int(flags)
        return network

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
            infer_graph(graph_from_network(network))
        except EngineError:
            return False
        return True

    @reports_errors
    def build_serialized_network(self, network: NetworkDefinition, config: BuilderConfig) -> bytes:
        """Build and serialize. Raises BuildError/ShapeError with a message naming the layer or tensor."""
        with allocation_scope(self._gpu_allocator, resolve_device(config.device)):
            return _Build(self.logger, network, config).run()


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
        self.source.validate()  # before lowering: a misordered network must fail with a message, not a KeyError
        if self.source.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED):
            _check_strongly_typed(self.source, config)
        refittable = self.refittable = config.get_flag(BuilderFlag.REFIT) or config.get_flag(BuilderFlag.STRIP_PLAN)
        ir_graph, marked, digest = self._ir_graph()
        implicit_int8 = config.get_flag(BuilderFlag.INT8) and not any(n.type in QDQ_TYPES for n in ir_graph.nodes) \
            and (config.int8_calibrator is not None or any(t.dynamic_range for t in self.source.tensors()))
        if refittable and implicit_int8:  # refused before calibrating
            raise BuildError("BuilderFlag.REFIT/STRIP_PLAN with implicit INT8 (calibration or dynamic ranges) is not "
                             "supported: the builder would quantize the refittable weights with scales taken from "
                             "their build-time values; use a Q/DQ model (explicit quantization) or build without "
                             "REFIT")
        ranges = self._dynamic_ranges(ir_graph)
        profiles = self._profiles(ir_graph)
        self.shape_values = self._shape_input_values(ir_graph)
        layers_before = len(ir_graph.nodes)
        constraints = "obey" if config.get_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS) else \
            "prefer" if config.get_flag(BuilderFlag.PREFER_PRECISION_CONSTRAINTS) else "none"
        strongly_typed = self.source.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        mode = channels_last_mode(config.channels_last)
        context = PassContext(fp16=config.get_flag(BuilderFlag.FP16), bf16=config.get_flag(BuilderFlag.BF16),
                              strongly_typed=strongly_typed, constraints=constraints, log=self.log,
                              dynamic_ranges=ranges, pointwise_fusion=bool(config.pointwise_fusion),
                              channels_last=mode is not False,
                              runs_channels_last=channels_last_check(device, config.get_tactic_sources()))
        self.lint = config.get_flag(BuilderFlag.DEBUG) or os.environ.get("POLYX_LINT_IR") == "1"
        backend = get_backend(device)
        cache = config.get_timing_cache()
        if config.get_flag(BuilderFlag.DISABLE_TIMING_CACHE):
            cache = None
        elif cache is None:
            cache = TimingCache()  # a private cache still deduplicates identical layers within this build
        self.selecting = (profiles, backend, device, cache)
        formats_record = None
        selection = None
        if mode == CHANNELS_LAST_AUTO:
            graph, report, selection, formats_record = self._timed_formats(ir_graph, marked, digest, context)
        else:
            graph, report = self._optimize(ir_graph, marked, digest, context)
        if ranges is not None and ranges.histograms and config.int8_calibrator is not None:
            algorithm = config.int8_calibrator.get_algorithm()
            config.int8_calibrator.write_calibration_cache(write_cache(algorithm, ranges.used))
        host_layers = sum(1 for s in graph.layers if s.host and s.layer.type != LayerType.CONSTANT)
        self.log(Severity.INFO, f"optimized network: {layers_before} layers -> {len(graph.device_layers)} device "
                                f"layers, {host_layers} host shape layers, {len(graph.constants)} constants")
        compatibility = build_record(__version__, backend.compute_capability,
                                     config.get_flag(BuilderFlag.VERSION_COMPATIBLE),
                                     config.hardware_compatibility_level)
        if selection is None:
            selection = self._select(graph)
        views = mark_views(graph)  # after the sweep, which timed every layer with buffers of its own
        memory = self._memory_report(graph, profiles, selection.max_workspace)
        memory["view_layers"] = views
        if views:
            self.log(Severity.VERBOSE, f"{views} reshape-only shuffle layers are views of their inputs (no kernel, "
                                       "no buffer)")
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
            "compatibility": compatibility,
            "profiling_verbosity": config.profiling_verbosity.value,
            "strongly_typed": strongly_typed,
        }
        if formats_record is not None:  # channels_last "auto" with chains to choose for (engine/channels_last_choice)
            meta["channels_last"] = formats_record
        plan = serialize_plan(graph, meta)
        self.log(Severity.INFO, f"build finished in {build_ms:.0f} ms: plan {len(plan)} bytes, activation memory "
                                f"{memory['planned_peak_bytes']} bytes planned vs {memory['naive_bytes']} naive")
        self.build_time_ms = build_ms
        return plan

    def _ir_graph(self) -> tuple[Graph, dict, str]:
        """The source network lowered into a fresh ir.Graph, shapes inferred, its refittable weights marked (and
        the network digest a refit checks); each variant of a channels-last "auto" build gets its own."""
        ir_graph = graph_from_network(self.source)
        infer_graph(ir_graph)
        marked = mark_refittable_weights(ir_graph) if self.refittable else {}
        digest = network_digest(ir_graph) if self.refittable else ""
        return ir_graph, marked, digest

    def _optimize(self, ir_graph: Graph, marked: dict, digest: str, context: PassContext) \
            -> tuple[LoweredGraph, dict[str, int]]:
        """The pass pipeline on `ir_graph`, then the indexed graph (with its refit table when refittable)."""
        report = PassPipeline().run(ir_graph, context, lint=self.lint)
        graph = lower(ir_graph)
        if self.refittable:
            config = self.config
            graph.refit = refit_table(graph, marked, config.get_flag(BuilderFlag.STRIP_PLAN), digest)
            self.log(Severity.INFO, f"refittable engine: {len(graph.refit.weights)} named weights"
                                    f"{' (left out of the plan)' if graph.refit.stripped else ''}")
        return graph, report

    def _select(self, graph: LoweredGraph, measure: frozenset[str] = frozenset(),
                with_selector: bool = True) -> TacticSelection:
        profiles, backend, device, cache = self.selecting
        selection = TacticSelection(self.config, self.log, graph, profiles, self.shape_values, backend, device, cache,
                                    measure, with_selector)
        selection.run()
        return selection

    def _timed_formats(self, ir_graph: Graph, marked: dict, digest: str, context: PassContext):
        """channels_last "auto" (engine/channels_last_choice.py): the LINEAR and the all-HWC variant, each chain's
        layers timed in both, and the graph with HWC only on the chains that win. Returns the final graph, its pass
        report, its tactic selection (None: still to be made) and the plan's record of the choice (None: no
        choice). The variants choose without the user's algorithm selector; with one, the final graph's selection
        is made again with it (its timings come from the timing cache)."""
        linear_context = replace(context, channels_last_only=frozenset(), format_chains=[])
        linear_graph, linear_report = self._optimize(ir_graph, marked, digest, linear_context)
        chains = linear_context.format_chains
        if not chains:
            self.log(Severity.INFO, "channels-last auto: no convolution chain can run HWC on this device; the "
                                    "network is built LINEAR, as with the option off")
            return linear_graph, linear_report, None, None
        hwc_context = replace(context, channels_last_only=None, format_chains=[])
        hwc_graph, hwc_report = self._optimize(*self._ir_graph(), hwc_context)
        if not same_chains(chains, hwc_context.format_chains):
            self.log(Severity.WARNING, "channels-last auto: the LINEAR and HWC builds found different convolution "
                                       "chains; the network is built LINEAR")
            return linear_graph, linear_report, None, None
        chains = hwc_context.format_chains
        self.log(Severity.INFO, f"channels-last auto: timing {len(chains)} convolution chain(s) LINEAR and HWC")
        linear = self._select(linear_graph, layers_to_time(chains, hwc=False), with_selector=False)
        hwc = self._select(hwc_graph, layers_to_time(chains, hwc=True), with_selector=False)
        reuse = self.config.algorithm_selector is None
        try:
            choices = choose_chains(chains, linear.measured, hwc.measured)
        except ValueError as exc:
            self.log(Severity.WARNING, f"channels-last auto: {exc}; the network is built LINEAR")
            return linear_graph, linear_report, linear if reuse else None, None
        for choice in choices:
            self.log(Severity.INFO, choice.log_line())
        winners = frozenset(choice.first for choice in choices if choice.hwc)
        record = choice_record(choices)
        if not winners:
            return linear_graph, linear_report, linear if reuse else None, record
        if len(winners) == len(choices):
            return hwc_graph, hwc_report, hwc if reuse else None, record
        # a third graph: each of its layers was timed in one variant or the other, so the timing cache answers
        mixed_context = replace(context, channels_last_only=winners, format_chains=[])
        return (*self._optimize(*self._ir_graph(), mixed_context), None, record)

    def _dynamic_ranges(self, graph: Graph) -> DynamicRanges | None:
        """INT8 ranges for implicit quantization: the calibration cache if the calibrator has one, else a
        calibration run, plus ranges set on tensors; None when the build is not implicitly quantized."""
        config = self.config
        if not config.get_flag(BuilderFlag.INT8) or any(n.type in QDQ_TYPES for n in graph.nodes):
            return None  # Q/DQ networks carry their own scales
        fixed = {t.name: max_abs(*t.dynamic_range) for t in self.source.tensors() if t.dynamic_range is not None}
        calibrator = config.int8_calibrator
        if calibrator is None and not fixed:
            self.log(Severity.WARNING, "INT8 flag set, but the network has no Q/DQ layers, no int8_calibrator and "
                                       "no tensor dynamic ranges: INT8 is not used")
            return None
        if calibrator is None:
            return DynamicRanges(fixed)
        cache = calibrator.read_calibration_cache()
        if cache:
            self.log(Severity.INFO, "INT8 ranges from the calibrator's calibration cache (no calibration run)")
            return DynamicRanges({**self._cache_of_this_network(read_cache(cache), graph), **fixed})
        start = time.perf_counter()
        histograms = calibrate(graph, calibrator)
        self.log(Severity.INFO, f"INT8 calibration: {len(histograms)} tensors in "
                                f"{time.perf_counter() - start:.1f} s")
        return DynamicRanges(fixed, histograms, calibrator)

    def _cache_of_this_network(self, ranges: dict[str, float], graph: Graph) -> dict[str, float]:
        """A cache naming no tensor of the network belongs to another one: refused, naming its tensors. Names
        absent from a cache that also names tensors of this network (a cache of the whole model read for a
        subgraph of it) are ignored with a warning."""
        names = {value.name for value in graph.values()}
        absent = [name for name in ranges if name not in names]
        if absent and len(absent) == len(ranges):
            raise BuildError(f"calibration cache: none of its {len(ranges)} tensors is in this network ('"
                             + "', '".join(absent[:3]) + "'" + (" ..." if len(absent) > 3 else "")
                             + "): a cache of another network? Delete it to calibrate again")
        if absent:
            self.log(Severity.WARNING, f"calibration cache: {len(absent)} tensor(s) not in this network are ignored "
                                       f"('" + "', '".join(absent[:3]) + "'" + (" ...)" if len(absent) > 3 else ")"))
        return {name: amax for name, amax in ranges.items() if name in names}

    def _profiles(self, graph: Graph) -> list[dict[str, tuple]]:
        dynamic = {t.name: t for t in graph.inputs if t.shape is None or any(d < 0 for d in t.shape)}
        user = [p for p in self.config.profiles if p]
        names = {t.name for t in graph.inputs}
        profiles = []
        for index, profile in enumerate(user or [OptimizationProfile()]):
            shapes = {}
            for name in profile.inputs:
                if name not in names:
                    raise BuildError(f"optimization profile {index} names '{name}', which is not a network input "
                                     f"(inputs: {sorted(names)})")
            for tensor in graph.inputs:
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

    def _shape_input_values(self, graph: Graph) -> list[dict[str, tuple]]:
        """Per profile, (min, opt, max) values of each shape input (set_shape_input); zeros when not given."""
        result = []
        for index, profile in enumerate([p for p in self.config.profiles if p] or [OptimizationProfile()]):
            values = {}
            shape_names = shape_input_names(graph)
            for tensor in graph.inputs:
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
        peak = naive = 0
        for profile, values in zip(profiles, self.shape_values):
            try:
                resolved = resolve_shapes(graph, input_shapes(graph, profile, which=2), input_values(graph, values, 2),
                                          upper_bounds=True)
            except DataDependentShapeError:  # sized while it runs (engine/eager_execution.py): nothing to plan
                continue
            _, plan = plan_graph_memory(graph, resolved.shapes, lifetimes)
            peak, naive = max(peak, plan.peak_bytes), max(naive, plan.naive_bytes)
        return {"planned_peak_bytes": peak, "naive_bytes": naive, "workspace_bytes": workspace,
                "planned_tensors": len(lifetimes)}


def channels_last_check(device: str, sources: int):
    """Whether some tactic of `device` runs a node on HWC tensors: allowed by the tactic sources, usable on this
    machine, and on the GPU not a fallback (the reference kernels, the float64 INT8 convolution: a chain through
    them would be slower than LINEAR). An INT8 layer asks the INT8 tactics, every other layer the others."""
    def runs(node) -> bool:
        int8 = node.precision == DataType.INT8
        return any(TensorFormat.HWC in t.formats and t.runs_int8 == int8 and allowed_by_sources(t, sources)
                   and t.unavailable() is None and (device == "cpu" or not t.is_fallback)
                   and t.may_run_channels_last(node) for t in tactics_for(node.type, device))
    return runs


def _check_strongly_typed(network: NetworkDefinition, config: BuilderConfig) -> None:
    """A strongly typed network's precisions are its tensors' types: refuse what would choose others."""
    flags = [flag.name for flag in TYPE_CHOOSING_FLAGS if config.get_flag(flag)]
    if flags:
        raise BuildError(f"network '{network.name}' is strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED): "
                         f"its layers run in the types of their tensors, so BuilderFlag {', '.join(flags)} cannot be "
                         "set; cast tensors in the network (ONNX Cast) to choose precisions")
    for layer in network.layers:
        if layer.precision_is_set:
            raise BuildError(f"layer '{layer.name}': precision {layer.precision.value} cannot be set on a strongly "
                             "typed network; its precision is the type of its tensors")

