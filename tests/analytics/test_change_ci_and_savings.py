"""The change against the baseline carries its own 95 % confidence interval (the paired differences' over the same
seeds; Welch's where the seeds are not pairs), checked against a hand computation with scipy.stats' t; a saving
(`co2_saved`, `fuel_saved`: 0 for the baseline by definition) is judged on its absolute change, in
`signalwise compare`'s rule and in the API's comparison; a figure with a small sample says in how many runs it was
measured; and the API's units say a share from a count.
"""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from scipy import stats as sps
from support.migrated_databases import migrated_sqlite

from signalwise.analytics.comparisons import METRIC_INFO
from signalwise.analytics.stats import compare, difference_ci
from signalwise.analytics.verdict import LOWER_IS_BETTER, NO_CLEAR_CHANGE, judge
from signalwise.api import create_app
from signalwise.runtime.compare import METRICS, per_seed_text, summarize
from signalwise.store import Settings, get_engine, register_run, write_run_metrics

BASE = [41.3, 55.0, 48.2, 60.1]
CAND = [30.2, 41.9, 35.5, 47.0]


def test_the_paired_change_ci_is_the_t_interval_of_the_per_seed_differences():
    diffs = [c - b for b, c in zip(BASE, CAND, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    d, lo, hi = difference_ci(BASE, CAND, paired=True)
    assert d == pytest.approx(mean) and lo == pytest.approx(mean - half) and hi == pytest.approx(mean + half)
    # scipy's own paired test gives the same interval
    ci = sps.ttest_rel(CAND, BASE).confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    cmp = compare(BASE, CAND, paired=True)
    base_mean = sum(BASE) / n
    assert cmp.change_pct_ci == (pytest.approx((mean - half) / base_mean * 100),
                                 pytest.approx((mean + half) / base_mean * 100))
    assert cmp.change_pct_ci[0] < cmp.change_pct < cmp.change_pct_ci[1]


def test_the_unpaired_change_ci_is_welchs():
    b, c = BASE, [30.2, 41.9, 35.5]
    vb, vc = sps.tvar(b) / len(b), sps.tvar(c) / len(c)
    df = (vb + vc) ** 2 / (vb ** 2 / (len(b) - 1) + vc ** 2 / (len(c) - 1))
    diff = sum(c) / len(c) - sum(b) / len(b)
    half = sps.t.ppf(0.975, df) * math.sqrt(vb + vc)
    d, lo, hi = difference_ci(b, c, paired=False)
    assert (d, lo, hi) == (pytest.approx(diff), pytest.approx(diff - half), pytest.approx(diff + half))
    ci = sps.ttest_ind(c, b, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_no_interval_where_no_test_can_be_made():
    assert all(math.isnan(x) for x in difference_ci([5.0], [4.0], paired=True)[1:])
    assert all(math.isnan(x) for x in difference_ci([5.0, 6.0], [4.0, 5.0], paired=True)[1:])  # same difference


def _runs(values: dict[str, tuple[list[float], list[float]]], seeds: list[int]) -> dict:
    runs = {}
    for i, s in enumerate(seeds):
        for c, side in (("fixed", 0), ("actuated", 1)):
            net = {key: 10.0 + s for key, *_ in METRICS}
            net.update(vehicles_total=400, never_inserted=0, emergency_vehicles=20, pedestrians=50,
                       fallback_fraction=0.0)
            for key, pair in values.items():
                net[key] = pair[side][i]
            runs[(c, s)] = {"network": net, "safety": {"violations": 0}}
    return runs


def test_compare_summary_gives_the_change_ci_in_the_unit_and_in_percent():
    seeds = [1, 2, 3, 4]
    summary = summarize(["fixed", "actuated"], seeds, _runs({"avg_delay_s": (BASE, CAND)}, seeds))
    e = summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]
    d, lo, hi = difference_ci(BASE, CAND, paired=True)
    base_mean = sum(BASE) / len(BASE)
    assert e["change"] == pytest.approx(d, abs=1e-4)
    assert (e["change_ci_low"], e["change_ci_high"]) == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))
    assert e["change_pct_ci_low"] == pytest.approx(lo / base_mean * 100, abs=1e-4)
    assert e["change_pct_ci_high"] == pytest.approx(hi / base_mean * 100, abs=1e-4)
    assert e["seeds"] == seeds  # each of `values` names its seed


