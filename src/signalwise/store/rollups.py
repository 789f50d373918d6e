"""Roll-ups: running totals per (run, intersection) and (run, intersection, direction),
each also per UTC hour.

Questions over whole runs (wait per approach, speed per intersection, the
cross-run comparisons) would otherwise aggregate millions of rows per
request. Ingestion keeps these totals in the same transaction as the rows:

- a chunk of new records adds its per-key sums: `deltas` sums the chunk's
  row tuples per key (in the validation worker when there is one, ~3 µs a
  record, less than the database's four aggregate passes over the rows just
  written took) and `upsert_statements` merges a few hundred totals per
  chunk into the tables;
- a chunk that replaces stored records recomputes its keys from the raw rows
  afterwards (`recompute`), so re-sending stays exact (maxima and minima
  cannot be "subtracted").

The hourly tables let a time range read whole hours from the buckets and
only its partial edge hours from the interval rows (`analytics.queries`).

Under PostgreSQL's READ COMMITTED a concurrent add waits on the row a
recompute rewrote and then adds to it, so concurrent writers stay exact too.
"""

from __future__ import annotations

from collections.abc import Iterable

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

#: the UTC hour a stored timestamp falls in, as the database writes the column
#: (SQLite: SQLAlchemy's text 'YYYY-MM-DD HH:MM:SS.ffffff'; PostgreSQL: timestamptz)
HOUR_OF = {"sqlite": "substr(r.timestamp, 1, 13) || ':00:00.000000'",
           "postgresql": "date_trunc('hour', r.timestamp, 'UTC')"}

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
                 merge: dict[str, str], aggregates: str):
        self.table, self.keys, self.group, self.columns, self.merge = table, keys, group, columns, merge
        self.aggregates = aggregates

    def select(self) -> str:
        """SELECT of the totals over the raw rows (append WHERE ... and then `group_by()`)."""
        return f"SELECT {', '.join(self.group)}, {self.aggregates}"

    def group_by(self) -> str:
        return " GROUP BY " + ", ".join(self.group)

    def insert(self) -> str:
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) "

    def merge_set(self, dialect: str) -> str:
        least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
        how = {"sum": "{t}.{c} + excluded.{c}", "min": least + "({t}.{c}, excluded.{c})",
               "max": greatest + "({t}.{c}, excluded.{c})"}
        return ", ".join(f"{c} = " + how[self.merge[c]].format(t=self.table, c=c)
                         for c in self.columns if c not in self.keys)


def rollup_tables(dialect: str) -> list[Rollup]:
    """The four roll-ups: per (run, intersection[, direction]), each whole-run and per hour."""
    hour = HOUR_OF[dialect]
    i_keys, d_keys = ("run_id", "intersection_id"), ("run_id", "intersection_id", "direction")
    i_group, d_group = ("r.run_id", "r.intersection_id"), ("r.run_id", "r.intersection_id", "s.direction")
    i_cols, d_cols = INTERSECTION_COLUMNS, DIRECTION_COLUMNS
    return [
        Rollup("intersection_rollups", i_keys, i_group, i_cols, _INTERSECTION_MERGE, _INTERSECTION_AGGREGATES),
        Rollup("direction_rollups", d_keys, d_group, d_cols, _DIRECTION_MERGE, _DIRECTION_AGGREGATES),
        Rollup("intersection_hourly_rollups", (*i_keys, "hour"), (*i_group, hour),
               (*i_cols[:2], "hour", *i_cols[2:]), _INTERSECTION_MERGE, _INTERSECTION_AGGREGATES),
        Rollup("direction_hourly_rollups", (*d_keys, "hour"), (*d_group, hour),
               (*d_cols[:3], "hour", *d_cols[3:]), _DIRECTION_MERGE, _DIRECTION_AGGREGATES),
    ]


def upsert_statements(dialect: str) -> list[str]:
    """Per roll-up table (in `rollup_tables` order), an upsert merging one row of totals into the stored ones."""
    mark = "?" if dialect == "sqlite" else "%s"
    return [f"{t.insert()}VALUES ({', '.join([mark] * len(t.columns))}) "
            f"ON CONFLICT ({', '.join(t.keys)}) DO UPDATE SET {t.merge_set(dialect)}"
            for t in rollup_tables(dialect)]


