"""Ingestion: validated records in, rows out, all-or-nothing.

`ingest_records` writes any number of records in one transaction, a chunk at
a time so memory stays bounded; a bad record anywhere rolls back everything.
`ingest_json_records` does the same from records' JSON text (a JSONL file,
a batch body cut into records), validating in worker processes while this
one writes (`pipeline.py`).
Re-sending a (simulation_id, timestamp, intersection_id) replaces the stored
record and its signal rows. Records sent over the API (`sender`: the API
key's id) go only into simulations that ingested records created, never
into a run a run stored (`RunNotWritable`, HTTP 409), and each row keeps the
id of the key that wrote it. The roll-up totals (`rollups.py`) are kept in
the same transaction; the bulk writers are in `writers.py`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import from_json
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from ..collector import collector_paused
from . import pipeline
from .schemas import IntersectionRecord, RecordList, field_path, first_error
from .tables import Run, RunMetric
from .timefmt import UTC
from .writers import INGESTED, REGISTERED, PostgresWriter, SqliteWriter, run_ids
from .writers import RunNotWritable as RunNotWritable  # what ingesting raises for the API (HTTP 409)

#: records written per round trip
CHUNK_RECORDS = 5_000

#: records per chunk handed to a validation process: small enough that the
#: writer starts early, large enough that a round trip costs little
PIPELINE_CHUNK_RECORDS = 2_000

#: a batch smaller than this is validated in this process (no round trip to a worker)
PIPELINE_MIN_RECORDS = 2_000

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
                      chunk_records: int = CHUNK_RECORDS, workers: int | None = None,
                      stats: dict | None = None, sender: str | None = None) -> int:
    """Store a JSON array of records (a batch request's body), all or nothing.

    The body is cut into its records' JSON texts (`pipeline.split_array`)
    and validated per record, by worker processes for large batches, while
    this process writes. Raises `RecordError` (its `errors` carry absolute
    `loc`s, as validating the whole array would give) or `BatchTooLarge`.
    When the body cannot be cut, or a piece is invalid, the array is parsed
    whole and validated a chunk at a time, which names the problem.
    `sender`: the API key id sending it (`writers.run_ids`; `RunNotWritable`).
    """
    data = body.encode() if isinstance(body, str) else body
    bounds = pipeline.split_array(data)
    if bounds is not None:
        if len(bounds) > max_records:
            raise BatchTooLarge(f"batch holds {len(bounds)} records, more than the maximum of {max_records}")
        if workers is None:
            workers = pipeline.default_workers() if len(bounds) >= PIPELINE_MIN_RECORDS else 0
        try:
            return ingest_json_records(engine, ((i, data[a:b]) for i, (a, b) in enumerate(bounds)),
                                       lambda i: f"record {i}", workers=workers, stats=stats,
                                       chunk_records=PIPELINE_CHUNK_RECORDS if workers else chunk_records,
                                       sender=sender)
        except RecordError:
            pass  # nothing was written; the whole-array path below reports the problems as before
    return _ingest_parsed_array(engine, data, max_records=max_records, chunk_records=chunk_records, sender=sender)


def _ingest_parsed_array(engine: Engine, body: bytes, *, max_records: int, chunk_records: int,
                         sender: str | None = None) -> int:
    """The array parsed whole by pydantic-core, then validated a chunk at a time (errors list up to 20)."""
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
    return ingest_records(engine, items, chunk_records=chunk_records, sender=sender)


class BatchTooLarge(ValueError):
    """More records in one request than the configured maximum (HTTP 413)."""


def ingest_json_records(engine: Engine, items: Iterable[tuple[int, bytes | str]], where: Callable[[int], str], *,
                        chunk_records: int = PIPELINE_CHUNK_RECORDS, workers: int | None = None,
                        on_progress: Callable[[int], None] | None = None, stats: dict | None = None,
                        sender: str | None = None) -> int:
    """Validate and store records given as JSON text, one transaction; returns how many were written.

    `items` are (position, one record's JSON); `where(position)` names a
    record in errors (a file and line, a batch index). With `workers` > 0
    (default `pipeline.default_workers()`) chunks are validated in worker
    processes, up to `workers + 1` chunks ahead of the writer, so memory
    stays bounded however long `items` is. Raises `RecordError` for the
    first invalid record (in `items` order) and writes nothing.
    `stats`, if given, receives `worker_cpu_s`: CPU time spent validating.
    `sender`: the API key id sending them (`writers.run_ids`; `RunNotWritable`).
    """
    workers = pipeline.default_workers() if workers is None else workers
    iterator = iter(items)
    written = 0
    validation_cpu = 0.0
    pending: deque = deque()
    with engine.begin() as conn, collector_paused(age_on_exit=False):
        writer = PostgresWriter(conn, sender) if conn.dialect.name == "postgresql" else SqliteWriter(conn, sender)
        dialect = conn.dialect.name
        executor = pipeline.pool(workers) if workers else None

        def write(positions: list[int], result) -> None:  # noqa: ANN001
            nonlocal written, validation_cpu
            if isinstance(result, pipeline.Invalid):
                pos = positions[result.index]
                raise RecordError(where(pos), result.field, result.reason,
                                  [{**e, "loc": (pos, *e["loc"])} for e in result.errors])
            records, signals, totals, cpu_s = result
            validation_cpu += cpu_s
            writer.write_rows(records, signals, totals)
            written += len(positions)
            if on_progress is not None:
                on_progress(len(positions))

        try:
            while True:
                chunk = list(itertools.islice(iterator, chunk_records))
                more = bool(chunk)
                if more:
                    positions = [p for p, _ in chunk]
                    raw = [text for _, text in chunk]
                    del chunk
                    if executor is None:
                        write(positions, pipeline.validate_rows(raw, dialect))
                        continue
                    pending.append((positions, executor.submit(pipeline.validate_packed, pipeline.pack(raw), dialect)))
                    del raw
                if not pending:
                    break
                if more and len(pending) <= workers:
                    continue  # keep every worker busy, one chunk ahead
                positions, future = pending.popleft()
                write(positions, future.result())
        finally:
            for _, future in pending:
                future.cancel()
    if stats is not None:
        stats["worker_cpu_s"] = stats.get("worker_cpu_s", 0.0) + (validation_cpu if workers else 0.0)
    if written:
        notify_written()
    return written


def iter_jsonl(path: Path) -> Iterator[IntersectionRecord]:
    """Validated records of a JSON Lines file, one at a time; errors name file and line."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield validate_record(line, f"{path}:{line_no}")


def notify_written() -> None:
    """Run the after-write hooks: a served app drops its cached analytics answers (any module writing rows calls it)."""
    for hook in list(after_write_hooks):
        hook()


# ---------------------------------------------------------------------------
# runs and run metrics
# ---------------------------------------------------------------------------


def _insert(conn: Connection, table):  # noqa: ANN001, ANN202
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class SimulationIdTaken(Exception):
    """`register_run` was given the id of a simulation that records sent over the API created and fill: a run is
    never stored into it (its records would pass for the run's), so it is stored under another id. Not a
    `ValueError`: the run is valid, its id is not free."""

    def __init__(self, simulation_id: str, key_id: str | None):
        self.simulation_id, self.key_id = simulation_id, key_id
        by = f" (API key {key_id})" if key_id else ""
        super().__init__(f"simulation {simulation_id!r} holds records sent over the API{by}: a run is not stored "
                         "into it")


def register_run(engine: Engine, simulation_id: str, scenario: str, controller: str, seed: int,
                 config: dict, started_at: dt.datetime | None = None) -> None:
    """Create or update a run: what was simulated, with which controller and seed, and how configured.

    Raises `SimulationIdTaken` when the store holds `simulation_id` for a simulation that ingested records created
    and that holds records (an ingest key can name an id before a run takes it: a live run's is its start time):
    the caller stores the run under another id, as `publish` does (`runtime.records.stored_simulation_id`)."""
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
              "started_at": started_at, "source": REGISTERED}  # the API ingests no more into it (writers.run_ids)
    with engine.begin() as conn:
        _refuse_an_ingested_simulation(conn, simulation_id)
        stmt = _insert(conn, Run.__table__).values(created_at=dt.datetime.now(UTC), **values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["simulation_id"],
            set_={k: stmt.excluded[k] for k in ("scenario", "controller", "seed", "config", "started_at", "source")}))
    notify_written()


