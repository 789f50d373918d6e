"""An ingest key cannot claim a run's id in advance: records sent over the API under a live run's name (its start
time, predictable) create a simulation that `register_run` refuses to adopt (`SimulationIdTaken`), so the run is
stored under another id (the live writer: the `alternate_id` its command gives, `publish`'s id for a directory whose
name is taken) with none of those records, and says so. The simulation the key made keeps its records and stays
open to ingestion. SQLite, and PostgreSQL when 127.0.0.1:5432 answers (the `db_url` fixture)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text

from signalwise.store import ingest_records, register_run
from signalwise.store.keys import create_key
from signalwise.store.live import LiveStoreWriter

NAME = "20261130-010000-live-single-fixed"
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}


def _record(sim: str, minute: int, passed: int) -> dict:
    return {"simulation_id": sim, "timestamp": f"2026-11-30T01:{minute:02d}:00Z", "intersection_id": "C",
            "signals": [{"direction": "north", "vehicle_counts": {"car": 5}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 10, "vehicles_crossed": 5, "avg_wait_time": 2.0,
                         "green_time_allocated": 30}],
            "metrics": {"total_vehicles_passed": passed, "avg_wait_time_all_sides": 2.0, "throughput": 1,
                        "avg_speed": 9, "fuel_saved": 0, "co2_saved": 0, "emergency_overrides": 0}}


def _runs(engine) -> dict:
    with engine.connect() as conn:
        return {sim: (source, scenario, sorted(passed or [])) for sim, source, scenario, passed in [
            (r.simulation_id, r.source, r.scenario, [p for p in (r.passed or "").split(",") if p])
            for r in conn.execute(text(
                "SELECT u.simulation_id, u.source, u.scenario, "
                + ("string_agg(CAST(r.total_vehicles_passed AS TEXT), ',')" if engine.dialect.name == "postgresql"
                   else "group_concat(r.total_vehicles_passed)")
                + " AS passed FROM runs u LEFT JOIN intersection_records r ON r.run_id = u.id "
                  "GROUP BY u.simulation_id, u.source, u.scenario")).all()]}


@pytest.fixture
def claimed(engine):
    """The store after an ingest key sent two records under a live run's name before it started."""
    info, _key = create_key(engine, "gateway", ["ingest"])
    ingest_records(engine, [_record(NAME, m, 999) for m in (0, 1)], sender=info.id)
    return engine, info.id


def test_register_run_does_not_adopt_an_ingested_simulation(claimed):
    engine, key_id = claimed
    try:
        register_run(engine, NAME, "single", "fixed", 1, {}, dt.datetime(2026, 11, 30, 1, tzinfo=dt.UTC))
    except Exception as exc:  # noqa: BLE001 - which one is asserted below
        taken = exc
    else:
        taken = None
    # the key's records did not become the run's
    assert _runs(engine)[NAME] == ("ingest", None, ["999", "999"])
    assert type(taken).__name__ == "SimulationIdTaken" and taken.key_id == key_id and NAME in str(taken)
    # a simulation of that name with no records in it is nobody's: a run takes it
    register_run(engine, "20261130-020000-live-single-fixed", "single", "fixed", 1, {})
    assert _runs(engine)["20261130-020000-live-single-fixed"][:2] == ("run", "single")


def test_a_live_run_whose_name_was_claimed_is_stored_under_another_id(claimed, db_url, tmp_path):
    engine, _key_id = claimed
    other = f"{NAME}~0123abcd"
    writer = LiveStoreWriter(db_url, NAME, tmp_path / NAME / "store-buffer", alternate_id=other, **FAST)
    try:
        writer.put_run("single", "fixed", 1, {"controller": "fixed"}, dt.datetime(2026, 11, 30, 1, tzinfo=dt.UTC))
        writer.put_records([_record(NAME, m, 7) for m in (0, 1, 2)])
        writer.put_alert({"id": "a1", "rule": "queue", "level": "warning", "metric": "queue_veh", "value": 12,
                          "threshold": 10, "wall_time": "2026-11-30T01:00:30+00:00"})
        assert writer.flush(15)
        runs = _runs(engine)
        assert runs[NAME] == ("ingest", None, ["999", "999"])  # the key's, as it sent them
        assert runs[other] == ("run", "single", ["7", "7", "7"])  # the run's, none of the key's
        with engine.connect() as conn:
            assert conn.execute(text("SELECT simulation_id FROM alerts WHERE id = 'a1'")).scalar_one() == other
        assert writer.simulation_id == other
        summary = writer.summary()
        assert summary["simulation_id"] == other
        assert summary["stored_as_note"] == (f"run {NAME} is stored as {other}: the store holds {NAME} for records "
                                             "sent over the API (an ingest key named it first)")
    finally:
        writer.close(5)


def test_a_drain_stores_the_buffered_rows_under_the_id_the_run_moves_to(claimed, db_url, tmp_path):
    from signalwise.store.live import drain

    engine, _key_id = claimed
    other = f"{NAME}~0123abcd"
    run_dir = tmp_path / NAME
    # the database was away the whole run, and the run ended: every row waits in its buffer
    away = LiveStoreWriter(f"sqlite:///{tmp_path}/absent/x.db", NAME, run_dir / "store-buffer", alternate_id=other,
                           **FAST)
    away.put_run("single", "fixed", 1, {}, dt.datetime(2026, 11, 30, 1, tzinfo=dt.UTC))
    away.put_records([_record(NAME, 5, 8)])
    away.close(0.5)
    assert json.loads((run_dir / "store-buffer" / "ids.json").read_text())["alternate_id"] == other
    summary = drain(run_dir, db_url, timeout_s=15)  # `signalwise db drain RUN_DIR`: it knows no alternate id
    assert summary["waiting_rows"] == 0 and summary["simulation_id"] == other
    runs = _runs(engine)
    assert runs[NAME] == ("ingest", None, ["999", "999"])
    assert runs[other] == ("run", "single", ["8"])


def test_a_real_live_run_whose_name_a_key_claimed_is_stored_apart_and_says_so(tmp_path):
    """`signalwise live --db`: the key sent a record under each name the run could take in the next two minutes."""
    import subprocess
    import sys
    from pathlib import Path

    from signalwise.runtime.records import directory_simulation_id
    from signalwise.runtime.run import controller_slug
    from signalwise.store import get_engine

    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = get_engine(db)
    info, _key = create_key(engine, "gateway", ["ingest"])
    now = dt.datetime.now()
    names = [f"{now + dt.timedelta(seconds=s):%Y%m%d-%H%M%S}-live-single-{controller_slug('fixed')}"
             for s in range(120)]
    ingest_records(engine, [_record(name, 0, 999) for name in names], sender=info.id)
    out = tmp_path / "out"
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    proc = subprocess.run([signalwise, "live", "--scenario", "single", "--controller", "fixed", "--speed", "max",
                           "--duration", "120", "--port", "0", "--out", str(out), "--db", db],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = next(out.glob("*-live-single-*"))
    name, other = run_dir.name, directory_simulation_id(run_dir)
    assert name in names
    runs = _runs(engine)
    assert runs[name] == ("ingest", None, ["999"])  # the key's record alone
    assert runs[other][:2] == ("run", "single") and len(runs[other][2]) > 0
    said = " ".join((proc.stdout + proc.stderr).split())
    assert (f"note: run {name} is stored as {other}: the store holds {name} for records sent over the API" in said)
    assert json.loads((run_dir / "run.json").read_text())["store"]["simulation_id"] == other
