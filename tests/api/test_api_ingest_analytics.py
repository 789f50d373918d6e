import copy
import datetime as dt

import pytest
from fastapi.testclient import TestClient
from support.databases import postgres_unavailable_reason
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.store import Settings, get_engine, register_run, write_run_metrics
from signalwise.store.keys import create_key

EXAMPLE = {
    "simulation_id": "SIM_20250910_001", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "INT_001",
    "signals": [{"direction": "north",
                 "vehicle_counts": {"car": 78, "bus": 0, "truck": 0, "bike": 0, "rickshaw": 0},
                 "emergency_vehicle_present": False, "signal_status": "GREEN", "signal_timer": 18,
                 "vehicles_crossed": 35, "avg_wait_time": 12.5, "green_time_allocated": 20}],
    "metrics": {"total_vehicles_passed": 104, "avg_wait_time_all_sides": 20.6, "throughput": 0.87,
                "avg_speed": 28.3, "fuel_saved": 1.2, "co2_saved": 3.8, "emergency_overrides": 0},
}
T0 = dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC)


def rec(sim="S", inter="INT_1", minute=0, wait=10.0, speed=30.0, emergency=False, overrides=0, dirs=("north", "south")):
    r = copy.deepcopy(EXAMPLE)
    r.update(simulation_id=sim, intersection_id=inter,
             timestamp=(T0 + dt.timedelta(minutes=minute)).isoformat())
    r["signals"] = [dict(copy.deepcopy(EXAMPLE["signals"][0]), direction=d, avg_wait_time=wait + i,
                         emergency_vehicle_present=emergency and i == 0) for i, d in enumerate(dirs)]
    r["metrics"] = dict(EXAMPLE["metrics"], avg_wait_time_all_sides=wait, avg_speed=speed,
                        emergency_overrides=overrides)
    return r


def test_single_record_then_summary(client):
    assert client.post("/api/v1/ingest/simulation", json=EXAMPLE).status_code == 201
    body = client.get("/api/v1/analytics/simulation/SIM_20250910_001/summary").json()
    assert body["records"] == 1 and body["intersections"] == 1
    assert body["first_timestamp"] == "2025-09-10T23:20:00Z"
    assert body["record_metrics"]["avg_speed"] == pytest.approx(28.3)
    assert client.get("/api/v1/analytics/simulation/NOPE/summary").status_code == 404


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def refusing_client(request, tmp_path_factory):
    """The `client` fixture's app and key on an empty database, shared by the refused records below: none of
    them may write a row, and each checks that the database is still empty afterwards."""
    if request.param == "postgresql" and (reason := postgres_unavailable_reason()):
        pytest.skip(reason)
    with migrated_database(request.param, tmp_path_factory.mktemp("refused")) as url:
        app = create_app(Settings(database_url=url, max_batch_records=50, cache_ttl_s=60))
        _info, key = create_key(get_engine(url), "tests", ["read", "ingest", "operate", "admin"])
        with TestClient(app, headers={"X-API-Key": key}) as c:
            yield c


@pytest.mark.parametrize("mutate, path", [
    (lambda r: r.update(timestamp="2025-09-10T23:20:00"), ["body", "timestamp"]),
    (lambda r: r["signals"][0].update(direction="up"), ["body", "signals", 0, "direction"]),
    # a "/" would split the id in every path that names the simulation: it could be stored and never read
    (lambda r: r.update(simulation_id="fleet/2025-09/run1"), ["body", "simulation_id"]),
    (lambda r: r["signals"][0].update(signal_status="BLUE"), ["body", "signals", 0, "signal_status"]),
    (lambda r: r["metrics"].update(total_vehicles_passed=-3), ["body", "metrics", "total_vehicles_passed"]),
    (lambda r: r["metrics"].update(avg_speed="28"), ["body", "metrics", "avg_speed"]),
])
def test_single_record_errors_name_the_field(refusing_client, mutate, path):
    client = refusing_client
    bad = copy.deepcopy(EXAMPLE)
    mutate(bad)
    resp = client.post("/api/v1/ingest/simulation", json=bad)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == path
    assert resp.json()["message"].startswith(".".join(str(p) for p in path[:1]))
    assert client.get("/api/v1/system/info").json()["row_counts"]["intersection_records"] == 0


