import math

import numpy as np
import pytest

from polyx.compare import Comparator, DiffStats, TensorStats, Tolerances, error_histogram
from polyx.compare.statistics import differences
from polyx.compare.tolerance import check
from polyx.errors import PolyxError


def test_tensor_stats_match_float64_numpy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    stats = TensorStats.of(x)
    ref = x.astype(np.float64)
    assert stats.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert stats.std == pytest.approx(ref.std(), rel=1e-12)
    assert stats.median == pytest.approx(np.median(ref), rel=1e-12)
    assert stats.min == ref.min() and x[stats.min_index] == x.min()
    assert stats.max == ref.max() and x[stats.max_index] == x.max()
    assert stats.nan_count == stats.inf_count == 0


def test_tensor_stats_ignore_non_finite_for_moments_but_count_them():
    x = np.array([1.0, np.nan, 3.0, np.inf], np.float32)
    stats = TensorStats.of(x)
    assert (stats.mean, stats.nan_count, stats.inf_count) == (2.0, 1, 1)
    assert stats.max == 3.0 and stats.max_index == (2,)


def test_differences_follow_polygraphy_definition():
    ref = np.array([1.0, -2.0, 0.0, 0.0, np.nan, np.inf, 4.0], np.float32)
    out = np.array([1.5, -2.0, 0.0, 1e-3, np.nan, np.inf, np.nan], np.float32)
    absolute, relative = differences(ref, out)
    np.testing.assert_allclose(absolute[:4], [0.5, 0.0, 0.0, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(relative[:3], [0.5, 0.0, 0.0])
    assert relative[3] == np.inf                     # reference 0, candidate not
    assert absolute[4] == relative[4] == 0           # NaN on both sides agrees
    assert absolute[5] == relative[5] == 0           # same infinity agrees
    assert absolute[6] == np.inf                     # NaN on one side only


def test_diff_stats_percentiles_and_location():
    errors = np.arange(1000, dtype=np.float64).reshape(10, 100) / 1000
    stats = DiffStats.of(errors)
    assert stats.max == 0.999 and stats.max_index == (9, 99)
    assert stats.mean == pytest.approx(errors.mean())
    assert stats.percentiles[90.0] == pytest.approx(np.percentile(errors, 90), abs=1e-3)


@pytest.mark.parametrize("stat", ["elemwise", "max", "mean", "median"])
def test_min_tolerance_is_the_smallest_that_passes(stat):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(500)
    out = ref + rng.standard_normal(500) * 1e-3
    absolute, relative = differences(ref, out)
    strict = check(absolute, relative, 1e-6, 1e-6, stat)
    assert not strict.passed
    assert check(absolute, relative, strict.min_atol, 1e-6, stat).passed
    assert not check(absolute, relative, strict.min_atol * 0.999, 1e-6, stat).passed
    assert check(absolute, relative, 1e-6, strict.min_rtol, stat).passed
    assert not check(absolute, relative, 1e-6, strict.min_rtol * 0.999, stat).passed


def test_elemwise_passes_when_either_tolerance_holds_per_element():
    ref = np.array([100.0, 1e-6])
    out = np.array([100.0005, 2e-6])  # 1st: abs 5e-4 but rel 5e-6; 2nd: rel 1 but abs 1e-6
    absolute, relative = differences(ref, out)
    assert check(absolute, relative, atol=1e-5, rtol=1e-5, stat="elemwise").passed
    assert not check(absolute, relative, atol=1e-7, rtol=1e-5, stat="elemwise").passed


def test_comparator_reports_mismatch_count_shape_problem_and_per_output_tolerance():
    tolerances = Tolerances(atol=1e-6, rtol=1e-6, per_output_atol={"loose": 0.1})
    comparator = Comparator(tolerances, histograms=True)
    ref = np.zeros((2, 3), np.float32)
    out = ref.copy()
    out[1, 2] = 0.05
    strict = comparator.compare_tensor("strict", ref, out)
    assert not strict.passed and strict.mismatches == 1 and strict.absolute.max_index == (1, 2)
    assert strict.histogram and strict.histogram[0].strip().startswith("== 0")
    assert comparator.compare_tensor("loose", ref, out).passed
    shape = comparator.compare_tensor("strict", ref, out[:1])
    assert not shape.passed and "shape mismatch" in shape.problem


def test_comparator_fail_fast_stops_at_first_failure():
    comparator = Comparator(Tolerances())
    ref = {"a": np.ones(3), "b": np.ones(3), "c": np.ones(3)}
    out = {"a": np.ones(3), "b": np.zeros(3), "c": np.zeros(3)}
    results = comparator.compare(ref, out, ["a", "b", "c"], fail_fast=True)
    assert [r.name for r in results] == ["a", "b"]


def test_histogram_counts_by_decade():
    rows = error_histogram(np.array([0.0, 0.0, 2e-7, 3e-7, 5e-3, np.inf]))
    counts = {row.split("|")[0].strip(): int(row.split()[-1]) for row in rows}
    assert counts == {"== 0": 2, "[1e-7, 1e-6)": 2, "[1e-3, 1e-2)": 1, "inf / NaN": 1}


def test_bad_tolerances_are_rejected():
    with pytest.raises(PolyxError, match="check error stat"):
        Tolerances(check_error_stat="p99")
    with pytest.raises(PolyxError, match=">= 0"):
        Tolerances(atol=-1.0)
    assert math.isinf(Comparator().compare_tensor("x", np.ones(2), np.ones(3)).max_absolute)
