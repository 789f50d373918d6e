"""The live store writer when its database is replaced mid-run (dropped and made again empty, its tables dropped),
and what it says of an outage once it is over.

A database that comes back empty is migrated and written into; the run's own row and its ATSPM detector
configuration, stored once at the start, are stored again, so the rows written after the replacement are found
under the run as it was stored (scenario, controller, seed, configuration, start), not under a nameless stub.
An outage the database comes back from with nothing lost stores nothing again. Once writes succeed again,
`last_error` is empty and the error is kept as `previous_error`, with when it was last seen and when writing
worked again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import uuid

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool
from support.databases import POSTGRES_URL, postgres_unavailable_reason
from support.outages import TcpProxy

from signalwise.core.types import SignalEvent
from signalwise.store.detector_configs import detector_config_rows
from signalwise.store.engine import create_store_engine, dispose_engines, get_engine, upgrade
from signalwise.store.live import LiveStoreWriter

SIM = "LIVE_REPLACED"
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}
STARTED = dt.datetime(2025, 9, 10, 8, 0, tzinfo=dt.UTC)
DETECTORS = [["J1", 2, 1, "Presence", 0.0, None], ["J1", 2, 2, "Advance", 45.0, 13.4], ["J1", 4, 3, "Presence", None,
                                                                                         None]]


def record(i: int) -> dict:
    return {"simulation_id": SIM, "intersection_id": "J1", "timestamp": STARTED + dt.timedelta(minutes=i),
            "signals": [{"direction": "north", "vehicle_counts": {"car": 3}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 10.0, "vehicles_crossed": 3, "avg_wait_time": 4.5,
                         "green_time_allocated": 20.0}],
            "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": 4.5, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}


def stored_run(url: str) -> dict | None:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT scenario, controller, seed, config, started_at FROM runs "
                                    "WHERE simulation_id = :s"), {"s": SIM}).first()
            runs = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
            records = conn.execute(text("SELECT count(*) FROM intersection_records r JOIN runs u ON r.run_id = u.id "
                                        "WHERE u.simulation_id = :s"), {"s": SIM}).scalar_one()
            events = conn.execute(text("SELECT count(*) FROM hires_events WHERE simulation_id = :s"),
                                  {"s": SIM}).scalar_one()
        detectors = detector_config_rows(engine, SIM)
    finally:
        engine.dispose()
    if row is None:
        return None
    config = row.config if isinstance(row.config, dict) or row.config is None else json.loads(row.config)
    return {"scenario": row.scenario, "controller": row.controller, "seed": row.seed, "config": config,
            "started": row.started_at is not None, "runs": runs, "records": records, "events": events,
            "detectors": sorted(tuple(r[:4]) for r in detectors or [])}


def start_writer(url: str, tmp_path) -> LiveStoreWriter:
    writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 10_000, **FAST)
    writer.put_run("corridor", "max-pressure", 7, {"duration_s": 600, "run_dir": "/runs/x"}, STARTED)
    writer.put_detector_config(DETECTORS)
    writer.put_records([record(0)])
    writer.put_events([SignalEvent(1.0, "J1", 1, 2)])
    assert writer.flush(30), writer.stats()
    return writer


def drop_every_table(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            conn.execute(f'DROP TABLE "{name}"')
    finally:
        conn.close()


def remove_file(path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def replace_file(path) -> None:
    """An empty database file renamed over it, as a restore or a deploy script would put another file there."""
    other = path.with_name("other.db")
    sqlite3.connect(other).close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    other.replace(path)


@contextlib.contextmanager
def replaceable(kind: str, tmp_path):
    """(URL, replace): replace() drops the database and makes it again, empty, as an operator or a restore would.
    SQLite: every table of the file dropped (alembic's too) from another connection, the file removed, or another
    (empty) file renamed over it; PostgreSQL: a database of the test's own, `DROP DATABASE … WITH (FORCE)` and
    `CREATE DATABASE`, as the trial did."""
    if kind.startswith("sqlite"):
        path = tmp_path / "store.db"
        how = {"sqlite-tables": drop_every_table, "sqlite-removed": remove_file, "sqlite-replaced": replace_file}[kind]

        def replace():
            how(path)

        url = f"sqlite:///{path}"
        try:
            yield url, replace
        finally:
            dispose_engines(url)
        return
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    name = f"sw_replaced_{uuid.uuid4().hex[:10]}"
    server = make_url(POSTGRES_URL).set(query={})
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def sql(statement: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(statement))

    def replace():
        sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        sql(f'CREATE DATABASE "{name}"')

    sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False), replace
    finally:
        sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


KINDS = ["sqlite-tables", "sqlite-removed", "sqlite-replaced",
         # 15 s here (a PostgreSQL database dropped and created again under the writer): the SQLite cases run in make test
         pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.slow])]


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_replaced_mid_run_gets_the_runs_row_and_detector_configuration_again(kind, tmp_path):
    with replaceable(kind, tmp_path) as (url, replace):
        writer = start_writer(url, tmp_path)
        try:
            before = stored_run(url)
            assert before["scenario"] == "corridor" and before["detectors"] == sorted(tuple(r[:4]) for r in DETECTORS)
            replace()
            writer.put_records([record(1), record(2)])
            writer.put_events([SignalEvent(61.0, "J1", 1, 2)])
            assert writer.flush(60), writer.stats()
            stats = writer.stats()
        finally:
            writer.close(5)
        after = stored_run(url)
    # what was written before the replacement is gone with the database; what came after is under the run as it
    # was stored, with its detector configuration
    assert after == {"scenario": "corridor", "controller": "max-pressure", "seed": 7,
                     "config": {"duration_s": 600, "run_dir": "/runs/x"}, "started": True, "runs": 1, "records": 2,
                     "events": 1, "detectors": sorted(tuple(r[:4]) for r in DETECTORS)}
    # the outage the replacement caused is over: no error in force, the one it was kept as history
    assert stats["failures"] >= 1 and stats["db_ok"] is True and stats["rejected_rows"] == 0
    assert stats["last_error"] is None and stats["last_error_at"] is None
    assert stats["previous_error"] and stats["previous_error_at"] <= stats["recovered_at"]


@contextlib.contextmanager
def outage_without_loss(url: str, tmp_path):
    """(URL for the writer, away(), back()): the database stops answering the writer and comes back as it was.
    SQLite: another connection holds the write lock (reads still answer); PostgreSQL: a TCP proxy closed."""
    if url.startswith("sqlite"):
        held: list[sqlite3.Connection] = []

        def away():
            conn = sqlite3.connect(make_url(url).database, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            held.append(conn)

        def back():
            held.pop().rollback()

        yield url, away, back
        for conn in held:
            conn.close()
        return
    parsed = make_url(url)
    proxy = TcpProxy((parsed.host, parsed.port or 5432)).start()
    try:
        yield parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy.stop, \
            proxy.start
    finally:
        proxy.stop()


def test_an_outage_with_nothing_lost_stores_the_run_nothing_again(db_url, tmp_path):
    """The check after an outage reads; it writes only what the database lost. An operator's edit of the run's
    row and a detector row removed by hand stay as they are."""
    with outage_without_loss(db_url, tmp_path) as (url, away, back):
        writer = start_writer(url, tmp_path)
        try:
            admin = create_store_engine(db_url)
            with admin.begin() as conn:
                conn.execute(text("UPDATE runs SET config = :c WHERE simulation_id = :s"),
                             {"c": json.dumps({"edited": True}), "s": SIM})
                conn.execute(text("DELETE FROM detector_configs WHERE parameter = 3"))
            admin.dispose()
            before = writer.stats()  # a write of the start may have been late on a loaded machine: history by now
            away()
            writer.put_records([record(1)])
            assert writer.flush(1.0) is False  # it waits: the database does not take it now
            failed = writer.stats()
            back()
            assert writer.flush(60), writer.stats()
            stats = writer.stats()
        finally:
            writer.close(5)
    after = stored_run(db_url)
    assert failed["last_error"] and failed["last_error_at"] and failed["db_ok"] is False
    # the outage in force is not said to be over: no recovery since the database went away
    assert before["db_ok"] is True and before["last_error"] is None, before
    assert failed["previous_error"] == before["previous_error"] and failed["recovered_at"] == before["recovered_at"]
    assert stats["failures"] >= 1 and stats["db_ok"] is True and stats["last_error"] is None
    assert stats["previous_error"]  # the latest error seen before writes worked again
    assert stats["recovered_at"] >= failed["last_error_at"]
    assert after["config"] == {"edited": True} and after["records"] == 2 and after["runs"] == 1
    assert after["detectors"] == sorted(tuple(r[:4]) for r in DETECTORS if r[2] != 3)


def records_in_file(path) -> int:
    """Records of the run in the SQLite file now at `path`, read with a connection of its own; 0 without tables."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM intersection_records r JOIN runs u ON r.run_id = u.id "
                            "WHERE u.simulation_id = ?", (SIM,)).fetchone()[0]
    except sqlite3.OperationalError:  # no such table: nothing was written into this file
        return 0
    finally:
        conn.close()


