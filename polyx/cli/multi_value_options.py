"""Options click itself cannot express: several values after one flag (`--inputs a b c`), and a flag whose value may
be left out (a bare `--channels-last` means `--channels-last on`; typer has no optional option values)."""
from __future__ import annotations

from typer.core import TyperCommand

# flag -> (the value a bare flag means, the values it takes): a flag not followed by one of them gets the implied one
IMPLIED_VALUES = {"--channels-last": ("on", ("auto", "on", "off"))}


def fill_implied_values(args: list[str], implied: dict[str, tuple[str, tuple[str, ...]]] = IMPLIED_VALUES) \
        -> list[str]:
    """Rewrite a bare `--channels-last` (at the end, before another option, or before a path such as the model
    file) as `--channels-last=on`; `--channels-last auto` and `--channels-last=auto` pass unchanged, and so does a
    following plain word (no '.', no '/'): `--channels-last sideways` is refused naming the values it takes rather
    than read as on plus a stray argument."""
    filled: list[str] = []
    for position, token in enumerate(args):
        if token == "--":
            return filled + args[position:]
        following = args[position + 1] if position + 1 < len(args) else None
        if token in implied and (following is None or not _is_value(following, implied[token][1])):
            token = f"{token}={implied[token][0]}"
        filled.append(token)
    return filled


def _is_value(token: str, values: tuple[str, ...]) -> bool:
    return token.lower() in values or not (token.startswith("-") or "." in token or "/" in token or "\\" in token)


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
            return super().parse_args(ctx, spread_multi_values(fill_implied_values(list(args)), options))

    return MultiValueCommand
