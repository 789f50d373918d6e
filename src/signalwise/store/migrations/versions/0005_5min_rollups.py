"""5-minute roll-ups for the edges of time ranges; bucketed roll-ups keyed (run, bucket, …)

- `intersection_5min_rollups`, `direction_5min_rollups`: the totals of the
  hourly roll-ups per (…, bucket), `bucket` = the start of the 5-minute UTC
  bucket. A time range reads whole hours from the hourly tables, whole
  buckets of its partial hours from here and only the rest (under 5 minutes
  at each end) from the interval rows; ingestion keeps them from now on,
  existing records are summed once here.
- Every bucketed table (hourly ones rebuilt, their rows kept) is keyed
  (run, bucket, intersection[, direction]), without another index and
  without a foreign key to `runs` (PostgreSQL checks one per new row): a
  trigger deletes a run's buckets with it.

Revision ID: 0005
Revises: 0004
Create Date: 2025-09-13
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# the same definitions as signalwise.store.rollups, frozen here as this revision knows them
BUCKET = {
    "sqlite": "printf('%s%02d:00.000000', substr(r.timestamp, 1, 14), substr(r.timestamp, 15, 2) / 5 * 5)",
    "postgresql": "date_bin('300 seconds', r.timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
}
BACKFILL = [
    "INSERT INTO intersection_5min_rollups (run_id, intersection_id, bucket, records, first_timestamp, "
    "last_timestamp, total_vehicles_passed, avg_wait_time_sum, throughput_sum, avg_speed_sum, avg_speed_min, "
    "avg_speed_max, fuel_saved, co2_saved, emergency_overrides, intervals_with_emergency) "
    "SELECT r.run_id, r.intersection_id, {bucket}, count(*), min(r.timestamp), max(r.timestamp), "
    "sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), sum(r.throughput), sum(r.avg_speed), "
    "min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), sum(r.co2_saved), sum(r.emergency_overrides), "
    "sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s WHERE s.record_id = r.id "
    "AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) "
    "FROM intersection_records r GROUP BY r.run_id, r.intersection_id, {bucket}",
    "INSERT INTO direction_5min_rollups (run_id, intersection_id, direction, bucket, samples, "
    "avg_wait_time_sum, avg_wait_time_max, vehicles_crossed, emergency_present) "
    "SELECT r.run_id, r.intersection_id, s.direction, {bucket}, count(*), sum(s.avg_wait_time), "
    "max(s.avg_wait_time), sum(s.vehicles_crossed), sum(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) "
    "FROM signal_records s JOIN intersection_records r ON r.id = s.record_id "
    "GROUP BY r.run_id, r.intersection_id, s.direction, {bucket}",
]

_TABLES = ("intersection_hourly_rollups", "direction_hourly_rollups", "intersection_5min_rollups",
           "direction_5min_rollups")
TRIGGERS = {
    "postgresql": [
        "CREATE OR REPLACE FUNCTION bucketed_rollups_follow_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        + " ".join(f"DELETE FROM {t} x USING gone g WHERE x.run_id = g.id;" for t in _TABLES)
        + " RETURN NULL; END $$",
        "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION bucketed_rollups_follow_runs()",
    ],
    "sqlite": [
        "CREATE TRIGGER runs_delete_bucketed_rollups AFTER DELETE ON runs BEGIN "
        + " ".join(f"DELETE FROM {t} WHERE run_id = old.id;" for t in _TABLES) + " END",
    ],
}
DROP_TRIGGERS = {
    "postgresql": ["DROP TRIGGER runs_delete_bucketed_rollups ON runs",
                   "DROP FUNCTION bucketed_rollups_follow_runs()"],
    "sqlite": ["DROP TRIGGER runs_delete_bucketed_rollups"],
}


INTERSECTION_TOTALS = [
    ("records", sa.Integer), ("first_timestamp", UtcDateTime), ("last_timestamp", UtcDateTime),
    ("total_vehicles_passed", sa.BigInteger), ("avg_wait_time_sum", sa.Float), ("throughput_sum", sa.Float),
    ("avg_speed_sum", sa.Float), ("avg_speed_min", sa.Float), ("avg_speed_max", sa.Float), ("fuel_saved", sa.Float),
    ("co2_saved", sa.Float), ("emergency_overrides", sa.BigInteger), ("intervals_with_emergency", sa.Integer)]
DIRECTION_TOTALS = [("samples", sa.Integer), ("avg_wait_time_sum", sa.Float), ("avg_wait_time_max", sa.Float),
                    ("vehicles_crossed", sa.BigInteger), ("emergency_present", sa.Integer)]
#: (table, bucket column, key columns after the run and the bucket, summed columns)
BUCKETED = [
    ("intersection_hourly_rollups", "hour", ("intersection_id",), INTERSECTION_TOTALS),
    ("direction_hourly_rollups", "hour", ("intersection_id", "direction"), DIRECTION_TOTALS),
    ("intersection_5min_rollups", "bucket", ("intersection_id",), INTERSECTION_TOTALS),
    ("direction_5min_rollups", "bucket", ("intersection_id", "direction"), DIRECTION_TOTALS),
]
HOURLY, FIVE_MINUTE = BUCKETED[:2], BUCKETED[2:]


def _create(table: str, bucket: str, keys: tuple, totals: list, *, name: str | None = None,
            old_shape: bool = False) -> None:
    """Create a bucketed table: keyed (run, bucket, …), or as 0004 made the hourly ones (`old_shape`:
    keyed (run, …, hour) with a foreign key to runs; its hour index is made by the caller)."""
    key = ("run_id", *keys, bucket) if old_shape else ("run_id", bucket, *keys)
    extra = [sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                     name=f"fk_{table}_run_id_runs")] if old_shape else []
    op.create_table(
        name or table,
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        *[sa.Column("direction", sa.String(8), nullable=False) for k in keys if k == "direction"],
        sa.Column(bucket, UtcDateTime(), nullable=False),
        *[sa.Column(c, kind(), nullable=False) for c, kind in totals],
        sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"),
        *extra,
        sqlite_with_rowid=False,
    )


def _rekey_hourly(old_shape: bool) -> None:
    """Re-key the hourly tables (run, hour, …) without index and foreign key, or back (`old_shape`)."""
    for table, bucket, keys, totals in HOURLY:
        index = f"ix_{table}_hour"
        if op.get_context().dialect.name == "postgresql":
            key = ("run_id", *keys, bucket) if old_shape else ("run_id", bucket, *keys)
            fk = f"fk_{table}_run_id_runs"
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, ADD CONSTRAINT pk_{table} "
                       f"PRIMARY KEY ({', '.join(key)})")
            if old_shape:
                op.create_foreign_key(fk, table, "runs", ["run_id"], ["id"], ondelete="CASCADE")
            else:
                op.drop_constraint(fk, table, type_="foreignkey")
                op.drop_index(index, table_name=table)
        else:  # SQLite cannot alter a key: copy the rows into a new table
            columns = ", ".join(["run_id", *keys, bucket, *[c for c, _ in totals]])
            _create(table, bucket, keys, totals, name=f"{table}_new", old_shape=old_shape)
            op.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")
            op.drop_table(table)  # and its index
            op.rename_table(f"{table}_new", table)
        if old_shape:
            op.create_index(index, table, [bucket])


def upgrade() -> None:
    _rekey_hourly(old_shape=False)
    for table in FIVE_MINUTE:
        _create(*table)
    dialect = op.get_context().dialect.name
    for statement in TRIGGERS[dialect]:
        op.execute(statement)
    for statement in BACKFILL:
        op.execute(statement.format(bucket=BUCKET[dialect]))


def downgrade() -> None:
    for statement in DROP_TRIGGERS[op.get_context().dialect.name]:
        op.execute(statement)
    for table, *_ in FIVE_MINUTE:
        op.drop_table(table)
    _rekey_hourly(old_shape=True)
