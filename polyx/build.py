"""Build an engine from an ONNX model with one set of options: the library behind `run`, `convert`, `bench`, `debug`.

Shapes: a dynamic input takes its profile from `min/opt/max_shapes` when given, else from `input_shapes`
(min = opt = max), else every dynamic dimension is 1 (the data loader's default, so generated inputs fit).
`extra_profiles` adds profiles 1, 2, ... to the same plan (TensorRT's several optimization profiles); an input
that a profile does not name takes its shapes as in profile 0. `profile_index` is the profile a run uses.
Layer precisions name engine layers or ONNX nodes (a node's layers all take the precision); they are obeyed
when `precision_constraints` is None and any are given, like passing `--precision-constraints obey`.
"""
from __future__ import annotations

import difflib
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import engine as trt
from engine.algorithm_selector import IAlgorithmSelector
from engine.config import channels_last_mode
from engine.network import NetworkDefinition
from engine.output_files import note_input

from .calibration import calibrator_class, make_calibrator
from .data.feeds import DataOptions, command_feeds
from .data.files import check_writable, write_file
from .errors import PolyxError
from .marking import mark_network_outputs
from .tactic_replay import TacticRecorder, TacticReplayer, load_replay, save_replay

Shape = tuple[int, ...]
PRECISIONS = {"fp32": trt.DataType.FLOAT, "float32": trt.DataType.FLOAT, "float": trt.DataType.FLOAT,
              "fp16": trt.DataType.HALF, "float16": trt.DataType.HALF, "half": trt.DataType.HALF,
              "bf16": trt.DataType.BF16, "bfloat16": trt.DataType.BF16, "int8": trt.DataType.INT8}
CONSTRAINTS = ("obey", "prefer", "none")
CALIBRATION_BATCHES = 8  # generated calibration batches when the command has no data of its own


@dataclass
class ProfileShapes:
    """One optimization profile's shapes per input name (every name in all three)."""

    min: dict[str, Shape] = field(default_factory=dict)
    opt: dict[str, Shape] = field(default_factory=dict)
    max: dict[str, Shape] = field(default_factory=dict)


