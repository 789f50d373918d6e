"""A late write that then succeeds leaves the live store writer healthy.

A write the database takes longer than `write_late_s` to answer is marked late by the spooler's watch (`db_ok`
False, "has not answered a write for 1 s"). Once it succeeds, that mark is history (`previous_error`), never the
state in force: the watch's round may land between the write's success and the end of its flight (it runs every
0.1 s, and a loaded machine stretches that window), and must not mark late a write that is done, a mark that
would then stay (no `db_ok`, a `store_unavailable` alert) until the next write.

A real SQLite store; another connection holds its write lock for longer than `write_late_s`. The watch's round is
made to land in that window by running it, as the spooler does, just before the flight ends.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from support.waiting import until

from signalwise.store.engine import dispose_engines
from signalwise.store.live import WRITE_LATE_S, LiveStoreWriter

SIM = "LATE_THEN_WRITTEN"
STARTED = dt.datetime(2025, 9, 10, 8, 0, tzinfo=dt.UTC)


def record(i: int) -> dict:
    return {"simulation_id": SIM, "intersection_id": "J1", "timestamp": STARTED + dt.timedelta(minutes=i),
            "signals": [{"direction": "north", "vehicle_counts": {"car": 3}, "emergency_vehicle_present": False,
                         "signal_status": "GREEN", "signal_timer": 10.0, "vehicles_crossed": 3, "avg_wait_time": 4.5,
                         "green_time_allocated": 20.0}],
            "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": 4.5, "throughput": 0.5,
                        "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}}


def test_a_late_write_that_succeeds_leaves_no_late_mark_in_force(tmp_path):
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    # the busy timeout outlasts the lock held below: the write waits, late, and then succeeds
    writer = LiveStoreWriter(url, SIM, tmp_path / "buffer", 10_000, busy_timeout_s=30, write_timeout_s=60)
    end_flight = writer._end_flight

    def watch_then_end() -> None:  # the spooler's round, landing after the write's success, before its flight ends
        writer._watch_flight()
        end_flight()

    writer._end_flight = watch_then_end
    try:
        writer.put_run("corridor", "max-pressure", 7, {}, STARTED)
        writer.put_records([record(0)])
        assert writer.flush(30), writer.stats()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            writer.put_records([record(1)])
            assert until(lambda: writer.stats()["db_ok"] is False, 10 * WRITE_LATE_S)  # late: the watch said so
            late = writer.stats()
        finally:
            holder.rollback()
            holder.close()
        assert writer.flush(30), writer.stats()
        stats = writer.stats()
    finally:
        writer.close(5)
        dispose_engines(url)
    assert "has not answered a write" in late["last_error"], late
    assert stats["db_ok"] is True and stats["last_error"] is None and stats["unavailable_s"] == 0.0, stats
    assert "has not answered a write" in stats["previous_error"] and stats["recovered_at"], stats
    assert stats["written"] == 3 and stats["failures"] == 0, stats
