"""The backup commands docs/store.md gives, run as written (under the usual umask 022), leave files only their owner
can read: a backup holds the API keys' digests and the evidence access log. They used to come out 0644."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.databases import POSTGRES_URL, postgres_unavailable_reason
from support.migrated_databases import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]


def _documented(word: str) -> str:
    """The one inline command of store.md's Backups section that runs `word`."""
    section = (ROOT / "docs" / "store.md").read_text().split("## Backups", 1)[1].split("\n## ", 1)[0]
    spans = [s for s in re.findall(r"`([^`]+)`", section.replace("\n", " ")) if word in s]
    assert len(spans) == 1, spans
    return spans[0]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(command: str, cwd: Path, env: dict | None = None) -> None:
    done = subprocess.run(["sh", "-c", f"umask 022; {command}"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, (command, done.stderr)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command-line shell is not installed")
def test_the_sqlite_backup_command_leaves_a_file_only_its_owner_reads(tmp_path):
    command = _documented(".backup")
    migrated_sqlite(tmp_path / "signalwise.db")  # a real store, at this release's schema
    _run(command, tmp_path)
    backup = tmp_path / "backup.db"
    assert _mode(backup) == 0o600, oct(_mode(backup))
    check = subprocess.run(["sqlite3", str(backup), "PRAGMA integrity_check"], capture_output=True, text=True)
    assert check.stdout.strip() == "ok"


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_the_pg_dump_command_leaves_a_file_only_its_owner_reads(tmp_path):
    why = postgres_unavailable_reason()
    if why is not None:
        pytest.skip(why)
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    command = _documented("pg_dump -h")
    schema = f"sw_backup_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE TABLE "{schema}".api_keys (digest text)'))
    try:
        # the documented command on the test database, kept to a schema of this test's own (`-n`): the whole
        # database is other tests' too; the file's mode does not depend on what is dumped
        command = re.sub(r" DB\b", f" -n {schema} {url.database}", command)
        command = command.replace("-h 127.0.0.1", f"-h {url.host or '127.0.0.1'} -p {url.port or 5432}")
        env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
        _run(command, tmp_path, env)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    dump = tmp_path / "store.dump"
    assert dump.stat().st_size > 0
    assert _mode(dump) == 0o600, oct(_mode(dump))
