"""The live routes when an operator's request cannot be carried out: a real uvicorn on 127.0.0.1 serving a real
live run of `corridor` (SUMO in-process), as `signalwise live` wires them.

Each refusal is an answer with a status and one line of reason, never a 500, and the run goes on.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from support.loopback import serving_port

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


def _live(tmp_path, duration_s: float, speed: float | None):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "ops", ["read", "ingest", "operate"])
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=speed, duration_s=duration_s, in_process=True),
                     tmp_path / "live")
    rt.open()
    app.state.live = rt
    from signalwise.runtime.live.feeds import DetectorFeed

    rt.feed = DetectorFeed(rt.stepper.intersections)  # a feed beside SUMO, as a program embedding the runtime may attach
    app.state.live_feed = rt.feed
    return app, rt, {"X-API-Key": key}


# -- the tests with a run of their own come first: libsumo runs one simulation per process, and the shared run
# below lasts until the module ends
def test_a_change_after_the_run_ended_is_refused_with_the_reason(tmp_path):
    app, rt, headers = _live(tmp_path, 30, None)
    rt.run()
    with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        r = client.post("/api/v1/live/override", json={"intersection_id": "J2", "action": "hold", "phase_number": 2,
                                                       "duration_s": 60})
        assert r.status_code == 422
        assert r.json()["message"] == "change refused: the live run has ended (complete); nothing of it can " \
                                      "change now"
        r = client.post("/api/v1/live/controller", json={"controller": "fixed"})
        assert r.status_code == 422 and "has ended (complete)" in r.json()["message"]
        status = client.get("/api/v1/live/status").json()
        assert status["overrides"] == {} and status["controller"] == "max-pressure"



@pytest.fixture
def registered(tmp_path):
    """(client, registry): a live corridor served on 127.0.0.1 (not looping: changes are applied at once) whose
    API's registry holds v1, the model shipped for corridor."""
    from pathlib import Path

    import signalwise.control.learning as learning
    from signalwise.store.model_registry import open_registry
    from signalwise.training.registry import register_model

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = Settings(database_url=db, model_cache=tmp_path / "cache", model_registry=tmp_path / "no-registry")
    reg = open_registry(settings)
    register_model(reg, Path(learning.__file__).parent / "shipped" / "corridor", who="trainer")
    app = create_app(settings)
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=None, duration_s=60, in_process=True),
                     tmp_path / "live")
    rt.open()
    app.state.live = rt
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                                                timeout=20) as client:
            yield client, reg
    finally:
        rt.field.backend.close()


def test_an_empty_intersections_list_deploys_and_rolls_back_nothing(registered):
    """`"intersections": []` is refused with 422, as a controller change refuses it: read as "every signal" it
    rolled back (or deployed) the model at every signal of the live run."""
    client, reg = registered
    r = client.post("/api/v1/live/deploy", json={"version": "v1", "intersections": ["J1", "J2"]})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    for path, body in (("/api/v1/live/rollback", {"intersections": []}),
                       ("/api/v1/live/deploy", {"version": "v1", "intersections": []})):
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["message"].startswith("body.intersections: "), r.text
    assert reg.active() == {"J1": "v1", "J2": "v1"}