def test_batch_is_all_or_nothing_with_index_in_the_path(client):
    good = [rec(minute=i) for i in range(5)]
    bad = rec(minute=9)
    bad["signals"][1]["vehicle_counts"]["car"] = -1
    resp = client.post("/api/v1/ingest/batch", json=good + [bad])
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", 5, "signals", 1, "vehicle_counts", "car"]
    assert resp.json()["message"].startswith("body[5].signals[1].vehicle_counts.car: ")
    assert client.get("/api/v1/system/info").json()["row_counts"]["intersection_records"] == 0
    ok = client.post("/api/v1/ingest/batch", json=good)
    assert ok.status_code == 201 and ok.json() == {"ingested": 5}
    again = client.post("/api/v1/ingest/batch", json=good)  # replaces, never duplicates
    assert again.status_code == 201
    assert client.get("/api/v1/system/info").json()["row_counts"]["intersection_records"] == 5


def test_batch_limits_and_malformed_json(client):
    too_many = [rec(minute=i) for i in range(51)]  # the fixture allows 50
    resp = client.post("/api/v1/ingest/batch", json=too_many)
    assert resp.status_code == 413 and "50" in resp.json()["message"]
    broken = client.post("/api/v1/ingest/batch", content=b'[{"simulation_id": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "JSON" in broken.json()["message"]
    assert client.post("/api/v1/ingest/batch", json=[]).status_code == 422
    assert client.get("/api/v1/system/info").json()["row_counts"]["intersection_records"] == 0


def seed_two_intersections(client):
    batch = [rec(inter="A", minute=m, wait=10 + m, speed=20 + m, emergency=m == 1, overrides=int(m == 1))
             for m in range(4)]
    batch += [rec(inter="B", minute=m, wait=30.0, speed=40.0, dirs=("east",)) for m in range(4)]
    assert client.post("/api/v1/ingest/batch", json=batch).status_code == 201


def test_wait_times_filters_and_pagination(client):
    seed_two_intersections(client)
    body = client.get("/api/v1/analytics/wait-times").json()
    assert body["total"] == 3  # A/north, A/south, B/east
    a_north = body["items"][0]
    assert (a_north["intersection_id"], a_north["direction"]) == ("A", "north")
    assert a_north["mean_wait_s"] == pytest.approx(11.5) and a_north["samples"] == 4
    east = client.get("/api/v1/analytics/wait-times", params={"direction": "east"}).json()
    assert [i["intersection_id"] for i in east["items"]] == ["B"]
    window = client.get("/api/v1/analytics/wait-times", params={
        "intersection_id": "A", "direction": "north",
        "start": (T0 + dt.timedelta(minutes=2)).isoformat(), "end": (T0 + dt.timedelta(minutes=4)).isoformat()}).json()
    assert window["items"][0]["mean_wait_s"] == pytest.approx(12.5) and window["items"][0]["samples"] == 2
    page2 = client.get("/api/v1/analytics/wait-times", params={"limit": 2, "offset": 2}).json()
    assert page2["total"] == 3 and len(page2["items"]) == 1 and page2["items"][0]["intersection_id"] == "B"
    naive = client.get("/api/v1/analytics/wait-times", params={"start": "2025-09-10T08:00:00"})
    assert naive.status_code == 422 and naive.json()["message"].startswith("query.start")
    assert client.get("/api/v1/analytics/wait-times", params={"direction": "up"}).status_code == 422


def test_speeds_time_series_emergency_live(client):
    seed_two_intersections(client)
    speeds = client.get("/api/v1/analytics/speeds", params={"simulation_id": "S"}).json()
    assert [(i["intersection_id"], i["mean_speed"]) for i in speeds["items"]] == [("A", 21.5), ("B", 40.0)]
    ts = client.get("/api/v1/analytics/time-series/S").json()
    assert ts["total"] == 4
    assert ts["items"][0]["avg_wait_time"] == pytest.approx(20.0)  # mean of A (10) and B (30)
    bucketed = client.get("/api/v1/analytics/time-series/S", params={"bucket_s": 120}).json()
    assert bucketed["total"] == 2 and bucketed["items"][0]["records"] == 4
    assert client.get("/api/v1/analytics/time-series/NOPE").status_code == 404
    em = client.get("/api/v1/analytics/emergency-report").json()
    a = em["items"][0]
    assert (a["intersection_id"], a["emergency_overrides"], a["intervals_with_emergency_vehicle"]) == ("A", 1, 1)
    live = client.get("/api/v1/dashboard/live-metrics").json()
    assert live["timestamp"] == (T0 + dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    assert [i["intersection_id"] for i in live["intersections"]] == ["A", "B"]
    trend = client.get("/api/v1/charts/wait-time-trend", params={"simulation": "S"}).json()
    assert len(trend["labels"]) == 4 and trend["series"][0]["data"][0] == pytest.approx(20.0)
    # a simulation the store does not hold is 404, not an empty chart a typo would hide behind
    r = client.get("/api/v1/dashboard/live-metrics", params={"simulation_id": "NOPE"})
    assert r.status_code == 404 and "'NOPE' not found" in r.json()["message"]
    r = client.get("/api/v1/charts/wait-time-trend", params={"simulation": ["S", "NOPE"]})
    assert r.status_code == 404 and "'NOPE'" in r.json()["message"] and "'S'" not in r.json()["message"]
    for route in ("wait-times", "speeds", "emergency-report"):  # each answered 200 with nothing
        r = client.get(f"/api/v1/analytics/{route}", params={"simulation_id": "NOPE"})
        assert r.status_code == 404 and "'NOPE' not found" in r.json()["message"], (route, r.text)
        # an intersection the run does not have is 404 naming the ones it has, as an ATSPM device or a live signal
        r = client.get(f"/api/v1/analytics/{route}", params={"simulation_id": "S", "intersection_id": "Z"})
        assert r.status_code == 404, r.text
        assert r.json()["message"] == "unknown intersection 'Z' in simulation 'S'; its intersections: A, B"
        # one it has, with nothing in the range asked: empty, not 404
        r = client.get(f"/api/v1/analytics/{route}", params={"simulation_id": "S", "intersection_id": "A",
                                                             "start": "2030-01-01T00:00:00Z"})
        assert r.status_code == 200 and r.json()["total"] == 0, r.text


def test_baseline_comparison_environment_and_charts(client, db_url):
    engine = get_engine(db_url)
    for seed in range(1, 4):
        for controller, delay, co2 in (("fixed", 50.0, 1000.0), ("max-pressure", 30.0, 800.0)):
            sim = f"{controller}-{seed}"
            register_run(engine, sim, "corridor", controller, seed, {"seed": seed})
            write_run_metrics(engine, sim, {"avg_delay_s": delay + seed, "co2_g": co2 + seed, "fuel_ml": 400.0,
                                            "emergency_delay_s": 3.0})
    client.post("/api/v1/admin/clear-cache")
    cmp_ = client.get("/api/v1/analytics/comparison/baseline-vs-ai", params={"scenario": "corridor"}).json()
    (entry,) = cmp_["items"]
    assert entry["controller"] == "max-pressure" and entry["seeds"] == [1, 2, 3]
    delay = next(m for m in entry["metrics"] if m["metric"] == "avg_delay_s")
    assert delay["baseline"]["mean"] == pytest.approx(52.0) and delay["candidate"]["mean"] == pytest.approx(32.0)
    assert delay["candidate"]["ci_low"] < 32.0 < delay["candidate"]["ci_high"]
    assert delay["p_value"] < 0.05
    env = client.get("/api/v1/analytics/environmental-impact", params={"simulation_id": "max-pressure-2"}).json()
    (e,) = env["items"]
    assert e["baseline_simulation_id"] == "fixed-2" and e["co2_g_saved"] == pytest.approx(200.0)
    assert e["co2_g_saved_pct"] == pytest.approx(200 / 1002 * 100)
    other = client.get("/api/v1/analytics/comparison/baseline-vs-ai",
                       params={"baseline_controller": "max-pressure"}).json()
    assert other["items"][0]["controller"] == "fixed"
    perf = client.get("/api/v1/dashboard/performance-comparison", params={"metric": "avg_delay_s"}).json()
    assert perf["labels"] == ["fixed", "max-pressure"] and perf["datasets"][0]["data"] == [52.0, 32.0]
    scatter = client.get("/api/v1/charts/performance-scatter", params={"x": "avg_delay_s", "y": "co2_g"}).json()
    assert len(scatter["points"]) == 6
    # a metric no stored run has is 422 naming the ones they have, not a chart of nulls
    for path, params in (("/api/v1/dashboard/performance-comparison", {"metric": ["avg_delay_s", "avg_dealy_s"]}),
                         ("/api/v1/charts/performance-scatter", {"x": "avg_dealy_s"})):
        r = client.get(path, params=params)
        assert r.status_code == 422, r.text
        assert "unknown metric(s) avg_dealy_s;" in r.json()["message"] and "avg_delay_s" in r.json()["message"]


def test_cache_is_dropped_on_ingest_and_on_request(client):
    client.post("/api/v1/ingest/simulation", json=rec(minute=0))
    assert client.get("/api/v1/analytics/speeds").json()["total"] == 1
    client.post("/api/v1/ingest/simulation", json=rec(inter="Z", minute=0))
    assert client.get("/api/v1/analytics/speeds").json()["total"] == 2  # not a stale cached answer
    assert client.post("/api/v1/admin/clear-cache").json()["cleared"] >= 1


def test_health_and_system_info(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/api/v1/system/info").json()
    assert info["database"] in ("sqlite", "postgresql") and info["schema_revision"]


def test_health_is_503_when_database_unreachable():
    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings

    app = create_app(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"))
    with TestClient(app) as c:
        resp = c.get("/health")
        assert resp.status_code == 503 and resp.json()["message"].startswith("database unreachable")
        assert c.get("/api/v1/analytics/speeds").status_code == 503


def test_a_running_app_keeps_its_startup_objects_out_of_the_collector(db_url):
    """A full collection walking every loaded module was the whole p95 of the range endpoints: a
    running app has them frozen, and gives them back when it stops."""
    import gc

    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings

    app = create_app(Settings(database_url=db_url))
    assert gc.get_freeze_count() == 0
    with TestClient(app) as c:
        assert gc.get_freeze_count() > 10_000  # the modules, routes and schemas loaded at start
        assert c.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0


def test_a_database_url_that_names_no_database_is_503_with_the_reason_not_a_bug(tmp_path):
    """A SQLite file in a directory that does not exist: every route that opens the store says the database
    is unavailable and why, an API key's check included (it answered 500, 'internal error')."""
    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/nodir/x.db"))
    with TestClient(app) as c:
        for resp in (c.get("/health"), c.get("/api/v1/system/info", headers={"X-API-Key": "sw_whatever"})):
            assert resp.status_code == 503, resp.text
        assert "no such directory" in resp.json()["message"]


def test_simulations_of_ingested_records_are_listed_when_asked(client):
    """Records pushed through the ingest API name no scenario nor controller: the listing of published runs leaves
    them out, and `untagged=true` shows them after those runs, with their record figures (integrator's trial:
    75 records stored, `total: 0`, and no way to find their ids)."""
    batch = [rec(sim="city-feed-1", inter=f"INT_{i}", minute=m, wait=12.0) for i in range(3) for m in range(5)]
    assert client.post("/api/v1/ingest/batch", json=batch).status_code == 201
    published = client.get("/api/v1/analytics/simulations").json()
    assert "city-feed-1" not in [r["simulation_id"] for r in published["items"]]
    listed = client.get("/api/v1/analytics/simulations", params={"untagged": "true", "limit": 1000}).json()
    (row,) = [r for r in listed["items"] if r["simulation_id"] == "city-feed-1"]
    assert (row["scenario"], row["controller"], row["seed"]) == (None, None, None)
    assert row["metrics"]["avg_wait_time"] == pytest.approx(12.0)
    assert listed["total"] == published["total"] + len({r["simulation_id"] for r in listed["items"]
                                                         if r["scenario"] is None})
