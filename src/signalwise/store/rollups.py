"""Roll-ups: running totals per (run, intersection) and (run, intersection, direction).

Questions over whole runs (wait per approach, speed per intersection, the
cross-run comparisons) would otherwise aggregate millions of rows per
request. Ingestion keeps these totals in the same transaction as the rows:

- a chunk of new records adds its per-key sums (`add_statements`): the
  database aggregates the rows just written and upserts a few hundred totals
  per 5,000 records;
- a chunk that replaces stored records recomputes its keys from the raw rows
  afterwards (`recompute`), so re-sending stays exact (maxima and minima
  cannot be "subtracted").

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

#: the totals as aggregates over the raw rows (the migration backfills with the same definitions)
INTERSECTION_SELECT = (
    "SELECT r.run_id, r.intersection_id, count(*), min(r.timestamp), max(r.timestamp), "
    "sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), sum(r.throughput), sum(r.avg_speed), "
    "min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), sum(r.co2_saved), sum(r.emergency_overrides), "
    "sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s WHERE s.record_id = r.id "
    "AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) "
    "FROM intersection_records r")
DIRECTION_SELECT = (
    "SELECT r.run_id, r.intersection_id, s.direction, count(*), sum(s.avg_wait_time), max(s.avg_wait_time), "
    "sum(s.vehicles_crossed), sum(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) "
    "FROM signal_records s JOIN intersection_records r ON r.id = s.record_id")


def _merge_set(table: str, columns: tuple[str, ...], keys: tuple[str, ...], merge: dict[str, str],
               dialect: str) -> str:
    least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
    how = {"sum": "{t}.{c} + excluded.{c}", "min": least + "({t}.{c}, excluded.{c})",
           "max": greatest + "({t}.{c}, excluded.{c})"}
    return ", ".join(f"{c} = " + how[merge[c]].format(t=table, c=c) for c in columns if c not in keys)


def add_statements(dialect: str, where: str) -> list[str]:
    """Statements adding the totals of the records selected by `where` (on `r`, just inserted) to the roll-ups.

    The database aggregates the rows it has just written (in C, and on
    PostgreSQL in its own process), which costs less than summing in Python.
    """
    keys_i, keys_d = ("run_id", "intersection_id"), ("run_id", "intersection_id", "direction")
    return [
        f"INSERT INTO intersection_rollups ({', '.join(INTERSECTION_COLUMNS)}) {INTERSECTION_SELECT} WHERE {where} "
        f"GROUP BY r.run_id, r.intersection_id ON CONFLICT ({', '.join(keys_i)}) DO UPDATE SET "
        + _merge_set("intersection_rollups", INTERSECTION_COLUMNS, keys_i, _INTERSECTION_MERGE, dialect),
        f"INSERT INTO direction_rollups ({', '.join(DIRECTION_COLUMNS)}) {DIRECTION_SELECT} WHERE {where} "
        f"GROUP BY r.run_id, r.intersection_id, s.direction ON CONFLICT ({', '.join(keys_d)}) DO UPDATE SET "
        + _merge_set("direction_rollups", DIRECTION_COLUMNS, keys_d, _DIRECTION_MERGE, dialect),
    ]


def recompute_statements(mark: str) -> list[str]:
    """Statements that rebuild the totals of one (run_id, intersection_id) from the raw rows.

    Each takes the parameters (run_id, intersection_id).
    """
    where = f" WHERE r.run_id = {mark} AND r.intersection_id = {mark}"
    return [
        f"DELETE FROM intersection_rollups WHERE run_id = {mark} AND intersection_id = {mark}",
        f"DELETE FROM direction_rollups WHERE run_id = {mark} AND intersection_id = {mark}",
        f"INSERT INTO intersection_rollups ({', '.join(INTERSECTION_COLUMNS)}) {INTERSECTION_SELECT}{where} "
        "GROUP BY r.run_id, r.intersection_id",
        f"INSERT INTO direction_rollups ({', '.join(DIRECTION_COLUMNS)}) {DIRECTION_SELECT}{where} "
        "GROUP BY r.run_id, r.intersection_id, s.direction",
    ]


def recompute(cursor, keys: Iterable[tuple[int, str]], mark: str) -> None:  # noqa: ANN001 - DB-API cursor
    """Rebuild the totals of these (run_id, intersection_id) keys from the raw rows."""
    params = sorted(set(keys))
    if not params:
        return
    for stmt in recompute_statements(mark):
        cursor.executemany(stmt, params)
