"""Per-plan spans of a window of the stored log: the plan in force at the window's start is the device's last
131 before it, read from the store, so an engineer asking for 08:00-09:00 sees the plan set at 06:00."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from atspm_cases import make_events
from fastapi.testclient import TestClient

from signalwise.analytics.atspm import compute_all, events_from_frame, plan_spans
from signalwise.store import Settings, bulk_insert_events, get_engine

DAY = dt.datetime(2025, 1, 6)
START, END = DAY.replace(hour=8), DAY.replace(hour=9)


def at(hour, minute=0, second=0):
    return DAY.replace(hour=hour, minute=minute, second=second)


def peds(device, first, last):
    """A pedestrian every 10 minutes from `first` to `last`: push, walk 30 s later, don't walk 7 s after."""
    rows, t = [], first
    while t <= last:
        s = dt.timedelta(seconds=1)
        rows += [(t, device, 90, 2), (t + 30 * s, device, 21, 2), (t + 37 * s, device, 22, 2)]
        t += dt.timedelta(minutes=10)
    return rows


def stored_log():
    """A: plan 3 at 06:00, plan 5 at 08:30. B: its only 131 (plan 7) at 08:20. C: no 131 in its run (a 131 of
    another run at 07:00 says nothing about it). Pedestrians at 5 past every 10 minutes, 06:05 to 09:25; each
    device's last event in 08:00-09:00 is a detector-on at 08:59:59."""
    rows = [(at(6), "A", 131, 3), (at(8, 30), "A", 131, 5), (at(8, 20), "B", 131, 7)]
    # A's plans with their cycles and offsets, as a field controller logs them: plan 3 a 300 s cycle (a 132 of 255
    # and a 156 of 45) at offset 20 s, plan 5 90 s at 12 s; B's plan 7 without any
    rows += [(at(6), "A", 132, 255), (at(6), "A", 156, 45), (at(6), "A", 133, 20),
             (at(8, 30), "A", 132, 90), (at(8, 30), "A", 133, 12)]
    for d in "ABC":
        rows += peds(d, at(6, 5), at(9, 25)) + [(at(8, 59, 59), d, 82, 9)]
    return rows


@pytest.fixture
def client(db_url):
    engine = get_engine(db_url)
    bulk_insert_events(engine, stored_log())
    bulk_insert_events(engine, [(at(7), "C", 131, 9)], simulation_id="other-run")
    from signalwise.api import create_app

    return TestClient(create_app(Settings(database_url=db_url, cache_ttl_s=0)))


def spans(body):
    """{device: [(start, end, plan name, pedestrians)]} from the API's plans rows."""
    out: dict = {}
    for r in body["rows"]:
        out.setdefault(r["DeviceId"], []).append((r["Start"], r["End"], r["PlanName"], r["Ped_Count"]))
    return out


