import copy
import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from signalwise.store import (
    IntersectionRecord,
    RecordError,
    ingest_records,
    iter_jsonl,
    register_run,
    write_run_metrics,
)
from signalwise.store.tables import IntersectionRecordRow as RecordRow
from signalwise.store.tables import Run, RunMetric, SignalRecord

EXAMPLE = {
    "simulation_id": "SIM_20250910_001", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "INT_001",
    "signals": [{"direction": "north",
                 "vehicle_counts": {"car": 78, "bus": 0, "truck": 0, "bike": 0, "rickshaw": 0},
                 "emergency_vehicle_present": False, "signal_status": "GREEN", "signal_timer": 18,
                 "vehicles_crossed": 35, "avg_wait_time": 12.5, "green_time_allocated": 20}],
    "metrics": {"total_vehicles_passed": 104, "avg_wait_time_all_sides": 20.6, "throughput": 0.87,
                "avg_speed": 28.3, "fuel_saved": 1.2, "co2_saved": 3.8, "emergency_overrides": 0},
}


def record(**changes) -> dict:
    r = copy.deepcopy(EXAMPLE)
    r.update(changes)
    return r


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table.__table__)).scalar_one()


def test_issue_example_is_stored_with_its_signals(engine):
    assert ingest_records(engine, [EXAMPLE]) == 1
    with engine.connect() as conn:
        row = conn.execute(select(RecordRow.__table__)).mappings().one()
        sig = conn.execute(select(SignalRecord.__table__)).mappings().one()
        run = conn.execute(select(Run.__table__)).mappings().one()
    assert row["timestamp"] == dt.datetime(2025, 9, 10, 23, 20, tzinfo=dt.UTC)
    assert row["total_vehicles_passed"] == 104 and row["avg_speed"] == pytest.approx(28.3)
    assert sig["direction"] == "north" and sig["car"] == 78 and sig["signal_status"] == "GREEN"
    assert sig["record_id"] == row["id"]
    assert run["simulation_id"] == "SIM_20250910_001" and run["controller"] is None


def test_resending_replaces_and_never_duplicates(engine):
    ingest_records(engine, [EXAMPLE])
    four = record(signals=[dict(EXAMPLE["signals"][0], direction=d) for d in ("north", "south", "east", "west")])
    four["metrics"] = dict(EXAMPLE["metrics"], total_vehicles_passed=7)
    ingest_records(engine, [four])
    assert count(engine, RecordRow) == 1 and count(engine, SignalRecord) == 4
    back_to_one = record(signals=[dict(EXAMPLE["signals"][0], direction="east", vehicles_crossed=9)])
    ingest_records(engine, [back_to_one])
    with engine.connect() as conn:
        sigs = conn.execute(select(SignalRecord.direction, SignalRecord.vehicles_crossed)).all()
        passed = conn.execute(select(RecordRow.total_vehicles_passed)).scalar_one()
    assert sigs == [("east", 9)]
    assert passed == 104


def test_same_instant_in_another_zone_is_the_same_key(engine):
    ingest_records(engine, [EXAMPLE, record(timestamp="2025-09-11T01:20:00+02:00")])
    assert count(engine, RecordRow) == 1


def test_repeated_key_inside_one_batch_keeps_the_last(engine):
    last = record(metrics=dict(EXAMPLE["metrics"], emergency_overrides=3))
    assert ingest_records(engine, [EXAMPLE, last]) == 2
    with engine.connect() as conn:
        assert conn.execute(select(RecordRow.emergency_overrides)).scalar_one() == 3


