"""Bulk writers of interval records, one per database, each inside the caller's transaction.

Both follow the same plan per chunk of validated records:

1. Keys whose stored span (from the roll-ups) cannot overlap the chunk's
   timestamps are certainly new: the fast path writes rows straight away
   (SQLite `executemany` with ids we number under the write lock;
   PostgreSQL `COPY` into the tables with ids reserved from the sequence)
   and merges the chunk's totals (`rollups.deltas`) into the roll-ups
   (SQLite: an upsert per total; PostgreSQL: the totals of each roll-up
   table COPied into a temporary table and merged by one statement: an
   upsert per total took 3x as long, measured, when the 5-minute level
   wrote ~10,000 totals per 10,000 records; its wide rows now write ~2,000).
2. Otherwise some records may replace stored ones: an upsert per record,
   fresh signal rows, and the touched roll-up keys recomputed from the rows.

The ORM is bypassed: its per-object work would cost more than the 20,000
records/s target allows.

Records that come over the API carry their sender (the API key's id): they
are written only into runs that ingestion created (`runs.source` `ingest`),
never into a run a run registered (`RunNotWritable`), and each row keeps
the id of the key that wrote it last (`sent_by_key_id`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, select

from . import rollups
from .rows import record_rows, sqlite_utc_text, utc
from .schemas import DIRECTIONS, IntersectionRecord
from .tables import Run
from .timefmt import UTC

#: a record's approaches side by side, as `rows.record_rows` ends its record rows
RECORD_APPROACH_COLUMNS = tuple(f"{d}_{c}" for d in DIRECTIONS
                                for c in ("avg_wait_time", "vehicles_crossed"))
RECORD_COLUMNS = ("run_id", "intersection_id", "timestamp", "total_vehicles_passed",
                  "avg_wait_time_all_sides", "throughput", "avg_speed", "fuel_saved", "co2_saved",
                  "emergency_overrides", *RECORD_APPROACH_COLUMNS, "sent_by_key_id")
SIGNAL_COLUMNS = ("record_id", "direction", "car", "bus", "truck", "bike",
                  "rickshaw", "emergency_vehicle_present", "signal_status", "signal_timer",
                  "vehicles_crossed", "avg_wait_time", "green_time_allocated")
KEY = ("run_id", "intersection_id", "timestamp")
_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in RECORD_COLUMNS if c not in KEY)


#: `runs.source` of a run that ingested records created, the only runs the API ingests into
INGESTED = "ingest"
#: `runs.source` of a run a run registered (`ingest.register_run`: publish, `run --db`, a live run)
REGISTERED = "run"


class RunNotWritable(ValueError):
    """Records sent over the API name a run that ingestion did not create (HTTP 409): the reason, in one line."""

    def __init__(self, simulation_id: str, source: str | None):
        self.simulation_id, self.source = simulation_id, source
        made = ("a run stored it (signalwise run --db, compare --db, publish, or a live run)" if source == REGISTERED
                else "it was not created by ingested records")
        super().__init__(f"simulation {simulation_id!r} is not open to ingestion: {made}, and the API writes "
                         "records only into simulations that ingested records created; send them under another "
                         "simulation_id")


def run_ids(conn: Connection, simulation_ids: Iterable[str], sender: str | None = None) -> dict[str, int]:
    """Ids of these runs, creating bare runs (`source` `ingest`) for ids seen for the first time.

    `sender`: the API key id that sends the records (None: not the API). It is recorded as the creator of the
    runs it creates, and `RunNotWritable` is raised for a run that ingestion did not create."""
    from sqlalchemy.dialects import postgresql, sqlite

    wanted = sorted(set(simulation_ids))
    t = Run.__table__
    found: dict[str, tuple[int, str | None]] = {}

    # records sent over the API hold their runs' rows (a share lock, PostgreSQL) until they commit: a run registered
    # meanwhile (`ingest.register_run`, which locks the row to update it) waits, then sees them and takes another id
    share = sender is not None and conn.dialect.name == "postgresql"

    def look_up(names: list[str]) -> None:
        for i in range(0, len(names), 500):
            part = names[i:i + 500]
            query = select(t.c.simulation_id, t.c.id, t.c.source).where(t.c.simulation_id.in_(part))
            found.update((s, (run_id, src)) for s, run_id, src in conn.execute(
                query.with_for_update(read=True) if share else query).all())

    look_up(wanted)
    missing = [s for s in wanted if s not in found]
    if missing:
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t)
        conn.execute(insert.on_conflict_do_nothing(index_elements=["simulation_id"]),
                     [{"simulation_id": s, "created_at": dt.datetime.now(UTC), "source": INGESTED,
                       "created_by_key_id": sender} for s in missing])
        look_up(missing)  # with a run another writer made meanwhile, whose source is checked below
    if sender is not None:
        refused = next((s for s in wanted if found[s][1] != INGESTED), None)
        if refused is not None:
            raise RunNotWritable(refused, found[refused][1])
    return {s: i for s, (i, _src) in found.items()}


def with_run_ids(records: list[tuple], ids: dict[str, int],
                 sender: str | None = None) -> tuple[list[tuple], dict[tuple, list]]:
    """(record rows with run ids, and the sender last: `RECORD_COLUMNS`, {(run_id, intersection_id): [first,
    last timestamp in the rows]})."""
    out = []
    spans: dict[tuple, list] = {}
    for row in records:
        run_id, intersection_id, ts = ids[row[0]], row[1], row[2]
        out.append((run_id, *row[1:], sender))
        span = spans.get((run_id, intersection_id))
        if span is None:
            spans[(run_id, intersection_id)] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
    return out, spans


def may_replace(cursor, spans: dict[tuple, list], mark: str) -> bool:  # noqa: ANN001 - DB-API cursor
    """False when no record of the chunk can be stored yet: each key's chunk span misses its stored span."""
    by_run: dict[int, list] = {}
    for (run_id, intersection_id), (first, last) in spans.items():
        by_run.setdefault(run_id, []).append((intersection_id, first, last))
    for run_id, keys in by_run.items():
        stored = {i: (first, last) for i, first, last in cursor.execute(
            "SELECT intersection_id, first_timestamp, last_timestamp FROM intersection_rollups "
            f"WHERE run_id = {mark}", (run_id,)).fetchall()}
        for intersection_id, first, last in keys:
            span = stored.get(intersection_id)
            if span is not None and first <= span[1] and last >= span[0]:
                return True
    return False


