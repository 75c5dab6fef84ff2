"""`polyx convert`: build an engine plan from an ONNX model and print a build summary."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.onnx_file import model_files

from ..build import CALIBRATION_BATCHES, BuildOptions, build_engine
from ..data.feeds import DataOptions, data_files
from ..data.files import check_outputs_apart, write_file
from ..errors import PolyxError
from ..report import format_build_report, progress_factory
from .build_options import MULTI_VALUE_BUILD_OPTIONS, parse_value_ranges, with_build_options
from .multi_value_options import multi_value_command
from .run_cmd import engine_logger

CALIBRATION = "INT8 calibration data (default: generated, as `run` generates its inputs)"


def convert(
    model: Annotated[Path, typer.Argument(help="ONNX model.")],
    build_options: BuildOptions,
    output: Annotated[Path, typer.Option("-o", "--output", "--save-engine",
                                                   help="Plan file to write (overwritten if it exists).")],
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More detail (-vv: engine logs).")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing on success.")] = False,
    refittable: Annotated[bool, typer.Option(
        "--refittable", help="Keep the weights replaceable: `polyx refit` puts another model's weights in "
                             "(docs/refit.md).")] = False,
    strip_plan: Annotated[bool, typer.Option(
        "--strip-plan", help="Refittable, and leave the weights out of the plan; it runs only after "
                             "`polyx refit`.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the generated calibration inputs (default 1).",
                                             rich_help_panel=CALIBRATION)] = None,
    val_range: Annotated[list[str] | None, typer.Option(
        "--val-range", help="Value range NAME:\\[lo,hi] or \\[lo,hi] of the generated inputs (default [0,1)).",
        rich_help_panel=CALIBRATION)] = None,
    iterations: Annotated[int | None, typer.Option(
        "--iterations", help=f"Generated calibration batches (default {CALIBRATION_BATCHES}).", min=1,
        rich_help_panel=CALIBRATION)] = None,
    data_loader_script: Annotated[str | None, typer.Option(
        "--data-loader-script", help="FILE.py:FUNCTION yielding {input: array} dicts: the calibration batches.",
        rich_help_panel=CALIBRATION)] = None,
    load_inputs: Annotated[list[Path] | None, typer.Option(
        "--load-inputs", help=".npz or .json (ours or Polygraphy's): each iteration a calibration batch.",
        rich_help_panel=CALIBRATION)] = None,
) -> None:
    """Build MODEL into an engine plan (-o) and print the build summary."""
    build_options.refittable, build_options.strip_plan = refittable, strip_plan
    if not model.is_file():
        raise PolyxError(f"{model}: no such file")
    given = {"--seed": seed is not None, "--val-range": bool(val_range), "--iterations": iterations is not None,
             "--data-loader-script": data_loader_script is not None, "--load-inputs": bool(load_inputs)}
    if any(given.values()):
        if not build_options.int8:
            flags = ", ".join(flag for flag, on in given.items() if on)
            raise PolyxError(f"{flags}: convert reads input data only to calibrate INT8; add --int8")
        build_options.calibration_inputs = DataOptions(
            seed=1 if seed is None else seed, val_ranges=parse_value_ranges(val_range),
            iterations=CALIBRATION_BATCHES if iterations is None else iterations, script=data_loader_script,
            load_inputs=load_inputs or None)
    read = [*model_files(model), build_options.load_tactics, build_options.timing_cache, *data_files(load_inputs),
            data_loader_script.rpartition(":")[0] if data_loader_script else None]
    for path in (output, build_options.save_tactics):
        if path is not None:
            check_outputs_apart(path, read)
    progress = progress_factory(enabled=not quiet)
    build_options.progress = progress
    with progress("Building engine", None):
        _, plan, report = build_engine(model, build_options, engine_logger(verbose, quiet))
    write_file(output, plan)
    if not quiet:
        for line in format_build_report(report):
            typer.echo(line)
        typer.echo(f"Saved engine to {output}")


def register(app: typer.Typer) -> None:
    app.command("convert", cls=multi_value_command(*MULTI_VALUE_BUILD_OPTIONS, "--val-range", "--load-inputs"))(
        with_build_options(convert))
