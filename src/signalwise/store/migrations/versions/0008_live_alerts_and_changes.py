"""alerts and runtime changes of live runs

`alerts`: one row per alert of a live run (raised, cleared, acknowledged),
keyed by the alert's id so that its clearing and acknowledgement update the
row. `runtime_changes`: every change made to a live run, applied or refused
and why, with a key given by the writer so a retried write stores it once.
Both are written by `store/live.py` (`LiveStoreWriter`).

Revision ID: 0008
Revises: 0007
Create Date: 2025-09-20
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# as signalwise.store.tables knows them at this revision
ALERT_LEVELS = ("info", "warning", "error", "critical")
CHANGE_RESULTS = ("applied", "refused")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("simulation_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("raised_at_s", sa.Float(), nullable=True),
        sa.Column("cleared_at_s", sa.Float(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(" OR ".join(f"level = '{v}'" for v in ALERT_LEVELS), name="ck_alerts_level"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_simulation_id_raised_at", "alerts", ["simulation_id", "raised_at"])
    op.create_table(
        "runtime_changes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("change_key", sa.String(32), nullable=False),
        sa.Column("simulation_id", sa.String(128), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("sim_time_s", sa.Float(), nullable=True),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("result", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.CheckConstraint(" OR ".join(f"result = '{v}'" for v in CHANGE_RESULTS),
                           name="ck_runtime_changes_result"),
        sa.PrimaryKeyConstraint("id", name="pk_runtime_changes"),
        sa.UniqueConstraint("change_key", name="uq_runtime_changes_change_key"),
    )
    op.create_index("ix_runtime_changes_simulation_id_at", "runtime_changes", ["simulation_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_runtime_changes_simulation_id_at", table_name="runtime_changes")
    op.drop_table("runtime_changes")
    op.drop_index("ix_alerts_simulation_id_raised_at", table_name="alerts")
    op.drop_table("alerts")
