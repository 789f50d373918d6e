"""Roll-ups: running totals per (run, intersection) and (run, intersection, direction),
each also per UTC hour and per 5-minute bucket.

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

The bucketed levels (`LEVELS`: hours, then 5 minutes) let a time range read
whole hours from the hourly tables, whole 5-minute buckets of its partial
hours from the 5-minute tables, and only the rest (under 5 minutes at each
end) from the interval rows (`analytics.queries`). A bucket is named by its
start in UTC, as the database writes a timestamp. Bucketed tables are keyed
(run, bucket, intersection[, direction]): a run's buckets are one range of
the key, for a time range of one run, of every run (a seek per run), and for
re-sends; no other index to keep up (measured on SQLite: an index on the
bucket made each row written 1.7x as costly, and there are ~10,000 bucket
rows per 10,000 records).

Under PostgreSQL's READ COMMITTED a concurrent add waits on the row a
recompute rewrote and then adds to it, so concurrent writers stay exact too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

INTERSECTION_COLUMNS = ("run_id", "intersection_id", "records", "first_timestamp", "last_timestamp",
                        "total_vehicles_passed", "avg_wait_time_sum", "throughput_sum", "avg_speed_sum",
                        "avg_speed_min", "avg_speed_max", "fuel_saved", "co2_saved", "emergency_overrides",
                        "intervals_with_emergency")
DIRECTION_COLUMNS = ("run_id", "intersection_id", "direction", "samples", "avg_wait_time_sum",
                     "avg_wait_time_max", "vehicles_crossed", "emergency_present")

# how each column merges with the stored total: "sum", "min" or "max"
_INTERSECTION_MERGE = {"records": "sum", "first_timestamp": "min", "last_timestamp": "max",
                       "total_vehicles_passed": "sum", "avg_wait_time_sum": "sum", "throughput_sum": "sum",
                       "avg_speed_sum": "sum", "avg_speed_min": "min", "avg_speed_max": "max",
                       "fuel_saved": "sum", "co2_saved": "sum", "emergency_overrides": "sum",
                       "intervals_with_emergency": "sum"}
_DIRECTION_MERGE = {"samples": "sum", "avg_wait_time_sum": "sum", "avg_wait_time_max": "max",
                    "vehicles_crossed": "sum", "emergency_present": "sum"}


@dataclass(frozen=True)
class Level:
    """Totals per time bucket of `width` seconds (dividing an hour), named by the bucket's UTC start."""

    width: int
    intersection_table: str
    direction_table: str
    column: str


#: the bucketed levels, coarsest first; each width divides the one before
LEVELS = (Level(3600, "intersection_hourly_rollups", "direction_hourly_rollups", "hour"),
          Level(300, "intersection_5min_rollups", "direction_5min_rollups", "bucket"))


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
    "sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), sum(r.throughput), sum(r.avg_speed), "
    "min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), sum(r.co2_saved), sum(r.emergency_overrides), "
    "sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s WHERE s.record_id = r.id "
    "AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) "
    "FROM intersection_records r")
_DIRECTION_AGGREGATES = (
    "count(*), sum(s.avg_wait_time), max(s.avg_wait_time), "
    "sum(s.vehicles_crossed), sum(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) "
    "FROM signal_records s JOIN intersection_records r ON r.id = s.record_id")


class Rollup:
    """One roll-up table: its key, its columns, how they merge, and the aggregate that defines them."""

    def __init__(self, table: str, keys: tuple[str, ...], group: tuple[str, ...], columns: tuple[str, ...],
                 merge: dict[str, str], aggregates: str, level: Level | None = None):
        self.table, self.keys, self.group, self.columns, self.merge = table, keys, group, columns, merge
        self.aggregates, self.level = aggregates, level

    def select(self) -> str:
        """SELECT of the totals over the raw rows (append WHERE ... and then `group_by()`)."""
        return f"SELECT {', '.join(self.group)}, {self.aggregates}"

    def group_by(self) -> str:
        return " GROUP BY " + ", ".join(self.group)

    def insert(self) -> str:
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) "

    def on_conflict(self, dialect: str) -> str:
        """The clause that merges a row into the stored totals of its key."""
        least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
        how = {"sum": "{t}.{c} + excluded.{c}", "min": least + "({t}.{c}, excluded.{c})",
               "max": greatest + "({t}.{c}, excluded.{c})"}
        return (f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = " + how[self.merge[c]].format(t=self.table, c=c)
                            for c in self.columns if c not in self.keys))

    def staging(self) -> str:
        """The PostgreSQL temporary table a chunk's totals are copied into before `merge_statements`."""
        return f"_{self.table}_in"