def add_totals(cursor, upserts: list[str], totals: list[list[tuple]], ids: dict[str, int]) -> None:  # noqa: ANN001
    """Merge a chunk's `rollups.deltas` (keyed by simulation_id) into the roll-up tables, a row at a time."""
    for statement, rows in zip(upserts, totals, strict=True):
        cursor.executemany(statement, [(ids[r[0]], *r[1:]) for r in rows])


class _ChunkWriter:
    """What both writers share: a chunk of records becomes rows, simulation ids become run ids."""

    run_ids: dict[str, int]
    stamp: staticmethod
    #: the API key id sending the records (None: not the API): `run_ids`
    sender: str | None = None

    def write(self, chunk: list[IntersectionRecord]) -> None:
        self.write_rows(*record_rows(chunk, self.stamp))

    def _with_run_ids(self, records: list[tuple]) -> tuple[list[tuple], list]:
        new = {r[0] for r in records} - self.run_ids.keys()
        if new:
            self.run_ids.update(run_ids(self.conn, new, self.sender))
        return with_run_ids(records, self.run_ids, self.sender)


class SqliteWriter(_ChunkWriter):
    def __init__(self, conn: Connection, sender: str | None = None):
        self.conn, self.sender = conn, sender
        dbapi = conn.connection.dbapi_connection
        self.cursor = dbapi.cursor()
        if not dbapi.in_transaction:
            # take the write lock now: ids are numbered from max(id) and must stay ours
            self.cursor.execute("BEGIN IMMEDIATE")
        self.run_ids: dict[str, int] = {}
        self.upserts = rollups.upsert_statements("sqlite")

    stamp = staticmethod(sqlite_utc_text)

    def write_rows(self, records: list[tuple], signals: list[list[tuple]], totals: list | None = None) -> None:
        """Write `record_rows` output (simulation ids first, keys unique within the chunk), and add its
        `rollups.deltas` (computed here unless given) to the roll-ups."""
        sims = records
        records, spans = self._with_run_ids(records)
        cur = self.cursor
        replacing = may_replace(cur, spans, "?")
        if replacing:
            ids = [cur.execute(f"INSERT INTO intersection_records ({', '.join(RECORD_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))}) "
                               f"ON CONFLICT (run_id, intersection_id, timestamp) DO UPDATE SET {_UPDATE_SET} "
                               "RETURNING id", row).fetchone()[0]
                   for row in records]
            cur.executemany("DELETE FROM signal_records WHERE record_id = ?", [(i,) for i in ids])
        else:
            first = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM intersection_records").fetchone()[0]
            ids = range(first, first + len(records))
            cur.executemany(f"INSERT INTO intersection_records (id, {', '.join(RECORD_COLUMNS)}) "
                            f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 1))})",
                            [(i, *row) for i, row in zip(ids, records, strict=True)])
        cur.executemany(f"INSERT INTO signal_records ({', '.join(SIGNAL_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(SIGNAL_COLUMNS))})",
                        [(i, *sig) for i, sigs in zip(ids, signals, strict=True) for sig in sigs])
        if replacing:
            rollups.recompute(cur, spans, "sqlite")
        else:
            add_totals(cur, self.upserts, totals or rollups.deltas(sims, signals, "sqlite"), self.run_ids)


