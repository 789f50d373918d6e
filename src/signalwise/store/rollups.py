"""Roll-ups: running totals per (run, intersection) and (run, intersection, direction),
each also per UTC hour.

Questions over whole runs (wait per approach, speed per intersection, the
cross-run comparisons) would otherwise aggregate millions of rows per
request. Ingestion keeps these totals in the same transaction as the rows:

- a chunk of new records adds its per-key sums (`add_statements`): the
  database aggregates the rows just written and upserts a few hundred totals
  per 5,000 records;
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


def add_statements(dialect: str, where: str) -> list[str]:
    """Statements adding the totals of the records selected by `where` (on `r`, just inserted) to the roll-ups.

    The database aggregates the rows it has just written (in C, and on
    PostgreSQL in its own process), which costs less than summing in Python.
    """
    return [f"{t.insert()}{t.select()} WHERE {where}{t.group_by()} "
            f"ON CONFLICT ({', '.join(t.keys)}) DO UPDATE SET {t.merge_set(dialect)}"
            for t in rollup_tables(dialect)]


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
