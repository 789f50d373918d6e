"""Arrivals on green, platoon ratio, the PCD and approach volume per approach, on a real corridor run.

On `corridor` phase 1 of J1 serves the eastbound and the westbound through: one figure for both hides what an
offset does to each. The per-approach tables split a phase's arrivals by the approach (the incoming edge) of
their advance detector and name its direction of travel from the run's geometry. The checks rest on what the run
wrote itself: `detectors.csv` (each channel's lane), `signal_model.json` (each lane's compass side) and the event
log (each advance detector's on-events), not on the code under test.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

pytestmark = pytest.mark.slow  # a 600 s corridor run, then its ATSPM with charts

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
#: traffic from this side travels this way
BOUND = {"north": "SB", "south": "NB", "east": "WB", "west": "EB"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("approach") / "run"
    execute_run(RunConfig(scenario="corridor", controller="actuated", duration_s=600.0, seed=1, evidence="inline"),
                run_dir)
    out = run_dir / "atspm"
    r = subprocess.run(SIGNALWISE + ["atspm", str(run_dir), "--out", str(out), "--pcd-by", "approach"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return run_dir, out


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _lane_side(run_dir: Path) -> dict[tuple[str, str], str]:
    return {(dev["id"], lane): side for dev in json.loads((run_dir / "signal_model.json").read_text())
            for lane, side in dev["approaches"].items()}


def test_a_phases_approaches_add_up_to_its_row_and_name_their_direction(run):
    run_dir, out = run
    per_phase = {(r["TimeStamp"], r["DeviceId"], r["Phase"]): r for r in _rows(out / "arrival_on_green.csv")}
    by_approach = _rows(out / "arrival_on_green_by_approach.csv")
    assert by_approach
    sums: dict[tuple, Counter] = defaultdict(Counter)
    side = _lane_side(run_dir)
    for r in by_approach:
        key = (r["TimeStamp"], r["DeviceId"], r["Phase"])
        sums[key]["total"] += int(r["Total_Actuations"])
        sums[key]["green"] += int(r["Green_Actuations"])
        # the approach is the incoming edge; its direction the side its lanes come from, as travel
        sides = {s for (dev, lane), s in side.items() if dev == r["DeviceId"] and lane.rsplit("_", 1)[0] == r["Approach"]}
        assert len(sides) == 1 and r["Direction"] == BOUND[sides.pop()], r
        assert float(r["Percent_AOG"]) == pytest.approx(100 * int(r["Green_Actuations"]) / int(r["Total_Actuations"]))
    assert set(sums) == set(per_phase)
    for key, c in sums.items():
        assert (c["total"], c["green"]) == (int(per_phase[key]["Total_Actuations"]),
                                            int(per_phase[key]["Green_Actuations"])), key
    # the arterial through of J1 is two rows, eastbound and westbound, in every bin
    j1 = {(r["TimeStamp"], r["Direction"]) for r in by_approach if r["DeviceId"] == "J1" and r["Phase"] == "1"}
    bins = {t for t, _d in j1}
    assert j1 == {(t, d) for t in bins for d in ("EB", "WB")}


def test_the_platoon_ratio_per_approach_is_its_own_share_over_the_phases_green_ratio(run):
    _run_dir, out = run
    phase = {(r["TimeStamp"], r["DeviceId"], r["Phase"]): r for r in _rows(out / "platoon_ratio.csv")}
    rows = _rows(out / "platoon_ratio_by_approach.csv")
    assert rows
    for r in rows:
        p = phase[r["TimeStamp"], r["DeviceId"], r["Phase"]]
        assert float(r["Green_Ratio"]) == pytest.approx(float(p["Green_Ratio"]))
        assert float(r["Platoon_Ratio"]) == pytest.approx(float(r["Percent_AOG"]) / 100 / float(r["Green_Ratio"]))


def test_the_pcd_names_each_arrivals_approach_and_its_chart_has_a_panel_per_approach(run):
    run_dir, out = run
    lane_of = {(r["DeviceId"], r["Parameter"]): r["Lane"] for r in _rows(run_dir / "detectors.csv")
               if r["Function"] == "Advance"}
    pcd = _rows(out / "pcd.csv")
    assert pcd and all(r["Approach"] == lane_of[r["DeviceId"], r["Detector"]].rsplit("_", 1)[0] for r in pcd)
    assert (out / "pcd_J1.png").exists() and (out / "pcd_J5.png").exists()  # 5 signals: every one charted
    import numpy as np

    from signalwise.analytics.atspm.charts import pcd_panels

    j1 = [r for r in pcd if r["DeviceId"] == "J1"]
    arr = {"phase": np.array([int(r["Phase"]) for r in j1]), "approach": np.array([r["Approach"] for r in j1], object)}
    panels = pcd_panels(arr, sorted(set(arr["phase"].tolist())), "approach")
    assert (1, "W_J1") in panels and (1, "J2_J1") in panels
    assert pcd_panels(arr, [1, 2], "phase") == [(1, None), (2, None)]


def test_approach_volume_counts_each_advance_detectors_vehicles(run):
    run_dir, out = run
    approach = {(r["DeviceId"], r["Parameter"]): r["Lane"].rsplit("_", 1)[0] for r in _rows(run_dir / "detectors.csv")
                if r["Function"] == "Advance"}
    counted: Counter = Counter()
    for e in _rows(run_dir / "events.csv"):
        key = (e["DeviceId"], e["Parameter"])
        if e["EventId"] == "82" and key in approach:
            counted[e["DeviceId"], approach[key]] += 1
    volume: Counter = Counter()
    for r in _rows(out / "approach_volume.csv"):
        volume[r["DeviceId"], r["Approach"]] += int(r["Volume"])
        assert float(r["Volume_vph"]) == pytest.approx(int(r["Volume"]) * 4)  # 15-minute bins
    assert volume == counted and volume


def test_split_failure_occupancies_are_fractions_without_float32_noise(run):
    _run_dir, out = run
    for name in ("split_failure_cycles.csv", "split_failures.csv"):
        rows = _rows(out / name)
        assert rows
        for r in rows:
            for c in ("Green_Occupancy", "Red_Occupancy"):
                v = float(r[c])
                assert 0.0 <= v <= 1.0 and len(r[c].split(".")[-1]) <= 4, (name, r)
