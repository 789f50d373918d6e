"""where each camera violation came from, and one row per violation

`violations` gains what a record is checked by: `source` (the footage's
identity: `sha256:<hex>` of a video file's bytes, `stream:<id>@<start>` of a
stream), `source_name` (the file's name, the stream), `frame` (the frame the
call was made on, from 0), `video_s` (its time in the video), `signal_log_s`
(that time on the signal log's clock), `red_for_s` (how long the light had
been red at the front's crossing), `time_assumed` (`occurred_at` taken from
the processing machine's clock, not the camera's) and `evidence_sha256` (the
evidence image's digest when the row was stored, checked before it is
served). A unique index on (`source`, `camera_id`, `kind`, `track_id`,
`frame`) keeps a video processed twice from storing its violations twice.

Rows stored before this revision keep NULL in every new column: nothing
recorded where they came from, and an image hashed now would vouch for
whatever is on disk today, not for what was stored. NULLs never collide in
a unique index (SQLite and PostgreSQL alike), so they stay as they are.

A violation's id is never given to another one. PostgreSQL's sequence never
goes back; SQLite's INTEGER PRIMARY KEY without AUTOINCREMENT takes the
largest id + 1, so once the newest rows were removed (a video stored again in
their place) a new violation took an id the evidence access log already
named. SQLite rebuilds the table with AUTOINCREMENT (a copy of its rows,
once) and starts its counter past every id stored or logged as read.
PostgreSQL adds the nullable columns in place.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

#: (column, type), in the order they are added
COLUMNS = (
    ("source", sa.String(128)), ("source_name", sa.String(256)), ("frame", sa.BigInteger()), ("video_s", sa.Float()),
    ("signal_log_s", sa.Float()), ("red_for_s", sa.Float()), ("time_assumed", sa.Boolean()),
    ("evidence_sha256", sa.String(64)),
)
IDENTITY = ("source", "camera_id", "kind", "track_id", "frame")


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    with op.batch_alter_table("violations", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    if sqlite:
        _ids_past_every_one_used()
    op.create_index("uq_violations_identity", "violations", list(IDENTITY), unique=True)


def _ids_past_every_one_used() -> None:
    """SQLite's AUTOINCREMENT counter for `violations` set past every id stored and every id the access log read
    a violation by (`served`, `gone`: a row removed before this revision may have been read). Not past those of
    `unknown` and `refused` reads: any number up to 2**62 may be asked for, and they name no row."""
    conn = op.get_bind()
    used = conn.exec_driver_sql(
        "SELECT max(coalesce((SELECT max(id) FROM violations), 0), coalesce((SELECT max(violation_id) FROM "
        "evidence_access WHERE result IN ('served', 'gone')), 0))").scalar_one()
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'violations'")
    conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('violations', ?)", (int(used),))


def downgrade() -> None:
    op.drop_index("uq_violations_identity", table_name="violations")
    with op.batch_alter_table("violations") as batch:
        for name, _type in reversed(COLUMNS):
            batch.drop_column(name)
