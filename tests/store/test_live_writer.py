"""The live store writer: everything the live loop hands it reaches the database, in order, through outages."""

import contextlib
import datetime as dt
import sqlite3
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from signalwise.core.eventlog import DEFAULT_START
from signalwise.core.types import SignalEvent
from signalwise.runtime.live.alerts import AlertEngine, AlertRule
from signalwise.store import live, query_events
from signalwise.store.engine import create_store_engine, upgrade
from signalwise.store.live import LiveStoreWriter, list_alerts, list_changes

SIM = "LIVE_TEST"
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}


def record(i: int, sim: str = SIM, cars: int = 3) -> dict:
    return {
        "simulation_id": sim, "intersection_id": "J1",
        "timestamp": dt.datetime(2025, 9, 10, 8, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
        "signals": [{"direction": "north", "vehicle_counts": {"car": cars}, "emergency_vehicle_present": False,
                     "signal_status": "GREEN", "signal_timer": 10.0, "vehicles_crossed": 3, "avg_wait_time": 4.5,
                     "green_time_allocated": 20.0}],
        "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": 4.5, "throughput": 0.5,
                    "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0},
    }


def change(n: int, result: str = "applied") -> dict:
    return {"at": f"2025-09-10T10:00:{n % 60:02d}+02:00", "who": "local", "kind": "timing",
            "payload": {"timing": {"n": n}}, "result": result, "reason": "", "sim_time_s": float(n)}


def wait_until(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def engine_of(url: str):
    engine = create_store_engine(url)
    upgrade(engine)
    return engine


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.fixture
def spy(monkeypatch):
    """Every successful write the writer makes, in order: (kind, rows)."""
    calls = []
    for kind, write in list(live._WRITERS.items()):
        def spying(engine, sim, rows, _write=write, _kind=kind):
            _write(engine, sim, rows)
            calls.append((_kind, list(rows)))
        monkeypatch.setitem(live._WRITERS, kind, spying)
    return calls


def test_records_events_alerts_and_changes_are_written_and_read_back(db_url, tmp_path):
    rules = [AlertRule(name="fallback", metric="fallback_share", op=">", threshold=0.5, level="error")]
    with LiveStoreWriter(db_url, SIM, tmp_path / "buffer", 10_000, **FAST) as writer:
        alerts = AlertEngine(rules, on_raise=writer.put_alert, on_clear=writer.put_alert,
                             on_acknowledge=writer.put_alert)
        assert writer.put_records([record(i) for i in range(3)]) == 3
        assert writer.put_events([SignalEvent(12.34, "J1", 1, 2), SignalEvent(15.0, "J1", 8, 2)]) == 2
        raised = alerts.evaluate(5.0, {"fallback_share": 1.0})[0]
        alerts.acknowledge(raised.id, "operator")
        writer.put_change(change(1))
        writer.put_change(change(2, "refused") | {"reason": "min green above max green"})
        assert writer.flush(30), writer.stats()
        alerts.evaluate(9.0, {"fallback_share": 0.0})
        open_alert = alerts.evaluate(10.0, {"fallback_share": 0.9})[0]
        assert writer.flush(30), writer.stats()
        stats = writer.stats()
    assert stats == {"queued": 0, "buffered_on_disk": 0, "written": 11, "failures": 0, "overflow_rows": 0,
                     "rejected_rows": 0, "last_rejection": None, "last_error": None, "last_error_at": None,
                     "previous_error": None, "previous_error_at": None, "recovered_at": None, "db_ok": True,
                     "unavailable_s": 0.0}
    engine = engine_of(db_url)
    try:
        assert scalar(engine, "SELECT count(*) FROM intersection_records") == 3
        assert scalar(engine, "SELECT count(*) FROM runs WHERE simulation_id = :s", s=SIM) == 1
        events = query_events(engine, simulation_id=SIM)
        assert [(e.timestamp, e.event_code) for e in events] == [
            (DEFAULT_START + dt.timedelta(seconds=12.3), 1), (DEFAULT_START + dt.timedelta(seconds=15), 8)]

        stored = list_alerts(engine, simulation_id=SIM)
        assert [a["id"] for a in stored] == [open_alert.id, raised.id]  # newest raised first
        first = stored[1]
        assert (first["rule"], first["level"], first["metric"], first["value"], first["threshold"]) == (
            "fallback", "error", "fallback_share", 1.0, 0.5)
        assert first["raised_at_s"] == 5.0 and first["cleared_at_s"] == 9.0 and first["active"] is False
        assert first["raised_at"].tzinfo is not None and first["cleared_at"] >= first["raised_at"]
        assert first["acknowledged_by"] == "operator" and first["acknowledged_at"] is not None
        assert "fallback_share = 1 > 0.5" in first["message"]
        assert [a["id"] for a in list_alerts(engine, active=True)] == [open_alert.id]
        assert [a["id"] for a in list_alerts(engine, active=False)] == [raised.id]
        assert list_alerts(engine, simulation_id="OTHER") == []

        changes = list_changes(engine, simulation_id=SIM)
        assert [(c["payload"], c["result"], c["reason"]) for c in changes] == [
            ({"timing": {"n": 2}}, "refused", "min green above max green"), ({"timing": {"n": 1}}, "applied", "")]
        assert changes[1]["at"] == dt.datetime(2025, 9, 10, 8, 0, 1, tzinfo=dt.UTC)
        assert changes[1]["who"] == "local" and changes[1]["kind"] == "timing" and changes[1]["sim_time_s"] == 1.0
        assert len(list_changes(engine, limit=1)) == 1
    finally:
        engine.dispose()


def test_invalid_rows_are_dropped_and_counted_the_rest_written(db_url, tmp_path):
    bad = record(1)
    bad["metrics"]["total_vehicles_passed"] = -1
    with LiveStoreWriter(db_url, SIM, tmp_path / "buffer", 100, **FAST) as writer:
        writer.put_records([record(0), bad, record(2)])
        assert writer.put_change(change(1, result="maybe")) == 0  # refused before it is queued
        writer.put_events([(DEFAULT_START, "J1", "one", 2), (DEFAULT_START, "J1", 1, 2), ("not", "an event")])
        assert writer.flush(30)
        stats = writer.stats()
    assert (stats["written"], stats["rejected_rows"]) == (3, 4)  # 2 records and 1 event; 1 record, 1 change, 2 events
    # a loss, not a state that goes on: its reason beside the count, and no error in force
    assert "invalid rows dropped" in stats["last_rejection"] and stats["last_error"] is None
    engine = engine_of(db_url)
    try:
        assert scalar(engine, "SELECT count(*) FROM intersection_records") == 2
        assert scalar(engine, "SELECT count(*) FROM hires_events") == 1
    finally:
        engine.dispose()


# -- outages ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def database_not_there_yet(db_url, tmp_path):
    """(URL of a database that cannot be opened, a function that brings it into being)."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "later.db"
        path.mkdir()  # a directory where the database file should be: "unable to open database file"
        yield f"sqlite:///{path}", path.rmdir
        return
    name = f"sw_live_{uuid.uuid4().hex[:10]}"
    server = make_url(db_url).set(query={})
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def create():
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

    try:
        yield server.set(database=name).render_as_string(hide_password=False), create
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def put_numbered(writer, start: int, stop: int) -> None:
    """Rows n in [start, stop), one per put, cycling through the four kinds; every change carries its n."""
    for n in range(start, stop):
        kind = n % 4
        if kind == 0:
            writer.put_records([record(n)])
        elif kind == 1:
            writer.put_events([SignalEvent(float(n), "J1", 1, n)])
        elif kind == 2:
            writer.put_change(change(n))
        else:
            writer.put_alert({"id": f"a{n}", "rule": "r", "level": "warning", "metric": "m", "value": n,
                              "threshold": 0, "raised_at_s": float(n), "cleared_at_s": None,
                              "wall_time": "2025-09-10T10:00:00+02:00", "message": f"n={n}"})


def number_of(kind: str, row) -> int:
    if kind == "records":
        ts = row["timestamp"]  # a datetime as put, or its ISO text after a trip through the disk buffer
        ts = dt.datetime.fromisoformat(ts) if isinstance(ts, str) else ts
        return int((ts - record(0)["timestamp"]).total_seconds() // 60)
    if kind == "events":
        return row[3]
    if kind == "changes":
        return float(row["sim_time_s"])
    return int(row["value"])


@pytest.mark.slow
def test_database_away_from_the_start_nothing_lost_within_the_bound_overflow_counted_order_kept(
        db_url, tmp_path, spy):
    bound = 60
    with database_not_there_yet(db_url, tmp_path) as (url, bring_up):
        writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", bound, memory_rows=10, segment_rows=16, batch_rows=8,
                                 **FAST)
        try:
            put_numbered(writer, 0, 40)
            wait_until(lambda: writer.stats()["failures"] >= 2, what="failed attempts")
            wait_until(lambda: writer.stats()["queued"] == 0, what="memory spilled while the database is away")
            stats = writer.stats()
            assert stats["db_ok"] is False and stats["written"] == 0 and stats["buffered_on_disk"] == 40
            assert stats["last_error"]
            assert len(list((tmp_path / "buffer").glob("*.jsonl"))) >= 2  # segments of about 16 rows
            put_numbered(writer, 40, 100)  # 40 more than the bound
            assert writer.stats()["overflow_rows"] == 100 - bound
            assert writer.flush(0.3) is False  # still away: flush says so instead of hanging
            bring_up()
            assert writer.flush(60), writer.stats()
            stats = writer.stats()
        finally:
            writer.close(1)
        assert stats["written"] == bound and stats["overflow_rows"] == 100 - bound and stats["db_ok"] is True
        assert stats["queued"] == stats["buffered_on_disk"] == 0
        assert list((tmp_path / "buffer").glob("*.jsonl")) == []
        # every row within the bound written once, in the order it was put; the ones beyond it dropped
        assert [number_of(kind, row) for kind, rows in spy for row in rows] == list(range(bound))
        engine = engine_of(url)
        try:
            assert scalar(engine, "SELECT count(*) FROM intersection_records") == len(range(0, bound, 4))
            assert scalar(engine, "SELECT count(*) FROM hires_events") == len(range(1, bound, 4))
            assert scalar(engine, "SELECT count(*) FROM alerts") == len(range(3, bound, 4))
            # the changes table numbers rows as they arrive: its ids follow the order they were put
            with engine.connect() as conn:
                ns = [r[0] for r in conn.execute(text("SELECT sim_time_s FROM runtime_changes ORDER BY id"))]
            assert ns == [float(n) for n in range(2, bound, 4)]
        finally:
            engine.dispose()


@contextlib.contextmanager
def outage_mid_run(db_url, tmp_path):
    """(URL, start the outage, end it) for a database that works, then does not, then works again."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'live.db'}"
        holder = {}

        def start():  # another process holds the write lock: every write waits, then fails "database is locked"
            conn = sqlite3.connect(tmp_path / "live.db", isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")
            holder["conn"] = conn

        def end():
            holder.pop("conn").close()

        yield url, start, end
        return
    with database_not_there_yet(db_url, tmp_path) as (url, bring_up):
        bring_up()
        name = make_url(url).database
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")

        def start():  # the server refuses the database and drops its sessions
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                             {"n": name})

        def end():
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

        try:
            yield url, start, end
        finally:
            end()
            admin.dispose()


@pytest.mark.slow
def test_database_lost_mid_run_then_back(db_url, tmp_path, spy):
    with outage_mid_run(db_url, tmp_path) as (url, start, end):
        writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 1_000, memory_rows=20, segment_rows=50, **FAST)
        try:
            put_numbered(writer, 0, 20)
            assert writer.flush(60), writer.stats()
            start()
            put_numbered(writer, 20, 200)
            wait_until(lambda: writer.stats()["failures"] >= 1, what="a failed write")
            wait_until(lambda: writer.stats()["buffered_on_disk"] >= 150, what="rows spilled to disk")
            assert writer.stats()["overflow_rows"] == 0
            # how long the database has refused: what the store_unavailable alert reads, growing with the outage
            first = writer.stats()["unavailable_s"]
            wait_until(lambda: writer.stats()["unavailable_s"] >= first + 0.3, what="the outage's length growing")
            end()
            assert writer.flush(60), writer.stats()
            stats = writer.stats()
        finally:
            writer.close(1)
        assert stats["written"] == 200 and stats["overflow_rows"] == 0 and stats["db_ok"] is True
        assert stats["unavailable_s"] == 0.0  # writes succeed again
        numbers = [number_of(kind, row) for kind, rows in spy for row in rows]
        assert numbers == list(range(200))
        engine = engine_of(url)
        try:
            with engine.connect() as conn:
                ns = [r[0] for r in conn.execute(text("SELECT sim_time_s FROM runtime_changes ORDER BY id"))]
            assert ns == [float(n) for n in range(2, 200, 4)]
        finally:
            engine.dispose()


def test_put_never_blocks_while_the_writer_is_stuck(tmp_path):
    """The writer waits on a locked SQLite database (5 s busy timeout); puts return at once and memory is
    spilled to disk by the other thread meanwhile."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine_of(url).dispose()
    writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 10_000, memory_rows=10,
                             **(FAST | {"busy_timeout_s": 5.0}))
    lock = sqlite3.connect(tmp_path / "live.db", isolation_level=None, check_same_thread=False)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        writer.put_events([SignalEvent(0.0, "J1", 1, 0)])
        time.sleep(0.2)  # the writer is now inside its busy wait
        slowest = 0.0
        for n in range(1, 500):
            began = time.perf_counter()
            writer.put_events([SignalEvent(float(n), "J1", 1, n)])
            slowest = max(slowest, time.perf_counter() - began)
        assert slowest < 0.05, f"a put took {slowest * 1000:.1f} ms"
        wait_until(lambda: writer.stats()["buffered_on_disk"] >= 480, timeout_s=4, what="spilling")
        assert writer.stats()["written"] == 0
    finally:
        lock.close()
    assert writer.close(30)
    assert writer.stats()["written"] == 500


@pytest.mark.slow
def test_rows_left_on_disk_at_close_are_written_by_the_next_writer(db_url, tmp_path, spy):
    with database_not_there_yet(db_url, tmp_path) as (url, bring_up):
        first = LiveStoreWriter(url, SIM, tmp_path / "buffer", 100, **FAST)
        put_numbered(first, 0, 30)
        assert first.close(0.3) is False  # Ctrl-C while the database is away
        assert first.stats()["buffered_on_disk"] == 30 and first.stats()["queued"] == 0
        bring_up()
        second = LiveStoreWriter(url, "NEXT_RUN", tmp_path / "buffer", 100, **FAST)
        try:
            assert second.stats()["buffered_on_disk"] == 30
            put_numbered(second, 30, 34)
            assert second.flush(60), second.stats()
        finally:
            second.close()
        assert [number_of(kind, row) for kind, rows in spy for row in rows] == list(range(34))
        engine = engine_of(url)
        try:
            # rows keep the run they were put for
            assert {c["simulation_id"] for c in list_changes(engine) if c["sim_time_s"] < 30} == {SIM}
            assert {c["simulation_id"] for c in list_changes(engine) if c["sim_time_s"] >= 30} == {"NEXT_RUN"}
        finally:
            engine.dispose()


def test_flush_and_close_from_another_thread_while_puts_go_on(tmp_path):
    # A fixed number of puts, not a time window: a loaded CI machine managed only 23 puts in 0.5 s.
    url = f"sqlite:///{tmp_path / 'live.db'}"
    writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 100_000, **FAST)
    rows_to_put = 300
    count = 0

    def loop():
        nonlocal count
        for number in range(rows_to_put):
            writer.put_events([SignalEvent(float(number), "J1", 1, number)])
            count += 1
            time.sleep(0.0005)

    t = threading.Thread(target=loop)
    t.start()
    deadline = time.monotonic() + 30
    while count < rows_to_put // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    writer.flush(30)  # from this thread while the other still puts; it may not catch up, close must
    t.join(30)
    assert not t.is_alive()
    assert writer.close(30)
    assert writer.stats()["written"] == count == rows_to_put
    assert writer.put_events([SignalEvent(0.0, "J1", 1, 0)]) == 0  # closed: dropped and counted
    assert writer.stats()["overflow_rows"] == 1


def test_rows_stay_in_memory_when_the_disk_buffer_cannot_be_written_either(tmp_path, spy):
    with database_not_there_yet("sqlite", tmp_path) as (url, bring_up):
        (tmp_path / "buffer").write_text("a file where the buffer directory should be")
        writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 50, memory_rows=5, **FAST)
        try:
            put_numbered(writer, 0, 70)
            wait_until(lambda: "cannot spill" in (writer.stats()["last_error"] or ""), what="a failed spill")
            stats = writer.stats()
            assert stats["queued"] == 50 and stats["buffered_on_disk"] == 0 and stats["overflow_rows"] == 20
            bring_up()
            assert writer.flush(60), writer.stats()
        finally:
            writer.close(1)
    assert [number_of(kind, row) for kind, rows in spy for row in rows] == list(range(50))


def test_an_event_the_column_cannot_hold_is_dropped_not_retried_as_an_outage(db_url, tmp_path):
    """A parameter beyond 32 bits: PostgreSQL refused it mid-COPY with a driver error the writer took for an
    outage, so it and every row after it waited forever; it is invalid data, dropped alike on both databases."""
    with LiveStoreWriter(db_url, SIM, tmp_path / "buffer", 100, **FAST) as writer:
        writer.put_events([(DEFAULT_START, "J1", 1, 2**31), (DEFAULT_START, "J1", 1, 2)])
        writer.put_records([record(0)])
        assert writer.flush(10)
        stats = writer.stats()
    assert (stats["written"], stats["rejected_rows"]) == (2, 1)
    engine = engine_of(db_url)
    try:
        assert scalar(engine, "SELECT count(*) FROM hires_events") == 1
        assert scalar(engine, "SELECT count(*) FROM intersection_records") == 1
    finally:
        engine.dispose()


def test_closing_waits_out_a_sqlite_file_another_writer_holds(tmp_path):
    """A writer's close gives up at once when the database refuses (its rows are safe in the buffer), but a SQLite
    file another connection holds for longer than the busy timeout is busy, not refusing: the close waits for it
    and stores everything (a run started after a killed one drains its buffer while its own writer starts)."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine_of(url).dispose()  # the schema first, as a store in use has it
    holder = sqlite3.connect(tmp_path / "live.db", timeout=0, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer's transaction: SQLite's write lock
    writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 100, **FAST)
    released = threading.Timer(1.5, holder.rollback)
    released.start()
    try:
        put_numbered(writer, 0, 12)
        assert writer.close(30), writer.summary()
    finally:
        released.join()
        holder.close()
    summary = writer.summary()
    assert summary["waiting_rows"] == 0 and summary["written"] == 12, summary
