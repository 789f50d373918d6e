"""a stored run's ATSPM detector configuration

`detector_configs`: the rows of a run's `detectors.csv` (device, phase,
channel, function, distance to the stop bar, approach speed), stored with its
hi-res events by `signalwise publish` / `run --db` / `compare --db`, so the
API's detector measures (arrivals on green, split failures, PCD, ...) for a
run read the configuration that run wrote instead of one process-wide file.
Keyed to `runs.id` with ON DELETE CASCADE: forgetting or purging a run takes
its configuration with it. Runs stored before this revision have none (publish
them again to add it); nothing is backfilled, since the run directories may be
gone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from signalwise.core.names import MAX_INTERSECTION_ID_CHARS

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_configs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(MAX_INTERSECTION_ID_CHARS), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("parameter", sa.Integer(), nullable=False),
        sa.Column("function", sa.String(32), nullable=False),
        sa.Column("distance_to_stopbar_m", sa.Float(), nullable=True),
        sa.Column("approach_speed_mps", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_detector_configs_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "device_id", "phase", "parameter", "function", name="pk_detector_configs"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("detector_configs")
