"""An override's `until t=` after a simulator recovery moves earlier by the seconds rewound, and the log says so.

An operator held J4 for 300 s (`until t=329 s`) and killed SUMO six times: the status read `until t=314 s`, then
`until t=245 s`, with nothing logged about the change. The override keeps the seconds it had left (those rewound
are signal operation that runs again), so its simulated end moves by the seconds rewound; each recovery now logs
the new end, the old one and why (docs/live.md#recovery). Real SUMO (libsumo, in-process), killed under the loop.
"""

from __future__ import annotations

import logging

from support.crashes import crash_at

from signalwise.analytics.safety_audit import audit_run
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_each_recovery_moves_the_override_end_by_the_seconds_rewound_and_logs_it(tmp_path, caplog):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=200, in_process=True, state_every_s=30), tmp_path / "live")
    rt.open()
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=1, duration_s=300), who="ops")
    seen: list[str] = []
    # the status's overrides just before each crash and just after each recovery
    crash_at(rt, [75.0, 140.0], note=lambda: seen.append(rt.status()["overrides"].get("J2")))
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        rt.run()
    assert rt.restarts == 2
    first, second = rt.recoveries
    assert first["rewound_s"] > 0 and second["rewound_s"] > 0
    end0 = 300.0  # made at t=0
    end1 = end0 - first["rewound_s"]
    end2 = end1 - second["rewound_s"]
    assert seen == [f"hold phase 1 until t={end0:.0f} s", f"hold phase 1 until t={end1:.0f} s",
                    f"hold phase 1 until t={end1:.0f} s", f"hold phase 1 until t={end2:.0f} s"], seen
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("override on ")]
    assert said == [
        f"override on J2 now until t={end1:.0f} s (was t={end0:.0f} s): the simulator was restored to "
        f"t={first['resumed_at_s']:.0f} s, and the override keeps the {end0 - first['crashed_at_s']:.0f} s it had left",
        f"override on J2 now until t={end2:.0f} s (was t={end1:.0f} s): the simulator was restored to "
        f"t={second['resumed_at_s']:.0f} s, and the override keeps the {end1 - second['crashed_at_s']:.0f} s it "
        "had left"], said
    assert audit_run(rt.run_dir).ok
