"""`direction` where a route's figures have no approach (the run summary, the time series, speeds): refused
with a 422 naming the routes that do answer per approach, never answered as if the intersection's figures
were the approach's; where it applies (`/wait-times`) north and east answer their own figures."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from support.databases import postgres_unavailable_reason
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

T0 = dt.datetime(2026, 3, 14, 8, tzinfo=dt.UTC)


def _record(minute: int) -> dict:
    def signal(direction: str, wait: float, crossed: int) -> dict:
        return {"direction": direction, "vehicle_counts": {"car": crossed}, "emergency_vehicle_present": False,
                "signal_status": "GREEN", "signal_timer": 5, "vehicles_crossed": crossed, "avg_wait_time": wait,
                "green_time_allocated": 20}
    return {"simulation_id": "S", "timestamp": (T0 + dt.timedelta(minutes=minute)).isoformat(),
            "intersection_id": "I", "signals": [signal("north", 10.0 + minute, 3), signal("east", 40.0, 7)],
            "metrics": {"total_vehicles_passed": 10, "avg_wait_time_all_sides": 25.0, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def client(request, tmp_path_factory):
    """One store and app per database for the module (as tests/api/conftest.py's `client`), the same four
    records ingested once: every test here only reads."""
    if request.param == "postgresql" and (reason := postgres_unavailable_reason()):
        pytest.skip(reason)
    with migrated_database(request.param, tmp_path_factory.mktemp("direction")) as url:
        app = create_app(Settings(database_url=url, max_batch_records=50, cache_ttl_s=60))
        _info, key = create_key(get_engine(url), "tests", ["read", "ingest", "operate", "admin"])
        with TestClient(app, headers={"X-API-Key": key}) as c:
            assert c.post("/api/v1/ingest/batch", json=[_record(m) for m in range(4)]).status_code == 201
            yield c


RANGE = "start=2026-03-14T08:00:00Z&end=2026-03-14T09:00:00Z"


@pytest.mark.parametrize("route", [
    "/api/v1/analytics/simulation/S/summary?intersection_id=I",
    f"/api/v1/analytics/simulation/S/summary?intersection_id=I&{RANGE}",
    "/api/v1/analytics/time-series/S?intersection_id=I",
    "/api/v1/analytics/time-series/S?bucket_s=86400",
    "/api/v1/analytics/speeds?simulation_id=S",
    f"/api/v1/analytics/speeds?simulation_id=S&{RANGE}",
    "/api/v1/charts/wait-time-trend?simulation_id=S",
])
def test_direction_is_refused_where_the_figures_have_none(client, route):
    assert client.get(route).status_code == 200
    for direction in ("north", "east"):
        resp = client.get(f"{route}&direction={direction}")
        assert resp.status_code == 422, resp.text
        message = resp.json()["message"]
        assert "direction" in message and "/api/v1/analytics/wait-times" in message, message
        assert "/api/v1/analytics/emergency-report" in message, message


def test_wait_times_answer_each_approach_its_own(client):
    for query in ("", f"&{RANGE}"):
        north = client.get(f"/api/v1/analytics/wait-times?simulation_id=S&direction=north{query}").json()
        east = client.get(f"/api/v1/analytics/wait-times?simulation_id=S&direction=east{query}").json()
        assert [(i["direction"], i["mean_wait_s"], i["vehicles_crossed"]) for i in north["items"]] == [
            ("north", 11.5, 12)]
        assert [(i["direction"], i["mean_wait_s"], i["vehicles_crossed"]) for i in east["items"]] == [
            ("east", 40.0, 28)]


def test_the_openapi_says_where_direction_is_refused(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/analytics/simulation/{simulation_id}/summary", "/api/v1/analytics/time-series/{simulation_id}",
                 "/api/v1/analytics/speeds"):
        [param] = [p for p in paths[path]["get"]["parameters"] if p["name"] == "direction"]
        assert param["description"].startswith("refused (422)"), (path, param)
