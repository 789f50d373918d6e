"""A warm-up (`warmup_s`, `--warmup`): the summary figures count only what was due after it, the simulation and the
whole-run records are untouched, and a warm-up that cannot be counted from is refused before SUMO starts.

The same fixed-time run of `corridor` is made twice, with and without a warm-up: fixed time does not react to
traffic, and a warm-up changes no decision, so the two runs drive the same vehicles and every figure of the
warm one can be recomputed from the other's own files (trips.csv, queues.csv, timeseries.csv).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.commands import print_compare_table, print_run_summary
from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
DURATION_S = 600.0
WARMUP_S = 180.0


def _run(path: Path, **options) -> dict:
    cfg = RunConfig(scenario="corridor", controller="fixed", duration_s=DURATION_S, seed=3, evidence="inline",
                    **options)
    execute_run(cfg, path)
    return json.loads((path / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict, Path, dict]:
    base = tmp_path_factory.mktemp("warmup")
    return base / "warm", _run(base / "warm", warmup_s=WARMUP_S), base / "cold", _run(base / "cold")


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _due_s(row: dict, end_s: float) -> float:
    """When the trip was due: its entry less its wait to enter; for one never inserted, the end less its wait."""
    if row["status"] == "undeparted":
        return end_s - float(row["depart_delay_s"])
    return float(row["depart_s"]) - float(row["depart_delay_s"])


@pytest.mark.slow
def test_the_delay_counts_only_the_vehicles_due_after_the_warm_up(runs):
    warm_dir, warm, cold_dir, cold = runs
    trips = _rows(warm_dir / "trips.csv")
    assert trips == _rows(cold_dir / "trips.csv"), "a warm-up changed the simulation"
    counted = [t for t in trips if _due_s(t, DURATION_S) >= WARMUP_S]
    assert 0 < len(counted) < len(trips)
    net = warm["network"]
    assert net["vehicles_total"] == len(counted)
    assert cold["network"]["vehicles_total"] == len(trips)
    assert net["avg_delay_s"] == pytest.approx(sum(float(t["delay_s"]) for t in counted) / len(counted), abs=0.01)
    assert net["throughput_veh"] == sum(1 for t in counted if t["status"] == "arrived")
    assert warm["warmup_s"] == WARMUP_S and warm["counted_from_s"] == WARMUP_S
    assert "warmup_s" not in cold


def test_queues_and_each_approach_count_from_the_warm_up_and_the_time_series_covers_the_whole_run(runs):
    warm_dir, warm, cold_dir, _cold = runs
    per_time: dict[float, int] = {}
    for row in _rows(warm_dir / "queues.csv"):
        t = float(row["time_s"])
        if t >= WARMUP_S:
            per_time[t] = per_time.get(t, 0) + int(row["halting_veh"])
    assert warm["network"]["avg_queue_veh"] == pytest.approx(sum(per_time.values()) / len(per_time), abs=0.001)
    series = _rows(warm_dir / "timeseries.csv")
    assert series == _rows(cold_dir / "timeseries.csv")
    assert min(float(r["begin_s"]) for r in series) == 0.0
    for tls, figures in warm["intersections"].items():
        left_after = sum(int(r["arrived_veh"]) for r in series if r["scope"] == tls and float(r["begin_s"]) >= WARMUP_S)
        assert figures["throughput_veh"] == left_after, tls
    co2_after = sum(float(r["co2_kg"]) for r in series if r["scope"] == "network" and float(r["begin_s"]) >= WARMUP_S)
    assert 0 < warm["network"]["co2_kg"] == pytest.approx(co2_after, rel=1e-3)


def test_the_run_summary_says_where_the_figures_count_from(runs, capsys):
    warm_dir, warm, _cold_dir, cold = runs
    print_run_summary(warm, warm_dir)
    assert "figures count from 180 s, after a 180 s warm-up" in " ".join(capsys.readouterr().out.split())
    print_run_summary(cold, warm_dir)
    assert "warm-up" not in capsys.readouterr().out


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("warmup", "needle"), [
    ("90", "not a multiple of interval_s 60 s"),
    ("300", "leaves nothing of the 300 s run"),
])
def test_a_warm_up_that_cannot_be_counted_from_is_refused_naming_the_option(tmp_path, warmup, needle):
    p = _cli("run", "-s", "single", "--duration", "300", "--warmup", warmup, "--out", str(tmp_path))
    assert p.returncode == 2, p.stderr
    assert "--warmup" in p.stderr and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not any(tmp_path.iterdir())


def test_a_warm_up_longer_than_the_scenarios_own_window_is_refused_before_the_run(tmp_path):
    p = _cli("run", "-s", "single", "--warmup", "3600", "--out", str(tmp_path))  # single's window: 0-3600 s
    assert p.returncode == 2, p.stderr
    assert "leaves nothing of the run's 3600 s window" in p.stderr, p.stderr
    assert not any(tmp_path.iterdir())


def test_a_comparison_with_a_warm_up_says_so_in_its_summary_and_table(tmp_path, capsys):
    base = RunConfig(scenario="single", controller="fixed", duration_s=240.0, warmup_s=120.0, record="lean")
    result = compare_controllers(base, ["fixed"], [1], tmp_path / "cmp", workers=1)
    assert json.loads((tmp_path / "cmp" / "summary.json").read_text())["warmup_s"] == 120.0
    run = json.loads(next((tmp_path / "cmp").glob("*/metrics.json")).read_text())
    assert run["counted_from_s"] == 120.0
    print_compare_table(result.summary, width=120)
    assert "after a 120 s warm-up" in capsys.readouterr().out
