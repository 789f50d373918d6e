"""Liveness and readiness, on real servers: `/health/live` fails only when the live loop stops ticking (a
container restart is a new run from t=0), `/health/ready` and `/health` report the dependencies, each apart."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from support import outages
from support.loopback import serving, serving_live

from signalwise.api import create_app
from signalwise.store import Settings


@pytest.fixture
def proxied_postgres(tmp_path):
    with outages.proxied_postgres(tmp_path) as found:
        yield found


@pytest.mark.postgres
def test_liveness_ignores_a_database_that_is_down_and_readiness_reports_it(proxied_postgres):
    _direct, proxied, proxy = proxied_postgres
    app = create_app(Settings(database_url=proxied))
    with serving(app) as base:
        for path in ("/health/live", "/health/ready", "/health"):
            assert httpx.get(base + path).status_code == 200, path
        proxy.stop()
        live = httpx.get(f"{base}/health/live")
        assert live.status_code == 200 and live.json() == {"status": "ok", "live": None}, live.text
        assert httpx.head(f"{base}/health/live").status_code == 200  # probes may use HEAD
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["state"] == "unreachable"
        assert ready.json()["checks"]["rate_limits"]["state"] == "memory"
        assert ready.json()["message"].startswith("database unreachable")
        assert httpx.get(f"{base}/health").status_code == 503


def test_a_live_loop_that_stops_ticking_fails_liveness_and_health_shows_the_tick_age(tmp_path):
    """SUMO (a process of its own here) is stopped with SIGSTOP: the loop waits on it and ticks no more."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", live_stall_s=1.0)
    pid = None
    with serving_live(settings, tmp_path / "live", in_process=False, timeout_s=10) as (client, rt):
        try:
            deadline = time.monotonic() + 20
            while not rt.running:
                assert time.monotonic() < deadline, "the live loop did not start"
                time.sleep(0.05)
            time.sleep(0.3)
            live = client.get("/health/live")
            assert live.status_code == 200 and live.json()["live"]["running"], live.text
            health = client.get("/health").json()
            assert health["live"]["last_tick_age_s"] < 1.0 and health["live"]["stall_after_s"] == 1.0, health
            pid = rt.status()["sim_pid"]
            assert pid
            os.kill(pid, signal.SIGSTOP)
            deadline = time.monotonic() + 10
            while (live := client.get("/health/live")).status_code == 200:
                assert time.monotonic() < deadline, live.text
                time.sleep(0.2)
            assert live.status_code == 503 and live.json()["status"] == "stalled", live.text
            assert live.json()["live"]["last_tick_age_s"] >= 1.0
            health = client.get("/health")
            assert health.status_code == 503 and "has not ticked" in health.json()["message"], health.text
            assert client.get("/health/ready").status_code == 200  # the dependencies are fine
            os.kill(pid, signal.SIGCONT)
            pid = None
            deadline = time.monotonic() + 10
            while client.get("/health/live").status_code != 200:
                assert time.monotonic() < deadline, "liveness did not come back once the loop ticked again"
                time.sleep(0.2)
        finally:
            if pid is not None:  # SUMO must run again for the loop, and the server, to stop
                os.kill(pid, signal.SIGCONT)
