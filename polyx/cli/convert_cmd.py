"""`polyx convert`: build an engine plan from an ONNX model and print a build summary."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.onnx_file import model_files

from ..build import BuildOptions, build_engine
from ..data.files import check_outputs_apart, write_file
from ..errors import PolyxError
from ..report import format_build_report, progress_factory
from .build_options import MULTI_VALUE_BUILD_OPTIONS, with_build_options
from .multi_value_options import multi_value_command
from .run_cmd import engine_logger


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
) -> None:
    """Build MODEL into an engine plan (-o) and print the build summary."""
    build_options.refittable, build_options.strip_plan = refittable, strip_plan
    if not model.is_file():
        raise PolyxError(f"{model}: no such file")
    for path in (output, build_options.save_tactics):
        if path is not None:
            check_outputs_apart(path, [*model_files(model), build_options.load_tactics, build_options.timing_cache])
    with progress_factory(enabled=not quiet)("Building engine", None):
        _, plan, report = build_engine(model, build_options, engine_logger(verbose, quiet))
    write_file(output, plan)
    if not quiet:
        for line in format_build_report(report):
            typer.echo(line)
        typer.echo(f"Saved engine to {output}")


def register(app: typer.Typer) -> None:
    app.command("convert", cls=multi_value_command(*MULTI_VALUE_BUILD_OPTIONS))(with_build_options(convert))
