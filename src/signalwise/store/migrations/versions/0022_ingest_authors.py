"""which source made each run, and which API key wrote each ingested record

`runs.source`: `ingest` for a simulation its records created (`POST /api/v1/ingest/*`, `signalwise ingest`,
`ingest_records`), `run` for one a run registered (`publish`, `run --db`, `compare --db`, a live run).
`runs.created_by_key_id`: the id of the API key whose ingest created it (`insecure` under
`--insecure-no-auth`). `intersection_records.sent_by_key_id`: the id of the API key whose ingest wrote the row
last (`insecure` likewise); NULL for a row any other writer stored. The API ingests only into `ingest` runs.
Runs stored before this revision are told apart by what a run registers: one with a scenario, controller,
seed, configuration or start is `run`, a bare one `ingest`. Nullable columns added and dropped in place (no table rebuild);
the rows' key ids stay NULL (nobody recorded them).

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("source", sa.String(16), nullable=True))
    op.add_column("runs", sa.Column("created_by_key_id", sa.String(16), nullable=True))
    op.add_column("intersection_records", sa.Column("sent_by_key_id", sa.String(16), nullable=True))
    op.execute("UPDATE runs SET source = CASE WHEN scenario IS NULL AND controller IS NULL AND seed IS NULL "
               "AND config IS NULL AND started_at IS NULL THEN 'ingest' ELSE 'run' END")


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on SQLite too (3.35+): a batch rebuild of intersection_records would drop the
    # trigger that removes a record's signal rows (0003)
    op.execute("ALTER TABLE intersection_records DROP COLUMN sent_by_key_id")
    op.execute("ALTER TABLE runs DROP COLUMN created_by_key_id")
    op.execute("ALTER TABLE runs DROP COLUMN source")