def records_through(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM intersection_records r JOIN runs u ON r.run_id = u.id "
                                 "WHERE u.simulation_id = :s"), {"s": SIM}).scalar_one()


def test_the_engine_this_process_serves_the_url_with_follows_a_replaced_file(tmp_path):
    """`signalwise live --db sqlite:///X` serves the API from `get_engine(X)` in the run's process: once the writer
    finds the file replaced, that engine is closed, and the API's next read opens the file now at the path."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    try:
        writer = start_writer(url, tmp_path)
        try:
            served = get_engine(url)
            assert records_through(served) == 1  # a pooled connection, open on the file as it is now
            replace_file(path)
            writer.put_records([record(1), record(2)])
            assert writer.flush(60), writer.stats()
        finally:
            writer.close(5)
        assert records_in_file(path) == 2  # the writer stored the run again in the new file
        assert records_through(get_engine(url)) == 2  # and the served engine reads that file, not the old one
    finally:
        dispose_engines(url)


def test_a_file_replaced_while_the_writer_opens_it_is_opened_again(tmp_path):
    """The file is replaced just after the writer's engine opened its first connection, before the engine was
    ready: the writer opens the new file, and its rows are stored there, not into the file that was replaced."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    existing = create_store_engine(url)
    upgrade(existing)  # the store existed before the run
    existing.dispose()
    swapped = []

    def swap_once(dbapi_conn, _record):  # noqa: ANN001
        file = dbapi_conn.execute("PRAGMA database_list").fetchone()[2]
        if not swapped and file and os.path.realpath(file) == os.path.realpath(path):
            swapped.append(file)
            replace_file(path)  # an empty file renamed over it, the connection just opened still on the old one

    event.listen(Pool, "connect", swap_once)
    try:
        writer = start_writer(url, tmp_path)  # flushes the run's row, its detectors, a record and an event
        writer.close(5)
    finally:
        event.remove(Pool, "connect", swap_once)
        dispose_engines(url)
    assert swapped, "the file was never swapped"
    assert records_in_file(path) == 1  # in the file at the path, not in the one replaced
    after = stored_run(url)
    assert after is not None and after["records"] == 1 and after["events"] == 1
    assert after["scenario"] == "corridor" and after["detectors"] == sorted(tuple(r[:4]) for r in DETECTORS)


def test_a_relative_url_is_the_file_the_writer_opened_whatever_the_working_directory(tmp_path, monkeypatch):
    """A relative `sqlite:///store.db` is the file in the working directory when the writer opened it: the writer
    checks that file, by its absolute path, before each write, and writes there; a change of the working
    directory later is neither taken for a replaced file nor followed to another file of that name."""
    first, later = tmp_path / "first", tmp_path / "later"
    first.mkdir()
    later.mkdir()
    monkeypatch.chdir(first)
    url = "sqlite:///store.db"
    writer = start_writer(url, tmp_path)
    try:
        monkeypatch.chdir(later)
        sqlite3.connect(later / "store.db").close()  # another file of that name in the new working directory
        writer.put_records([record(1)])
        assert writer.flush(30), writer.stats()
        stats = writer.stats()
    finally:
        writer.close(5)
        dispose_engines(url)
    assert stats["failures"] == 0  # moving elsewhere is no replacement
    assert records_in_file(first / "store.db") == 2 and records_in_file(later / "store.db") == 0
