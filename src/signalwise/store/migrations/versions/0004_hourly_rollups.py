"""hourly roll-ups: the run totals per UTC hour, for time ranges

- `intersection_hourly_rollups`, `direction_hourly_rollups`: the totals of
  `intersection_rollups` / `direction_rollups` per (…, hour), `hour` = the
  start of the UTC hour. A time range reads its whole hours from here and
  only its partial edge hours from the interval rows; ingestion keeps them
  from now on, existing records are summed once here.

Revision ID: 0004
Revises: 0003
Create Date: 2025-09-12
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# the same definitions as signalwise.store.rollups, frozen here as this revision knows them
BACKFILL = {
    "sqlite": [
        'INSERT INTO intersection_hourly_rollups (run_id, intersection_id, hour, records, first_timestamp, '
        'last_timestamp, total_vehicles_passed, avg_wait_time_sum, throughput_sum, avg_speed_sum, '
        'avg_speed_min, avg_speed_max, fuel_saved, co2_saved, emergency_overrides, intervals_with_emergency) '
        "SELECT r.run_id, r.intersection_id, substr(r.timestamp, 1, 13) || ':00:00.000000', count(*), "
        'min(r.timestamp), max(r.timestamp), sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), '
        'sum(r.throughput), sum(r.avg_speed), min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), '
        'sum(r.co2_saved), sum(r.emergency_overrides), sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s '
        'WHERE s.record_id = r.id AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) FROM '
        'intersection_records r GROUP BY r.run_id, r.intersection_id, substr(r.timestamp, 1, 13) || '
        "':00:00.000000'",
        'INSERT INTO direction_hourly_rollups (run_id, intersection_id, direction, hour, samples, '
        'avg_wait_time_sum, avg_wait_time_max, vehicles_crossed, emergency_present) SELECT r.run_id, '
        "r.intersection_id, s.direction, substr(r.timestamp, 1, 13) || ':00:00.000000', count(*), "
        'sum(s.avg_wait_time), max(s.avg_wait_time), sum(s.vehicles_crossed), sum(CASE WHEN '
        's.emergency_vehicle_present THEN 1 ELSE 0 END) FROM signal_records s JOIN intersection_records r ON '
        'r.id = s.record_id GROUP BY r.run_id, r.intersection_id, s.direction, substr(r.timestamp, 1, 13) || '
        "':00:00.000000'",
    ],
    "postgresql": [
        'INSERT INTO intersection_hourly_rollups (run_id, intersection_id, hour, records, first_timestamp, '
        'last_timestamp, total_vehicles_passed, avg_wait_time_sum, throughput_sum, avg_speed_sum, '
        'avg_speed_min, avg_speed_max, fuel_saved, co2_saved, emergency_overrides, intervals_with_emergency) '
        "SELECT r.run_id, r.intersection_id, date_trunc('hour', r.timestamp, 'UTC'), count(*), "
        'min(r.timestamp), max(r.timestamp), sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), '
        'sum(r.throughput), sum(r.avg_speed), min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), '
        'sum(r.co2_saved), sum(r.emergency_overrides), sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s '
        'WHERE s.record_id = r.id AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) FROM '
        "intersection_records r GROUP BY r.run_id, r.intersection_id, date_trunc('hour', r.timestamp, 'UTC')",
        'INSERT INTO direction_hourly_rollups (run_id, intersection_id, direction, hour, samples, '
        'avg_wait_time_sum, avg_wait_time_max, vehicles_crossed, emergency_present) SELECT r.run_id, '
        "r.intersection_id, s.direction, date_trunc('hour', r.timestamp, 'UTC'), count(*), "
        'sum(s.avg_wait_time), max(s.avg_wait_time), sum(s.vehicles_crossed), sum(CASE WHEN '
        's.emergency_vehicle_present THEN 1 ELSE 0 END) FROM signal_records s JOIN intersection_records r ON '
        "r.id = s.record_id GROUP BY r.run_id, r.intersection_id, s.direction, date_trunc('hour', "
        "r.timestamp, 'UTC')",
    ],
}


def _key(*names: str) -> list:
    return [sa.Column("run_id", sa.Integer(), nullable=False),
            sa.Column("intersection_id", sa.String(128), nullable=False),
            *[sa.Column(n, sa.String(8), nullable=False) for n in names],
            sa.Column("hour", UtcDateTime(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "intersection_hourly_rollups",
        *_key(),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("first_timestamp", UtcDateTime(), nullable=False),
        sa.Column("last_timestamp", UtcDateTime(), nullable=False),
        sa.Column("total_vehicles_passed", sa.BigInteger(), nullable=False),
        sa.Column("avg_wait_time_sum", sa.Float(), nullable=False),
        sa.Column("throughput_sum", sa.Float(), nullable=False),
        sa.Column("avg_speed_sum", sa.Float(), nullable=False),
        sa.Column("avg_speed_min", sa.Float(), nullable=False),
        sa.Column("avg_speed_max", sa.Float(), nullable=False),
        sa.Column("fuel_saved", sa.Float(), nullable=False),
        sa.Column("co2_saved", sa.Float(), nullable=False),
        sa.Column("emergency_overrides", sa.BigInteger(), nullable=False),
        sa.Column("intervals_with_emergency", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_intersection_hourly_rollups_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "intersection_id", "hour", name="pk_intersection_hourly_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_intersection_hourly_rollups_hour", "intersection_hourly_rollups", ["hour"])
    op.create_table(
        "direction_hourly_rollups",
        *_key("direction"),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("avg_wait_time_sum", sa.Float(), nullable=False),
        sa.Column("avg_wait_time_max", sa.Float(), nullable=False),
        sa.Column("vehicles_crossed", sa.BigInteger(), nullable=False),
        sa.Column("emergency_present", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_direction_hourly_rollups_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "intersection_id", "direction", "hour",
                                name="pk_direction_hourly_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_direction_hourly_rollups_hour", "direction_hourly_rollups", ["hour"])
    for statement in BACKFILL[op.get_context().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_direction_hourly_rollups_hour", table_name="direction_hourly_rollups")
    op.drop_table("direction_hourly_rollups")
    op.drop_index("ix_intersection_hourly_rollups_hour", table_name="intersection_hourly_rollups")
    op.drop_table("intersection_hourly_rollups")
