"""bench/tables.py: the cells and tables both GPU benchmarks print and write, checked against hand-written text."""
from __future__ import annotations

from bench.tables import format_cell, markdown_table, text_table


def test_cells_format_each_kind_and_a_missing_value_as_a_dash() -> None:
    assert [format_cell(None, kind) for kind in ("ms", "ratio", "diff", "share", "other")] == ["-"] * 5
    assert format_cell(1.23456, "ms") == "1.235"
    assert format_cell(0.5, "ratio") == "0.50x"
    assert format_cell(0.000123, "diff") == "1.23e-04"
    assert format_cell(0.98765, "share") == "98.77%"
    assert format_cell(7, "other") == "7"


def test_text_table_pads_columns_to_their_widest_cell() -> None:
    assert text_table(["a", "long name"], [["wide cell", "x"], ["b", ""]]) == (
        "a          long name\n"
        "wide cell  x\n"
        "b")


def test_markdown_table_has_header_separator_and_rows() -> None:
    assert markdown_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
