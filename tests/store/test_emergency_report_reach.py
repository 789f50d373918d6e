"""The emergency report gives a run's emergency-vehicle delay only at the intersections an emergency vehicle reached.

The delay is a run-wide figure (`emergency_delay_s` of the run's metrics); on the row of an intersection with no
override granted and no interval with an emergency vehicle present it would read as that intersection's, so it is
null there. `overall` keeps the run's figure.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from signalwise.store import ingest_records, register_run, write_run_metrics
from signalwise.store.queries import Filters, emergency_report

T0 = dt.datetime(2025, 9, 10, 8, tzinfo=dt.UTC)
SIGNAL = {"direction": "north", "vehicle_counts": {"car": 5, "bus": 0, "truck": 0, "bike": 0, "rickshaw": 0},
          "emergency_vehicle_present": False, "signal_status": "GREEN", "signal_timer": 18, "vehicles_crossed": 5,
          "avg_wait_time": 12.5, "green_time_allocated": 20}
METRICS = {"total_vehicles_passed": 5, "avg_wait_time_all_sides": 12.5, "throughput": 0.9, "avg_speed": 28.3,
           "fuel_saved": 0.0, "co2_saved": 0.0, "emergency_overrides": 0}


def record(inter: str, minute: int, present=False, overrides=0) -> dict:
    return {"simulation_id": "run", "timestamp": (T0 + dt.timedelta(minutes=minute)).isoformat(),
            "intersection_id": inter, "signals": [dict(copy.deepcopy(SIGNAL), emergency_vehicle_present=present)],
            "metrics": dict(METRICS, emergency_overrides=overrides)}


@pytest.fixture
def stored(engine):
    register_run(engine, "run", "corridor", "actuated", 1, {"seed": 1})
    write_run_metrics(engine, "run", {"emergency_delay_s": 39.43})
    ingest_records(engine, [
        record("J1", 0, overrides=1), record("J1", 1, present=True),  # preempted here
        record("J2", 0, present=True), record("J2", 1),  # present, no override (preemption off, say)
        record("J4", 0), record("J4", 1),  # no emergency vehicle came here
    ])
    return engine


@pytest.mark.parametrize("timed", [False, True])
def test_the_run_wide_delay_is_given_only_where_an_emergency_vehicle_came(stored, timed):
    f = Filters(start=T0 - dt.timedelta(hours=1), end=T0 + dt.timedelta(hours=1)) if timed else Filters()
    total, items, overall = emergency_report(stored, f, 50, 0)
    rows = {r["intersection_id"]: r for r in items}
    assert total == 3 and set(rows) == {"J1", "J2", "J4"}
    assert rows["J1"]["emergency_delay_s"] == pytest.approx(39.43)
    assert rows["J2"]["emergency_delay_s"] == pytest.approx(39.43)
    assert (rows["J4"]["emergency_overrides"], rows["J4"]["intervals_with_emergency_vehicle"]) == (0, 0)
    assert rows["J4"]["emergency_delay_s"] is None
    assert overall["emergency_delay_s"] == {"run": pytest.approx(39.43)}
    assert overall["emergency_overrides"] == 1  # every row's, not the page's last row's (J4: 0)
