"""A read-only database at the newest schema is checked, never created into; its rows wait and drain later."""

import time
from urllib.parse import quote

from sqlalchemy import text

from signalwise.store.engine import create_store_engine, upgrade
from signalwise.store.live import LiveStoreWriter, drain

FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}
SIM = "LIVE_RO"


def _record(i: int) -> dict:
    return {"simulation_id": SIM, "intersection_id": "J1", "timestamp": f"2025-09-10T08:0{i}:00Z",
            "signals": [{"direction": "north", "vehicle_counts": {"car": 3}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 10.0, "vehicles_crossed": 3,
                         "avg_wait_time": 4.5, "green_time_allocated": 20.0}],
            "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": 4.5, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}


def _read_only(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return url + quote(" -cdefault_transaction_read_only=on")  # the test URL ends with options=-csearch_path...


def test_a_read_only_database_at_the_newest_schema_is_not_written_into_and_its_rows_wait_then_drain(db_url, tmp_path):
    engine = create_store_engine(db_url)
    upgrade(engine)  # at the newest schema: only checked from now on
    buffer = tmp_path / "run" / "store-buffer"
    writer = LiveStoreWriter(_read_only(db_url), SIM, buffer, 10_000, **FAST)
    writer.put_run("single", "max-pressure", 1, {"run_dir": str(tmp_path / "run")})
    writer.put_records([_record(i) for i in range(3)])
    deadline = time.monotonic() + 10
    while writer.stats()["failures"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    error = writer.stats()["last_error"]
    assert "is read-only" in error and "nothing is written there" in error, error
    assert "CREATE" not in error and "readonly database" not in error  # nothing was tried
    writer.close(0.3)
    summary = writer.summary()
    assert summary["waiting_rows"] == 4 and summary["buffer_dir"] == str(buffer) and summary["written"] == 0
    assert list(buffer.glob("*.jsonl"))
    assert "signalwise db drain" in summary["drain"] and "4 row(s) were not stored" in \
        writer.waiting_message()

    stored = drain(tmp_path / "run", db_url, timeout_s=20)  # the database takes writes: the buffer empties
    assert stored["waiting_rows"] == 0 and stored["written"] == 4 and not list(buffer.glob("*.jsonl"))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT scenario, controller, seed FROM runs WHERE simulation_id = :s"),
                           {"s": SIM}).one()
        assert tuple(row) == ("single", "max-pressure", 1)
        assert conn.execute(text("SELECT count(*) FROM intersection_records")).scalar_one() == 3
    engine.dispose()
