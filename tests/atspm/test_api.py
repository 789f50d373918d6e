"""GET /api/v1/atspm/{measure} over events in a real (SQLite) store."""

import datetime as dt

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from signalwise.api.routers import atspm as route
from signalwise.store import Settings, bulk_insert_events, get_engine

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)


@pytest.fixture
def client(tmp_path, monkeypatch):
    engine = get_engine(f"sqlite:///{tmp_path / 'api.db'}")
    rows = []
    for k in range(4):
        t = T0 + dt.timedelta(seconds=60 * k)
        rows += [(t, "7", 1, 2), (t + dt.timedelta(seconds=20), "7", 4, 2), (t + dt.timedelta(seconds=20), "7", 8, 2),
                 (t + dt.timedelta(seconds=24), "7", 10, 2), (t + dt.timedelta(seconds=5), "7", 82, 5),
                 (t + dt.timedelta(seconds=30), "7", 82, 5)]
    bulk_insert_events(engine, rows)
    det = tmp_path / "det.csv"
    det.write_text("DeviceId,Phase,Parameter,Function\n7,2,5,Advance\n")
    app = FastAPI()
    app.state.settings = Settings(detector_config=det)
    app.include_router(route.router)
    app.dependency_overrides[route.get_atspm_engine] = lambda: engine
    return TestClient(app)


def test_measure_with_filters(client):
    r = client.get("/api/v1/atspm/arrival_on_green", params={"device": "7", "phase": 2})
    assert r.status_code == 200
    body = r.json()
    # 8 arrivals, of which the first (before the first begin red) and the last (in the open cycle) do not count
    assert body["total"] == 1 and body["rows"][0]["Total_Actuations"] == 6
    assert body["rows"][0]["Percent_AOG"] == pytest.approx(50.0)  # a percent, as UDOT's
    r = client.get("/api/v1/atspm/terminations", params={"start": "2025-01-06T07:00:00", "end": "2025-01-06T07:02:00"})
    assert r.json()["rows"][0]["Total"] == 2
    assert client.get("/api/v1/atspm/terminations", params={"phase": 3}).json()["total"] == 0


def test_errors(client):
    assert client.get("/api/v1/atspm/nonsense").status_code == 404
    assert client.get("/api/v1/atspm/actuations", params={"phase": 0}).status_code == 422
    assert client.get("/api/v1/atspm/actuations", params={"start": "2025-01-06T07:00:00 01:00"}).status_code == 422
    assert client.get("/api/v1/atspm/actuations", params={"start": "2025-01-06T08:00:00",
                                                          "end": "2025-01-06T07:00:00"}).status_code == 422
    assert client.get("/api/v1/atspm/actuations", params={"bin": 7}).status_code == 422
    assert client.get("/api/v1/atspm").json()["measures"][0]["name"] == "actuations"


def test_a_device_with_no_events_is_a_404_naming_the_devices_that_have_them(client):
    r = client.get("/api/v1/atspm/arrival_on_green", params={"device": "9999"})
    assert r.status_code == 404, r.text
    assert "9999" in r.json()["detail"] and "devices with events: '7'" in r.json()["detail"]
    # a device with events, none in the range asked: an empty answer, as before
    r = client.get("/api/v1/atspm/actuations", params={"device": "7", "start": "2025-01-07T00:00:00"})
    assert r.status_code == 200 and r.json()["total"] == 0
