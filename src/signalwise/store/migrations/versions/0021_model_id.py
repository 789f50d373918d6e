"""each model version's identity: what decides its behaviour

`model_versions.model_id`: the SHA-256 of what decides the model's
behaviour (its tables, or its phase-score policy, with the options its
controller reads), computed by `signalwise.provenance.model_id`, where
`content_sha256` digests every file, `meta.json` with its times, paths and
evaluations included. The same weights registered again have the same id.
Versions registered before this revision keep NULL; the registry works it
out from their stored metadata and file hashes when it reads them. A
nullable column added in place on SQLite and PostgreSQL, with an index.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("model_id", sa.String(64), nullable=True))
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_model_id", table_name="model_versions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("model_id")
