"""model registry, training jobs and submitted performance figures

`model_versions` (one row per registered version, never updated),
`model_files` (its files) and `model_blobs` (their bytes, by SHA-256, stored
once), `model_deployments` (the active version per intersection, as a stack
of deployments with who rolled them back, kept as the history),
`training_jobs` (training started through the API) and `ml_metrics`
(performance per intersection and interval measured elsewhere). Written by
`store/model_registry.py`, `store/jobs.py` and `store/ml_metrics.py`.

Revision ID: 0010
Revises: 0009
Create Date: 2025-09-25
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# as signalwise.store.tables knows them at this revision
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def upgrade() -> None:
    op.create_table(
        "model_blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_model_blobs"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("intersections", sa.JSON(), nullable=False),
        sa.Column("layouts", sa.JSON(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("registered_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("version", name="uq_model_versions_version"),
    )
    op.create_index("ix_model_versions_content_sha256", "model_versions", ["content_sha256"])
    op.create_table(
        "model_files",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="CASCADE",
                                name="fk_model_files_version_id_model_versions"),
        sa.ForeignKeyConstraint(["sha256"], ["model_blobs.sha256"], name="fk_model_files_sha256_model_blobs"),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_model_files"),
    )
    op.create_table(
        "model_deployments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("deployed_at", UtcDateTime(), nullable=False),
        sa.Column("deployed_by", sa.String(128), nullable=False),
        sa.Column("rolled_back_at", UtcDateTime(), nullable=True),
        sa.Column("rolled_back_by", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name="fk_model_deployments_version_id_model_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_model_deployments"),
    )
    op.create_index("ix_model_deployments_intersection_id", "model_deployments", ["intersection_id", "id"])
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("episodes_total", sa.Integer(), nullable=False),
        sa.Column("episodes_done", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("out_dir", sa.String(1000), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.CheckConstraint(" OR ".join(f"state = '{v}'" for v in JOB_STATES), name="ck_training_jobs_state"),
        sa.PrimaryKeyConstraint("id", name="pk_training_jobs"),
    )
    op.create_index("ix_training_jobs_created_at", "training_jobs", ["created_at"])
    op.create_table(
        "ml_metrics",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        sa.Column("interval_start", UtcDateTime(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("controller", sa.String(500), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=True),
        sa.Column("delay_s_per_veh", sa.Float(), nullable=True),
        sa.Column("queue_veh", sa.Float(), nullable=True),
        sa.Column("throughput_veh_per_h", sa.Float(), nullable=True),
        sa.Column("submitted_at", UtcDateTime(), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ml_metrics"),
        sa.UniqueConstraint("intersection_id", "interval_start", "source", name="uq_ml_metrics_key"),
    )
    op.create_index("ix_ml_metrics_intersection_id_interval_start", "ml_metrics",
                    ["intersection_id", "interval_start"])


def downgrade() -> None:
    op.drop_index("ix_ml_metrics_intersection_id_interval_start", table_name="ml_metrics")
    op.drop_table("ml_metrics")
    op.drop_index("ix_training_jobs_created_at", table_name="training_jobs")
    op.drop_table("training_jobs")
    op.drop_index("ix_model_deployments_intersection_id", table_name="model_deployments")
    op.drop_table("model_deployments")
    op.drop_table("model_files")
    op.drop_index("ix_model_versions_content_sha256", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("model_blobs")