def hour_text(ts: str) -> str:
    """The UTC hour of a SQLite timestamp text, as HOUR_OF['sqlite'] computes it."""
    return ts[:13] + ":00:00.000000"


def hour_start(ts):  # noqa: ANN001, ANN201 - an aware UTC datetime
    return ts.replace(minute=0, second=0, microsecond=0)


def deltas(records: list[tuple], signals: list[list[tuple]], hour_of) -> list[list[tuple]]:  # noqa: ANN001
    """Totals of a chunk's rows per roll-up table (in `rollup_tables` order), keyed by simulation_id
    where the tables have run_id. `records`/`signals` as `writers.record_rows` builds them (keys unique)."""
    hours: dict = {}
    per_hour: dict[tuple, list] = {}
    per_direction_hour: dict[tuple, list] = {}
    for rec, sigs in zip(records, signals, strict=True):
        sim, inter, ts = rec[0], rec[1], rec[2]
        hour = hours.get(ts)
        if hour is None:
            hour = hours[ts] = hour_of(ts)
        emergency = 0
        for s in sigs:
            wait, present = s[10], s[6]
            key = (sim, inter, s[0], hour)
            d = per_direction_hour.get(key)
            if d is None:
                per_direction_hour[key] = [1, wait, wait, s[9], 1 if present else 0]
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
        i = per_hour.get((sim, inter, hour))
        if i is None:
            per_hour[(sim, inter, hour)] = [1, ts, ts, rec[3], rec[4], rec[5], speed, speed, speed, rec[7], rec[8],
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
    return [_over_hours(per_hour, _INTERSECTION_MERGE, INTERSECTION_COLUMNS[2:], 2),
            _over_hours(per_direction_hour, _DIRECTION_MERGE, DIRECTION_COLUMNS[3:], 3),
            [(*k[:-1], k[-1], *v) for k, v in per_hour.items()],
            [(*k[:-1], k[-1], *v) for k, v in per_direction_hour.items()]]


def _over_hours(per_hour: dict, merge: dict, columns: tuple, key_len: int) -> list[tuple]:
    """Whole-run totals from hourly ones: each column merged as the table merges it."""
    how = [merge[c] for c in columns]
    total: dict[tuple, list] = {}
    for k, v in per_hour.items():
        key = k[:key_len]
        t = total.get(key)
        if t is None:
            total[key] = list(v)
            continue
        for n, m in enumerate(how):
            if m == "sum":
                t[n] += v[n]
            elif m == "min":
                if v[n] < t[n]:
                    t[n] = v[n]
            elif v[n] > t[n]:
                t[n] = v[n]
    return [(*k, *v) for k, v in total.items()]


def recompute_statements(dialect: str, mark: str) -> list[str]:
    """Statements that rebuild the totals of one (run_id, intersection_id) from the raw rows.

    Each takes the parameters (run_id, intersection_id).
    """
    tables = rollup_tables(dialect)
    where = f" WHERE r.run_id = {mark} AND r.intersection_id = {mark}"
    return ([f"DELETE FROM {t.table} WHERE run_id = {mark} AND intersection_id = {mark}" for t in tables]
            + [f"{t.insert()}{t.select()}{where}{t.group_by()}" for t in tables])


def backfill_statements(dialect: str) -> list[str]:
    """Statements filling empty roll-ups from every stored record (migrations freeze their own copy)."""
    return [f"{t.insert()}{t.select()}{t.group_by()}" for t in rollup_tables(dialect)]


def recompute(cursor, keys: Iterable[tuple[int, str]], dialect: str) -> None:  # noqa: ANN001 - DB-API cursor
    """Rebuild the totals of these (run_id, intersection_id) keys from the raw rows."""
    params = sorted(set(keys))
    if not params:
        return
    for stmt in recompute_statements(dialect, "?" if dialect == "sqlite" else "%s"):
        cursor.executemany(stmt, params)
