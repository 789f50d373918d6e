"""`signalwise db purge` and a live run at `--speed` above 1: its records are stamped at its wall start plus the
simulated seconds, so they run ahead of the wall clock. Purge goes by the run's status in its run.json: running,
the run stays (a feed); once stopped, a purge of everything older than 0 days removes it whole, as it removes
every other ended run, instead of keeping it for records dated in the future."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.waiting import until

pytestmark = pytest.mark.slow
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _newest_record(db: Path) -> dt.datetime | None:
    """The newest stored record's time; None before the run's store has its tables and a record."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            newest = conn.execute("SELECT max(timestamp) FROM intersection_records").fetchone()[0]
    except sqlite3.OperationalError:  # not made yet, or not migrated yet
        return None
    return None if newest is None else dt.datetime.fromisoformat(newest).replace(tzinfo=dt.UTC)


def _purge(db: Path, *extra: str) -> str:
    proc = subprocess.run([SIGNALWISE, "db", "purge", "--older-than-days", "0", "--db", f"sqlite:///{db}",
                           *extra], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_stopped_live_run_at_speed_50_goes_whole_though_its_records_are_dated_ahead(tmp_path: Path) -> None:
    db, out = tmp_path / "store.db", tmp_path / "runs"
    config = tmp_path / "run.yaml"
    config.write_text("interval_s: 20\n")
    live = subprocess.Popen([SIGNALWISE, "live", "--scenario", "single", "--controller", "fixed", "--speed", "50",
                             "--duration", "3600", "--config", str(config), "--port", "0", "--out", str(out),
                             "--db", f"sqlite:///{db}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first records are stored: simulated minutes ahead of the wall clock
        assert until(lambda: (_newest_record(db) or dt.datetime.min.replace(tzinfo=dt.UTC))
                     > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), 60, 0.2)
        running = _purge(db, "--dry-run")
        assert "would remove: 0 run(s)" in running, running  # running: a feed, never removed whole
    finally:
        live.send_signal(signal.SIGINT)
        _stdout, stderr = live.communicate(timeout=60)
    assert live.returncode == 0, stderr[-2000:]
    run_dir = next(out.glob("*-live-single-*"))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "stopped"
    ahead = _newest_record(db) - dt.datetime.now(dt.UTC)
    assert ahead > dt.timedelta(seconds=60), ahead  # still dated ahead when the purge runs
    removed = _purge(db)
    assert removed.startswith("removed: 1 run(s)"), removed
    assert f"  {run_dir.name}: the whole run," in removed, removed
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM intersection_records").fetchone()[0] == 0