def test_a_registry_controller_through_the_changes_route_runs_as_through_the_controller_route(registered):
    """`POST /api/v1/live/changes` takes every change the named routes take: `ql:@v1` resolved from the registry,
    not refused with a message meant for a programmer."""
    client, _reg = registered
    for path, body in (("/api/v1/live/changes", {"kind": "controller", "controller": "ql:@v1", "intersections": ["J3"]}),
                       ("/api/v1/live/controller", {"controller": "ql:@v1", "intersections": ["J4"]})):
        r = client.post(path, json=body)
        assert r.status_code == 200, (path, r.text)
        change = r.json()
        assert change["result"] == "applied" and change["payload"]["controller"] == "ql:@v1"
        assert "v1" in change["payload"]["controller_options"]["registry_models"]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One run and server for the refusals below: each leaves the run going (what they assert), and counts what
    the feed and the change log hold from its own start."""
    app, rt, headers = _live(tmp_path_factory.mktemp("running"), 3600, 20.0)
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                                timeout=20) as client:
            yield client, rt
    finally:
        rt.stop()
        loop.join(timeout=20)


def test_a_detector_body_nested_too_deeply_is_a_422_not_a_500(running):
    client, rt = running
    rejected = rt.feed.stats()["rejected"]
    r = client.post("/api/v1/live/feeds/detectors", content=b"[" * 100_000 + b"]" * 100_000,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "nested too deeply" in r.json()["message"]
    assert rt.running
    stats = rt.feed.stats()  # one refused payload, counted as MQTT counts one
    assert stats["rejected"] == rejected + 1 and "nested too deeply" in stats["last_rejection"]["reason"]


def _raw_post(port: int, head: str, body_parts, key: str) -> tuple[int, dict]:
    """POST to the detector feed on a raw socket: the headers, then `body_parts` until the server answers or
    they run out; the status and the JSON answer. The body is never sent whole: an answer while it is still
    being sent proves the server refused it without reading it all."""
    import json

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((f"POST /api/v1/live/feeds/detectors HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
                      f"Content-Type: application/json\r\n{head}\r\n").encode())
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed while we were still sending: read its answer
                break
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_a_detector_body_over_the_byte_limit_is_a_413_before_it_is_read(running):
    MAX_BODY_BYTES = 4 * 1024 * 1024  # the limit docs/live-feeds.md gives: 4 MiB
    client, rt = running
    port = client.base_url.port
    key = client.headers["X-API-Key"]
    counted = rt.feed.stats()
    # Content-Length over the limit: refused on the headers alone (only 1 KB of the 100 MB is ever sent)
    status, answer = _raw_post(port, f"Content-Length: {100 * 1024 * 1024}\r\n", [b" " * 1024], key)
    assert status == 413, answer
    assert f"at most {MAX_BODY_BYTES} bytes" in answer["message"] and "104857600 bytes" in answer["message"]
    # chunked, no length given: refused once the bytes received pass the limit, though the body never ends
    chunk = b" " * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    status, answer = _raw_post(port, "Transfer-Encoding: chunked\r\n",
                               [framed] * (MAX_BODY_BYTES // len(chunk) + 2), key)
    assert status == 413, answer
    assert f"more than {MAX_BODY_BYTES} bytes" in answer["message"]
    # a body under the limit is read and judged as before, and the run goes on
    ok = client.post("/api/v1/live/feeds/detectors", json={"device_id": "J1", "channel": 1, "count_veh": 0,
                                                           "occupancy": 0.0, "interval_s": 2.0,
                                                           "sim_time_s": rt.stepper.t})
    assert ok.status_code == 200, ok.text
    assert rt.running
    stats = rt.feed.stats()  # each refused request counted once, by the one line it was answered with
    assert (stats["rejected"], stats["accepted"]) == (counted["rejected"] + 2, counted["accepted"] + 1)
    assert stats["last_rejection"]["reason"] == answer["message"]


def test_a_shield_change_with_a_number_as_text_leaves_the_run_running(running):
    client, rt = running
    r = client.put("/api/v1/live/config/shield", json={"shield": {"confidence_threshold": "0.7"}})
    assert r.status_code == 200 and r.json()["result"] == "applied"
    t = rt.stepper.t
    deadline = time.monotonic() + 10
    while rt.stepper.t < t + 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = client.get("/api/v1/live/status").json()
    assert status["running"] and status["status"] == "running" and status["sim_time_s"] >= t + 20


def test_ending_an_override_that_is_not_in_force_is_a_422_with_the_reason(running):
    client, _rt = running
    r = client.delete("/api/v1/live/override/J3")
    assert r.status_code == 422
    assert r.json()["message"] == "change refused: no override in force at J3 (overrides in force: none)"
    refused = client.get("/api/v1/live/changes").json()[-1]
    assert refused["kind"] == "cancel_override" and refused["result"] == "refused"


def test_every_refused_change_request_is_in_the_change_log_with_its_simulated_time(running):
    """A body the route's check refuses never reached the runtime, which logged only what it refused itself:
    the change log missed the attempts an operator most needs to see (a typo in an action, a negative duration).
    A feed message refused is the feed's to count, not a change."""
    client, rt = running
    before = len(client.get("/api/v1/live/changes").json())
    for path, body in (("/api/v1/live/override", {"intersection_id": "J1", "action": "dance", "phase_number": 1,
                                                  "duration_s": 30}),
                       ("/api/v1/live/override", {"intersection_id": "J1", "action": "hold", "phase_number": 1,
                                                  "duration_s": -5}),
                       ("/api/v1/live/deploy", {"version": "v9"})):
        r = client.post(path, json=body)
        assert r.status_code in (404, 422), r.text
    client.post("/api/v1/live/feeds/detectors", json={"nonsense": True})
    refused = client.get("/api/v1/live/changes").json()[before:]
    assert [(c["kind"], c["result"], c["who"]) for c in refused] == [
        ("override", "refused", "ops"), ("override", "refused", "ops"), ("deploy", "refused", "ops")]
    assert "body.action" in refused[0]["reason"] and refused[0]["payload"]["body"]["action"] == "dance"
    assert refused[0]["payload"]["request"] == "POST override" and refused[0]["payload"]["intersection_id"] == "J1"
    assert "body.duration_s" in refused[1]["reason"] and "v9" in refused[2]["reason"]
    assert all(isinstance(c["sim_time_s"], float) for c in refused)
    logged = (rt.run_dir / "changes.jsonl").read_text()
    assert logged.count('"result": "refused"') >= 3


def test_what_no_handler_foresaw_is_a_422_with_a_reason_not_a_500(running):
    """A number Python will not read (over 4300 digits) in a detector message, a signal id longer than any a
    change takes, a controller the run configuration does not know: each refused in one line, the run going on."""
    client, rt = running
    r = client.post("/api/v1/live/feeds/detectors", content=b'{"device_id": "J1", "channel": ' + b"9" * 5000 + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not JSON a feed sends" in r.json()["message"], r.text
    r = client.delete("/api/v1/live/override/" + "J" * 1001)
    assert r.status_code == 422 and "path.intersection_id" in r.json()["message"], r.text
    r = client.post("/api/v1/live/controller", json={"controller": "nope"})
    assert r.status_code == 422, r.text
    assert "unknown controller 'nope'" in r.json()["message"] and "pydantic.dev" not in r.json()["message"]
    assert rt.running and client.get("/api/v1/live/status").json()["status"] == "running"
