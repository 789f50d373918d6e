"""A live run takes preemption calls from outside: `POST /api/v1/live/preempt` and `{prefix}/{signal}/preempt` on MQTT.

Found in a trial: only simulated SUMO vehicles (vClass emergency) preempted; a fire department could not send a
call to a live run (404 on the route, no MQTT topic), and `--field none` never preempted. Here real `signalwise
live` runs on 127.0.0.1 (`--field none`, no simulator) take calls: the shield serves the called approach's phase
(events.csv 102, 105, the phase's green with 107, then 104 when the call ends), a call not sent again lapses, the
call id is in the interventions and preempt_calls.csv; a `preempt` key places calls and changes nothing else, a
`read` key places none. Over MQTT with the real Mosquitto on 127.0.0.1:1883 (skipped when it does not answer), the
same, and a retained call is refused. Beside SUMO's own emergency vehicles (`--field sumo`) a call is served too.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import signal
import time
import uuid

import httpx
import pytest
import yaml
from support.loopback import free_port, serving_live, signalwise_serving
from support.mqtt import BROKER, broker_unavailable_reason, live_status, start_feed_live, started_publisher
from support.waiting import until

from signalwise.analytics.safety_audit import audit_run
from signalwise.runtime.live.preempt import CALL_LAPSE_S, PreemptRequest
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, holds

PREEMPT = "/api/v1/live/preempt"


def test_the_preempt_scope_places_calls_and_nothing_else():
    assert holds(("preempt",), "preempt") and not holds(("preempt",), "operate") and not holds(("preempt",), "read")
    assert holds(("operate",), "preempt") and holds(("admin",), "preempt") and not holds(("read",), "preempt")
    with pytest.raises(ValueError, match="names the approach its vehicle comes from"):
        PreemptRequest(intersection_id="C", state="on", call_id="e1")
    with pytest.raises(ValueError, match="the approach or the phase, not both"):
        PreemptRequest(intersection_id="C", state="on", call_id="e1", approach="west", phase=2)
    assert PreemptRequest(intersection_id="C", state="off", call_id="e1").approach is None


def _events(run_dir) -> list[tuple[float, str, int, int]]:
    """(seconds from the log's first day's midnight, device, code, parameter) in file order."""
    rows = []
    with open(run_dir / "events.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            stamp = dt.datetime.strptime(row["TimeStamp"], "%Y-%m-%d %H:%M:%S.%f")
            day = stamp.replace(hour=0, minute=0, second=0, microsecond=0)
            rows.append(((stamp - day).total_seconds(), row["DeviceId"], int(row["EventId"]), int(row["Parameter"])))
    return rows


def _csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _served(events, device: str, placed_s: float, phase: int) -> tuple[float, float]:
    """For the call placed at `placed_s`: (time of its 107, begin dwell, time of the 104 that ends it), checking that
    102 and 105 came with the call, that the green in force at the 107 is `phase`'s, and that no other call or
    green came in between."""
    mine = [e for e in events if e[1] == device]
    start = next(i for i, e in enumerate(mine) if e[2] == 102 and e[0] >= placed_s - 0.5)
    assert abs(mine[start][0] - placed_s) <= 1.0 and mine[start][3] >= 1, mine[start]
    assert 105 in [e[2] for e in mine[start:start + 3]], mine[start:start + 3]
    dwell = next(i for i in range(start, len(mine)) if mine[i][2] == 107)
    green = [e for e in mine[:dwell + 1] if e[2] == 1][-1]
    assert green[3] == phase, f"phase {green[3]} is green at the 107, not {phase}"
    end = next(i for i in range(dwell, len(mine)) if mine[i][2] == 104)
    assert not any(e[2] == 102 for e in mine[start + 1:end]), "another call began before this one ended"
    assert not any(e[2] == 1 for e in mine[dwell + 1:end]), "another phase's green before the call ended"
    return mine[dwell][0], mine[end][0]


def _stop(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    except Exception:  # noqa: BLE001 - a run that will not stop is killed
        proc.kill()
        proc.communicate()


@pytest.mark.slow
def test_a_rest_call_preempts_a_field_run_ends_with_off_and_lapses_without_a_repeat(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = get_engine(db)
    _i, dispatch = create_key(engine, "dispatch", ["preempt"])
    _i, reader = create_key(engine, "viewer", ["read"])
    _i, ops = create_key(engine, "ops", ["read", "operate"])
    port = free_port()
    out = tmp_path / "runs"
    # a call lapses CALL_LAPSE_S of wall time after its last `on`: 100 simulated seconds at --speed 5, which the
    # default maximum dwell (60 s) would cut short; the lapse is what this run shows
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"shield": {"preempt_max_dwell_s": 180}}))
    args = ["live", "--scenario", "single", "--field", "none", "--speed", "5", "--duration", "3600", "--out",
            str(out), "--port", str(port), "--config", str(config)]
    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - the command writes to it until it ends
    with log, signalwise_serving(args, "/api/v1/live/status", port, env={"SIGNALWISE_DATABASE_URL": db},
                                 stderr=log) as proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        try:
            def post(body, key=dispatch):
                return client.post(PREEMPT, json=body, headers={"X-API-Key": key})

            def signal_c() -> dict:
                return next(s for s in client.get("/api/v1/live/snapshot").json()["signals"]
                            if s["intersection_id"] == "C")

            # who may call
            assert post({"intersection_id": "C", "approach": "west", "state": "on", "call_id": "x"},
                        reader).status_code == 403
            timing = client.put("/api/v1/live/config/timing", json={"timing": {"max_green_s": 50}},
                                headers={"X-API-Key": dispatch})
            assert timing.status_code == 403 and "lacks scope 'operate'" in timing.json()["message"], timing.text
            none_in_force = post({"intersection_id": "C", "state": "off", "call_id": "nobody"}, ops)
            assert none_in_force.status_code == 200 and none_in_force.json()["call"] is None, none_in_force.text
            # refusals, with what the signal has
            unknown = post({"intersection_id": "Z9", "approach": "west", "state": "on", "call_id": "x"})
            assert unknown.status_code == 404 and "no signal 'Z9'" in unknown.json()["message"], unknown.text
            nowhere = post({"intersection_id": "C", "approach": "up", "state": "on", "call_id": "x"})
            assert nowhere.status_code == 422, nowhere.text
            assert "its approaches are east, north, south, west" in nowhere.json()["message"], nowhere.text
            assert post({"intersection_id": "C", "phase": 9, "state": "on", "call_id": "x"}).status_code == 422
            by_phase = post({"intersection_id": "C", "phase": 1, "state": "on", "call_id": "probe"})
            assert by_phase.status_code == 200 and by_phase.json()["call"]["phase"] == 1, by_phase.text
            assert post({"intersection_id": "C", "state": "off", "call_id": "probe"}).status_code == 200

            assert until(lambda: client.get("/api/v1/live/status").json()["sim_time_s"] > 5, 30)
            placed = post({"intersection_id": "C", "approach": "west", "state": "on", "call_id": "engine-7",
                           "channel": 2})
            assert placed.status_code == 200 and placed.json()["placed"] is True, placed.text
            call = placed.json()["call"]
            assert (call["approach"], call["via"], call["by"], call["channel"]) == ("west", "rest", "dispatch", 2)
            phase = call["phase"]

            def refreshed_until(check, timeout_s: float) -> bool:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    again = post({"intersection_id": "C", "approach": "west", "state": "on", "call_id": "engine-7"})
                    assert again.status_code == 200 and again.json()["placed"] is False, again.text
                    if check():
                        return True
                    time.sleep(0.4)  # 2 simulated seconds at --speed 5: well inside the lapse time
                return False

            assert refreshed_until(lambda: (s := signal_c())["preempted"] and s["interval"] == "green"
                                   and s["phase_number"] == phase, 60), signal_c()
            assert [e["vehicle_id"] for e in signal_c()["emergency"]] == ["engine-7"]
            refreshed_until(lambda: False, 3)  # held while it is refreshed: 15 simulated seconds
            assert signal_c()["preempted"] and signal_c()["phase_number"] == phase
            ended = post({"intersection_id": "C", "state": "off", "call_id": "engine-7"})
            assert ended.status_code == 200 and ended.json()["call"]["call_id"] == "engine-7", ended.text
            assert until(lambda: not signal_c()["preempted"], 30), signal_c()

            # a call nobody repeats lapses after CALL_LAPSE_S of wall-clock time (at --speed 5, 5 x that simulated)
            lone = post({"intersection_id": "C", "approach": "north", "state": "on", "call_id": "engine-9"})
            assert lone.status_code == 200, lone.text
            other = lone.json()["call"]["phase"]
            lone_at = lone.json()["call"]["placed_s"]
            assert until(lambda: client.get(PREEMPT).json()["counts"]["lapsed"] == 1, 60), client.get(PREEMPT).json()
            assert client.get(PREEMPT).json()["calls"] == []
            counts = client.get("/api/v1/live/status").json()["feeds"]["preempt"]
            assert (counts["placed"], counts["ended"], counts["lapsed"], counts["in_force"]) == (3, 2, 1, 0), counts
            assert counts["by_transport"]["rest"]["refused_by_code"] == {"unknown_signal": 1, "unknown_approach": 1,
                                                                         "unknown_phase": 1}, counts
            metrics = client.get("/metrics").text
            assert 'signalwise_preempt_input_calls_lapsed_total 1.0' in metrics
            assert 'signalwise_preempt_input_calls_refused_total{code="unknown_signal",transport="rest"} 1.0' \
                in metrics
        finally:
            _stop(proc)
    run_dir = next(out.iterdir())
    rows = _csv(run_dir / "preempt_calls.csv")
    calls = [(r["call_id"], r["state"], r["via"], r["by"]) for r in rows if r["state"] != "refused"]
    assert calls[:2] == [("probe", "on", "rest", "dispatch"), ("probe", "off", "rest", "dispatch")], rows
    rows = [r for r in rows if r["call_id"] != "probe"]
    calls = calls[2:]
    assert calls == [("engine-7", "on", "rest", "dispatch"), ("engine-7", "off", "rest", "dispatch"),
                     ("engine-9", "on", "rest", "dispatch"), ("engine-9", "lapsed", "rest", "dispatch")], rows
    on7, off7, on9, lapsed9 = (float(r["time_s"]) for r in rows if r["state"] != "refused")
    assert CALL_LAPSE_S * 5 * 0.8 < lapsed9 - on9 <= CALL_LAPSE_S * 5 + 5.0, (on9, lapsed9)
    events = _events(run_dir)
    green_s, end_s = _served(events, "C", on7, phase)
    assert green_s < off7 and abs(end_s - off7) <= 1.0, (green_s, end_s, off7)
    _dwell9, end9 = _served(events, "C", lone_at, other)
    assert abs(end9 - lapsed9) <= 1.0, (end9, lapsed9)
    interventions = _csv(run_dir / "interventions.csv")
    assert any(r["rule"].startswith("preempt") and "engine-7" in r["detail"] for r in interventions), interventions
    report = audit_run(run_dir)  # its preemptions are explained by the calls preempt_calls.csv records
    assert report.ok, [f"{v.rule}: {v.device_id} t={v.time_s}: {v.detail}" for v in report.violations]




@pytest.mark.slow
def test_an_mqtt_call_preempts_and_a_retained_one_is_refused(tmp_path):
    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)

    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"mqtt_topic_prefix": prefix}))
    pub = started_publisher()
    topic = f"{prefix}/J2/preempt"
    # a call left on the broker (retained) before the run subscribed: delivered to it as the broker's stored copy
    old = {"intersection_id": "J2", "state": "on", "call_id": "medic-1", "approach": "west", "sim_time_s": 0}
    pub.publish(topic, json.dumps(old), qos=1, retain=True).wait_for_publish(5)
    proc, base = start_feed_live(tmp_path, BROKER[1], "--config", str(config), "--speed", "5", "--mqtt-preempt")
    try:
        assert until(lambda: (s := live_status(base)) is not None and s["feeds"]["mqtt"]["connected"], 90), \
            proc.stderr.read() if proc.poll() is not None else "no status"
        assert until(lambda: live_status(base)["sim_time_s"] > 5, 30)

        def send(state: str, *, retain: bool = False, to: str = topic, **more) -> None:
            body = {"intersection_id": "J2", "state": state, "call_id": "medic-3",
                    "sim_time_s": live_status(base)["sim_time_s"], **more}
            pub.publish(to, json.dumps(body), qos=1, retain=retain).wait_for_publish(5)

        def counts() -> dict:
            return live_status(base)["feeds"]["preempt"]

        def j2() -> dict:
            return next(s for s in httpx.get(f"{base}/api/v1/live/snapshot").json()["signals"]
                        if s["intersection_id"] == "J2")

        assert until(lambda: counts()["refused"] == 1, 15), counts()
        send("on", to=f"{prefix}/J3/preempt", approach="west")
        assert until(lambda: counts()["refused"] == 2, 15), counts()
        assert counts()["by_transport"]["mqtt"]["refused_by_code"] == {"retained": 1, "wrong_topic": 1}, counts()
        send("on", approach="west")
        assert until(lambda: counts()["placed"] == 1, 15), counts()
        phase = httpx.get(f"{base}{PREEMPT}").json()["calls"][0]["phase"]
        deadline = time.monotonic() + 60
        while not ((s := j2())["preempted"] and s["interval"] == "green" and s["phase_number"] == phase):
            assert time.monotonic() < deadline, s
            send("on", approach="west")  # the heartbeat
            time.sleep(0.4)
        send("off")
        assert until(lambda: counts()["ended"] == 1 and not j2()["preempted"], 30), (counts(), j2())
        assert counts()["lapsed"] == 0
        metrics = httpx.get(f"{base}/metrics").text
        assert 'signalwise_preempt_input_calls_refused_total{code="retained",transport="mqtt"} 1.0' in metrics
    finally:
        _stop(proc)
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clears the broker's stored copy
        pub.loop_stop()
        pub.disconnect()
    run_dir = next((tmp_path / "runs").iterdir())
    rows = _csv(run_dir / "preempt_calls.csv")
    taken = [(r["call_id"], r["state"], r["via"]) for r in rows if r["state"] != "refused"]
    assert taken == [("medic-3", "on", "mqtt"), ("medic-3", "off", "mqtt")], rows
    on_s, off_s = (float(r["time_s"]) for r in rows if r["state"] != "refused")
    _green, end_s = _served(_events(run_dir), "J2", on_s, phase)
    assert abs(end_s - off_s) <= 1.0


@pytest.mark.slow
def test_a_call_is_served_beside_sumos_own_emergency_vehicles(tmp_path):
    with serving_live(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", insecure_no_auth=True),
                      tmp_path / "live", speed=10.0) as (client, rt):
        assert until(lambda: rt.stepper.t > 3, 30)
        placed = client.post(PREEMPT, json={"intersection_id": "C", "approach": "north", "state": "on",
                                            "call_id": "ladder-1"})
        assert placed.status_code == 200, placed.text
        phase = placed.json()["call"]["phase"]
        deadline = time.monotonic() + 60
        while True:
            sh = rt.stepper.shields["C"]
            if sh.preempt_vehicle == "ladder-1" and sh.interval == "green" and sh.phase + 1 == phase:
                break
            assert time.monotonic() < deadline, (sh.preempt_vehicle, sh.phase, sh.interval)
            client.post(PREEMPT, json={"intersection_id": "C", "approach": "north", "state": "on",
                                       "call_id": "ladder-1"})
            time.sleep(0.3)
        assert client.post(PREEMPT, json={"intersection_id": "C", "state": "off", "call_id": "ladder-1"}).json()[
            "call"]["call_id"] == "ladder-1"
        assert until(lambda: rt.stepper.shields["C"].preempt_vehicle != "ladder-1", 30)
        run_dir = rt.run_dir
    interventions = _csv(run_dir / "interventions.csv")
    assert any(r["rule"].startswith("preempt") and "ladder-1" in r["detail"] for r in interventions), interventions


def test_a_call_kept_on_ends_at_max_presence_and_calls_again_only_once_it_dropped(tmp_path):
    """The shield's `preempt_max_dwell_s` bounds an external call repeated for ever (110, then 104); repeating it
    after that calls nothing; an `off` then an `on` is a new call (102 again), as a vehicle out of range and back."""
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="single", shield={"preempt_max_dwell_s": 10}),
                     LiveOptions(speed=None, duration_s=3600, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    try:
        st, sh = rt.stepper, rt.stepper.shields["C"]
        on = PreemptRequest(intersection_id="C", approach="west", state="on", call_id="engine-7")
        log: list[tuple[float, int]] = []

        def run_for(seconds: float, heartbeat: bool) -> list[int]:
            began, end = len(log), st.t + seconds
            while st.t < end:
                if heartbeat:
                    rt.preempt.take(on, via="rest", by="test")
                st.step()
                log.extend((e.time_s, e.event_code) for e in sh.events if e.event_code >= 100)
                sh.events.clear()
            return [code for _t, code in log[began:]]

        assert run_for(120, heartbeat=True) == [102, 105, 107, 110, 104]
        dwell, timeout = (t for t, code in log if code in (107, 110))
        assert 10 <= timeout - dwell <= 11 + st.cfg.step_length_s, (dwell, timeout)
        assert rt.preempt.active()[0]["call_id"] == "engine-7"  # still repeated, and spent at the shield
        rt.preempt.take(PreemptRequest(intersection_id="C", state="off", call_id="engine-7"), via="rest", by="test")
        assert run_for(3, heartbeat=False) == []
        assert run_for(60, heartbeat=True)[:3] == [102, 105, 107]
    finally:
        rt.stop()
        rt.run()  # ends at once: evidence written, the corridor's lock let go
