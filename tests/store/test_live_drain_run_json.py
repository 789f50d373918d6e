"""`signalwise db drain RUN_DIR` and the run's `run.json`: the operator archives a run directory once its
`store.waiting_rows` is 0 (docs/live.md), so a drain that stores the buffer says so there, and one the database
stops midway leaves the rows that truly still wait, with the command that stores them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from signalwise.core.types import SignalEvent
from signalwise.outdirs import process_identity
from signalwise.store.engine import create_store_engine, upgrade
from signalwise.store.live import LiveStoreWriter, note_drained

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}
RUN = "20261129-162005-live-single-max-pressure"
ROWS = 13  # the run's row and 12 more, 3 of each kind (put_numbered)


def put_numbered(writer: LiveStoreWriter, n_rows: int) -> None:
    """Rows in the order a run hands them over: a record, an event, a change, an alert, again."""
    for n in range(n_rows):
        kind = n % 4
        if kind == 0:
            writer.put_records([{
                "simulation_id": RUN, "intersection_id": "C", "timestamp": f"2026-11-29T16:{n:02d}:00+00:00",
                "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                             "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1,
                             "avg_wait_time": 1.0, "green_time_allocated": 20}],
                "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                            "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}])
        elif kind == 1:
            writer.put_events([SignalEvent(float(n), "C", 1, n)])
        elif kind == 2:
            writer.put_change({"at": f"2026-11-29T16:20:{n:02d}+00:00", "who": "ops", "kind": "timing",
                               "payload": {"n": n}, "result": "applied", "reason": "", "sim_time_s": float(n)})
        else:
            writer.put_alert({"id": f"a{n}", "rule": "r", "level": "warning", "metric": "m", "value": n,
                              "threshold": 0, "raised_at_s": float(n), "cleared_at_s": None,
                              "wall_time": "2026-11-29T16:20:05+00:00", "message": f"n={n}"})


def run_left_waiting(tmp_path: Path) -> tuple[Path, dict]:
    """A live run's directory whose database took nothing: its rows in `store-buffer/`, its run.json with the
    writer's summary as `store`, as a run writes it at its end."""
    run_dir = tmp_path / "runs" / RUN
    run_dir.mkdir(parents=True)
    away = tmp_path / "away.db"
    away.mkdir()  # a directory where the database file should be: it cannot be opened
    writer = LiveStoreWriter(f"sqlite:///{away}", RUN, run_dir / "store-buffer", 10_000, **FAST)
    writer.put_run("single", "max-pressure", 1, {"duration_s": 200}, None)
    put_numbered(writer, ROWS - 1)
    assert writer.close(0.5) is False
    store = writer.summary()
    assert store["waiting_rows"] == ROWS and store["written"] == 0 and store["drain"] and store["last_error"]
    (run_dir / "run.json").write_text(json.dumps({"status": "complete", "live": True, "scenario": "single",
                                                  "store": store}, indent=2))
    return run_dir, store


def drain(run_dir: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "db", "drain", str(run_dir), "--db", f"sqlite:///{db}", "--timeout", "10"],
                          capture_output=True, text=True, timeout=60)


def stored_rows(db: Path) -> int:
    engine = create_store_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return sum(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                       for t in ("runs", "intersection_records", "hires_events", "runtime_changes", "alerts"))
    finally:
        engine.dispose()


def test_a_drain_says_in_run_json_that_nothing_waits_any_more(tmp_path):
    run_dir, at_end = run_left_waiting(tmp_path)
    db = tmp_path / "later.db"
    done = drain(run_dir, db)
    assert done.returncode == 0, done.stderr
    assert f"{ROWS} row(s) stored" in done.stdout
    store = json.loads((run_dir / "run.json").read_text())["store"]
    assert store["waiting_rows"] == 0 and store["drain"] is None and store["written"] == ROWS == stored_rows(db)
    assert store["database"] == f"sqlite:///{db}" and store["last_error"] is None and store["drained_at"]
    assert store["before_drain"] == at_end  # what the run said at its end, kept, under a name that says so
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["scenario"] == "single"  # the rest of run.json as it was
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".partial")]


def test_a_drain_the_database_stops_midway_leaves_the_rows_that_still_wait(tmp_path):
    run_dir, at_end = run_left_waiting(tmp_path)
    db = tmp_path / "later.db"
    engine = create_store_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    # alerts cannot be written (a trigger calls a function this database lacks: an error of the database, not of
    # the rows): the drain stores what comes before the first alert and stops there
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER no_alerts BEFORE INSERT ON alerts BEGIN SELECT no_such_function(); END")
    conn.commit()
    conn.close()
    partial = drain(run_dir, db)
    assert partial.returncode == 1, partial.stdout
    store = json.loads((run_dir / "run.json").read_text())["store"]
    stored = stored_rows(db)
    assert 0 < stored < ROWS and store["written"] == stored  # the run's row, a record, an event, a change
    assert store["waiting_rows"] == ROWS - stored  # the true count, not the run's nor zero
    assert "no_such_function" in store["last_error"] and store["last_error_at"]
    assert store["drain"] == f"signalwise db drain {run_dir} --db sqlite:///{db}"
    assert store["before_drain"] == at_end
    assert f"{ROWS - stored} row(s) still wait" in partial.stderr

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER no_alerts")
    conn.commit()
    conn.close()
    done = drain(run_dir, db)
    assert done.returncode == 0, done.stderr
    store = json.loads((run_dir / "run.json").read_text())["store"]
    assert store["waiting_rows"] == 0 and store["drain"] is None and stored_rows(db) == ROWS
    assert store["last_error"] is None
    assert store["before_drain"] == at_end  # still the run's own, and the partial drain beside it
    assert [(d["written"], d["waiting_rows"]) for d in store["earlier_drains"]] == [(stored, ROWS - stored)]


