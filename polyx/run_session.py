"""One `polyx run`: build or load the engine, make or load inputs, run every runner, compare with the reference.

The reference is the loaded golden outputs (`load_outputs`) when given, else onnxruntime when both runners run;
every other runner is compared with it. `save_outputs` stores onnxruntime's outputs when it runs, else the
engine's. Saved data that does not fit this run (other inputs, iteration count, shapes, no common tensor) is a
PolyxError, not a failed comparison.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

import engine as trt
from engine.onnx_file import load_onnx_file, model_files
from engine.plan_file import is_plan_file

from .build import BuildOptions, BuildReport, build_engine, load_engine
from .compare import Comparator, LayerwiseReport, TensorComparison, Tolerances, analyze_layers
from .compare.engine_layers import EngineLayerReport, analyze_engine_layers
from .compare.engine_provenance import EngineProvenance, engine_provenance
from .compare.engine_stream import DEFAULT_BUDGET_BYTES, StreamStats, compare_engine_layers
from .compare.layerwise import GraphNode, nodes_from_engine, nodes_from_onnx
from .compare.plot_options import PlotOptions
from .compare.postprocess import Postprocess, unknown_outputs
from .compare.run_comparison import RunnerOutputs, compare_iterations, pair_near_miss_names
from .compare.user_compare import UserCompareFunc
from .data.feeds import DataOptions, command_feeds, data_files, given_paths, load_chain
from .data.files import check_outputs_apart, save_tensors, write_file
from .data.polygraphy_format import save_input_list, save_run_results
from .errors import PolyxError
from .marking import mark_onnx_outputs
from .onnx_model import graph_inputs
from .runners import EngineRunner, OnnxrtRunner, Runner
from .user_script import script_path

Feeds = dict[str, np.ndarray]
# progress(description, total) -> context manager yielding advance(); total None for a spinner
ProgressFactory = Callable[[str, int | None], contextlib.AbstractContextManager[Callable[[], None]]]


@dataclass
class RunOptions:
    model: Path
    use_engine: bool = False
    use_onnxrt: bool = False
    build: BuildOptions = field(default_factory=BuildOptions)
    load_engine: Path | None = None
    save_engine: Path | None = None
    seed: int = 1
    val_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    data_loader_script: str | None = None
    iterations: int = 1
    load_inputs: Path | list[Path] | None = None  # several files: their iterations chained
    save_inputs: Path | None = None
    load_outputs: Path | list[Path] | None = None
    load_outputs_runner: str | None = None  # the runner of Polygraphy RunResults that is the golden reference
    save_outputs: Path | None = None
    save_format: str = "polyx"  # "polygraphy": Polygraphy's input list and RunResults (every runner)
    tolerances: Tolerances = field(default_factory=Tolerances)
    compare_func: str = "simple"  # simple | indices (Polygraphy's --compare-func)
    index_tolerance: int = 0  # compare_func "indices": how many positions an index may move
    check_shapes: bool = True  # False: a same-sized candidate is reshaped to the reference's shape
    postprocess: Postprocess = field(default_factory=dict)  # applied to every side's outputs before comparing
    compare_func_script: str | None = None  # FILE.py:FUNCTION giving {output: passed} per iteration
    onnx_mark_all: bool = False
    # --mark-all: compare every layer-boundary tensor of the engine as built (no output marked, fusions kept),
    # streaming: onnxruntime's reference tensors are computed in chunks of at most this many bytes
    compare_engine_layers: bool = False
    intermediate_budget_bytes: int = DEFAULT_BUDGET_BYTES
    plots: PlotOptions = field(default_factory=PlotOptions)  # per-tensor pictures, drawn while comparing
    onnx_outputs: list[str] = field(default_factory=list)
    onnxrt_providers: list[str] | None = None  # onnxruntime's provider names; None: CPU
    validate: bool = False
    fail_fast: bool = False
    histograms: bool = False
    worst_count: int = 10
    report: Path | None = None  # written by the command after the run; checked with the other outputs

    @property
    def marks_intermediates(self) -> bool:
        return bool(self.onnx_mark_all or self.onnx_outputs or self.build.mark_all or self.build.mark_outputs
                    or self.compare_engine_layers)

    def output_paths(self) -> list[Path]:
        return [p for p in (self.save_engine, self.save_inputs, self.save_outputs, self.report,
                            self.build.save_tactics) if p is not None]

    def input_paths(self) -> list[Path | str]:
        """Every file the run reads (the model and its external data, loaded data, plan, replay, timing cache,
        data-loader script): no output may be one of them."""
        scripts = [script_path(s) for s in (self.data_loader_script, self.compare_func_script) if s]
        return [p for p in (*model_files(self.model), *data_files(self.load_inputs), *data_files(self.load_outputs),
                            self.load_engine, self.build.load_tactics, self.build.timing_cache, *scripts)
                if p is not None]


@dataclass
class RunResult:
    feeds: list[Feeds]
    outputs: list[RunnerOutputs]
    reference: str | None = None
    comparisons: list[TensorComparison] = field(default_factory=list)
    layerwise: LayerwiseReport | None = None
    validation_failures: list[str] = field(default_factory=list)
    build_report: BuildReport | None = None
    notes: list[str] = field(default_factory=list)
    model_outputs: list[str] = field(default_factory=list)
    engine_layers: EngineLayerReport | None = None  # --mark-all: per engine layer, as built
    stream_stats: StreamStats | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons) and not self.validation_failures


def _quiet_progress(description: str, total: int | None) -> contextlib.AbstractContextManager[Callable[[], None]]:
    return contextlib.nullcontext(lambda: None)


def run_session(options: RunOptions, progress: ProgressFactory = _quiet_progress,
                logger: trt.Logger | None = None) -> RunResult:
    """Run and compare as `options` say; raises PolyxError (or an engine error) for unusable input."""
    check_run_options(options)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    model_is_plan = is_plan_file(options.model)
    # The graph only (structure, names, types): the weights stay in their external data files, read by the
    # builder and by onnxruntime from the model's folder, so a >2 GB model is never one protobuf here.
    model = None if model_is_plan else load_onnx_file(options.model, load_external_data=False)
    plan_path = (options.model if model_is_plan else options.load_engine) if options.use_engine else None
    # Data for a loaded plan waits for the plan (its profile's opt shapes); a build waits for the data.
    feeds = _feeds(options, graph_inputs(model)) if model is not None and plan_path is None else None
    runners: list[Runner] = []
    engine, build_report = None, None
    if options.use_engine:
        engine, build_report = _engine(options, plan_path, feeds, progress, logger)
        runners.append(EngineRunner(engine, profile_index=options.build.profile_index))
    if options.use_onnxrt:
        marks = (options.onnx_mark_all and not options.compare_engine_layers) or options.onnx_outputs
        runners.append(OnnxrtRunner(mark_onnx_outputs(model, options.onnx_outputs, options.onnx_mark_all)
                                    if marks else options.model,
                                    providers=tuple(options.onnxrt_providers or ("CPUExecutionProvider",)),
                                    external_data_dir=options.model.resolve().parent))
    input_meta = graph_inputs(model) if model is not None else EngineRunner(engine).input_metadata()
    if feeds is None:
        feeds = _feeds(replace(options, build=plan_data_shapes(options.build, engine)), input_meta)
    if options.save_inputs is not None:
        if options.save_format == "polygraphy":
            save_input_list(options.save_inputs, feeds)
        else:
            save_tensors(options.save_inputs, feeds)
    model_outputs = [o.name for o in model.graph.output] if model is not None else _engine_outputs(engine)
    result = RunResult(feeds=feeds, outputs=[run_runner(runner, feeds, progress) for runner in runners],
                       build_report=build_report, model_outputs=model_outputs)
    reference, candidates = _reference_and_candidates(options, result.outputs, len(feeds))
    if options.validate:
        result.validation_failures = [f for run in result.outputs for f in _non_finite(run)]
    if options.save_outputs is not None and options.save_format == "polygraphy":
        save_run_results(options.save_outputs, [(r.runner, r.iterations, [ms / 1000 for ms in r.inference_ms])
                                                for r in result.outputs])
    elif options.save_outputs is not None:
        golden = next((r for r in result.outputs if r.runner == "onnxrt"), result.outputs[0])
        save_tensors(options.save_outputs, golden.iterations)
    if reference is None:
        return result
    result.reference = reference.runner
    nodes = nodes_from_onnx(model) if model is not None else nodes_from_engine(engine)
    for candidate in candidates:
        _compare(result, options, reference, candidate, nodes, progress)
        if options.fail_fast and not result.passed:
            break
    provenance = None
    if options.compare_engine_layers:  # with --fail-fast too: it stops at the first failing layer, which is the point
        provenance = engine_provenance(model, engine.layer_info())
        _compare_engine_layers(result, options, engine, provenance, reference, candidates[0], progress)
    constants = _constants(model) if model is not None else set()
    result.layerwise = analyze_layers(nodes, result.comparisons, options.worst_count, graph_inputs=set(input_meta),
                                      constants=constants,
                                      engine_layers=engine.layer_info() if engine is not None else None,
                                      inside=_inside_notes(provenance) if provenance is not None else None)
    if provenance is not None:
        verdicts = {t.name: t for t in result.layerwise.tensors}
        result.engine_layers = analyze_engine_layers(provenance, verdicts, set(input_meta), constants)
    return result


def _compare_engine_layers(result: RunResult, options: RunOptions, engine: trt.Engine, provenance: EngineProvenance,
                           reference: RunnerOutputs, candidate: RunnerOutputs, progress: ProgressFactory) -> None:
    """Stream the engine's layer-boundary tensors against onnxruntime's (the model outputs are compared already)."""
    comparator = _comparator(options)
    compared = {c.name for c in result.comparisons}
    boundary = [provenance.onnx_name(t) for group in provenance.layers for t in group.outputs
                if t in provenance.quantized or (t in provenance.placements and
                                                 provenance.placements[t].where == "boundary")]
    for name in options.tolerances.unknown_names({*compared, *boundary}):
        placement = provenance.placements.get(name)
        if placement is not None and placement.where in ("fused", "removed"):
            where = f"inside the fused layer {placement.layer} ({provenance.layer(placement.layer).label})" \
                if placement.where == "fused" else "removed by the builder"
            raise PolyxError(f"a per-output tolerance names '{name}', which is {where} in the engine as built, so "
                             "it has no value of its own (--mark-all-outputs compares it, fusions broken)")
    _check_tolerance_names(options, [*compared, *(t for t in boundary if t not in compared)])
    with progress(f"Comparing {candidate.runner} layers with {reference.runner}", None) as advance:
        streamed = compare_engine_layers(
            engine, options.model, provenance, result.feeds, comparator, (reference.runner, candidate.runner),
            skip=compared, budget_bytes=options.intermediate_budget_bytes,
            providers=tuple(options.onnxrt_providers or ("CPUExecutionProvider",)),
            profile_index=options.build.profile_index, on_tensor=advance, fail_fast=options.fail_fast)
    result.comparisons.extend(streamed.comparisons)
    result.stream_stats = streamed.stats
    if streamed.stopped_early:
        result.notes.append("--fail-fast: the layer comparison stopped at the first tensor over tolerance")
    if streamed.not_in_onnxrt:
        result.notes.append(f"{len(streamed.not_in_onnxrt)} engine tensor(s) have no type after ONNX shape inference, "
                            f"so onnxruntime cannot output them; not compared (e.g. "
                            f"{', '.join(streamed.not_in_onnxrt[:3])})")
    if provenance.engine_only:
        result.notes.append(f"{len(provenance.engine_only)} engine tensor(s) have no ONNX tensor of that name (layers "
                            f"a node lowers to); not compared (e.g. {', '.join(provenance.engine_only[:3])})")


def _inside_notes(provenance: EngineProvenance) -> dict[str, str]:
    """What the per-tensor analysis says about ONNX tensors the engine never stores."""
    notes = {}
    for group in provenance.fused_groups():
        for tensor in group.absorbed:
            notes[tensor] = f"inside fused layer {group.name} ({group.label}), compared at " \
                            f"{', '.join(group.outputs)}"
    for tensor in provenance.removed():
        notes[tensor] = "removed by the builder (a no-op or folded constant)"
    return notes


def _engine(options: RunOptions, plan_path: Path | None, feeds: list[Feeds] | None, progress: ProgressFactory,
            logger: trt.Logger) -> tuple[trt.Engine, BuildReport | None]:
    """Load the plan, or build (with a profile that fits the feeds); save it when asked."""
    report = None
    if plan_path is not None:
        engine, plan = load_engine(plan_path, logger)
    else:
        with progress("Building engine", None):
            build = _profile_for(options.build, feeds)
            if build.int8 and feeds:  # calibrate on the data this run compares with
                build = replace(build, calibration_data=list(feeds), progress=progress)
            engine, plan, report = build_engine(options.model, build, logger)
    if options.save_engine is not None:
        write_file(options.save_engine, plan)
    return engine, report


def _compare(result: RunResult, options: RunOptions, reference: RunnerOutputs, candidate: RunnerOutputs,
             nodes: list[GraphNode], progress: ProgressFactory) -> None:
    candidate, renamed = pair_near_miss_names(reference, candidate, result.notes)
    names = _common_names(reference, candidate, nodes, result.notes, loaded=options.load_outputs is not None,
                          check_shapes=options.check_shapes)
    if not options.compare_engine_layers:  # else checked once the layers' tensors are known
        _check_tolerance_names(options, names)
    comparator = _comparator(options)
    with progress(f"Comparing {candidate.runner} with {reference.runner}", len(names) * len(result.feeds)) as advance:
        result.comparisons.extend(compare_iterations(comparator, reference, candidate, names, renamed,
                                                     options.postprocess, options.fail_fast, on_tensor=advance))


def _comparator(options: RunOptions) -> Comparator:
    observer = None
    if options.plots.any:
        from .report.tensor_plots import TensorPlotter

        observer = TensorPlotter(options.plots)
    return Comparator(options.tolerances, histograms=options.histograms, compare_func=options.compare_func,
                      index_tolerance=options.index_tolerance, check_shapes=options.check_shapes,
                      user_func=UserCompareFunc.from_spec(options.compare_func_script)
                      if options.compare_func_script else None, observer=observer)


def _check_tolerance_names(options: RunOptions, names: list[str]) -> None:
    for what, unknown in (("a per-output tolerance", options.tolerances.unknown_names(set(names))),
                          ("--postprocess", unknown_outputs(options.postprocess, set(names)))):
        if unknown:
            raise PolyxError(f"{what} names '{unknown[0]}', which is not a compared tensor "
                             f"(compared: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")


def check_run_options(options: RunOptions) -> None:
    """Everything about the options that can be refused before any work (files, combinations, outputs)."""
    if not options.use_engine and not options.use_onnxrt:
        raise PolyxError("nothing to run: pass --engine and/or --onnxrt")
    if not options.model.is_file():
        raise PolyxError(f"{options.model}: no such file")
    if options.use_onnxrt and is_plan_file(options.model):
        raise PolyxError(f"{options.model}: --onnxrt needs an ONNX model, not an engine plan")
    if options.iterations < 1:
        raise PolyxError(f"--iterations must be >= 1, got {options.iterations}")
    if options.load_inputs is not None and options.data_loader_script is not None:
        raise PolyxError("--load-inputs and --data-loader-script both supply inputs; pass one of them")
    if options.load_outputs_runner is not None and options.load_outputs is None:
        raise PolyxError("--load-outputs-runner picks a runner of --load-outputs files; pass --load-outputs too")
    if options.compare_func_script is not None and options.compare_func != "simple":
        raise PolyxError("--compare-func-script replaces the compare function; do not pass --compare-func too")
    if options.compare_func_script is not None:
        path = script_path(options.compare_func_script)
        if path is None or not path.is_file() or not options.compare_func_script.rpartition(":")[2]:
            raise PolyxError(f"--compare-func-script '{options.compare_func_script}': expected FILE.py:FUNCTION "
                             "naming an existing file")
    if options.compare_engine_layers:
        _check_engine_layer_options(options)
    for flag, folder in (("--save-heatmaps", options.plots.heatmaps),
                         ("--save-error-metrics-plot", options.plots.error_metrics)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise PolyxError(f"{flag} {folder}: is a file; expected a folder (created when missing)")
    if options.plots.any and not (options.use_engine and options.use_onnxrt or options.load_outputs is not None):
        raise PolyxError("--save-heatmaps/--save-error-metrics-plot draw compared tensors: compare two runners "
                         "(--engine --onnxrt) or a runner with --load-outputs")
    if options.save_format not in ("polyx", "polygraphy"):
        raise PolyxError(f"--save-format must be polyx or polygraphy, got '{options.save_format}'")
    for path in (options.save_inputs, options.save_outputs):
        if options.save_format == "polygraphy" and path is not None and Path(path).suffix != ".json":
            raise PolyxError(f"{path}: --save-format polygraphy writes JSON; name the file *.json")
    for path in (*data_files(options.load_inputs), *data_files(options.load_outputs), options.load_engine):
        if path is not None and not Path(path).is_file():
            raise PolyxError(f"{path}: no such file")
    options.build.validate()
    inputs = options.input_paths()
    for path in options.output_paths():
        check_outputs_apart(path, inputs)


def _check_engine_layer_options(options: RunOptions) -> None:
    if not (options.use_engine and options.use_onnxrt) or is_plan_file(options.model):
        raise PolyxError("--mark-all compares the engine's layer outputs with onnxruntime's: run an ONNX model with "
                         "both --engine and --onnxrt (use --load-engine for a saved plan)")
    if options.load_outputs is not None:
        raise PolyxError("--mark-all takes its reference tensors from onnxruntime; it cannot be combined with "
                         "--load-outputs")
    if options.build.mark_all:
        raise PolyxError("--mark-all (the engine as built) and --mark-all-outputs (every tensor an output, fusions "
                         "broken) exclude each other; pass one")
    if options.intermediate_budget_bytes <= 0:
        raise PolyxError(f"--mark-all-budget must be > 0 bytes, got {options.intermediate_budget_bytes}")


def _engine_outputs(engine: trt.Engine) -> list[str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]


def _constants(model: onnx.ModelProto) -> set[str]:
    names = {init.name for init in model.graph.initializer}
    names.update(o for node in model.graph.node if node.op_type == "Constant" for o in node.output)
    return names


def _feeds(options: RunOptions, input_meta: dict[str, tuple[tuple, np.dtype]]) -> list[Feeds]:
    data = DataOptions(seed=options.seed, val_ranges=options.val_ranges, iterations=options.iterations,
                       script=options.data_loader_script, load_inputs=options.load_inputs)
    return command_feeds(data, input_meta, options.build.data_shapes())


def plan_data_shapes(build: BuildOptions, engine: trt.Engine) -> BuildOptions:
    """Data for a loaded plan: inputs without a given shape take the opt shape of the profile the run uses."""
    if not 0 <= build.profile_index < max(engine.num_optimization_profiles, 1):
        raise PolyxError(f"--optimization-profile {build.profile_index}: the plan has "
                         f"{engine.num_optimization_profiles} profile(s)")
    given = build.data_shapes()
    opt = {name: tuple(engine.get_tensor_profile_shape(name, build.profile_index)[1])
           for name in EngineRunner(engine).input_metadata() if name not in given}
    return replace(build, input_shapes={**opt, **build.input_shapes})


def _profile_for(build: BuildOptions, feeds: list[Feeds] | None) -> BuildOptions:
    """Inputs without any shape option get a profile spanning the shapes of the data (loaded or scripted)."""
    if not feeds:
        return build
    named = set(build.input_shapes) | set(build.min_shapes)
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for iteration in feeds:
        for name, array in iteration.items():
            if name not in named:
                shapes.setdefault(name, []).append(tuple(array.shape))
    if not shapes:
        return build
    ranks_agree = {name: s for name, s in shapes.items() if len({len(shape) for shape in s}) == 1}
    return replace(build,
                   min_shapes={**build.min_shapes, **{n: tuple(map(min, zip(*s))) for n, s in ranks_agree.items()}},
                   opt_shapes={**build.opt_shapes, **{n: s[0] for n, s in ranks_agree.items()}},
                   max_shapes={**build.max_shapes, **{n: tuple(map(max, zip(*s))) for n, s in ranks_agree.items()}})


def run_runner(runner: Runner, feeds: list[Feeds], progress: ProgressFactory = _quiet_progress) -> RunnerOutputs:
    """Activate the runner, infer every iteration (timed), deactivate."""
    outputs = RunnerOutputs(runner.name, [], [])
    with runner, progress(f"Running {runner.name}", len(feeds)) as advance:
        for iteration in feeds:
            outputs.iterations.append(runner.infer(iteration))
            outputs.inference_ms.append(runner.last_inference_ms)
            advance()
    return outputs


def _reference_and_candidates(options: RunOptions, runs: list[RunnerOutputs],
                              iterations: int) -> tuple[RunnerOutputs | None, list[RunnerOutputs]]:
    if options.load_outputs is not None:
        golden, source = load_chain(options.load_outputs, options.load_outputs_runner)
        if len(golden) != iterations:
            raise PolyxError(f"{source}: holds {len(golden)} iteration(s) of outputs, this run has "
                             f"{iterations} iteration(s) of inputs")
        names = ", ".join(path.name for path in given_paths(options.load_outputs))
        return RunnerOutputs(f"golden ({names})", golden, []), runs
    if len(runs) < 2:
        return None, []
    reference = next(r for r in runs if r.runner == "onnxrt")
    return reference, [r for r in runs if r is not reference]


def _common_names(reference: RunnerOutputs, candidate: RunnerOutputs, nodes: list[GraphNode], notes: list[str],
                  loaded: bool, check_shapes: bool = True) -> list[str]:
    """Tensors both sides produced, in topological order."""
    ref_names, out_names = set(reference.iterations[0]), set(candidate.iterations[0])
    common = ref_names & out_names
    if not common:
        what = f"{reference.runner} holds" if loaded else f"{reference.runner} produced"
        raise PolyxError(f"no tensor to compare: {what} {sorted(ref_names)[:5]}, {candidate.runner} produced "
                         f"{sorted(out_names)[:5]}")
    for side, names in ((reference.runner, ref_names - common), (candidate.runner, out_names - common)):
        if names:
            notes.append(f"{len(names)} tensor(s) only in {side}'s outputs were not compared "
                         f"(e.g. {', '.join(sorted(names)[:3])})")
    if loaded:
        for index, (ref, out) in enumerate(zip(reference.iterations, candidate.iterations)):
            for name in sorted(common):
                if np.shape(ref[name]) != np.shape(out[name]) and (check_shapes or np.size(ref[name]) !=
                                                                   np.size(out[name])):
                    raise PolyxError(f"{reference.runner}: tensor '{name}' (iteration {index}) has shape "
                                     f"{list(np.shape(ref[name]))}, {candidate.runner} produced "
                                     f"{list(np.shape(out[name]))}; the saved outputs come from other inputs")
    order = [o for node in nodes for o in node.outputs if o in common]
    return order + sorted(common - set(order))


def _non_finite(run: RunnerOutputs) -> Iterator[str]:
    for index, iteration in enumerate(run.iterations):
        for name, array in iteration.items():
            if array.dtype.kind not in "fc":
                continue
            nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
            if nan or inf:
                yield f"{run.runner}: '{name}' (iteration {index}) has {nan} NaN and {inf} Inf value(s)"
