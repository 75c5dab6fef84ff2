import math
import random

import pytest

from polyx.debug.group_testing import CulpritSearch, find_culprits, worst_case_builds


def _oracle(culprits: set[int]):
    """A build fails when any culprit is active; counts the builds."""
    calls = []

    def fails(active: list[int]) -> bool:
        calls.append(sorted(active))
        return bool(culprits & set(active))

    return fails, calls


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 65, 108])
def test_one_culprit_takes_log2_n_plus_one_builds(n):
    for culprit in {0, n // 2, n - 1}:
        fails, calls = _oracle({culprit})
        assert find_culprits(list(range(n)), fails) == [culprit]
        assert len(calls) <= math.ceil(math.log2(n)) + 1 if n > 1 else len(calls) == 0


def test_several_culprits_are_all_found_and_the_rest_verified_clean():
    culprits = {3, 17, 40}
    fails, calls = _oracle(culprits)
    found = find_culprits(list(range(64)), fails)
    assert set(found) == culprits
    assert len(calls) <= len(culprits) * (math.ceil(math.log2(64)) + 1)
    assert calls[-1] == [i for i in range(64) if i not in culprits]  # the last build verified the rest passes


def test_every_item_a_culprit():
    fails, _ = _oracle(set(range(5)))
    assert sorted(find_culprits(list(range(5)), fails)) == list(range(5))


def test_linear_mode_finds_the_same_culprits_in_n_builds():
    fails, calls = _oracle({2, 5})
    assert find_culprits(list(range(8)), fails, mode="linear") == [2, 5]
    assert len(calls) == 8


def test_known_clean_items_stay_active_and_are_not_searched():
    fails, calls = _oracle({6})
    assert find_culprits([4, 5, 6, 7], fails, clean=[0, 1, 2, 3]) == [6]
    assert all({0, 1, 2, 3} <= set(active) for active in calls)


def test_progress_steps_carry_an_upper_bound():
    steps = []
    fails, _ = _oracle({9})
    CulpritSearch(list(range(16)), fails, on_step=steps.append).run()
    assert [s.index for s in steps] == list(range(1, len(steps) + 1))
    assert all(s.index <= s.expected <= 5 for s in steps)  # the count when no other culprit turns up
    assert [s.failed for s in steps][-1] is False  # the last build verifies that the rest passes


@pytest.mark.parametrize("seed", range(4))
def test_the_stated_bound_is_never_exceeded_and_never_grows(seed):
    """"build 12 of <= 16" is never followed by "build 17", whatever the culprits (random sets, every size)."""
    rng = random.Random(seed)
    for _ in range(200):
        n = rng.randint(1, 40)
        culprits = set(rng.sample(range(n), rng.randint(1, n)))
        fails, calls = _oracle(culprits)
        steps = []
        assert set(CulpritSearch(list(range(n)), fails, on_step=steps.append).run()) == culprits
        bounds = [worst_case_builds(n)] + [s.bound for s in steps]
        assert all(later <= earlier for earlier, later in zip(bounds, bounds[1:]))
        assert all(s.index <= s.expected <= s.bound for s in steps)
        assert len(calls) <= bounds[-1] and (not steps or steps[-1].bound == len(calls))


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        find_culprits([1, 2], lambda active: True, mode="random")
