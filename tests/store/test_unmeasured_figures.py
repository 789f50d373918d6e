"""A figure a record did not measure (null: a detector-fed live run's waits, speeds, vehicle classes, emergency
vehicles, fuel and CO2) is stored as NULL and left out of every average and sum the API answers, whole-run
(roll-ups), over a time range (buckets and the records at its edges) and per interval: null where nothing was
measured, never 0 (migration 0015). The expected figures are computed here from the records sent."""

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from signalwise.api import create_app
from signalwise.store import Settings, create_store_engine, get_engine, ingest_records, register_run, upgrade
from signalwise.store.engine import downgrade
from signalwise.store.keys import create_key

T0 = dt.datetime(2025, 9, 10, 8, 0, tzinfo=dt.UTC)
MINUTES = 40  # records a minute apart: whole 5- and 15-minute buckets, and edges, in a range


def at(minute: int) -> str:
    return (T0 + dt.timedelta(minutes=minute)).isoformat()


def measured(sim: str, minute: int) -> dict:
    """A simulator's record: every figure measured (waits, speeds, fuel vary with the minute)."""
    wait, speed = 10.0 + minute, 20.0 + minute % 7
    return {"simulation_id": sim, "intersection_id": "J1", "timestamp": at(minute),
            "signals": [{"direction": d, "vehicle_counts": {"car": 4}, "emergency_vehicle_present": False,
                         "signal_status": "RED", "signal_timer": 5.0, "vehicles_crossed": 4,
                         "avg_wait_time": wait + k, "green_time_allocated": 20.0}
                        for k, d in enumerate(("north", "east"))],
            "metrics": {"total_vehicles_passed": 8, "avg_wait_time_all_sides": wait + 0.5, "throughput": 0.8,
                        "avg_speed": speed, "fuel_saved": 0.25 * minute, "co2_saved": 0.5, "emergency_overrides": 0}}


def fed(sim: str, minute: int) -> dict:
    """A detector-fed live run's record (`runtime/live/records.py`): vehicles counted, the rest not measured;
    the east approach's detectors silent."""
    return {"simulation_id": sim, "intersection_id": "J1", "timestamp": at(minute),
            "signals": [{"direction": "north", "vehicle_counts": None, "emergency_vehicle_present": None,
                         "signal_status": "GREEN", "signal_timer": 12.0, "vehicles_crossed": 5, "avg_wait_time": None,
                         "green_time_allocated": 30.0},
                        {"direction": "east", "vehicle_counts": None, "emergency_vehicle_present": None,
                         "signal_status": "RED", "signal_timer": 12.0, "vehicles_crossed": None, "avg_wait_time": None,
                         "green_time_allocated": 0.0}],
            "metrics": {"total_vehicles_passed": 5, "avg_wait_time_all_sides": None, "throughput": 0.9,
                        "avg_speed": None, "fuel_saved": None, "co2_saved": None, "emergency_overrides": 0}}


def mixed(minute: int) -> dict:
    """A run whose even minutes were measured and odd ones not."""
    return measured("MIXED", minute) if minute % 2 == 0 else fed("MIXED", minute)


def expect(records: list[dict], lo: int = 0, hi: int = MINUTES) -> dict:
    """The figures the store must answer for records of minutes [lo, hi): means over what was measured."""
    rows = [r for r in records if at(lo) <= r["timestamp"] < at(hi)]
    m = [r["metrics"] for r in rows]

    def mean(name):
        known = [x[name] for x in m if x[name] is not None]
        return pytest.approx(sum(known) / len(known)) if known else None

    def total(name):
        known = [x[name] for x in m if x[name] is not None]
        return pytest.approx(sum(known)) if known else None
    return {"avg_wait_time": mean("avg_wait_time_all_sides"), "avg_speed": mean("avg_speed"),
            "throughput": mean("throughput"), "total_vehicles_passed": sum(x["total_vehicles_passed"] for x in m),
            "fuel_saved": total("fuel_saved"), "co2_saved": total("co2_saved"), "emergency_overrides": 0}


