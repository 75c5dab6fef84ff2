"""`polyx inspect`: what is inside an ONNX model or plan, a saved tensor file, or a tactic replay file.

`inspect capability` (which nodes the engine can take) lives in `inspect_capability.py` and is mounted here
when that module is present.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..data.files import load_tensors
from ..inspect.data import data_blocks, describe_data, refuse_other_file_kinds
from ..inspect.model_file import SHOW_CHOICES, describe_model_file, model_blocks, parse_show, require_file
from ..inspect.render import Block, print_blocks, to_json
from ..inspect.tactics import describe_tactics, tactics_blocks
from ..plugin_modules import load_plugin_modules
from .multi_value_options import multi_value_command
from .plugin_options import PluginsOption

inspect_app = typer.Typer(name="inspect", help="Show what is inside a model, plan, tensor file or tactic replay file.",
                          no_args_is_help=True)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="text (tables) or json.")]


def _emit(report: dict[str, Any], text_blocks: Callable[[], list[Block]], output_format: OutputFormat) -> None:
    if output_format == OutputFormat.json:
        typer.echo(to_json(report))
    else:
        print_blocks(text_blocks())


@inspect_app.command("model", cls=multi_value_command("--show", "--plugins"))
def model(
    file: Annotated[Path, typer.Argument(help="An ONNX model (.onnx) or a polyx plan (.plan).")],
    show: Annotated[list[str] | None, typer.Option(
        "--show", help=f"Details to add to the summary: {', '.join(SHOW_CHOICES)} (several values after one "
                       "flag, repeat or comma-separate).")] = None,
    output_format: FormatOption = OutputFormat.text,
    plugins: PluginsOption = None,
) -> None:
    """Summarize an ONNX model (opsets, IO, initializers, ops) or a plan (profiles, bindings, tactics, memory)."""
    load_plugin_modules(plugins)
    report = describe_model_file(file, parse_show(show or []))
    _emit(report, lambda: model_blocks(report), output_format)


@inspect_app.command("data")
def data(
    file: Annotated[Path, typer.Argument(help="A tensor file (.npz or .json) from --save-inputs/--save-outputs.")],
    show_values: Annotated[bool, typer.Option("--show-values", help="Print the tensors' values too.")] = False,
    all_values: Annotated[bool, typer.Option("--all", help="With --show-values: print every value, no '...'.")] = False,
    runner: Annotated[str | None, typer.Option(
        "--runner", help="The runner of a Polygraphy RunResults file to show (name or its start).")] = None,
    output_format: FormatOption = OutputFormat.text,
) -> None:
    """Per iteration and tensor: shape, dtype, mean/std/min/max/median (and NaN/inf counts)."""
    refuse_other_file_kinds(require_file(file))
    iterations = load_tensors(file, runner=runner)
    report = describe_data(file, iterations, show_values=show_values and output_format == OutputFormat.json)
    _emit(report, lambda: data_blocks(report, iterations if show_values else None, all_values), output_format)


@inspect_app.command("tactics")
def tactics(
    file: Annotated[Path, typer.Argument(help="A tactic replay file (JSON) from --save-tactics.")],
    output_format: FormatOption = OutputFormat.text,
) -> None:
    """Per layer: the recorded tactic (name and id) and layer type; how many layers use each tactic."""
    report = describe_tactics(require_file(file))
    _emit(report, lambda: tactics_blocks(report), output_format)


def _mount_capability() -> None:
    name = f"{__package__}.inspect_capability"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return
    inspect_app.command("capability", cls=multi_value_command("--plugins"))(module.capability)


_mount_capability()


def register(app: typer.Typer) -> None:
    app.add_typer(inspect_app, name="inspect")
