"""who removed a model version, and when

`model_versions.removed_at` / `removed_by`: a removed version keeps its row
(its metadata, and the name the deployment history and earlier runs refer
to, which is never given to another version) while its files and the blobs
no other version shares are deleted (`ModelRegistry.remove`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("removed_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("removed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("removed_by")
        batch.drop_column("removed_at")
