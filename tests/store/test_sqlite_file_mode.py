"""A SQLite store is created readable by its owner only (0600), its -wal and -shm files too: it holds the API
keys' digests, the evidence access log and the records, and under the usual umask 022 sqlite3 makes files every
local user can read. A file that is there keeps its mode. `signalwise keys create` as an operator runs it (a
process of its own, umask 022), then the store opened by this process while a connection holds it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from signalwise.store import create_store_engine

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow  # a `signalwise` process
def test_keys_create_makes_the_store_and_its_wal_owner_only(tmp_path):
    made = subprocess.run([SIGNALWISE, "keys", "create", "--name", "t", "--scope", "read"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert made.returncode == 0, made.stderr
    db = tmp_path / "signalwise.db"
    assert _mode(db) == 0o600
    engine = create_store_engine(f"sqlite:///{db}")
    with engine.connect() as conn:  # held open: the -wal and -shm files are there meanwhile
        conn.execute(text("SELECT count(*) FROM api_keys")).scalar()
        for suffix in ("-wal", "-shm"):
            assert _mode(tmp_path / f"signalwise.db{suffix}") == 0o600, suffix
    engine.dispose()


def test_a_store_that_is_there_keeps_its_mode(tmp_path):
    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    os.chmod(db, 0o640)
    engine = create_store_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (a integer)"))
    engine.dispose()
    assert _mode(db) == 0o640
