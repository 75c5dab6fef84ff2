"""`polyx` entry point. Every command group lives in its own module and is registered here.

Exit codes (docs/guarantees.md): 0 success, 1 a comparison or check failed, 2 a usage error, unusable input or
an internal error (one line `polyx: error: ...` on stderr; `--debug` adds the traceback and keeps the exit code).
"""
from __future__ import annotations

import importlib
import sys
import traceback

import typer

from engine.errors import EngineError
from engine.output_files import reading_inputs

from ..errors import PolyxError
from .logging_options import take_logging_flags
from .polygraphy_hints import with_polygraphy_hint

app = typer.Typer(name="polyx", help="Debug and compare ONNX models on the polyx engine.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

# (module under polyx.cli, attribute, how it is attached): "group" modules expose a typer.Typer named `app`
# mounted under `name`; "command" modules expose functions registered with app.command(name).
COMMAND_MODULES = [
    ("run_cmd", "register"),
    ("convert_cmd", "register"),
    ("inspect_cmd", "register"),
    ("surgeon_cmd", "register"),
    ("check_cmd", "register"),
    ("debug_cmd", "register"),
    ("bench_cmd", "register"),
    ("data_cmd", "register"),
]



@app.callback()
def _root() -> None:
    """Debug and compare ONNX models on the polyx engine."""


@app.command("version")
def version() -> None:
    """Print the polyx and engine versions."""
    import engine

    from ..version import __version__

    typer.echo(f"polyx {__version__} (engine {engine.__version__})")


for _module, _hook in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"{__package__}.{_module}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__package__}.{_module}":
            raise
        continue
    getattr(_mod, _hook)(app)


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
        with reading_inputs():  # no output of the command may replace a file it read
            code = app(args=args, prog_name="polyx", standalone_mode=False)
        if isinstance(code, int):
            return code
    except (PolyxError, EngineError, OSError) as exc:
        return _report(exc, _first_line(exc), debug)
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        print("polyx: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
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
