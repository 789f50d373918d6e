"""Roll-ups: running totals per (run, intersection) and (run, intersection, direction),
and per (run, intersection) per UTC hour, quarter hour and 5 minutes.

Questions over whole runs (wait per approach, speed per intersection, the
cross-run comparisons) would otherwise aggregate millions of rows per
request. Ingestion keeps these totals in the same transaction as the rows:

- a chunk of new records adds its per-key sums: `deltas` sums the chunk's
  row tuples per key (in the validation worker when there is one) and the
  writer merges them into the tables (SQLite: `upsert_statements`;
  PostgreSQL: the totals staged by binary COPY, one `merge_statements`
  INSERT ... SELECT per table);
- a chunk that replaces stored records recomputes its keys from the raw rows
  afterwards (`recompute`: whole-run totals of the key, and the buckets its
  span of the chunk touches), so re-sending stays exact (maxima and minima
  cannot be "subtracted").

The bucketed levels (`LEVELS`: 1 hour, 15 minutes, 5 minutes) let a time
range read whole buckets of the coarsest level that fits, then of the finer
ones at its edges, and only the rest (under 5 minutes at each end) from the
interval rows (`store.queries`): at most 1 + 2 x (3 + 2) bucket reads
per group for a range within three hours. A bucket is named by its start in
UTC, as the database writes a timestamp.

A bucketed row is wide: one per (run, bucket, intersection), holding the
intersection totals and, per approach (`DIRECTIONS`), five columns
`{direction}_{total}`. Measured on 1,000,000 records (50 runs): a range
query's cost is the rows it groups (SQLite sorts them, ~0.5 us a row), and
one row per intersection instead of one per approach is a quarter of them;
ingestion writes a fifth of the bucket rows. An approach without a sample in
a bucket holds zeros: waits are never negative, so 0 is also the identity
of its maximum. Bucketed tables are keyed (run, bucket, intersection): a
run's buckets are one range of the key, for a time range of one run, of
every run (a seek per run), and for re-sends; no other index to keep up.

A figure a record did not measure (NULL: a detector-fed live run's waits, speeds, fuel and CO2) is left out:
means divide by their own counts (`avg_wait_time_samples`, `avg_speed_samples`, an approach's `samples` are
its measured waits), fuel and CO2 totals stay NULL while nothing measured them, and the speed's minimum and
maximum ignore it.

Under PostgreSQL's READ COMMITTED a concurrent add waits on the row a
recompute rewrote and then adds to it, so concurrent writers stay exact too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .schemas import DIRECTIONS

INTERSECTION_COLUMNS = ("run_id", "intersection_id", "records", "first_timestamp", "last_timestamp",
                        "total_vehicles_passed", "avg_wait_time_sum", "throughput_sum", "avg_speed_sum",
                        "avg_speed_min", "avg_speed_max", "fuel_saved", "co2_saved", "emergency_overrides",
                        "intervals_with_emergency", "avg_wait_time_samples", "avg_speed_samples")
DIRECTION_COLUMNS = ("run_id", "intersection_id", "direction", "samples", "avg_wait_time_sum",
                     "avg_wait_time_max", "vehicles_crossed", "emergency_present")
DIRECTION_TOTALS = DIRECTION_COLUMNS[3:]
#: the per-approach columns of a bucketed row, approach by approach
APPROACH_COLUMNS = tuple(f"{d}_{c}" for d in DIRECTIONS for c in DIRECTION_TOTALS)
BUCKET_COLUMNS = ("run_id", "intersection_id", "bucket", *INTERSECTION_COLUMNS[2:], *APPROACH_COLUMNS)

# how each column merges with the stored total: "sum", "min" or "max" (NULL, nothing measured, is no value:
# the minimum of NULL and 3 is 3), or "nsum": a sum that stays NULL while only NULLs were added
_INTERSECTION_MERGE = {"records": "sum", "first_timestamp": "min", "last_timestamp": "max",
                       "total_vehicles_passed": "sum", "avg_wait_time_sum": "sum", "throughput_sum": "sum",
                       "avg_speed_sum": "sum", "avg_speed_min": "min", "avg_speed_max": "max",
                       "fuel_saved": "nsum", "co2_saved": "nsum", "emergency_overrides": "sum",
                       "intervals_with_emergency": "sum", "avg_wait_time_samples": "sum", "avg_speed_samples": "sum"}
_DIRECTION_MERGE = {"samples": "sum", "avg_wait_time_sum": "sum", "avg_wait_time_max": "max",
                    "vehicles_crossed": "sum", "emergency_present": "sum"}
_BUCKET_MERGE = {**_INTERSECTION_MERGE,
                 **{f"{d}_{c}": _DIRECTION_MERGE[c] for d in DIRECTIONS for c in DIRECTION_TOTALS}}


@dataclass(frozen=True)
class Level:
    """Totals per time bucket of `width` seconds (dividing an hour), named by the bucket's UTC start."""

    width: int
    table: str


