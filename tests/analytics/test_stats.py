"""Comparison statistics against scipy's reference tests and hand-checked cases."""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from signalwise.analytics.stats import compare, mean_ci, paired_p_value, welch_p_value

BASE = [48.1, 52.3, 45.0, 50.2, 46.9]
# The same seeds under a better controller: every seed a little better, the spread shared.
CAND = [45.9, 49.8, 43.1, 47.6, 45.0]


def test_mean_ci_matches_student_t():
    ci = mean_ci(BASE)
    ref = sps.t.interval(0.95, len(BASE) - 1, loc=sps.tmean(BASE), scale=sps.sem(BASE))
    assert ci.mean == pytest.approx(sum(BASE) / 5)
    assert (ci.ci_low, ci.ci_high) == pytest.approx(ref)


def test_paired_test_sees_a_consistent_gain_that_welch_does_not():
    welch = welch_p_value(BASE, CAND)
    paired = paired_p_value(BASE, CAND)
    assert welch == pytest.approx(sps.ttest_ind(BASE, CAND, equal_var=False).pvalue)
    assert paired == pytest.approx(sps.ttest_rel(BASE, CAND).pvalue)
    assert welch > 0.05 > paired


def test_compare_reports_paired_only_when_asked():
    assert math.isnan(compare(BASE, CAND).p_value_paired)
    c = compare(BASE, CAND, paired=True)
    assert c.p_value_paired < 0.05 and c.change_pct < 0


def test_paired_edge_cases():
    assert math.isnan(paired_p_value([1.0], [2.0]))
    assert math.isnan(paired_p_value([1.0, 2.0], [1.0]))
    # identical runs, or the same shift on every seed: no spread of differences, no test
    # (tests/analytics/test_stats_degenerate.py)
    assert math.isnan(paired_p_value([1.0, 2.0], [1.0, 2.0]))
    assert math.isnan(paired_p_value([1.0, 2.0], [2.0, 3.0]))


def test_the_t_tests_agree_with_scipy_stats_on_many_samples():
    """The t distribution comes from scipy.special (a lighter import); scipy.stats' own tests are the reference,
    on samples of every size, spread and offset a comparison meets, including lopsided variances."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        na, nb = rng.integers(2, 12, size=2)
        a = rng.normal(rng.uniform(0, 200), rng.uniform(0.01, 50), na)
        b = rng.normal(rng.uniform(0, 200), rng.uniform(0.01, 50), nb)
        assert welch_p_value(list(a), list(b)) == pytest.approx(
            sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9, abs=1e-15)
        pairs = b[: min(na, nb)]
        assert paired_p_value(list(a[: len(pairs)]), list(pairs)) == pytest.approx(
            sps.ttest_rel(a[: len(pairs)], pairs).pvalue, rel=1e-9, abs=1e-15)
        ci = mean_ci(list(a), 0.9)
        ref = sps.t.interval(0.9, na - 1, loc=a.mean(), scale=sps.sem(a))
        assert (ci.ci_low, ci.ci_high) == pytest.approx(ref, rel=1e-9) and ci.n == na


def test_comparing_controllers_leaves_scipy_stats_unimported():
    """A comparison process needs only the t distribution: scipy.stats would cost it a second of imports."""
    code = ("import sys; from signalwise.analytics.stats import compare; "
            "compare([1.0, 2.0, 3.5], [2.0, 2.5, 4.0], paired=True); print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_one_value_has_a_mean_and_no_interval():
    ci = mean_ci([35.2])
    assert ci.mean == 35.2 and ci.n == 1 and math.isnan(ci.ci_low) and math.isnan(ci.ci_high)