def say_running(run_dir: Path, process: dict) -> bytes:
    """Make the run's run.json say `running`, by `process`, as a live run writes it while it goes; its bytes."""
    run = json.loads((run_dir / "run.json").read_text())
    run.update(status="running", process=process)
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return (run_dir / "run.json").read_bytes()


def buffer_files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "store-buffer").iterdir())}


def ended_process() -> dict:
    """The identity a run records (`process_identity`) of a process that has ended since: it said it, and exited."""
    said = subprocess.run([sys.executable, "-c", "import json; from signalwise.outdirs import process_identity; "
                           "print(json.dumps(process_identity()))"], capture_output=True, text=True, check=True)
    identity = json.loads(said.stdout)
    assert identity["pid"] != os.getpid() and identity["start_ticks"] is not None
    return identity


def test_a_drain_refuses_a_run_that_is_still_running(tmp_path):
    """Its own writer still takes rows from the buffer and rewrites run.json whole: a drain now would race both."""
    run_dir, _ = run_left_waiting(tmp_path)
    written = say_running(run_dir, process_identity())  # this test's process: alive
    buffered = buffer_files(run_dir)
    db = tmp_path / "later.db"
    refused = drain(run_dir, db)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "still running" in lines[0]
    assert f"process {os.getpid()}" in lines[0] and "after the run ends or dies" in lines[0]
    assert (run_dir / "run.json").read_bytes() == written  # untouched
    assert buffer_files(run_dir) == buffered and not db.exists()  # nothing taken from the buffer, nothing stored

    # given its store-buffer directory, the same
    refused = drain(run_dir / "store-buffer", db)
    assert refused.returncode == 2 and "still running" in refused.stderr
    assert (run_dir / "run.json").read_bytes() == written and buffer_files(run_dir) == buffered


def test_a_drain_stores_the_buffer_of_a_running_run_whose_process_is_gone(tmp_path):
    """Killed with SIGKILL: its run.json still says `running`, but its process is gone. Drained as any other."""
    run_dir, at_end = run_left_waiting(tmp_path)
    say_running(run_dir, ended_process())
    db = tmp_path / "later.db"
    done = drain(run_dir, db)
    assert done.returncode == 0, done.stderr
    assert f"{ROWS} row(s) stored" in done.stdout and stored_rows(db) == ROWS
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "running"  # a drain says nothing of how the run ended: the next run marks it `died`
    assert run["store"]["waiting_rows"] == 0 and run["store"]["written"] == ROWS
    assert run["store"]["before_drain"] == at_end


def test_note_drained_leaves_the_run_json_of_a_running_run_alone(tmp_path):
    """The run rewrites its run.json whole while it goes and at its end: a read-modify-write here could put
    `running` back into a run that ended meanwhile, or be dropped by the run's next write."""
    run_dir, _ = run_left_waiting(tmp_path)
    written = say_running(run_dir, process_identity())
    summary = {"database": "sqlite:///x.db", "written": 0, "waiting_rows": 0, "drained_at": "2026-11-29T17:00:00"}
    assert note_drained(run_dir / "run.json", summary) == summary
    assert (run_dir / "run.json").read_bytes() == written
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".partial")]


def test_a_run_on_another_host_is_refused_while_its_heartbeat_is_fresh_and_drained_once_it_is_stale(tmp_path):
    """A run recorded on another host (a container recreated under a new name) cannot be asked for its process:
    its heartbeat file, touched every tick, tells. Fresh, the drain refuses (`--force` drains anyway); quiet for
    longer than OTHER_HOST_STALE_S, the run is taken for gone and drained."""
    from signalwise.store.live import OTHER_HOST_STALE_S

    run_dir, _ = run_left_waiting(tmp_path)
    elsewhere = {**process_identity(), "host": "a-container-gone-since"}
    written = say_running(run_dir, elsewhere)
    heartbeat = run_dir / "heartbeat"
    heartbeat.touch()
    db = tmp_path / "later.db"
    refused = drain(run_dir, db)
    assert refused.returncode == 2 and "another host" in refused.stderr and "--force" in refused.stderr
    assert (run_dir / "run.json").read_bytes() == written and not db.exists()

    quiet = time.time() - OTHER_HOST_STALE_S - 60
    os.utime(heartbeat, (quiet, quiet))
    done = drain(run_dir, db)
    assert done.returncode == 0, done.stderr
    assert stored_rows(db) == ROWS and json.loads((run_dir / "run.json").read_text())["store"]["waiting_rows"] == 0


def test_force_drains_a_run_on_another_host_whose_heartbeat_is_fresh(tmp_path):
    run_dir, _ = run_left_waiting(tmp_path)
    say_running(run_dir, {**process_identity(), "host": "a-container-gone-since"})
    (run_dir / "heartbeat").touch()
    db = tmp_path / "later.db"
    done = subprocess.run([SIGNALWISE, "db", "drain", str(run_dir), "--db", f"sqlite:///{db}", "--timeout", "10",
                           "--force"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stored_rows(db) == ROWS and json.loads((run_dir / "run.json").read_text())["store"]["waiting_rows"] == 0
