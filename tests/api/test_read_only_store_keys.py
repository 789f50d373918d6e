"""Keys on a store that takes no writes, and the header of an answer whose key was checked from memory.

A server whose `--db` is read-only (PostgreSQL in read-only transactions, a SQLite file opened `mode=ro`) still
verifies keys by reading them: operators keep control of a live run (a real uvicorn on 127.0.0.1 with a live run
of `single`), tokens are minted, and nothing is written into the store.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select
from support.loopback import serving_live
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.api.auth import MEMORY_HEADER, MEMORY_MISMATCH_HEADER
from signalwise.store import Settings, get_engine
from signalwise.store.engine import dispose_engines
from signalwise.store.keys import create_key
from signalwise.store.tables import ApiKey

SECRET = "s" * 40
DOCS = Path(__file__).resolve().parents[2] / "docs"


def read_only_url(url: str) -> str:
    """The same database, opened so that it takes no writes."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return url + quote(" -cdefault_transaction_read_only=on")  # the test URL ends with options=-csearch_path...


def test_a_read_only_store_keeps_keyed_reads_changes_and_tokens_working(db_url, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    engine = get_engine(db_url)
    ops, key = create_key(engine, "ops", ["read", "operate"])
    read_only = read_only_url(db_url)
    settings = Settings(database_url=read_only, jwt_secret=SECRET)
    try:
        with serving_live(settings, tmp_path / "live") as (client, rt):
            headers = {"X-API-Key": key}
            signal = rt.stepper.intersections[0].id
            # each was a 500 (PostgreSQL: InternalError) or a 503 "database unavailable" (SQLite)
            status = client.get("/api/v1/live/status", headers=headers)
            assert status.status_code == 200, status.text
            assert "X-Auth-Checked" not in status.headers  # checked in the database, which answered
            override = {"intersection_id": signal, "action": "hold", "phase_number": 1, "duration_s": 30}
            changed = client.post("/api/v1/live/override", json=override, headers=headers)
            assert changed.status_code == 200, changed.text
            assert client.get("/api/v1/live/status", headers=headers).json()["overrides"]
            # a token needs only the key's read
            minted = client.post("/api/v1/auth/token", headers=headers)
            assert minted.status_code == 200, minted.text
            bearer = {"Authorization": f"Bearer {minted.json()['access_token']}"}
            again = client.delete(f"/api/v1/live/override/{signal}", headers=bearer)
            assert again.status_code == 200, again.text
            # the database still refuses what it refuses
            wrong = client.get("/api/v1/live/status", headers={"X-API-Key": key[:-4] + "AAAA"})
            assert wrong.status_code == 401, wrong.text
            assert rt.running
    finally:
        dispose_engines(read_only)
    t = ApiKey.__table__
    with engine.connect() as conn:  # nothing was written into the read-only store
        assert conn.execute(select(t.c.last_used_at).where(t.c.id == ops.id)).scalar_one() is None
    said = [r.getMessage() for r in caplog.records if "last_used_at" in r.getMessage()]
    assert len(said) == 1 and "keys are still verified" in said[0], said
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_an_answer_checked_from_memory_says_so_without_the_database_error(tmp_path):
    with migrated_database("sqlite", tmp_path) as url:
        _info, key = create_key(get_engine(url), "ops", ["admin"])
        app = create_app(Settings(database_url=url))
        with TestClient(app, headers={"X-API-Key": key}) as client:
            first = client.post("/api/v1/admin/clear-cache")
            assert first.status_code == 200 and "X-Auth-Checked" not in first.headers
            # the store goes away: its file is moved, and a directory stands where it was (unable to open it)
            dispose_engines(url)
            path = Path(url.removeprefix("sqlite:///"))
            shutil.move(path, tmp_path / "away.db")
            path.mkdir()
            answer = client.post("/api/v1/admin/clear-cache")
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Auth-Checked"] == MEMORY_HEADER["X-Auth-Checked"]
            assert "unable to open" not in answer.headers["X-Auth-Checked"]  # the error is the log's
            path.rmdir()
            dispose_engines(url)


def test_the_docs_name_the_memory_header_as_it_is_sent():
    """Both values: the database does not answer, or its store is at another schema revision."""
    header, value = next(iter(MEMORY_HEADER.items()))
    values = {value, *MEMORY_MISMATCH_HEADER.values()}
    assert MEMORY_MISMATCH_HEADER.keys() == {header} and len(values) == 2
    for name in ("api.md", "deployment.md"):
        text = DOCS.joinpath(name).read_text()
        named = re.findall(rf"`{header}: ([^`]*)`", text)
        assert named, f"{name} does not name {header}"
        assert set(named) == values, (name, named)
