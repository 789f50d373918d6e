"""check constraints named as tables.py names them

Revisions 0008, 0010 and 0011 passed full names (`ck_alerts_level`) to a
metadata whose naming convention adds the prefix again, so the stores they
built hold `ck_alerts_ck_alerts_level`, where a store made from tables.py
holds `ck_alerts_level` (0003 did the same for signal_records). The checks
themselves were always the same; only their names differ, and a later
migration that drops or replaces a check by name would miss it on one kind
of store. This revision renames the four to tables.py's names.

PostgreSQL renames in place. SQLite cannot rename a constraint. Rather
than rebuild four tables (copying every row, and carrying `violations`'
AUTOINCREMENT and its counter across as 0018 does), the name is changed in
each table's stored CREATE statement (sqlite_master, with
`writable_schema`), the way SQLite's own documentation changes a table's
constraints without touching its rows: a constraint's name is not part of
the file format, and the schema version is raised so that every open
connection reads the new statement. A SQLite built or opened in defensive
mode refuses that edit: the upgrade then stops, changing nothing, and says
so.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: table -> the check's name after the naming convention's prefix
CHECKS = {
    "alerts": "level",
    "runtime_changes": "result",
    "training_jobs": "state",
    "violations": "kind",
}


def _doubled(table: str, check: str) -> str:
    return f"ck_{table}_ck_{table}_{check}"


def _named(table: str, check: str) -> str:
    return f"ck_{table}_{check}"


def _rename(forward: bool) -> None:
    renames = [(_doubled(t, c), _named(t, c)) if forward else (_named(t, c), _doubled(t, c))
               for t, c in CHECKS.items()]
    if op.get_context().dialect.name == "postgresql":
        for (table, _), (old, new) in zip(CHECKS.items(), renames, strict=True):
            op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")
        return
    conn = op.get_bind()
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        for (table, _), (old, new) in zip(CHECKS.items(), renames, strict=True):
            try:
                changed = conn.exec_driver_sql(
                    "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ? "
                    "AND instr(sql, ?) > 0",
                    (f"CONSTRAINT {old} CHECK", f"CONSTRAINT {new} CHECK", table, f"CONSTRAINT {old} CHECK")).rowcount
            except Exception as exc:
                if "may not be modified" not in str(exc):
                    raise
                raise RuntimeError(
                    "revision 0020 renames four check constraints by editing SQLite's stored schema, which this "
                    "SQLite refuses (it runs in defensive mode: SQLITE_DBCONFIG_DEFENSIVE); nothing was changed. "
                    "Upgrade the store with a Python whose SQLite library is not built defensive (SQLITE_DEFAULT_DEFENSIVE; "
                    "the usual CPython builds are not)") from exc
            if changed != 1:
                raise RuntimeError(f"{table}: no check constraint named {old} to rename to {new}; "
                                   "the store's schema is not what revision 0019 left")
        conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = conn.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"SQLite's quick_check after renaming the checks: {problems}")


def upgrade() -> None:
    _rename(forward=True)


def downgrade() -> None:
    _rename(forward=False)
