"""Text output of `inspect`: reports become blocks (key/value fields, tables, preformatted text), printed as rich
tables on a terminal and as plain aligned text when piped, so scripts and diffs see stable columns."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Fields:
    title: str
    items: list[tuple[str, str]]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Preformatted:
    title: str
    body: str


Block = Fields | Table | Preformatted


def print_blocks(blocks: list[Block], stream: TextIO | None = None) -> None:
    """Rich tables when `stream` is a terminal, plain aligned text otherwise."""
    stream = stream or sys.stdout
    if stream.isatty():
        _print_rich(blocks, stream)
    else:
        stream.write(plain_text(blocks))


def plain_text(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        lines = [f"== {block.title} =="]
        if isinstance(block, Fields):
            width = max((len(key) for key, _ in block.items), default=0)
            lines += [f"{key + ':':<{width + 1}} {value}".rstrip() for key, value in block.items]
        elif isinstance(block, Table):
            lines += _aligned([block.columns, *block.rows], header=True) if block.rows else ["(none)"]
        else:
            lines += block.body.splitlines() or [""]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n" if parts else ""


def _aligned(rows: list[list[str]], header: bool) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _print_rich(blocks: list[Block], stream: TextIO) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=stream)
    for block in blocks:
        # Cells go in as Text so names like "[batch, seq]" are never read as rich markup.
        if isinstance(block, Fields):
            table = RichTable(title=Text(block.title, style="bold"), title_justify="left", show_header=False,
                              box=None)
            table.add_column(style="cyan")
            table.add_column()
            for key, value in block.items:
                table.add_row(Text(key), Text(value))
            console.print(table)
        elif isinstance(block, Table):
            table = RichTable(title=Text(block.title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD)
            for column in block.columns:
                table.add_column(Text(column))
            for row in block.rows:
                table.add_row(*(Text(cell) for cell in row))
            console.print(table)
        else:
            console.print(Text(block.title, style="bold"))
            console.print(Text(block.body))
        console.print()


def format_bytes(count: int) -> str:
    """'12.0 MiB (12582912 B)': readable and exact."""
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit} ({count} B)"


def format_shape(shape: list | tuple | None) -> str:
    return "?" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def format_number(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def to_json(report: Any) -> str:
    """Strict JSON: non-finite floats (attribute values, layer parameters) become the strings 'inf', '-inf', 'nan'."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(report), indent=1, allow_nan=False)
