"""when each hi-res event was stored

`hires_events.stored_at`: the instant a row was written (UTC), filled by the
database (`CURRENT_TIMESTAMP`), so every writer gives it. Retention dates the
events of no stored run (imported controller logs) by it, not by their own
timestamps: a log's clock may be a simulated one (a run's `events.csv`
starts on `core.eventlog.DEFAULT_START`, a fixed day in 2025), which dated the
import as old the night it was imported.

Rows stored before this revision take the instant of the upgrade: they are
kept a full retention from then, never removed sooner than before.
PostgreSQL adds the column with that instant as a constant default (11+
stores it once in the catalogue, no table rewrite), then sets the default to
the current time. SQLite cannot add a column whose default is the current
time: it adds it with the constant, writes it into every row (an UPDATE),
then changes the declared default to `CURRENT_TIMESTAMP` by rewriting the
declaration in its schema, which its documentation allows for "adding,
removing, or changing default values on a column"
(https://sqlite.org/lang_altertable.html#otheralter), as 0015 does. Indexed:
`db purge` selects by it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = dt.datetime.now(dt.UTC)
    sqlite = op.get_context().dialect.name == "sqlite"
    # SQLAlchemy's SQLite text for a UtcDateTime ('YYYY-MM-DD HH:MM:SS.ffffff', UTC); PostgreSQL: a timestamptz
    default = now.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else now.isoformat()
    op.add_column("hires_events", sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False,
                                            server_default=sa.text(f"'{default}'")))
    if sqlite:
        _sqlite_default_now(default)
    else:
        op.alter_column("hires_events", "stored_at", server_default=sa.text("CURRENT_TIMESTAMP"))
    op.create_index("ix_hires_events_stored_at", "hires_events", ["stored_at"])


def _sqlite_default_now(constant: str) -> None:
    conn = op.get_bind()
    conn.exec_driver_sql("UPDATE hires_events SET stored_at = stored_at")  # into the rows: not read from the default
    declared = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'hires_events'"
                                    ).scalar_one()
    old = f"DEFAULT '{constant}'"
    if declared.count(old) != 1:
        raise RuntimeError(f"hires_events.stored_at: its default {old} was not found in {declared!r}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'hires_events'",
                             (declared.replace(old, "DEFAULT CURRENT_TIMESTAMP"),))
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def downgrade() -> None:
    op.drop_index("ix_hires_events_stored_at", table_name="hires_events")
    op.execute("ALTER TABLE hires_events DROP COLUMN stored_at")
