"""Ingestion: validated records in, rows out, all-or-nothing.

`ingest_records` writes any number of records in one transaction, a chunk at
a time so memory stays bounded; a bad record anywhere rolls back everything.
Re-sending a (simulation_id, timestamp, intersection_id) replaces the stored
record and its signal rows.

Bulk paths bypass the ORM: COPY into temporary tables on PostgreSQL and
DB-API `executemany` on SQLite; the ORM's per-object work would cost more
than the 20,000 records/s target allows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from .schemas import IntersectionRecord, first_error
from .tables import Run, RunMetric
from .timefmt import UTC, sqlite_text

#: records written per round trip
CHUNK_RECORDS = 5_000

RECORD_COLUMNS = ("run_id", "intersection_id", "timestamp", "total_vehicles_passed",
                  "avg_wait_time_all_sides", "throughput", "avg_speed", "fuel_saved", "co2_saved",
                  "emergency_overrides")
SIGNAL_COLUMNS = ("record_id", "direction", "car", "bus", "truck", "bike",
                  "rickshaw", "emergency_vehicle_present", "signal_status", "signal_timer",
                  "vehicles_crossed", "avg_wait_time", "green_time_allocated")
KEY = ("run_id", "intersection_id", "timestamp")

#: called after every successful write (the API clears its cache here)
after_write_hooks: list[Callable[[], None]] = []


class RecordError(ValueError):
    """A record that cannot be stored: where it is, which field, why."""

    def __init__(self, where: str, field: str, reason: str):
        self.where, self.field, self.reason = where, field, reason
        super().__init__(f"{where}: {field}: {reason}")


def validate_record(record: IntersectionRecord | dict | str | bytes, where: str) -> IntersectionRecord:
    if isinstance(record, IntersectionRecord):
        return record
    try:
        if isinstance(record, str | bytes):
            return IntersectionRecord.model_validate_json(record)
        if not isinstance(record, dict):
            raise RecordError(where, "record", f"expected a JSON object, got {type(record).__name__}")
        return IntersectionRecord.model_validate(record)
    except ValidationError as exc:
        raise RecordError(where, *first_error(exc)) from None


def iter_jsonl(path: Path) -> Iterator[IntersectionRecord]:
    """Validated records of a JSON Lines file, one at a time; errors name file and line."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield validate_record(line, f"{path}:{line_no}")


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building many small objects.

    Validating a batch allocates millions of dicts and floats, none of them in
    reference cycles; CPython's collector would otherwise run hundreds of
    times over the young objects and halve throughput (measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _notify() -> None:
    for hook in list(after_write_hooks):
        hook()


# ---------------------------------------------------------------------------
# runs and run metrics
# ---------------------------------------------------------------------------


def _insert(conn: Connection, table):  # noqa: ANN001, ANN202
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _run_ids(conn: Connection, simulation_ids: Iterable[str]) -> dict[str, int]:
    """Ids of these runs, creating bare runs for ids seen for the first time."""
    wanted = sorted(set(simulation_ids))
    t = Run.__table__
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        found.update(conn.execute(select(t.c.simulation_id, t.c.id).where(t.c.simulation_id.in_(part))).all())
    missing = [s for s in wanted if s not in found]
    if missing:
        conn.execute(_insert(conn, t).on_conflict_do_nothing(index_elements=["simulation_id"]),
                     [{"simulation_id": s, "created_at": dt.datetime.now(UTC)} for s in missing])
        found.update(conn.execute(select(t.c.simulation_id, t.c.id).where(t.c.simulation_id.in_(missing))).all())
    return found


def register_run(engine: Engine, simulation_id: str, scenario: str, controller: str, seed: int,
                 config: dict, started_at: dt.datetime | None = None) -> None:
    """Create or update a run: what was simulated, with which controller and seed, and how configured."""
    if not simulation_id or len(simulation_id) > 128:
        raise ValueError(f"simulation_id {simulation_id!r} must be 1..128 characters")
    if started_at is not None and started_at.tzinfo is None:
        raise ValueError(f"started_at {started_at.isoformat()} has no time zone")
    try:
        config_json = json.loads(json.dumps(config if config is not None else {}, default=str))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run {simulation_id}: config is not JSON-serialisable: {exc}") from None
    values = {"simulation_id": simulation_id, "scenario": scenario, "controller": controller,
              "seed": int(seed) if seed is not None else None, "config": config_json,
              "started_at": started_at}
    with engine.begin() as conn:
        stmt = _insert(conn, Run.__table__).values(created_at=dt.datetime.now(UTC), **values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["simulation_id"],
            set_={k: stmt.excluded[k] for k in ("scenario", "controller", "seed", "config", "started_at")}))
    _notify()


