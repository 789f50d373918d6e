"""The alert-rule and override routes as the operator's trial met them: a real uvicorn on 127.0.0.1 serving a live
`--field none` run of `corridor` with no feed (every signal stale, on its fallback plan) and the alert engine
`signalwise live` builds.

- `PUT /config/alerts {"rules": []}` is applied and every built-in rule stays, the raised `stale_data` alert too;
- `GET /config/alerts` (read scope) answers the rules in force and where each comes from (it was 405);
- a misspelt metric is 422 listing the known ones; a safety alert loosened is 422 naming it;
- `GET /alerts` names the stale signals, its `_s` times are the run's simulated seconds;
- an unknown signal is 404 on both override routes, as on the timing route.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from support.loopback import serving_port
from support.waiting import until

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.alerts import BUILTIN_RULES, engine_from_config, load_alert_config
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

ALERTS = "/api/v1/live/config/alerts"


@pytest.fixture
def running(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    _info, reader = create_key(get_engine(db), "viewer", ["read"])
    engine, _notifier = engine_from_config(load_alert_config(None))
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=20.0, duration_s=3600, field="none",
                                                                 sink="shadow", alerts_hz=20.0),
                     tmp_path / "live", alerts=engine)
    rt.open()
    app.state.live = rt
    app.state.live_feed = rt.feed
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                                                    timeout=20) as client:
            client.reader_key = reader
            yield client, rt
    finally:
        rt.stop()
        loop.join(timeout=30)


def _active(client, rule):
    return next((a for a in client.get("/api/v1/live/alerts").json()["active"] if a["rule"] == rule), None)


def test_an_empty_rule_set_leaves_the_built_in_alerts_and_the_rules_in_force_can_be_read(running):
    client, rt = running
    r = client.put(ALERTS, json={"rules": [{"name": "stale_data", "for_s": 0}]})  # tightened: raised at once
    assert r.status_code == 200, r.text
    assert until(lambda: _active(client, "stale_data") is not None, 20)
    stale = _active(client, "stale_data")
    assert stale["subjects"] == ["J1", "J2", "J3", "J4", "J5"]
    assert stale["message"].startswith("stale_data: stale_sources = 5 > 0 at J1, J2, J3 (feed:detectors unhealthy: ")
    # the run's simulated seconds: the alert came after the change, and before the time now
    assert r.json()["sim_time_s"] <= stale["raised_at_s"] <= client.get("/api/v1/live/status").json()["sim_time_s"]

    r = client.put(ALERTS, json={"rules": []})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    assert _active(client, "stale_data")["id"] == stale["id"]  # still raised: every signal is still stale

    got = client.get(ALERTS, headers={"X-API-Key": client.reader_key})  # a read, for the `read` scope
    assert got.status_code == 200, got.text
    rules = {rule["name"]: rule for rule in got.json()["rules"]}
    assert set(rules) == {rule.name for rule in BUILTIN_RULES}
    assert rules["stale_data"]["for_s"] == 10 and rules["stale_data"]["origin"] == "built-in"
    assert rules["stale_data"]["removable"] is False and rules["stale_data"]["limits"]["max_threshold"] == 0
    assert "stale_sources" in got.json()["metrics"]


def test_a_misspelt_metric_or_a_loosened_safety_alert_is_refused_naming_it(running):
    client, rt = running
    r = client.put(ALERTS, json={"rules": [{"name": "stale", "metric": "stale_source", "threshold": 0}]})
    assert r.status_code == 422, r.text
    assert "unknown metric 'stale_source'; known: fallback_share, stale_sources" in r.json()["message"]
    r = client.put(ALERTS, json={"rules": [{"name": "store_buffer_overflow", "threshold": 100}]})
    assert r.status_code == 422, r.text
    assert "store_buffer_overflow) is a built-in safety alert: threshold 100 is above its limit 0" in r.json()["message"]
    refused = [c for c in client.get("/api/v1/live/changes").json() if c["kind"] == "alerts"]
    assert [c["result"] for c in refused] == ["refused", "refused"]
    # a camera not added yet can be alerted on: its figures come when it is
    r = client.put(ALERTS, json={"rules": [{"name": "cam9", "metric": "vision_stream_down.cam9", "threshold": 0}]})
    assert r.status_code == 200 and "vision_stream_down.cam9" in r.json()["reason"], r.text


def test_an_unknown_signal_is_404_on_the_override_routes_as_on_the_timing_route(running):
    client, rt = running
    answers = [
        client.post("/api/v1/live/override", json={"intersection_id": "J9", "action": "call", "phase_number": 1,
                                                    "duration_s": 30}),
        client.delete("/api/v1/live/override/J9"),
        client.put("/api/v1/live/config/timing/intersections/J9", json={"timing": {"all_red_s": 2}}),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404], [a.text for a in answers]
    assert all("unknown intersection 'J9'" in a.json()["message"] for a in answers)
    # a signal that exists with nothing to cancel is still a 422: the request, not the signal, is wrong
    r = client.delete("/api/v1/live/override/J2")
    assert r.status_code == 422 and "no override in force at J2" in r.json()["message"]
