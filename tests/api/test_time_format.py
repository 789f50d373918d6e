"""Every instant the API writes is ISO 8601 in UTC with `Z`: the live routes wrote the run's wall-clock times with the
machine's offset (`…+00:00`, `+01:00` in Paris) beside the stored ones' `…Z`, and the health checks and violation
counts wrote `+00:00`. A real server with a live run of `single` that stores its rows (an alert raised, a change
made), a stored record, and its main GET answers and stream messages walked for every time string; requests take
both forms."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from support.records import one_record
from support.waiting import until

from signalwise.api import create_app
from signalwise.api.auth import app_routes
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

#: a date and time (a run directory's `20261129-181433` is not one)
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: the one format: UTC, `Z`, to the second, millisecond or microsecond
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z")
#: GET routes that answer no JSON, or that a live run's page alone reads in pieces
NOT_JSON = {"/", "/dashboard", "/docs", "/redoc", "/metrics", "/openapi.json", "/api/v1/sse/live",
            "/docs/oauth2-redirect"}


def _times(value, where: str = "") -> list[tuple[str, str]]:
    """(where, text) of every string in `value` that holds a date and time."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _times(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _times(v, f"{where}[{i}]")]
    if isinstance(value, str) and LOOKS_LIKE_TIME.match(value):
        return [(where, value)]
    return []


@pytest.mark.slow
def test_every_time_the_api_writes_is_utc_with_z(tmp_path):
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.alerts import AlertEngine, AlertRule
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store.live import LiveStoreWriter

    url = migrated_sqlite(tmp_path / "times.db")
    _info, key = create_key(get_engine(url), "ops", ["read", "ingest", "operate", "admin"])
    app = create_app(Settings(database_url=url, cache_ttl_s=0))
    run_dir = tmp_path / "live"
    store = LiveStoreWriter(url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    # simulator_restarts is 0 all run long: the rule raises at its first evaluation and holds
    rule = AlertRule(name="held", metric="simulator_restarts", op=">=", threshold=0, level="warning")
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure", seed=1),
                     LiveOptions(speed=20.0, duration_s=3600, in_process=True, alerts_hz=10), run_dir, store=store,
                     alerts=AlertEngine([rule]))
    rt.open()
    app.state.live = rt
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    seen: list[tuple[str, str, str]] = []
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                                     headers={"X-API-Key": key}, timeout=20) as c:
            # a record sent with an offset, stored, and written back in UTC
            record = one_record(simulation_id="S", timestamp="2025-01-06T08:00:00+01:00")
            assert c.post("/api/v1/ingest/batch", json=[record]).status_code == 201
            signal = c.get("/api/v1/live/snapshot").json()["signals"][0]["intersection_id"]
            made = c.post("/api/v1/live/override", json={"intersection_id": signal, "action": "hold", "phase_number": 1,
                                                         "duration_s": 30})
            assert made.status_code == 200, made.text
            seen += [("POST /api/v1/live/override", w, t) for w, t in _times(made.json())]
            assert until(lambda: c.get("/api/v1/analytics/changes").json()["total"] >= 1
                         and c.get("/api/v1/analytics/alerts").json()["total"] >= 1, 30), "nothing was stored"
            paths = sorted({p for m, p in app_routes(app) if m == "GET" and "{" not in p and p not in NOT_JSON})
            paths += ["/api/v1/analytics/simulation/S/summary", f"/api/v1/analytics/simulation/{run_dir.name}/summary",
                      "/api/v1/analytics/time-series/S", "/api/v1/analytics/simulations?untagged=true",
                      "/api/v1/analytics/violations/trends?start=2025-01-06T00:00:00%2B01:00&end=2025-01-07T00:00:00Z"]
            answered = 0
            for path in paths:
                r = c.get(path)
                if r.headers.get("content-type", "").startswith("application/json"):
                    answered += r.status_code == 200
                    seen += [(path, w, t) for w, t in _times(r.json())]
            assert answered > 35, answered
            # the live stream's messages: its snapshots carry the run's wall-clock time
            messages = []
            with c.stream("GET", "/api/v1/sse/live") as stream:
                started = time.monotonic()
                for line in stream.iter_lines():
                    if line.startswith("data:"):
                        messages.append(json.loads(line[5:]))
                    if sum(m.get("type") == "snapshot" for m in messages) >= 2 or time.monotonic() - started > 20:
                        break
            assert any(m.get("type") == "snapshot" for m in messages), messages[:3]
            seen += [("SSE /api/v1/sse/live", w, t) for m in messages for w, t in _times(m)]
    finally:
        rt.stop()
        loop.join(timeout=20)
    where = {(path, re.sub(r"\[\d+\]", "[]", w)) for path, w, _t in seen}
    for must in [("/api/v1/live/changes", "[].at"), ("/api/v1/live/alerts", ".active[].wall_time"),
                 ("/api/v1/live/snapshot", ".wall_time"), ("/api/v1/analytics/changes", ".items[].at"),
                 ("/api/v1/analytics/alerts", ".items[].raised_at"), ("/api/v1/keys", "[].created_at"),
                 ("/api/v1/analytics/time-series/S", ".items[].timestamp"),
                 ("SSE /api/v1/sse/live", ".data.wall_time")]:
        assert must in where, (must, sorted(where))
    other = sorted({(path, w, t) for path, w, t in seen if not ONE_FORMAT.fullmatch(t)})
    assert not other, other
    series = [t for path, w, t in seen if path == "/api/v1/analytics/time-series/S" and w.endswith(".timestamp")]
    assert series == ["2025-01-06T07:00:00Z"], series