def write_run_metrics(engine: Engine, simulation_id: str, metrics: dict[str, float]) -> None:
    """Store network-wide metrics of a run as name/value rows (replacing equal names)."""
    rows = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise ValueError(f"run {simulation_id}: metric name {name!r} must be 1..64 characters")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"run {simulation_id}: metric {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"run {simulation_id}: metric {name}={value!r} is not finite")
        rows.append((name, number))
    if not rows:
        return
    with engine.begin() as conn:
        run_id = _run_ids(conn, [simulation_id])[simulation_id]
        stmt = _insert(conn, RunMetric.__table__)
        conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "name"],
                                                set_={"value": stmt.excluded.value}),
                     [{"run_id": run_id, "name": n, "value": v} for n, v in rows])
    _notify()


# ---------------------------------------------------------------------------
# interval records
# ---------------------------------------------------------------------------


def ingest_records(engine: Engine, records: Iterable[IntersectionRecord | dict | str | bytes], *,
                   chunk_records: int = CHUNK_RECORDS,
                   on_progress: Callable[[int], None] | None = None) -> int:
    """Validate and store records in one transaction; returns how many were written.

    Accepts models, dicts or JSON text. Raises `RecordError` (naming the
    record's position, the field path and the reason) and writes nothing if
    any record is invalid. Streams: only one chunk is held in memory.
    """
    iterator = iter(records)
    written = 0
    position = 0
    with engine.begin() as conn:
        writer = _PostgresWriter(conn) if conn.dialect.name == "postgresql" else _SqliteWriter(conn)
        while True:
            chunk: list[IntersectionRecord] = []
            with gc_paused():
                for record in itertools.islice(iterator, chunk_records):
                    chunk.append(validate_record(record, f"record {position}"))
                    position += 1
                if not chunk:
                    break
                writer.write(chunk)
            written += len(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
    if written:
        _notify()
    return written


def _latest_per_key(chunk: list[IntersectionRecord]) -> list[IntersectionRecord]:
    """Last record wins when a chunk repeats a key (as a replay of the same record would)."""
    latest: dict[tuple, IntersectionRecord] = {}
    for r in chunk:
        latest[(r.simulation_id, r.intersection_id, r.timestamp)] = r
    return list(latest.values()) if len(latest) != len(chunk) else chunk


def _rows(chunk: list[IntersectionRecord], run_ids: dict[str, int], stamp: Callable[[dt.datetime], object]):
    """(record rows without id, signal rows without record id) in the same order."""
    records, signals = [], []
    for r in chunk:
        run_id = run_ids[r.simulation_id]
        ts = stamp(r.timestamp.astimezone(UTC))
        m = r.metrics
        records.append((run_id, r.intersection_id, ts, m["total_vehicles_passed"], m["avg_wait_time_all_sides"],
                        m["throughput"], m["avg_speed"], m["fuel_saved"], m["co2_saved"],
                        m["emergency_overrides"]))
        sig = []
        for s in r.signals:
            v = s["vehicle_counts"]
            sig.append((s["direction"], v.get("car", 0), v.get("bus", 0), v.get("truck", 0), v.get("bike", 0),
                        v.get("rickshaw", 0), s["emergency_vehicle_present"], s["signal_status"],
                        float(s["signal_timer"]), s["vehicles_crossed"], float(s["avg_wait_time"]),
                        float(s["green_time_allocated"])))
        signals.append(sig)
    return records, signals


_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in RECORD_COLUMNS if c not in KEY)
_RECORD_INSERT = (f"INSERT INTO intersection_records ({', '.join(RECORD_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))}) ")


