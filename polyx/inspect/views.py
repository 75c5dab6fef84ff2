"""Text views shared by the model, plan and data reports: IO tables, histograms, statistics, attribute lists."""
from __future__ import annotations

from collections import Counter
from typing import Any

from .render import Table, format_number, format_shape
from .stats import STAT_NAMES, non_finite_text

STATS_COLUMNS = ["name", "dtype", "shape", *STAT_NAMES, "non-finite"]


def io_rows(values: list[dict[str, Any]]) -> list[list[str]]:
    return [[v["name"], v["dtype"], format_shape(v["shape"])] for v in values]


def histogram(counter: Counter, key: str) -> list[dict[str, Any]]:
    """Most frequent first, ties by name: stable output for diffs."""
    return [{key: name, "count": count} for name, count in sorted(counter.items(), key=lambda i: (-i[1], i[0]))]


def ops_table(title: str, key: str, histogram: list[dict[str, Any]]) -> Table:
    return Table(title, [key, "count"], [[str(entry[key]), str(entry["count"])] for entry in histogram])


def stats_row(stats: dict[str, Any]) -> list[str]:
    return [stats["name"], stats["dtype"], format_shape(stats["shape"]),
            *(format_number(stats[name]) for name in STAT_NAMES), non_finite_text(stats)]


def stats_table(title: str, entries: list[dict[str, Any]]) -> Table:
    return Table(title, STATS_COLUMNS, [stats_row(entry) for entry in entries])


def attribute_text(attributes: dict[str, Any]) -> str:
    return "; ".join(f"{name}={value_text(value)}" for name, value in attributes.items()) or "-"


def value_text(value: Any) -> str:
    """Compact text of an attribute or layer parameter value."""
    if isinstance(value, dict) and "tensor" in value:
        tensor = value["tensor"]
        text = f"tensor {tensor['dtype']} {format_shape(tensor['shape'])}"
        return text + (f" {value_text(tensor['values'])}" if "values" in tensor else "")
    if isinstance(value, dict) and "graph" in value:
        return f"graph {value['graph'] or '-'} ({value['nodes']} nodes)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, float):
        return format_number(value)
    return str(value)
