"""An override deferred by a crosswalk phase's green says it waits for the pedestrian walk and clearance, as
docs/live.md ("Safety functions at run time") promises, not "minimum green" (real SUMO, in-process, `single`,
whose phases 1 and 3 serve its crosswalks).

Found in a trial: a hold asked during phase 1's flashing don't walk was answered `waits_for: "minimum green"`.
A crosswalk phase's minimum green is raised to its walk + clearance, so the two end at the same second, and the
shield named the pedestrians only when their interval ended strictly later."""

from __future__ import annotations

import math

from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_hold_behind_a_walk_waits_for_the_pedestrian_walk_and_clearance(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=40, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    sh = rt.stepper.shields["C"]
    timing, in_force = sh.inter.timing, sh.phase
    walk_s, clear_s = timing.ped_walk_s, timing.ped_clearance_of(in_force)
    assert walk_s > 0 and clear_s > 0, "the phase in force at start serves a crosswalk"
    # the tie the label is about: this phase's minimum green is its walk + clearance, whole seconds
    assert timing.min_green_s[in_force] == math.ceil(walk_s + clear_s)
    other = next(p.number for p in sh.inter.phases if timing.ped_clearance_of(p.index) == 0)
    answer = rt.submit(ch.OverrideChange(intersection_id="C", action="hold", phase_number=other, duration_s=30),
                       who="ops")
    rt.run()
    assert answer["shield"]["waits_for"] == "pedestrian walk and clearance", answer
    assert answer["reason"].startswith(f"deferred: phase {in_force + 1} pedestrian walk and clearance ends at t="), \
        answer["reason"]
    held_until_s = float(answer["reason"].split("ends at t=")[1].split(" s")[0])
    # the event log: the flashing don't walk ends, and the phase's yellow begins, at the second the answer gave
    events = [e for e in read_events(rt.run_dir / "events.csv") if e.device_id == "C"]
    fdw_end = next(e.time_s for e in events if e.event_code == EventCode.PED_BEGIN_DONT_WALK)
    yellow = next(e.time_s for e in events if e.event_code == EventCode.PHASE_BEGIN_YELLOW
                  and e.parameter == in_force + 1)
    assert fdw_end == yellow == held_until_s
