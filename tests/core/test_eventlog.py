"""The hi-res event log as ATSPM tools read it: TimeStamp,DeviceId,EventId,Parameter at 0.1 s."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from signalwise.core import (
    DEFAULT_START,
    EVENT_LOG_COLUMNS,
    EventCode,
    SignalEvent,
    format_timestamp,
    parse_timestamp,
    read_events,
    write_events,
)

HEADER = "TimeStamp,DeviceId,EventId,Parameter"
MORNING = dt.datetime(2024, 3, 11, 7, 0, 0)


def lines(path) -> list[str]:
    return path.read_text().splitlines()


# --- timestamps ----------------------------------------------------------------------------------


def test_default_start_is_a_naive_monday_midnight():
    assert DEFAULT_START == dt.datetime(2025, 1, 6)
    assert DEFAULT_START.weekday() == 0 and DEFAULT_START.tzinfo is None


@pytest.mark.parametrize(("time_s", "text"), [
    (0.0, "2025-01-06 00:00:00.0"),
    (0.1, "2025-01-06 00:00:00.1"),
    (25200.0, "2025-01-06 07:00:00.0"),
    (3661.26, "2025-01-06 01:01:01.3"),  # rounded to the tenth
    (59.97, "2025-01-06 00:01:00.0"),  # rounding carries into the seconds
    (86399.96, "2025-01-07 00:00:00.0"),  # and into the next day
    (-0.5, "2025-01-05 23:59:59.5"),  # before the start
])
def test_format_timestamp_is_seconds_after_start_at_a_tenth(time_s, text):
    assert format_timestamp(time_s) == text


def test_format_timestamp_counts_from_the_given_start():
    assert format_timestamp(90.4, MORNING) == "2024-03-11 07:01:30.4"


@pytest.mark.parametrize(("text", "time_s"), [
    ("2025-01-06 00:00:00.0", 0.0),
    ("2025-01-06 07:00:00.0", 25200.0),
    ("2025-01-06T07:00:00", 25200.0),  # ISO 'T' and no fraction, as other tools write it
    ("  2025-01-06 00:00:12.3 \n", 12.3),
    ("2025-01-06 00:00:12.345", 12.3),  # finer resolutions are read at a tenth
    ("2025-01-07 00:00:00.5", 86400.5),
    ("2025-01-05 23:59:59.0", -1.0),
])
def test_parse_timestamp_is_seconds_after_start(text, time_s):
    assert parse_timestamp(text) == pytest.approx(time_s, abs=1e-9)


def test_parse_timestamp_counts_from_the_given_start_and_inverts_format():
    assert parse_timestamp("2024-03-11 07:01:30.4", MORNING) == pytest.approx(90.4)
    for tenths in range(0, 200_000, 997):
        t = tenths / 10
        assert parse_timestamp(format_timestamp(t, MORNING), MORNING) == pytest.approx(t, abs=1e-9)


def test_parse_timestamp_refuses_text_that_is_no_timestamp():
    with pytest.raises(ValueError):
        parse_timestamp("yesterday at seven")


# --- writing and reading -------------------------------------------------------------------------


EVENTS = [
    SignalEvent(0.0, "X", EventCode.PHASE_BEGIN_GREEN, 1),
    SignalEvent(0.0, "X", EventCode.DETECTOR_ON, 3),
    SignalEvent(20.0, "X", EventCode.PHASE_BEGIN_YELLOW, 1),
    SignalEvent(23.5, "X", EventCode.PHASE_END_YELLOW, 1),
    SignalEvent(23.5, "X", EventCode.PHASE_BEGIN_RED_CLEARANCE, 1),
    SignalEvent(25.5, "X", EventCode.PHASE_BEGIN_GREEN, 2),
    SignalEvent(12.0, "A7", EventCode.PREEMPT_CALL_ON, 1),
    SignalEvent(12.0, "A7", EventCode.PHASE_BEGIN_GREEN, 4),
]


def test_write_then_read_gives_the_events_back_in_log_order(tmp_path):
    path = tmp_path / "events.csv"
    assert write_events(path, EVENTS) == len(EVENTS)
    assert list(read_events(path)) == sorted(EVENTS)


def test_written_file_is_the_atspm_csv(tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, EVENTS)
    assert EVENT_LOG_COLUMNS == ("TimeStamp", "DeviceId", "EventId", "Parameter")
    assert lines(path) == [
        HEADER,
        "2025-01-06 00:00:00.0,X,1,1",
        "2025-01-06 00:00:00.0,X,82,3",
        "2025-01-06 00:00:12.0,A7,1,4",
        "2025-01-06 00:00:12.0,A7,102,1",
        "2025-01-06 00:00:20.0,X,8,1",
        "2025-01-06 00:00:23.5,X,9,1",
        "2025-01-06 00:00:23.5,X,10,1",
        "2025-01-06 00:00:25.5,X,1,2",
    ]


def test_rows_are_ordered_by_time_then_device_then_code_then_parameter_whatever_the_input_order(tmp_path):
    events = [SignalEvent(t, dev, code, par) for t in (5.0, 1.0, 3.0) for dev in ("b", "a")
              for code in (82, 1, 8) for par in (2, 1)]
    random.Random(7).shuffle(events)
    path = tmp_path / "events.csv"
    write_events(path, events)
    keys = [(e.time_s, e.device_id, e.event_code, e.parameter) for e in read_events(path)]
    assert keys == sorted(keys)
    assert keys[:3] == [(1.0, "a", 1, 1), (1.0, "a", 1, 2), (1.0, "a", 8, 1)]
    assert len(keys) == 36


def test_times_are_written_at_a_tenth_of_a_second(tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, [SignalEvent(12.34, "X", 1, 1), SignalEvent(12.96, "X", 8, 1)])
    assert lines(path)[1:] == ["2025-01-06 00:00:12.3,X,1,1", "2025-01-06 00:00:13.0,X,8,1"]
    assert [e.time_s for e in read_events(path)] == [12.3, 13.0]


def test_write_and_read_count_from_the_given_start(tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, [SignalEvent(90.4, "X", 1, 2)], start=MORNING)
    assert lines(path)[1] == "2024-03-11 07:01:30.4,X,1,2"
    assert list(read_events(path, start=MORNING)) == [SignalEvent(90.4, "X", 1, 2)]
    # read against another start, the same moment is another simulation time
    assert next(read_events(path)).time_s == pytest.approx((MORNING - DEFAULT_START).total_seconds() + 90.4)


def test_device_ids_stay_text_and_codes_and_parameters_are_ints(tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, [SignalEvent(1.0, "0042", EventCode.PED_BEGIN_WALK, 2)])
    assert lines(path)[1] == "2025-01-06 00:00:01.0,0042,21,2"  # the code's number, not its enum name
    (e,) = read_events(path)
    assert e.device_id == "0042"
    assert type(e.event_code) is int and e.event_code == 21
    assert type(e.parameter) is int and e.parameter == 2


def test_no_events_still_write_the_header(tmp_path):
    path = tmp_path / "events.csv"
    assert write_events(path, iter(())) == 0
    assert lines(path) == [HEADER]
    assert list(read_events(path)) == []


def test_write_accepts_any_iterable_once(tmp_path):
    path = tmp_path / "events.csv"
    assert write_events(path, (e for e in EVENTS)) == len(EVENTS)
    assert len(list(read_events(path))) == len(EVENTS)


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, EVENTS)
    write_events(path, EVENTS[:1])
    assert list(read_events(path)) == EVENTS[:1]


def test_read_takes_columns_in_any_order_extra_columns_and_other_timestamp_styles(tmp_path):
    path = tmp_path / "other_tool.csv"
    path.write_text("EventId,Parameter,DeviceId,TimeStamp,Comment\n"
                    "1,2,7115,2025-01-06T07:00:00,first\n"
                    "8,2,7115,2025-01-06 07:00:31.123456,\n\n")
    assert list(read_events(path)) == [SignalEvent(25200.0, "7115", 1, 2), SignalEvent(25231.1, "7115", 8, 2)]


# --- bad input -----------------------------------------------------------------------------------


def test_a_log_without_the_columns_says_which_are_missing(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("TimeStamp,Device,EventId\n2025-01-06 00:00:00.0,X,1\n")
    with pytest.raises(ValueError) as err:
        list(read_events(path))
    assert str(path) in str(err.value)
    assert "['DeviceId', 'Parameter']" in str(err.value)


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="lacks columns"):
        list(read_events(path))


@pytest.mark.parametrize("bad_row", [
    "2025-01-06 00:00:01.0,X,green,1",  # code not a number
    "2025-01-06 00:00:01.0,X,1,",  # no parameter
    "2025-01-06 00:00:01.0,X,1",  # short row
    "01/06/2025 00:00:01,X,1,1",  # not an ISO timestamp
    "2025-01-06 00:00:01.0+02:00,X,1,1",  # aware timestamp against a naive start
])
def test_a_bad_row_is_reported_with_the_file_and_line(tmp_path, bad_row):
    path = tmp_path / "events.csv"
    path.write_text(f"{HEADER}\n2025-01-06 00:00:00.0,X,1,1\n{bad_row}\n")
    with pytest.raises(ValueError) as err:
        list(read_events(path))
    message = str(err.value)
    assert message.startswith(f"{path}:3: bad event row"), message
    assert "\n" not in message


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_events(tmp_path / "nope.csv"))


def test_rows_never_go_back_in_time_with_a_0_05_s_step(tmp_path):
    path = tmp_path / "events.csv"
    # 0.1 and 0.15 both sort as 0.1 s, so code 1 goes first; but 0.15 is written as 0.2 s
    write_events(path, [SignalEvent(0.1, "X", EventCode.PHASE_BEGIN_YELLOW, 1),
                        SignalEvent(0.15, "X", EventCode.PHASE_BEGIN_GREEN, 2)])
    times = [e.time_s for e in read_events(path)]
    assert times == sorted(times), lines(path)


@pytest.mark.parametrize("start", [DEFAULT_START, MORNING, dt.datetime(2024, 2, 28, 23, 59, 58),
                                   dt.datetime(2025, 12, 31, 13, 7, 9)])
def test_written_timestamps_are_format_timestamp_of_each_event_across_days_and_before_the_start(tmp_path, start):
    rng = random.Random(7)
    times = sorted({rng.randint(-200_000, 3_000_000) / 10 for _ in range(3000)} | {-0.1, 0.0, 86399.9, 86400.0})
    write_events(tmp_path / "e.csv", [SignalEvent(t, "d", 1, 1) for t in times], start)
    stamps = [line.split(",")[0] for line in lines(tmp_path / "e.csv")[1:]]
    assert stamps == [format_timestamp(t, start) for t in times]
