"""the PostgreSQL trigger functions delete in the schema of the table they fire on

`signal_records_follow_records()` and `bucketed_rollups_follow_runs()` named `signal_records` and the bucket
tables without a schema: the names resolved through the search path of the session deleting, so a delete in one
store's schema deleted the rows of the store first on that session's search path (another store in the same
database), and left its own. They name each table in `TG_TABLE_SCHEMA` (the schema of `intersection_records` or
`runs`) instead. The functions are replaced in place; no table changes. SQLite's triggers name tables of their own
database and stay as they are.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

#: the bucket tables as of this revision (0006)
BUCKETS = ("bucket_rollups_1h", "bucket_rollups_15min", "bucket_rollups_5min")


def _functions(qualified: bool) -> list[str]:
    def delete(table: str, alias: str, key: str, owner: str) -> str:
        # concatenated, not format('%I'): a `%` in the text would be taken for a parameter on its way to the driver
        rest = f"{table} {alias} USING gone g WHERE {alias}.{key} = g.{owner}"
        return f"EXECUTE 'DELETE FROM ' || quote_ident(TG_TABLE_SCHEMA) || '.{rest}';" if qualified \
            else f"DELETE FROM {rest};"

    signals = delete("signal_records", "s", "record_id", "id")
    buckets = " ".join(delete(t, "x", "run_id", "id") for t in BUCKETS)
    return [
        "CREATE OR REPLACE FUNCTION signal_records_follow_records() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {signals} RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION bucketed_rollups_follow_runs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{buckets} RETURN NULL; END $$",
    ]


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _functions(qualified=True):
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in _functions(qualified=False):
            op.execute(statement)
