"""A database that opens but refuses a write (read-only here; locked past the busy timeout or a server gone
mid-write alike): the store's writing commands say so in one `error:` line and exit 1, never a traceback,
and nothing is written."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from support.records import one_record
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.store import get_engine, ingest_records
from signalwise.store.engine import dispose_engines
from signalwise.store.keys import create_key
from signalwise.store.tables import IntersectionRecordRow

RECORD = one_record("OLD", "2020-01-06T07:00:00Z")


def _read_only(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return url + quote(" -cdefault_transaction_read_only=on")  # the test URL ends with options=-csearch_path...


@pytest.fixture
def read_only_url(db_url):
    """The URL of a database at the newest schema, holding an old run and a key, that refuses writes."""
    engine = get_engine(db_url)
    ingest_records(engine, [RECORD])
    create_key(engine, "ops", ["read"], None)
    url = _read_only(db_url)
    yield url
    dispose_engines(url)


@pytest.mark.parametrize("args", [
    ["ingest", "{records}"],
    ["db", "purge"],
    ["keys", "create", "--name", "x", "--scope", "read"],
    ["keys", "revoke", "ops"],
    ["events", "import", "{events}"],
])
@pytest.mark.slow
def test_a_refused_write_is_one_line_and_exit_1(read_only_url, db_url, tmp_path, args):
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({**RECORD, "simulation_id": "NEW"}) + "\n")
    events = tmp_path / "log.csv"
    events.write_text("TimeStamp,DeviceId,EventId,Parameter\n2025-01-06 07:00:00.0,A,1,2\n")
    result = CliRunner().invoke(app, [a.format(records=records, events=events) for a in args] + ["--db", read_only_url])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and any(w in errors[0] for w in ("read-only", "readonly")), result.output
    with get_engine(db_url).connect() as conn:  # nothing written, nothing removed
        assert conn.execute(select(func.count()).select_from(IntersectionRecordRow.__table__)).scalar_one() == 1
