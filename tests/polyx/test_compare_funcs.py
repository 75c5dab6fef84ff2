"""Comparison parity with Polygraphy, as library calls: quantile error stat, top-K post-processing, the indices
compare function, cosine similarity / PSNR, near-miss output names and a user's compare function. Expected values
are worked out by hand or with float64 NumPy, never read from the code under test."""
from __future__ import annotations

import math

import numpy as np
import pytest

from polyx.compare import Comparator, Tolerances
from polyx.compare.index_check import check_indices
from polyx.compare.name_matching import match_names
from polyx.compare.postprocess import TopK, apply_postprocess, parse_postprocess
from polyx.compare.similarity import cosine_similarity, psnr
from polyx.compare.user_compare import UserCompareFunc
from polyx.errors import PolyxError


def test_quantile_check_ignores_the_worst_elements_up_to_the_quantile():
    reference = np.zeros(100)
    candidate = np.zeros(100)
    candidate[:3] = 1.0  # 3% of elements are far off
    loose = Comparator(Tolerances(atol=1e-3, rtol=0, check_error_stat="quantile", error_quantile=0.95))
    strict = Comparator(Tolerances(atol=1e-3, rtol=0, check_error_stat="quantile", error_quantile=0.99))
    assert loose.compare_tensor("t", reference, candidate).passed
    assert not strict.compare_tensor("t", reference, candidate).passed
    assert not Comparator(Tolerances(atol=1e-3, rtol=0)).compare_tensor("t", reference, candidate).passed


def test_error_quantile_outside_zero_one_is_refused():
    with pytest.raises(PolyxError, match="error quantile must be within \\[0, 1\\], got 1.5"):
        Tolerances(check_error_stat="quantile", error_quantile=1.5)


def test_top_k_takes_indices_of_largest_values_along_the_axis():
    values = np.array([[0.1, 0.7, 0.2, 0.9], [5.0, 0.5, 3.0, 4.0]], np.float32)
    assert TopK(2)("x", values).tolist() == [[3, 1], [0, 3]]
    assert TopK(1, axis=0)("x", values).tolist() == [[1, 0, 1, 1]]
    assert TopK(9)("x", values).shape == (2, 4)  # K larger than the axis takes all of it


def test_parse_postprocess_accepts_polygraphys_spellings():
    assert parse_postprocess(["top-5"]) == {"": TopK(5)}
    assert parse_postprocess(["out0:top-3,axis=1", "output:0:top-2"]) == {"out0": TopK(3, 1), "output:0": TopK(2)}
    for bad in ("top-0", "top5", "out0:bottom-3", "top-2,axis=x"):
        with pytest.raises(PolyxError, match="--postprocess"):
            parse_postprocess([bad])


def test_named_postprocess_wins_over_the_global_one():
    outputs = {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([1.0, 2.0, 3.0])}
    processed = apply_postprocess(outputs, parse_postprocess(["top-1", "b:top-2"]))
    assert processed["a"].tolist() == [0] and processed["b"].tolist() == [2, 1]


def test_top_k_rejects_an_axis_beyond_the_rank():
    with pytest.raises(PolyxError, match="output 'x' has rank 1"):
        TopK(1, axis=2)("x", np.zeros(3))


def test_indices_check_allows_moves_within_the_index_tolerance():
    reference = np.array([[4, 7, 1], [0, 2, 3]])
    swapped = np.array([[7, 4, 1], [0, 2, 3]])    # first two of row 0 trade places: each moves 1 position
    missing = np.array([[4, 7, 9], [0, 2, 3]])    # index 1 is gone from row 0
    assert check_indices(reference, reference, 0).passed
    exact = check_indices(reference, swapped, 0)
    assert not exact.passed and exact.mismatches == 2 and "index 4 (position 0) is 1 positions away" in \
        exact.first_problem
    assert check_indices(reference, swapped, 1).passed
    gone = check_indices(reference, missing, 5)
    assert not gone.passed and gone.mismatches == 1 and "index 1 (position 2) is missing" in gone.first_problem


