"""A stored run's detector configuration (`store.detector_configs`, migration 0014): stored, replaced, read
back, and gone with its run (forget, purge); a database from before 0014 keeps its runs, which answer as before."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from signalwise.store import (
    bulk_insert_events,
    create_store_engine,
    current_revision,
    forget_run,
    head_revision,
    register_run,
    upgrade,
)
from signalwise.store.detector_configs import detector_config_rows, store_detector_config
from signalwise.store.retention import purge

ROWS = [("C", 2, 1, "Presence", 0.5, 13.89), ("C", 2, 2, "Advance", 40.0, 13.89),
        ("C", 4, 3, "Presence", math.nan, None), ("C", 4, 3, "Presence", 1.0, None)]  # the last repeats the third
T0 = dt.datetime(2025, 1, 6, 7)


def _engine(db_url):
    engine = create_store_engine(db_url)
    upgrade(engine)
    return engine


def test_stored_rows_read_back_sorted_with_missing_numbers_as_none_and_repeats_once(db_url):
    engine = _engine(db_url)
    register_run(engine, "R1", "single", "fixed", 1, {})
    assert store_detector_config(engine, "R1", ROWS) == 3
    assert detector_config_rows(engine, "R1") == [("C", 2, 1, "Presence", 0.5, 13.89),
                                                  ("C", 2, 2, "Advance", 40.0, 13.89),
                                                  ("C", 4, 3, "Presence", None, None)]
    # publishing again replaces the configuration, never adds to it
    assert store_detector_config(engine, "R1", ROWS[:1]) == 1
    assert detector_config_rows(engine, "R1") == [ROWS[0]]
    assert detector_config_rows(engine, "R2") is None  # no such run
    register_run(engine, "R2", "single", "fixed", 2, {})
    assert detector_config_rows(engine, "R2") is None  # a run stored without one
    engine.dispose()


def test_a_configuration_needs_its_run(db_url):
    engine = _engine(db_url)
    with pytest.raises(ValueError, match="no stored run 'NOPE'"):
        store_detector_config(engine, "NOPE", ROWS)
    engine.dispose()


def test_forgetting_or_purging_a_run_removes_its_configuration_and_only_its(db_url):
    engine = _engine(db_url)
    for sim in ("A", "B", "C"):
        register_run(engine, sim, "single", "fixed", 1, {})
        store_detector_config(engine, sim, ROWS)
    assert forget_run(engine, "A")
    assert detector_config_rows(engine, "A") is None and detector_config_rows(engine, "B")
    with engine.begin() as conn:  # B stored long ago: older than the records' retention
        conn.execute(text("UPDATE runs SET created_at = :t WHERE simulation_id = 'B'"),
                     {"t": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})
    assert purge(engine, {}, dry_run=True)["runs"] == 1 and detector_config_rows(engine, "B")
    assert purge(engine, {})["runs"] == 1
    assert detector_config_rows(engine, "B") is None and len(detector_config_rows(engine, "C")) == 3
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM detector_configs")).scalar_one() == 3
    engine.dispose()


def test_a_database_from_before_0014_keeps_its_runs_which_answer_as_before(db_url):
    """Runs stored without a configuration: the migration adds the table, empty; their event measures answer,
    their detector measures are the 422 they were, now saying why and what to do."""
    from signalwise.api import create_app
    from signalwise.store.settings import Settings

    engine = create_store_engine(db_url)
    upgrade(engine, "0013")
    with engine.begin() as conn:  # as a release at 0013 stored it (today's writer knows columns 0013 lacks)
        conn.execute(text("INSERT INTO runs (simulation_id, scenario, controller, seed, created_at) "
                          "VALUES ('OLD', 'single', 'fixed', 1, CURRENT_TIMESTAMP)"))
    rows = []
    for k in range(4):
        t = T0 + dt.timedelta(seconds=60 * k)
        s = [t + dt.timedelta(seconds=x) for x in (0, 5, 20, 24, 30)]
        rows += [(s[0], "C", 1, 2), (s[1], "C", 82, 5), (s[2], "C", 4, 2), (s[2], "C", 8, 2), (s[3], "C", 10, 2),
                 (s[4], "C", 82, 5)]
    bulk_insert_events(engine, rows, simulation_id="OLD")
    assert "detector_configs" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision() >= "0014"
    assert "detector_configs" in inspect(engine).get_table_names()
    assert detector_config_rows(engine, "OLD") is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hires_events")).scalar_one() == len(rows)
    with TestClient(create_app(Settings(database_url=db_url, detector_config=None))) as client:
        r = client.get("/api/v1/atspm/terminations", params={"simulation_id": "OLD"})
        assert r.status_code == 200 and r.json()["total"] > 0 and r.json()["detector_config"] is None
        r = client.get("/api/v1/atspm/arrival_on_green", params={"simulation_id": "OLD"})
        assert r.status_code == 422
        detail = r.json()["message"]
        assert detail.startswith("arrival_on_green needs a detector configuration")
        assert "run 'OLD' was stored without one" in detail and "publish it again" in detail
        assert "SIGNALWISE_DETECTOR_CONFIG" in detail
    engine.dispose()


def test_a_live_runs_writer_stores_its_configuration_after_its_run(db_url, tmp_path):
    """A live run writing to the store as it goes: its configuration (the rows of its detectors.csv, Lane
    last) goes through the writer's FIFO after the run's row; written again, nothing doubles."""
    from signalwise.store.live import LiveStoreWriter

    engine = _engine(db_url)
    lanes = [(*row, "in_0") for row in ROWS]
    with LiveStoreWriter(db_url, "LIVE", tmp_path / "buffer", 1_000, retry_initial_s=0.05) as writer:
        assert writer.put_detector_config(lanes) == 4  # queued before its run: refused when written, never blocking
        writer.put_run("single", "actuated", 1, {})
        assert writer.put_detector_config(lanes) == 4
        assert writer.put_detector_config(lanes[:2]) == 2  # again: kept once
        assert writer.flush(30), writer.stats()
        assert writer.stats()["rejected_rows"] == 4  # the configuration put before the run was stored
    assert detector_config_rows(engine, "LIVE") == [("C", 2, 1, "Presence", 0.5, 13.89),
                                                    ("C", 2, 2, "Advance", 40.0, 13.89),
                                                    ("C", 4, 3, "Presence", None, None)]
    engine.dispose()