def test_a_saving_against_a_baseline_of_0_is_judged_on_its_absolute_change():
    saved = [26.0, 31.5, 24.9, 29.8]  # positive on every seed
    cmp = compare([0.0] * 4, saved, paired=True)
    assert math.isnan(cmp.change_pct) and cmp.p_value_paired < 0.05
    assert judge(cmp, LOWER_IS_BETTER["co2_saved"], key="co2_saved") == {"verdict": "better"}
    lost = compare([0.0] * 4, [-x for x in saved], paired=True)
    assert judge(lost, LOWER_IS_BETTER["fuel_saved"], key="fuel_saved") == {"verdict": "worse"}
    noise = compare([0.0] * 4, [1.0, -1.2, 0.8, -0.5], paired=True)
    assert judge(noise, LOWER_IS_BETTER["co2_saved"], key="co2_saved") == {"no_verdict": NO_CLEAR_CHANGE}
    # a figure that is no saving with a baseline of 0 does not read "no clear change" at a small p
    other = compare([0.0] * 4, saved, paired=True)
    assert judge(other, LOWER_IS_BETTER["teleports"], key="teleports")["no_verdict"] != NO_CLEAR_CHANGE


def test_the_api_judges_co2_saved_and_gives_the_change_ci(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    engine = get_engine(url)
    saved = [26.0, 31.5, 24.9]
    for controller in ("fixed", "actuated"):
        for i, seed in enumerate((1, 2, 3)):
            sim = f"{controller}-s{seed}"
            register_run(engine, sim, "corridor", controller, seed, {"seed": seed})
            cand = controller == "actuated"
            write_run_metrics(engine, sim, {"co2_saved": saved[i] if cand else 0.0,
                                            "avg_delay_s": (CAND if cand else BASE)[i],
                                            "throughput": 0.5, "throughput_veh": 300.0 + seed})
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0))) as client:
        (item,) = client.get("/api/v1/analytics/comparison/baseline-vs-ai").json()["items"]
    rows = {r["metric"]: r for r in item["metrics"]}
    co2 = rows["co2_saved"]
    assert co2["verdict"] == "better" and co2["verdict_note"] is None, co2
    d, lo, hi = difference_ci([0.0] * 3, saved, paired=True)
    assert (co2["change"], co2["change_ci_low"], co2["change_ci_high"]) == (
        pytest.approx(d), pytest.approx(lo), pytest.approx(hi))
    assert co2["change_pct_ci_low"] is None  # no percent of 0
    delay = rows["avg_delay_s"]
    d, lo, hi = difference_ci(BASE[:3], CAND[:3], paired=True)
    base_mean = sum(BASE[:3]) / 3
    assert delay["change_pct_ci_low"] == pytest.approx(lo / base_mean * 100)
    assert delay["change_pct_ci_high"] == pytest.approx(hi / base_mean * 100)
    # a share and a count of vehicles, said in the unit and the description
    assert rows["throughput"]["unit"] == "share 0-1" and "a share, not vehicles" in rows["throughput"]["description"]
    assert rows["throughput_veh"]["unit"] == "veh" and "a count of vehicles" in rows["throughput_veh"]["description"]


def test_one_unit_for_stops_everywhere_and_a_small_sample_says_how_many_runs_had_it():
    units = {key: unit for key, _label, unit, _lb in METRICS}
    assert units["stops_per_veh"] == METRIC_INFO["stops_per_veh"][0] == "stops/veh"
    for key in ("teleports", "pedestrians_jammed"):
        assert units[key] == METRIC_INFO[key][0] == "count"
    seeds = [1, 2, 3]
    runs = _runs({}, seeds)
    for (c, s), m in runs.items():  # an emergency vehicle in seed 1 only
        m["network"]["emergency_vehicles"] = 1 if s == 1 else 0
        m["network"]["emergency_delay_s"] = 25.0 + (c == "actuated") if s == 1 else None
    row = summarize(["fixed", "actuated"], seeds, runs)["metrics"]["emergency_delay_s"]
    text = per_seed_text(row["per_seed_n"])
    assert "per seed" not in text and "2 of 6 runs" in text, text