@pytest.mark.parametrize("bad, field", [
    (record(timestamp="2025-09-10T23:20:00"), "timestamp"),
    (record(signals=[dict(EXAMPLE["signals"][0], direction="up")]), "signals[0].direction"),
    (record(signals=[dict(EXAMPLE["signals"][0], signal_status="BLUE")]), "signals[0].signal_status"),
    (record(metrics=dict(EXAMPLE["metrics"], total_vehicles_passed=-1)), "metrics.total_vehicles_passed"),
    (record(metrics=dict(EXAMPLE["metrics"], avg_speed="fast")), "metrics.avg_speed"),
    (record(signals=[dict(EXAMPLE["signals"][0], vehicle_counts={"car": -2})]),
     "signals[0].vehicle_counts.car"),
    (record(signals=[dict(EXAMPLE["signals"][0], vehicle_counts={"tank": 1})]),
     "signals[0].vehicle_counts.tank"),
    (record(signals=[]), "signals"),
    (record(signals=[EXAMPLE["signals"][0], EXAMPLE["signals"][0]]), "signals"),
    (record(extra_field=1), "extra_field"),
    (record(simulation_id=""), "simulation_id"),
])
@pytest.mark.slow
def test_bad_record_rolls_back_the_whole_batch(engine, bad, field):
    good = [record(intersection_id=f"INT_{i}") for i in range(20)]
    with pytest.raises(RecordError) as err:
        ingest_records(engine, good + [bad], chunk_records=7)  # earlier chunks were already written
    assert err.value.where == "record 20" and err.value.field == field
    assert str(err.value).startswith(f"record 20: {field}: ")
    assert count(engine, RecordRow) == 0 and count(engine, Run) == 0


def test_models_and_json_text_are_accepted(engine):
    model = IntersectionRecord.model_validate(record(intersection_id="A"))
    assert ingest_records(engine, [model, json.dumps(record(intersection_id="B"))]) == 2


def test_streams_in_chunks_and_reports_progress(engine):
    seen = []
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    records = (record(timestamp=(start + dt.timedelta(minutes=i)).isoformat(), intersection_id=f"I{i % 3}")
               for i in range(250))
    assert ingest_records(engine, records, chunk_records=100, on_progress=seen.append) == 250
    assert seen == [100, 100, 50]
    assert count(engine, RecordRow) == 250


def test_register_run_and_metrics_upsert(engine):
    started = dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC)
    register_run(engine, "S1", "corridor", "fixed", 1, {"duration_s": 3600}, started_at=started)
    register_run(engine, "S1", "corridor", "webster", 2, {"duration_s": 1800})
    write_run_metrics(engine, "S1", {"avg_delay_s": 30.5, "co2_g": 1000})
    write_run_metrics(engine, "S1", {"avg_delay_s": 31.0})
    with engine.connect() as conn:
        run = conn.execute(select(Run.__table__)).mappings().one()
        metrics = dict(conn.execute(select(RunMetric.name, RunMetric.value)).all())
    assert (run["controller"], run["seed"], run["config"]) == ("webster", 2, {"duration_s": 1800})
    assert metrics == {"avg_delay_s": 31.0, "co2_g": 1000.0}
    # records ingested later attach to the registered run
    ingest_records(engine, [record(simulation_id="S1")])
    assert count(engine, Run) == 1
    with pytest.raises(ValueError, match="metric co2_g=nan is not finite"):
        write_run_metrics(engine, "S1", {"co2_g": float("nan")})


def test_iter_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(EXAMPLE) + "\n\n" + "{not json\n")
    it = iter_jsonl(path)
    assert next(it).intersection_id == "INT_001"
    with pytest.raises(RecordError, match=rf"{path}:3: record: malformed JSON"):
        next(it)


def test_sqlite_uses_wal(tmp_path):
    from support.databases import isolated_database

    from signalwise.store import get_engine

    with isolated_database("sqlite", tmp_path) as url:
        with get_engine(url).connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_a_signal_id_as_long_as_sumo_makes_them_is_stored_and_answered(engine, db_url):
    """SUMO names a joined signal after its junctions (ingolstadt7: 166 characters; an OSM import's clusters run
    longer): its records and hi-res events are stored, on PostgreSQL as on SQLite, and the API finds them by it."""
    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings, bulk_insert_events, query_events

    signal = "cluster_" + "_".join(str(25_000_000 + k) for k in range(60))  # 547 characters
    assert ingest_records(engine, [record(intersection_id=signal)]) == 1
    assert bulk_insert_events(engine, [(dt.datetime(2025, 9, 10, 23, 20), signal, 1, 2)],
                              simulation_id="SIM_20250910_001") == 1
    assert [e.device_id for e in query_events(engine, device_id=signal)] == [signal]
    with engine.connect() as conn:
        assert conn.execute(select(RecordRow.intersection_id)).scalar_one() == signal
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        answer = client.get("/api/v1/analytics/wait-times", params={"intersection_id": signal})
        assert answer.status_code == 200, answer.text
        assert {item["intersection_id"] for item in answer.json()["items"]} == {signal}
