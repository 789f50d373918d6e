"""A `SIGNALWISE_*` variable the settings refuse is bad input: the store's commands name it in one `error:`
line and exit 2, never a traceback, and write nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from support.records import one_record
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.store import get_engine
from signalwise.store.tables import IntersectionRecordRow

RECORD = one_record("S", "2025-01-06T07:00:00Z")


@pytest.mark.parametrize(("variable", "value", "args"), [
    ("SIGNALWISE_INGEST_WORKERS", "-1", ["ingest", "{records}", "--db", "{db}"]),  # read mid-ingest
    ("SIGNALWISE_INGEST_WORKERS", "two", ["ingest", "{records}"]),
    ("SIGNALWISE_RETENTION_DAYS", '{"events": "a month"}', ["db", "purge", "--db", "{db}"]),
    ("SIGNALWISE_MAX_PAGE_SIZE", "0", ["db", "upgrade"]),
])
@pytest.mark.slow
def test_a_refused_variable_is_named_in_one_line_and_exit_2(db_url, tmp_path, variable, value, args):
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps(RECORD) + "\n")
    env = {variable: value, "SIGNALWISE_DATABASE_URL": db_url}
    result = CliRunner().invoke(app, [a.format(records=records, db=db_url) for a in args], env=env)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {variable}: "), result.output
    engine = get_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IntersectionRecordRow.__table__)).scalar_one() == 0