@dataclass
class BuildOptions:
    """Everything that decides how an engine is built. Paths are read/written by `build_engine`."""

    input_shapes: dict[str, Shape] = field(default_factory=dict)
    min_shapes: dict[str, Shape] = field(default_factory=dict)
    opt_shapes: dict[str, Shape] = field(default_factory=dict)
    max_shapes: dict[str, Shape] = field(default_factory=dict)
    extra_profiles: list[ProfileShapes] = field(default_factory=list)  # profiles 1, 2, ... of the plan
    profile_index: int = 0  # the profile a run uses (and whose opt shapes generated data takes)
    fp16: bool = False
    bf16: bool = False
    strongly_typed: bool = False  # NetworkDefinitionCreationFlag.STRONGLY_TYPED: precisions from the ONNX types
    version_compatible: bool = False
    hardware_compatibility_level: str = "none"  # none | ampere_plus
    # polyx builds record DETAILED (TensorRT's default is LAYER_NAMES_ONLY) so that `inspect model` shows tactics
    profiling_verbosity: str = "detailed"  # layer_names_only | detailed | none
    tf32: bool = False
    refittable: bool = False  # BuilderFlag.REFIT: named weights stay replaceable (docs/refit.md)
    strip_plan: bool = False  # BuilderFlag.STRIP_PLAN: refittable, and the plan leaves those weights out
    int8: bool = False
    precision_constraints: str | None = None
    layer_precisions: dict[str, str] = field(default_factory=dict)
    workspace_bytes: int | None = None
    optimization_level: int = 3
    tactic_sources: list[str] | None = None  # TacticSource names (any case) the builder may use; None: all
    pointwise_fusion: bool = False  # BuilderConfig.pointwise_fusion: elementwise chains as one POINTWISE layer
    # BuilderConfig.channels_last: convolution chains in HWC (NHWC) memory: False, True, or "auto" (timed per chain)
    channels_last: bool | str = False
    device: str = "auto"
    timing_cache: Path | None = None  # read when it exists, written after the build
    load_timing_cache: Path | None = None  # read (must exist); overrides timing_cache for reading
    save_timing_cache: Path | None = None  # written after the build; overrides timing_cache for writing
    save_tactics: Path | None = None
    load_tactics: Path | None = None
    mark_all: bool = False
    mark_outputs: list[str] = field(default_factory=list)
    algorithm_selector: IAlgorithmSelector | None = None
    calibration_cache: Path | None = None  # INT8: read when it exists (no calibration), written otherwise
    calib_base_cls: str = "EntropyCalibrator2"
    # INT8 calibration batches ({input name: array}): the command's inputs (polyx.data.feeds); None: the
    # DataLoader's generated inputs at the data shapes, CALIBRATION_BATCHES of them
    calibration_data: list[dict[str, np.ndarray]] | None = None
    # where `convert --int8` takes calibration data from (--load-inputs, --data-loader-script, --seed, ...) when
    # `calibration_data` is None; None: the DataLoader's defaults (seed 1, CALIBRATION_BATCHES iterations)
    calibration_inputs: DataOptions | None = None
    # progress(description, total) for the calibration batches (polyx.report.progress_factory); None: quiet
    progress: Callable[[str, int | None], AbstractContextManager] | None = None
    # One in-memory cache for several builds (a debug search): only the first build of a layer times its
    # tactics. The `timing_cache` file, when given, is merged into it and written from it.
    shared_timing_cache: trt.TimingCache | None = None

    def profiles(self) -> list[ProfileShapes]:
        """Every profile the plan gets: profile 0 from min/opt/max_shapes, then `extra_profiles`."""
        return [ProfileShapes(self.min_shapes, self.opt_shapes, self.max_shapes), *self.extra_profiles]

    def data_shapes(self) -> dict[str, Shape]:
        """Input shapes for generated data: `input_shapes`, else the opt shapes of the profile the run uses."""
        profiles = self.profiles()
        selected = profiles[self.profile_index].opt if self.profile_index < len(profiles) else {}
        return {**self.opt_shapes, **selected, **self.input_shapes}

    def validate(self) -> None:
        """Checks that need no model: raise PolyxError for option values that cannot work."""
        if self.precision_constraints not in (None, *CONSTRAINTS):
            raise PolyxError(f"precision constraints must be one of {', '.join(CONSTRAINTS)}, "
                             f"got '{self.precision_constraints}'")
        calibrator_class(self.calib_base_cls)  # an unknown name fails before anything is built
        for flag, value, enum in (("--profiling-verbosity", self.profiling_verbosity, trt.ProfilingVerbosity),
                                  ("--hardware-compatibility-level", self.hardware_compatibility_level,
                                   trt.HardwareCompatibilityLevel)):
            if value.upper() not in enum.__members__:
                raise PolyxError(f"{flag} '{value}': expected one of {', '.join(m.lower() for m in enum.__members__)}")
        if self.strongly_typed:
            chosen = [flag for flag, on in (("--fp16", self.fp16), ("--bf16", self.bf16), ("--int8", self.int8))
                      if on] + (["--layer-precisions"] if self.layer_precisions else [])
            if chosen:
                raise PolyxError(f"--strongly-typed takes the precisions from the model's types; {', '.join(chosen)} "
                                 "cannot be combined with it")
        try:
            channels_last_mode(self.channels_last, "--channels-last (channels_last)")
        except trt.BuildError as exc:
            raise PolyxError(str(exc)) from None
        if not 0 <= self.optimization_level <= 5:
            raise PolyxError(f"builder optimization level must be 0..5, got {self.optimization_level}")
        unknown = [name for name in self.tactic_sources or [] if name.upper() not in trt.TacticSource.__members__]
        if unknown:
            raise PolyxError(f"unknown tactic source(s) {', '.join(unknown)} (valid: "
                             f"{', '.join(s.name.lower() for s in trt.TacticSource)})")
        for layer, precision in self.layer_precisions.items():
            if precision.lower() not in PRECISIONS:
                raise PolyxError(f"layer precision for '{layer}': unknown precision '{precision}' "
                                 f"(expected one of {', '.join(PRECISIONS)})")
        profiles = self.profiles()
        for index, profile in enumerate(profiles):
            given = [set(profile.min), set(profile.opt), set(profile.max)]
            where = f"profile {index}: " if len(profiles) > 1 else ""
            for name in sorted(set().union(*given)):
                missing = [flag for flag, names in zip(("--min-shapes", "--opt-shapes", "--max-shapes"), given)
                           if name not in names]
                if missing:
                    raise PolyxError(f"{where}input '{name}': a profile needs min, opt and max shapes; "
                                     f"missing {', '.join(missing)}")
        if self.profile_index < 0 or (self.min_shapes and self.profile_index >= len(profiles)):
            raise PolyxError(f"--optimization-profile {self.profile_index}: the shape flags define "
                             f"{len(profiles)} profile(s) (0..{len(profiles) - 1})")
        for path in (self.save_tactics,):
            if path is not None:
                check_writable(path)
        for path in (self.timing_cache, self.save_timing_cache):
            if path is not None:
                check_writable(path)
        if self.load_timing_cache is not None and not Path(self.load_timing_cache).is_file():
            raise PolyxError(f"{self.load_timing_cache}: no such file (--load-timing-cache)")
        if self.load_tactics is not None and not Path(self.load_tactics).is_file():
            raise PolyxError(f"{self.load_tactics}: no such file (--load-tactics)")


