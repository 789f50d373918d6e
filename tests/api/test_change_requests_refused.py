"""Change requests a live run refuses, as a city integrator's scripts send them: a real uvicorn on 127.0.0.1 serving a
real live run of `corridor` (SUMO in a worker process, so it can be stopped), with `--db`'s store writer.

A body not sent as JSON is a 415, never a 500; a caller without a key is a 401 whatever the body, and writes
nothing into the change log; every refused request is in the three logs (GET /live/changes, changes.jsonl, the
store) under its route's kind; a change the loop cannot take in time is a 503 with Retry-After; a stream filtered
by signals gets only their refusals; the yellow refusal states the safety minimum; and the OpenAPI schema declares
the statuses these answers have.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest
from support.loopback import serving_port
from support.waiting import value_within

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.live import LiveStoreWriter

LIVE = "/api/v1/live"
OVERRIDE = {"intersection_id": "J4", "action": "call", "phase_number": 2, "duration_s": 30}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, keys by name, runtime, app): corridor at 40x with its store, served; stopped after the module."""
    tmp = tmp_path_factory.mktemp("refused")
    db = f"sqlite:///{tmp / 'db.sqlite'}"
    app = create_app(Settings(database_url=db, model_registry=tmp / "registry", model_cache=tmp / "cache"))
    engine = get_engine(db)
    keys = {name: create_key(engine, name, scopes)[1] for name, scopes in (
        ("tmc-ops", ["read", "operate"]), ("tmc-read", ["read"]), ("tmc-admin", ["admin"]))}
    run_dir = tmp / "live"
    store = LiveStoreWriter(db, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=40.0, duration_s=3600, in_process=False),
                     run_dir, store=store)
    rt.open()
    app.state.live = rt
    app.state.streams.attach(rt)
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with serving_port(app) as port:
            yield f"http://127.0.0.1:{port}", keys, rt, app
    finally:
        rt.stop()
        loop.join(timeout=30)
        store.close()


def _client(served, key: str | None = "tmc-ops") -> httpx.Client:
    base, keys, _rt, _app = served
    return httpx.Client(base_url=base, headers={"X-API-Key": keys[key]} if key else {}, timeout=30)


