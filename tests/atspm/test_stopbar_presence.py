"""A simulated run's stop-bar detectors read as presence zones, on the run's own clock.

A queue's first vehicle stands with its front 1 m before the lane's end. A run records each stop-bar detector
with instant loops 2, 6 and 10 m before the stop line, on while any of them is covered, so a queue standing
at red holds it on and a cycle can fail its split. SUMO stamps an instant loop's events one simulation step
before the step the run's signal events give the same movement; the run moves them onto its clock.

The physics the checks rest on, independent of the code under test: a car standing over the 2 m loop (front
at 1 m, 4.5 m long) must move 3.5 m before its back leaves the loop, which takes more than one 1 s step from
standstill (SUMO's passenger car accelerates at 2.6 m/s² at most), so its back leaves at least 1 s after the
green it starts on is shown.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("presence") / "run"
    execute_run(RunConfig(scenario="corridor", controller="fixed", duration_s=900.0, seed=1, evidence="inline"),
                run_dir)
    out = run_dir / "atspm"
    r = subprocess.run(SIGNALWISE + ["atspm", "--run", str(run_dir), "--out", str(out), "--no-charts"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return run_dir, out


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _green_starts(run_dir: Path) -> dict[str, list[float]]:
    """Per incoming lane, the times any of its links turns green (signal_states.csv, the states SUMO was given)."""
    links: dict[tuple[str, str], list[int]] = {}
    for inter in json.loads((run_dir / "signal_model.json").read_text()):
        for link in inter["links"]:
            if not link["crosswalk"]:
                links.setdefault((inter["id"], link["in_lane"]), []).append(link["index"])
    states: dict[str, list[tuple[float, str]]] = {}
    for row in _rows(run_dir / "signal_states.csv"):
        states.setdefault(row["device_id"], []).append((float(row["time_s"]), row["state"]))
    starts: dict[str, list[float]] = {}
    for (tls, lane), idx in links.items():
        was_green = True
        for t, state in states[tls]:
            green = any(state[i] in "Gg" for i in idx)
            if green and not was_green:
                starts.setdefault(lane, []).append(t)
            was_green = green
    return starts


@pytest.mark.slow
def test_a_queued_leader_leaves_its_stop_bar_loop_after_the_green_it_starts_on(run):
    run_dir, _ = run
    leaves: dict[str, list[tuple[float, float]]] = {}
    for row in _rows(run_dir / "detector_passages.csv"):
        if row["detector_id"].startswith("sb_") and row["leave_s"]:
            leaves.setdefault(row["lane"], []).append((float(row["enter_s"]), float(row["leave_s"])))
    after_green_s = []
    for lane, starts in _green_starts(run_dir).items():
        for t in starts:
            # standing over the loop when the green came: entered well before, left around or after it
            standing = [leave for enter, leave in leaves.get(lane, ()) if enter < t - 2.0 and leave > t - 1.5]
            if standing:
                after_green_s.append(min(standing) - t)
    assert len(after_green_s) >= 100, "queues standing at red do not cover the stop-bar detectors"
    assert min(after_green_s) >= 1.0 - 1e-6, sorted(after_green_s)[:5]


def test_one_counting_row_per_vehicle_and_the_detector_events_alternate(run):
    run_dir, _ = run
    per_vehicle = Counter((r["detector_id"], r["vehicle_id"]) for r in _rows(run_dir / "detector_passages.csv"))
    assert per_vehicle and max(per_vehicle.values()) == 1
    last: dict[tuple[str, str], str] = {}
    for row in _rows(run_dir / "events.csv"):
        if row["EventId"] in ("81", "82"):
            key = (row["DeviceId"], row["Parameter"])
            assert last.get(key) != row["EventId"], (key, row)  # on, off, on, ...: occupancies as one presence
            last[key] = row["EventId"]


def test_fixed_time_at_the_peak_fails_splits_and_makes_phases_wait(run):
    _, out = run
    failures = _rows(out / "split_failures.csv")
    assert sum(int(r["Split_Failure"]) for r in failures) >= 1
    assert max(float(r["Red_Occupancy"]) for r in failures) >= 0.8
    waits = [float(r["Mean_Wait_s"]) for r in _rows(out / "phase_wait.csv")]
    assert waits and min(waits) > 10.0  # a fixed 90 s cycle: every phase waits tens of seconds for its green


def test_the_signal_model_gives_the_clearances_the_log_shows(run):
    """signal_model.json's yellow and all-red are the ITE values (3.3 s ...); the signal shows them in whole
    steps, and the `_shown_s` values are what the log's 8 -> 9 and 10 -> 11 intervals last."""
    import datetime as dt

    run_dir, _ = run
    model = {d["id"]: d["timing"] for d in json.loads((run_dir / "signal_model.json").read_text())}
    began: dict[tuple[str, int, int], dt.datetime] = {}
    lasted: dict[tuple[str, int, int], set[float]] = {}
    for row in _rows(run_dir / "events.csv"):  # written in time order
        code, key = int(row["EventId"]), (row["DeviceId"], int(row["Parameter"]))
        at = dt.datetime.fromisoformat(row["TimeStamp"])
        if code in (8, 10):
            began[(*key, code)] = at
        elif code in (9, 11) and (*key, code - 1) in began:
            start = began.pop((*key, code - 1))
            lasted.setdefault((*key, code - 1), set()).add(round((at - start).total_seconds(), 1))
    assert lasted
    for (device, phase, code), seconds in lasted.items():
        shown = model[device]["phase_yellow_shown_s" if code == 8 else "phase_all_red_shown_s"][phase - 1]
        assert seconds == {shown}, (device, phase, code, seconds, shown)
    assert any(t["phase_yellow_s"] != t["phase_yellow_shown_s"] for t in model.values())  # 3.3 s shows 4 s


def test_a_passage_shorter_than_the_logs_tenth_is_still_an_on_and_an_off(tmp_path):
    """A motorcycle at speed covers a point loop for less than 0.1 s: on and off round to the same tenth, and the
    log still shows it (a tenth long), one step later than SUMO stamps it."""
    from signalwise.core.types import Detector
    from signalwise.runtime.evidence import detector_events
    from signalwise.sim.detectors import DetectorLayout, instant_id

    det = Detector("adv_L_0", "L_0", "advance", 100.0, 3)
    xml = tmp_path / "detector_passages.xml"
    xml.write_text(f'<instantE1>\n<instantOut id="{instant_id(det)}" time="10.01" state="enter" vehID="m" speed="30" '
                   f'length="2" type="moto"/>\n<instantOut id="{instant_id(det)}" time="10.04" state="leave" '
                   f'vehID="m" speed="30" length="2" type="moto"/>\n</instantE1>\n')
    layout = DetectorLayout({"T": (det,)}, None, None, xml, step_s=1.0)
    events, rows = detector_events(xml, layout)
    assert sorted(events) == [(110, "T", 82, 3), (111, "T", 81, 3)]  # deciseconds: on at 11.0 s, off at 11.1 s
    assert len(rows) == 1 and rows[0][7] == pytest.approx(11.01)
