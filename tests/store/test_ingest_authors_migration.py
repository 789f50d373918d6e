"""Revision 0022 (which source made each run, which API key wrote each ingested record) upgrades a store at 0021:
a run a run registered becomes `run` (closed to the API's ingest), a bare simulation of ingested records
`ingest` (a gateway feeding it goes on after the upgrade); no key is made up for rows stored before; down again,
every row stays. SQLite always, PostgreSQL when 127.0.0.1:5432 answers (the `db_url` fixture)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, text

from signalwise.store import create_store_engine, current_revision, upgrade
from signalwise.store.engine import downgrade


@pytest.mark.slow  # every migration from the first, on PostgreSQL about 8 s on the shared machine
def test_a_store_at_0021_upgrades_telling_registered_runs_from_ingested_ones(db_url):
    engine = create_store_engine(db_url)
    upgrade(engine, "0021")
    now = dt.datetime(2026, 11, 29, 23, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (simulation_id, scenario, controller, seed, config, created_at) "
                          "VALUES ('published', 'single', 'fixed', 1, '{}', :now)"), {"now": now})
        conn.execute(text("INSERT INTO runs (simulation_id, created_at) VALUES ('gateway', :now)"), {"now": now})
        run_id = conn.execute(text("SELECT id FROM runs WHERE simulation_id = 'gateway'")).scalar()
        conn.execute(text("INSERT INTO intersection_records (run_id, intersection_id, timestamp, "
                          "total_vehicles_passed, throughput, emergency_overrides) VALUES (:r, 'C', :now, 3, 1, 0)"),
                     {"r": run_id, "now": now})
    upgrade(engine, "0022")
    assert current_revision(engine) == "0022"
    with engine.connect() as conn:
        sources = dict(conn.execute(text("SELECT simulation_id, source FROM runs")).all())
        keys = conn.execute(text("SELECT created_by_key_id FROM runs")).scalars().all()
        senders = conn.execute(text("SELECT sent_by_key_id FROM intersection_records")).scalars().all()
    assert sources == {"published": "run", "gateway": "ingest"}
    assert keys == [None, None] and senders == [None]
    downgrade(engine, "0021")
    assert "source" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert "sent_by_key_id" not in {c["name"] for c in inspect(engine).get_columns("intersection_records")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM intersection_records")).scalar() == 1
    engine.dispose()
