"""Comparisons where the seeds show no spread: no p-value and no interval, never a p of 0.000.

A user's `evaluate --seeds 2` printed `throughput 1999.0 ± 0.0 | 1998.0 ± 0.0 | -0.1% p 0.000`: two runs a
side, each side the same figure twice, so the standard error is 0 and the t statistic 1/0. No test can be made
there (scipy.stats answers 0.0 for d/0 and NaN for 0/0); `analytics.stats` answers NaN for both.
"""

import math

import pytest
from scipy import stats as sps

from signalwise.analytics.stats import compare, mean_ci, paired_p_value, welch_p_value


@pytest.mark.parametrize(("a", "b"), [
    ([1999.0, 1999.0], [1998.0, 1998.0]),  # one vehicle apart, no spread: was p 0.0
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),  # never inserted 1 → 0 on every seed: was p 0.0
    ([0.0, 0.0], [0.0, 0.0]),  # nothing on either side: was p 1.0, a test that never ran
    ([35.2, 35.2], [35.2, 35.2]),
])
def test_no_spread_on_either_side_has_no_p_value(a, b):
    assert math.isnan(welch_p_value(a, b))
    assert math.isnan(paired_p_value(a, b))
    cmp = compare(a, b, paired=True)
    assert math.isnan(cmp.p_value) and math.isnan(cmp.p_value_paired)


def test_the_same_difference_on_every_pair_has_no_paired_p_value():
    base, cand = [40.0, 52.5, 47.0], [38.0, 50.5, 45.0]  # 2 s better on every seed, exactly
    assert math.isnan(paired_p_value(base, cand))
    assert not math.isnan(welch_p_value(base, cand))  # each side varies: Welch's test is defined


def test_differences_equal_up_to_rounding_count_as_no_spread():
    """29.3 and 29.300000000000004: the same difference, rounded apart; a t-test on that gives p ~ 1e-16."""
    base, cand = [30.1, 40.1], [0.7999999999999999, 10.799999999999999]
    diffs = [x - y for x, y in zip(base, cand, strict=True)]
    assert diffs[0] != diffs[1]
    assert math.isnan(paired_p_value(base, cand))


def test_one_side_without_spread_still_gets_welch():
    """Welch's standard error adds both sides': one side that varies is enough, and the p is scipy's."""
    a, b = [0.0, 0.0, 0.0], [1.0, 3.0, 2.0]
    assert welch_p_value(a, b) == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)


def test_values_without_spread_have_a_mean_and_no_interval():
    ci = mean_ci([1999.0, 1999.0])
    assert ci.mean == 1999.0 and ci.n == 2
    assert math.isnan(ci.ci_low) and math.isnan(ci.ci_high) and math.isnan(ci.half_width)


def test_one_seed_has_a_mean_and_no_interval_nor_p():
    ci = mean_ci([35.2])
    assert ci.mean == 35.2 and ci.n == 1 and math.isnan(ci.ci_low) and math.isnan(ci.ci_high)
    cmp = compare([35.2], [30.1], paired=True)
    assert cmp.change_pct == pytest.approx((30.1 - 35.2) / 35.2 * 100)
    assert math.isnan(cmp.p_value) and math.isnan(cmp.p_value_paired)