class _SqliteWriter:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.run_ids: dict[str, int] = {}
        self.cursor = conn.connection.dbapi_connection.cursor()

    def write(self, chunk: list[IntersectionRecord]) -> None:
        chunk = _latest_per_key(chunk)
        new = {r.simulation_id for r in chunk} - self.run_ids.keys()
        if new:
            self.run_ids.update(_run_ids(self.conn, new))
        records, signals = _rows(chunk, self.run_ids, sqlite_text)
        cur = self.cursor
        if self._any_stored(records):
            # replacements: one upsert per record to learn its id, then fresh signal rows
            ids = [cur.execute(_RECORD_INSERT + f"ON CONFLICT (run_id, intersection_id, timestamp) "
                               f"DO UPDATE SET {_UPDATE_SET} RETURNING id", row).fetchone()[0]
                   for row in records]
            cur.executemany("DELETE FROM signal_records WHERE record_id = ?", [(i,) for i in ids])
        else:
            # all new (we hold SQLite's write lock inside this transaction): number them ourselves
            first = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM intersection_records").fetchone()[0]
            ids = range(first, first + len(records))
            cur.executemany(f"INSERT INTO intersection_records (id, {', '.join(RECORD_COLUMNS)}) "
                            f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 1))})",
                            [(i, *row) for i, row in zip(ids, records, strict=True)])
        cur.executemany(f"INSERT INTO signal_records ({', '.join(SIGNAL_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(SIGNAL_COLUMNS))})",
                        [(i, *sig) for i, sigs in zip(ids, signals, strict=True) for sig in sigs])

    def _any_stored(self, records: list[tuple]) -> bool:
        """Cheap test through the timestamp index: does any stored record of these runs share the span?"""
        first = min(r[2] for r in records)
        last = max(r[2] for r in records)
        run_ids = sorted({r[0] for r in records})
        marks = ", ".join("?" * len(run_ids))
        row = self.cursor.execute(
            f"SELECT 1 FROM intersection_records WHERE timestamp BETWEEN ? AND ? AND run_id IN ({marks}) "
            "LIMIT 1", (first, last, *run_ids)).fetchone()
        return row is not None


class _PostgresWriter:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.run_ids: dict[str, int] = {}
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _records_in (ord integer, run_id integer, intersection_id text, "
            "timestamp timestamptz, total_vehicles_passed integer, avg_wait_time_all_sides float8, "
            "throughput float8, avg_speed float8, fuel_saved float8, co2_saved float8, "
            "emergency_overrides integer) ON COMMIT DROP")
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _signals_in (ord integer, direction text, car integer, "
            "bus integer, truck integer, bike integer, rickshaw integer, emergency_vehicle_present boolean, "
            "signal_status text, signal_timer float8, vehicles_crossed integer, avg_wait_time float8, "
            "green_time_allocated float8) ON COMMIT DROP")
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _ids_in (ord integer, id bigint) ON COMMIT DROP")

    def write(self, chunk: list[IntersectionRecord]) -> None:
        chunk = _latest_per_key(chunk)
        new = {r.simulation_id for r in chunk} - self.run_ids.keys()
        if new:
            self.run_ids.update(_run_ids(self.conn, new))
        records, signals = _rows(chunk, self.run_ids, lambda t: t)
        cur = self.cursor
        cur.execute("TRUNCATE _records_in, _signals_in, _ids_in")
        with cur.copy(f"COPY _records_in (ord, {', '.join(RECORD_COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(records):
                copy.write_row((n, *row))
        with cur.copy(f"COPY _signals_in (ord, {', '.join(SIGNAL_COLUMNS[1:])}) FROM STDIN") as copy:
            for n, sigs in enumerate(signals):
                for sig in sigs:
                    copy.write_row((n, *sig))
        cols = ", ".join(RECORD_COLUMNS)
        cur.execute(
            f"WITH up AS (INSERT INTO intersection_records ({cols}) SELECT {cols} FROM _records_in "
            f"ON CONFLICT (run_id, intersection_id, timestamp) DO UPDATE SET {_UPDATE_SET} "
            "RETURNING id, run_id, intersection_id, timestamp) "
            "INSERT INTO _ids_in (ord, id) SELECT r.ord, up.id FROM up JOIN _records_in r "
            "ON r.run_id = up.run_id AND r.intersection_id = up.intersection_id AND r.timestamp = up.timestamp")
        cur.execute("DELETE FROM signal_records s USING _ids_in i WHERE s.record_id = i.id")
        scols = ", ".join(SIGNAL_COLUMNS[1:])
        cur.execute(f"INSERT INTO signal_records (record_id, {scols}) "
                    f"SELECT i.id, {', '.join('s.' + c for c in SIGNAL_COLUMNS[1:])} "
                    "FROM _signals_in s JOIN _ids_in i ON i.ord = s.ord")