@dataclass
class BuildReport:
    """What the build did, for `convert`'s summary and `run -v`."""

    onnx_nodes: int
    layers_before: int             # parsed network layers, constants (weights) excluded
    layers_after: int
    host_layers: int
    tactics_by_layer_type: dict[str, Counter]
    build_seconds: float
    plan_bytes: int
    device: str
    passes: dict[str, int]
    memory: dict[str, Any]
    marked_outputs: int
    timing_cache: str = ""


def parse_onnx(model_path: str | os.PathLike, logger: trt.Logger,
               strongly_typed: bool = False) -> tuple[NetworkDefinition, int]:
    """Parse an ONNX file into a network (and its ONNX node count); every parse error is counted in one message."""
    _, network, parser = parse_onnx_parts(model_path, logger, strongly_typed)
    return network, len(parser.model.graph.node)


def parse_onnx_parts(model_path: str | os.PathLike, logger: trt.Logger,
                     strongly_typed: bool = False) -> tuple[trt.Builder, NetworkDefinition, trt.OnnxParser]:
    """(builder, network, parser), as Polygraphy's NetworkFromOnnxPath gives them to a script."""
    builder = trt.Builder(logger)
    network = builder.create_network(1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED if strongly_typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(model_path)):
        errors = [parser.get_error(i).desc for i in range(parser.num_errors)]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PolyxError(f"{model_path}: could not be parsed: {errors[0]}{more}")
    return builder, network, parser


def build_engine(model_path: str | os.PathLike, options: BuildOptions,
                 logger: trt.Logger | None = None) -> tuple[trt.Engine, bytes, BuildReport]:
    """Parse, configure and build; returns the engine, its plan bytes and a build report."""
    options.validate()
    logger = logger or trt.Logger(trt.Logger.WARNING)
    start = time.perf_counter()
    network, onnx_nodes = parse_onnx(model_path, logger, options.strongly_typed)
    return build_network(network, options, logger, onnx_nodes=onnx_nodes, start=start)


