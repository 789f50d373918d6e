"""The audit holds the log's preemption claims to what the run records apart from the log (the trial's H3): a
102 … 104 window suspends the cycle and maximum-green rules only if preemption was on, an emergency vehicle (or an
external call) was there, and only for as long as its entry and dwell may take.

Two real runs of `single` with an emergency vehicle that stands 100 s inside the preemption distance, one with
preemption on and one with it off (its configuration's), then copies of their evidence with windows written into
events.csv, as a shield bug (or a hand) would."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import signalwise
from signalwise.analytics.safety_audit import audit_run

SIGNALWISE = Path(sys.executable).with_name("signalwise")
NET = Path(signalwise.__file__).parent / "sim" / "scenarios" / "single" / "net.net.xml"
ROUTES = """<routes>
    <vType id="car" vClass="passenger" length="4.5" accel="2.6" decel="4.5" sigma="0.5"/>
    <vType id="engine" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0.3" speedFactor="1.3"/>
    <flow id="ns" type="car" begin="0" end="400" vehsPerHour="360" from="N_C" to="C_S"/>
    <flow id="ew" type="car" begin="0" end="400" vehsPerHour="360" from="E_C" to="C_W"/>
    <vehicle id="ev" type="engine" depart="5" departLane="1" departSpeed="max">
        <route edges="W_C C_E"/>
        <stop lane="W_C_1" endPos="120" duration="100"/>
    </vehicle>
</routes>
"""
DURATION_S = 400
#: the log's clock: a run's events are stamped from this day (events.csv)
DAY = "2025-01-06"


def _run(tmp_path: Path, name: str, *config: str) -> Path:
    routes = tmp_path / "routes.rou.xml"
    routes.write_text(ROUTES)
    out = tmp_path / name
    done = subprocess.run([str(SIGNALWISE), "run", "--net", str(NET), "--routes", str(routes), "-c", "max-pressure",
                           "--duration", str(DURATION_S), "--evidence", "inline", "--out", str(out), *config],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return next(p.parent for p in out.rglob("events.csv"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("preempt_claims")
    off = tmp / "off.yaml"
    off.write_text("shield:\n  preempt: false\n")
    return {"on": _run(tmp, "on"), "off": _run(tmp, "off", "--config", str(off))}


def _stamp(t_s: float) -> str:
    h, rest = divmod(t_s, 3600)
    m, s = divmod(rest, 60)
    return f"{DAY} {int(h):02d}:{int(m):02d}:{s:04.1f}"


def _copy_with_window(run_dir: Path, dest: Path, start_s: float | None, end_s: float | None,
                      cycle_max_s: float | None = None, channel: int = 2) -> Path:
    """A copy of the run's evidence with a preemption 102 at `start_s` and its 104 at `end_s` written into
    events.csv (channel 2: the shield's own calls are channel 1; None: none); `cycle_max_s`: a stricter cycle
    bound in the model, so that whatever the window suspends shows."""
    shutil.copytree(run_dir, dest)
    if start_s is not None:
        with open(dest / "events.csv", "a") as fh:
            fh.write(f"{_stamp(start_s)},C,102,{channel}\n{_stamp(end_s)},C,104,{channel}\n")
    if cycle_max_s is not None:
        model = json.loads((dest / "signal_model.json").read_text())
        for device in model if isinstance(model, list) else model["devices"]:
            device["timing"]["cycle_max_s"] = cycle_max_s
        (dest / "signal_model.json").write_text(json.dumps(model))
    return dest


def _engine_span(run_dir: Path) -> tuple[float, float]:
    with open(run_dir / "trips.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["vehicle_id"] == "ev")
    return float(row["depart_s"]), float(row["arrival_s"])


def _allowed_s(run_dir: Path, dwell_s: float) -> float:
    """One call's entry and dwell as the audit's rule `preempt` states it (safety_audit's rules), from the model:
    the longest change interval, then the longest minimum green with its change interval, the 3 s pedestrian
    buffer, four steps of rounding, the dwell and one step."""
    model = json.loads((run_dir / "signal_model.json").read_text())
    timing = (model if isinstance(model, list) else model["devices"])[0]["timing"]
    phases = range(len(timing["min_green_s"]))
    change = max(timing["phase_yellow_s"][p] + timing["phase_all_red_s"][p] for p in phases)
    green = max(timing["min_green_s"][p] + timing["phase_yellow_s"][p] + timing["phase_all_red_s"][p] for p in phases)
    step = json.loads((run_dir / "run.json").read_text())["step_length_s"]
    return change + green + 3.0 + 4 * step + dwell_s + step


def _preempt_violations(report) -> list:
    return [v for v in report.violations if v.rule == "preempt"]


@pytest.mark.slow
def test_a_real_preemption_passes_and_a_window_longer_than_entry_and_dwell_is_a_violation(runs, tmp_path):
    report = audit_run(runs["on"])
    assert report.ok, [str(v) for v in report.violations[:5]]
    assert report.checked["preempt"] >= 1
    _depart, arrival = _engine_span(runs["on"])
    start, end = arrival - 10, DURATION_S - 10  # the engine is still there at the call; the window outlasts it
    allowed = _allowed_s(runs["on"], dwell_s=60.0)
    assert end - start > allowed
    long_run = _copy_with_window(runs["on"], tmp_path / "long", start, end, cycle_max_s=40)
    found = _preempt_violations(audit_run(long_run))
    assert len(found) == 1 and found[0].time_s == start
    assert found[0].measured_s == pytest.approx(end - start) and found[0].required_s == pytest.approx(allowed, abs=1e-3)
    # past its bounded part the cycle bound holds again: the strict 40 s bound is broken after it, not exempt
    cycle = [v for v in audit_run(long_run).violations if v.rule == "cycle_max"]
    assert any(v.time_s >= start + allowed - 40 for v in cycle)


@pytest.mark.slow
def test_a_preemption_no_emergency_vehicle_or_call_explains_is_a_violation(runs, tmp_path):
    _depart, arrival = _engine_span(runs["on"])
    start = arrival + 30  # the engine has left the network
    assert start + 20 < DURATION_S
    copy = _copy_with_window(runs["on"], tmp_path / "ghost", start, start + 20)
    found = _preempt_violations(audit_run(copy))
    assert [v.time_s for v in found] == [start]
    assert "no emergency vehicle in the network" in found[0].detail


@pytest.mark.slow
def test_a_preemption_in_a_run_whose_configuration_has_it_off_is_a_violation_and_exempts_nothing(runs, tmp_path):
    assert audit_run(runs["off"]).ok and ",102," not in (runs["off"] / "events.csv").read_text()
    strict = _copy_with_window(runs["off"], tmp_path / "strict", None, None, cycle_max_s=40)
    before = [v for v in audit_run(strict).violations if v.rule == "cycle_max"]
    assert before  # the strict bound is broken somewhere in the run
    copy = _copy_with_window(runs["off"], tmp_path / "claimed", 0, DURATION_S - 1, cycle_max_s=40)
    report = audit_run(copy)
    found = _preempt_violations(report)
    assert [v.time_s for v in found] == [0] and "shield.preempt false" in found[0].detail
    assert len([v for v in report.violations if v.rule == "cycle_max"]) == len(before)  # none exempted
