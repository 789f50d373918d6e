"""per-interval intersection records, per-direction signal records, run metrics

Revision ID: 0002
Revises: 0001
Create Date: 2025-09-10
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intersection_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        sa.Column("total_vehicles_passed", sa.Integer(), nullable=False),
        sa.Column("avg_wait_time_all_sides", sa.Float(), nullable=False),
        sa.Column("throughput", sa.Float(), nullable=False),
        sa.Column("avg_speed", sa.Float(), nullable=False),
        sa.Column("fuel_saved", sa.Float(), nullable=False),
        sa.Column("co2_saved", sa.Float(), nullable=False),
        sa.Column("emergency_overrides", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_intersection_records_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_intersection_records"),
        sa.UniqueConstraint("run_id", "intersection_id", "timestamp", name="uq_intersection_records_key"),
    )
    op.create_index("ix_intersection_records_timestamp", "intersection_records", ["timestamp"])
    op.create_index("ix_intersection_records_intersection_timestamp", "intersection_records",
                    ["intersection_id", "timestamp"])
    op.create_table(
        "signal_records",
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("car", sa.Integer(), nullable=False),
        sa.Column("bus", sa.Integer(), nullable=False),
        sa.Column("truck", sa.Integer(), nullable=False),
        sa.Column("bike", sa.Integer(), nullable=False),
        sa.Column("rickshaw", sa.Integer(), nullable=False),
        sa.Column("emergency_vehicle_present", sa.Boolean(), nullable=False),
        sa.Column("signal_status", sa.String(8), nullable=False),
        sa.Column("signal_timer", sa.Float(), nullable=False),
        sa.Column("vehicles_crossed", sa.Integer(), nullable=False),
        sa.Column("avg_wait_time", sa.Float(), nullable=False),
        sa.Column("green_time_allocated", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["intersection_records.id"], ondelete="CASCADE",
                                name="fk_signal_records_record_id_intersection_records"),
        sa.CheckConstraint("direction IN ('north', 'south', 'east', 'west')",
                           name="ck_signal_records_direction"),
        sa.CheckConstraint("signal_status IN ('GREEN', 'YELLOW', 'RED')",
                           name="ck_signal_records_signal_status"),
        sa.PrimaryKeyConstraint("record_id", "direction", name="pk_signal_records"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_run_metrics_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_run_metrics"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("run_metrics")
    op.drop_table("signal_records")
    op.drop_index("ix_intersection_records_intersection_timestamp", table_name="intersection_records")
    op.drop_index("ix_intersection_records_timestamp", table_name="intersection_records")
    op.drop_table("intersection_records")
