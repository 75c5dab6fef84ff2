"""One `polyx bench`: load or build the engine, make seeded inputs, time N workers (streams), optionally profile
layers. The command prints the BenchResult this returns; tests check its numbers and outputs."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import engine as trt
from engine.config import resolve_device
from engine.onnx_file import model_files
from engine.plan_file import is_plan_file

from ..build import BuildOptions, build_engine, load_engine
from ..data.files import check_outputs_apart, check_writable, write_file
from ..data.loader import DataLoader
from ..errors import PolyxError
from .io_tensors import input_meta
from .layer_profile import profile_layers
from .result import BenchResult
from .timing import TimingSettings, time_workers
from .worker import create_workers

ProgressFactory = Callable[[str, int | None], contextlib.AbstractContextManager]


@dataclass
class BenchOptions:
    model: Path
    build: BuildOptions = field(default_factory=BuildOptions)
    timing: TimingSettings = field(default_factory=TimingSettings)
    streams: int = 1
    use_cuda_graph: bool = False
    data_transfers: bool = True
    profile_layers: bool = False
    export_profile: Path | None = None
    seed: int = 1
    load_engine: Path | None = None  # time this plan instead of building MODEL
    save_engine: Path | None = None  # write the plan that is timed

    def validate(self) -> None:
        if not self.model.is_file():
            raise PolyxError(f"{self.model}: no such file")
        if self.load_engine is not None and not self.load_engine.is_file():
            raise PolyxError(f"{self.load_engine}: no such file (--load-engine)")
        if self.load_engine is not None and self.model_is_plan:
            raise PolyxError(f"{self.model} is already an engine plan; --load-engine names another one: pass one")
        if self.save_engine is not None:
            check_outputs_apart(self.save_engine, [*model_files(self.model), self.load_engine])
        if self.streams < 1:
            raise PolyxError(f"--streams must be >= 1, got {self.streams}")
        self.timing.validate()
        if self.export_profile is not None:
            check_writable(self.export_profile)

    @property
    def model_is_plan(self) -> bool:
        return is_plan_file(self.model)


def _no_progress(description: str, total: int | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext(lambda: None)


def run_bench(options: BenchOptions, logger: trt.Logger | None = None,
              progress: ProgressFactory = _no_progress) -> BenchResult:
    options.validate()
    logger = logger or trt.Logger(trt.Logger.WARNING)
    build_report = None
    plan_path = options.model if options.model_is_plan else options.load_engine
    if plan_path is not None:
        engine, plan = load_engine(plan_path, logger)
        _check_cuda_graph(options, engine.device)
    else:
        options.build.validate()
        _check_cuda_graph(options, resolve_device(options.build.device))
        with progress("Building engine", None):
            engine, plan, build_report = build_engine(options.model, options.build, logger)
    if options.save_engine is not None:
        write_file(options.save_engine, plan)
    feeds = next(iter(DataLoader(input_meta(engine), seed=options.seed, shapes=_data_shapes(engine, options.build))))
    workers = create_workers(engine, feeds, options.streams, options.data_transfers, options.use_cuda_graph,
                             options.build.profile_index)
    with progress(f"Benchmarking on {options.streams} stream(s)", None):
        timed = time_workers(workers, options.timing)
    profile = None
    if options.profile_layers or options.export_profile is not None:
        with progress("Profiling layers", None):
            profile = profile_layers(engine, workers[0], options.timing.min_iterations)
        if options.export_profile is not None:
            profile.save(options.export_profile)
    return BenchResult(model=str(options.model), engine=engine, build_report=build_report, feeds=feeds,
                       timing=options.timing, streams=options.streams, use_cuda_graph=options.use_cuda_graph,
                       cuda_graph_active=all(w.cuda_graph_active for w in workers),
                       data_transfers=options.data_transfers, timed=timed, profile=profile,
                       outputs=[w.outputs() for w in workers])


def _check_cuda_graph(options: BenchOptions, device: str) -> None:
    if options.use_cuda_graph and device != "gpu":
        raise PolyxError("--use-cuda-graph needs a GPU engine; this engine runs on the CPU "
                         "(use --device gpu on a machine with a CUDA GPU)")


def _data_shapes(engine: trt.Engine, build: BuildOptions) -> dict[str, tuple[int, ...]]:
    """The shape options (`--shapes`/`--input-shapes`, else `--opt-shapes`); else the opt shape of the profile the
    run uses (`--optimization-profile`)."""
    if build.profile_index >= max(engine.num_optimization_profiles, 1):
        raise PolyxError(f"--optimization-profile {build.profile_index}: the engine has "
                         f"{engine.num_optimization_profiles} profile(s)")
    given = build.data_shapes()
    shapes = {}
    for name, (shape, _) in input_meta(engine).items():
        if name in given:
            shapes[name] = given[name]
        elif any(d < 0 for d in shape) and engine.num_optimization_profiles:
            shapes[name] = tuple(engine.get_tensor_profile_shape(name, build.profile_index)[1])
    unknown = sorted(set(given) - set(shapes))
    if unknown:
        raise PolyxError(f"shape given for '{unknown[0]}', which is not an input of the engine "
                         f"(inputs: {', '.join(input_meta(engine))})")
    return shapes

