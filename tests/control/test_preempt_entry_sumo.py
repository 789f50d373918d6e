"""Preemption entry in real SUMO runs of the built-in `single` network (its demand without the random emergency
flows, plus one emergency vehicle written here, timed from a run without it): a call during a change interval
toward a crosswalk phase gets its green after that phase's entry minimum (no walk started), and with
`preempt_ends_walk` a walk in progress is cut, its clearance timed in full and the yellow follows at once. The
exact events are worked out from the run's own signal model; the independent audit finds no violation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signalwise.analytics.safety_audit import audit_run
from signalwise.core.eventlog import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

pytestmark = pytest.mark.slow

SINGLE = Path(__file__).resolve().parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"
DURATION_S = 420
#: an emergency vehicle inserted at full speed on N_C is inside the 150 m preemption distance this long after
#: its departure (checked below against the 102 itself)
CALL_AFTER_DEPART_S = 6
PHASE_CODES = (1, 8, 10, 11, 21, 22, 23, 107)


def _routes(tmp_path: Path, depart_s: float | None) -> list[Path]:
    demand = tmp_path / "demand_noev.rou.xml"
    if not demand.exists():
        demand.write_text("".join(line for line in (SINGLE / "demand.rou.xml").read_text().splitlines(True)
                                  if 'flow id="emergency' not in line))
    if depart_s is None:
        return [demand]
    ev = tmp_path / f"ev_{depart_s:g}.rou.xml"
    ev.write_text(f"""<routes>
    <vType id="engine" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0" speedFactor="1.3"/>
    <vehicle id="engine_N" type="engine" depart="{depart_s:g}" departLane="best" departSpeed="max">
        <route edges="N_C C_S"/>
    </vehicle>
</routes>
""")
    return [demand, ev]


def _run(tmp_path: Path, name: str, depart_s: float | None, **shield) -> tuple[Path, list[tuple[float, int, int]]]:
    cfg = RunConfig(net=SINGLE / "net.net.xml", routes=_routes(tmp_path, depart_s), controller="actuated",
                    duration_s=DURATION_S, record="lean", evidence="inline", shield=shield)
    run_dir = tmp_path / name
    execute_run(cfg, run_dir)
    return run_dir, [(e.time_s, e.event_code, e.parameter) for e in read_events(run_dir / "events.csv")]


def _timing(run_dir: Path) -> dict:
    (model,) = json.loads((run_dir / "signal_model.json").read_text())
    return model["timing"]


def _change(timing: dict, phase: int) -> tuple[float, float]:
    return timing["phase_yellow_shown_s"][phase - 1], timing["phase_all_red_shown_s"][phase - 1]


def _between(events, a: float, b: float) -> list[tuple[float, int, int]]:
    return sorted(e for e in events if a <= e[0] <= b and e[1] in PHASE_CODES)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preempt_entry")
    run_dir, events = _run(tmp, "base", None)
    return tmp, _timing(run_dir), events


def test_a_call_during_a_change_interval_gets_its_green_after_the_entry_minimum(base):
    tmp, timing, events = base
    # a yellow of phase 2 toward phase 3 (a crosswalk phase: its minimum is walk + clearance), after the start
    yellow2 = next(t for i, (t, c, p) in enumerate(events)
                   if c == 8 and p == 2 and t >= 120 and next(q for _, cc, q in events[i:] if cc == 1) == 3)
    run_dir, ev = _run(tmp, "ev", yellow2 + 1 - CALL_AFTER_DEPART_S)
    (call,) = [t for t, c, _ in ev if c == 102]
    assert call == yellow2 + 1, "the vehicle called at another moment than planned"
    entry_min = RunConfig().shield.preempt_entry_min_green_s
    y2, r2 = _change(timing, 2)
    y3, r3 = _change(timing, 3)
    green3 = yellow2 + y2 + r2
    green1 = green3 + entry_min + y3 + r3
    assert _between(ev, call, green1) == sorted([
        (yellow2 + y2, 10, 2), (green3, 11, 2), (green3, 1, 3),  # phase 3 green: no walk (21)
        (green3 + entry_min, 8, 3), (green3 + entry_min + y3, 10, 3), (green1, 11, 3),
        (green1, 1, 1), (green1, 21, 1), (green1, 107, 1)])
    # the old entry timed phase 3's minimum green in full (walk + clearance) first
    before = green3 + timing["min_green_s"][2] + y3 + r3
    assert timing["min_green_s"][2] > entry_min and green1 - call < before - call
    report = audit_run(run_dir)
    assert report.ok, [str(v) for v in report.violations]


def test_preempt_ends_walk_cuts_the_walk_and_yellow_follows_its_clearance(base):
    tmp, timing, events = base
    walk3 = next(t for t, c, p in events if c == 21 and p == 3 and t >= 120)
    run_dir, ev = _run(tmp, "ends_walk", walk3 + 2 - CALL_AFTER_DEPART_S, preempt_ends_walk=True)
    (call,) = [t for t, c, _ in ev if c == 102]
    assert call == walk3 + 2, "the vehicle called at another moment than planned"
    clear3 = timing["phase_ped_clearance_shown_s"][2]
    y3, r3 = _change(timing, 3)
    yellow3 = call + clear3  # the walk's clearance in full, then at once the yellow (no minimum green added)
    green1 = yellow3 + y3 + r3
    assert _between(ev, call, green1) == sorted([
        (call, 22, 3), (yellow3, 23, 3), (yellow3, 8, 3), (yellow3 + y3, 10, 3), (green1, 11, 3),
        (green1, 1, 1), (green1, 21, 1), (green1, 107, 1)])
    assert yellow3 - walk3 < timing["min_green_s"][2]  # shorter than the phase's own minimum green
    report = audit_run(run_dir)
    assert report.ok, [str(v) for v in report.violations]
