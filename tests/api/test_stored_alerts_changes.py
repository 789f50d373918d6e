"""A live run's stored alerts and changes are read through the API after the run has ended, with each alert's
state (cleared and why, active, open at the run's end) and the run's status in `/simulations`.

Found in an operator's trial: `signalwise serve` answered 503 on `/api/v1/live/alerts` and `/live/changes`
(they read the live runtime), nothing else read them but SQL, and an alert open when its run was killed kept
`cleared_at NULL` with nothing to say the run had died.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.alerts import AlertEngine, AlertRule
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.live import LiveStoreWriter

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
ALERTS = "/api/v1/analytics/alerts"
CHANGES = "/api/v1/analytics/changes"

#: simulator_restarts is 0 all run long: each rule raises at its first evaluation and holds
KEEP_OPEN = {"name": "keep_open", "metric": "simulator_restarts", "op": ">=", "threshold": 0, "level": "warning"}
ACKED = {"name": "acked", "metric": "simulator_restarts", "op": ">=", "threshold": 0, "level": "info",
         "until_acknowledged": True}
#: an operator's rule, added through the API
ADDED = {"name": "added", "metric": "simulator_restarts", "op": ">=", "threshold": 0, "level": "error"}


def _client(db_url: str, live=None) -> TestClient:
    app = create_app(Settings(database_url=db_url, cache_ttl_s=60))
    app.state.live = live
    _info, key = create_key(get_engine(db_url), f"ops{time.monotonic_ns()}", ["read", "operate"])
    return TestClient(app, headers={"X-API-Key": key})


def _until(ask, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        answer = ask()
        if answer:
            return answer
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.1)


def _by_rule(body: dict) -> dict:
    return {a["rule"]: a for a in body["items"]}


@pytest.mark.slow
def test_stored_alerts_and_changes_of_a_stopped_run_are_read_with_their_states(db_url, tmp_path):
    run_dir = tmp_path / "live"
    sim = run_dir.name
    store = LiveStoreWriter(db_url, sim, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    # alerts evaluated 10 times a wall second (1 by default): the test waits for each to be raised
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure", seed=1),
                     LiveOptions(speed=20.0, duration_s=3600, in_process=True, alerts_hz=10), run_dir, store=store,
                     alerts=AlertEngine([AlertRule(**r) for r in (KEEP_OPEN, ACKED)]))
    rt.open()
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    live = _client(db_url, rt)
    try:
        with live:
            def stored(n: int):
                return lambda: (b := live.get(ALERTS, params={"simulation_id": sim}).json())["total"] == n and b
            assert _until(stored(2), "the run's alerts never reached the store")
            assert live.put("/api/v1/live/config/alerts", json={"rules": [ADDED]}).status_code == 200
            raised = _until(stored(3), "the operator's rule's alert never reached the store")
            assert {a["state"] for a in raised["items"]} == {"active"}  # the run is live here, in its active set
            assert {a["run_status"] for a in raised["items"]} == {"running"}
            row = next(r for r in live.get("/api/v1/analytics/simulations").json()["items"]
                       if r["simulation_id"] == sim)
            assert row["status"] == "running"
            ids = {a["rule"]: a["id"] for a in raised["items"]}

            # an operator acknowledges one alert and sends a change the run refuses
            assert live.post(f"/api/v1/live/alerts/{ids['acked']}/ack").status_code == 200
            refused = live.post("/api/v1/live/override", json={"intersection_id": "NOPE", "action": "hold",
                                                               "phase_number": 1, "duration_s": 10})
            assert refused.status_code in (404, 422)
            cleared = _until(lambda: (b := live.get(ALERTS, params={"simulation_id": sim, "cleared": "true"})
                                      .json())["total"] == 1 and b,
                             lambda: f"the clearings never reached the store: {live.get(ALERTS).json()}")
            assert [(a["rule"], a["cleared_because"]) for a in cleared["items"]] == [("acked", "acknowledged")]
            still = live.get(ALERTS, params={"simulation_id": sim, "cleared": "false"}).json()
            assert sorted((a["rule"], a["state"]) for a in still["items"]) == [("added", "active"),
                                                                                ("keep_open", "active")]
    finally:
        rt.stop()
        loop.join(60)
    assert not loop.is_alive() and rt.status_text == "stopped"
    assert rt.store_summary["waiting_rows"] == 0

    # a run that did not register itself: its alert is open, and nothing here can tell whether its run ended
    other = LiveStoreWriter(db_url, "elsewhere", tmp_path / "other-buffer", 100, retry_initial_s=0.05)
    other.put_alert({"id": "far-1", "rule": "stale_data", "level": "critical", "metric": "stale_sources",
                     "value": 2, "threshold": 0, "wall_time": "2026-01-02T03:04:05+01:00", "message": "far away"})
    other.close(30)

    # `signalwise serve` over the same store: no live run attached
    with _client(db_url) as serve:
        assert serve.get("/api/v1/live/alerts").status_code == 503  # the live routes cannot answer
        body = serve.get(ALERTS, params={"simulation_id": sim}).json()
        assert body["total"] == 3 and body["limit"] == 100 and body["offset"] == 0
        alerts = _by_rule(body)
        # open when the run stopped: cleared by its end, which says so (a webhook's incident is closed with it)
        assert alerts["keep_open"]["state"] == "cleared" and alerts["keep_open"]["cleared_because"] == "run_ended"
        assert alerts["keep_open"]["cleared_reason"].startswith("the run ended")
        assert alerts["keep_open"]["run_status"] == "stopped"  # from the run's run.json
        assert alerts["acked"]["state"] == "cleared" and alerts["acked"]["cleared_because"] == "acknowledged"
        assert alerts["acked"]["acknowledged_by"].startswith("ops") and alerts["acked"]["cleared_at"].endswith("Z")
        assert alerts["acked"]["cleared_at_s"] is not None
        assert alerts["added"]["cleared_because"] == "run_ended" and alerts["added"]["level"] == "error"
        for a in body["items"]:
            assert a["simulation_id"] == sim and a["raised_at"].endswith("Z") and a["raised_at_s"] is not None
        # the stored rows are not rewritten by reading them
        from signalwise.store.live import list_alerts

        stored = {a["rule"]: a for a in list_alerts(get_engine(db_url), sim)}
        assert stored["keep_open"]["cleared_reason"].startswith("the run ended")  # the run's own clear, stored
        serve.get(ALERTS, params={"simulation_id": "elsewhere"})
        (far,) = list_alerts(get_engine(db_url), "elsewhere")
        assert far["cleared_at"] is None  # open, its run unknown here, and left so by reading it

        # filters
        assert [a["rule"] for a in serve.get(ALERTS, params={"simulation_id": sim, "level": "warning"})
                .json()["items"]] == ["keep_open"]
        assert serve.get(ALERTS, params={"simulation_id": sim, "rule": "acked"}).json()["total"] == 1
        assert serve.get(ALERTS, params={"simulation_id": sim, "cleared": "false"}).json()["total"] == 0  # run ended
        assert serve.get(ALERTS, params={"simulation_id": sim, "cleared": "true"}).json()["total"] == 3
        assert [a["id"] for a in serve.get(ALERTS, params={"cleared": "false"}).json()["items"]] == ["far-1"]
        first = min(dt.datetime.fromisoformat(a["raised_at"].replace("Z", "+00:00")) for a in body["items"])
        elsewhere_zone = first.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()
        assert serve.get(ALERTS, params={"simulation_id": sim, "start": elsewhere_zone}).json()["total"] == 3
        assert serve.get(ALERTS, params={"simulation_id": sim, "end": elsewhere_zone}).json()["total"] == 0
        everything = serve.get(ALERTS).json()
        assert everything["total"] == 4
        far = _by_rule(everything)["stale_data"]
        assert (far["state"], far["run_status"], far["raised_at"]) == ("open", None, "2026-01-02T02:04:05Z")

        # pages: newest raised first, each alert once
        pages = [serve.get(ALERTS, params={"simulation_id": sim, "limit": 1, "offset": i}).json() for i in range(4)]
        assert [p["total"] for p in pages] == [3, 3, 3, 3] and pages[3]["items"] == []
        assert [p["items"][0]["id"] for p in pages[:3]] == [a["id"] for a in body["items"]]
        raised_order = [a["raised_at"] for a in body["items"]]
        assert raised_order == sorted(raised_order, reverse=True)

        # changes: who, what, applied or refused
        changes = serve.get(CHANGES, params={"simulation_id": sim}).json()
        kinds = {(c["kind"], c["result"]) for c in changes["items"]}
        assert ("alerts", "applied") in kinds and ("override", "refused") in kinds
        (added,) = serve.get(CHANGES, params={"simulation_id": sim, "kind": "alerts"}).json()["items"]
        assert [r["name"] for r in added["payload"]["rules"]] == ["added"] and added["result"] == "applied"
        assert added["made_by"].startswith("ops") and added["at"].endswith("Z") and added["sim_time_s"] is not None
        (no,) = serve.get(CHANGES, params={"simulation_id": sim, "result": "refused"}).json()["items"]
        assert no["kind"] == "override" and "NOPE" in no["reason"]
        assert serve.get(CHANGES, params={"made_by": added["made_by"]}).json()["total"] == changes["total"]
        assert serve.get(CHANGES, params={"simulation_id": sim, "made_by": "nobody"}).json()["total"] == 0
        assert serve.get(CHANGES, params={"simulation_id": sim, "start": "2200-01-01T00:00:00Z"}
                         ).status_code == 422  # outside the instants any route takes
        paged = [serve.get(CHANGES, params={"simulation_id": sim, "limit": 1, "offset": i}).json()["items"][0]["id"]
                 for i in range(changes["total"])]
        assert paged == [c["id"] for c in changes["items"]]

        # the run's status where the store and its run directory know it
        row = next(r for r in serve.get("/api/v1/analytics/simulations").json()["items"] if r["simulation_id"] == sim)
        assert (row["scenario"], row["controller"], row["seed"], row["status"]) == ("single", "max-pressure", 1,
                                                                                      "stopped")
        summary = serve.get(f"/api/v1/analytics/simulation/{sim}/summary").json()
        assert summary["status"] == "stopped"

        # refusals, in the shape every route gives them
        missing = serve.get(ALERTS, params={"simulation_id": "no-such-run"})
        assert missing.status_code == 404 and "no-such-run" in missing.json()["message"]
        assert serve.get(CHANGES, params={"simulation_id": "no-such-run"}).status_code == 404
        assert serve.get(ALERTS, params={"level": "loud"}).status_code == 422
        backwards = serve.get(ALERTS, params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
        assert backwards.status_code == 422 and "must be after start" in backwards.json()["message"]
        assert serve.get(ALERTS, params={"start": "2026-01-02T00:00:00"}).status_code == 422  # no zone
        assert serve.get(ALERTS, params={"since": "2026-01-02T00:00:00Z"}).status_code == 422  # not a parameter

    # the server that ran it, once the run has ended: the same answers
    with _client(db_url, rt) as ended:
        assert _by_rule(ended.get(ALERTS, params={"simulation_id": sim}).json())["keep_open"]["cleared_because"] == \
            "run_ended"


@pytest.mark.slow
def test_an_alert_open_when_its_run_was_killed_is_open_at_the_runs_end_and_the_run_died(db_url, tmp_path):
    config = tmp_path / "alerts.yaml"
    config.write_text("alerts:\n  rules:\n" + "".join(f"    - {json.dumps(r)}\n" for r in (KEEP_OPEN,)))
    out = tmp_path / "runs"
    proc = subprocess.Popen([SIGNALWISE, "live", "--scenario", "single", "--speed", "1", "--duration", "3600",
                             "--port", "0", "--out", str(out), "--db", db_url, "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with _client(db_url) as serve:
            def stored():
                if proc.poll() is not None:
                    pytest.fail(f"signalwise live exited early ({proc.returncode})")
                items = serve.get(ALERTS, params={"rule": "keep_open"}).json().get("items", [])
                return items or None
            (alert,) = _until(stored, "the run's alert never reached the store", 90)
            assert alert["state"] == "open" and alert["run_status"] == "running"  # going, in another process
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    sim = alert["simulation_id"]
    run_json = json.loads((out / sim / "run.json").read_text())
    assert run_json["status"] == "running"  # the run could not say how it ended

    with _client(db_url) as serve:
        (after,) = serve.get(ALERTS, params={"simulation_id": sim, "rule": "keep_open"}).json()["items"]
        assert after["cleared_at"] is None and after["state"] == "open_at_run_end"
        assert after["run_status"] == "died" and "SIGKILL" in after["run_status_reason"]
        row = next(r for r in serve.get("/api/v1/analytics/simulations").json()["items"] if r["simulation_id"] == sim)
        assert row["status"] == "died" and "SIGKILL" in row["status_reason"]
    assert json.loads((out / sim / "run.json").read_text()) == run_json  # left as the run wrote it
