"""A configuration against the baseline, seed by seed (hk_tune.search.paired), on hand-made
record sets whose answer is known."""

from __future__ import annotations

import pytest
from scipy.stats import ttest_rel

from hk_tune.search.paired import beats, paired

BASELINE = {1: 0.760, 2: 0.770, 3: 0.750, 4: 0.765, 5: 0.755}


def test_a_steady_gain_beats_the_baseline():
    better = {seed: value + 0.02 + 0.001 * seed for seed, value in BASELINE.items()}
    found = paired(better, BASELINE, "max")
    assert found.seeds == (1, 2, 3, 4, 5)
    assert (found.wins, found.losses, found.ties) == (5, 0, 0)
    assert found.gain == pytest.approx(0.781 - 0.760)  # median against median
    expected = ttest_rel(list(better.values()), list(BASELINE.values())).pvalue
    assert found.p_value == pytest.approx(expected) and found.p_value < 0.001
    assert beats(found, margin=0.01)


def test_a_median_lifted_by_two_lucky_seeds_does_not():
    """Median a point up, from two seeds far up, while two others fall far: two of five won,
    and the criterion wants most seeds won too."""
    lucky = {1: 0.800, 2: 0.770, 3: 0.800, 4: 0.700, 5: 0.700}
    found = paired(lucky, BASELINE, "max")
    assert found.gain == pytest.approx(0.770 - 0.760)
    assert (found.wins, found.ties, found.losses) == (2, 1, 2)
    assert not beats(found, margin=0.01)
    steady = {1: 0.771, 2: 0.771, 3: 0.771, 4: 0.761, 5: 0.750}  # median 0.771, 4 of 5 won
    assert beats(paired(steady, BASELINE, "max"), margin=0.01)
    small = {seed: value + 0.005 for seed, value in BASELINE.items()}  # every seed, half a point
    assert not beats(paired(small, BASELINE, "max"), margin=0.01)


def test_for_a_loss_lower_is_better_and_only_shared_seeds_count():
    losses = {1: 0.50, 2: 0.52, 3: 0.49, 9: 0.10}
    base = {1: 0.55, 2: 0.56, 3: 0.50}
    found = paired(losses, base, "min")
    assert found.seeds == (1, 2, 3) and found.wins == 3 and found.gain == pytest.approx(0.05)


def test_undefined_cases_say_so():
    same_step = {seed: value + 0.01 for seed, value in BASELINE.items()}
    assert paired(same_step, BASELINE, "max").p_value is None  # every difference the same
    assert paired({1: 0.8}, {1: 0.7}, "max").p_value is None  # one seed
    with pytest.raises(ValueError, match="no seed in common"):
        paired({1: 0.8}, {2: 0.7}, "max")
    with pytest.raises(ValueError, match="allowed"):
        paired({1: 0.8}, {1: 0.7}, "up")