def _refuse_an_ingested_simulation(conn: Connection, simulation_id: str) -> None:
    """`SimulationIdTaken` when the run of this id was created by ingested records and holds some. On PostgreSQL
    its row is locked first (an ingest sending records into it holds a share lock until it commits,
    `writers.run_ids`), so records that arrive meanwhile are seen, or find the run registered and are refused."""
    from sqlalchemy import select

    from .tables import IntersectionRecordRow

    runs = Run.__table__
    query = select(runs.c.id, runs.c.source, runs.c.created_by_key_id).where(runs.c.simulation_id == simulation_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None or row.source != INGESTED:
        return
    records = IntersectionRecordRow.__table__
    if conn.execute(select(records.c.id).where(records.c.run_id == row.id).limit(1)).first() is not None:
        raise SimulationIdTaken(simulation_id, row.created_by_key_id)


def forget_run(engine: Engine, simulation_id: str) -> bool:
    """Remove the stored run of this id whole (records, roll-ups, metrics, hi-res events), as `db purge` removes
    an old one; False when there is none. Publishing a run directory starts so: a directory run again under the
    same name is another run, and a run's last intervals, events and metrics must not outlive it."""
    from sqlalchemy import delete, select

    from .tables import HiresEvent

    runs, events = Run.__table__, HiresEvent.__table__
    with engine.begin() as conn:
        stored = conn.execute(select(runs.c.id).where(runs.c.simulation_id == simulation_id)).scalar()
        conn.execute(delete(events).where(events.c.simulation_id == simulation_id))
        if stored is None:
            return False
        conn.execute(delete(runs).where(runs.c.id == stored))  # its records and roll-ups go with it (0003, 0006)
    notify_written()
    return True


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
    notify_written()


# ---------------------------------------------------------------------------
# interval records
# ---------------------------------------------------------------------------


def ingest_records(engine: Engine, records: Iterable[IntersectionRecord | dict | str | bytes], *,
                   chunk_records: int = CHUNK_RECORDS,
                   on_progress: Callable[[int], None] | None = None, sender: str | None = None) -> int:
    """Validate and store records in one transaction; returns how many were written.

    Accepts models, dicts or JSON text. Raises `RecordError` (naming the
    record's position, the field path and the reason) and writes nothing if
    any record is invalid. Streams: at most two chunks are held in memory
    (one being validated, one being written). `sender`: the API key id
    sending them (`writers.run_ids`: `RunNotWritable` for a run ingestion
    did not create, and nothing written).
    """
    iterator = iter(records)
    written = 0
    position = 0
    with engine.begin() as conn, collector_paused(age_on_exit=False):
        if conn.dialect.name == "postgresql":
            writer = _Background(PostgresWriter(conn, sender).write)
        else:
            # SQLite works inside this process: a writer thread would only fight this one for the GIL
            writer = _Inline(SqliteWriter(conn, sender).write)
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
        notify_written()
    return written