class PostgresWriter(_ChunkWriter):
    def __init__(self, conn: Connection, sender: str | None = None):
        self.conn, self.sender = conn, sender
        self.run_ids: dict[str, int] = {}
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.sequence = self.cursor.execute(
            "SELECT pg_get_serial_sequence('intersection_records', 'id')").fetchone()[0]
        self.staging = self.rollups_staged = False  # temporary tables made (dropped at commit)
        self.rollups = rollups.rollup_tables("postgresql")
        self.types: dict[tuple, list[int]] = {}  # column type oids per (table, columns) copied into

    stamp = staticmethod(utc)

    def write_rows(self, records: list[tuple], signals: list[list[tuple]], totals: list | None = None) -> None:
        """Write `record_rows` output (simulation ids first, keys unique within the chunk), and add its
        `rollups.deltas` (computed here unless given) to the roll-ups."""
        import psycopg

        sims = records
        records, spans = self._with_run_ids(records)
        cur = self.cursor
        if not may_replace(cur, spans, "%s"):
            cur.execute("SAVEPOINT signalwise_copy")
            try:
                self._copy_new(records, signals)
            except psycopg.errors.UniqueViolation:
                # another writer stored one of these keys since we looked: take the replacing path
                cur.execute("ROLLBACK TO SAVEPOINT signalwise_copy")
            else:
                cur.execute("RELEASE SAVEPOINT signalwise_copy")
                self._merge_totals(totals or rollups.deltas(sims, signals, "postgresql"))
                return
        self._upsert(records, signals)
        rollups.recompute(cur, spans, "postgresql")

    def _copy(self, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        """COPY rows into these columns of `table` in the binary format: a third of the client's CPU
        time of the text format (measured), the column types looked up once per writer."""
        types = self.types.get((table, columns))
        if types is None:
            found = dict(self.cursor.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = "
                                             "%s::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall())
            types = self.types[(table, columns)] = [found[c] for c in columns]
        with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def _copy_new(self, records: list[tuple], signals: list[list[tuple]]) -> list[int]:
        """COPY new records and their signal rows straight into the tables; returns the records' ids."""
        ids = [i for (i,) in self.cursor.execute(f"SELECT nextval('{self.sequence}') FROM generate_series(1, %s)",
                                                 (len(records),)).fetchall()]
        self._copy("intersection_records", ("id", *RECORD_COLUMNS),
                   ((i, *row) for i, row in zip(ids, records, strict=True)))
        self._copy("signal_records", SIGNAL_COLUMNS,
                   ((i, *sig) for i, sigs in zip(ids, signals, strict=True) for sig in sigs))
        return ids

    def _merge_totals(self, totals: list[list[tuple]]) -> None:
        """Merge a chunk's `rollups.deltas` (keyed by simulation_id) into the roll-up tables: COPY into a
        temporary table per roll-up table, then one merging statement each (`rollups.merge_statements`)."""
        ids = self.run_ids
        if not self.rollups_staged:
            self.cursor.execute("; ".join(f"CREATE TEMP TABLE IF NOT EXISTS {t.staging()} (LIKE {t.table}) "
                                          "ON COMMIT DROP" for t in self.rollups))
            self.rollups_staged = True
        for t, rows in zip(self.rollups, totals, strict=True):
            self._copy(t.staging(), t.columns, ((ids[r[0]], *r[1:]) for r in rows))
        self.cursor.execute("; ".join(rollups.merge_statements()))

    def _stage(self) -> None:
        if self.staging:
            return
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _records_in (ord integer, run_id integer, intersection_id text, "
            "timestamp timestamptz, total_vehicles_passed integer, avg_wait_time_all_sides float8, "
            "throughput float8, avg_speed float8, fuel_saved float8, co2_saved float8, "
            "emergency_overrides integer, "
            + ", ".join(f"{c} {'float8' if 'wait' in c else 'integer'}" for c in RECORD_APPROACH_COLUMNS)
            + ", sent_by_key_id text) ON COMMIT DROP")
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _signals_in (ord integer, direction text, car integer, "
            "bus integer, truck integer, bike integer, rickshaw integer, emergency_vehicle_present boolean, "
            "signal_status text, signal_timer float8, vehicles_crossed integer, avg_wait_time float8, "
            "green_time_allocated float8) ON COMMIT DROP")
        self.cursor.execute("CREATE TEMP TABLE IF NOT EXISTS _ids_in (ord integer, id bigint) ON COMMIT DROP")
        self.staging = True

    def _upsert(self, records: list[tuple], signals: list[list[tuple]]) -> None:
        """Records that may replace stored ones: stage with COPY, upsert, then fresh signal rows."""
        self._stage()
        cur = self.cursor
        cur.execute("TRUNCATE _records_in, _signals_in, _ids_in")
        self._copy("_records_in", ("ord", *RECORD_COLUMNS), ((n, *row) for n, row in enumerate(records)))
        self._copy("_signals_in", ("ord", *SIGNAL_COLUMNS[1:]),
                   ((n, *sig) for n, sigs in enumerate(signals) for sig in sigs))
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
