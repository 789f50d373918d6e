"""How a green ends, as the hi-res log says it: gap-out (4), max-out (5) or force-off (6).

A gap-out claims the phase's demand was gone; a plan's split end or a phase
chosen over one with vehicles still on it is a force-off. The controller
states which (`Decision.termination`), the shield logs it, and its own
interventions and fallback plan log theirs. None of this changes a decision.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from shield_fixtures import make_intersection, shield_config

from signalwise.control import ControlContext, make
from signalwise.control.actuated import ActuatedController
from signalwise.control.fixed import PlanFollower
from signalwise.control.green_end import demand_gone
from signalwise.control.learning import QLController, QTable, StateFeatures
from signalwise.control.learning.phase_score import FEATURES, PhaseScoreController
from signalwise.control.max_pressure import MaxPressureController
from signalwise.control.shield import IntersectionShield
from signalwise.control.webster import fallback_plan
from signalwise.core import (
    Decision,
    EventCode,
    LaneState,
    Observation,
    SignalStatus,
    SourceHealth,
    read_events,
)
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

GAP, MAX, FORCE = EventCode.PHASE_GAP_OUT, EventCode.PHASE_MAX_OUT, EventCode.PHASE_FORCE_OFF
TERMINATIONS = {int(GAP), int(MAX), int(FORCE)}
SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]


def observed(inter, counts: dict[str, int], phase: int = 0, elapsed_s: float = 30.0) -> Observation:
    """Every lane of `inter` observed, `counts` vehicles on the named ones (halting), none elsewhere."""
    lanes = {lane: LaneState(counts.get(lane, 0), counts.get(lane, 0), 0.0, 0.0, 0.0)
             for lane in (*inter.in_lanes, *inter.out_lanes)}
    return Observation(100.0, inter.id, lanes, signal=SignalStatus(phase, "green", elapsed_s),
                       sources=(SourceHealth("lanes"),))


# -- the controllers say how their changes end ------------------------------------------------

def test_a_fixed_plan_and_the_webster_fallback_force_their_greens_off():
    inter = make_intersection()
    end_of_split = observed(inter, {}, phase=0, elapsed_s=20.0)
    assert PlanFollower(inter, [20.0, 25.0, 8.0], "fixed").decide(end_of_split).termination == FORCE
    fb = fallback_plan(inter, ControlContext())
    assert fb.decide(observed(inter, {}, 0, elapsed_s=200.0)).termination == FORCE


def test_actuated_gaps_out_once_its_passage_timer_has_expired():
    inter = make_intersection()
    ctl = ActuatedController(inter)
    waiting = observed(inter, {"e_in_0": 3}, phase=0)  # phase 1 called, phase 0 has no detectors: gap
    d = ctl.decide(waiting)
    assert d.phase_index == 1 and d.termination == GAP


@pytest.mark.parametrize(("counts", "expected"), [
    ({"e_in_0": 9}, GAP),  # nothing on phase 0's lanes (n_in_0, s_in_0): its demand is gone
    ({"e_in_0": 9, "s_in_0": 1}, FORCE),  # a vehicle still on one of them: forced off
    ({"e_in_0": 9, "s_out_0": 2}, GAP),  # vehicles on its outgoing lanes are no demand for it
])
def test_max_pressure_gaps_out_only_an_empty_phase(counts, expected):
    inter = make_intersection()
    d = MaxPressureController(inter, measure="count").decide(observed(inter, counts, phase=0))
    assert d.phase_index == 1 and d.termination == expected


@pytest.mark.parametrize(("zone_m", "expected"), [(50.0, FORCE), (0.0, GAP)])
def test_a_queue_behind_a_stop_line_lane_within_the_zone_is_demand(zone_m, expected):
    """A stop-line lane shorter than a car (ingolstadt7's 0.9 m entry) holds no queue: it stands on the lane
    behind, which the controller measures within its zone; ending that green is a force-off, not a gap-out."""
    inter = make_intersection()
    o = observed(inter, {"e_in_0": 9})
    o.lanes["n_up_0"] = LaneState(4, 4, 0.0, 0.0, 0.0)  # 4 vehicles queued 20 m behind n_in_0's stop line
    ctl = MaxPressureController(inter, measure="count", zone_m=zone_m, lane_upstream={"n_in_0": (("n_up_0", 20.0),)})
    d = ctl.decide(o)
    assert d.phase_index == 1 and d.termination == expected
    policy = PhaseScoreController(inter, [1.0 if f == "in_halt" else 0.0 for f in FEATURES], zone_m=zone_m,
                                  lane_upstream={"n_in_0": (("n_up_0", 20.0),)})
    assert policy.decide(o).termination == expected
    del o.lanes["n_up_0"]  # a zone lane not observed is empty to the controller, and so to its log
    assert ctl.decide(o).termination == GAP and policy.decide(o).termination == GAP


def test_a_lane_not_observed_is_no_demand_gone():
    inter = make_intersection()
    o = observed(inter, {"e_in_0": 9})
    del o.lanes["n_in_0"]
    assert not demand_gone(inter.phases[0].in_lanes, o)
    assert MaxPressureController(inter, measure="count").decide(o).termination == FORCE
    assert not demand_gone((), o)  # a phase of pedestrians only: nothing seen to have gone


def test_the_phase_score_policy_follows_the_same_rule():
    inter = make_intersection()
    ctl = PhaseScoreController(inter, [1.0 if f == "in_halt" else 0.0 for f in FEATURES])  # the longest queue
    assert ctl.decide(observed(inter, {"e_in_0": 9})).termination == GAP
    assert ctl.decide(observed(inter, {"e_in_0": 9, "n_in_0": 2})).termination == FORCE
    assert ctl.decide(observed(inter, {"n_in_0": 9})).termination is None  # a hold ends nothing


def test_a_q_table_controller_follows_the_same_rule():
    inter = make_intersection()
    f = StateFeatures(inter)
    table = QTable(f.encoding, len(inter.phases))
    ctl = QLController(inter, f, table)
    for counts, expected in (({"e_in_0": 9}, GAP), ({"e_in_0": 9, "n_in_0": 1}, FORCE)):
        o = observed(inter, counts)
        s = f.state(o)
        table.visits[s] = [5, 5, 5]
        table.q[s] = [-5.0, -1.0, -5.0]  # phase 1 best
        d = ctl.decide(o)
        assert d.phase_index == 1 and d.termination == expected


# -- the shield logs what it was told, and its own reasons --------------------------------------

def _ended_by(decision: Decision, confidence_threshold: float = 0.5) -> list[int]:
    """Codes logged when the shield ends phase 1's green at 10 s for `decision` (min green 5 s, max 40 s)."""
    inter = make_intersection()
    sh = IntersectionShield(inter, PlanFollower(inter, [20.0, 25.0, 10.0], "fb"),
                            shield_config(confidence_threshold=confidence_threshold))
    for t in range(1, 31):
        if t == 10:
            sh.propose(decision)
        sh.tick(float(t))
    return [e.event_code for e in sh.events if e.event_code in TERMINATIONS]


@pytest.mark.parametrize("stated", [GAP, MAX, FORCE, 4, 6])
def test_a_change_made_as_asked_logs_the_termination_the_controller_states(stated):
    assert _ended_by(Decision("X", 2, "t", 1.0, stated)) == [int(stated)]


@pytest.mark.parametrize("stated", [None, 7, 1, "gap", 4.0, True, [4]])
def test_no_termination_or_one_that_is_no_greens_end_is_a_force_off(stated):
    assert _ended_by(Decision("X", 2, "t", 1.0, stated)) == [int(FORCE)]


def test_the_fallback_plan_forces_off_whatever_the_controller_said():
    # confidence 0.1: the plan (20 s for phase 1) ends the green at 20 s, not the gap-out asked at 10 s
    assert _ended_by(Decision("X", 2, "t", 0.1, GAP)) == [int(FORCE)]


def test_a_max_out_stays_a_max_out_and_a_hold_logs_nothing():
    assert _ended_by(Decision("X", None, "t", 1.0, GAP)) == []  # 30 s: before the maximum
    inter = make_intersection()
    sh = IntersectionShield(inter, PlanFollower(inter, [20.0, 25.0, 10.0], "fb"), shield_config())
    for t in range(1, 60):
        sh.propose(Decision("X", None, "t", 1.0, GAP))
        sh.tick(float(t))
    assert [e.event_code for e in sh.events if e.event_code in TERMINATIONS][0] == MAX


# -- real runs --------------------------------------------------------------------------------

def _events(run_dir: Path) -> list[tuple[float, str, int, int]]:
    return [(round(e.time_s, 3), e.device_id, e.event_code, e.parameter) for e in read_events(run_dir / "events.csv")]


def _interventions(run_dir: Path) -> set[tuple[float, str]]:
    """(time, device) of the shield's own force-offs: cycle bound and preemption."""
    with open(run_dir / "interventions.csv") as f:
        return {(round(float(r["time_s"]), 3), r["device_id"]) for r in csv.DictReader(f) if r["rule"] in ("cycle_max", "preempt")}


def _run(tmp_path_factory, name: str, controllers=None, **cfg) -> Path:
    run_dir = tmp_path_factory.mktemp(name) / "run"
    r = execute_run(RunConfig(record="lean", emissions=False, **cfg), run_dir, controllers=controllers)
    assert r.metrics["safety"]["violations"] == 0
    return run_dir


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    return _run(tmp_path_factory, "fixed", scenario="single", controller="fixed", duration_s=600, seed=2)


def test_a_fixed_time_run_forces_off_its_split_ends_and_never_gaps_out(fixed_run):
    codes = Counter(code for _, _, code, _ in _events(fixed_run) if code in TERMINATIONS)
    greens = sum(1 for _, _, code, _ in _events(fixed_run) if code == EventCode.PHASE_BEGIN_YELLOW)
    assert codes[int(GAP)] == 0 and codes[int(FORCE)] > 10
    assert sum(codes.values()) == greens  # every green that ended says why


def test_signalwise_atspm_reports_a_fixed_run_as_force_offs(fixed_run, tmp_path):
    r = subprocess.run(SIGNALWISE + ["atspm", "--run", str(fixed_run), "--out", str(tmp_path), "--no-charts"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    terms = pd.read_csv(tmp_path / "terminations.csv").groupby("PerformanceMeasure")["Total"].sum()
    assert terms.get("ForceOff", 0) > 10 and terms.get("GapOut", 0) == 0
    assert "GapOut" not in set(pd.read_csv(tmp_path / "split_monitor.csv")["Termination"])


def test_an_actuated_run_on_low_demand_gaps_out(tmp_path_factory):
    run = _run(tmp_path_factory, "actuated", scenario="single", controller="actuated", duration_s=600, seed=2,
               demand_scale=0.3)
    events, shield_own = _events(run), _interventions(run)
    codes = Counter(code for _, _, code, _ in events if code in TERMINATIONS)
    assert codes[int(GAP)] > 10
    # its own changes are all gap-outs: a force-off is the shield's (cycle bound or preemption)
    assert all((t, dev) in shield_own for t, dev, code, _ in events if code == FORCE)


class Recorder:
    """Max-pressure as the registry makes it, remembering each change it proposed and on what lanes."""

    def __init__(self, inter, ctx, strip: bool = False):
        self._ctl = make("max-pressure", inter, ctx)
        self.inter, self.strip = inter, strip
        self.proposed: list[tuple[float, int, int | None, bool]] = []  # time, phase ended, termination, empty

    def __getattr__(self, name):
        return getattr(self._ctl, name)

    def decide(self, obs):
        d = self._ctl.decide(obs)
        if d.phase_index is not None and obs.signal is not None:
            ending = obs.signal.phase_index
            lanes = self.inter.phases[ending].in_lanes
            empty = bool(lanes) and all(lane in obs.lanes and obs.lanes[lane].count_veh == 0 for lane in lanes)
            self.proposed.append((obs.time_s, ending, d.termination, empty))
        if self.strip:
            d = Decision(d.intersection_id, d.phase_index, d.proposed_by, d.confidence)
        return d


def _recorded_run(tmp_path_factory, name: str, strip: bool):
    made: dict[str, Recorder] = {}

    def controllers(inter, ctx):
        made[inter.id] = Recorder(inter, ctx, strip)
        return made[inter.id]

    run = _run(tmp_path_factory, name, controllers, scenario="corridor", controller="max-pressure",
               duration_s=600, seed=4)
    return run, made


@pytest.fixture(scope="module")
def max_pressure_run(tmp_path_factory):
    return _recorded_run(tmp_path_factory, "mp", strip=False)


def test_max_pressure_gaps_out_an_empty_phase_and_forces_off_one_with_vehicles(max_pressure_run):
    run, made = max_pressure_run
    events, shield_own = _events(run), _interventions(run)
    codes = Counter(code for _, _, code, _ in events if code in TERMINATIONS)
    assert codes[int(GAP)] > 0 and codes[int(FORCE)] > 0
    checked = 0
    for t, dev, code, phase in events:
        if code not in (GAP, FORCE) or (t, dev) in shield_own:
            continue
        # the change carried out is the latest one proposed away from this phase
        asked = [p for p in made[dev].proposed if p[0] <= t + 1e-9 and p[1] == phase - 1]
        assert asked, f"{dev} phase {phase} ended at {t} with no proposal"
        _, _, termination, empty = asked[-1]
        assert termination == code and empty == (code == GAP), (t, dev, code, asked[-1])
        checked += 1
    assert checked > 10


def test_the_stated_termination_changes_no_decision(max_pressure_run, tmp_path_factory):
    run, _ = max_pressure_run
    stripped, _ = _recorded_run(tmp_path_factory, "mp-stripped", strip=True)
    ours, theirs = _events(run), _events(stripped)
    assert [e for e in ours if e[2] not in TERMINATIONS] == [e for e in theirs if e[2] not in TERMINATIONS]
    ends = [(t, d, p) for t, d, c, p in ours if c in TERMINATIONS]
    assert ends == [(t, d, p) for t, d, c, p in theirs if c in TERMINATIONS]
    # without a stated termination every change made as asked is a force-off
    assert not any(c == GAP for _, _, c, _ in theirs)