#: the bucketed levels, coarsest first; each width divides the one before
LEVELS = (Level(3600, "bucket_rollups_1h"), Level(900, "bucket_rollups_15min"), Level(300, "bucket_rollups_5min"))


def bucket_sql(dialect: str, width: int) -> str:
    """The start of the `width`-second UTC bucket of `r.timestamp`, as the database writes the column
    (SQLite: SQLAlchemy's text 'YYYY-MM-DD HH:MM:SS.ffffff'; PostgreSQL: timestamptz)."""
    if dialect == "postgresql":
        return f"date_bin('{width} seconds', r.timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    minutes = width // 60
    return f"printf('%s%02d:00.000000', substr(r.timestamp, 1, 14), substr(r.timestamp, 15, 2) / {minutes} * {minutes})"


def bucket_of(dialect: str, width: int) -> Callable:
    """The start of the `width`-second bucket of a stored timestamp in Python, as `bucket_sql` computes it
    (SQLite: the text; PostgreSQL: an aware UTC datetime)."""
    minutes = width // 60
    if dialect == "sqlite":
        return lambda ts: f"{ts[:14]}{int(ts[14:16]) // minutes * minutes:02d}:00.000000"
    return lambda ts: ts.replace(minute=ts.minute // minutes * minutes, second=0, microsecond=0)


def bucket_span(dialect: str, width: int, first, last) -> tuple:  # noqa: ANN001 - stored timestamps
    """[start of `first`'s bucket, end of `last`'s bucket) as the database writes timestamps."""
    of = bucket_of(dialect, width)
    lo, hi = of(first), of(last)
    if dialect == "sqlite":
        return lo, (dt.datetime.fromisoformat(hi) + dt.timedelta(seconds=width)).isoformat(" ", "microseconds")
    return lo, hi + dt.timedelta(seconds=width)


_INTERSECTION_AGGREGATES = (
    "count(*), min(r.timestamp), max(r.timestamp), "
    "sum(r.total_vehicles_passed), coalesce(sum(r.avg_wait_time_all_sides), 0), sum(r.throughput), "
    "coalesce(sum(r.avg_speed), 0), min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), sum(r.co2_saved), "
    "sum(r.emergency_overrides), "
    "sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s WHERE s.record_id = r.id "
    "AND s.emergency_vehicle_present) THEN 1 ELSE 0 END), count(r.avg_wait_time_all_sides), count(r.avg_speed) "
    "FROM intersection_records r")
#: an approach's `samples` are its measured waits: an approach with none has no row (as `deltas` leaves it out)
_DIRECTION_AGGREGATES = (
    "count(s.avg_wait_time), coalesce(sum(s.avg_wait_time), 0), coalesce(max(s.avg_wait_time), 0), "
    "coalesce(sum(s.vehicles_crossed), 0), sum(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) "
    "FROM signal_records s JOIN intersection_records r ON r.id = s.record_id")
_DIRECTION_HAVING = " HAVING count(s.avg_wait_time) > 0"


class Rollup:
    """One roll-up table: its key, its columns, how they merge, and the SQL that sums them from raw rows."""

    def __init__(self, table: str, keys: tuple[str, ...], columns: tuple[str, ...], merge: dict[str, str],
                 totals: Callable[[str], str], level: Level | None = None):
        self.table, self.keys, self.columns, self.merge = table, keys, columns, merge
        self.totals, self.level = totals, level

    def insert(self) -> str:
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) "

    def on_conflict(self, dialect: str) -> str:
        """The clause that merges a row into the stored totals of its key."""
        least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
        # SQLite's min(a, NULL) is NULL: the coalesce keeps the known side (PostgreSQL's LEAST already does)
        how = {"sum": "{t}.{c} + excluded.{c}", "nsum": "coalesce({t}.{c} + excluded.{c}, {t}.{c}, excluded.{c})",
               "min": "coalesce(" + least + "({t}.{c}, excluded.{c}), {t}.{c}, excluded.{c})",
               "max": "coalesce(" + greatest + "({t}.{c}, excluded.{c}), {t}.{c}, excluded.{c})"}
        return (f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = " + how[self.merge[c]].format(t=self.table, c=c)
                            for c in self.columns if c not in self.keys))

    def staging(self) -> str:
        """The PostgreSQL temporary table a chunk's totals are copied into before `merge_statements`."""
        return f"_{self.table}_in"


