"""ATSPM measures are per run: several runs' events for one device are never added into one timeline."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings, bulk_insert_events, get_engine

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)
#: detector-on events per run: identical timestamps across runs, as seeds of one scenario produce
ACTUATIONS = {"run-a": 60, "run-b": 61, "run-c": 63}


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = get_engine(url)
    for run, n in ACTUATIONS.items():
        rows = [(T0 + dt.timedelta(seconds=10 * k), "J1", 82, 3) for k in range(n)]
        rows += [(T0 + dt.timedelta(seconds=10 * k + 2), "J1", 81, 3) for k in range(n)]
        bulk_insert_events(engine, rows, simulation_id=run)
    bulk_insert_events(engine, [(T0, "J9", 82, 1), (T0 + dt.timedelta(seconds=5), "J9", 81, 1)],
                       simulation_id="run-a")
    return TestClient(create_app(Settings(database_url=url, cache_ttl_s=0)))


def _total(body) -> int:
    return sum(r["Total"] for r in body["rows"])


def test_each_run_is_its_own_timeline(client):
    for run, n in ACTUATIONS.items():
        r = client.get("/api/v1/atspm/actuations", params={"device": "J1", "simulation_id": run, "bin": 60})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["simulation_id"] == run and _total(body) == n
        assert not any("duplicate" in w for w in body["warnings"])


def test_a_device_with_several_runs_needs_a_run_named(client):
    r = client.get("/api/v1/atspm/actuations", params={"device": "J1"})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "3 runs" in msg and all(repr(run) in msg for run in ACTUATIONS)
    # a device with one run needs none
    r = client.get("/api/v1/atspm/actuations", params={"device": "J9", "bin": 60})
    assert r.status_code == 200 and r.json()["simulation_id"] == "run-a" and _total(r.json()) == 1
    assert client.get("/api/v1/atspm/actuations", params={"device": "J1", "simulation_id": "nope"}).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/atspm/actuations", "/api/v1/atspm", "/health",
                                  "/api/v1/live/status", "/api/v1/system/info"])
@pytest.mark.slow
def test_an_unknown_query_parameter_is_refused_on_any_route(client, path):
    r = client.get(path, params={"simulaton_id": "run-a"})
    assert r.status_code == 422, (path, r.status_code, r.text)
    assert r.json()["detail"][0]["loc"] == ["query", "simulaton_id"]
