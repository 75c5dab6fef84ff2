"""Options that take several values after one flag (`--inputs a b c`), which click itself cannot express."""
from __future__ import annotations

from typer.core import TyperCommand


def spread_multi_values(args: list[str], options: tuple[str, ...]) -> list[str]:
    """Rewrite `--inputs a b` as `--inputs a --inputs b`; a value list ends at the next token starting with '-'."""
    spread: list[str] = []
    current: str | None = None
    expecting_first = False
    for token in args:
        if token == "--":
            current = None
        elif token in options:
            current, expecting_first = token, True
            spread.append(token)
            continue
        elif token.startswith("-") and not expecting_first:
            current = None
        elif current is not None and not expecting_first:
            spread.append(current)
        expecting_first = False
        spread.append(token)
    return spread


def multi_value_command(*options: str) -> type[TyperCommand]:
    """A command class (for `app.command(cls=...)`) whose `options` each take one or more values."""

    class MultiValueCommand(TyperCommand):
        def parse_args(self, ctx, args: list[str]) -> list[str]:
            return super().parse_args(ctx, spread_multi_values(list(args), options))

    return MultiValueCommand
