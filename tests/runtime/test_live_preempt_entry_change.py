"""A run-time shield change to `preempt_entry_min_green_s` is the entry minimum the signals use from then on (it
was recorded as applied while every shield kept the value it started with). A real live run of `single`
in-process, changed through the runtime's own change path."""

from __future__ import annotations

import threading

from support.waiting import until

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_changed_preemption_entry_minimum_is_the_one_every_shield_uses(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="single"),
                     LiveOptions(speed=20.0, duration_s=3600, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    try:
        assert until(lambda: rt.running, 20)
        shields = list(rt.stepper.shields.values())
        assert shields and all(sh._entry_min_green_s == 5.0 for sh in shields)  # the default
        entry = rt.submit(ch.ShieldChange(shield={"preempt_entry_min_green_s": 12}), who="ops")
        assert entry["result"] == "applied"
        assert all(sh._entry_min_green_s == 12.0 for sh in rt.stepper.shields.values())
    finally:
        rt.stop()
        th.join(30)
