"""`override_served` names the second the called phase's green began, as the event log has it (real SUMO,
in-process, corridor).

Found in a trial: `phase 2 was served (green) at t=229 s` while `live_events.csv` and `signal_states.csv` had the
green at 228: the time was that of the override's next decision, a step after the shield began the green."""

from __future__ import annotations

import json
import re

from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_served_call_names_the_second_its_green_began_in_the_event_log(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=150, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    t0 = rt.stepper.t
    rt.submit(ch.OverrideChange(intersection_id="J4", action="call", phase_number=2, duration_s=140), who="ops")
    rt.run()
    changes = [json.loads(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]
    (served,) = [c for c in changes if c["kind"] == "override_served"]
    said_s = float(re.search(r"served \(green\) at t=(\d+) s", served["reason"]).group(1))
    greens = [e.time_s for e in read_events(rt.run_dir / "events.csv") if e.device_id == "J4"
              and e.event_code == EventCode.PHASE_BEGIN_GREEN and e.parameter == 2 and e.time_s > t0]
    assert greens and said_s == greens[0], (served["reason"], greens[:3])
    assert served["sim_time_s"] > said_s  # logged when the call was seen served, after its green began