@pytest.fixture
def client(db_url):
    app = create_app(Settings(database_url=db_url, cache_ttl_s=60))
    _info, key = create_key(get_engine(db_url), "tests", ["read"])
    with TestClient(app, headers={"X-API-Key": key}) as c:
        yield c


def store(engine, sent: list[dict]) -> None:
    for sim in ("MIXED", "FEED"):
        register_run(engine, sim, "corridor", "max-pressure", 1, {"field": "none"})
    ingest_records(engine, sent, chunk_records=7)


def assert_answers(client, sent: list[dict]) -> None:
    feed = [r for r in sent if r["simulation_id"] == "FEED"]
    mix = [r for r in sent if r["simulation_id"] == "MIXED"]
    runs = {r["simulation_id"]: r["metrics"] for r in client.get("/api/v1/analytics/simulations").json()["items"]}
    assert runs["FEED"] == expect(feed)  # null waits, speeds, fuel and CO2: not 0
    assert runs["FEED"]["avg_wait_time"] is None and runs["FEED"]["fuel_saved"] is None
    assert runs["MIXED"] == expect(mix)
    for sim, records in (("FEED", feed), ("MIXED", mix)):
        summary = client.get(f"/api/v1/analytics/simulation/{sim}/summary").json()
        assert summary["record_metrics"] == expect(records), sim
        # a range of whole 15- and 5-minute buckets and records at both edges
        ranged = client.get(f"/api/v1/analytics/simulation/{sim}/summary",
                            params={"start": at(3), "end": at(MINUTES - 2)}).json()
        assert ranged["record_metrics"] == expect(records, 3, MINUTES - 2), sim

    waits = client.get("/api/v1/analytics/wait-times", params={"simulation_id": "FEED"}).json()
    assert waits["items"] == [] and waits["overall"]["mean_wait_s"] is None and waits["overall"]["samples"] == 0
    for params in ({}, {"start": at(3), "end": at(MINUTES - 2)}):
        waits = client.get("/api/v1/analytics/wait-times", params={"simulation_id": "MIXED", **params}).json()
        lo, hi = (3, MINUTES - 2) if params else (0, MINUTES)
        approach = [s["avg_wait_time"] for r in mix if at(lo) <= r["timestamp"] < at(hi) for s in r["signals"]
                    if s["avg_wait_time"] is not None]
        assert waits["overall"]["samples"] == len(approach), params
        assert waits["overall"]["mean_wait_s"] == pytest.approx(sum(approach) / len(approach)), params

        speeds = client.get("/api/v1/analytics/speeds", params={"simulation_id": "FEED", **params}).json()
        (item,) = speeds["items"]
        assert (item["mean_speed"], item["min_speed"], item["max_speed"], item["samples"]) == (None, None, None, 0)
        assert speeds["overall"] == {"mean_speed": None, "samples": 0}
        speeds = client.get("/api/v1/analytics/speeds", params={"simulation_id": "MIXED", **params}).json()
        known = [r["metrics"]["avg_speed"] for r in mix if at(lo) <= r["timestamp"] < at(hi)
                 and r["metrics"]["avg_speed"] is not None]
        assert speeds["items"][0]["samples"] == len(known), params
        assert speeds["items"][0]["mean_speed"] == pytest.approx(sum(known) / len(known)), params
        assert (speeds["items"][0]["min_speed"], speeds["items"][0]["max_speed"]) == (min(known), max(known))

    series = client.get("/api/v1/analytics/time-series/FEED").json()["items"]
    assert [p["vehicles_passed"] for p in series] == [5] * len(feed)
    assert all(p["avg_wait_time"] is None and p["avg_speed"] is None and p["fuel_saved"] is None for p in series)
    for p in client.get("/api/v1/analytics/time-series/MIXED", params={"bucket_s": 300}).json()["items"]:
        five = [r for r in mix if p["timestamp"].replace("Z", "+00:00") <= r["timestamp"]][:5]
        assert p["avg_wait_time"] == expect(five, 0, MINUTES)["avg_wait_time"], p
        assert p["fuel_saved"] == expect(five, 0, MINUTES)["fuel_saved"], p
    latest = client.get("/api/v1/dashboard/live-metrics", params={"simulation_id": "FEED"}).json()
    assert latest["totals"] == {"vehicles_passed": 5, "avg_wait_time": None, "avg_speed": None}
    signals = latest["intersections"][0]["signals"]
    assert {s["direction"]: (s["car"], s["avg_wait_time"], s["vehicles_crossed"]) for s in signals} == {
        "north": (None, None, 5), "east": (None, None, None)}


