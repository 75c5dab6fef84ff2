"""`polyx bench`: trtexec-like timing of a model (built with the shared build options) or of a plan."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..bench import BenchOptions, TimingSettings, format_bench_result, format_layer_table, run_bench
from ..build import BuildOptions
from ..data.files import check_writable, write_file
from ..errors import PolyxError
from ..report import format_build_report, progress_factory
from .build_options import MULTI_VALUE_BUILD_OPTIONS, parse_shapes, with_build_options
from .multi_value_options import multi_value_command
from .run_cmd import engine_logger

TIMING = "Timing"
OUTPUT = "Output"


def bench(
    model: Annotated[Path, typer.Argument(help="ONNX model, or a polyx plan (recognized by its contents).")],
    build_options: BuildOptions,
    shapes: Annotated[list[str] | None, typer.Option(
        "--shapes", help="Input shapes NAME:[1,3,224,224], one or more after one flag; the same as --input-shapes.",
        rich_help_panel=TIMING)] = None,
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up time in ms before timing.", min=0,
                                          rich_help_panel=TIMING)] = 200.0,
    iterations: Annotated[int, typer.Option("--iterations", help="Timed iterations per stream, at least.", min=1,
                                            rich_help_panel=TIMING)] = 10,
    duration: Annotated[float, typer.Option("--duration", help="Timed wall-clock seconds, at least.", min=0,
                                            rich_help_panel=TIMING)] = 3.0,
    streams: Annotated[int, typer.Option("--streams", help="Execution contexts running at once, one stream each.",
                                         min=1, rich_help_panel=TIMING)] = 1,
    use_cuda_graph: Annotated[bool, typer.Option("--use-cuda-graph", help="Replay a captured CUDA graph (GPU).",
                                                 rich_help_panel=TIMING)] = False,
    no_data_transfers: Annotated[bool, typer.Option(
        "--no-data-transfers", help="Time device compute only (no H2D/D2H copies).", rich_help_panel=TIMING)] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated inputs.", rich_help_panel=TIMING)] = 1,
    save_engine: Annotated[Path | None, typer.Option(
        "--save-engine", help="Write the plan that is timed (the one built from MODEL).", rich_help_panel=OUTPUT)
                           ] = None,
    load_engine: Annotated[Path | None, typer.Option(
        "--load-engine", help="Time this plan instead of building MODEL (build options then do not apply).",
        rich_help_panel=TIMING)] = None,
    export_profile: Annotated[Path | None, typer.Option(
        "--export-profile", help="Write per-layer times (JSON) from a profiled pass after timing.",
        rich_help_panel=OUTPUT)] = None,
    json_stdout: Annotated[bool, typer.Option("--json", help="Print the result as JSON (and nothing else).",
                                              rich_help_panel=OUTPUT)] = False,
    json_file: Annotated[Path | None, typer.Option("--json-file", help="Write the result as JSON to this file.",
                                                   rich_help_panel=OUTPUT)] = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True,
                                         help="Per-layer table (profiles layers); -vv: engine logs.")] = 0,
) -> None:
    """Time MODEL on the engine: throughput, latency percentiles, H2D/compute/D2H split and enqueue time."""
    runtime_shapes = parse_shapes(shapes, "--shapes")
    for name in runtime_shapes:
        if name in build_options.input_shapes:
            raise PolyxError(f"--shapes and --input-shapes both give the shape of '{name}'; pass one of them")
    build_options.input_shapes.update(runtime_shapes)
    if json_file is not None:
        check_writable(json_file)
    options = BenchOptions(model=model, build=build_options,
                           timing=TimingSettings(warmup_ms=warmup, min_iterations=iterations, duration_s=duration),
                           streams=streams, use_cuda_graph=use_cuda_graph, data_transfers=not no_data_transfers,
                           profile_layers=verbose > 0, export_profile=export_profile, seed=seed,
                           load_engine=load_engine, save_engine=save_engine)
    result = run_bench(options, engine_logger(verbose, quiet=False), progress_factory(enabled=not json_stdout))
    document = json.dumps(result.to_json(), indent=1)
    if json_file is not None:
        write_file(json_file, document + "\n")
    if json_stdout:
        typer.echo(document)
        return
    lines = format_build_report(result.build_report) if result.build_report is not None else []
    lines += format_bench_result(result)
    if verbose and result.profile is not None:
        lines += format_layer_table(result.profile)
    if save_engine is not None:
        lines.append(f"Saved the engine to {save_engine}")
    if export_profile is not None:
        lines.append(f"Saved per-layer profile to {export_profile}")
    if json_file is not None:
        lines.append(f"Wrote JSON result to {json_file}")
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("bench", cls=multi_value_command(*MULTI_VALUE_BUILD_OPTIONS, "--shapes"))(with_build_options(bench))
