"""Bucketed roll-ups one row per (run, bucket, intersection), with a quarter-hour level

- `bucket_rollups_1h`, `bucket_rollups_15min`, `bucket_rollups_5min`: the
  intersection totals of a bucket and, per approach, five columns
  `{direction}_{total}` (zeros where the approach had no sample), keyed
  (run, bucket, intersection). They replace the four tables of 0005
  (intersection and direction, hourly and 5-minute): a time range groups a
  quarter of the rows, and the 15-minute level halves the buckets a range
  reads at its edges. Filled from the stored records.
- The trigger deleting a run's buckets with it now names the new tables.

Revision ID: 0006
Revises: 0005
Create Date: 2025-09-14
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the definitions of signalwise.store.rollups and tables, frozen here as this revision knows them
DIRECTIONS = ("north", "south", "east", "west")
LEVELS = {"bucket_rollups_1h": 60, "bucket_rollups_15min": 15, "bucket_rollups_5min": 5}  # minutes
INTERSECTION_TOTALS = [
    ("records", sa.Integer), ("first_timestamp", UtcDateTime), ("last_timestamp", UtcDateTime),
    ("total_vehicles_passed", sa.BigInteger), ("avg_wait_time_sum", sa.Float), ("throughput_sum", sa.Float),
    ("avg_speed_sum", sa.Float), ("avg_speed_min", sa.Float), ("avg_speed_max", sa.Float), ("fuel_saved", sa.Float),
    ("co2_saved", sa.Float), ("emergency_overrides", sa.BigInteger), ("intervals_with_emergency", sa.Integer)]
DIRECTION_TOTALS = [("samples", sa.Integer), ("avg_wait_time_sum", sa.Float), ("avg_wait_time_max", sa.Float),
                    ("vehicles_crossed", sa.BigInteger), ("emergency_present", sa.Integer)]
APPROACH_TOTALS = [(f"{d}_{c}", kind) for d in DIRECTIONS for c, kind in DIRECTION_TOTALS]
#: 0005's tables: (table, bucket column, width in minutes, with a direction)
OLD = [("intersection_hourly_rollups", "hour", 60, False), ("direction_hourly_rollups", "hour", 60, True),
       ("intersection_5min_rollups", "bucket", 5, False), ("direction_5min_rollups", "bucket", 5, True)]


def _bucket(dialect: str, minutes: int) -> str:
    if dialect == "postgresql":
        return f"date_bin('{minutes * 60} seconds', r.timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    return (f"printf('%s%02d:00.000000', substr(r.timestamp, 1, 14), "
            f"substr(r.timestamp, 15, 2) / {minutes} * {minutes})")


def _backfill(dialect: str, table: str, minutes: int) -> str:
    per_record = ", ".join(
        f"sum(CASE WHEN s.direction = '{d}' THEN 1 ELSE 0 END) AS {d}_n, "
        f"sum(CASE WHEN s.direction = '{d}' THEN s.avg_wait_time ELSE 0 END) AS {d}_wait, "
        f"sum(CASE WHEN s.direction = '{d}' THEN s.vehicles_crossed ELSE 0 END) AS {d}_crossed, "
        f"sum(CASE WHEN s.direction = '{d}' AND s.emergency_vehicle_present THEN 1 ELSE 0 END) AS {d}_emergency"
        for d in DIRECTIONS)
    approaches = ", ".join(f"coalesce(sum(p.{d}_n), 0), coalesce(sum(p.{d}_wait), 0), coalesce(max(p.{d}_wait), 0), "
                           f"coalesce(sum(p.{d}_crossed), 0), coalesce(sum(p.{d}_emergency), 0)" for d in DIRECTIONS)
    columns = ["run_id", "intersection_id", "bucket", *[c for c, _ in INTERSECTION_TOTALS + APPROACH_TOTALS]]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"WITH rec AS (SELECT r.*, {_bucket(dialect, minutes)} AS bucket FROM intersection_records r), "
        f"p AS (SELECT s.record_id, {per_record}, "
        "max(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) AS emergency "
        "FROM signal_records s JOIN rec ON s.record_id = rec.id GROUP BY s.record_id) "
        "SELECT rec.run_id, rec.intersection_id, rec.bucket, count(*), min(rec.timestamp), max(rec.timestamp), "
        "sum(rec.total_vehicles_passed), sum(rec.avg_wait_time_all_sides), sum(rec.throughput), sum(rec.avg_speed), "
        "min(rec.avg_speed), max(rec.avg_speed), sum(rec.fuel_saved), sum(rec.co2_saved), "
        f"sum(rec.emergency_overrides), coalesce(sum(p.emergency), 0), {approaches} "
        "FROM rec LEFT JOIN p ON p.record_id = rec.id GROUP BY rec.run_id, rec.intersection_id, rec.bucket")


def _trigger(tables: list[str]) -> dict[str, list[str]]:
    return {
        "postgresql": [
            "CREATE OR REPLACE FUNCTION bucketed_rollups_follow_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            + " ".join(f"DELETE FROM {t} x USING gone g WHERE x.run_id = g.id;" for t in tables)
            + " RETURN NULL; END $$",
            "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs "
            "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION bucketed_rollups_follow_runs()",
        ],
        "sqlite": [
            "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs BEGIN "
            + " ".join(f"DELETE FROM {t} WHERE run_id = old.id;" for t in tables) + " END",
        ],
    }


DROP_TRIGGER = {"postgresql": ["DROP TRIGGER runs_delete_bucketed_rollups ON runs",
                               "DROP FUNCTION bucketed_rollups_follow_runs()"],
                "sqlite": ["DROP TRIGGER runs_delete_bucketed_rollups"]}


def _create(table: str, bucket: str, keys: list[str], totals: list) -> None:
    op.create_table(
        table,
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        *[sa.Column("direction", sa.String(8), nullable=False) for k in keys if k == "direction"],
        sa.Column(bucket, UtcDateTime(), nullable=False),
        *[sa.Column(c, kind(), nullable=False) for c, kind in totals],
        sa.PrimaryKeyConstraint("run_id", bucket, "intersection_id", *keys, name=f"pk_{table}"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    for statement in DROP_TRIGGER[dialect]:
        op.execute(statement)
    for table, *_ in OLD:
        op.drop_table(table)
    for table, minutes in LEVELS.items():
        _create(table, "bucket", [], INTERSECTION_TOTALS + APPROACH_TOTALS)
        op.execute(_backfill(dialect, table, minutes))
    for statement in _trigger(list(LEVELS))[dialect]:
        op.execute(statement)


def downgrade() -> None:
    """Back to 0005's tables, their rows unpivoted from the wide ones of the same width."""
    dialect = op.get_context().dialect.name
    for statement in DROP_TRIGGER[dialect]:
        op.execute(statement)
    source = {minutes: table for table, minutes in LEVELS.items()}
    for table, bucket, minutes, per_direction in OLD:
        wide = source[minutes]
        if per_direction:
            _create(table, bucket, ["direction"], DIRECTION_TOTALS)
            names = ", ".join(c for c, _ in DIRECTION_TOTALS)
            rows = " UNION ALL ".join(
                f"SELECT run_id, intersection_id, '{d}', bucket, {', '.join(f'{d}_{c}' for c, _ in DIRECTION_TOTALS)} "
                f"FROM {wide} WHERE {d}_samples > 0" for d in DIRECTIONS)
            op.execute(f"INSERT INTO {table} (run_id, intersection_id, direction, {bucket}, {names}) {rows}")
        else:
            _create(table, bucket, [], INTERSECTION_TOTALS)
            names = ", ".join(c for c, _ in INTERSECTION_TOTALS)
            op.execute(f"INSERT INTO {table} (run_id, intersection_id, {bucket}, {names}) "
                       f"SELECT run_id, intersection_id, bucket, {names} FROM {wide}")
    for table in LEVELS:
        op.drop_table(table)
    for statement in _trigger([t for t, *_ in OLD])[dialect]:
        op.execute(statement)