def _grouped(group: str, aggregates: str, having: str = "") -> Callable[[str], str]:
    return lambda where: f"SELECT {group}, {aggregates}{where} GROUP BY {group}{having}"


def bucket_totals_sql(dialect: str, width: int) -> Callable[[str], str]:
    """SELECT of a bucketed level's rows (`BUCKET_COLUMNS` order) from the records matching a WHERE
    clause on `r` (intersection_records): each record's approaches pivoted into one row first, so the
    intersection totals count each record once."""
    per_record = ", ".join(
        f"sum(CASE WHEN s.direction = '{d}' AND s.avg_wait_time IS NOT NULL THEN 1 ELSE 0 END) AS {d}_n, "
        f"sum(CASE WHEN s.direction = '{d}' THEN s.avg_wait_time ELSE 0 END) AS {d}_wait, "
        f"sum(CASE WHEN s.direction = '{d}' THEN s.vehicles_crossed ELSE 0 END) AS {d}_crossed, "
        f"sum(CASE WHEN s.direction = '{d}' AND s.emergency_vehicle_present THEN 1 ELSE 0 END) AS {d}_emergency"
        for d in DIRECTIONS)
    approaches = ", ".join(f"coalesce(sum(p.{d}_n), 0), coalesce(sum(p.{d}_wait), 0), coalesce(max(p.{d}_wait), 0), "
                           f"coalesce(sum(p.{d}_crossed), 0), coalesce(sum(p.{d}_emergency), 0)" for d in DIRECTIONS)
    return lambda where: (
        f"WITH rec AS (SELECT r.*, {bucket_sql(dialect, width)} AS bucket FROM intersection_records r{where}), "
        f"p AS (SELECT s.record_id, {per_record}, "
        "max(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) AS emergency "
        "FROM signal_records s JOIN rec ON s.record_id = rec.id GROUP BY s.record_id) "
        "SELECT rec.run_id, rec.intersection_id, rec.bucket, count(*), min(rec.timestamp), max(rec.timestamp), "
        "sum(rec.total_vehicles_passed), coalesce(sum(rec.avg_wait_time_all_sides), 0), sum(rec.throughput), "
        "coalesce(sum(rec.avg_speed), 0), min(rec.avg_speed), max(rec.avg_speed), sum(rec.fuel_saved), "
        "sum(rec.co2_saved), sum(rec.emergency_overrides), coalesce(sum(p.emergency), 0), "
        f"count(rec.avg_wait_time_all_sides), count(rec.avg_speed), {approaches} "
        "FROM rec LEFT JOIN p ON p.record_id = rec.id GROUP BY rec.run_id, rec.intersection_id, rec.bucket")


