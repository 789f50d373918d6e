"""Retention of what is still fed: an imported hi-res log goes `events` days after it was stored, whatever its
clock says (a run's events.csv is dated on the simulated clock's day in 2025); a run fed day after day loses its
records older than `records` days one by one, and its roll-ups then equal those of the records left. And
`signalwise db forget` / `db purge --dry-run` name what they remove."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import func, select, text
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.store import bulk_insert_events, get_engine, ingest_records, register_run
from signalwise.store.engine import create_store_engine, upgrade
from signalwise.store.retention import purge
from signalwise.store.rollups import BUCKET_COLUMNS, DIRECTION_COLUMNS, INTERSECTION_COLUMNS, LEVELS
from signalwise.store.tables import HiresEvent, IntersectionRecordRow, Run, SignalRecord

SIMULATED_DAY = dt.datetime(2025, 1, 6, 7)  # core.eventlog.DEFAULT_START: a run's events.csv starts here


def _record(sim: str, when: dt.datetime, inter: str, k: int) -> dict:
    """Figures that are multiples of 1/2: their sums are exact in any order, so roll-ups compare equal."""
    def signal(direction: str, n: int) -> dict:
        return {"direction": direction, "vehicle_counts": {"car": n}, "emergency_vehicle_present": n % 5 == 0,
                "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": n, "avg_wait_time": n / 2,
                "green_time_allocated": 20}
    dirs = ("north", "east", "south", "west")[: 1 + k % 4]
    return {"simulation_id": sim, "timestamp": when.isoformat().replace("+00:00", "Z"), "intersection_id": inter,
            "signals": [signal(d, k + i) for i, d in enumerate(dirs)],
            "metrics": {"total_vehicles_passed": k, "avg_wait_time_all_sides": k / 2, "throughput": 0.5,
                        "avg_speed": 20.0 + k % 7, "fuel_saved": k / 4, "co2_saved": 0.5, "emergency_overrides": k % 3}}


def _count(engine, table, where=None) -> int:  # noqa: ANN001
    q = select(func.count()).select_from(table.__table__)
    with engine.connect() as conn:
        return conn.execute(q if where is None else q.where(where)).scalar_one()


def test_an_imported_log_goes_by_when_it_was_stored_not_by_its_own_clock(db_url):
    engine = get_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    bulk_insert_events(engine, [(SIMULATED_DAY, "X", 82, 1)])  # imported, untagged
    bulk_insert_events(engine, [(SIMULATED_DAY, "X", 82, 2)], simulation_id="grid-actuated-s2")  # tagged, no run
    ingest_records(engine, [_record("feed", now - dt.timedelta(hours=1), "I", 1)])
    bulk_insert_events(engine, [(SIMULATED_DAY, "I", 1, 2)], simulation_id="feed")  # a fed run's own events
    assert purge(engine, {}, dry_run=True)["events"] == 0  # the default daily purge, the night of the import
    assert purge(engine, {})["events"] == 0 and _count(engine, HiresEvent) == 3
    assert purge(engine, {"events": 179}, now=now + dt.timedelta(days=180), dry_run=True)["events"] == 3
    assert purge(engine, {}, now=now + dt.timedelta(days=179))["events"] == 0
    assert purge(engine, {}, now=now + dt.timedelta(days=181))["events"] == 3
    assert _count(engine, HiresEvent) == 0 and _count(engine, Run) == 1  # the fed run stays (its record is recent)


def test_events_stored_before_the_upgrade_are_dated_by_the_upgrade_and_new_ones_by_their_storing(db_url):
    engine = create_store_engine(db_url)
    upgrade(engine, "0015")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO hires_events (device_id, timestamp, event_code, parameter, simulation_id) "
                          "VALUES ('OLD', '2025-01-06 07:00:00', 1, 2, '')"))
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    upgrade(engine)
    time.sleep(1.1)  # SQLite's CURRENT_TIMESTAMP counts whole seconds
    bulk_insert_events(engine, [(SIMULATED_DAY, "NEW", 1, 2)])
    t = HiresEvent.__table__
    with engine.connect() as conn:
        stored = dict(conn.execute(select(t.c.device_id, t.c.stored_at)).all())
    assert before <= stored["OLD"] < stored["NEW"] <= dt.datetime.now(dt.UTC), stored
    engine.dispose()


def _rollups(engine, simulation_id: str) -> dict[str, list]:  # noqa: ANN001
    """Every roll-up row of a run, without its run id, in key order."""
    out = {}
    with engine.connect() as conn:
        run_id = conn.execute(select(Run.__table__.c.id).where(Run.__table__.c.simulation_id == simulation_id)
                              ).scalar_one()
        for table, columns in (("intersection_rollups", INTERSECTION_COLUMNS),
                               ("direction_rollups", DIRECTION_COLUMNS),
                               *((level.table, BUCKET_COLUMNS) for level in LEVELS)):
            cols = [c for c in columns if c != "run_id"]
            keys = [c for c in ("intersection_id", "direction", "bucket") if c in cols]
            rows = conn.execute(text(f"SELECT {', '.join(cols)} FROM {table} WHERE run_id = :r "
                                     f"ORDER BY {', '.join(keys)}"), {"r": run_id}).all()
            out[table] = [tuple(r) for r in rows]
    return out


def test_a_fed_run_loses_its_old_records_and_its_roll_ups_equal_those_of_the_records_left(db_url):
    """Two days into one simulation, purged at 00:07 of day 2 (inside an hour and a 5-minute bucket): the
    records, signal rows, whole-run, per-approach, hourly, 15- and 5-minute roll-ups all equal those of a run
    given the kept records alone."""
    engine = get_engine(db_url)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    day2 = now - dt.timedelta(days=1)
    cut = day2 + dt.timedelta(minutes=7)
    every = [(day2 - dt.timedelta(days=1) + dt.timedelta(minutes=3 * n), inter, n)
             for n in range(2 * 480 - 1) for inter in ("A", "B")]  # two days of 3-minute intervals
    ingest_records(engine, [_record("CITY", when, inter, n) for when, inter, n in every])
    kept = [(when, inter, n) for when, inter, n in every if when >= cut]
    ingest_records(engine, [_record("ALONE", when, inter, n) for when, inter, n in kept])
    assert 0 < len(kept) < len(every)
    removed: list[dict] = []
    days = (now - cut).total_seconds() / 86400
    assert purge(engine, {"records": days}, now=now, dry_run=True, removed=removed)["runs"] == 0
    assert removed == [{"simulation_id": "CITY", "records": len(every) - len(kept), "whole": False}]
    assert _count(engine, IntersectionRecordRow) == len(every) + len(kept)  # a dry run removes nothing
    assert purge(engine, {"records": days}, now=now)["runs"] == 0
    assert _count(engine, IntersectionRecordRow) == 2 * len(kept)
    assert _count(engine, SignalRecord) == 2 * sum(1 + n % 4 for _, _, n in kept)  # their signal rows went too
    city, alone = _rollups(engine, "CITY"), _rollups(engine, "ALONE")
    assert all(city[t] for t in city)
    assert city == alone


def test_a_simulated_run_is_not_trimmed_by_its_simulated_clock(db_url):
    """A published run's records are dated on the simulated day, before it started: it goes whole, by when
    it ran, never record by record."""
    engine = get_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    register_run(engine, "published", "single", "fixed", 1, {}, now - dt.timedelta(hours=1))
    simulated = SIMULATED_DAY.replace(tzinfo=dt.UTC)
    ingest_records(engine, [_record("published", simulated + dt.timedelta(minutes=k), "I", k) for k in range(5)])
    removed: list[dict] = []
    assert purge(engine, {}, removed=removed)["runs"] == 0
    assert removed == [] and _count(engine, IntersectionRecordRow) == 5


def _cli(*args: str):  # noqa: ANN202
    return CliRunner().invoke(app, list(args))


def test_db_forget_counts_asks_and_removes_one_run_whole(db_url):
    engine = get_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    for sim in ("GONE", "STAYS"):
        ingest_records(engine, [_record(sim, now - dt.timedelta(minutes=15 * k), "I", k) for k in range(4)])
        bulk_insert_events(engine, [(SIMULATED_DAY, "I", 1, 2)], simulation_id=sim)
    dry = _cli("db", "forget", "GONE", "--dry-run", "--db", db_url)
    assert dry.exit_code == 0 and "would remove run GONE: 4 records" in dry.output and "1 hi-res events" in dry.output
    asked = _cli("db", "forget", "GONE", "--db", db_url)
    assert asked.exit_code == 2 and "--yes" in asked.output
    assert _count(engine, IntersectionRecordRow) == 8  # neither removed anything
    done = _cli("db", "forget", "GONE", "--yes", "--db", db_url)
    assert done.exit_code == 0 and "removed run GONE: 4 records" in done.output, done.output
    with engine.connect() as conn:
        assert conn.execute(select(Run.__table__.c.simulation_id)).scalars().all() == ["STAYS"]
        for level in LEVELS:  # its roll-ups went with it
            assert conn.execute(text(f"SELECT count(DISTINCT run_id) FROM {level.table}")).scalar_one() == 1
    assert _count(engine, IntersectionRecordRow) == 4 and _count(engine, HiresEvent) == 1
    missing = _cli("db", "forget", "GONE", "--yes", "--db", db_url)
    assert missing.exit_code == 1 and "no run nor hi-res events named 'GONE'" in missing.output


def test_db_purge_dry_run_names_the_runs_and_records_it_would_remove(db_url):
    engine = get_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    ingest_records(engine, [_record("FEED", now - dt.timedelta(days=d), "I", d) for d in (1, 2, 10, 11, 12)])
    ingest_records(engine, [_record("OLD", now - dt.timedelta(days=d), "I", d) for d in (20, 21)])
    dry = _cli("db", "purge", "--older-than-days", "5", "--dry-run", "--db", db_url)
    assert dry.exit_code == 0, dry.output
    assert "would remove: 1 run(s) with their records and events, 3 older records of 1 run(s) that stay" in dry.output
    assert "  OLD: the whole run, 2 records" in dry.output
    assert "  FEED: older records (the run stays), 3 records" in dry.output
    assert _count(engine, IntersectionRecordRow) == 7
    done = _cli("db", "purge", "--older-than-days", "5", "--db", db_url)
    assert done.exit_code == 0 and done.output.startswith("removed: 1 run(s)"), done.output
    with engine.connect() as conn:
        assert conn.execute(select(Run.__table__.c.simulation_id)).scalars().all() == ["FEED"]
    assert _count(engine, IntersectionRecordRow) == 2
