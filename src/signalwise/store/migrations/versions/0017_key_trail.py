"""who created and who revoked each API key

`api_keys.created_by` / `created_by_key_id`: the name and id of the key that
created it over the API (`insecure` under `--insecure-no-auth`), or
`cli:<user>` for `signalwise keys create`; `revoked_by` / `revoked_by_key_id`
likewise for its revocation (`revoked_at` says when). A name is given again
once its key is revoked, so the id is what tells two creators of one name
apart. Keys stored before this revision keep NULL: nobody recorded who made
them. Nullable columns added in place (no table rebuild, no backfill).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: (column, length), in the order they are added
COLUMNS = (("created_by", 128), ("created_by_key_id", 16), ("revoked_by", 128), ("revoked_by_key_id", 16))


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for name, length in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for name, _length in reversed(COLUMNS):
            batch.drop_column(name)
