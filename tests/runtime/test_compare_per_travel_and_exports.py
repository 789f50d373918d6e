"""A real `signalwise compare` on `single` gives what an analyst needs to take its figures to a council: CO2 and fuel
per vehicle-km beside the totals (from SUMO's own per-edge output, over the same counted window), the emission
model named (HBEFA version and each vehicle type's class), the change's 95 % CI (checked by hand with scipy.stats'
t) in summary.csv (appended columns), summary.json, report.md and the terminal table, per-seed values with their
seed (summary.json, per_seed.csv), the chart's data as CSV, and the vehicles due / still driving / never inserted
rows that let the totals be checked from the report.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from signalwise.runtime.compare import delay_over_time
from signalwise.sim.outputs import read_edgedata

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3)
#: summary.csv's columns before the change's CI was added: each must stay where it was
OLD_COLUMNS = ["metric", "controller", "n", "mean", "ci_low", "ci_high", "change_pct", "p_welch", "p_paired", "unit",
               "verdict", "scenario", "demand_scale", "timing_profile", "begin_s", "end_s", "warmup_s", "seeds",
               "seeds_vary", "time_to_teleport_s", "sumo_options", "verdict_note"]


@pytest.fixture(scope="module")
def cmp(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("cmp")
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    done = subprocess.run([signalwise, "compare", "-s", "single", "-c", "fixed,actuated", "--seeds", "3",
                           "--duration", "360", "--warmup", "60", "--workers", "2", "--out", str(tmp / "out")],
                          cwd=tmp, capture_output=True, text=True, timeout=600,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")},
                               "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return tmp / "out", done.stdout


def test_co2_and_fuel_per_vehicle_km_over_the_same_window(cmp):
    out, _ = cmp
    for rd in sorted(out.glob("*-s*")):
        m = json.loads((rd / "metrics.json").read_text())
        net, start = m["network"], m["counted_from_s"]
        rows = read_edgedata(rd / "sumo" / "edgedata.xml", ("sampledSeconds", "speed"))
        veh_km = sum(r.get("sampledSeconds", 0) * r.get("speed", 0) for r in rows if r["begin_s"] >= start) / 1000
        assert veh_km > 0 and net["veh_km"] == pytest.approx(veh_km, abs=2e-3)
        co2 = sum(r.get("CO2_abs", 0) for r in read_edgedata(rd / "sumo" / "emissions.xml", ("CO2_abs",))
                  if r["begin_s"] >= start) / 1e3  # mg -> g
        assert net["co2_g_per_veh_km"] == pytest.approx(co2 / veh_km, rel=1e-3)
        assert net["fuel_l_per_100veh_km"] == pytest.approx(net["fuel_l"] * 100 / veh_km, rel=1e-3)
        # the fleet the figures assume: each vehicle type the run's vehicles had, with its emission class
        with open(rd / "trips.csv") as fh:
            vtypes = {r["vtype"] for r in csv.DictReader(fh)}
        assert set(m["emission_classes"]) == vtypes
        assert all(c.startswith("HBEFA") and "/" in c for c in m["emission_classes"].values())
    summary = json.loads((out / "summary.json").read_text())
    for key in ("co2_kg", "fuel_l", "veh_km", "co2_g_per_veh_km", "fuel_l_per_100veh_km"):
        assert summary["metrics"][key]["controllers"]["actuated"]["mean"] is not None, key
    report = (out / "report.md").read_text()
    assert "| CO2 per vehicle-km | g/veh-km |" in report and "| fuel per 100 vehicle-km | l/100 veh-km |" in report
    assert "| CO2 (total) | kg |" in report
    model = summary["emission_model"]
    assert model["models"] and all(f"{mdl}" in report for mdl in model["models"])
    for vtype, cls in model["classes"].items():
        assert f"`{vtype}` {cls}" in report
    if model["fuels"] == ["diesel", "petrol"]:
        assert "petrol and diesel in one sum" in report


def test_the_change_ci_matches_a_hand_computation(cmp):
    out, stdout = cmp
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "summary.csv") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert header[:len(OLD_COLUMNS)] == OLD_COLUMNS  # old positions hold; the CI's columns come after
    assert header[len(OLD_COLUMNS):] == ["change", "change_ci_low", "change_ci_high", "change_pct_ci_low",
                                         "change_pct_ci_high", "ci_note"]
    csv_rows = {(r[0], r[1]): dict(zip(header, r, strict=True)) for r in rows}
    checked = 0
    for key, row in summary["metrics"].items():
        base, cand = row["controllers"]["fixed"], row["controllers"]["actuated"]
        by_seed_b, by_seed_c = dict(zip(base["seeds"], base["values"], strict=True)), dict(zip(cand["seeds"], cand["values"], strict=True))
        common = [s for s in SEEDS if s in by_seed_b and s in by_seed_c]
        diffs = [by_seed_c[s] - by_seed_b[s] for s in common]
        if len(diffs) < 2 or max(diffs) - min(diffs) < 1e-9:
            assert cand.get("change_ci_low") is None, key
            continue
        n = len(diffs)
        mean = sum(diffs) / n
        half = sps.t.ppf(0.975, n - 1) * math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)
        base_mean = sum(by_seed_b[s] for s in common) / n
        assert cand["change_ci_low"] == pytest.approx(mean - half, abs=1e-3), key
        assert cand["change_ci_high"] == pytest.approx(mean + half, abs=1e-3), key
        lo, hi = sorted(((mean - half) / base_mean * 100, (mean + half) / base_mean * 100))
        assert cand["change_pct_ci_low"] == pytest.approx(lo, abs=1e-3), key
        assert cand["change_pct_ci_high"] == pytest.approx(hi, abs=1e-3), key
        c = csv_rows[(key, "actuated")]
        assert float(c["change_pct_ci_low"]) == cand["change_pct_ci_low"]
        assert float(c["change_ci_high"]) == cand["change_ci_high"]
        checked += 1
    assert checked >= 5
    delay = summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]
    cell = f"{delay['change_pct']:+.1f} % [{delay['change_pct_ci_low']:+.1f}, {delay['change_pct_ci_high']:+.1f}]"
    assert cell in (out / "report.md").read_text()
    assert cell.replace(" %", "%", 1) in stdout  # the terminal table's compact "change [lo, hi]"


def test_per_seed_exports_and_the_totals_check(cmp):
    out, _ = cmp
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "per_seed.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["controller", "seed", "metric", "value", "unit"]
    tidy = {(r["controller"], int(r["seed"]), r["metric"]): (float(r["value"]), r["unit"]) for r in rows}
    n = 0
    for key, row in summary["metrics"].items():
        for c, e in row["controllers"].items():
            assert len(e["seeds"]) == len(e["values"])
            for seed, value in zip(e["seeds"], e["values"], strict=True):
                m = json.loads((out / f"{c}-s{seed}" / "metrics.json").read_text())
                assert m["network"][key] == value  # the seed named is the run the value came from
                assert tidy[(c, seed, key)] == (pytest.approx(value), row["unit"])
                n += 1
    assert n == len(rows)
    # the totals add up from the exported figures: due = arrived + still driving + never inserted
    for c in ("fixed", "actuated"):
        for s in SEEDS:
            due = tidy[(c, s, "vehicles_total")][0]
            assert due == tidy[(c, s, "throughput_veh")][0] + tidy[(c, s, "running_at_end")][0] + \
                tidy[(c, s, "never_inserted")][0]
    report = (out / "report.md").read_text()
    for label in ("| vehicles due | veh |", "| still driving at the end | veh |", "| never inserted | veh |"):
        assert label in report
    # stops: one unit name in summary.csv, report.md and per_seed.csv
    assert tidy[("fixed", 1, "stops_per_veh")][1] == "stops/veh" and "| stops per vehicle | stops/veh |" in report
    # the chart's data beside it
    with open(out / "delay_over_time.csv") as fh:
        chart = list(csv.DictReader(fh))
    for c in ("fixed", "actuated"):
        points = delay_over_time([out / f"{c}-s{s}" for s in SEEDS])
        mine = [(float(r["begin_s"]), float(r["avg_delay_s"])) for r in chart if r["controller"] == c]
        assert len(mine) == len(points) > 0
        for (t, d), (t2, d2) in zip(mine, points, strict=True):
            assert t == t2 and d == pytest.approx(d2, abs=1e-3)
