"""roll-up totals; signal rows without a per-row foreign key, cheaper checks

- `intersection_rollups`, `direction_rollups`: totals per (run, intersection)
  and (run, intersection, direction) that ingestion keeps from now on;
  existing records are summed once here.
- `signal_records.record_id` loses its foreign key (checked once per row, it
  cost ~15 µs per record on PostgreSQL); a trigger deletes a record's signal
  rows with it instead, as the CASCADE did. Its checks become OR chains
  (SQLite evaluated the IN lists ~3x slower per row).

Revision ID: 0003
Revises: 0002
Create Date: 2025-09-11
"""

import sqlalchemy as sa
from alembic import op

from signalwise.store.timefmt import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# the same definitions as signalwise.store.rollups, frozen here as this revision knows them
BACKFILL = [
    "INSERT INTO intersection_rollups (run_id, intersection_id, records, first_timestamp, last_timestamp, "
    "total_vehicles_passed, avg_wait_time_sum, throughput_sum, avg_speed_sum, avg_speed_min, avg_speed_max, "
    "fuel_saved, co2_saved, emergency_overrides, intervals_with_emergency) "
    "SELECT r.run_id, r.intersection_id, count(*), min(r.timestamp), max(r.timestamp), "
    "sum(r.total_vehicles_passed), sum(r.avg_wait_time_all_sides), sum(r.throughput), sum(r.avg_speed), "
    "min(r.avg_speed), max(r.avg_speed), sum(r.fuel_saved), sum(r.co2_saved), sum(r.emergency_overrides), "
    "sum(CASE WHEN EXISTS (SELECT 1 FROM signal_records s WHERE s.record_id = r.id "
    "AND s.emergency_vehicle_present) THEN 1 ELSE 0 END) "
    "FROM intersection_records r GROUP BY r.run_id, r.intersection_id",
    "INSERT INTO direction_rollups (run_id, intersection_id, direction, samples, avg_wait_time_sum, "
    "avg_wait_time_max, vehicles_crossed, emergency_present) "
    "SELECT r.run_id, r.intersection_id, s.direction, count(*), sum(s.avg_wait_time), max(s.avg_wait_time), "
    "sum(s.vehicles_crossed), sum(CASE WHEN s.emergency_vehicle_present THEN 1 ELSE 0 END) "
    "FROM signal_records s JOIN intersection_records r ON r.id = s.record_id "
    "GROUP BY r.run_id, r.intersection_id, s.direction",
]


SIGNAL_COLUMNS = (
    "record_id {id} NOT NULL, direction VARCHAR(8) NOT NULL, car INTEGER NOT NULL, bus INTEGER NOT NULL, "
    "truck INTEGER NOT NULL, bike INTEGER NOT NULL, rickshaw INTEGER NOT NULL, "
    "emergency_vehicle_present BOOLEAN NOT NULL, signal_status VARCHAR(8) NOT NULL, signal_timer FLOAT NOT NULL, "
    "vehicles_crossed INTEGER NOT NULL, avg_wait_time FLOAT NOT NULL, green_time_allocated FLOAT NOT NULL")
OR_CHECKS = ("direction = 'north' OR direction = 'south' OR direction = 'east' OR direction = 'west'",
             "signal_status = 'GREEN' OR signal_status = 'YELLOW' OR signal_status = 'RED'")
IN_CHECKS = ("direction IN ('north', 'south', 'east', 'west')", "signal_status IN ('GREEN', 'YELLOW', 'RED')")
FOREIGN_KEY = ("CONSTRAINT fk_signal_records_record_id_intersection_records FOREIGN KEY (record_id) "
               "REFERENCES intersection_records (id) ON DELETE CASCADE")

TRIGGERS = {
    "postgresql": [
        "CREATE OR REPLACE FUNCTION signal_records_follow_records() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN DELETE FROM signal_records s USING gone g WHERE s.record_id = g.id; RETURN NULL; END $$",
        "CREATE TRIGGER intersection_records_delete_signals AFTER DELETE ON intersection_records "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION signal_records_follow_records()",
    ],
    "sqlite": [
        "CREATE TRIGGER intersection_records_delete_signals AFTER DELETE ON intersection_records "
        "BEGIN DELETE FROM signal_records WHERE record_id = old.id; END",
    ],
}
DROP_TRIGGERS = {
    "postgresql": ["DROP TRIGGER intersection_records_delete_signals ON intersection_records",
                   "DROP FUNCTION signal_records_follow_records()"],
    "sqlite": ["DROP TRIGGER intersection_records_delete_signals"],
}


