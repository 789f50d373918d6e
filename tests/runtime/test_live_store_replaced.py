"""A live run whose database is replaced while it runs (every table dropped: the database made again empty).

The writer migrates the empty database and goes on; the run's own row (scenario, controller, seed, configuration,
start) and its ATSPM detector configuration are stored again, so the run is found as it was stored. Once everything
is written, `GET /api/v1/live/status` and the final `run.json` say there is no error now (`last_error` null) and
keep the outage's as history (`previous_error`, `previous_error_at`, `recovered_at`)."""

from __future__ import annotations

import csv
import json
import sqlite3
import threading

from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from support.waiting import until

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings
from signalwise.store.detector_configs import detector_config_rows
from signalwise.store.engine import create_store_engine
from signalwise.store.live import LiveStoreWriter


def drop_every_table(path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%'").fetchall():
            conn.execute(f'DROP TABLE "{name}"')
    finally:
        conn.close()


def the_run(url: str, sim: str):
    """(its runs row, records stored, its detector configuration); (None, 0, None) while the tables are not there
    (not made yet, or dropped)."""
    engine = create_store_engine(url)
    try:
        if not inspect(engine).has_table("intersection_records"):
            return None, 0, None
        with engine.connect() as conn:
            row = conn.execute(text("SELECT scenario, controller, seed, config, started_at FROM runs "
                                    "WHERE simulation_id = :s"), {"s": sim}).first()
            records = conn.execute(text("SELECT count(*) FROM intersection_records")).scalar_one()
        return row, records, detector_config_rows(engine, sim)
    finally:
        engine.dispose()


def test_a_database_replaced_mid_run_has_the_run_again_and_the_outage_is_history(tmp_path):
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    run_dir = tmp_path / "live"
    store = LiveStoreWriter(url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05,
                            retry_max_s=0.2)
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure", seed=3),
                     LiveOptions(speed=120.0, duration_s=3600, in_process=True, state_every_s=60), run_dir,
                     store=store)
    rt.open()
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    app.state.live = rt
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with TestClient(app) as c:
            def figures() -> dict:
                return c.get("/api/v1/live/status").json().get("store") or {}

            assert until(lambda: the_run(url, run_dir.name)[1] > 0, timeout_s=30)  # a record stored: the run's row too
            assert the_run(url, run_dir.name)[0].scenario == "single"
            drop_every_table(db)
            written = figures()["written"]

            def recovered() -> bool:
                f = figures()
                return bool(f.get("db_ok") and f.get("previous_error") and f.get("written", 0) > written + 10
                            and the_run(url, run_dir.name)[1] > 0)

            assert until(recovered, timeout_s=30), figures()
            now = figures()
    finally:
        rt.stop()
        loop.join(timeout=30)
    assert now["last_error"] is None and now["last_error_at"] is None
    assert "no such table" in now["previous_error"] and now["previous_error_at"] <= now["recovered_at"]

    final = json.loads((run_dir / "run.json").read_text())["store"]
    assert final["waiting_rows"] == 0 and final["last_error"] is None and final["drain"] is None
    assert final["previous_error"] == now["previous_error"] and final["recovered_at"]

    row, records, detectors = the_run(url, run_dir.name)
    config = row.config if isinstance(row.config, dict) else json.loads(row.config)
    assert (row.scenario, row.controller, row.seed) == ("single", "max-pressure", 3) and row.started_at is not None
    assert config["run_dir"] == str(run_dir.resolve()) and records > 0
    with open(run_dir / "detectors.csv", newline="") as fh:
        in_file = {(r["DeviceId"], int(r["Phase"]), int(r["Parameter"]), r["Function"]) for r in csv.DictReader(fh)}
    assert detectors and {tuple(r[:4]) for r in detectors} == in_file
