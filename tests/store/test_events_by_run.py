"""One run's events among many stored runs stamped on the same day: `runs_with_events` finds exactly the runs with
events of the device in the window (a skip over the stored simulation ids and a probe per run, not a DISTINCT over
every run's events), and the store has the index of events by run (0024) whether made at head or migrated.
bench/events_by_run.py measures the difference on 2.4 million events."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect

from signalwise.store import query_events
from signalwise.store.engine import downgrade, upgrade
from signalwise.store.events import bulk_insert_events, runs_with_events

DAY = dt.datetime(2025, 1, 6)
INDEX = "ix_hires_events_run_device_time"


def _store(engine) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Runs of one day: some with J1's events in the first quarter hour, some with J1's later only, some with J2's
    only, an imported log (''), and ids that sort around each other ('r-1' < 'r-10' < 'r-2')."""
    runs: dict[str, list[tuple]] = {}
    for k in range(1, 13):
        sim = f"r-{k}"
        if k % 3 == 0:
            rows = [(DAY + dt.timedelta(seconds=s), "J2", 1, 2) for s in range(0, 600, 7)]
        elif k % 3 == 1:
            rows = [(DAY + dt.timedelta(seconds=s), "J1", 82, k) for s in range(0, 600, 7)]
        else:
            rows = [(DAY + dt.timedelta(minutes=20, seconds=s), "J1", 81, 1) for s in range(0, 600, 7)]
        runs[sim] = rows
        bulk_insert_events(engine, rows, simulation_id=sim)
    runs[""] = [(DAY + dt.timedelta(minutes=5), "J1", 1, 4)]
    bulk_insert_events(engine, runs[""], simulation_id="")
    return runs


def _expected(runs: dict[str, list[tuple]], device: str | None, start, end) -> list[str]:  # noqa: ANN001
    return sorted(sim for sim, rows in runs.items()
                  if any((device is None or d == device) and (start is None or t >= start) and (end is None or t < end)
                         for t, d, _c, _p in rows))


def test_runs_with_events_finds_exactly_the_runs_with_the_devices_events_in_the_window(engine):
    runs = _store(engine)
    quarter = (DAY, DAY + dt.timedelta(minutes=15))
    for device in ("J1", "J2", "J9", None):
        for start, end in (quarter, (None, None), (DAY + dt.timedelta(minutes=25), None),
                           (None, DAY + dt.timedelta(seconds=1)), (DAY + dt.timedelta(hours=2), None)):
            assert runs_with_events(engine, device, start, end) == _expected(runs, device, start, end), \
                (device, start, end)
    assert runs_with_events(engine, "J1", *quarter) == ["", "r-1", "r-10", "r-4", "r-7"]
    # the rows one ATSPM call reads: the run's alone
    rows = query_events(engine, device_id="J1", start=quarter[0], end=quarter[1], simulation_id="r-4")
    assert len(rows) == len(runs["r-4"]) and {r[3] for r in rows} == {4}


def test_no_events_no_runs(engine):
    assert runs_with_events(engine) == []
    assert runs_with_events(engine, "J1", DAY, DAY + dt.timedelta(hours=1)) == []


def test_the_events_are_indexed_by_run_at_head_and_after_the_migration(engine):
    def indexed() -> dict[str, list[str]]:
        return {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("hires_events")}

    assert indexed().get(INDEX) == ["simulation_id", "device_id", "timestamp"]
    downgrade(engine, "0023")
    assert INDEX not in indexed()
    upgrade(engine)
    assert indexed().get(INDEX) == ["simulation_id", "device_id", "timestamp"]