def test_unmeasured_figures_are_stored_as_null_and_left_out_of_every_answer(db_url, client):
    engine = get_engine(db_url)
    sent = [fed("FEED", m) for m in range(MINUTES)] + [mixed(m) for m in range(MINUTES)]
    store(engine, sent)
    with engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM intersection_records WHERE avg_wait_time_all_sides IS NULL "
                                  "AND avg_speed IS NULL AND fuel_saved IS NULL AND co2_saved IS NULL")).scalar_one()
        assert nulls == MINUTES + MINUTES // 2
    assert_answers(client, sent)

    # re-sent records recompute their roll-ups from the rows (NULLs left out there too): measured minutes
    # replaced by unmeasured ones and the other way round
    resent = [fed("MIXED", m) if m % 2 == 0 else measured("MIXED", m) for m in range(10, 24)]
    ingest_records(engine, resent)
    latest = {(r["simulation_id"], r["timestamp"]): r for r in sent + resent}
    assert_answers(client, list(latest.values()))


def test_migration_0015_upgrades_a_database_holding_rows_and_downgrades(db_url, client):
    """Rows stored under 0014 (every figure measured) keep their figures and answers; their roll-ups' sample
    counts are their records. Downgrading stores 0 for NULL, as the columns held before."""
    engine = get_engine(db_url)
    sent = [measured("MIXED", m) for m in range(MINUTES)] + [fed("FEED", m) for m in range(4)]
    store(engine, sent)
    before = client.get("/api/v1/analytics/simulations").json()["items"]
    engine.dispose()

    raw = create_store_engine(db_url)
    downgrade(raw, "0014")
    with raw.connect() as conn:  # a feed run's NULLs went back to 0: what 0014 stored
        assert conn.execute(text("SELECT avg_wait_time_all_sides FROM intersection_records r JOIN runs ON "
                                 "runs.id = r.run_id WHERE simulation_id = 'FEED'")).scalars().all() == [0.0] * 4
    with raw.begin() as conn:  # NOT NULL again
        conn.execute(text("DELETE FROM intersection_records WHERE run_id = (SELECT id FROM runs "
                          "WHERE simulation_id = 'FEED')"))
        conn.execute(text("DELETE FROM intersection_rollups WHERE run_id = (SELECT id FROM runs "
                          "WHERE simulation_id = 'FEED')"))
    with pytest.raises(IntegrityError), raw.begin() as conn:
        conn.execute(text("UPDATE signal_records SET avg_wait_time = NULL"))

    upgrade(raw)  # a 0014 database holding rows
    with raw.connect() as conn:
        if raw.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        for table in ("intersection_rollups", "bucket_rollups_1h", "bucket_rollups_15min", "bucket_rollups_5min"):
            counts = conn.execute(text(f"SELECT records, avg_wait_time_samples, avg_speed_samples FROM {table}")).all()
            assert counts and all(r == (r[0], r[0], r[0]) for r in counts), table
    raw.dispose()
    after = client.get("/api/v1/analytics/simulations", params={"scenario": "corridor"}).json()["items"]  # not cached
    mixed_before = next(r for r in before if r["simulation_id"] == "MIXED")
    assert next(r for r in after if r["simulation_id"] == "MIXED")["metrics"] == pytest.approx(mixed_before["metrics"])

    # the migrated database takes unmeasured figures, and answers them as not measured
    again = [fed("FEED", m) for m in range(4)]
    ingest_records(get_engine(db_url), again)
    runs = {r["simulation_id"]: r["metrics"] for r in client.get("/api/v1/analytics/simulations").json()["items"]}
    assert runs["FEED"] == expect(again)
