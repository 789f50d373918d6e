"""A live run's store writer and the app serving the same store in its process: every write the writer makes drops
the app's cached analytics answers (as every ingest write does), and the stored alerts keep what an alert named
(`subjects`) and why it cleared (`cleared_reason`), which the alerts history answers (migration 0015)."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from support.waiting import until

from signalwise.api import create_app
from signalwise.core.types import SignalEvent
from signalwise.runtime.live.alerts import AlertEngine, AlertRule
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.live import LiveStoreWriter

SIM = "LIVE_SERVED"
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}


def record(minute: int) -> dict:
    return {"simulation_id": SIM, "intersection_id": "J1",
            "timestamp": (dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)).isoformat(),
            "signals": [{"direction": "north", "vehicle_counts": None, "emergency_vehicle_present": None,
                         "signal_status": "GREEN", "signal_timer": 10.0, "vehicles_crossed": 3, "avg_wait_time": None,
                         "green_time_allocated": 20.0}],
            "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": None, "throughput": 0.5,
                        "avg_speed": None, "fuel_saved": None, "co2_saved": None, "emergency_overrides": 0}}


@pytest.fixture
def served(db_url, tmp_path):
    """(client, writer): an app with a 60 s analytics cache and a live writer on the same store, one process."""
    app = create_app(Settings(database_url=db_url, cache_ttl_s=60))
    _info, key = create_key(get_engine(db_url), "tests", ["read"])
    with TestClient(app, headers={"X-API-Key": key}) as client, \
            LiveStoreWriter(db_url, SIM, tmp_path / "buffer", **FAST) as writer:
        writer.put_run("corridor", "max-pressure", 1, {"field": "none"})
        assert writer.flush(30), writer.stats()
        yield client, writer


def cached_entries(client) -> int:
    return client.get("/api/v1/system/info").json()["cache"]["entries"]


def test_an_answer_asked_before_a_live_write_reflects_it_right_after(served):
    client, writer = served

    def passed() -> float | None:
        (run,) = client.get("/api/v1/analytics/simulations").json()["items"]
        return run["metrics"].get("total_vehicles_passed")

    assert passed() is None  # asked (and cached) before the run stored a record
    writer.put_records([record(0), record(1)])
    assert writer.flush(30), writer.stats()
    assert passed() == 6  # not the cached answer for the cache's 60 s

    # alerts, changes and hi-res events are written outside the ingest path, and drop the cache all the same
    engine = AlertEngine([AlertRule(name="stale", metric="stale_sources", op=">", threshold=0)],
                         on_raise=writer.put_alert, on_clear=writer.put_alert)
    for put in (lambda: engine.evaluate(1.0, {"stale_sources": 1}),
                lambda: writer.put_change({"who": "ops", "kind": "timing", "payload": {}, "reason": ""}),
                lambda: writer.put_events([SignalEvent(12.0, "J1", 82, 1)])):
        passed()
        assert cached_entries(client) == 1
        put()
        assert writer.flush(30), writer.stats()
        assert cached_entries(client) == 0


def test_stored_alerts_keep_what_they_named_and_why_they_cleared(served):
    client, writer = served
    engine = AlertEngine([AlertRule(name="stale", metric="stale_sources", op=">", threshold=0, level="error")],
                         on_raise=writer.put_alert, on_clear=writer.put_alert)
    reasons = {"J2": "feed:detectors stale: 14 s old (max 10 s)", "J1": "feed:detectors stale: 12 s old (max 10 s)"}
    (raised,) = engine.evaluate(1.0, {"stale_sources": 2}, subjects={"stale_sources": reasons})
    assert raised.subjects == ("J1", "J2")
    assert writer.flush(30), writer.stats()
    (stored,) = client.get("/api/v1/analytics/alerts", params={"simulation_id": SIM}).json()["items"]
    assert stored["subjects"] == ["J1", "J2"] and stored["cleared_reason"] is None

    (cleared,) = engine.evaluate(2.0, {"stale_sources": 0})
    assert cleared.cleared_reason
    assert writer.flush(30), writer.stats()
    (stored,) = client.get("/api/v1/analytics/alerts", params={"simulation_id": SIM}).json()["items"]
    assert stored["state"] == "cleared"
    assert stored["subjects"] == ["J1", "J2"]  # as at the raise: the clearing does not undo it
    assert stored["cleared_reason"] == cleared.cleared_reason


def test_a_live_run_writing_every_tick_leaves_the_cache_its_answers_between_notices(served, monkeypatch):
    """A live run writes every tick: the cache is told at most once a `CACHE_NOTICE_S` (here 30 s), and at once
    when someone waits for the rows (`flush`), so it keeps answering between the writes."""
    import signalwise.store.live as live

    client, writer = served
    monkeypatch.setattr(live, "CACHE_NOTICE_S", 30.0)
    writer.put_events([SignalEvent(10.0, "J1", 82, 1)])
    assert writer.flush(30)  # told at once: this one is the first notice
    client.get("/api/v1/analytics/simulations")
    assert cached_entries(client) == 1
    writer.put_events([SignalEvent(11.0, "J1", 81, 1)])
    assert until(lambda: writer.pending_rows() == 0, timeout_s=30)
    assert cached_entries(client) == 1  # written within the notice interval: the cache stands
    assert writer.flush(30)
    assert cached_entries(client) == 0
