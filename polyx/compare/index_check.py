"""The `indices` compare function (Polygraphy's CompareFunc.indices): outputs are lists of indices along the last
axis (class ids from a top-K, for example). Each index of the reference must appear in the candidate's list of the
same row, at most `index_tolerance` positions away from where the reference has it; any other index fails the row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAIRWISE_BUDGET = 8_000_000  # position pairs compared at once (booleans in memory) before rows are chunked
WIDE_ROW = 256                # from this row length, positions come from a sort (first occurrence) instead


@dataclass
class IndexVerdict:
    passed: bool
    mismatches: int      # reference indices missing from the candidate's row or moved too far
    worst_shift: int     # the largest position shift among indices found on both sides (-1: none found)
    first_problem: str   # where the first mismatch is, for the report ("" when passed)


def check_indices(reference: np.ndarray, candidate: np.ndarray, index_tolerance: int) -> IndexVerdict:
    ref, out = np.atleast_1d(np.asarray(reference)), np.atleast_1d(np.asarray(candidate))
    rows_ref, rows_out = ref.reshape(-1, ref.shape[-1]), out.reshape(-1, out.shape[-1])
    shift = _shifts(rows_ref, rows_out)  # (rows, K): nearest distance, -1 where the index is missing
    bad = (shift < 0) | (shift > index_tolerance)
    found = shift[shift >= 0]
    first = ""
    if bad.any():
        row, position = (int(i) for i in np.argwhere(bad)[0])
        where = np.unravel_index(row, ref.shape[:-1]) if ref.ndim > 1 else ()
        place = f"row {tuple(int(i) for i in where)} " if where else ""
        moved = int(shift[row, position])
        first = (f"{place}index {rows_ref[row, position]} (position {position}) is "
                 + ("missing from the candidate" if moved < 0 else f"{moved} positions away"))
    return IndexVerdict(passed=not bad.any(), mismatches=int(bad.sum()),
                        worst_shift=int(found.max()) if found.size else -1, first_problem=first)


def _shifts(rows_ref: np.ndarray, rows_out: np.ndarray) -> np.ndarray:
    """For each reference entry, how far its index sits in the candidate's row (nearest occurrence), or -1."""
    width = rows_ref.shape[1]
    if width >= WIDE_ROW:  # pairwise would not fit: index lists from top-K/argsort hold each index once
        return np.stack([_first_occurrence_shift(e, a) for e, a in zip(rows_ref, rows_out)]) if len(rows_ref) else \
            np.zeros(rows_ref.shape, np.int64)
    positions = np.arange(width)
    distance = np.abs(positions[:, None] - positions[None, :])
    chunk = max(1, PAIRWISE_BUDGET // max(width * width, 1))
    shifts = np.empty(rows_ref.shape, np.int64)
    for start in range(0, len(rows_ref), chunk):
        same = rows_ref[start:start + chunk, :, None] == rows_out[start:start + chunk, None, :]
        nearest = np.where(same, distance, width).min(axis=2)
        shifts[start:start + chunk] = np.where(same.any(axis=2), nearest, -1)
    return shifts


def _first_occurrence_shift(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    order = np.argsort(actual, kind="stable")
    sorted_actual = actual[order]
    at = np.clip(np.searchsorted(sorted_actual, expected), 0, len(actual) - 1)
    present = sorted_actual[at] == expected
    return np.where(present, np.abs(order[at] - np.arange(len(expected))), -1)
