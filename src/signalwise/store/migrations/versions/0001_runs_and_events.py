"""runs and the hi-res event log

Revision ID: 0001
Revises:
Create Date: 2025-09-10
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("simulation_id", sa.String(128), nullable=False),
        sa.Column("scenario", sa.String(128), nullable=True),
        sa.Column("controller", sa.String(64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("simulation_id", name="uq_runs_simulation_id"),
    )
    op.create_index("ix_runs_scenario_seed_controller", "runs", ["scenario", "seed", "controller"])
    op.create_table(
        "hires_events",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=False), nullable=False),
        sa.Column("event_code", sa.SmallInteger(), nullable=False),
        sa.Column("parameter", sa.Integer(), nullable=False),
        sa.Column("simulation_id", sa.String(128), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("device_id", "timestamp", "event_code", "parameter", "simulation_id",
                                name="pk_hires_events"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_hires_events_timestamp", "hires_events", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_hires_events_timestamp", table_name="hires_events")
    op.drop_table("hires_events")
    op.drop_index("ix_runs_scenario_seed_controller", table_name="runs")
    op.drop_table("runs")
