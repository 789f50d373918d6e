"""figures not measured, and what an alert named and why it cleared

A live run fed by detectors (`--field none`) measures no waits, speeds,
vehicle classes, emergency vehicles, fuel or CO2; its records say `null`, and
the columns that hold them could not: they were stored as 0, a wrong number
shown as measured. They take NULL now, and the roll-ups leave NULL out: two
counts per intersection total (`avg_wait_time_samples`, `avg_speed_samples`)
that the means divide by, an approach's `samples` count its measured waits
(every stored wait was measured, so they stay as they are), and the fuel, CO2
and speed minimum and maximum totals take NULL. Rows stored before this
revision measured everything (their counts are backfilled from `records`);
a feed run stored before it keeps its zeros.

`alerts` gains `subjects` (JSON: what the figure counted at the raise, the
signals whose data were stale, ...) and `cleared_reason` (why it cleared).

SQLite drops a NOT NULL by rewriting the table's declaration in its schema,
the procedure its documentation gives for removing NOT NULL constraints
(https://sqlite.org/lang_altertable.html#otheralter, "the following simpler
procedure"): the stored rows do not change, so the tables, their WITHOUT
ROWID, indexes and triggers (migrations 0003, 0006) stay as they are, where
the 12-step rebuild of a batch migration would have to recreate them all.

Downgrade stores 0 for every NULL (what the columns held before) and makes
them NOT NULL again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BUCKET_TABLES = ("bucket_rollups_1h", "bucket_rollups_15min", "bucket_rollups_5min")
ROLLUP_TABLES = ("intersection_rollups", *BUCKET_TABLES)
#: (table, columns that take NULL: not measured), with each column's type
NULLABLE = (
    ("intersection_records", {"avg_wait_time_all_sides": sa.Float(), "avg_speed": sa.Float(),
                              "fuel_saved": sa.Float(), "co2_saved": sa.Float()}),
    ("signal_records", {"car": sa.Integer(), "bus": sa.Integer(), "truck": sa.Integer(), "bike": sa.Integer(),
                        "rickshaw": sa.Integer(), "emergency_vehicle_present": sa.Boolean(),
                        "vehicles_crossed": sa.Integer(), "avg_wait_time": sa.Float()}),
    *((t, {"avg_speed_min": sa.Float(), "avg_speed_max": sa.Float(), "fuel_saved": sa.Float(),
           "co2_saved": sa.Float()}) for t in ROLLUP_TABLES),
)
SAMPLE_COLUMNS = ("avg_wait_time_samples", "avg_speed_samples")


def upgrade() -> None:
    for table, columns in NULLABLE:
        _set_not_null(table, columns, False)
    for table in ROLLUP_TABLES:
        for column in SAMPLE_COLUMNS:
            op.add_column(table, sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        op.execute(f"UPDATE {table} SET {', '.join(f'{c} = records' for c in SAMPLE_COLUMNS)}")
    op.add_column("alerts", sa.Column("subjects", sa.JSON(), nullable=True))
    op.add_column("alerts", sa.Column("cleared_reason", sa.String(), nullable=True))


def downgrade() -> None:
    for column in ("cleared_reason", "subjects"):
        op.execute(f"ALTER TABLE alerts DROP COLUMN {column}")
    for table in ROLLUP_TABLES:
        for column in SAMPLE_COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for table, columns in NULLABLE:
        false = "0" if op.get_context().dialect.name == "sqlite" else "false"
        for column, kind in columns.items():
            zero = false if isinstance(kind, sa.Boolean) else "0"
            op.execute(f"UPDATE {table} SET {column} = {zero} WHERE {column} IS NULL")
        _set_not_null(table, columns, True)


def _set_not_null(table: str, columns: dict, not_null: bool) -> None:
    if op.get_context().dialect.name != "sqlite":
        for column, kind in columns.items():
            op.alter_column(table, column, existing_type=kind, nullable=not not_null)
        return
    conn = op.get_bind()
    declared = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                    (table,)).scalar_one()
    changed = declared
    for column in columns:
        # the column as SQLAlchemy declares it, after "(" or ",": "name TYPE[(n)] [NOT NULL]" then "," or ")"
        line = re.compile(rf"([(,]\s*{column} [A-Z]+(?:\(\d+\))?)( NOT NULL)?(?=\s*[,)])")
        if not line.search(changed):
            raise RuntimeError(f"{table}.{column}: its declaration was not found in {declared!r}")
        changed = line.sub(lambda m: m.group(1) + (" NOT NULL" if not_null else ""), changed, count=1)
    if changed == declared:
        return
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (changed, table))
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")