def build_network(network: NetworkDefinition, options: BuildOptions, logger: trt.Logger | None = None,
                  onnx_nodes: int = 0, start: float | None = None) -> tuple[trt.Engine, bytes, BuildReport]:
    """Configure and build a parsed (or hand-made) network; marks outputs and sets layer precisions on it first."""
    options.validate()
    logger = logger or trt.Logger(trt.Logger.WARNING)
    start = time.perf_counter() if start is None else start
    layers_before = sum(1 for layer in network.layers if layer.type != trt.LayerType.CONSTANT)
    marked = mark_network_outputs(network, options.mark_outputs, mark_all=options.mark_all)
    _apply_layer_precisions(network, options.layer_precisions)
    builder = trt.Builder(logger)
    config = _config(builder, network, options)
    cache = config.get_timing_cache()
    recorder = config.algorithm_selector if isinstance(config.algorithm_selector, TacticRecorder) else None
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        close = getattr(config.int8_calibrator, "close_progress", None)
        if close is not None:  # a bar left open by a failed calibration
            close()
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    if options.profile_index >= max(engine.num_optimization_profiles, 1):
        raise PolyxError(f"--optimization-profile {options.profile_index}: the engine has "
                         f"{engine.num_optimization_profiles} profile(s)")
    seconds = time.perf_counter() - start
    cache_target = options.save_timing_cache or options.timing_cache
    if cache_target is not None:
        write_file(cache_target, cache.serialize())
    if recorder is not None and options.save_tactics is not None:
        save_replay(options.save_tactics, recorder.replay)
    cache_note = f"{cache.hits} hits, {cache.misses} misses, {len(cache)} entries" if cache is not None else ""
    return engine, plan, _report(engine, plan, onnx_nodes, layers_before, seconds, marked, cache_note)


def load_engine(plan_path: str | os.PathLike, logger: trt.Logger | None = None) -> tuple[trt.Engine, bytes]:
    """Read a plan file (PlanFormatError, one line, for a damaged or foreign file)."""
    path = Path(plan_path)
    if not path.is_file():
        raise PolyxError(f"{path}: no such file (engine plan)")
    note_input(path)
    plan = path.read_bytes()
    return trt.Runtime(logger or trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan), plan


def _calibration_batches(network: NetworkDefinition, options: BuildOptions):
    """`calibration_data` (run's inputs), else the inputs `calibration_inputs` names (polyx.data.feeds: loaded,
    scripted or generated), by default the DataLoader's seeded inputs at the data shapes, CALIBRATION_BATCHES of
    them. Read lazily: a cached build never asks for them."""
    if options.calibration_data is not None:
        yield from options.calibration_data
        return
    meta = {t.name: (tuple(t.shape), np.dtype(trt.dtypes.nptype(t.dtype))) for t in network.inputs}
    data = options.calibration_inputs or DataOptions(iterations=CALIBRATION_BATCHES)
    yield from command_feeds(data, meta, options.data_shapes())


def _calibration_batch_count(options: BuildOptions) -> int | None:
    """For the progress bar; None when only reading the files or running the script would tell."""
    if options.calibration_data is not None:
        return len(options.calibration_data)
    data = options.calibration_inputs or DataOptions(iterations=CALIBRATION_BATCHES)
    return data.iterations if data.load_inputs is None and data.script is None else None


def _config(builder: trt.Builder, network: NetworkDefinition, options: BuildOptions) -> trt.BuilderConfig:
    config = builder.create_builder_config()
    config.device = options.device
    config.builder_optimization_level = options.optimization_level
    config.pointwise_fusion = options.pointwise_fusion
    config.channels_last = options.channels_last
    if options.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.bf16:
        config.set_flag(trt.BuilderFlag.BF16)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    config.hardware_compatibility_level = trt.HardwareCompatibilityLevel[options.hardware_compatibility_level.upper()]
    config.profiling_verbosity = trt.ProfilingVerbosity[options.profiling_verbosity.upper()]
    if options.int8:
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_calibrator(options.calib_base_cls, _calibration_batches(network, options),
                                                 options.calibration_cache, options.progress,
                                                 _calibration_batch_count(options))
    if options.tf32:
        config.set_flag(trt.BuilderFlag.TF32)
    if options.refittable:
        config.set_flag(trt.BuilderFlag.REFIT)
    if options.strip_plan:
        config.set_flag(trt.BuilderFlag.STRIP_PLAN)
    constraints = options.precision_constraints or ("obey" if options.layer_precisions else "none")
    if constraints == "obey":
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    elif constraints == "prefer":
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    if options.tactic_sources is not None:
        config.set_tactic_sources(sum(1 << int(trt.TacticSource[name.upper()]) for name in set(options.tactic_sources)))
    if options.workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    for profile in options.profiles():
        config.add_optimization_profile(_profile(builder, network, options, profile))
    cache = config.create_timing_cache(_read_timing_cache(options.load_timing_cache or options.timing_cache))
    if options.shared_timing_cache is not None:
        options.shared_timing_cache.combine(cache)
        cache = options.shared_timing_cache
    config.set_timing_cache(cache)
    selector = options.algorithm_selector
    if options.load_tactics is not None:
        if selector is not None:
            raise PolyxError("--load-tactics cannot be combined with another algorithm selector")
        selector = TacticReplayer(load_replay(options.load_tactics))
    if options.save_tactics is not None:
        selector = TacticRecorder(inner=selector)
    config.algorithm_selector = selector
    return config


