"""`signalwise compare`: intervals cut to the values a figure can take, by the rule `signalwise atspm COMPARE_DIR`
uses (one function); each signal's delay over the seeds; and the ATSPM comparison's changes of shares in
percentage points."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.analytics.stats import compare, mean_ci
from signalwise.runtime.compare import METRICS, mean_text, report_markdown, summarize, write_summary_csv

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]


def _metrics(never_inserted: float, delays: dict[str, float]) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    values.update(fallback_fraction=0.0, never_inserted=never_inserted)
    return {"network": values, "safety": {"violations": 0},
            "intersections": {tls: {"delay_per_veh_s": d, "throughput_veh": 100} for tls, d in delays.items()}}


def _runs() -> dict:
    """fixed: 0, 1, 0 vehicles never inserted (a t-interval reaching below 0); J1's delay lower under actuated."""
    return {("fixed", 1): _metrics(0, {"J1": 30.0, "J2": 20.0}), ("fixed", 2): _metrics(1, {"J1": 40.0, "J2": 22.0}),
            ("fixed", 3): _metrics(0, {"J1": 35.0, "J2": 21.0}),
            ("actuated", 1): _metrics(0, {"J1": 25.0, "J2": 20.5}),
            ("actuated", 2): _metrics(0, {"J1": 34.0, "J2": 21.0}),
            ("actuated", 3): _metrics(0, {"J1": 29.5, "J2": 22.0})}


def test_a_count_whose_t_interval_reaches_below_zero_is_cut_there_and_says_so(tmp_path):
    from signalwise.analytics.atspm import comparison
    from signalwise.analytics.stats import bounded_interval

    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs())
    e = summary["metrics"]["never_inserted"]["controllers"]["fixed"]
    raw = mean_ci([0, 1, 0])
    assert raw.ci_low < 0  # the t-interval itself: -1.10
    assert (e["ci_low"], e["ci_high"]) == (0.0, round(raw.ci_high, 4)) and e["ci_note"] == "t-interval cut at 0"
    assert "ci_note" not in summary["metrics"]["avg_delay_s"]["controllers"]["fixed"]
    # the atspm comparison cuts with the same function, to the same note
    assert comparison.bounded_ci("split_failures", raw.ci_low, raw.ci_high) == \
        bounded_interval(raw.ci_low, raw.ci_high) == (0.0, raw.ci_high, "t-interval cut at 0")
    assert mean_text(e, 3) == f"0.33 [0, {raw.ci_high:.2f}]"  # the interval, not ± a half-width that reads -1.10
    write_summary_csv(tmp_path / "summary.csv", summary)
    with open(tmp_path / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if (r["metric"], r["controller"]) == ("never_inserted", "fixed"))
    assert float(row["ci_low"]) == 0.0 and row["ci_note"] == "t-interval cut at 0"
    assert list(rows[0])[-1] == "ci_note"  # appended: the older columns keep their places
    assert "`t-interval cut at 0`" in report_markdown(summary, None)


def test_each_signals_delay_is_averaged_over_the_seeds_with_its_change(tmp_path):
    runs = _runs()
    summary = summarize(["fixed", "actuated"], [1, 2, 3], runs)
    j1 = summary["intersections"]["J1"]["delay_per_veh_s"]["controllers"]
    want = compare([30.0, 40.0, 35.0], [25.0, 34.0, 29.5], paired=True)
    assert j1["fixed"]["mean"] == pytest.approx(35.0) and j1["actuated"]["mean"] == pytest.approx(29.5)
    assert j1["fixed"]["ci_low"] == pytest.approx(want.baseline.ci_low, abs=1e-4)
    assert j1["actuated"]["change"] == pytest.approx(-5.5)
    assert j1["actuated"]["change_pct"] == pytest.approx(want.change_pct, abs=1e-4)
    assert j1["actuated"]["p_paired"] == pytest.approx(want.p_value_paired, rel=1e-3)
    assert j1["actuated"]["verdict"] == "better"
    report = report_markdown(summary, None)
    section = report[report.index("## Delay per intersection"):report.index("## Safety and warnings")]
    assert "| J1 | 35.0 ±" in section and "**better**" in section and "| J2 |" in section


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    made = subprocess.run([*SIGNALWISE, "compare", "-s", "corridor", "-c", "fixed,actuated", "--seeds", "2",
                           "--duration", "600", "--workers", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr
    return out


@pytest.mark.slow  # a comparison of 4 corridor runs, then their ATSPM
def test_a_real_comparison_writes_each_signals_delay(compared):
    with (compared / "intersections.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    per_run = {}
    for run in compared.glob("*-s*"):
        meta = json.loads((run / "run.json").read_text())
        per_run[meta["controller"], int(meta["seed"])] = json.loads((run / "metrics.json").read_text())
    assert {r["intersection"] for r in rows} == {"J1", "J2", "J3", "J4", "J5"}
    for r in rows:
        values = [per_run[r["controller"], s]["intersections"][r["intersection"]][r["metric"]] for s in (1, 2)]
        assert float(r["mean"]) == pytest.approx(sum(values) / 2, abs=1e-3), r
        assert r["ci_low"] == "" or float(r["ci_low"]) >= 0, r
        assert r["unit"] == {"delay_per_veh_s": "s", "throughput_veh": "veh"}[r["metric"]]
    assert "## Delay per intersection" in (compared / "report.md").read_text()
    with (compared / "summary.csv").open() as fh:
        assert all(r["ci_low"] in ("", "None") or float(r["ci_low"]) >= 0 for r in csv.DictReader(fh))


@pytest.mark.slow
def test_the_atspm_comparison_gives_a_shares_change_in_percentage_points(compared):
    p = subprocess.run([*SIGNALWISE, "atspm", str(compared)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    with (compared / "atspm" / "comparison.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    mean = {(r["controller"], r["figure"]): float(r["mean"]) for r in rows}
    for r in rows:
        assert r["change_unit"] == ("pp" if r["unit"] == "%" else r["unit"]), r
        if r["controller"] == "fixed":
            assert r["change"] == "", r
            continue
        diff = mean[r["controller"], r["figure"]] - mean["fixed", r["figure"]]
        assert float(r["change"]) == pytest.approx(diff, rel=2e-3, abs=2e-3), r
        if r["unit"] == "%" and not math.isnan(diff):  # the table says points, not a percent of a percent
            assert f"{diff:+.1f} pp vs fixed" in p.stdout, p.stdout
            assert f"{float(r['change_pct']):+.1f} % vs fixed" not in p.stdout
