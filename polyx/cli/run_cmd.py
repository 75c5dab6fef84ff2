"""`polyx run`: run a model on the engine and/or onnxruntime with the same inputs and compare every output."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

import engine as trt

from ..build import BuildOptions
from ..compare.engine_stream import DEFAULT_BUDGET_BYTES
from ..compare.plot_options import PlotOptions
from ..compare.postprocess import parse_postprocess
from ..compare.tolerance import DEFAULT_ATOL, DEFAULT_RTOL
from ..errors import PolyxError
from ..report import format_build_report, format_run_result, progress_factory, write_html
from ..run_session import RunOptions, check_run_options, run_session
from ..runners.onnxrt_runner import resolve_providers
from .build_options import (
    MULTI_VALUE_BUILD_OPTIONS,
    parse_size,
    parse_value_ranges,
    tolerances_from_flags,
    with_build_options,
)
from .logging_options import engine_severity
from .multi_value_options import multi_value_command

DATA = "Data"
COMPARE = "Comparison"
OUTPUTS = "Outputs to compare"


class SaveFormat(str, Enum):
    polyx = "polyx"
    polygraphy = "polygraphy"


class ErrorStat(str, Enum):
    elemwise = "elemwise"
    max = "max"
    mean = "mean"
    median = "median"
    quantile = "quantile"


class CompareFuncName(str, Enum):
    simple = "simple"
    indices = "indices"


def engine_logger(verbose: int, quiet: bool) -> trt.Logger:
    """-q: errors only; default and -v: warnings; -vv: info; -vvv: verbose (tactic timings); --verbosity overrides."""
    if engine_severity() is not None:
        return trt.Logger(engine_severity())
    levels = (trt.Logger.WARNING, trt.Logger.WARNING, trt.Logger.INFO, trt.Logger.VERBOSE)
    severity = trt.Logger.ERROR if quiet else levels[min(verbose, 3)]
    return trt.Logger(severity)


def _marked(values: list[str] | None, extra: list[str]) -> tuple[bool, list[str]]:
    """`--onnx-outputs mark all` (Polygraphy's spelling; `all` arrives as an extra argument) or tensor names."""
    names = list(values or [])
    if "mark" in names and ("all" in names or "all" in extra):
        (names if "all" in names else extra).remove("all")
        names.remove("mark")
        return True, names
    return False, names


def run(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model (or an engine plan with --engine only).")],
    build_options: BuildOptions,
    use_engine: Annotated[bool, typer.Option("--engine", "--trt", help="Run the polyx engine.")] = False,
    use_onnxrt: Annotated[bool, typer.Option("--onnxrt", help="Run onnxruntime (CPU).")] = False,
    providers: Annotated[list[str] | None, typer.Option(
        "--providers", help="onnxruntime execution providers in priority order, e.g. cuda cpu (default cpu).")
                         ] = None,
    mark_all: Annotated[bool, typer.Option(
        "--mark-all", help="Compare every tensor at a layer boundary of the engine as built (same fusions, "
                           "precisions and tactics; = --engine-outputs mark all); tensors inside fused layers are "
                           "compared at the fused layer's output.", rich_help_panel=OUTPUTS)] = False,
    mark_all_outputs: Annotated[bool, typer.Option(
        "--mark-all-outputs", help="Polygraphy's mark-all: make every tensor an engine and onnxruntime output "
                                   "(breaks fusions, so the engine differs from the one you ship).",
        rich_help_panel=OUTPUTS)] = False,
    mark_all_budget: Annotated[str | None, typer.Option(
        "--mark-all-budget", help="--mark-all: most bytes of onnxruntime reference tensors held at once, e.g. 512M "
                                  "(default 1G); more chunks, more runs.", rich_help_panel=OUTPUTS)] = None,
    onnx_outputs: Annotated[list[str] | None, typer.Option(
        "--onnx-outputs", help="Extra onnxruntime output tensor (repeatable), or `mark all`.",
        rich_help_panel=OUTPUTS)] = None,
    engine_outputs: Annotated[list[str] | None, typer.Option(
        "--engine-outputs", "--trt-outputs", help="Extra engine output tensor (repeatable), or `mark all` (= "
                                                  "--mark-all: the engine as built).",
        rich_help_panel=OUTPUTS)] = None,
    save_engine: Annotated[Path | None, typer.Option("--save-engine", help="Write the built plan.")] = None,
    load_engine: Annotated[Path | None, typer.Option("--load-engine", help="Run this plan instead of building.")
                           ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated inputs.", rich_help_panel=DATA)] = 1,
    val_range: Annotated[list[str] | None, typer.Option(
        "--val-range", help="Value range NAME:\\[lo,hi] or \\[lo,hi] for all inputs (repeatable).",
        rich_help_panel=DATA)] = None,
    data_loader_script: Annotated[str | None, typer.Option(
        "--data-loader-script", help="FILE.py:FUNCTION yielding {input: array} dicts.", rich_help_panel=DATA)] = None,
    iterations: Annotated[int, typer.Option("--iterations", help="Inference iterations (sets of inputs).",
                                            rich_help_panel=DATA, min=1)] = 1,
    save_inputs: Annotated[Path | None, typer.Option("--save-inputs", help=".npz or .json",
                                                        rich_help_panel=DATA)] = None,
    load_inputs: Annotated[list[Path] | None, typer.Option(
        "--load-inputs", help=".npz or .json (ours or Polygraphy's); several files chain their iterations.",
        rich_help_panel=DATA)] = None,
    save_outputs: Annotated[Path | None, typer.Option(
        "--save-outputs", help="Save onnxruntime's outputs (the engine's when onnxruntime does not run).",
        rich_help_panel=DATA)] = None,
    load_outputs: Annotated[list[Path] | None, typer.Option(
        "--load-outputs", help="Compare against these saved (golden) outputs (ours or Polygraphy's RunResults); "
                               "several files chain their iterations.", rich_help_panel=DATA)] = None,
    load_outputs_runner: Annotated[str | None, typer.Option(
        "--load-outputs-runner", help="The runner of Polygraphy RunResults to compare against (its name or the "
                                      "start of it); needed when the file holds several.", rich_help_panel=DATA)
                                   ] = None,
    save_format: Annotated[SaveFormat, typer.Option(
        "--save-format", help="polyx (.npz/.json by suffix) or polygraphy (Polygraphy's JSON: input list and "
                              "RunResults of every runner).", case_sensitive=False, rich_help_panel=DATA)
                           ] = SaveFormat.polyx,
    atol: Annotated[list[str] | None, typer.Option(
        "--atol", help=f"Absolute tolerance, global or per output NAME:VALUE (default {DEFAULT_ATOL:g}).",
        rich_help_panel=COMPARE)] = None,
    rtol: Annotated[list[str] | None, typer.Option(
        "--rtol", help=f"Relative tolerance, global or per output NAME:VALUE (default {DEFAULT_RTOL:g}).",
        rich_help_panel=COMPARE)] = None,
    check_error_stat: Annotated[ErrorStat, typer.Option(
        "--check-error-stat", help="Which error must be within tolerance.", case_sensitive=False,
        rich_help_panel=COMPARE)] = ErrorStat.elemwise,
    error_quantile: Annotated[float, typer.Option(
        "--error-quantile", help="The quantile of --check-error-stat quantile (default 0.99).", min=0.0, max=1.0,
        rich_help_panel=COMPARE)] = 0.99,
    compare_func: Annotated[CompareFuncName, typer.Option(
        "--compare-func", help="simple: tolerances; indices: index lists (e.g. after --postprocess top-K) must agree "
                               "within --index-tolerance positions.", case_sensitive=False, rich_help_panel=COMPARE)
                            ] = CompareFuncName.simple,
    index_tolerance: Annotated[int, typer.Option(
        "--index-tolerance", help="--compare-func indices: how many positions an index may move.", min=0,
        rich_help_panel=COMPARE)] = 0,
    postprocess: Annotated[list[str] | None, typer.Option(
        "--postprocess", help="Before comparing: [OUTPUT:]top-K[,axis=A] replaces outputs by the indices of their K "
                              "largest values (one or more).", rich_help_panel=COMPARE)] = None,
    compare_func_script: Annotated[str | None, typer.Option(
        "--compare-func-script", help="FILE.py:FUNCTION(reference, candidate) -> {output: True|False} judging each "
                                      "iteration instead of the tolerances.", rich_help_panel=COMPARE)] = None,
    no_shape_check: Annotated[bool, typer.Option(
        "--no-shape-check", help="Compare outputs whose shapes differ but hold as many elements (reshaped to the "
                                 "reference's shape).", rich_help_panel=COMPARE)] = False,
    validate: Annotated[bool, typer.Option("--validate", help="Fail on NaN or Inf in any output.",
                                           rich_help_panel=COMPARE)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed comparison.",
                                            rich_help_panel=COMPARE)] = False,
    worst: Annotated[int, typer.Option("--worst", help="Rows in the worst-tensors table.", min=1,
                                       rich_help_panel=COMPARE)] = 10,
    report: Annotated[Path | None, typer.Option("--report", help="Write a self-contained HTML report.",
                                                   rich_help_panel=COMPARE)] = None,
    gen_script: Annotated[Path | None, typer.Option(
        "--gen-script", help="Write this run as a Python script on polyx.api (docs/scripting.md) instead of running "
                             "it; the script prints the same verdict and exits with the same code.")] = None,
    save_heatmaps: Annotated[Path | None, typer.Option(
        "--save-heatmaps", help="Write an SVG heatmap of the absolute and relative error per compared tensor "
                                "into this folder.", rich_help_panel=COMPARE)] = None,
    save_error_metrics_plot: Annotated[Path | None, typer.Option(
        "--save-error-metrics-plot", help="Write an SVG plot of the error distribution per compared tensor into "
                                          "this folder.", rich_help_panel=COMPARE)] = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More detail (-vv: engine logs).")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the result lines.")] = False,
) -> None:
    """Run MODEL on the engine and/or onnxruntime with the same inputs and compare every output.

    Exit code 0 when every comparison (and --validate) passes, 1 when one fails, 2 for a usage error.
    """
    extra = list(ctx.args)
    onnx_mark_all, onnx_names = _marked(onnx_outputs, extra)
    engine_mark_all, engine_names = _marked(engine_outputs, extra)
    if extra:
        raise PolyxError(f"unexpected extra argument(s): {' '.join(extra)}")
    build_options.mark_all = mark_all_outputs
    build_options.mark_outputs = engine_names
    tolerances = tolerances_from_flags(atol, rtol, check_error_stat.value, error_quantile)
    options = RunOptions(model=model, use_engine=use_engine, use_onnxrt=use_onnxrt, build=build_options,
                         load_engine=load_engine, save_engine=save_engine, seed=seed,
                         val_ranges=parse_value_ranges(val_range), data_loader_script=data_loader_script,
                         iterations=iterations, load_inputs=load_inputs or None, save_inputs=save_inputs,
                         load_outputs=load_outputs or None, load_outputs_runner=load_outputs_runner,
                         save_outputs=save_outputs, save_format=save_format.value, tolerances=tolerances,
                         compare_func=compare_func.value, index_tolerance=index_tolerance,
                         check_shapes=not no_shape_check, postprocess=parse_postprocess(postprocess),
                         compare_func_script=compare_func_script,
                         onnx_mark_all=mark_all_outputs or onnx_mark_all, onnx_outputs=onnx_names, validate=validate,
                         compare_engine_layers=mark_all or engine_mark_all,
                         intermediate_budget_bytes=DEFAULT_BUDGET_BYTES if mark_all_budget is None else
                         parse_size(mark_all_budget, "--mark-all-budget"),
                         plots=PlotOptions(save_heatmaps, save_error_metrics_plot),
                         onnxrt_providers=resolve_providers(providers) if providers else None,
                         fail_fast=fail_fast, histograms=verbose > 0, worst_count=worst, report=report)
    if gen_script is not None:
        _write_script(gen_script, options)
        return
    result = run_session(options, progress=progress_factory(enabled=not quiet), logger=engine_logger(verbose, quiet))
    if result.build_report is not None and verbose:
        _echo(format_build_report(result.build_report))
    lines = format_run_result(result, verbose=verbose)
    if quiet:
        lines = [line for line in lines if line.startswith(("First divergence:", "First failing engine layer:",
                                                               "RESULT:", "VALIDATION FAILED"))]
    _echo(lines)
    if report is not None:
        write_html(report, result, f"polyx run {model.name}")
        if not quiet:
            typer.echo(f"Wrote HTML report to {report}")
    if not result.passed:
        raise typer.Exit(1)


def _write_script(path: Path, options: RunOptions) -> None:
    """Checks the options as a run would, then writes the script (never over a file the run reads)."""
    from ..data.files import check_outputs_apart, write_file
    from ..script_writer import generate_script

    check_run_options(options)
    check_outputs_apart(path, options.input_paths() + options.output_paths())
    write_file(path, generate_script(options, f"polyx run {options.model} --gen-script {path}"))
    typer.echo(f"Wrote script to {path}")


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    options = (*MULTI_VALUE_BUILD_OPTIONS, "--val-range", "--atol", "--rtol", "--onnx-outputs", "--engine-outputs",
               "--trt-outputs", "--providers", "--load-inputs", "--load-outputs", "--postprocess")
    app.command("run", context_settings={"allow_extra_args": True},
                cls=multi_value_command(*options))(with_build_options(run))
