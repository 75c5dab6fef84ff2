"""docs/cli.md and the typer app name the same flags: every option of every command is documented, and every
`--flag` the page names exists (an option of some command, a global flag, or a Polygraphy flag the page shows
being answered with a hint). Read mechanically from the click commands the app builds, so a flag added or
renamed without its doc line fails here."""
from __future__ import annotations

import re
from pathlib import Path

from polyx.cli.app import COMMANDS, load_command
from polyx.cli.logging_options import LOGGING_FLAGS
from polyx.cli.polygraphy_hints import POLYGRAPHY_EQUIVALENTS

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
GLOBAL_FLAGS = {*LOGGING_FLAGS, "--debug", "--help"}
# Flags on the page that belong to no polyx command, each with why it is there.
NOT_POLYX_FLAGS = {
    "--out": "an option of the user's own script inside a `debug repeat --check \"...\"` example",
}
# Shorthands the page writes for several flags at once.
SHORTHANDS = {"--min/--opt/--max-shapes": "--min-shapes --opt-shapes --max-shapes"}


def _commands():
    """(command path, click option) for every option of every leaf command."""
    def walk(command, path):
        if hasattr(command, "commands"):  # a group: its subcommands
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            for param in command.params:
                if param.param_type_name == "option":
                    yield " ".join(path), param

    for name, module, _ in COMMANDS:
        yield from walk(load_command(name, module), [name])


def _doc_text() -> str:
    text = CLI_DOC.read_text(encoding="utf-8")
    for short, full in SHORTHANDS.items():
        text = text.replace(short, full)
    return text


def _named(flag: str, text: str) -> bool:
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


OPTIONS = list(_commands())


def test_the_walk_sees_every_command_group():
    """Guards the walk itself: it must reach subcommands and shared build options, not stop at the groups."""
    paths = {path for path, _ in OPTIONS}
    for expected in ("run", "convert", "bench", "refit", "inspect model", "inspect capability", "surgeon sanitize",
                     "debug reduce", "debug repeat", "plugin match", "data to-input", "check lint"):
        assert expected in paths, expected
    run_flags = {flag for path, option in OPTIONS if path == "run" for flag in option.opts}
    assert {"--fp16", "--atol", "--mark-all", "--profiling-verbosity"} <= run_flags


def test_every_option_has_a_line_in_cli_md():
    text = _doc_text()
    missing = []
    for path, option in OPTIONS:
        spellings = [flag for flag in option.opts if flag != "--help"]
        if not spellings:
            continue
        if option.secondary_opts:  # an on/off pair (--refine/--no-refine): documenting either side is enough
            if not any(_named(flag, text) for flag in spellings + option.secondary_opts):
                missing.append(f"polyx {path} {'/'.join(spellings + option.secondary_opts)}")
            continue
        long_spellings = [flag for flag in spellings if flag.startswith("--")]
        missing += [f"polyx {path} {flag}" for flag in (long_spellings or spellings) if not _named(flag, text)]
    assert not missing, f"options without a line in docs/cli.md: {missing}"


def test_cli_md_names_no_flag_that_does_not_exist():
    known = set(GLOBAL_FLAGS) | set(POLYGRAPHY_EQUIVALENTS) | set(NOT_POLYX_FLAGS)
    for _, option in OPTIONS:
        known.update(option.opts)
        known.update(option.secondary_opts)
    # `--save-*` is a wildcard, not a flag
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])(?![\w*-])", _doc_text()))
    unknown = sorted(named - known)
    assert not unknown, f"docs/cli.md names flags no command has: {unknown}"
