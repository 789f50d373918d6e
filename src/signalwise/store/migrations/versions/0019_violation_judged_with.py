"""what each camera violation was judged with

`violations.judged_with` (JSON): the camera file (calibration, stop lines,
speed limit) and signal log the call was made with, each as `{path, sha256}`
(`signals_file` null when the run had none), the `signalwise_version` that
judged it, and `calibration_suspect`: why the run's own checks said the
calibration was wrong when it was stored anyway (`--accept-suspect-calibration`),
`[]` when they passed. Rows stored before this revision keep NULL: nothing
recorded what judged them. A nullable column added in place on both SQLite and
PostgreSQL (no table rebuild: SQLite's AUTOINCREMENT and its counter stay).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("violations", sa.Column("judged_with", sa.JSON(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on SQLite too (3.35+): a batch rebuild would drop AUTOINCREMENT (0018)
    op.execute("ALTER TABLE violations DROP COLUMN judged_with")