#: check names as 0002 created them (the naming convention doubled the prefix) and as tables.py names them
NAMES_0002 = ("ck_signal_records_ck_signal_records_direction", "ck_signal_records_ck_signal_records_signal_status")
NAMES_0003 = ("ck_signal_records_direction", "ck_signal_records_signal_status")


def _signal_table(checks: tuple[str, str], names: tuple[str, str], old_names: tuple[str, str],
                  foreign_key: bool) -> None:
    """Rebuild signal_records with these checks, with or without the foreign key, keeping its rows."""
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        if foreign_key:
            op.execute(f"ALTER TABLE signal_records ADD {FOREIGN_KEY}")
        else:
            op.execute("ALTER TABLE signal_records DROP CONSTRAINT fk_signal_records_record_id_intersection_records")
        for old, name, check in zip(old_names, names, checks, strict=True):
            op.execute(f"ALTER TABLE signal_records DROP CONSTRAINT {old}, ADD CONSTRAINT {name} CHECK ({check})")
        return
    # SQLite cannot alter constraints: copy into a new table (nothing references signal_records)
    fk = f", {FOREIGN_KEY}" if foreign_key else ""
    op.execute(f"CREATE TABLE signal_records_new ({SIGNAL_COLUMNS.format(id='INTEGER')}, "
               f"CONSTRAINT pk_signal_records PRIMARY KEY (record_id, direction){fk}, "
               f"CONSTRAINT {names[0]} CHECK ({checks[0]}), CONSTRAINT {names[1]} CHECK ({checks[1]})) WITHOUT ROWID")
    op.execute("INSERT INTO signal_records_new SELECT * FROM signal_records")
    op.execute("DROP TABLE signal_records")
    op.execute("ALTER TABLE signal_records_new RENAME TO signal_records")


def upgrade() -> None:
    _signal_table(OR_CHECKS, NAMES_0003, NAMES_0002, foreign_key=False)
    for statement in TRIGGERS[op.get_context().dialect.name]:
        op.execute(statement)
    op.create_table(
        "intersection_rollups",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("first_timestamp", UtcDateTime(), nullable=False),
        sa.Column("last_timestamp", UtcDateTime(), nullable=False),
        sa.Column("total_vehicles_passed", sa.BigInteger(), nullable=False),
        sa.Column("avg_wait_time_sum", sa.Float(), nullable=False),
        sa.Column("throughput_sum", sa.Float(), nullable=False),
        sa.Column("avg_speed_sum", sa.Float(), nullable=False),
        sa.Column("avg_speed_min", sa.Float(), nullable=False),
        sa.Column("avg_speed_max", sa.Float(), nullable=False),
        sa.Column("fuel_saved", sa.Float(), nullable=False),
        sa.Column("co2_saved", sa.Float(), nullable=False),
        sa.Column("emergency_overrides", sa.BigInteger(), nullable=False),
        sa.Column("intervals_with_emergency", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_intersection_rollups_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "intersection_id", name="pk_intersection_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "direction_rollups",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("intersection_id", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("avg_wait_time_sum", sa.Float(), nullable=False),
        sa.Column("avg_wait_time_max", sa.Float(), nullable=False),
        sa.Column("vehicles_crossed", sa.BigInteger(), nullable=False),
        sa.Column("emergency_present", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_direction_rollups_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "intersection_id", "direction", name="pk_direction_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_direction_rollups_intersection_direction", "direction_rollups",
                    ["intersection_id", "direction"])
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS[op.get_context().dialect.name]:
        op.execute(statement)
    _signal_table(IN_CHECKS, NAMES_0002, NAMES_0003, foreign_key=True)
    op.drop_index("ix_direction_rollups_intersection_direction", table_name="direction_rollups")
    op.drop_table("direction_rollups")
    op.drop_table("intersection_rollups")