def rollup_tables(dialect: str) -> list[Rollup]:
    """The roll-ups: per (run, intersection[, direction]) over the whole run, then per bucket of each level."""
    tables = [
        Rollup("intersection_rollups", ("run_id", "intersection_id"), INTERSECTION_COLUMNS, _INTERSECTION_MERGE,
               _grouped("r.run_id, r.intersection_id", _INTERSECTION_AGGREGATES)),
        Rollup("direction_rollups", ("run_id", "intersection_id", "direction"), DIRECTION_COLUMNS, _DIRECTION_MERGE,
               _grouped("r.run_id, r.intersection_id, s.direction", _DIRECTION_AGGREGATES, _DIRECTION_HAVING)),
    ]
    return tables + [Rollup(level.table, ("run_id", "bucket", "intersection_id"), BUCKET_COLUMNS, _BUCKET_MERGE,
                            bucket_totals_sql(dialect, level.width), level) for level in LEVELS]


def upsert_statements(dialect: str) -> list[str]:
    """Per roll-up table (in `rollup_tables` order), an upsert merging one row of totals into the stored ones."""
    mark = "?" if dialect == "sqlite" else "%s"
    return [f"{t.insert()}VALUES ({', '.join([mark] * len(t.columns))}) {t.on_conflict(dialect)}"
            for t in rollup_tables(dialect)]


def merge_statements() -> list[str]:
    """Per roll-up table (in `rollup_tables` order), a PostgreSQL statement merging every row of its
    staging table into the stored totals and emptying it. Rows go in key order, so concurrent
    writers lock keys in the same order (no deadlock)."""
    return [f"WITH staged AS (DELETE FROM {t.staging()} RETURNING *) {t.insert()}"
            f"SELECT {', '.join(t.columns)} FROM staged ORDER BY {', '.join(t.keys)} {t.on_conflict('postgresql')}"
            for t in rollup_tables("postgresql")]


_TOTALS = len(INTERSECTION_COLUMNS) - 2  # the intersection totals, first in a bucket row's values
_APPROACH = {d: _TOTALS + 5 * n for n, d in enumerate(DIRECTIONS)}  # where each approach's five start


def deltas(records: list[tuple], signals: list[list[tuple]], dialect: str) -> list[list[tuple]]:
    """Totals of a chunk's rows per roll-up table (in `rollup_tables` order), keyed by simulation_id
    where the tables have run_id. `records`/`signals` as `writers.record_rows` builds them (keys unique).

    The rows are summed per finest bucket (a row of `BUCKET_COLUMNS` values after the key); each coarser
    level merges the totals of the finer one, and the whole-run totals those of the coarsest.
    """
    finest = bucket_of(dialect, LEVELS[-1].width)
    buckets: dict = {}
    totals: dict[tuple, list] = {}
    for rec, sigs in zip(records, signals, strict=True):
        sim, inter, ts = rec[0], rec[1], rec[2]
        bucket = buckets.get(ts)
        if bucket is None:
            bucket = buckets[ts] = finest(ts)
        wait, speed, fuel, co2 = rec[4], rec[6], rec[7], rec[8]  # None: not measured, left out
        t = totals.get((sim, inter, bucket))
        if t is None:
            t = totals[(sim, inter, bucket)] = [0, ts, ts, 0, 0.0, 0.0, 0.0, speed, speed, None, None, 0, 0, 0, 0,
                                                *[0, 0.0, 0.0, 0, 0] * len(DIRECTIONS)]
        else:
            if ts < t[1]:
                t[1] = ts
            if ts > t[2]:
                t[2] = ts
            if speed is not None:
                if t[7] is None or speed < t[7]:
                    t[7] = speed
                if t[8] is None or speed > t[8]:
                    t[8] = speed
        t[0] += 1
        t[3] += rec[3]
        t[5] += rec[5]
        if wait is not None:
            t[4] += wait
            t[13] += 1
        if speed is not None:
            t[6] += speed
            t[14] += 1
        if fuel is not None:
            t[9] = fuel if t[9] is None else t[9] + fuel
        if co2 is not None:
            t[10] = co2 if t[10] is None else t[10] + co2
        t[11] += rec[9]
        emergency = 0
        for s in sigs:
            o, wait, crossed = _APPROACH[s[0]], s[10], s[9]
            if wait is not None:
                t[o] += 1
                t[o + 1] += wait
                if wait > t[o + 2]:
                    t[o + 2] = wait
            if crossed is not None:
                t[o + 3] += crossed
            if s[6]:
                t[o + 4] += 1
                emergency = 1
        t[12] += emergency
    how = [_BUCKET_MERGE[c] for c in BUCKET_COLUMNS[3:]]
    levels = [totals]  # finest first
    for level in reversed(LEVELS[:-1]):
        of = bucket_of(dialect, level.width)
        levels.insert(0, _merged(levels[0], how, {k[-1]: of(k[-1]) for k in levels[0]}))
    whole = _merged(levels[0], how, None)
    per_direction = [(*k, d, *v[o:o + 5]) for k, v in whole.items() for d, o in _APPROACH.items() if v[o]]
    return [[(*k, *v[:_TOTALS]) for k, v in whole.items()], per_direction,
            *[[(*k, *v) for k, v in totals.items()] for totals in levels]]


