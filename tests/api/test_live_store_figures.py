"""A `--db` live run's store writer, as an operator or a scraper sees it: `/api/v1/live/status` carries its figures
(rows buffered, whether the database takes writes) and `/metrics` its gauges, so a database that stopped taking
rows shows before the buffer fills. The database here is one that never answers (a closed port on loopback)."""

from __future__ import annotations

import re
import threading

from fastapi.testclient import TestClient
from support.waiting import until

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings
from signalwise.store.live import LiveStoreWriter


def test_the_status_and_metrics_show_rows_waiting_for_an_unreachable_database(tmp_path):
    run_dir = tmp_path / "live"
    store = LiveStoreWriter("postgresql://postgres@127.0.0.1:1/none", run_dir.name, run_dir / "store-buffer", 10_000,
                            retry_initial_s=0.05)
    rt = LiveRuntime(RunConfig(scenario="single"), LiveOptions(speed=120.0, duration_s=3600, in_process=True,
                                                               state_every_s=60), run_dir, store=store)
    rt.open()
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    app.state.live = rt
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with TestClient(app) as c:
            # the first interval's records (60 simulated s, half a second here) wait for the database
            def waiting() -> bool:
                figures = c.get("/api/v1/live/status").json().get("store") or {}
                return figures.get("db_ok") is False and (figures.get("buffered_rows") or 0) > 0

            assert until(waiting, timeout_s=20), c.get("/api/v1/live/status").json().get("store")
            metrics = c.get("/metrics").text
            assert float(re.search(r"^signalwise_store_buffered_rows (\S+)$", metrics, re.M)[1]) > 0
            assert re.search(r"^signalwise_store_unavailable_seconds \S+$", metrics, re.M)
    finally:
        rt.stop()
        loop.join(timeout=30)
