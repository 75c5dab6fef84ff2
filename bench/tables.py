"""Text and Markdown tables of benchmark rows, shared by the GPU benchmarks (gpu_vs_pytorch.py, gpu_int8.py) so
their printed and written tables format numbers and missing values the same way."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_cell(value: Any, kind: str) -> str:
    """One cell: '-' for a missing value; 'ms' (also used for seconds) 3 decimals, 'ratio' as 1.23x, 'diff' in
    scientific notation, 'share' as a percentage; anything else as str()."""
    if value is None:
        return "-"
    if kind == "ms":
        return f"{value:.3f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "diff":
        return f"{value:.2e}"
    if kind == "share":
        return f"{value:.2%}"
    return str(value)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks: for the console."""
    cells = [list(columns), *rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines: header, separator, one line per row (cells as given)."""
    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|",
            *("| " + " | ".join(cells) + " |" for cells in rows)]
