"""An `ingest` key (a detector gateway's) cannot rewrite a run that a run stored (`signalwise run --db`, `compare
--db`, `publish`, a live run): the API ingests only into simulations that ingested records created, answers 409
with the reason otherwise, and writes nothing of the request. Re-sending the same records into its own
simulation stays accepted (docs/store.md: a re-send replaces), and every row an API write stores keeps the id of
the key that wrote it (`sent_by_key_id`, revision 0022); the run keeps the key that created it.

A real uvicorn on 127.0.0.1 over SQLite, and PostgreSQL when 127.0.0.1:5432 answers (the `db_url` fixture);
one real `signalwise run --db` into SQLite (slow)."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings, get_engine, ingest_records, register_run
from signalwise.store.keys import create_key

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _record(sim: str, minute: int, passed: int, wait: float) -> dict:
    return {"simulation_id": sim, "timestamp": f"2025-01-06T00:{minute:02d}:00Z", "intersection_id": "C",
            "signals": [{"direction": "north", "vehicle_counts": {"car": 5}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 10, "vehicles_crossed": 5, "avg_wait_time": wait,
                         "green_time_allocated": 30}],
            "metrics": {"total_vehicles_passed": passed, "avg_wait_time_all_sides": wait, "throughput": 1,
                        "avg_speed": 9, "fuel_saved": 0, "co2_saved": 0, "emergency_overrides": 0}}


def _rows(engine, sim: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT r.timestamp, r.total_vehicles_passed, r.avg_wait_time_all_sides, r.sent_by_key_id "
            "FROM intersection_records r JOIN runs u ON u.id = r.run_id WHERE u.simulation_id = :s "
            "ORDER BY r.timestamp"), {"s": sim}).all()]


def _run(engine, sim: str) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT source, created_by_key_id FROM runs WHERE simulation_id = :s"),
                                  {"s": sim}).one())


@pytest.fixture
def gateway(db_url):
    """(base URL of a real server, engine, {name: (key id, key)}) with two ingest keys and a published run."""
    engine = get_engine(db_url)
    keys = {}
    for name in ("gateway-a", "gateway-b"):
        info, key = create_key(engine, name, ["ingest"])
        keys[name] = (info.id, key)
    # stored as `publish` stores a run: registered first, then its records
    register_run(engine, "published-s1", "single", "fixed", 1, {"run_dir": "/runs/published-s1"},
                 dt.datetime(2026, 11, 29, 23, 17, tzinfo=dt.UTC))
    ingest_records(engine, [_record("published-s1", m, 44, 27.4) for m in (1, 2)])
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0))
    with serving(app) as base:
        yield base, engine, keys


def test_an_ingest_key_cannot_rewrite_a_published_run(gateway):
    base, engine, keys = gateway
    before = _rows(engine, "published-s1")
    assert [r[1:3] for r in before] == [(44, 27.4), (44, 27.4)] and _run(engine, "published-s1") == ("run", None)
    headers = {"X-API-Key": keys["gateway-a"][1]}
    forged = _record("published-s1", 1, 4444, 0.1)
    one = httpx.post(f"{base}/api/v1/ingest/simulation", json=forged, headers=headers)
    assert one.status_code == 409, one.text
    assert one.json()["simulation_id"] == "published-s1"
    assert "not open to ingestion: a run stored it" in one.json()["message"]
    # a new row of the run (a minute it has no record for) is refused as well, and so is a batch naming it
    added = httpx.post(f"{base}/api/v1/ingest/simulation", json=_record("published-s1", 9, 1, 1.0), headers=headers)
    assert added.status_code == 409
    batch = httpx.post(f"{base}/api/v1/ingest/batch", json=[_record("gateway-sim", 1, 3, 2.0), forged],
                       headers=headers)
    assert batch.status_code == 409, batch.text
    # all or nothing: the batch's other simulation was not created, the published run is as it was
    assert _rows(engine, "published-s1") == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs WHERE simulation_id = 'gateway-sim'")).scalar() == 0
    # a token of the key is refused alike
    token = httpx.post(f"{base}/api/v1/auth/token", headers=headers).json()["access_token"]
    by_token = httpx.post(f"{base}/api/v1/ingest/batch", json=[forged],
                          headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 409 and _rows(engine, "published-s1") == before


def test_a_gateways_own_simulation_takes_re_sends_and_records_each_writer(gateway):
    base, engine, keys = gateway
    (a_id, a_key), (b_id, b_key) = keys["gateway-a"], keys["gateway-b"]
    first = [_record("corridor-feed", m, 10 + m, 3.0) for m in (1, 2)]
    made = httpx.post(f"{base}/api/v1/ingest/batch", json=first, headers={"X-API-Key": a_key})
    assert made.status_code == 201 and made.json() == {"ingested": 2}
    assert _run(engine, "corridor-feed") == ("ingest", a_id)
    assert [(r[1], r[3]) for r in _rows(engine, "corridor-feed")] == [(11, a_id), (12, a_id)]
    # the gateway retries the same request: accepted, nothing doubled
    again = httpx.post(f"{base}/api/v1/ingest/batch", json=first, headers={"X-API-Key": a_key})
    assert again.status_code == 201 and len(_rows(engine, "corridor-feed")) == 2
    # another ingest key replaces one record (documented: a re-send replaces): the row says which key did it
    changed = copy.deepcopy(first[1])
    changed["metrics"]["total_vehicles_passed"] = 99
    replaced = httpx.post(f"{base}/api/v1/ingest/simulation", json=changed, headers={"X-API-Key": b_key})
    assert replaced.status_code == 201, replaced.text
    assert [(r[1], r[3]) for r in _rows(engine, "corridor-feed")] == [(11, a_id), (99, b_id)]
    assert _run(engine, "corridor-feed") == ("ingest", a_id)  # its creator stays


def test_records_stored_by_other_writers_name_no_key(gateway):
    _base, engine, _keys = gateway
    assert {r[3] for r in _rows(engine, "published-s1")} == {None}


@pytest.mark.slow
def test_a_run_stored_by_signalwise_run_db_is_refused_to_an_ingest_key(tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    ran = subprocess.run([SIGNALWISE, "run", "--scenario", "single", "--controller", "fixed", "--duration", "120",
                          "--out", str(tmp_path / "runs"), "--db", db], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    sim = run_dir.name
    engine = get_engine(db)
    _info, key = create_key(engine, "ingester", ["ingest"])
    before = _rows(engine, sim)
    assert before and _run(engine, sim) == ("run", None)
    app = create_app(Settings(database_url=db, cache_ttl_s=0))
    with serving(app) as base:
        summary = httpx.get(f"{base}/api/v1/analytics/simulation/{sim}/summary").json()
        first_minute = before[0][0]
        stamp = first_minute if isinstance(first_minute, str) else first_minute.isoformat()
        forged = _record(sim, 0, 4444, 0.1) | {"timestamp": stamp.replace(" ", "T")[:19] + "Z"}
        answer = httpx.post(f"{base}/api/v1/ingest/simulation", json=forged, headers={"X-API-Key": key})
        assert answer.status_code == 409, answer.text
        assert httpx.get(f"{base}/api/v1/analytics/simulation/{sim}/summary").json() == summary
    assert _rows(engine, sim) == before
