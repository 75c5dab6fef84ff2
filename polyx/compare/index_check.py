"""The `indices` compare function (Polygraphy's CompareFunc.indices): outputs are lists of indices along the last
axis (class ids from a top-K, for example). Each index of the reference must appear in the candidate's list of the
same row, at most `index_tolerance` positions away from where the reference has it; any other index fails the row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class IndexVerdict:
    passed: bool
    mismatches: int      # reference indices missing from the candidate's row or moved too far
    worst_shift: int     # the largest position shift among indices found on both sides (-1: none found)
    first_problem: str   # where the first mismatch is, for the report ("" when passed)


def check_indices(reference: np.ndarray, candidate: np.ndarray, index_tolerance: int) -> IndexVerdict:
    ref, out = np.asarray(reference), np.asarray(candidate)
    if ref.ndim == 0:
        ref, out = ref.reshape(1), out.reshape(1)
    rows_ref, rows_out = ref.reshape(-1, ref.shape[-1]), out.reshape(-1, out.shape[-1])
    mismatches, worst, first = 0, -1, ""
    for row, (expected, actual) in enumerate(zip(rows_ref, rows_out)):
        for position, index in enumerate(expected):
            found = np.flatnonzero(actual == index)
            shift = int(np.abs(found - position).min()) if found.size else None
            if shift is not None:
                worst = max(worst, shift)
            if shift is None or shift > index_tolerance:
                mismatches += 1
                if not first:
                    where = np.unravel_index(row, ref.shape[:-1]) if ref.ndim > 1 else ()
                    place = f"row {tuple(int(i) for i in where)} " if where else ""
                    first = (f"{place}index {index} (position {position}) is "
                             + ("missing from the candidate" if shift is None else f"{shift} positions away"))
    return IndexVerdict(passed=mismatches == 0, mismatches=mismatches, worst_shift=worst, first_problem=first)
