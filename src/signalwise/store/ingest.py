"""Ingestion: validated records in, rows out, all-or-nothing.

`ingest_records` writes any number of records in one transaction, a chunk at
a time so memory stays bounded; a bad record anywhere rolls back everything.
Re-sending a (simulation_id, timestamp, intersection_id) replaces the stored
record and its signal rows. The roll-up totals (`rollups.py`) are kept in
the same transaction; the bulk writers are in `writers.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import from_json
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from .schemas import IntersectionRecord, RecordList, field_path, first_error
from .tables import Run, RunMetric
from .timefmt import UTC
from .writers import PostgresWriter, SqliteWriter, run_ids

#: records written per round trip
CHUNK_RECORDS = 5_000

#: called after every successful write (the API clears its cache here)
after_write_hooks: list[Callable[[], None]] = []


#: at most this many problems are kept in `RecordError.errors`
MAX_ERRORS = 20


class RecordError(ValueError):
    """A record that cannot be stored: where it is, which field, why.

    `errors` holds pydantic-style problems (`loc` starting with the record's
    position) when a whole chunk was validated at once; the API returns them.
    """

    def __init__(self, where: str, field: str, reason: str, errors: list[dict] | None = None):
        self.where, self.field, self.reason = where, field, reason
        self.errors = errors or []
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


def validate_chunk(raw: list, first_position: int) -> list[IntersectionRecord]:
    """Validated records of one chunk: one pydantic call for all of it (cheaper than one per record),
    one per record for JSON text (its errors then name the record, not a list index)."""
    if not any(isinstance(r, str | bytes) for r in raw):
        try:
            return RecordList.validate_python(raw)
        except ValidationError as exc:
            errors = [{**e, "loc": (first_position + e["loc"][0], *e["loc"][1:])}
                      for e in exc.errors(include_url=False)[:MAX_ERRORS]]
            first = errors[0]
            raise RecordError(f"record {first['loc'][0]}", field_path(first["loc"][1:]),
                              first.get("msg", "invalid"), errors) from None
    return [validate_record(r, f"record {first_position + i}") for i, r in enumerate(raw)]


class _Inline:
    """Writes each chunk as it is submitted."""

    def __init__(self, write: Callable[[list[IntersectionRecord]], None]):
        self.submit = write

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        return None


class _Background:
    """Writes chunks on one worker thread, one chunk in flight.

    While PostgreSQL inserts chunk k (its own process, the other core), this
    process validates chunk k+1: the two overlap instead of adding up. A
    failed write surfaces at the next submit or at exit, before the
    transaction ends, so all-or-nothing holds.
    """

    def __init__(self, write: Callable[[list[IntersectionRecord]], None]):
        self.write = write
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="signalwise-ingest")
        self.pending: Future | None = None

    def submit(self, chunk: list[IntersectionRecord]) -> None:
        self.wait()
        self.pending = self.pool.submit(self.write, chunk)

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, exc_type, *_) -> None:  # noqa: ANN001, ANN002
        try:
            if exc_type is None:
                self.wait()
            elif self.pending is not None:
                # the transaction will roll back: let the write in flight end first, its outcome no longer matters
                futures_wait([self.pending])
        finally:
            self.pool.shutdown(wait=True)


def ingest_json_array(engine: Engine, body: bytes | str, *, max_records: int,
                      chunk_records: int = CHUNK_RECORDS) -> int:
    """Store a JSON array of records (a batch request's body), all or nothing.

    The array is parsed once, then validated a chunk at a time inside the
    write pipeline, so on PostgreSQL validating overlaps with writing. Raises
    `RecordError` (its `errors` carry absolute `loc`s, as validating the whole
    array would give) or `BatchTooLarge`.
    """
    try:
        items = from_json(body)
    except ValueError as exc:
        raise RecordError("body", "record", f"malformed JSON: {exc}",
                          [{"loc": (), "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}]) from None
    if not isinstance(items, list):
        reason = "Input should be a valid array"
        raise RecordError("body", "body", reason, [{"loc": (), "msg": reason, "type": "list_type"}])
    if not items:
        reason = "List should have at least 1 item after validation, not 0"
        raise RecordError("body", "body", reason, [{"loc": (), "msg": reason, "type": "too_short"}])
    if len(items) > max_records:
        raise BatchTooLarge(f"batch holds {len(items)} records, more than the maximum of {max_records}")
    for i, item in enumerate(items):
        if type(item) is not dict:  # e.g. a string: not a record, and not to be parsed as one
            reason = "Input should be a valid dictionary or instance of IntersectionRecord"
            raise RecordError(f"record {i}", "record", reason, [{"loc": (i,), "msg": reason, "type": "model_type"}])
    return ingest_records(engine, items, chunk_records=chunk_records)


class BatchTooLarge(ValueError):
    """More records in one request than the configured maximum (HTTP 413)."""


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
        run_id = run_ids(conn, [simulation_id])[simulation_id]
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
    any record is invalid. Streams: at most two chunks are held in memory
    (one being validated, one being written).
    """
    iterator = iter(records)
    written = 0
    position = 0
    with engine.begin() as conn, gc_paused():
        if conn.dialect.name == "postgresql":
            writer = _Background(PostgresWriter(conn).write)
        else:
            # SQLite works inside this process: a writer thread would only fight this one for the GIL
            writer = _Inline(SqliteWriter(conn).write)
        with writer:
            while True:
                raw = list(itertools.islice(iterator, chunk_records))
                if not raw:
                    break
                chunk = validate_chunk(raw, position)
                position += len(chunk)
                writer.submit(chunk)
                written += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
    if written:
        _notify()
    return written