def _read_timing_cache(path: Path | None) -> bytes:
    """An existing cache file is read (and later rewritten); a missing one starts empty."""
    if path is None or not Path(path).exists():
        return b""
    return Path(path).read_bytes()


def _profile(builder: trt.Builder, network: NetworkDefinition, options: BuildOptions,
             shapes_given: ProfileShapes) -> trt.OptimizationProfile:
    """One profile: an input `shapes_given` does not name takes its profile-0 shapes (or the defaults)."""
    inputs = {t.name: t for t in network.inputs}
    named = {**options.input_shapes, **shapes_given.min, **shapes_given.opt, **shapes_given.max}
    for name in named:
        if name not in inputs:
            raise PolyxError(f"shape given for '{name}', which is not an input of the model "
                             f"(inputs: {', '.join(inputs)})")
    profile = builder.create_optimization_profile()
    for name, tensor in inputs.items():
        declared = tuple(tensor.shape or ())
        if name in shapes_given.min:
            shapes = (shapes_given.min[name], shapes_given.opt[name], shapes_given.max[name])
        elif name in options.min_shapes:
            shapes = (options.min_shapes[name], options.opt_shapes[name], options.max_shapes[name])
        elif name in options.input_shapes:
            shapes = (options.input_shapes[name],) * 3
        elif any(d < 0 for d in declared):
            shapes = (tuple(1 if d < 0 else d for d in declared),) * 3
        else:
            continue
        for which, shape in zip(("min", "opt", "max"), shapes):
            if len(shape) != len(declared) or any(d >= 0 and d != s for d, s in zip(declared, shape)):
                raise PolyxError(f"input '{name}': {which} shape {list(shape)} does not match the model's "
                                 f"shape {[d if d >= 0 else '?' for d in declared]}")
        lo, opt, hi = shapes
        if any(not a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise PolyxError(f"input '{name}': shapes must satisfy min <= opt <= max per dimension, got "
                             f"min {list(lo)}, opt {list(opt)}, max {list(hi)}")
        if any(d < 0 for d in declared):
            profile.set_shape(name, lo, opt, hi)
    return profile


def _apply_layer_precisions(network: NetworkDefinition, precisions: dict[str, str]) -> None:
    """Each key names a layer or an ONNX node (all layers imported from that node)."""
    for key, precision in precisions.items():
        layers = [layer for layer in network.layers if layer.type != trt.LayerType.CONSTANT and
                  (layer.name == key or layer.metadata.get("onnx_node") == key)]
        if not layers:
            names = [layer.name for layer in network.layers if layer.type != trt.LayerType.CONSTANT]
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            raise PolyxError(f"layer precision: no layer or ONNX node named '{key}'{hint}")
        for layer in layers:
            layer.precision = PRECISIONS[precision.lower()]


def _report(engine: trt.Engine, plan: bytes, onnx_nodes: int, layers_before: int, seconds: float, marked: int,
            cache_note: str) -> BuildReport:
    tactics: dict[str, Counter] = {}
    host = 0
    for row in engine.layer_info():
        if row["host"]:
            host += 1
            continue
        tactics.setdefault(row["type"], Counter())[row["tactic"]] += 1
    meta = engine.meta
    return BuildReport(onnx_nodes=onnx_nodes, layers_before=layers_before, layers_after=engine.num_layers - host,
                       host_layers=host, tactics_by_layer_type=tactics, build_seconds=seconds, plan_bytes=len(plan),
                       device=meta.get("device", "cpu"), passes=dict(meta.get("passes", {})),
                       memory=dict(meta.get("memory", {})), marked_outputs=marked, timing_cache=cache_note)
