"""Roll-up totals (whole-run, hourly, quarter-hour, 5-minute) stay equal to what the stored records add up to:
after plain ingestion, after re-sends that replace records (values lowered, directions dropped),
after failed batches, after run deletions, and with concurrent writers adding to the same buckets.
The expected totals are computed here in Python from the records sent."""

import datetime as dt
import random
import threading

import pytest
from sqlalchemy import delete, select, text

from signalwise.store import RecordError, create_store_engine, ingest_records, upgrade
from signalwise.store import writers as store_writers
from signalwise.store.ingest import ingest_json_array
from signalwise.store.rollups import DIRECTION_TOTALS
from signalwise.store.tables import BUCKET_TABLES, DirectionRollup, IntersectionRollup, Run, SignalRecord
from signalwise.store.tables import IntersectionRecordRow as RecordRow

T0 = dt.datetime(2025, 9, 10, 6, tzinfo=dt.UTC)
DIRECTIONS = ("north", "south", "east", "west")


IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def at(step: int) -> dt.datetime:
    """Records 3 min 10 s apart: keys span several hours, 5-minute buckets hold one or two records."""
    return T0 + dt.timedelta(seconds=190 * step)


def make(sim: str, inter: str, minute: int, rng: random.Random, dirs=DIRECTIONS) -> dict:
    return {
        "simulation_id": sim, "intersection_id": inter,
        # odd steps in a half-hour zone: the hour is the UTC hour, not the local one
        "timestamp": (at(minute).astimezone(IST) if minute % 2 else at(minute)).isoformat(),
        "signals": [{"direction": d, "vehicle_counts": {"car": rng.randrange(50)},
                     "emergency_vehicle_present": rng.random() < 0.2, "signal_status": "RED",
                     "signal_timer": 5, "vehicles_crossed": rng.randrange(30),
                     "avg_wait_time": round(rng.uniform(0, 90), 2), "green_time_allocated": 20} for d in dirs],
        "metrics": {"total_vehicles_passed": rng.randrange(200), "avg_wait_time_all_sides": round(rng.uniform(0, 60), 2),
                    "throughput": round(rng.uniform(0, 1), 3), "avg_speed": round(rng.uniform(5, 50), 2),
                    "fuel_saved": round(rng.uniform(-2, 3), 3), "co2_saved": round(rng.uniform(-5, 8), 3),
                    "emergency_overrides": rng.randrange(3)},
    }


#: roll-up levels: (table, bucket width in minutes); the whole-run level has a table per shape
LEVELS = {"run": (None, None), **{f"{t.__table__.name}": (t, m) for t, m in zip(BUCKET_TABLES, (60, 15, 5), strict=True)}}


