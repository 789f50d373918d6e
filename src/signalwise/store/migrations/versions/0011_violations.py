"""camera violations, their hourly and daily counts, and the evidence access log

`violations`: red-light and speeding violations seen by cameras, with their
track and the path of their evidence image. `violation_counts_hourly` and
`violation_counts_daily`: counts per bucket, camera, approach and kind, kept
in the same transaction as the rows (with `*` rows for the totals over
cameras and approaches), so trends and hotspots over a million violations
read a few thousand rows. `evidence_access`: every read of an evidence image.

Revision ID: 0011
Revises: 0009 (0010 is the model registry's, on its own branch; renumbered at merge)
Create Date: 2025-09-24
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = ("red_light", "speeding")


def _counts(name: str) -> None:
    op.create_table(
        name,
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("approach", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("bucket", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", "approach", "kind", "bucket", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def upgrade() -> None:
    op.create_table(
        "violations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("approach", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("limit_mps", sa.Float(), nullable=True),
        sa.Column("stop_line", sa.String(128), nullable=True),
        sa.Column("signal_state", sa.String(64), nullable=True),
        sa.Column("evidence_path", sa.String(1024), nullable=True),
        sa.Column("track", sa.JSON(), nullable=True),
        sa.CheckConstraint(" OR ".join(f"kind = '{k}'" for k in KINDS), name="ck_violations_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_violations"),
    )
    op.create_index("ix_violations_occurred_at", "violations", ["occurred_at"])
    op.create_index("ix_violations_camera_id_occurred_at", "violations", ["camera_id", "occurred_at"])
    _counts("violation_counts_hourly")
    _counts("violation_counts_daily")
    op.create_table(
        "evidence_access",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("violation_id", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_access"),
    )
    op.create_index("ix_evidence_access_at", "evidence_access", ["at"])
    op.create_index("ix_evidence_access_violation_id", "evidence_access", ["violation_id"])


def downgrade() -> None:
    op.drop_index("ix_evidence_access_violation_id", table_name="evidence_access")
    op.drop_index("ix_evidence_access_at", table_name="evidence_access")
    op.drop_table("evidence_access")
    for name in ("violation_counts_daily", "violation_counts_hourly"):
        op.drop_index(f"ix_{name}_bucket", table_name=name)
        op.drop_table(name)
    op.drop_index("ix_violations_camera_id_occurred_at", table_name="violations")
    op.drop_index("ix_violations_occurred_at", table_name="violations")
    op.drop_table("violations")
