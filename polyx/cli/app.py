"""`polyx` entry point. Every command group lives in its own module and is registered here.

Exit codes (docs/guarantees.md): 0 success, 1 a comparison or check failed, 2 a usage error, unusable input or
an internal error (one line `polyx: error: ...` on stderr; `--debug` adds the traceback and keeps the exit code).
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import traceback

import typer
from typer.core import TyperGroup

from ..errors import PolyxError
from .logging_options import take_logging_flags
from .polygraphy_hints import with_polygraphy_hint

# (command, module under polyx.cli, its one-line help). `polyx --help` lists them from this table; a command's
# module (and with it onnx, numpy and the engine) is imported only when that command runs or shows its own help.
# Each module's `register(app)` attaches the command (a function or a typer group) under that name.
COMMANDS = [
    ("run", "run_cmd", "Run MODEL on the engine and/or onnxruntime with the same inputs and compare every output."),
    ("convert", "convert_cmd", "Build MODEL into an engine plan (-o) and print the build summary."),
    ("bench", "bench_cmd", "Time MODEL on the engine: throughput, latency percentiles, H2D/compute/D2H split and "
                           "enqueue time."),
    ("refit", "refit_cmd", "Put the weights of an ONNX model into a refittable engine plan (-o NEWPLAN)."),
    ("inspect", "inspect_cmd", "Show what is inside a model, plan, tensor file or tactic replay file."),
    ("surgeon", "surgeon_cmd", "Rewrite ONNX graphs: sanitize, extract a subgraph, insert a node."),
    ("check", "check_cmd", "Static checks of ONNX models."),
    ("debug", "debug_cmd", "Find what makes an engine wrong: bad tactics, FP16 layers, a minimal failing subgraph, "
                           "flaky builds."),
    ("data", "data_cmd", "Work with saved input and output files."),
    ("plugin", "plugin_cmd", "List, match and replace subgraphs with plugins (Python modules given by --plugins)."),
]


def load_command(name: str, module: str):
    """The click command `name` as its module registers it (imports the module)."""
    holder = typer.Typer(add_completion=False)
    holder.callback()(lambda: None)  # a group even when the module adds a single command
    importlib.import_module(f"{__package__}.{module}").register(holder)
    return typer.main.get_group(holder).commands[name]


class _LazyCommand(TyperGroup):
    """Stands in a help listing for a command whose module is not imported yet; parsing its arguments (running it
    or asking for its own --help) loads the real command."""

    def __init__(self, name: str, module: str, short_help: str):
        super().__init__(name=name, help=short_help, short_help=short_help)
        self.module = module

    def make_context(self, info_name, args, parent=None, **extra):
        return load_command(self.name, self.module).make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        return [*super().list_commands(ctx), *(name for name, _, _ in COMMANDS if name not in self.commands)]

    def get_command(self, ctx, name: str):
        if name in self.commands:
            return self.commands[name]
        return next((_LazyCommand(name, module, text) for command, module, text in COMMANDS if command == name), None)


app = typer.Typer(name="polyx", help="Debug and compare ONNX models on the polyx engine.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, cls=_LazyGroup)


@app.callback()
def _root() -> None:
    """Debug and compare ONNX models on the polyx engine."""


@app.command("version")
def version() -> None:
    """Print the polyx and engine versions."""
    import engine

    from ..version import __version__

    typer.echo(f"polyx {__version__} (engine {engine.__version__})")


def _is_engine_error(exc: BaseException) -> bool:
    """An engine error can only exist once engine.errors is imported: no import needed to recognise it."""
    errors = sys.modules.get("engine.errors")
    return errors is not None and isinstance(exc, errors.EngineError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Every error, expected or not, becomes one line on stderr and exit code 2 (`--debug` prints
    the traceback first and keeps the code), so scripts never read a crash as exit 1, "the check failed"."""
    try:
        args, logging_settings = take_logging_flags(list(sys.argv[1:] if argv is None else argv))
    except PolyxError as exc:
        print(f"polyx: error: {exc}", file=sys.stderr)
        return 2
    with logging_settings.applied():
        return _main(args)


def _main(args: list[str]) -> int:
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        # Without standalone mode, click returns a typer.Exit's code instead of raising it.
        with _reading_inputs(args):  # no output of the command may replace a file it read
            code = app(args=args, prog_name="polyx", standalone_mode=False)
        if isinstance(code, int):
            return code
    except (PolyxError, OSError) as exc:
        return _report(exc, _first_line(exc), debug)
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        print("polyx: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_engine_error(exc):
            return _report(exc, _first_line(exc), debug)
        # Usage errors of the click layer typer is built on (typer may vendor its own copy of click).
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            return _report(exc, with_polygraphy_hint(exc.format_message()), debug)
        if type(exc).__name__ == "Abort":
            print("polyx: aborted", file=sys.stderr)
            return 130
        # A bug or an input no check caught: still one line, still exit 2; the type names what went wrong.
        return _report(exc, f"internal error: {type(exc).__name__}: {_first_line(exc)} "
                            "(rerun with --debug for the traceback)", debug)
    return 0


def _reading_inputs(args: list[str]) -> contextlib.AbstractContextManager:
    """engine.output_files' record of the files the command reads; not for help or version, which must not pay
    for importing the engine."""
    if not args or "--help" in args or args[0] == "version":
        return contextlib.nullcontext()
    from engine.output_files import reading_inputs

    return reading_inputs()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text.splitlines()[0] if text else type(exc).__name__


def _report(exc: BaseException, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"polyx: error: {message}", file=sys.stderr)
    return 2


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