def test_comparator_with_indices_judges_by_index_not_by_value():
    reference, candidate = np.array([[2, 0, 1]]), np.array([[0, 2, 1]])
    result = Comparator(compare_func="indices", index_tolerance=1).compare_tensor("top", reference, candidate)
    assert result.passed and result.max_absolute == 2.0  # values differ, yet every index is within 1 position
    assert not Comparator(compare_func="indices").compare_tensor("top", reference, candidate).passed


def test_cosine_similarity_and_psnr_match_hand_computed_values():
    reference = np.array([3.0, 4.0])
    assert cosine_similarity(reference, np.array([6.0, 8.0])) == pytest.approx(1.0)
    assert cosine_similarity(reference, np.array([-4.0, 3.0])) == pytest.approx(0.0, abs=1e-12)
    assert cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0 and cosine_similarity(np.zeros(3), np.ones(3)) == 0.0
    # peak 4, MSE ((0.1)^2 + (0.3)^2) / 2 = 0.05 -> 10 log10(16 / 0.05) = 25.05 dB
    assert psnr(reference, np.array([3.1, 4.3])) == pytest.approx(10 * math.log10(16 / 0.05))
    assert psnr(reference, reference) == math.inf


def test_comparison_carries_similarity_beside_the_errors():
    reference = np.array([1.0, 2.0, 2.0], np.float32)
    result = Comparator().compare_tensor("t", reference, reference * 2)
    assert result.cosine_similarity == pytest.approx(1.0) and result.psnr == pytest.approx(10 * math.log10(4 / 3))


def test_no_shape_check_reshapes_same_sized_outputs_only():
    reference, candidate = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(6)
    assert "shape mismatch" in Comparator().compare_tensor("t", reference, candidate).problem
    relaxed = Comparator(check_shapes=False).compare_tensor("t", reference, candidate)
    assert relaxed.passed and "reshaped to (2, 3)" in relaxed.note
    other = Comparator(check_shapes=False).compare_tensor("t", reference, np.arange(5.0))
    assert not other.passed and "different element counts" in other.problem


def test_near_miss_names_pair_only_when_unambiguous():
    assert match_names(["output", "probs"], ["output:0", "probs"]) == {"output": "output:0"}
    assert match_names(["logits"], ["logitz"]) == {"logits": "logitz"}
    assert match_names(["out_a"], ["out_b", "out_c"]) == {}  # two equally close names: no guess
    assert match_names(["scores"], ["boxes"]) == {}


def test_user_compare_function_decides_and_its_mistakes_name_the_script():
    reference = {"a": np.zeros(2), "b": np.ones(2)}
    comparator = Comparator(user_func=UserCompareFunc(lambda ref, out: {"a": True, "b": False}, "compare func f"))
    results = comparator.compare(reference, reference, ["a", "b"])
    assert [r.passed for r in results] == [True, False]
    cases = [(lambda ref, out: 1 / 0, "compare func f: raised ZeroDivisionError"),
             (lambda ref, out: [True], "returned a list, expected a dict"),
             (lambda ref, out: {"a": True}, "returned no verdict for output 'b'"),
             (lambda ref, out: {"a": True, "b": True, "c": True}, "verdict for 'c', which is not a compared output"),
             (lambda ref, out: {"a": "yes", "b": True}, "the verdict for 'a' is a str")]
    for function, message in cases:
        with pytest.raises(PolyxError, match=message):
            Comparator(user_func=UserCompareFunc(function, "compare func f")).compare(reference, reference, ["a", "b"])


def test_indices_check_on_wide_rows_matches_the_narrow_path(monkeypatch):
    """Long index lists (full argsorts) take the sort-based path; it must agree with the pairwise one."""
    import polyx.compare.index_check as index_check

    rng = np.random.default_rng(0)
    reference = np.stack([rng.permutation(50) for _ in range(3)])
    candidate = reference.copy()
    candidate[1, [10, 11]] = candidate[1, [11, 10]]  # two neighbours trade places
    candidate[2, 49] = 99                          # the last index of row 2 is replaced
    narrow = check_indices(reference, candidate, 0)
    monkeypatch.setattr(index_check, "WIDE_ROW", 8)
    wide = check_indices(reference, candidate, 0)
    assert narrow == wide
    assert narrow.mismatches == 3 and narrow.worst_shift == 1
    assert narrow.first_problem == f"row (1,) index {reference[1, 10]} (position 10) is 1 positions away"
