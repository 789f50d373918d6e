"""Retention: old runs go whole (records, roll-ups, events), recent ones stay; alerts and changes by age."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from signalwise.store import bulk_insert_events, get_engine, ingest_records, register_run
from signalwise.store.ml_metrics import Interval, get_metrics, put_metrics
from signalwise.store.retention import DEFAULT_DAYS, purge
from signalwise.store.tables import BUCKET_TABLES, HiresEvent, IntersectionRecordRow, Run
from signalwise.store.violations import VIOLATION_DAYS, purge_violations


def _record(sim: str, when: dt.datetime) -> dict:
    return {"simulation_id": sim, "timestamp": when.isoformat().replace("+00:00", "Z"), "intersection_id": "I",
            "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                         "green_time_allocated": 20}],
            "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}


def _count(engine, table, where=None) -> int:
    q = select(func.count()).select_from(table.__table__)
    if where is not None:
        q = q.where(where)
    with engine.connect() as conn:
        return conn.execute(q).scalar_one()


def test_purge_removes_old_runs_whole_and_keeps_recent_ones(db_url):
    engine = get_engine(db_url)
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    ingest_records(engine, [_record("old", now - dt.timedelta(days=400, minutes=k)) for k in range(3)])
    ingest_records(engine, [_record("new", now - dt.timedelta(days=10, minutes=k)) for k in range(3)])
    local = dt.datetime(2025, 1, 6, 7, 0)
    bulk_insert_events(engine, [(local, "I", 1, 2)], simulation_id="old")
    bulk_insert_events(engine, [(local, "I", 1, 2)], simulation_id="new")
    bulk_insert_events(engine, [(local, "X", 82, 1)], simulation_id="")  # an imported log: by when it was stored
    put_metrics(engine, "I", "study", [Interval(now - dt.timedelta(days=d), 900, "fixed", None, 30.0, None, None)
                                       for d in (400, 10)], "tests")  # submitted figures go by their interval
    dry = purge(engine, {}, now=now, dry_run=True)
    assert dry == {"runs": 1, "events": 1, "alerts": 0, "changes": 0, "ml_metrics": 1}
    assert _count(engine, Run) == 2  # a dry run removes nothing
    assert purge(engine, {}, now=now) == dry
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(select(Run.__table__.c.simulation_id))] == ["new"]
        new_id = conn.execute(select(Run.__table__.c.id)).scalar_one()
    assert _count(engine, IntersectionRecordRow) == 3
    for t in BUCKET_TABLES:  # the old run's buckets went with it
        assert _count(engine, t) > 0 and _count(engine, t, t.__table__.c.run_id != new_id) == 0
    assert _count(engine, HiresEvent) == 2  # the new run's, and the log imported today
    assert get_metrics(engine, "I")[0] == 1
    assert purge(engine, {"records": 5}, now=now)["runs"] == 1  # a shorter retention takes the recent run too


def test_a_simulated_run_goes_by_when_it_ran_not_by_its_simulated_clock(db_url):
    """A simulation's records carry the simulated clock (core.eventlog.DEFAULT_START, a fixed day in 2025):
    a run published today stays its full retention, one started long ago goes."""
    from signalwise.core.eventlog import DEFAULT_START

    engine = get_engine(db_url)
    now = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)  # over a year after the simulated clock's day
    simulated = DEFAULT_START.replace(tzinfo=dt.UTC)
    for sim, started in (("ran-today", now - dt.timedelta(hours=1)), ("ran-long-ago", now - dt.timedelta(days=400))):
        register_run(engine, sim, "single", "fixed", 1, {}, started)
        ingest_records(engine, [_record(sim, simulated + dt.timedelta(minutes=k)) for k in range(3)])
        bulk_insert_events(engine, [(DEFAULT_START, "I", 1, 2)], simulation_id=sim)
    assert purge(engine, {}, now=now)["runs"] == 1
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(select(Run.__table__.c.simulation_id))] == ["ran-today"]
    assert _count(engine, IntersectionRecordRow) == 3 and _count(engine, HiresEvent) == 1


@pytest.mark.parametrize("days", [-1, float("nan")])
def test_a_negative_or_missing_period_is_refused_and_nothing_goes(db_url, days):
    engine = get_engine(db_url)
    ingest_records(engine, [_record("r", dt.datetime.now(dt.UTC))])
    with pytest.raises(ValueError, match="retention of records"):
        purge(engine, {"records": days})
    with pytest.raises(ValueError, match="retention of evidence"):
        purge_violations(engine, {"evidence": days})
    assert _count(engine, Run) == 1


def test_a_period_longer_than_the_calendar_keeps_everything(db_url):
    engine = get_engine(db_url)
    ingest_records(engine, [_record("r", dt.datetime(2020, 1, 6, tzinfo=dt.UTC))])
    bulk_insert_events(engine, [(dt.datetime(2020, 1, 6), "X", 82, 1)])
    forever = dict.fromkeys((*DEFAULT_DAYS, *VIOLATION_DAYS), float("inf"))
    assert purge(engine, forever) == {"runs": 0, "events": 0, "alerts": 0, "changes": 0, "ml_metrics": 0}
    assert purge_violations(engine, {**forever, "evidence": 1e9}) == {
        "violations": 0, "evidence_images": 0, "evidence_access": 0}
    assert _count(engine, Run) == 1 and _count(engine, HiresEvent) == 1