def bucket_of(ts: dt.datetime, minutes: int) -> dt.datetime:
    ts = ts.astimezone(dt.UTC)
    return ts.replace(minute=ts.minute // minutes * minutes, second=0, microsecond=0)


def expected(records: list[dict], level: str = "run") -> tuple[dict, dict]:
    """Totals per (sim, intersection) and (sim, intersection, direction) of the latest record per key
    (per UTC bucket of the level too: keys end with the bucket's start)."""
    minutes = LEVELS[level][1]
    latest = {}
    for r in records:
        latest[(r["simulation_id"], r["intersection_id"], dt.datetime.fromisoformat(r["timestamp"]))] = r
    inter, dirs = {}, {}
    for (sim, iid, ts), r in latest.items():
        m = r["metrics"]
        hour = (bucket_of(ts, minutes),) if minutes else ()
        t = inter.setdefault((sim, iid, *hour), {"records": 0, "first": ts, "last": ts, "passed": 0, "wait": 0.0,
                                          "thr": 0.0, "speed": 0.0, "speed_min": m["avg_speed"],
                                          "speed_max": m["avg_speed"], "fuel": 0.0, "co2": 0.0, "overrides": 0,
                                          "with_emergency": 0})
        t["records"] += 1
        t["first"], t["last"] = min(t["first"], ts), max(t["last"], ts)
        t["passed"] += m["total_vehicles_passed"]
        t["wait"] += m["avg_wait_time_all_sides"]
        t["thr"] += m["throughput"]
        t["speed"] += m["avg_speed"]
        t["speed_min"], t["speed_max"] = min(t["speed_min"], m["avg_speed"]), max(t["speed_max"], m["avg_speed"])
        t["fuel"] += m["fuel_saved"]
        t["co2"] += m["co2_saved"]
        t["overrides"] += m["emergency_overrides"]
        t["with_emergency"] += any(s["emergency_vehicle_present"] for s in r["signals"])
        for s in r["signals"]:
            d = dirs.setdefault((sim, iid, s["direction"], *hour), {"samples": 0, "wait": 0.0, "wait_max": 0.0,
                                                             "crossed": 0, "emergency": 0})
            d["samples"] += 1
            d["wait"] += s["avg_wait_time"]
            d["wait_max"] = max(d["wait_max"], s["avg_wait_time"])
            d["crossed"] += s["vehicles_crossed"]
            d["emergency"] += s["emergency_vehicle_present"]
    return inter, dirs


def stored(engine, level: str = "run") -> tuple[dict, dict]:
    """What a level's tables hold, in the shape of `expected` (a bucketed row's approaches as direction
    keys where they have samples)."""
    table, _ = LEVELS[level]
    RUN = Run.__table__
    IR = IntersectionRollup.__table__ if table is None else table.__table__
    with engine.connect() as conn:
        irows = conn.execute(select(RUN.c.simulation_id, IR).join(RUN, RUN.c.id == IR.c.run_id)).mappings().all()
        if table is None:
            DR = DirectionRollup.__table__
            drows = conn.execute(select(RUN.c.simulation_id, DR).join(RUN, RUN.c.id == DR.c.run_id)).mappings().all()
        else:  # the approaches of the bucketed rows, as direction rows
            drows = [{"simulation_id": r["simulation_id"], "intersection_id": r["intersection_id"],
                      "bucket": r["bucket"], "direction": d, **{c: r[f"{d}_{c}"] for c in DIRECTION_TOTALS}}
                     for r in irows for d in DIRECTIONS if r[f"{d}_samples"]]

    def hour(r) -> tuple:
        return (r["bucket"],) if table is not None else ()
    inter = {(r["simulation_id"], r["intersection_id"], *hour(r)): {
        "records": r["records"], "first": r["first_timestamp"], "last": r["last_timestamp"],
        "passed": r["total_vehicles_passed"], "wait": r["avg_wait_time_sum"], "thr": r["throughput_sum"],
        "speed": r["avg_speed_sum"], "speed_min": r["avg_speed_min"], "speed_max": r["avg_speed_max"],
        "fuel": r["fuel_saved"], "co2": r["co2_saved"], "overrides": r["emergency_overrides"],
        "with_emergency": r["intervals_with_emergency"]} for r in irows}
    dirs = {(r["simulation_id"], r["intersection_id"], r["direction"], *hour(r)): {
        "samples": r["samples"], "wait": r["avg_wait_time_sum"], "wait_max": r["avg_wait_time_max"],
        "crossed": r["vehicles_crossed"], "emergency": r["emergency_present"]} for r in drows}
    return inter, dirs


def assert_rollups_match(engine, sent: list[dict]) -> None:
    """Whole-run and every bucketed level's roll-ups all equal the totals of the records sent."""
    for level in LEVELS:
        _assert_match(*expected(sent, level), *stored(engine, level))


def _assert_match(want_i: dict, want_d: dict, got_i: dict, got_d: dict) -> None:
    assert got_i.keys() == want_i.keys()
    assert got_d.keys() == want_d.keys()
    for key, want in want_i.items():
        got = dict(got_i[key])
        assert (got.pop("first"), got.pop("last")) == (want["first"], want["last"]), key
        assert got == pytest.approx({k: v for k, v in want.items() if k not in ("first", "last")}), key
    for key, want in want_d.items():
        assert got_d[key] == pytest.approx(want), key


def test_rollups_add_up_over_chunks_runs_and_calls(engine):
    rng = random.Random(1)
    first = [make(f"S{s}", f"I{i}", m, rng) for s in range(3) for m in range(30) for i in range(4)]
    later = [make(f"S{s}", f"I{i}", m, rng, DIRECTIONS[: 1 + m % 4]) for s in range(2) for m in range(30, 50)
             for i in range(5)]
    ingest_records(engine, first, chunk_records=37)
    ingest_records(engine, later, chunk_records=1000)
    assert_rollups_match(engine, first + later)


def test_resending_replaces_totals_exactly(engine):
    rng = random.Random(2)
    original = [make("S", f"I{i}", m, rng) for m in range(40) for i in range(3)]
    ingest_records(engine, original, chunk_records=50)
    # re-send a slice with other values (maxima may drop) and fewer directions, mixed with new records
    resent = [make("S", f"I{i}", m, rng, ("east",)) for m in range(10, 25) for i in range(3)]
    for r in resent:
        r["signals"][0]["avg_wait_time"] = 0.5
        r["metrics"]["avg_speed"] = 7.0
    fresh = [make("S", "I9", m, rng) for m in range(5)]
    ingest_records(engine, resent + fresh, chunk_records=20)
    assert_rollups_match(engine, original + resent + fresh)
    with engine.connect() as conn:
        assert conn.execute(select(text("count(*)")).select_from(RecordRow.__table__)).scalar() == 125


def test_repeated_key_in_one_chunk_counts_once(engine):
    rng = random.Random(3)
    a, b = make("S", "I", 0, rng), make("S", "I", 0, rng)
    ingest_records(engine, [a, b])
    assert_rollups_match(engine, [a, b])
    assert stored(engine)[0][("S", "I")]["records"] == 1


def test_failed_batch_leaves_rollups_as_they_were(engine):
    rng = random.Random(4)
    kept = [make("S", "I", m, rng) for m in range(10)]
    ingest_records(engine, kept)
    bad = make("S", "I", 99, rng)
    bad["metrics"]["avg_speed"] = -1
    with pytest.raises(RecordError):
        ingest_records(engine, [make("S", "I", m, rng) for m in range(10, 30)] + [bad], chunk_records=5)
    assert_rollups_match(engine, kept)


def test_deleting_a_run_removes_its_rows_and_totals(engine):
    rng = random.Random(5)
    kept = [make("KEPT", "I", m, rng) for m in range(6)]
    ingest_records(engine, [make("GONE", "I", m, rng) for m in range(6)] + kept)
    with engine.begin() as conn:
        conn.execute(delete(Run.__table__).where(Run.__table__.c.simulation_id == "GONE"))
    with engine.connect() as conn:
        assert conn.execute(select(text("count(*)")).select_from(RecordRow.__table__)).scalar() == 6
        assert conn.execute(select(text("count(*)")).select_from(SignalRecord.__table__)).scalar() == 24
    assert set(stored(engine)[0]) == {("KEPT", "I")}
    assert_rollups_match(engine, kept)  # every level, the 5-minute ones by trigger instead of foreign key


def test_deleting_records_deletes_their_signal_rows(engine):
    rng = random.Random(6)
    ingest_records(engine, [make("S", "I", m, rng) for m in range(3)])
    with engine.begin() as conn:
        conn.execute(delete(RecordRow.__table__).where(RecordRow.__table__.c.timestamp < at(2)))
        assert conn.execute(select(text("count(*)")).select_from(SignalRecord.__table__)).scalar() == 4


def test_postgres_falls_back_to_replacing_when_a_key_appears_after_the_check(engine, monkeypatch):
    """Another writer may commit a key between our check and our COPY: the batch still replaces it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite holds its write lock from the check on; only PostgreSQL can race")
    rng = random.Random(7)
    first = [make("S", "I", m, rng) for m in range(5)]
    ingest_records(engine, first)
    monkeypatch.setattr(store_writers, "may_replace", lambda *_: False)  # as if the check ran before the other commit
    again = [make("S", "I", m, rng) for m in range(3, 8)]
    assert ingest_records(engine, again) == 5
    assert_rollups_match(engine, first + again)


def test_json_array_errors_carry_absolute_positions(engine):
    rng = random.Random(8)
    import json

    items = [make("S", "I", m, rng) for m in range(10)]
    items[7]["signals"][0]["vehicles_crossed"] = -4
    with pytest.raises(RecordError) as err:
        ingest_json_array(engine, json.dumps(items), max_records=100, chunk_records=3)
    assert err.value.where == "record 7" and err.value.field == "signals[0].vehicles_crossed"
    assert err.value.errors[0]["loc"] == (7, "signals", 0, "vehicles_crossed")
    with pytest.raises(RecordError) as err:
        ingest_json_array(engine, json.dumps([items[0], "not a record"]), max_records=100)
    assert err.value.errors[0]["loc"] == (1,)
    assert stored(engine) == ({}, {})


def test_upgrade_from_0002_sums_existing_records(db_url):
    """A database filled before the roll-ups existed gets them from its records."""
    rng = random.Random(9)
    sent = [make(s, f"I{i}", m, rng, DIRECTIONS[: 1 + (m + i) % 4]) for s in ("A", "B") for m in range(8)
            for i in range(3)]
    engine = create_store_engine(db_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:  # the 0002 schema, written as 0002's ingestion did
        for sim in ("A", "B"):
            conn.execute(text("INSERT INTO runs (simulation_id, created_at) VALUES (:s, CURRENT_TIMESTAMP)"),
                         {"s": sim})
        run_ids = dict(conn.execute(text("SELECT simulation_id, id FROM runs")).all())
        for n, r in enumerate(sent, start=1):
            run_id = run_ids[r["simulation_id"]]
            m = r["metrics"]
            conn.execute(RecordRow.__table__.insert(), {
                "id": n, "run_id": run_id, "intersection_id": r["intersection_id"],
                "timestamp": dt.datetime.fromisoformat(r["timestamp"]), **m})
            conn.execute(SignalRecord.__table__.insert(), [
                {"record_id": n, "direction": s["direction"], **{c: s["vehicle_counts"].get(c, 0) for c in
                                                                 ("car", "bus", "truck", "bike", "rickshaw")},
                 **{k: s[k] for k in ("emergency_vehicle_present", "signal_status", "signal_timer",
                                      "vehicles_crossed", "avg_wait_time", "green_time_allocated")}}
                for s in r["signals"]])
    upgrade(engine)
    assert_rollups_match(engine, sent)
    # 0007 copied each record's signal rows into its approach columns (None where it has no signal)
    want = {(r["simulation_id"], r["intersection_id"], dt.datetime.fromisoformat(r["timestamp"])): {
        f"{d}_{c}": next((s[c] for s in r["signals"] if s["direction"] == d), None)
        for d in DIRECTIONS for c in ("avg_wait_time", "vehicles_crossed")} for r in sent}
    R, RUN = RecordRow.__table__, Run.__table__
    with engine.connect() as conn:
        got = {(r["simulation_id"], r["intersection_id"], r["timestamp"]): {k: r[k] for k in want[next(iter(want))]}
               for r in conn.execute(select(RUN.c.simulation_id, R).join(RUN, RUN.c.id == R.c.run_id)).mappings()}
    assert got == want
    engine.dispose()


def test_concurrent_writers_adding_to_the_same_buckets_stay_exact(db_url):
    """Two writers in lockstep rounds, each a transaction: one sends the first records of a 5-minute
    bucket, the other the rest of it (and of the hour and the run), at the same time. Neither may
    replace (their spans are apart), so both merge their totals into the same rows."""
    from signalwise.store import get_engine

    engine = get_engine(db_url)
    rng = random.Random(10)

    def rec(minute: int, inter: str) -> dict:
        r = make("S", inter, 0, rng)
        r["timestamp"] = (T0 + dt.timedelta(minutes=minute)).isoformat()
        return r
    rounds = [([rec(5 * k + m, i) for m in (0, 1, 2) for i in ("A", "B")],
               [rec(5 * k + m, i) for m in (3, 4) for i in ("A", "B")]) for k in range(6)]
    barrier, errors = threading.Barrier(2), []

    def write(side: int) -> None:
        try:
            for pair in rounds:
                barrier.wait()
                ingest_records(engine, pair[side])
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            barrier.abort()
    threads = [threading.Thread(target=write, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_rollups_match(engine, [r for pair in rounds for side in pair for r in side])
