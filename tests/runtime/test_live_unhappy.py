"""What an operator meets when things go wrong in a live run: real SUMO, a real broker, no stand-ins.

- a shield change whose numbers come as text is taken as numbers (it used to be stored as sent and
  end the loop with a TypeError, then end every restart of the corridor, which replayed it);
- a change to a run that has ended, or the end of an override that is not in force, is refused with its reason;
- a simulator lost again while the runtime recovers from a first crash is started once more;
- the first tick is not late by the time the API took to start (a false `pacing_lateness` alert);
- a feed attached after `open()` (by a program embedding the runtime) refuses a `sim_time_s` from the run's future;
- a detector event delivered twice is logged once;
- an MQTT broker that is down when the run starts is reported, and so is its return.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest
from support.mqtt import broker_unavailable_reason
from support.waiting import until

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import EventCode
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.feeds import DetectorFeed
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def _runtime(tmp_path, name="live", **opts) -> LiveRuntime:
    defaults = {"speed": None, "duration_s": 300, "in_process": True, "state_every_s": 60}
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"), LiveOptions(**{**defaults, **opts}),
                     tmp_path / name)
    rt.open()
    return rt


def _run_in_thread(rt: LiveRuntime) -> threading.Thread:
    errors: list[BaseException] = []

    def go():
        try:
            rt.run()
        except BaseException as exc:  # noqa: BLE001 - the test reads the run's status
            errors.append(exc)

    th = threading.Thread(target=go, daemon=True)
    th.errors = errors
    th.start()
    return th


def _until(condition, timeout_s=10.0) -> bool:
    return until(condition, timeout_s, every_s=0.01)


# ---------------------------------------------------------------------------
# changes
# ---------------------------------------------------------------------------


def test_a_shield_change_with_numbers_as_text_is_taken_as_numbers_and_the_run_goes_on(tmp_path):
    rt = _runtime(tmp_path, "first", speed=30.0, duration_s=40)  # after the change at 5 s: 35 s of shielded ticks
    th = _run_in_thread(rt)
    assert _until(lambda: rt.running and rt.stepper.t > 5)
    entry = rt.submit(ch.ShieldChange(shield={"confidence_threshold": "0.7", "max_observation_age_s": "20"}),
                      who="ops")
    assert entry["result"] == "applied"
    th.join(60)
    assert not th.errors and rt.status()["status"] == "complete"
    assert rt.cfg.shield.confidence_threshold == 0.7 and isinstance(rt.cfg.shield.max_observation_age_s, float)
    assert all(sh.cfg.confidence_threshold == 0.7 for sh in rt.stepper.shields.values())
    # the corridor's next runtime replays the change (kept as sent) and runs as well
    second = _runtime(tmp_path, "second", duration_s=60)
    assert [c["kind"] for c in second.changes if c.get("replayed")] == ["shield"]
    second.run()
    assert second.status()["status"] == "complete" and second.cfg.shield.confidence_threshold == 0.7


def test_a_change_to_a_run_that_has_ended_is_refused(tmp_path):
    rt = _runtime(tmp_path, duration_s=30)
    rt.run()
    assert rt.status()["status"] == "complete"
    before = list(rt.changes)
    for change in (ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=60),
                   ch.ControllerChange(controller="fixed"), ch.TimingChange(timing={"min_green_s": 8})):
        with pytest.raises(ch.ChangeRefused, match=r"the live run has ended \(complete\)"):
            rt.submit(change, who="ops")
    assert rt.changes == before and not rt.overrides
    assert not rt.site_changes_file.exists()  # nothing lasting was kept for the next runtime either


def test_ending_an_override_that_is_not_in_force_is_refused(tmp_path):
    rt = _runtime(tmp_path, duration_s=30)
    with pytest.raises(ch.ChangeRefused, match=r"no override in force at J3 \(overrides in force: none\)"):
        rt.submit(ch.CancelOverrideChange(intersection_id="J3"))
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=60))
    with pytest.raises(ch.ChangeRefused, match=r"no override in force at J3 \(overrides in force: J2\)"):
        rt.submit(ch.CancelOverrideChange(intersection_id="J3"))
    assert rt.submit(ch.CancelOverrideChange(intersection_id="J2"))["result"] == "applied"
    rt.run()


# ---------------------------------------------------------------------------
# recovery
# ---------------------------------------------------------------------------


def test_a_simulator_lost_again_while_recovering_is_started_once_more(tmp_path):
    """The first crash: the worker is SIGKILLed at t=60. The process started to recover from it is SIGKILLed too,
    as soon as SUMO has started in it: the runtime starts another and the run completes, safely."""
    rt = _runtime(tmp_path, duration_s=150, in_process=False, state_every_s=30)
    killed: list[int] = []
    original_factory = rt._backend_factory

    def factory():
        cls = original_factory()

        def make(opts):
            backend = cls(opts)
            if opts.load_state is not None and len(killed) == 1:  # the first process started to recover
                start = backend.start

                def start_then_die():
                    start()
                    killed.append(backend.pid)
                    os.kill(backend.pid, signal.SIGKILL)
                backend.start = start_then_die
            return backend
        return make

    rt._backend_factory = factory
    th = _run_in_thread(rt)
    assert _until(lambda: rt.stepper.t >= 60, 60)
    killed.append(rt.field.backend.pid)
    os.kill(killed[0], signal.SIGKILL)
    th.join(120)
    assert not th.errors, th.errors
    assert len(killed) == 2 and rt.status()["status"] == "complete"
    assert rt.restarts == 1 and len(rt.recoveries) == 1
    assert audit_run(rt.run_dir).ok


# ---------------------------------------------------------------------------
# pacing
# ---------------------------------------------------------------------------


def test_the_time_between_open_and_run_is_not_counted_as_lateness(tmp_path):
    rt = _runtime(tmp_path, speed=20.0, duration_s=20)
    time.sleep(1.0)  # what `signalwise live` does between the two: the API, the feeds, the first map
    rt.run()
    assert rt.profiler.figures()["lateness"]["max_ms"] < 500


def test_ctrl_c_during_the_flush_waits_and_run_json_says_how_the_run_ended(tmp_path):
    """A second Ctrl-C landing while the run closes (here: as the simulator is closed, the flush's last step)
    must not cut the flush short: run.json is written and says the run completed. The subprocess test of
    `signalwise live` presses Ctrl-C again and again, but the flush is too short for a press to land in it
    every time; this one lands in it for certain."""
    rt = _runtime(tmp_path, duration_s=20)
    backend = rt.field.backend
    close = backend.close
    pressed: list[float] = []

    def close_with_ctrl_c_pressed():
        pressed.append(rt.stepper.t)
        signal.raise_signal(signal.SIGINT)  # delivered at once, in this (the main) thread
        close()

    backend.close = close_with_ctrl_c_pressed
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a suite run in the background ignores it
    try:
        try:
            rt.run()
        except KeyboardInterrupt:
            pytest.fail("the Ctrl-C pressed during the flush stopped it")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C stops a run again
    finally:
        signal.signal(signal.SIGINT, before)
    info = json.loads((tmp_path / "live" / "run.json").read_text())
    assert pressed == [20.0]
    assert info["status"] == "complete" and info["finished"] and info["sim_time_s"] == 20.0


# ---------------------------------------------------------------------------
# detector feeds
# ---------------------------------------------------------------------------


def test_a_feed_attached_after_open_refuses_messages_from_the_runs_future(tmp_path):
    rt = _runtime(tmp_path, duration_s=60)
    rt.feed = DetectorFeed(rt.stepper.intersections)  # attached after open(), as a program embedding the runtime may
    rt.run()
    det = rt.stepper.by_id["J1"].detectors[0]
    result = rt.feed.accept({"device_id": "J1", "channel": det.channel, "event": "on", "sim_time_s": 99999})
    assert result.accepted == 0 and result.rejected[0].code == "time"
    assert "ahead of the run's clock" in result.rejected[0].reason
    ok = rt.feed.accept({"device_id": "J1", "channel": det.channel, "event": "on", "sim_time_s": 59})
    assert ok.accepted == 1


def test_a_detector_event_delivered_twice_is_logged_once(tmp_path):
    rt = _runtime(tmp_path, duration_s=30)
    det = rt.stepper.by_id["J1"].detectors[0]
    feed = DetectorFeed(rt.stepper.intersections)
    on = {"device_id": "J1", "channel": det.channel, "event": "on", "sim_time_s": 12.0}
    off = {"device_id": "J1", "channel": det.channel, "event": "off", "sim_time_s": 13.0}
    for batch in ([on], [on], [on, off], [off]):  # QoS 1: at least once
        assert feed.accept(batch).ok
    assert [(e.time_s, e.event_code) for e in feed.drain_events()] == [
        (12.0, int(EventCode.DETECTOR_ON)), (13.0, int(EventCode.DETECTOR_OFF))]
    assert feed.stats()["repeated_events"] == 3
    # a new vehicle at the same detector later is news
    assert feed.accept([{**on, "sim_time_s": 20.0}]).accepted == 1 and len(feed.drain_events()) == 1
    rt.run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_broker_down_at_start_is_reported_and_so_is_its_return(tmp_path, caplog):
    mosquitto = shutil.which("mosquitto")
    if mosquitto is None:
        pytest.skip("no mosquitto binary to start a broker of this test's own")
    from signalwise.runtime.live.mqtt import MqttFeed

    rt = _runtime(tmp_path, duration_s=10)
    port = _free_port()
    feed = DetectorFeed(rt.stepper.intersections)
    sub = MqttFeed(feed, "127.0.0.1", port, prefix=f"signalwise-test-{uuid.uuid4().hex[:8]}", log_every_s=0.0)
    caplog.set_level(logging.WARNING, logger="signalwise.live.mqtt")
    sub.start()
    broker = None
    try:
        assert _until(lambda: sub.stats()["last_error"] is not None, 5.0), sub.stats()
        assert f"cannot connect to the broker at 127.0.0.1:{port}" in sub.stats()["last_error"]
        assert any("cannot connect to the broker" in r.getMessage() for r in caplog.records)
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert sub.wait_subscribed(15.0), sub.stats()
        assert sub.stats()["connected"]
        assert any(f"connected to 127.0.0.1:{port} again" in r.getMessage() for r in caplog.records)
    finally:
        sub.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
    rt.run()


def test_mqtt_json_nested_too_deeply_is_counted_as_garbage(tmp_path):
    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from signalwise.runtime.live.mqtt import MqttFeed

    rt = _runtime(tmp_path, duration_s=10)
    feed = DetectorFeed(rt.stepper.intersections)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, "127.0.0.1", 1883, prefix=prefix)
    sub.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        assert sub.wait_subscribed(5.0)
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        pub.publish(f"{prefix}/J1/detectors", b"[" * 100_000 + b"]" * 100_000, qos=1).wait_for_publish(5.0)
        assert _until(lambda: sub.stats()["rejected"] == 1, 5.0), sub.stats()
        assert "nested too deeply" in sub.stats()["last_error"]
        assert feed.stats()["rejected_by_code"] == {"invalid": 1}  # against the feed's health, as garbage is
    finally:
        pub.loop_stop()
        sub.stop()
    rt.run()



def test_mqtt_json_with_a_number_python_will_not_read_is_counted_as_garbage(tmp_path):
    """A channel of 5000 digits is JSON, but Python refuses to read it (ValueError, not a JSONDecodeError): it
    is refused, counted and held against J1's health like any payload that is not JSON a feed sends."""
    from support.mqtt import subscribed_feed

    rt = _runtime(tmp_path, duration_s=10)
    feed = DetectorFeed(rt.stepper.intersections, unhealthy_after=1)
    with subscribed_feed(feed) as (sub, publish):
        publish("J1", b'{"device_id": "J1", "channel": ' + b"1" * 5000 + b', "event": "on", "sim_time_s": 1}')
        assert _until(lambda: sub.stats()["rejected"] == 1, 5.0), sub.stats()
        assert "payload is not JSON a feed sends: Exceeds the limit" in sub.stats()["last_error"]
        assert feed.stats()["rejected_by_code"] == {"invalid": 1}
        assert feed.source_health("J1", 1.0).reason.startswith("1 messages in a row rejected; last: payload is not")
    rt.run()

def test_a_controller_switch_naming_no_signal_is_refused_not_applied_to_all(tmp_path):
    rt = _runtime(tmp_path, duration_s=30)
    with pytest.raises(ch.ChangeRefused, match="intersections is empty"):
        rt.submit(ch.ControllerChange(controller="fixed", intersections=[]))
    rt.run()
    assert rt.controller_spec == "max-pressure"
    assert all(c.name == "max-pressure" for c in rt.stepper.controllers.values())


def test_a_change_refused_for_waiting_too_long_is_never_applied_later(tmp_path):
    """The simulator stops answering (SIGSTOP) while a change waits for the loop: the caller is refused after its
    timeout, and when the simulator answers again the loop does not apply the change behind that refusal."""
    rt = _runtime(tmp_path, speed=20.0, duration_s=40, in_process=False)  # 20 s before the stop, about 20 after
    th = _run_in_thread(rt)
    assert _until(lambda: rt.stepper.t > 20, 30)
    pid = rt.field.backend.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)  # the loop is now waiting on the stopped process
        with pytest.raises(ch.ChangeRefused, match="did not take the change"):
            rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=600),
                      timeout_s=1.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    th.join(60)
    assert not th.errors and rt.status()["status"] == "complete"
    assert not any(c["kind"] == "override" for c in rt.changes)
    assert all(not getattr(c, "name", "").startswith("override") for c in rt.stepper.controllers.values())



