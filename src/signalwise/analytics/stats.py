"""Statistics for comparing controllers across seeds.

Means with Student-t 95% confidence intervals and Welch's unequal-variance
t-test: few seeds (5 is typical) and unequal spreads between controllers are
the normal case, so neither a z-interval nor a pooled t-test fits.

When both controllers ran the same seeds, the runs are pairs: seed s gives
both the same vehicles at the same times (common random numbers), so most of
the seed-to-seed spread is shared demand, not the controller. The paired
t-test on the per-seed differences removes it and is the sharper test there;
`compare(..., paired=True)` reports it next to Welch's.

Where the seeds show no spread at all (every seed the same throughput on
both sides; no vehicle left uninserted on any run; the same difference on
every pair), the standard error is 0 and the t statistic is d/0 or 0/0: no
test can be made, so the p-value is NaN ("n/a" in tables, empty in CSV, null
in JSON). scipy.stats gives NaN for 0/0 but 0.0 for d/0 (t = ±inf): that read
a one-vehicle difference between two seeds that each ran the same throughput
as highly significant. Equal constants get NaN too, not 1.0: 1.0 would claim a
test that never ran. The interval is NaN there as well: a zero-width interval
from a few seeds that happened to agree reads as certainty, as from one seed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeanCI:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@dataclass(frozen=True, slots=True)
class Comparison:
    """`candidate` against `baseline`: relative change and Welch p-value."""

    baseline: MeanCI
    candidate: MeanCI
    change_pct: float  # (candidate - baseline) / baseline * 100
    p_value: float  # two-sided Welch t-test; nan when undefined
    p_value_paired: float = math.nan  # two-sided paired t-test over seeds; nan unless paired
    #: candidate - baseline (means), and its 95 % CI: over the per-seed differences (Student t, n - 1 df) where
    #: paired, else Welch's (Welch-Satterthwaite df); nan ends where the seeds give no interval
    diff: float = math.nan
    diff_ci_low: float = math.nan
    diff_ci_high: float = math.nan

    @property
    def change_pct_ci(self) -> tuple[float, float]:
        """The change's CI in percent of the baseline's mean (the baseline's mean taken as known); nan where the
        baseline is 0 or there is no interval."""
        b = self.baseline.mean
        if not b or math.isnan(b) or math.isnan(self.diff_ci_low):
            return math.nan, math.nan
        lo, hi = self.diff_ci_low / b * 100, self.diff_ci_high / b * 100
        return (lo, hi) if b > 0 else (hi, lo)


# Student's t from scipy.special, not scipy.stats: importing scipy.stats costs a process about a second of CPU
# (1.6 s against 0.6 s here), and every `compare`, `evaluate` and training validation is a process of its own that
# needs only the t distribution. The tests hold these to scipy.stats' own t-tests.


def _t_quantile(p: float, df: float) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _t_two_sided_p(t: float, df: float) -> float:
    from scipy.special import stdtr

    return float(2.0 * stdtr(df, -abs(t)))


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n - 1)."""
    n = len(xs)
    m = sum(xs) / n
    return m, sum((x - m) * (x - m) for x in xs) / (n - 1)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval; a single value, or values that do not vary, have no interval (NaN
    ends, None in JSON, "n/a" in tables): a zero-width one would read as certainty."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    if n == 1 or _no_spread(xs):
        return MeanCI(sum(xs) / n, math.nan, math.nan, n)
    m, var = _mean_var(xs)
    half = _t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return MeanCI(m, m - half, m + half, n)


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value; nan with fewer than 2 samples per side, or when neither side varies (the
    standard error is 0: no test, whether the two constants differ or not)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if _no_spread(a) and _no_spread(b):
        return math.nan
    (ma, va), (mb, vb) = _mean_var([float(x) for x in a]), _mean_var([float(x) for x in b])
    sa, sb = va / len(a), vb / len(b)  # squared standard errors
    try:  # magnitudes no delay or count reaches (1e300, 1e-320) overflow or vanish: undefined, as scipy's nan
        df = (sa + sb) * (sa + sb) / (sa * sa / (len(a) - 1) + sb * sb / (len(b) - 1))  # Welch-Satterthwaite
        return _t_two_sided_p((ma - mb) / math.sqrt(sa + sb), df)
    except (ZeroDivisionError, OverflowError):
        return math.nan


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of a[i] vs b[i]; nan with fewer than 2 pairs, or when every pair differs
    by the same amount (0 included: the differences have no spread, so no test)."""
    if len(a) != len(b) or len(a) < 2:
        return math.nan
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if _no_spread(diffs, scale=max(abs(float(v)) for v in (*a, *b))):
        return math.nan
    m, var = _mean_var(diffs)
    try:
        return _t_two_sided_p(m / math.sqrt(var / len(diffs)), len(diffs) - 1)
    except (ZeroDivisionError, OverflowError):
        return math.nan


def difference_ci(baseline: Sequence[float], candidate: Sequence[float], paired: bool = False,
                  confidence: float = 0.95) -> tuple[float, float, float]:
    """(candidate mean - baseline mean, CI low, CI high). `paired`: the Student-t interval of the per-seed
    differences (the paired t-test's); else Welch's interval (unequal variances, Welch-Satterthwaite df). The
    ends are nan where no test can be made (fewer than 2 per side or pair, no spread), as the p-values are."""
    a, b = [float(x) for x in baseline], [float(x) for x in candidate]
    if not a or not b:
        return math.nan, math.nan, math.nan
    if paired:
        if len(a) != len(b):
            raise ValueError("a paired difference needs as many candidate values as baseline ones")
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        d = sum(diffs) / len(diffs)
        if len(diffs) < 2 or _no_spread(diffs, scale=max(abs(v) for v in (*a, *b))):
            return d, math.nan, math.nan
        _m, var = _mean_var(diffs)
        half = _t_quantile(0.5 + confidence / 2, len(diffs) - 1) * math.sqrt(var / len(diffs))
        return d, d - half, d + half
    d = sum(b) / len(b) - sum(a) / len(a)
    if len(a) < 2 or len(b) < 2 or (_no_spread(a) and _no_spread(b)):
        return d, math.nan, math.nan
    (_ma, va), (_mb, vb) = _mean_var(a), _mean_var(b)
    sa, sb = va / len(a), vb / len(b)
    try:
        df = (sa + sb) * (sa + sb) / (sa * sa / (len(a) - 1) + sb * sb / (len(b) - 1))
        half = _t_quantile(0.5 + confidence / 2, df) * math.sqrt(sa + sb)
    except (ZeroDivisionError, OverflowError):
        return d, math.nan, math.nan
    return d, d - half, d + half


def compare(baseline: Sequence[float], candidate: Sequence[float], paired: bool = False) -> Comparison:
    """`paired=True` when baseline[i] and candidate[i] ran the same seed."""
    base, cand = mean_ci(baseline), mean_ci(candidate)
    change = (cand.mean - base.mean) / base.mean * 100 if base.mean else math.nan
    pp = paired_p_value(list(baseline), list(candidate)) if paired else math.nan
    diff, lo, hi = difference_ci(baseline, candidate, paired=paired)
    return Comparison(base, cand, change, welch_p_value(list(baseline), list(candidate)), pp, diff, lo, hi)


#: the values a figure that cannot be negative takes (a count, a time, a mass, a volume)
NON_NEGATIVE = (0.0, math.inf)
#: the values a share in percent takes
PERCENT = (0.0, 100.0)


def bounded_interval(low: float, high: float, bounds: tuple[float, float] = NON_NEGATIVE
                     ) -> tuple[float, float, str]:
    """A Student-t interval cut to the values its figure can take (`bounds`), and a note naming each end cut
    ("t-interval cut at 0"; "" where none was).

    Over a few seeds the t-interval of a figure near its bound reaches past it (a count of 0, 0 and 1 vehicles
    never inserted: -1.10 to 1.77), a value no run can take. Cutting it there keeps its coverage: the true mean
    lies within the bounds, so the part cut off never held it. A log-scale interval would need the logarithm of
    a seed's 0, and a bootstrap over 3 seeds has 10 distinct resamples, so neither is used. `signalwise compare`
    and `signalwise atspm COMPARE_DIR` both cut their intervals with this one rule. NaN ends stay NaN."""
    lo_bound, hi_bound = bounds
    notes = []
    if low < lo_bound:
        low = lo_bound
        notes.append(f"t-interval cut at {lo_bound:g}")
    if high > hi_bound:
        high = hi_bound
        notes.append(f"t-interval cut at {hi_bound:g}")
    return low, high, "; ".join(notes)


def p_text(p: float | None) -> str:
    """A p-value as a table shows it: "p 0.012"; "p < 0.001" below that, where three decimals would print
    "p 0.000", a probability no test gives; "p n/a" where no test could be made (None or NaN)."""
    if p is None or math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def _no_spread(xs: Sequence[float], scale: float | None = None) -> bool:
    """The values are one value, up to the rounding of numbers of magnitude `scale` (default: their own).

    Differences of 1999.3 - 1998.1 on two seeds can come out a few units in the last place apart; their
    variance is then ~1e-26 instead of 0, and a t-test on it finds a "difference" with p ~ 0.
    """
    xs = [float(x) for x in xs]
    scale = max(abs(x) for x in xs) if scale is None else scale
    return max(xs) - min(xs) <= 16 * sys.float_info.epsilon * scale
