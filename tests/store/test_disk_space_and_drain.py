"""Giving disk space back (`db purge` checkpoints the WAL and says what a vacuum frees; `db vacuum`), and `db drain`
refusing a directory that holds no store buffer: each through the `signalwise` command on a real database."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from support.databases import DATABASE_KINDS, database_kind, isolated_database

from signalwise.store import bulk_insert_events, get_engine, register_run
from signalwise.store.engine import dispose_engines

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
EVENTS = 60_000


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIGNALWISE, *args], capture_output=True, text=True, timeout=300)


def _filled(url: str) -> None:
    """Two runs with EVENTS hi-res events each, as a stored comparison holds them (then the engine closed)."""
    engine = get_engine(url)
    start = dt.datetime(2026, 1, 1)
    for sim in ("cmp.fixed-s1", "cmp.actuated-s1"):
        register_run(engine, sim, "corridor", sim.split(".")[1][:-3], 1, {})
        bulk_insert_events(engine, ((start + dt.timedelta(seconds=i / 10), f"J{i % 5}", 81 + i % 2, i % 64)
                                    for i in range(EVENTS)), simulation_id=sim)
    dispose_engines(url)


def _on_disk(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


@pytest.fixture(params=DATABASE_KINDS)
def store(request, tmp_path):
    kind = database_kind(request)
    with isolated_database(kind, tmp_path) as url:
        _filled(url)
        yield kind, url


@pytest.mark.slow  # 120 000 events stored, purged and vacuumed through three commands
def test_purge_leaves_no_wal_and_says_what_vacuum_frees_then_vacuum_gives_it_back(store, tmp_path):
    kind, url = store
    forgot = _cli("db", "forget", "cmp.fixed-s1", "--yes", "--db", url)
    assert forgot.returncode == 0, forgot.stderr
    if kind == "sqlite":
        wal = Path(f"{tmp_path / 'store.db'}-wal")
        assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
        assert "of the database file is free pages" in forgot.stdout
    purged = _cli("db", "purge", "--older-than-days", "0", "--db", url)
    assert purged.returncode == 0, purged.stderr
    assert "removed: 1 run(s)" in purged.stdout
    if kind == "sqlite":
        db = tmp_path / "store.db"
        # the command has exited: its removal's writes are in the file, not left in a -wal as large as they were
        assert not wal.exists() or wal.stat().st_size == 0, wal.stat().st_size
        said = re.search(r"([\d.]+) MB of the database file is free pages: signalwise db vacuum", purged.stdout)
        assert said, purged.stdout
        before = _on_disk(db)
        assert float(said[1]) * 1e6 > before / 2  # most of the file: the runs' events are gone
        vacuumed = _cli("db", "vacuum", "--db", url)
        assert vacuumed.returncode == 0, vacuumed.stderr
        after = _on_disk(db)
        assert after < before - float(said[1]) * 1e6 * 0.9, (before, after)
        assert f"{before / 1e6:.1f} MB -> {after / 1e6:.1f} MB" in vacuumed.stdout
        with get_engine(url).connect() as conn:  # still a store at its revision, the runs gone
            assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0
            assert conn.execute(text("PRAGMA freelist_count")).scalar_one() == 0
        return
    assert "free pages" not in purged.stdout  # PostgreSQL: VACUUM finds the space, not a page count
    vacuumed = _cli("db", "vacuum", "--db", url)
    assert vacuumed.returncode == 0, vacuumed.stderr
    assert re.search(r"vacuumed \d+ tables of .* \(VACUUM \(ANALYZE\)\)", vacuumed.stdout), vacuumed.stdout
    with get_engine(url).connect() as conn:  # ANALYZE ran: the statistics say the table is empty now
        analyzed = conn.execute(text("SELECT last_analyze IS NOT NULL, last_vacuum IS NOT NULL FROM "
                                     "pg_stat_user_tables WHERE relname = 'hires_events' AND schemaname = "
                                     "current_schema()")).one()
    assert tuple(analyzed) == (True, True)


def test_vacuum_refuses_a_sqlite_file_that_is_not_there(tmp_path):
    gone = _cli("db", "vacuum", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert gone.returncode != 0
    assert "no such database file" in gone.stderr
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("contents", ["a compare folder", "empty"])
def test_drain_refuses_a_directory_that_is_no_store_buffer(tmp_path, contents):
    folder = tmp_path / "cmp1"
    folder.mkdir()
    if contents == "a compare folder":
        (folder / "summary.csv").write_text("metric,controller\n")
        (folder / "fixed-s1").mkdir()
    db = tmp_path / "store.db"
    p = _cli("db", "drain", str(folder), "--db", f"sqlite:///{db}", "--timeout", "5")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "stored" not in p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a live run's directory" in lines[0], p.stderr