def rollup_tables(dialect: str) -> list[Rollup]:
    """The roll-ups: per (run, intersection[, direction]), whole-run and then per bucket of each level."""
    i_keys, d_keys = ("run_id", "intersection_id"), ("run_id", "intersection_id", "direction")
    i_group, d_group = ("r.run_id", "r.intersection_id"), ("r.run_id", "r.intersection_id", "s.direction")
    i_cols, d_cols = INTERSECTION_COLUMNS, DIRECTION_COLUMNS
    tables = [
        Rollup("intersection_rollups", i_keys, i_group, i_cols, _INTERSECTION_MERGE, _INTERSECTION_AGGREGATES),
        Rollup("direction_rollups", d_keys, d_group, d_cols, _DIRECTION_MERGE, _DIRECTION_AGGREGATES),
    ]
    for level in LEVELS:
        bucket, col = bucket_sql(dialect, level.width), level.column
        tables += [
            Rollup(level.intersection_table, ("run_id", col, *i_keys[1:]), (*i_group, bucket),
                   (*i_cols[:2], col, *i_cols[2:]), _INTERSECTION_MERGE, _INTERSECTION_AGGREGATES, level),
            Rollup(level.direction_table, ("run_id", col, *d_keys[1:]), (*d_group, bucket),
                   (*d_cols[:3], col, *d_cols[3:]), _DIRECTION_MERGE, _DIRECTION_AGGREGATES, level),
        ]
    return tables


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


def deltas(records: list[tuple], signals: list[list[tuple]], dialect: str) -> list[list[tuple]]:
    """Totals of a chunk's rows per roll-up table (in `rollup_tables` order), keyed by simulation_id
    where the tables have run_id. `records`/`signals` as `writers.record_rows` builds them (keys unique).

    The rows are summed per finest bucket; each coarser level merges the totals of the finer one.
    """
    finest = bucket_of(dialect, LEVELS[-1].width)
    buckets: dict = {}
    per_i: dict[tuple, list] = {}
    per_d: dict[tuple, list] = {}
    for rec, sigs in zip(records, signals, strict=True):
        sim, inter, ts = rec[0], rec[1], rec[2]
        bucket = buckets.get(ts)
        if bucket is None:
            bucket = buckets[ts] = finest(ts)
        emergency = 0
        for s in sigs:
            wait, present = s[10], s[6]
            key = (sim, inter, s[0], bucket)
            d = per_d.get(key)
            if d is None:
                per_d[key] = [1, wait, wait, s[9], 1 if present else 0]
            else:
                d[0] += 1
                d[1] += wait
                if wait > d[2]:
                    d[2] = wait
                d[3] += s[9]
                if present:
                    d[4] += 1
            if present:
                emergency = 1
        speed = rec[6]
        i = per_i.get((sim, inter, bucket))
        if i is None:
            per_i[(sim, inter, bucket)] = [1, ts, ts, rec[3], rec[4], rec[5], speed, speed, speed, rec[7], rec[8],
                                           rec[9], emergency]
        else:
            i[0] += 1
            if ts < i[1]:
                i[1] = ts
            if ts > i[2]:
                i[2] = ts
            i[3] += rec[3]
            i[4] += rec[4]
            i[5] += rec[5]
            i[6] += speed
            if speed < i[7]:
                i[7] = speed
            if speed > i[8]:
                i[8] = speed
            i[9] += rec[7]
            i[10] += rec[8]
            i[11] += rec[9]
            i[12] += emergency
    i_how = [_INTERSECTION_MERGE[c] for c in INTERSECTION_COLUMNS[2:]]
    d_how = [_DIRECTION_MERGE[c] for c in DIRECTION_COLUMNS[3:]]
    levels = [(per_i, per_d)]  # finest first
    for level in reversed(LEVELS[:-1]):
        of = bucket_of(dialect, level.width)
        starts = {b: of(b) for b in set(buckets.values())}  # finest bucket -> this level's
        buckets = {ts: starts[b] for ts, b in buckets.items()}
        levels.insert(0, (_merged(levels[0][0], i_how, starts), _merged(levels[0][1], d_how, starts)))
    whole = (_merged(levels[0][0], i_how, None), _merged(levels[0][1], d_how, None))
    return [[(*k, *v) for k, v in totals.items()] for pair in (whole, *levels) for totals in pair]


def _merged(totals: dict[tuple, list], how: list[str], starts: dict | None) -> dict[tuple, list]:
    """Totals per coarser key: the bucket (the key's last part) mapped by `starts`, or dropped (None);
    each column merged as the tables merge it (`how`)."""
    sums, mins, maxs = ([n for n, m in enumerate(how) if m == kind] for kind in ("sum", "min", "max"))
    out: dict[tuple, list] = {}
    for k, v in totals.items():
        key = k[:-1] if starts is None else (*k[:-1], starts[k[-1]])
        t = out.get(key)
        if t is None:
            out[key] = v.copy()
            continue
        for n in sums:
            t[n] += v[n]
        for n in mins:
            if v[n] < t[n]:
                t[n] = v[n]
        for n in maxs:
            if v[n] > t[n]:
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
            span = f" AND {t.level.column} >= {mark} AND {t.level.column} < {mark}"
            where += f" AND r.timestamp >= {mark} AND r.timestamp < {mark}"
        deletes.append((f"DELETE FROM {t.table} WHERE {key}{span}", t.level))
        inserts.append((f"{t.insert()}{t.select()}{where}{t.group_by()}", t.level))
    return deletes + inserts


def backfill_statements(dialect: str) -> list[str]:
    """Statements filling empty roll-ups from every stored record (migrations freeze their own copy)."""
    return [f"{t.insert()}{t.select()}{t.group_by()}" for t in rollup_tables(dialect)]


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
