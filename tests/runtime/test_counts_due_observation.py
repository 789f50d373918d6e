"""What a user's controller that also plans on detector counts (`needs_counts_at`) is given: at the decision where
its counts are due, everything its other decisions get (its lanes at its `observation` detail, the outgoing ones
too) and the counts besides; the counts of the last complete 900 s period, empty before the first has ended (a 0
is then a period with no vehicle, never "no period yet"); and SUMO's "never" for a loop that has seen no vehicle,
as docs/controllers.md describes it.

A real `signalwise run` on `single` with a controller written for the test, which logs what each decision got.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
#: the loops' counting period (sim/detectors.py COUNT_PERIOD_S), as docs/controllers.md gives it
PERIOD_S = 900.0
CONTROLLER = '''\
import json

from signalwise.core import Decision


class Planner:
    """Reads stopped vehicles on every lane, incoming and outgoing, and wants counts every 300 s from 300 s on."""

    name = "planner"
    observation = "stopped"
    wants_detectors = True
    period_s = 10.0

    def __init__(self, inter, ctx):
        self.inter = inter
        self.needs_counts_at = ctx.begin_s + 300.0
        self.log = open("decisions.jsonl", "a")

    def decide(self, obs):
        lanes = obs.lanes
        self.log.write(json.dumps({
            "t": obs.time_s, "lanes": sorted(lanes), "stopped_none": sum(s.stopped_veh is None for s in lanes.values()),
            "counts": obs.detector_counts_veh, "idle": obs.detector_idle_s,
            "counts_due": obs.time_s >= self.needs_counts_at}) + "\\n")
        self.log.flush()
        sum(s.stopped_veh for s in lanes.values())  # what it reads: a TypeError where stopped_veh is None
        if obs.detector_counts_veh:
            self.needs_counts_at += 300.0
        return Decision(self.inter.id, None, self.name)


def make(inter, ctx):
    return Planner(inter, ctx)
'''


@pytest.fixture(scope="module")
def decisions(tmp_path_factory) -> tuple[list[dict], dict, Path]:
    where = tmp_path_factory.mktemp("counts")
    (where / "planner.py").write_text(CONTROLLER)
    done = subprocess.run([SIGNALWISE, "run", "-s", "single", "-c", "py:planner.py:make", "--duration", "1000",
                           "--record", "lean", "--run-dir", "run"], capture_output=True, text=True, cwd=where,
                          timeout=180, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (where / "decisions.jsonl").read_text().splitlines()]
    return rows, json.loads((where / "run" / "metrics.json").read_text()), where


def test_the_decision_where_counts_are_due_gets_every_lane_at_the_controllers_own_detail(decisions):
    rows, metrics, _ = decisions
    due = [r for r in rows if r["counts_due"]]
    assert len(due) > 10 and len(rows) > len(due)  # decisions of both sorts, to compare
    lanes = rows[0]["lanes"]  # its incoming and outgoing lanes, as its first decision read them
    incoming = [r for r in due if r["counts"]][0]["counts"]  # a stop bar on each incoming lane
    assert len(lanes) > len(incoming)
    assert [r["t"] for r in rows if r["lanes"] != lanes] == []  # the same lanes at every decision
    assert [r["t"] for r in rows if r["stopped_none"]] == []  # "stopped" detail at every decision
    assert metrics["network"]["controller_errors"] == 0 and metrics["network"]["fallback_fraction"] == 0


def test_counts_are_empty_until_the_first_counting_period_ends_then_hold_its_vehicles(decisions):
    rows, _, _ = decisions
    before = [r for r in rows if r["counts_due"] and r["t"] < PERIOD_S]
    after = [r for r in rows if r["counts_due"] and r["t"] >= PERIOD_S]
    assert before and after
    assert [r["t"] for r in before if r["counts"]] == []  # no period done: nothing, not a dict of zeros
    first = after[0]
    assert len(first["counts"]) == 12 and sum(first["counts"].values()) > 100  # single's stop bars, 900 s of traffic


def test_a_loop_that_has_seen_no_vehicle_reads_sumos_never(decisions):
    rows, _, _ = decisions
    first = rows[0]
    assert first["t"] == 1.0
    assert set(first["idle"].values()) == {first["t"] + 3600.0}  # docs/controllers.md: time_s + 3600
