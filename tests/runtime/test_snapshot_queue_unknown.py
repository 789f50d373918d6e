"""A live snapshot says "no data" (null) for a queue nobody observes, never 0.

The trial: `signalwise live --field none --scenario corridor` with no feed posting showed every approach with
a queue of 0 and a flat 0 network queue, as if the roads were empty: `FeedField.halting_by_lane` turned the
lanes the feeds know nothing of into 0. Here a real run on detector feeds alone (no simulator): before any feed
message every approach's queue and the network's are null; once one signal's stop bars report, those approaches
have a queue (a number), the approaches nobody reports stay null, and the network's queue is the sum of the
known ones.
"""

from __future__ import annotations

import threading

from support.waiting import until

from signalwise.runtime.config import RunConfig


def test_a_feed_run_says_null_for_queues_it_has_no_observation_of(tmp_path):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=10.0, duration_s=3600.0, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        assert until(lambda: rt.snapshot.seq > 2, 20, every_s=0.05)
        snap = rt.snapshot.as_dict()
        assert snap["network_queue_veh"] is None
        assert all(q is None for s in snap["signals"] for q in s["queue_veh"].values()), snap["signals"]
        assert "queue_spillback.J1" not in rt.metrics()  # no queue known: no spillback figure either

        inter = rt.stepper.by_id["J1"]
        direction = rt.stepper.approach_direction
        stopbars = [d for d in inter.detectors if d.kind == "stopbar"]
        fed_dirs = {direction[d.lane] for d in stopbars}
        t = round(rt.stepper.t, 1)
        result = rt.feed.accept([{"device_id": "J1", "channel": d.channel, "count_veh": 2, "occupancy": 0.2,
                                  "interval_s": 2.0, "sim_time_s": t} for d in stopbars], all_or_none=True)
        assert result.ok, result

        def fed() -> bool:
            s = rt.snapshot.as_dict()
            j1 = next(v for v in s["signals"] if v["intersection_id"] == "J1")
            return all(isinstance(j1["queue_veh"].get(d), int) for d in fed_dirs)

        assert until(fed, 20, every_s=0.05), rt.snapshot.as_dict()["signals"]
        snap = rt.snapshot.as_dict()
        j1 = next(v for v in snap["signals"] if v["intersection_id"] == "J1")
        assert {d: q for d, q in j1["queue_veh"].items() if d in fed_dirs} == dict.fromkeys(fed_dirs, 0)
        others = [q for v in snap["signals"] if v["intersection_id"] != "J1" for q in v["queue_veh"].values()]
        assert others and all(q is None for q in others)
        assert snap["network_queue_veh"] == 0  # the known queues' sum: the fed approaches have none standing
    finally:
        rt.stop()
        loop.join(30)
