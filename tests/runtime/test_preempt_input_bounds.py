"""The preemption input's bounds (review findings on `runtime.live.preempt`).

Found in review: every `off` (even for calls never placed) was remembered for the whole run (200,000 offs, about
50 MB); 1,000 calls in force over all signals were the only bound, so one sender's junk calls at one signal made a
real call get 409 `too_many`; MQTT call messages had no burst bound; any key holding `preempt` (or any MQTT
publisher) could end or redirect another sender's call by reusing its call id; a call lapsed 20 s after its last
`on` on the run's clock, so at --speed 10 a sender repeating every 5 s (as the docs say) lost its call between
repeats; and `--mqtt` always subscribed to `<prefix>/+/preempt`, so whoever could publish detector data could
preempt. Here the real input of a real live run (`single`, no simulator, or SUMO behind a real loopback server)
takes the calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from support.loopback import serving_live
from support.waiting import until

from signalwise.runtime.live.preempt import (
    CALL_LAPSE_S,
    MAX_CALLS_PER_SENDER_AT_SIGNAL,
    MQTT_BURST,
    CallRefused,
    PreemptRequest,
    take_mqtt,
)
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

PREEMPT = "/api/v1/live/preempt"


@pytest.fixture
def field_run(tmp_path):
    """An unpaced live run on `single` without a simulator (its input and shields real), stopped after."""
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="single"), LiveOptions(speed=None, duration_s=3600, field="none",
                                                               sink="shadow"), tmp_path / "run")
    rt.open()
    try:
        yield rt
    finally:
        rt.stop()
        rt.run()  # ends at once: evidence written


def _on(call_id: str, approach: str = "west") -> PreemptRequest:
    return PreemptRequest(intersection_id="C", approach=approach, state="on", call_id=call_id)


def _off(call_id: str) -> PreemptRequest:
    return PreemptRequest(intersection_id="C", state="off", call_id=call_id)


def test_offs_for_calls_never_placed_do_not_grow_the_runs_memory(field_run):
    calls = field_run.preempt
    for i in range(2_000):  # warm up: the first allocations of the dictionaries and counters
        calls.take(_off(f"warm-{i}"), via="rest", by="flood")
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(20_000):
            calls.take(_off(f"junk-{i}"), via="rest", by="flood")
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")
                    if s.traceback[0].filename.endswith("preempt.py"))
    finally:
        tracemalloc.stop()
    # 20,000 remembered offs are MBs (the old input: about 2.4 MB here); the bounded memory is a few KB
    assert grown < 200_000, grown
    # an `on` sent before an `off` that is remembered is still refused: the bound keeps the latest
    calls.take(PreemptRequest(intersection_id="C", state="off", call_id="e1", sim_time_s=0.0), via="rest", by="x")
    with pytest.raises(CallRefused) as late:
        calls.take(PreemptRequest(intersection_id="C", state="on", call_id="e1", approach="west", sim_time_s=0.0),
                   via="rest", by="x")
    assert late.value.code == "late"


def test_one_senders_junk_calls_leave_room_for_another_senders_call(field_run):
    calls = field_run.preempt
    placed = 0
    for i in range(2_000):
        try:
            calls.take(_on(f"junk-{i}"), via="rest", by="prankster")
            placed += 1
        except CallRefused as exc:
            assert exc.status == 409 and exc.code == "too_many", exc.reason
            assert "this sender has" in exc.reason, exc.reason
            break
    assert placed == MAX_CALLS_PER_SENDER_AT_SIGNAL
    real = calls.take(_on("engine-7", "north"), via="rest", by="dispatch")
    assert real["placed"] is True and real["call"]["by"] == "dispatch"
    assert calls.stats()["in_force"] == MAX_CALLS_PER_SENDER_AT_SIGNAL + 1


def test_an_mqtt_flood_on_a_signals_topic_is_refused_past_its_burst_unread(field_run):
    calls = field_run.preempt
    payload = json.dumps({"intersection_id": "C", "approach": "west", "state": "on", "call_id": "m1",
                          "sim_time_s": 0.0}).encode()
    for _ in range(1_000):
        take_mqtt(calls, "signalwise/C/preempt", payload, False)
    stats = calls.stats()
    mqtt = stats["by_transport"]["mqtt"]
    assert mqtt["accepted"] <= MQTT_BURST + 5, mqtt  # the burst, and what the bucket refilled meanwhile
    assert mqtt["refused_by_code"]["flood"] >= 1_000 - MQTT_BURST - 5, mqtt
    rows = [r for r in calls.drain_rows() if r[3] == "refused"]
    assert len(rows) == 1 and rows[0][9].startswith("flood: C: more than"), rows  # one row per burst, not each
    # another topic's signal (unknown here) has its own bucket: C's flood does not spend it
    take_mqtt(calls, "signalwise/Z9/preempt", payload.replace(b'"C"', b'"Z9"'), False)
    assert calls.stats()["by_transport"]["mqtt"]["refused_by_code"].get("unknown_signal") == 1


def test_the_input_and_the_shield_serve_a_link_with_one_phase_rule(field_run):
    from signalwise.control.preempt_phase import phase_serving_link

    inter = field_run.stepper.by_id["C"]
    shield = field_run.stepper.shields["C"]
    for link in (-1, inter.n_links, *range(inter.n_links)):
        assert phase_serving_link(inter, link) == shield._phase_serving_link(link)
    assert phase_serving_link(inter, -1) is None and phase_serving_link(inter, inter.n_links) is None
    # the input's answer for every approach is the phase the shield serves its link with
    for approach in ("north", "south", "east", "west"):
        placed = field_run.preempt.take(_on(f"probe-{approach}", approach), via="rest", by="t")["call"]
        link = next(c for c in field_run.preempt._calls.values() if c.call_id == f"probe-{approach}").target.link_index
        assert placed["phase"] == shield._phase_serving_link(link) + 1
        field_run.preempt.take(_off(f"probe-{approach}"), via="rest", by="t")


def test_mqtt_preempt_without_mqtt_is_refused_before_anything_starts(tmp_path):
    cli = str(Path(sys.executable).with_name("signalwise"))
    done = subprocess.run([cli, "live", "--scenario", "single", "--field", "none", "--mqtt-preempt", "--out",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--mqtt-preempt takes preemption calls from an MQTT broker: give --mqtt HOST:PORT too" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_at_speed_10_a_call_repeated_every_5_s_holds_only_its_sender_ends_it_and_it_lapses_on_the_wall_clock(
        tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = get_engine(db)
    _i, dispatch = create_key(engine, "dispatch", ["preempt"])
    _i, other = create_key(engine, "other-agency", ["read", "operate"])
    with serving_live(Settings(database_url=db), tmp_path / "live", speed=10.0) as (client, rt):
        def post(body, key=dispatch):
            return client.post(PREEMPT, json=body, headers={"X-API-Key": key})

        assert until(lambda: rt.stepper.t > 3, 30)
        on = {"intersection_id": "C", "approach": "west", "state": "on", "call_id": "engine-7"}
        placed = post(on)
        assert placed.status_code == 200 and placed.json()["placed"] is True, placed.text
        started = rt.stepper.t
        for _ in range(3):  # every 5 s of wall time, as the docs say: 50 simulated seconds apart at --speed 10
            time.sleep(5)
            again = post(on)
            assert again.status_code == 200 and again.json()["placed"] is False, again.text
        assert rt.stepper.t - started > 2 * CALL_LAPSE_S  # the run's clock passed the lapse time twice over
        listed = client.get(PREEMPT, headers={"X-API-Key": other}).json()
        assert [c["call_id"] for c in listed["calls"]] == ["engine-7"], listed
        assert 0 < listed["calls"][0]["lapses_in_s"] <= CALL_LAPSE_S and listed["counts"]["lapsed"] == 0, listed

        # another sender can neither end nor redirect it
        for body in ({"intersection_id": "C", "state": "off", "call_id": "engine-7"},
                     {**on, "approach": "north"}):
            refused = post(body, other)
            assert refused.status_code == 409, refused.text
            assert "placed by another sender (dispatch, via rest)" in refused.json()["message"], refused.text
        assert [c["approach"] for c in client.get(PREEMPT, headers={"X-API-Key": other}).json()["calls"]] \
            == ["west"]

        # not repeated any more: it lapses CALL_LAPSE_S of wall time after its last `on`
        last_on = time.monotonic()
        assert until(lambda: rt.preempt.stats()["lapsed"] == 1, CALL_LAPSE_S + 15)
        quiet = time.monotonic() - last_on
        assert CALL_LAPSE_S - 0.5 <= quiet <= CALL_LAPSE_S + 5, quiet
        codes = rt.preempt.stats()["by_transport"]["rest"]["refused_by_code"]
        assert codes == {"other_sender": 2}, codes


def test_only_a_calls_sender_ends_or_redirects_it(field_run):
    calls = field_run.preempt
    calls.take(_on("engine-7"), via="rest", by="dispatch", sender="key-1")
    for req in (_off("engine-7"), _on("engine-7", "north")):
        with pytest.raises(CallRefused) as refused:
            calls.take(req, via="rest", by="dispatch", sender="key-2")  # another key of the same name
        assert refused.value.code == "other_sender" and refused.value.status == 409
    assert [(c["call_id"], c["approach"]) for c in calls.active()] == [("engine-7", "west")]
    assert calls.take(_off("engine-7"), via="rest", by="dispatch", sender="key-1")["call"]["call_id"] == "engine-7"
    assert calls.active() == []




@pytest.mark.slow
def test_an_mqtt_feed_takes_no_calls_unless_the_run_opts_in(tmp_path):
    from support.mqtt import broker_unavailable_reason, feed_live_on_own_prefix, live_status

    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)

    with feed_live_on_own_prefix(tmp_path, "--speed", "5") as (_proc, base, prefix, pub):  # no --mqtt-preempt
        t = live_status(base)["sim_time_s"]
        call = {"intersection_id": "J2", "approach": "west", "state": "on", "call_id": "x", "sim_time_s": t}
        pub.publish(f"{prefix}/J2/preempt", json.dumps(call), qos=1).wait_for_publish(5)
        # published after the call by the same client: once it is in, the call had its chance to be
        detector = {"device_id": "J1", "channel": 1, "event": "on", "sim_time_s": t}
        pub.publish(f"{prefix}/J1/detectors", json.dumps(detector), qos=1).wait_for_publish(5)
        assert until(lambda: live_status(base)["feeds"]["mqtt"]["accepted"] == 1, 15), live_status(base)["feeds"]
        counts = live_status(base)["feeds"]["preempt"]
        assert (counts["accepted"], counts["refused"], counts["placed"]) == (0, 0, 0), counts