def test_a_change_applied_before_the_loop_starts_is_finished_before_the_first_tick(tmp_path):
    """`signalwise live` serves its API before its loop starts: a change made then is applied on the API's
    thread. The loop must not step the signals while that change is half made (here: while the override is
    being put in place, slowed down so the two would overlap)."""
    rt = _runtime(tmp_path, duration_s=30)
    st = rt.stepper
    replace = st.replace_controller
    applying = threading.Event()
    seen: list[float] = []

    def slow_replace(tls_id, controller):
        seen.append(st.t)
        applying.set()
        time.sleep(0.5)
        replace(tls_id, controller)
        seen.append(st.t)

    st.replace_controller = slow_replace
    change = threading.Thread(target=rt.submit, args=(ch.OverrideChange(
        intersection_id="J2", action="hold", phase_number=2, duration_s=20),), daemon=True)
    change.start()
    assert applying.wait(10)
    th = _run_in_thread(rt)
    change.join(10)
    th.join(60)
    assert not th.errors, th.errors
    assert seen[0] == seen[1] == 0.0  # nothing stepped while the change was applied
    assert rt.status()["status"] == "complete" and [c["kind"] for c in rt.changes][:1] == ["override"]


def test_status_is_read_while_the_loop_starts_and_ends_overrides(tmp_path):
    """The API reads the status (and the registry the model paths) on its own threads while the loop adds and
    removes overrides: reading the live dictionary raised 'dictionary changed size during iteration' (a 500)."""
    import sys

    rt = _runtime(tmp_path, duration_s=10)
    held = ch.Override(rt.stepper.by_id["J2"], rt.stepper.controllers["J2"], "hold", 1, 100.0)
    stop = threading.Event()

    def loop_side():  # what _apply and _end_override do to the dictionary, as fast as they can
        k = 0
        while not stop.is_set():
            rt.overrides[f"J{k}"] = held
            rt.overrides.pop(f"J{k - 5}", None)
            k += 1

    errors: list[Exception] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    th = threading.Thread(target=loop_side, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                rt.status()
                rt.model_paths()
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        stop.set()
        th.join(5)
        sys.setswitchinterval(interval)
    assert not errors, f"{len(errors)} reads failed, e.g. {errors[0]}"
    rt.overrides.clear()
    rt.run()

def test_a_timing_change_cannot_leave_the_safety_profile(tmp_path):
    """`{"profile": "benchmark", ...}` used to be applied: 2 s yellows, no all-red, no pedestrian intervals, and the
    run's own audit found over a thousand violations."""
    rt = _runtime(tmp_path, duration_s=200)
    for timing in ({"profile": "benchmark"},
                   {"profile": "benchmark", "all_red_s": 0, "yellow_s": 2, "ped_intervals": False}):
        with pytest.raises(ch.ChangeRefused, match="timing.profile cannot change while the run goes on: it runs "
                                                   "'safety'"):
            rt.submit(ch.TimingChange(timing=timing))
    with pytest.raises(ch.ChangeRefused, match="in its --config file") as refused:  # live has no --timing option
        rt.submit(ch.TimingChange(timing={"profile": "benchmark"}))
    assert "--timing" not in str(refused.value)
    with pytest.raises(ch.ChangeRefused, match="yellow_s") as refused:  # and the safety profile's own limits hold
        rt.submit(ch.TimingChange(timing={"yellow_s": 2}))
    # said with the limit's source, not pointing a street's operator at the benchmark profile's rules
    assert "MUTCD 4D.26" in str(refused.value) and "benchmark" not in str(refused.value)
    assert rt.submit(ch.TimingChange(timing={"profile": "safety", "min_green_s": 8}))["result"] == "applied"
    rt.run()
    assert rt.cfg.timing.profile == "safety"
    assert audit_run(rt.run_dir).ok
