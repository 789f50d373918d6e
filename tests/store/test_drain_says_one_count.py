"""`signalwise db drain` against a database that is slow to take the first write (here: another connection holds
its write lock for 2 s). The writer underneath is a live run's writer, whose lines for a running run ("store
write late", "database back: wrote N rows, M buffered rows still to write") read as a second,
different count. The drain says one count, the rows stored, and a note on why the database was late."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.waiting import until
from test_live_drain_run_json import ROWS, run_left_waiting, stored_rows

from signalwise.store.engine import create_store_engine, upgrade

pytestmark = pytest.mark.slow  # about 5 s: a CLI start and the 2.5 s lock
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
HELD_S = 2.5  # over the writer's write_late_s (1 s)


def _has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (its /proc fd links)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())
    except OSError:  # it ended, or an fd closed while read
        return False


def test_a_drain_held_up_by_a_locked_database_says_one_count_and_why(tmp_path: Path) -> None:
    run_dir, _store = run_left_waiting(tmp_path)
    db = tmp_path / "store.db"
    engine = create_store_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    drain = subprocess.Popen([SIGNALWISE, "db", "drain", str(run_dir), "--db", f"sqlite:///{db}", "--timeout", "30"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # held for HELD_S from when the drain has the database open (its start takes seconds under load)
        assert until(lambda: _has_open(drain.pid, db) or drain.poll() is not None, 60, 0.05)
        time.sleep(HELD_S)  # the condition under test: a database locked that long
    finally:
        holder.execute("COMMIT")
        holder.close()
        stdout, stderr = drain.communicate(timeout=90)
    proc = subprocess.CompletedProcess(drain.args, drain.returncode, stdout, stderr)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said
    assert stored_rows(db) == ROWS
    counts = {int(n) for n in re.findall(r"(\d+) (?:buffered )?rows?\b", said)}
    assert counts == {ROWS}, said  # one count: every row the drain stored, none other
    assert f"{ROWS} row(s) stored in sqlite:///{db}" in said
    assert "database back" not in said and "store write late" not in said, said
    note = " ".join(proc.stderr.split())
    assert "note: the database did not answer the drain's writes for 1 s or more" in note, note
    assert "the rows waited in the buffer meanwhile; none was lost" in note, note
