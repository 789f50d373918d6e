"""Why the shield's fallback served, said where the fallback share is: a lane occupancy SUMO rounds to just below 0
is no unhealthy data (a correct controller reading `full` lanes fell back to Webster at two signals of
resco:cologne8 for -2.8e-19), a value far outside 0..1 still is, and each kind of reason the fallback took over
for is one line under the run's table and one entry of metrics.json's `fallback_reasons`.

Real `signalwise run`s with controllers written for the test (the first is a contributor's "longest queue first").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.core.health import lanes_fault
from signalwise.core.types import Intervention, LaneState

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
LONGEST_QUEUE = '''\
"""Longest queue first, with a 20 s hold after each switch; reads every lane in full."""
from signalwise.core import Decision, EventCode


class LQF20:
    observation = "full"
    wants_detectors = True

    def __init__(self, inter):
        self.inter = inter
        self.name = "lqf20"
        self.period_s = 2.0
        self.hold_s = 20.0
        self.occupancy = open("occupancy.txt", "a")

    def decide(self, obs):
        self.occupancy.write(f"{min((s.occupancy for s in obs.lanes.values()), default=0.0)!r} "
                             f"{max((s.occupancy for s in obs.lanes.values()), default=0.0)!r}\\n")
        now = obs.signal.phase_index
        if obs.signal.elapsed_s < self.hold_s:
            return Decision(self.inter.id, None, self.name)
        q = [sum(obs.lanes[l].queue_veh for l in p.in_lanes if l in obs.lanes) for p in self.inter.phases]
        best = max(range(len(q)), key=lambda p: (q[p], p == now))
        if best == now:
            return Decision(self.inter.id, None, self.name)
        term = EventCode.PHASE_GAP_OUT if q[now] == 0 else EventCode.PHASE_FORCE_OFF
        return Decision(self.inter.id, best, self.name, termination=term)


def make(inter, ctx):
    return LQF20(inter)
'''
UNSURE = '''\
from signalwise.core import Decision


class Unsure:
    """Holds the green; unsure of itself (confidence 0.2) for the first minute and from 200 s to 230 s."""

    name = "unsure"
    observation = "counts"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter):
        self.inter = inter

    def decide(self, obs):
        unsure = obs.time_s < 60 or 200 <= obs.time_s < 230
        return Decision(self.inter.id, None, self.name, confidence=0.2 if unsure else 1.0)


def make(inter, ctx):
    return Unsure(inter)
'''


def sw(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_sumos_rounding_just_outside_0_1_is_the_bound_and_a_real_fault_is_not():
    from signalwise.sim.backend import sumo_occupancy

    assert sumo_occupancy(-2.83295e-17) == 0.0  # SUMO's percent: -2.8e-19 as a share, seen on resco:cologne8
    assert sumo_occupancy(100.0 + 1e-12) == 1.0
    assert sumo_occupancy(37.5) == 0.375
    far = sumo_occupancy(-5.0)
    assert far == -0.05
    assert lanes_fault({"E_0": LaneState(0, 0, far, 0.0, 0.0)}) == "lane E_0: occupancy -0.05 outside 0..1"


@pytest.mark.slow
def test_a_controller_reading_full_lanes_on_cologne8_never_falls_back_for_sumos_rounding(tmp_path):
    """`signalwise run -s resco:cologne8 -c py:lqf.py:make --seed 2 --duration 900`: SUMO read a lane's occupancy
    as -2.8e-19 at t=25872, and two signals ran Webster for about a minute."""
    (tmp_path / "lqf.py").write_text(LONGEST_QUEUE)
    done = sw("run", "-s", "resco:cologne8", "-c", "py:lqf.py:make", "--seed", "2", "--duration", "900",
              "--record", "lean", "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["network"]["fallback_fraction"] == 0, metrics.get("fallback_reasons")
    assert "fallback" not in metrics["shield_interventions"]
    seen = [tuple(map(float, line.split())) for line in (tmp_path / "occupancy.txt").read_text().splitlines()]
    assert len(seen) > 1000 and all(0.0 <= low <= high <= 1.0 for low, high in seen)


def test_each_kind_of_reason_the_fallback_took_over_for_is_one_line_under_the_table(tmp_path):
    (tmp_path / "unsure.py").write_text(UNSURE)
    done = sw("run", "-s", "single", "-c", "py:unsure.py:make", "--duration", "300", "--record", "lean",
              "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < metrics["network"]["fallback_fraction"] < 0.99
    (reason,) = metrics["fallback_reasons"]
    assert reason["reason"] == "confidence below the threshold" and reason["count"] == 2  # from 1 s and from 201 s
    assert reason["signals"] == ["C"] and reason["first_time_s"] == 1.0
    assert reason["first_detail"] == "confidence 0.20 below 0.50"
    said = [line for line in done.stdout.splitlines() if line.startswith("warning: the shield's Webster fallback")]
    assert said == [f"warning: the shield's Webster fallback took over 2 times for: confidence below the threshold "
                    f"(signal C; first at C t=1: confidence 0.20 below 0.50); these figures are partly the "
                    f"fallback's (fallback share {metrics['network']['fallback_fraction']:.1%}, over the signals; "
                    f"interventions.csv lists each time)"]


def test_reasons_differing_in_a_lane_or_a_value_are_one_kind_and_each_source_its_own():
    from signalwise.runtime.run import fallback_reasons

    said = [Intervention(10.0, "A", "fallback", "observation not usable: lanes unhealthy: lane a_0: occupancy -0.5 "
                                                "outside 0..1"),
            Intervention(12.0, "A", "fallback_end", "controller trusted again"),
            Intervention(30.0, "B", "fallback", "observation not usable: lanes unhealthy: lane b_1: queue -3 / count "
                                                "2 vehicles out of range"),
            Intervention(40.0, "B", "fallback", "observation not usable: camera zone 2 stale: 12 s old (max 5 s)"),
            Intervention(50.0, "A", "fallback", "controller failed")]
    kinds = fallback_reasons(said)
    assert [(k["reason"], k["count"], k["signals"]) for k in kinds] == [
        ("observation not usable: lanes unhealthy", 2, ["A", "B"]),
        ("observation not usable: camera zone 2 stale", 1, ["B"]),
        ("controller failed", 1, ["A"])]
