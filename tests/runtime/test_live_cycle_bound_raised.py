"""A live timing change whose minimums need a longer cycle than the `cycle_max_s` it asks for (real SUMO,
in-process, corridor): the bound is raised, as docs/live.md#timing-revisions says, and the answer, the change
log and stderr say so, with the bound in force and why.

Found in a trial: J1 `{"min_green_s": 60, "cycle_max_s": 150}` was answered `applied` with an empty reason,
`GET /config` showed 150, and the shield ran J1 on the 266 s only signal_model.json's revision held: the
derivation's note was thrown away."""

from __future__ import annotations

import json
import logging

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_raised_cycle_bound_is_said_in_the_answer_the_change_log_and_once_on_stderr(tmp_path, caplog):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=5, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        answer = rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"min_green_s": 60,
                                                                                 "cycle_max_s": 150}), who="ops")
        other = rt.submit(ch.SignalTimingChange(intersection_id="J2", timing={"min_green_s": 12}), who="ops")
    rt.run()
    model = {d["id"]: d for d in json.loads((rt.run_dir / "signal_model.json").read_text())}
    in_force_s = model["J1"]["timing_revisions"][-1]["cycle_max_s"]
    assert in_force_s > 150.0
    assert answer["result"] == "applied" and answer["in_force"] == {"J1": {"cycle_max_s": in_force_s}}, answer
    reason = answer["reason"]
    assert f"at J1 (cycle_max_s 150 s raised to {in_force_s:g} s" in reason, reason
    assert f"minimum greens with their yellow and all-red need {in_force_s:g} s" in reason, reason
    # a change that fits its bound says nothing of one (J1's raised bound is its own values', not J2's change)
    assert other["reason"] == "" and "in_force" not in other, other
    logged = [json.loads(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]
    assert logged[0]["reason"] == reason and logged[0]["in_force"] == answer["in_force"]
    said = [r.getMessage() for r in caplog.records if "longer cycle bound" in r.getMessage()]
    assert said == [f"signal_timing change by ops: {reason}"], said
