"""The `stale_data` alert says, for each signal it names, what that signal runs on meanwhile: its fallback plan only
when its shield is on it; a signal under an operator's hold is named with the hold, which reads no data.

Found in a trial: J4, held by an operator (`fallback: false` in the snapshot), was named by the alert ending
"...: its shield is on the fallback plan". Real live run of `corridor` in-process, `--field none` with no feed (every
signal's detectors silent), the alert engine `signalwise live` builds.
"""

from __future__ import annotations

import threading

from support.waiting import value_within

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.alerts import engine_from_config, load_alert_config
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_held_signal_is_named_with_its_hold_and_the_others_with_their_fallback(tmp_path):
    engine, _notifier = engine_from_config(load_alert_config(None))
    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=20.0, duration_s=3600, field="none", sink="shadow", alerts_hz=20.0),
                     tmp_path / "run", alerts=engine)
    rt.open()
    rt.submit(ch.OverrideChange(intersection_id="J1", action="hold", phase_number=1, duration_s=3000), who="ops")
    rt.submit(ch.AlertRulesChange(rules=[{"name": "stale_data", "for_s": 0}]), who="ops")
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        def named_with_what_they_run():
            stale = next((a for a in rt.alerts.active() if a.rule == "stale_data"), None)
            fallback = [tls for tls, sh in rt.stepper.shields.items() if sh.in_fallback]
            return stale if stale is not None and len(fallback) == 4 and stale.now_subjects == (
                "J1", "J2", "J3", "J4", "J5") else None

        stale = value_within(named_with_what_they_run, 30)
        assert stale, [(a.rule, a.now_message) for a in rt.alerts.active()]
        held = rt.stepper.shields["J1"]
        assert not held.in_fallback  # the hold reads no data: its shield follows it, not the fallback plan
        message = stale.now_message
        assert ("J1 (feed:detectors unhealthy: no message yet from this intersection's detectors; it runs the "
                "operator's hold phase 1 until t=3000 s, which reads no data)") in message, message
        assert ("; J2, J3 (feed:detectors unhealthy: no message yet from this intersection's detectors; its "
                "shield is on the fallback plan) and 2 more") in message, message
        assert not message.endswith("its shield is on the fallback plan"), message  # said per signal, not of all
    finally:
        rt.stop()
        loop.join(30)