def _logged(rt) -> list[dict]:
    return [json.loads(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]


def _stored(client, rt, result: str = "refused") -> list[dict]:
    body = client.get("/api/v1/analytics/changes", params={"simulation_id": rt.run_dir.name, "result": result,
                                                            "limit": 1000}).json()
    return body["items"]


def _until(ask, what, timeout_s: float = 20.0):
    answer = value_within(ask, timeout_s=timeout_s, every_s=0.1)
    assert answer, what() if callable(what) else what
    return answer


def _same_in_three_logs(client, rt, since: int) -> list[dict]:
    """The change-log entries from `since` on, once the file and the store hold the same ones (who, kind, result,
    reason, payload)."""
    def key(c: dict) -> tuple:
        return c.get("who", c.get("made_by")), c["kind"], c["result"], c["reason"], json.dumps(c["payload"],
                                                                                                sort_keys=True)
    listed = client.get(f"{LIVE}/changes", params={"limit": 1000}).json()[since:]
    in_file = Counter(key(c) for c in _logged(rt)[since:])
    assert Counter(key(c) for c in listed) == in_file
    _until(lambda: Counter(key(c) for c in _stored(client, rt, "refused") + _stored(client, rt, "applied")
                           ) >= in_file,
           lambda: f"the store lacks some of {in_file}: {rt.store.stats()}")
    assert rt.store.stats()["rejected_rows"] == 0, rt.store.stats()
    return listed


def test_a_body_not_sent_as_json_is_a_415_and_the_three_change_logs_agree(served):
    """`curl -d` without a JSON Content-Type (a form) was a 500: the refused body came as bytes, which the change
    log's file could not write after the list had taken it."""
    _base, _keys, rt, _app = served
    with _client(served) as client:
        since = len(client.get(f"{LIVE}/changes", params={"limit": 1000}).json())
        sent = [("POST", "/override", json.dumps(OVERRIDE), None),  # httpx's default for content: none at all
                ("POST", "/override", json.dumps(OVERRIDE), "application/x-www-form-urlencoded"),
                ("POST", "/changes", json.dumps({"kind": "shield", "shield": {}}), "text/plain"),
                ("PUT", "/config/timing", '{"timing": {}}', "text/plain"),
                ("PUT", "/config/timing/intersections/J1", '{"timing": {"all_red_s": 2}}', "text/plain"),
                ("PUT", "/config/shield", '{"shield": {}}', "text/plain"),
                ("POST", "/controller", '{"controller": "fixed"}', "text/plain")]
        for method, path, body, content_type in sent:
            r = client.request(method, LIVE + path, content=body,
                               headers={"Content-Type": content_type} if content_type else {})
            assert r.status_code == 415, (path, r.status_code, r.text)
            assert "send it with Content-Type: application/json" in r.json()["message"]
            assert (repr(content_type) if content_type else "without a Content-Type") in r.json()["message"]
        listed = _same_in_three_logs(client, rt, since)
    assert [(c["who"], c["kind"], c["result"]) for c in listed] == [
        ("tmc-ops", "override", "refused"), ("tmc-ops", "override", "refused"),
        ("tmc-ops", "change", "refused"),  # POST /changes: a body not read names no kind
        ("tmc-ops", "timing", "refused"), ("tmc-ops", "signal_timing", "refused"), ("tmc-ops", "shield", "refused"),
        ("tmc-ops", "controller", "refused")]
    assert listed[0]["payload"] == {"request": "POST override", "body": json.dumps(OVERRIDE), "intersection_id": None}
    assert listed[4]["payload"]["intersection_id"] == "J1"
    assert rt.running


def test_refused_requests_have_their_route_kind_and_reach_the_store(served):
    """A request refused before it became a change was kinded `METHOD route` (`PUT config/timing/intersections/J2`,
    34 characters), which the store's 32-character column dropped, and which `?kind=override` did not find."""
    _base, _keys, rt, _app = served
    with _client(served) as client:
        since = len(client.get(f"{LIVE}/changes", params={"limit": 1000}).json())
        signal_timing = f"{LIVE}/config/timing/intersections/J2"
        assert client.put(signal_timing, json={"timing": {"min_green_s": 10}, "based_on_revision": "1"}
                          ).status_code == 422
        assert client.put(signal_timing, json={}).status_code == 422
        assert client.delete(f"{LIVE}/config/timing/intersections/J4",
                             params={"based_on_revision": "1.0"}).status_code == 422
        assert client.post(f"{LIVE}/override", json={**OVERRIDE, "phase_number": "2"}).status_code == 422
        assert client.post(f"{LIVE}/override", json={**OVERRIDE, "phase_number": 9}).status_code == 422  # the runtime's
        listed = _same_in_three_logs(client, rt, since)
        assert [(c["kind"], c["payload"].get("intersection_id")) for c in listed] == [
            ("signal_timing", "J2"), ("signal_timing", "J2"), ("signal_timing", "J4"), ("override", "J4"),
            ("override", "J4")]
        assert listed[2]["payload"]["request"] == "DELETE config/timing/intersections/J4"
        overrides = client.get("/api/v1/analytics/changes", params={
            "simulation_id": rt.run_dir.name, "kind": "override", "result": "refused", "limit": 1000}).json()
        reasons = {c["reason"] for c in overrides["items"]}
        assert {listed[3]["reason"], listed[4]["reason"]} <= reasons  # the body's refusal and the runtime's
        assert client.get(f"{LIVE}/status").json()["store"]["last_error"] is None


def test_without_a_key_any_body_is_a_401_and_nothing_is_logged(served):
    """FastAPI decodes a JSON body before the app's dependencies: malformed JSON was a 422 before the caller was
    asked for a key, and was logged as a refused change by `local`; with a key, by `local` too."""
    _base, _keys, rt, _app = served
    with _client(served, None) as anonymous, _client(served, "tmc-read") as reader, _client(served) as ops:
        before = len(rt.changes)
        for method, path, body in (("POST", f"{LIVE}/override", "garbage"), ("POST", "/api/v1/keys", '{"broken": '),
                                   ("PUT", f"{LIVE}/config/timing/intersections/J1", "{"),
                                   ("POST", f"{LIVE}/changes", '{"kind": "override"'),
                                   ("POST", f"{LIVE}/deploy", "[")):
            r = anonymous.request(method, path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert "needs an API key or token with scope" in r.json()["message"]
            r = reader.request(method, path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 403, (path, r.status_code, r.text)
        assert anonymous.post(f"{LIVE}/override", content="x", headers={"Content-Type": "text/plain"}
                              ).status_code == 401
        # bytes that are no UTF-8: FastAPI's own 400, before the dependencies, once answered a caller without a key
        assert anonymous.post(f"{LIVE}/override", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
                              ).status_code == 401
        assert len(rt.changes) == before, rt.changes[before:]
        r = ops.post(f"{LIVE}/override", content="not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["message"].startswith("body: Invalid JSON: "), r.text
        assert [(c["who"], c["kind"], c["payload"]) for c in rt.changes[before:]] == [
            ("tmc-ops", "override", {"request": "POST override", "body": "not json", "intersection_id": None})]


def test_a_change_the_loop_cannot_take_in_time_is_a_503_with_retry_after(served):
    """The simulator stops answering (SIGSTOP): the valid change was a 422, which a client takes for "do not retry"."""
    _base, _keys, rt, app = served
    pid = rt.status()["sim_pid"]
    assert pid
    rt.change_wait_s = 1.0
    try:
        with _client(served) as client:
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(0.3)  # the loop now waits on the stopped process
                r = client.post(f"{LIVE}/override", json={"intersection_id": "J1", "action": "hold",
                                                          "phase_number": 1, "duration_s": 30})
            finally:
                os.kill(pid, signal.SIGCONT)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "5"
            assert "did not take the change within 1 s" in r.json()["message"]
            assert "503" in app.openapi()["paths"][f"{LIVE}/override"]["post"]["responses"]
            assert rt.changes[-1]["result"] == "refused" and rt.changes[-1]["kind"] == "override"
            assert client.get(f"{LIVE}/status").json()["overrides"] == {}
    finally:
        del rt.change_wait_s


def test_a_stream_filtered_by_signals_gets_only_their_refusals(served):
    """A refusal whose signal was named in the path, or not readable from the body, went to every filtered stream as
    a network-wide change."""
    base, keys, _rt, _app = served
    got: list[dict] = []
    subscribed = threading.Event()

    def listen() -> None:
        with httpx.Client(timeout=30) as sse, sse.stream(
                "GET", f"{base}/api/v1/sse/live", params={"topics": "change", "intersections": "J2"},
                headers={"X-API-Key": keys["tmc-ops"]}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("type") == "subscribed":
                    subscribed.set()
                elif msg.get("type") == "change":
                    got.append(msg["data"])
                    if msg["data"]["kind"] == "shield":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(15), "the stream did not subscribe"
    with _client(served) as client:
        assert client.delete(f"{LIVE}/config/timing/intersections/J4", params={"based_on_revision": "1.0"}
                             ).status_code == 422
        assert client.put(f"{LIVE}/config/timing/intersections/J1", json={"timing": {"yellow_s": "long"}}
                          ).status_code == 422
        assert client.post(f"{LIVE}/override", content="garbage", headers={"Content-Type": "application/json"}
                           ).status_code == 422
        assert client.post(f"{LIVE}/override", json={**OVERRIDE, "intersection_id": "J1", "action": "dance"}
                           ).status_code == 422
        assert client.put(f"{LIVE}/config/timing/intersections/J2", json={}).status_code == 422
        assert client.put(f"{LIVE}/config/shield", json={"shield": {"confidence_threshold": 7}}).status_code == 422
    listener.join(20)
    assert not listener.is_alive(), f"the network-wide refusal never came: {got}"
    named = [(c["kind"], c["payload"].get("intersection_id") if isinstance(c["payload"], dict) else c["payload"])
             for c in got]
    assert named == [("signal_timing", "J2"), ("shield", None)], got


def test_a_too_short_yellow_is_refused_with_the_safety_minimum(served):
    """The run configuration's own bound (2 s) was said first, then the safety profile's (3 s) for 2.5."""
    with _client(served) as client:
        limit = client.get(f"{LIVE}/config").json()["limits"]["timing"]["yellow_s"]["min"]
        for path, body in ((f"{LIVE}/config/timing/intersections/J2", {"timing": {"yellow_s": 1}}),
                           (f"{LIVE}/config/timing", {"timing": {"yellow_s": 1}}),
                           (f"{LIVE}/config/timing", {"timing": {"per_intersection": {"J3": {"yellow_s": 1.5}}}})):
            r = client.put(path, json=body)
            assert r.status_code == 422, r.text
            assert f"must be at least {limit:g} under the safety profile" in r.json()["message"], r.text
            assert "greater than or equal to 2" not in r.json()["message"]


def _declared(schema: dict, method: str, template: str) -> set[str]:
    return set(schema["paths"][template][method.lower()]["responses"])


def test_the_openapi_schema_declares_the_statuses_the_routes_answer(served, tmp_path):
    """Each case of the integrator's table, sent to the served run (and to a server with no live run): the status it
    answers is one its operation declares, with the error body."""
    base, keys, _rt, app = served
    schema = app.openapi()
    big = {**OVERRIDE, "pad": "x" * (2 * 1024 * 1024)}
    cases = [  # (key, method, schema path, concrete path, request options, the status it answers)
        (None, "POST", "/api/v1/auth/token", "/api/v1/auth/token", {}, 401),
        (None, "POST", "/api/v1/auth/token", "/api/v1/auth/token", {"json": {"api_key": "sw_nope"}}, 401),
        ("tmc-admin", "POST", "/api/v1/keys", "/api/v1/keys", {"json": {"name": "tmc-ops", "scopes": ["read"]}}, 409),
        ("tmc-admin", "DELETE", "/api/v1/keys/{id_or_name}", "/api/v1/keys/nobody", {}, 404),
        ("tmc-ops", "POST", f"{LIVE}/alerts/{{alert_id}}/ack", f"{LIVE}/alerts/nope/ack", {}, 404),
        ("tmc-ops", "POST", f"{LIVE}/controller", f"{LIVE}/controller",
         {"json": {"controller": "fixed", "intersections": ["J9"]}}, 404),
        ("tmc-ops", "POST", f"{LIVE}/deploy", f"{LIVE}/deploy", {"json": {"version": "v99"}}, 404),
        ("tmc-ops", "POST", f"{LIVE}/rollback", f"{LIVE}/rollback", {"json": {}}, 409),
        ("tmc-read", "GET", f"{LIVE}/snapshot", f"{LIVE}/snapshot", {"params": {"intersection_id": "J9"}}, 404),
        ("tmc-read", "GET", f"{LIVE}/atspm/{{chart}}", f"{LIVE}/atspm/pcd", {"params": {"intersection_id": "J9"}}, 404),
        ("tmc-read", "GET", "/api/v1/analytics/changes", "/api/v1/analytics/changes",
         {"params": {"simulation_id": "nope"}}, 404),
        ("tmc-ops", "POST", f"{LIVE}/override", f"{LIVE}/override", {"json": big}, 413),
        ("tmc-ops", "POST", f"{LIVE}/override", f"{LIVE}/override", {"content": "{}"}, 415),
    ]
    with httpx.Client(base_url=base, timeout=30) as client:
        for key, method, template, path, options, status in cases:
            headers = {"X-API-Key": keys[key]} if key else {}
            r = client.request(method, path, headers=headers, **options)
            assert r.status_code == status, (method, path, r.status_code, r.text)
            assert str(status) in _declared(schema, method, template), (method, template, status)
            assert set(r.json()) >= {"message", "detail"}, r.text

    # `signalwise serve`: no live run attached, every live read is a 503
    served_only = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'serve.sqlite'}"))
    bare = served_only.openapi()
    live_reads = [p for p, ops in bare["paths"].items() if p.startswith(LIVE) and "get" in ops and "{" not in p
                  and not any(q.get("required") for q in ops["get"].get("parameters", ()))]
    assert len(live_reads) >= 8, live_reads
    with serving_port(served_only) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        answered = {path: client.get(path).status_code for path in live_reads}
        assert all(str(status) in _declared(bare, "GET", path) for path, status in answered.items()), answered
        assert sum(status == 503 for status in answered.values()) >= 8, answered
        r = client.get(f"{LIVE}/atspm/pcd", params={"intersection_id": "J1"})
        assert r.status_code == 503 and "503" in _declared(bare, "GET", f"{LIVE}/atspm/{{chart}}")
        # the 429 for refused credentials: it carries every header its declaration requires
        for _ in range(100):
            r = client.get("/api/v1/keys", headers={"X-API-Key": "sw_0000000000_wrong"})
            if r.status_code == 429:
                break
        assert r.status_code == 429, r.text
        declared = bare["paths"]["/api/v1/keys"]["get"]["responses"]["429"]["headers"]
        required = {name for name, h in declared.items() if h.get("required")}
        assert required == {"Retry-After"} and all(name in r.headers for name in required), (declared, r.headers)
    for code in ("503",):
        assert code in _declared(bare, "GET", "/health/ready") and code in _declared(bare, "GET", "/health")

