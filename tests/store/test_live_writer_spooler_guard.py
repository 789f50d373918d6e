"""The live store writer's spooler thread survives what would otherwise end it: the copy of the writer's connections
that a cut takes while the writer opens another one, and any unexpected error in one of its rounds (logged, shown
as `last_error`; the spilling goes on). A database that is away (a SQLite file in a directory that does not exist)
keeps every row in the writer, so spilling is what keeps them safe."""

import threading
import time

from signalwise.store.live import LiveStoreWriter

FAST = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "busy_timeout_s": 0.2, "connect_timeout_s": 2}


def _record(i: int) -> dict:
    return {"simulation_id": "SPOOL", "intersection_id": "J1", "timestamp": f"2025-09-10T08:{i % 60:02d}:00Z",
            "signals": [], "metrics": {"total_vehicles_passed": 3, "avg_wait_time_all_sides": 4.5, "throughput": 0.5,
                                       "avg_speed": 20.0, "fuel_saved": 0.0, "co2_saved": 0.0,
                                       "emergency_overrides": 0}}


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Conn:  # a DB-API connection as far as the cut looks: weak-referenceable, and no libpq socket
    pass


def test_copying_the_connections_while_one_is_added_does_not_raise(tmp_path):
    writer = LiveStoreWriter(f"sqlite:///{tmp_path}/absent/x.db", "SPOOL", tmp_path / "buf", **FAST)
    held = [_Conn() for _ in range(4_000)]
    for conn in held[:2_000]:
        writer._conns.add(conn)
    stop = threading.Event()

    def add() -> None:  # the writer thread opening connections while the spooler cuts them
        i = 2_000
        while not stop.is_set():
            writer._conns.add(held[i % len(held)])
            writer._conns.discard(held[(i + 7) % len(held)])
            i += 1

    adder = threading.Thread(target=add)
    adder.start()
    try:
        for _ in range(300):
            writer._cut_connections()  # raised "Set changed size during iteration" on a thread of its own
    finally:
        stop.set()
        adder.join()
        writer.close(0.5)


def test_the_spooler_carries_on_after_an_unexpected_error(tmp_path, caplog):
    writer = LiveStoreWriter(f"sqlite:///{tmp_path}/absent/x.db", "SPOOL", tmp_path / "buf", memory_rows=10, **FAST)
    watch, failed = writer._watch_flight, []

    def fails_once() -> bool:  # one round of the spooler meets a bug
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug in the watch")
        return watch()

    writer._watch_flight = fails_once
    try:
        _wait(lambda: failed, 5, "the spooler's failed round")
        time.sleep(0.3)
        assert writer._spooler.is_alive()
        writer.put_records([_record(i) for i in range(50)])
        # the database is away: the rows the loop hands over go to the disk buffer, as before the failure
        _wait(lambda: writer.stats()["buffered_on_disk"] > 0, 10, "rows spilled to disk")
        assert "store spooler failed" in caplog.text
        stats = writer.stats()
        assert "spooler failed: a bug in the watch" in (stats["previous_error"] or "") + (stats["last_error"] or "")
        assert stats["db_ok"] is False
    finally:
        writer.close(0.5)