def _merged(totals: dict[tuple, list], how: list[str], starts: dict | None) -> dict[tuple, list]:
    """Totals per coarser key: the bucket (the key's last part) mapped by `starts`, or dropped (None);
    each column merged as the tables merge it (`how`)."""
    sums, nsums, mins, maxs = ([n for n, m in enumerate(how) if m == kind] for kind in ("sum", "nsum", "min", "max"))
    out: dict[tuple, list] = {}
    for k, v in totals.items():
        key = k[:-1] if starts is None else (*k[:-1], starts[k[-1]])
        t = out.get(key)
        if t is None:
            out[key] = v.copy()
            continue
        for n in sums:
            t[n] += v[n]
        for n in nsums:  # None (nothing measured) adds nothing
            if v[n] is not None:
                t[n] = v[n] if t[n] is None else t[n] + v[n]
        for n in mins:
            if v[n] is not None and (t[n] is None or v[n] < t[n]):
                t[n] = v[n]
        for n in maxs:
            if v[n] is not None and (t[n] is None or v[n] > t[n]):
                t[n] = v[n]
    return out


def recompute_statements(dialect: str, mark: str) -> list[tuple[str, Level | None]]:
    """(statement, level) pairs that rebuild the totals of one (run_id, intersection_id) from the raw rows:
    all deletions first, then the inserts.

    Whole-run tables (level None) take the parameters (run_id,
    intersection_id); bucketed ones rebuild the buckets of a span and take
    (run_id, intersection_id, first bucket's start, last bucket's end).
    """
    key = f"run_id = {mark} AND intersection_id = {mark}"
    deletes, inserts = [], []
    for t in rollup_tables(dialect):
        where = f" WHERE r.run_id = {mark} AND r.intersection_id = {mark}"
        span = ""
        if t.level is not None:
            span = f" AND bucket >= {mark} AND bucket < {mark}"
            where += f" AND r.timestamp >= {mark} AND r.timestamp < {mark}"
        deletes.append((f"DELETE FROM {t.table} WHERE {key}{span}", t.level))
        inserts.append((f"{t.insert()}{t.totals(where)}", t.level))
    return deletes + inserts


def recompute(cursor, spans: dict[tuple, list], dialect: str) -> None:  # noqa: ANN001 - DB-API cursor
    """Rebuild the totals of these {(run_id, intersection_id): [first, last timestamp]} from the raw rows:
    the whole-run totals of each key, and the buckets its span touches."""
    keys = sorted(spans)
    if not keys:
        return
    for stmt, level in recompute_statements(dialect, "?" if dialect == "sqlite" else "%s"):
        if level is None:
            cursor.executemany(stmt, keys)
        else:
            cursor.executemany(stmt, [(*k, *bucket_span(dialect, level.width, *spans[k])) for k in keys])
