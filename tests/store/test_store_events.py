import datetime as dt

import pytest

from signalwise.store import bulk_insert_events, query_events

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_events_come_back_sorted_by_time_with_filters(engine):
    events = [
        (at(5.1), "INT_2", 82, 3),
        (at(0.0), "INT_1", 1, 2),
        (at(3.5), "INT_1", 8, 2),
        (at(4.0), "INT_1", 82, 5),
        (at(1.2), "INT_2", 1, 4),
    ]
    assert bulk_insert_events(engine, events) == 5
    rows = query_events(engine)
    assert [r.timestamp for r in rows] == sorted(r.timestamp for r in rows)
    assert rows[0] == (at(0.0), "INT_1", 1, 2)
    only_1 = query_events(engine, device_id="INT_1")
    assert [(r.event_code, r.parameter) for r in only_1] == [(1, 2), (8, 2), (82, 5)]
    window = query_events(engine, start=at(1.2), end=at(4.0))
    assert [r.timestamp for r in window] == [at(1.2), at(3.5)]  # start inclusive, end exclusive
    detectors = query_events(engine, codes=[82])
    assert {r.device_id for r in detectors} == {"INT_1", "INT_2"}
    both = query_events(engine, device_id=["INT_1", "INT_2"], codes=[1])
    assert len(both) == 2


def test_exact_duplicates_are_ignored_but_near_duplicates_kept(engine):
    first = [(at(0.0), "D1", 1, 2), (at(0.1), "D1", 8, 2)]
    assert bulk_insert_events(engine, first) == 2
    again = [(at(0.0), "D1", 1, 2), (at(0.0), "D1", 1, 3), (at(0.0), "D1", 1, 3)]
    assert bulk_insert_events(engine, again) == 1  # one new row, duplicate inside the batch too
    assert len(query_events(engine, device_id="D1")) == 3


def test_subsecond_precision_survives(engine):
    bulk_insert_events(engine, [(at(0.1), "D", 82, 1), (at(0.2), "D", 81, 1)])
    rows = query_events(engine, device_id="D")
    assert [r.timestamp.microsecond for r in rows] == [100_000, 200_000]
    assert rows[0].timestamp.tzinfo is None


def test_simulation_tag_filters_and_separates(engine):
    bulk_insert_events(engine, [(at(0), "D", 1, 1)], simulation_id="SIM_A")
    bulk_insert_events(engine, [(at(0), "D", 1, 1)], simulation_id="SIM_B")
    assert len(query_events(engine, simulation_id="SIM_A")) == 1
    assert len(query_events(engine, device_id="D")) == 2


def test_bad_row_writes_nothing(engine):
    good = [(at(i), "D", 1, 1) for i in range(10)]
    with pytest.raises(ValueError, match="event 10: timestamp .* has a time zone"):
        bulk_insert_events(engine, good + [(at(11).replace(tzinfo=dt.UTC), "D", 1, 1)])
    with pytest.raises(ValueError, match="event 1: event_code 'x'"):
        bulk_insert_events(engine, [good[0], (at(1), "D", "x", 1)])
    assert query_events(engine) == []


@pytest.mark.parametrize("parameter", [2**31, -(2**31) - 1])
def test_a_parameter_outside_the_column_is_refused_alike_on_both_databases(engine, parameter):
    """SQLite would store it and PostgreSQL refuse it mid-COPY with the driver's error: both refuse it here."""
    with pytest.raises(ValueError, match=f"event 1: parameter {parameter} is not an integer in"):
        bulk_insert_events(engine, [(at(0), "D", 1, 1), (at(1), "D", 1, parameter)])
    assert query_events(engine) == []
    assert bulk_insert_events(engine, [(at(0), "D", 1, 2**31 - 1), (at(1), "D", 1, -(2**31))]) == 2


def test_large_batch_crosses_chunks(engine, monkeypatch):
    import signalwise.store.events as events_module

    monkeypatch.setattr(events_module, "CHUNK_ROWS", 1000)
    events = ((at(i / 10), f"D{i % 3}", 82 if i % 2 else 81, i % 8) for i in range(3500))
    assert bulk_insert_events(engine, events) == 3500
    assert len(query_events(engine, device_id="D0")) == 1167


@pytest.mark.parametrize("tag", ["x" * 129, "run\x00"])
def test_a_simulation_id_the_column_cannot_hold_is_refused_alike_on_both_databases(engine, tag):
    with pytest.raises(ValueError, match="must be at most 128 characters, none NUL"):
        bulk_insert_events(engine, [(at(0), "D", 1, 1)], simulation_id=tag)
    with pytest.raises(ValueError, match="event 0: device_id .* must be 1..1000 characters, none NUL"):
        bulk_insert_events(engine, [(at(0), "D\x00", 1, 1)])
    with pytest.raises(ValueError, match="event 0: device_id .* must be 1..1000 characters, none NUL"):
        bulk_insert_events(engine, [(at(0), "D" * 1001, 1, 1)])
    assert query_events(engine) == []
    assert bulk_insert_events(engine, [(at(0), "D", 1, 1)], simulation_id="x" * 128) == 1
