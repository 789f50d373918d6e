"""What a live run stores about itself, and what it says when rows could not be stored."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store.detector_configs import detector_config_rows
from signalwise.store.engine import create_store_engine
from signalwise.store.live import LiveStoreWriter

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_a_live_runs_stored_row_has_the_fields_an_offline_run_stores(db_url, tmp_path):
    run_dir = tmp_path / "live"
    store = LiveStoreWriter(db_url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure", seed=3),
                     LiveOptions(speed=None, duration_s=120, in_process=True, state_every_s=60), run_dir, store=store)
    rt.open()
    rt.run()
    assert rt.store_summary["waiting_rows"] == 0 and rt.store_summary["written"] > 0
    assert json.loads((run_dir / "run.json").read_text())["store"]["waiting_rows"] == 0
    engine = create_store_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT scenario, controller, seed, config, started_at FROM runs "
                                "WHERE simulation_id = :s"), {"s": run_dir.name}).one()
    engine.dispose()
    config = row.config if isinstance(row.config, dict) else json.loads(row.config)
    assert (row.scenario, row.controller, row.seed) == ("single", "max-pressure", 3)
    assert row.started_at is not None and config["run_dir"] == str(run_dir.resolve()) and config["scenario"] == "single"
    # its detector configuration too, as its detectors.csv holds it: the API's detector measures read it
    engine = create_store_engine(db_url)
    stored = detector_config_rows(engine, run_dir.name)
    engine.dispose()
    with open(run_dir / "detectors.csv", newline="") as fh:
        written = {(r["DeviceId"], int(r["Phase"]), int(r["Parameter"]), r["Function"]) for r in csv.DictReader(fh)}
    assert stored and {tuple(r[:4]) for r in stored} == written


@pytest.mark.slow
def test_rows_left_waiting_are_counted_located_and_drained_by_the_command_named(tmp_path):
    proc = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--speed", "max", "--duration", "120",
                           "--port", "0", "--out", str(tmp_path), "--db", "postgresql://postgres@127.0.0.1:1/none"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]  # it ran, but its records did not reach the database
    run_dir = next(tmp_path.glob("*-live-single-*"))
    store = json.loads((run_dir / "run.json").read_text())["store"]
    waiting = store["waiting_rows"]
    assert waiting > 0 and store["written"] == 0 and store["buffer_dir"] == str(run_dir / "store-buffer")
    said = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert "live run complete at t=120 s" in said  # the last line says it, beside how the run ended
    assert f"{waiting} row(s) were not stored in postgresql://postgres@127.0.0.1:1/none" in said
    assert f"they wait in {run_dir / 'store-buffer'}" in said and "docs/live.md" in said
    assert store["drain"] in said

    db = tmp_path / "later.db"
    command = store["drain"].split()  # signalwise db drain RUN_DIR --db URL
    assert command[:3] == ["signalwise", "db", "drain"], command
    drained = subprocess.run([SIGNALWISE, *command[1:-1], f"sqlite:///{db}"], capture_output=True, text=True,
                             timeout=60)
    assert drained.returncode == 0, drained.stderr
    assert f"{waiting} row(s) stored" in drained.stdout and not list((run_dir / "store-buffer").glob("*.jsonl"))


def test_an_acknowledgement_that_clears_an_alert_reaches_the_store_and_the_stream(db_url, tmp_path):
    """Acknowledging a count's alert clears it; the API answered so, but the database kept it uncleared and the
    `alert` stream never said so, so a console following the stream kept it active."""
    import threading
    import time

    from signalwise.runtime.live.alerts import AlertEngine, AlertRule

    run_dir = tmp_path / "live"
    store = LiveStoreWriter(db_url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    rule = AlertRule(name="restarts_seen", metric="simulator_restarts", op=">=", threshold=0, until_acknowledged=True)
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=20.0, duration_s=3600, in_process=True), run_dir, store=store,
                     alerts=AlertEngine([rule]))
    streamed: list[dict] = []
    rt.publish = lambda topic, payload: streamed.append(payload) if topic == "alert" else None
    rt.open()
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while not rt.alerts.active():
            assert time.monotonic() < deadline, "the rule never raised its alert"
            time.sleep(0.05)
        (alert,) = rt.alerts.active()
        cleared = rt.acknowledge_alert(alert.id, "ops")  # as the API's POST /alerts/{id}/ack does, mid-run
    finally:
        rt.stop()
        loop.join(30)
    assert cleared.cleared_at_s is not None
    assert streamed[-1]["id"] == alert.id and streamed[-1]["cleared_at_s"] is not None
    assert streamed[-1]["acknowledged_by"] == "ops"
    engine = create_store_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT acknowledged_by, cleared_at, cleared_at_s FROM alerts WHERE id = :i"),
                           {"i": alert.id}).one()
    engine.dispose()
    assert row.acknowledged_by == "ops" and row.cleared_at is not None and row.cleared_at_s is not None