@pytest.mark.slow
def test_a_window_starts_in_the_plan_set_before_it(client):
    r = client.get("/api/v1/atspm/plans", params={"start": START.isoformat(), "end": END.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["simulation_id"] == ""
    got = spans(r.json())
    # walks at 08:05:30, 08:15:30, 08:25:30 under plan 3; 08:35:30, 08:45:30, 08:55:30 under plan 5. The span
    # starts at the window's start, not at the device's first event in it (08:05)
    assert got["A"] == [("2025-01-06T08:00:00", "2025-01-06T08:30:00", "Plan 3", 3),
                        ("2025-01-06T08:30:00", "2025-01-06T08:59:59", "Plan 5", 3)]
    # only a 131 after the start: unknown from the device's first event in the window, as in a whole log
    assert got["B"] == [("2025-01-06T08:05:00", "2025-01-06T08:20:00", "unknown", 2),
                        ("2025-01-06T08:20:00", "2025-01-06T08:59:59", "Plan 7", 4)]
    # no 131 of its run: unknown throughout (another run's 131 is not its plan)
    assert got["C"] == [("2025-01-06T08:05:00", "2025-01-06T08:59:59", "unknown", 6)]
    one = client.get("/api/v1/atspm/plans", params={"start": START.isoformat(), "end": END.isoformat(),
                                                    "device": "A"}).json()
    assert spans(one) == {"A": got["A"]}


def test_a_window_after_the_last_change_is_one_span_of_that_plan(client):
    r = client.get("/api/v1/atspm/plans", params={"start": "2025-01-06T08:45:00", "end": END.isoformat(),
                                                  "device": "A"})
    assert spans(r.json()) == {"A": [("2025-01-06T08:45:00", "2025-01-06T08:59:59", "Plan 5", 2)]}


def test_a_plan_held_from_before_the_window_keeps_its_cycle_and_offset(client):
    """The plan in force at the window's start is named with the cycle and offset its 132 (and 156) and 133 gave
    before the window, not left without them because the window cut them off."""
    def timings(start):
        r = client.get("/api/v1/atspm/plans", params={"start": start, "end": END.isoformat()})
        assert r.status_code == 200, r.text
        return {(row["DeviceId"], row["Start"], row["Cycle_s"], row["Offset_s"]) for row in r.json()["rows"]}

    got = timings(START.isoformat())
    assert ("A", "2025-01-06T08:00:00", 300, 20) in got and ("A", "2025-01-06T08:30:00", 90, 12) in got
    assert ("B", "2025-01-06T08:20:00", None, None) in got  # its plan logged no cycle or offset
    assert ("A", "2025-01-06T08:45:00", 90, 12) in timings("2025-01-06T08:45:00")


def test_the_window_leaves_the_other_measures_alone(client):
    """The plan in force is an input of the per-plan table only: no event is added to the log the others read."""
    params = {"start": START.isoformat(), "end": END.isoformat(), "device": "A", "bin": 60}
    rows = client.get("/api/v1/atspm/ped_delay", params=params).json()["rows"]
    assert sum(r["Count"] for r in rows) == 6
    assert client.get("/api/v1/atspm/plans", params=params).json()["warnings"] == \
        client.get("/api/v1/atspm/ped_delay", params=params).json()["warnings"]


def test_the_latest_131_per_device_comes_from_one_bounded_lookup(db_url):
    from signalwise.store.events import last_parameters

    engine = get_engine(db_url)
    bulk_insert_events(engine, stored_log() + [(at(7), "A", 131, 4), (at(7), "A", 131, 2), (START, "B", 131, 8)])
    # of two 131s at one instant the highest plan; one at `before` itself is not before it
    assert last_parameters(engine, ["A", "B", "C"], 131, START) == {"A": 4}
    assert last_parameters(engine, ["A", "B"], 131, at(8, 10)) == {"A": 4, "B": 8}
    assert last_parameters(engine, ["A", "B"], 131, at(8, 30, 1)) == {"A": 5, "B": 7}
    assert last_parameters(engine, ["C"], 131, at(9), simulation_id="other-run") == {}
    assert last_parameters(engine, [], 131, START) == {}


def _log(rows):
    """(seconds after 08:00, device, code, parameter) -> a log that starts at the window's start or later."""
    return events_from_frame(make_events(rows, start=START))


def test_plans_in_force_start_each_devices_first_span_at_the_window_start():
    from signalwise.analytics.atspm.plans import PlansInForce

    start_us = int(np.datetime64(START, "us").astype(np.int64))
    log = _log([(60, "A", 90, 2), (90, "A", 21, 2), (1800, "A", 131, 5), (1900, "A", 90, 2), (1930, "A", 21, 2),
                (3599, "A", 82, 9), (300, "B", 90, 2), (1200, "B", 131, 7), (3599, "B", 82, 9),
                (0, "C", 131, 1), (3599, "C", 82, 9), (600, "D", 82, 9), (3599, "D", 82, 9)])
    # A ran plan 3 at the start, B is not in the mapping, C has a 131 at the start itself (it holds), D none;
    # E has no event in the window
    in_force = PlansInForce(start_us, {"A": 3, "C": 6, "E": 2})
    s = 1_000_000
    name = {i: d for i, d in enumerate(log.devices)}
    got = [(name[d], (a - start_us) // s, (b - start_us) // s, p) for d, a, b, p in plan_spans(log, in_force)]
    assert got == [("A", 0, 1800, 3), ("A", 1800, 3599, 5), ("B", 300, 1200, None), ("B", 1200, 3599, 7),
                   ("C", 0, 3599, 1), ("D", 600, 3599, None)]
    # without it, the same log reads unknown before each first 131, from the device's first event
    assert [(name[d], p) for d, _, _, p in plan_spans(log)][:2] == [("A", None), ("A", 5)]
    table = compute_all(log, None, only=("plans",), plans_in_force=in_force).tables["plans"]
    a = table[table["DeviceId"] == "A"]
    assert a[["Start", "PlanName", "Ped_Count"]].values.tolist() == [
        [pd.Timestamp(START), "Plan 3", 1], [pd.Timestamp(START) + pd.Timedelta(seconds=1800), "Plan 5", 1]]
    assert compute_all(log, None, only=("plans", "ped_delay")).tables["ped_delay"].equals(
        compute_all(log, None, only=("plans", "ped_delay"), plans_in_force=in_force).tables["ped_delay"])


def test_plans_in_force_are_for_a_log_cut_at_the_window_start():
    from signalwise.analytics.atspm.plans import PlansInForce

    log = _log([(0, "A", 82, 9), (10, "A", 82, 9)])
    late = int(np.datetime64(START + dt.timedelta(seconds=5), "us").astype(np.int64))
    with pytest.raises(ValueError, match="before the window's start"):
        plan_spans(log, PlansInForce(late, {"A": 3}))
