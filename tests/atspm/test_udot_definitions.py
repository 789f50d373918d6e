"""Where our measures follow UDOT ATSPM, and UDOT ATSPM's own exports: hand-made logs, computed by hand."""

import datetime as dt

import numpy as np
import pytest
from atspm_cases import make_config, make_events

from signalwise.analytics.atspm import EventLogError, detectors_from_frame, events_from_frame, read_event_log
from signalwise.analytics.atspm import cycles as C
from signalwise.analytics.atspm import measures as M

# --------------------------------------------------------------------------- pedestrian delay (UDOT's PedPhase)


def ped(rows):
    return C.ped_delay(events_from_frame(make_events(rows)))


def test_a_push_during_flashing_dont_walk_waits_for_the_next_walk():
    # the reviewer's ped_min.csv: walk 15-22 s, push at 30 s (90 and 45 together), clearance ends 40 s, next walk 115 s
    rows = [(15, "1", 21, 2), (22, "1", 22, 2), (30, "1", 90, 2), (30, "1", 45, 2), (40, "1", 23, 2),
            (115, "1", 21, 2), (122, "1", 22, 2), (140, "1", 23, 2)]
    out = ped(rows)
    assert out[["PedDelay_s", "Method"]].values.tolist() == [[85.0, "call"]]  # one pedestrian, not two
    assert out["TimeStamp"].iloc[0] == make_events([(115, "1", 1, 1)])["TimeStamp"].iloc[0]


def test_a_push_during_the_walk_is_no_delay_and_repeated_pushes_are_one_pedestrian():
    rows = [(0, "1", 21, 2), (7, "1", 22, 2), (3, "1", 90, 2),  # pushes during the walk: served at once
            (20, "1", 90, 2), (21, "1", 90, 2), (25, "1", 90, 2),  # one pedestrian pushing three times in don't-walk
            (60, "1", 21, 2), (67, "1", 22, 2)]
    assert ped(rows)["PedDelay_s"].tolist() == [0.0, 40.0]


def test_registered_calls_count_only_where_no_push_button_is_logged():
    # phase 2 logs 90s: its 45 (registered a moment after the walk ended) is not another pedestrian;
    # phase 4 logs only 45s: they are its calls
    rows = [(0, "1", 21, 2), (3, "1", 90, 2), (7, "1", 22, 2), (8, "1", 45, 2), (60, "1", 21, 2), (67, "1", 22, 2),
            (0, "1", 21, 4), (7, "1", 22, 4), (30, "1", 45, 4), (60, "1", 21, 4), (67, "1", 22, 4)]
    out = ped(rows)
    assert out[["Phase", "PedDelay_s"]].values.tolist() == [[2, 0.0], [4, 30.0]]


def test_a_push_with_no_walk_logged_between_clearances_is_left_out_and_a_first_push_counts():
    rows = [(2, "1", 90, 2), (10, "1", 21, 2), (17, "1", 22, 2),  # before the first walk: 8 s
            (30, "1", 90, 2), (80, "1", 22, 2),  # 22, push, 22: the walk that served it is not in the log
            (100, "1", 90, 2)]  # nothing after it: not served yet
    assert ped(rows)["PedDelay_s"].tolist() == [8.0]


def test_the_ped_delay_table_shows_the_pedestrian_who_pushed_in_flashing_dont_walk(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    log = tmp_path / "ped_min.csv"
    log.write_text("SignalID,Timestamp,EventCode,EventParam\n" + "".join(
        f"1001,2024-06-04 07:{m}.000,{c},2\n" for m, c in (
            ("00:15", 21), ("00:22", 22), ("00:30", 90), ("00:30", 45), ("00:40", 23), ("01:55", 21), ("02:02", 22),
            ("02:20", 23))))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["atspm", "--events", str(log), "--out", str(out), "--no-charts"])
    assert r.exit_code == 0, r.output
    text = (out / "ped_delay.csv").read_text().splitlines()
    assert len(text) == 2 and text[1].endswith(',"call",1,85,85,false')  # the log ends inside the bin


# --------------------------------------------------------------------------- UDOT ATSPM's exports


def _log(tmp_path, header, stamps, name="ev.csv"):
    p = tmp_path / name
    p.write_text(header + "\n" + "".join(f"1001,{s},82,3\n" for s in stamps))
    return p


def test_udot_raw_data_export_and_database_dump_and_location_identifier_are_read(tmp_path):
    expected = [np.datetime64("2024-06-04T07:00:00.250"), np.datetime64("2024-06-04T13:05:09.000")]
    export = _log(tmp_path, "Signal ID,Timestamp,Event Code,Event Parameter",
                  ["06/04/2024 07:00:00.250", "06/04/2024 13:05:09.000"], "export.csv")
    dump = _log(tmp_path, "SignalID,Timestamp,EventCode,EventParam",
                ["2024-06-04 07:00:00.2500000", "2024-06-04 13:05:09.0000000"], "dump.csv")
    newer = _log(tmp_path, "LocationIdentifier,Timestamp,EventCode,EventParameter",
                 ["2024-06-04 07:00:00.250", "2024-06-04 13:05:09"], "newer.csv")
    for p in (export, dump, newer):
        log = read_event_log(p)
        assert list(log.time_us.astype("datetime64[us]")) == expected and log.devices == ["1001"], p.name


@pytest.mark.parametrize("stamps,needle", [
    (["13/06/2024 07:00:00.000"], "not month-first"),  # day-first
    (["06/04/2024 07:00:00.000 AM"], "MM/dd/yyyy HH:mm:ss.fff"),  # a 12-hour clock
    (["6/4/2024 07:00:00.000"], "MM/dd/yyyy HH:mm:ss.fff"),  # no leading zeros
    (["06/04/2024 07:00:00.000", "2024-06-04 07:00:01.000"], "MM/dd/yyyy HH:mm:ss.fff"),  # mixed forms
])
def test_slash_dates_in_any_other_form_are_refused_in_one_line(tmp_path, stamps, needle):
    with pytest.raises(EventLogError) as e:
        read_event_log(_log(tmp_path, "SignalID,Timestamp,EventCode,EventParam", stamps))
    assert needle in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- daylight saving


def _fixed_time(start, n_cycles, clock, arrivals=False):
    """A 100 s fixed-time cycle of one phase, written in the controller's order on `clock(real)`; with
    `arrivals`, a vehicle on detector 2 each cycle, at a time the plan does not repeat."""
    rows = []
    for k in range(n_cycles):
        b = k * 100.0
        cycle = [(b, 1), (b + 40, 8), (b + 44, 9), (b + 44, 10), (b + 46, 11)]
        if arrivals:
            on = b + 3.3 + (k * 37) % 90
            cycle = sorted(cycle + [(on, 82), (on + 0.4, 81)], key=lambda r: r[0])
        rows += cycle
    rows.append((n_cycles * 100.0, 1))
    return "SignalID,Timestamp,EventCode,EventParam\n" + "".join(
        f"9,{clock(start + dt.timedelta(seconds=s)):%Y-%m-%d %H:%M:%S.%f},{c},2\n" for s, c in rows)


def test_a_fall_back_is_undone_not_deduplicated_or_interleaved(tmp_path):
    switch = dt.datetime(2024, 11, 3, 2, 0)
    p = tmp_path / "fall.csv"  # 00:50 to 02:20 by the clock before the change: 01:00-02:00 happens twice
    p.write_text(_fixed_time(dt.datetime(2024, 11, 3, 0, 50), 90, lambda r: r if r < switch else r - dt.timedelta(hours=1),
                             arrivals=True))
    log = read_event_log(p)
    assert len(log) == 90 * 7 + 1 and log.report.duplicates_dropped == 0 and log.report.out_of_order == 0
    (warning,) = [w for w in log.report.warnings() if "daylight" in w]
    assert "fall back" in warning and "2024-11-03 01:59:" in warning and "2024-11-03 01:00:" in warning
    sm = C.split_monitor(log)
    assert set(sm["Cycle_s"].dropna()) == {100.0} and len(sm) == 91
    # the log reads in standard time: the first event moved back an hour, the last kept its clock
    assert str(sm["TimeStamp"].iloc[0]) == "2024-11-02 23:50:00" and str(sm["TimeStamp"].iloc[-1]) == "2024-11-03 02:20:00"


def test_events_import_keeps_the_repeated_hour(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    switch = dt.datetime(2024, 11, 3, 2, 0)
    p = tmp_path / "fall.csv"
    p.write_text(_fixed_time(dt.datetime(2024, 11, 3, 1, 30), 60, lambda r: r if r < switch else r - dt.timedelta(hours=1)))
    r = CliRunner().invoke(app, ["events", "import", str(p), "--db", f"sqlite:///{tmp_path / 'e.db'}"])
    assert r.exit_code == 0, r.output
    assert "imported 301 new events of 301" in r.output and "daylight-saving change (fall back)" in r.output


def test_a_spring_forward_gap_is_named_as_daylight_saving(tmp_path):
    switch = dt.datetime(2024, 3, 10, 2, 0)
    p = tmp_path / "spring.csv"
    p.write_text(_fixed_time(dt.datetime(2024, 3, 10, 1, 50), 20, lambda r: r if r < switch else r + dt.timedelta(hours=1)))
    warnings = read_event_log(p).report.warnings()
    assert any("gap" in w and "daylight-saving change (spring forward)" in w and "2024-03-10 01:59:" in w
               for w in warnings), warnings


def _table(rows):
    """(clock, code) rows of device A, parameter 2, in the order given -> an EventLog."""
    import pyarrow as pa

    from signalwise.analytics.atspm.inputs import events_from_arrow

    return events_from_arrow(pa.table({"TimeStamp": [f"{c:%Y-%m-%d %H:%M:%S.%f}" for c, _ in rows],
                                       "DeviceId": ["A"] * len(rows), "EventId": [k for _, k in rows],
                                       "Parameter": [2] * len(rows)}))


def _minutes(start, a, b, offset_s=0.0, arrivals=False):
    """One row a minute from minute `a` to `b` after `start` (with `arrivals`, a detector row at an odd second)."""
    rows = []
    for m in range(a, b):
        c = start + dt.timedelta(minutes=m, seconds=offset_s)
        rows.append((c, 1))
        if arrivals:
            rows.append((c + dt.timedelta(seconds=7.3 + (m * 13) % 40 + offset_s), 82))
    return rows


def _clock(log):
    return [str(x) for x in log.time_us.astype("datetime64[us]")]


def test_an_overlapping_export_is_deduplicated_not_read_as_a_fall_back():
    day = dt.datetime(2024, 5, 1)
    # export 1 runs to 09:00, export 2 (re-exported with an hour of overlap) from 08:00: the clock steps back
    # ~3540 s, inside the fall-back window, but from 08:59, when daylight time never ends
    log = _table(_minutes(day, 0, 9 * 60, arrivals=True) + _minutes(day, 8 * 60, 12 * 60, arrivals=True))
    assert log.report.clock_steps == [] and log.report.duplicates_dropped == 120
    assert _clock(log)[0] == "2024-05-01T00:00:00.000000" and len(log) == 2 * 12 * 60
    assert not any("daylight" in w for w in log.report.warnings())


def test_an_overlapping_export_at_the_fall_back_hour_is_deduplicated_when_it_repeats_the_rows_exactly():
    day = dt.datetime(2024, 11, 3)
    # 00:00-02:00 then 01:00-03:00, the second a copy of the first where they overlap: not a clock change
    log = _table(_minutes(day, 0, 120, arrivals=True) + _minutes(day, 60, 180, arrivals=True))
    assert log.report.clock_steps == [] and log.report.duplicates_dropped == 120
    assert _clock(log)[0] == "2024-11-03T00:00:00.000000" and len(log) == 2 * 180


def test_a_fall_back_moves_only_the_daylight_period_and_two_fall_backs_are_undone_independently():
    fall23, fall24 = dt.datetime(2023, 11, 5), dt.datetime(2024, 11, 3)
    rows = _minutes(fall23, 0, 120) + _minutes(fall23, 60, 150, offset_s=30)   # 02:00 -> 01:00 (US)
    rows += [(dt.datetime(2024, 1, 10, 8), 1)]                                 # 298 days before the next change
    rows += [(dt.datetime(2024, 3, 10, 1, 59), 1), (dt.datetime(2024, 3, 10, 3, 0, 5), 1)]  # spring forward
    rows += [(dt.datetime(2024, 6, 1, 12), 1)]                                 # daylight time
    rows += _minutes(fall24, 0, 120) + _minutes(fall24, 60, 150, offset_s=30)
    log = _table(rows)
    assert [(s[1], s[2]) for s in log.report.clock_steps] == [
        ("2023-11-05 01:59:00.000000", "2023-11-05 01:00:30.000000"),
        ("2024-11-03 01:59:00.000000", "2024-11-03 01:00:30.000000")]
    clock = _clock(log)
    assert log.report.duplicates_dropped == 0 and len(clock) == len(rows)
    # each change moves its own daylight rows back once; standard-time rows keep their clock
    assert clock[0] == "2023-11-04T23:00:00.000000" and clock[119] == "2023-11-05T00:59:00.000000"
    assert "2024-01-10T08:00:00.000000" in clock and "2024-03-10T01:59:00.000000" in clock
    assert "2024-03-10T02:00:05.000000" in clock and "2024-06-01T11:00:00.000000" in clock  # from spring forward
    assert "2024-11-02T23:00:00.000000" in clock and clock[-1] == "2024-11-03T02:29:30.000000"


def test_a_fall_back_moves_no_row_more_than_240_days_before_it():
    fall = dt.datetime(2024, 11, 3)
    old = fall - dt.timedelta(days=300) + dt.timedelta(hours=12)
    log = _table([(old, 1)] + _minutes(fall, 0, 120) + _minutes(fall, 60, 150, offset_s=30))
    assert len(log.report.clock_steps) == 1
    assert _clock(log)[:2] == [str(np.datetime64(old, "us")), "2024-11-02T23:00:00.000000"]


def test_an_empty_timestamp_in_a_month_first_log_is_one_line(tmp_path):
    with pytest.raises(EventLogError, match=r"1 empty timestamps$"):
        read_event_log(_log(tmp_path, "SignalID,Timestamp,EventCode,EventParam",
                            ["06/04/2024 07:00:00.000", ""]))
    import pyarrow as pa

    from signalwise.analytics.atspm.inputs import events_from_arrow

    with pytest.raises(EventLogError, match=r"1 empty timestamps$"):
        events_from_arrow(pa.table({"TimeStamp": pa.array(["06/04/2024 07:00:00.000", None], pa.string()),
                                    "DeviceId": ["A", "A"], "EventId": [1, 1], "Parameter": [2, 2]}))


@pytest.mark.parametrize("stamp", ["02/30/2024 01:00:00.000", "06/04/2024 01:00:00.1234567",
                                   "2024-02-30T01:00:00.1234567"])
def test_timestamp_errors_quote_the_text_as_written(tmp_path, stamp):
    with pytest.raises(EventLogError) as e:
        read_event_log(_log(tmp_path, "SignalID,Timestamp,EventCode,EventParam", [stamp]))
    assert repr(stamp) in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- complete cycles (AOG, PCD)

ADV = detectors_from_frame(make_config([("7", 2, 5, "Advance"), ("7", 2, 1, "Presence")]))


def _cycles(*starts, green=20.0):
    rows = []
    for t in starts:
        rows += [(t, "7", 1, 2), (t + green, "7", 8, 2), (t + green + 4, "7", 9, 2), (t + green + 4, "7", 10, 2),
                 (t + green + 6, "7", 11, 2)]
    return rows


def test_arrivals_on_green_count_only_complete_cycles():
    # begin red at 24, 64, 104 s: arrivals at 2 s (before any phase event: state unknown) and at 110 s (the
    # open cycle) are left out; atspm counted the first as not on green
    rows = _cycles(0, 40, 80) + [(s, "7", 82, 5) for s in (2, 30, 45, 70, 90, 110)]
    aog = M.arrival_on_green(events_from_frame(make_events(rows)), ADV)
    assert aog[["Total_Actuations", "Green_Actuations"]].values.tolist() == [[4, 2]]


def test_the_pcd_leaves_out_the_open_cycle_at_the_end():
    rows = _cycles(0, 40, 80) + [(s, "7", 82, 5) for s in (2, 30, 45, 70, 90, 110)]
    arrivals, cycles = C.pcd(events_from_frame(make_events(rows)), ADV, project=False)
    assert cycles["Cycle_s"].tolist() == [40.0, 40.0]
    assert arrivals["TimeInCycle_s"].tolist() == [6.0, 21.0, 6.0, 26.0]  # 30, 45 from 24 s; 70, 90 from 64 s


# --------------------------------------------------------------------------- split failures


def test_the_first_split_failure_cycle_counts_when_the_detector_first_reports_during_green():
    # the stop-bar detector's first event comes 1 s after begin green: it was off before (UDOT's reading)
    rows = _cycles(0, 40) + [(1.0, "7", 82, 1), (23.0, "7", 81, 1), (25.0, "7", 82, 1), (29.5, "7", 81, 1)]
    sf = M.split_failures(events_from_frame(make_events(rows)), ADV, by_cycle=True)
    assert len(sf) == 2
    assert sf["Green_Occupancy"].tolist()[0] == pytest.approx(19 / 20)
    assert sf["Red_Occupancy"].tolist()[0] == pytest.approx(4 / 5)  # red from 24 s: on from 25 s to 29 s


def test_the_udot_split_failure_rule_judges_over_79_percent_and_bins_by_begin_green():
    # green 0-35 s, detector on 0-27.825 s: 79.5 % of green; red from 39 s, on 39-43.975 s: 99.5 % (sf_min.csv)
    rows = [(0, "7", 1, 2), (35, "7", 8, 2), (39, "7", 9, 2), (39, "7", 10, 2), (41, "7", 11, 2), (100, "7", 1, 2),
            (-2, "7", 82, 1), (-1, "7", 81, 1), (0, "7", 82, 1), (27.825, "7", 81, 1), (39, "7", 82, 1),
            (43.975, "7", 81, 1)]
    log = events_from_frame(make_events(rows, start=dt.datetime(2025, 1, 6, 7, 14, 30)))
    ours = M.split_failures(log, ADV, by_cycle=True)
    udot = M.split_failures(log, ADV, by_cycle=True, rule="udot")
    assert ours["Split_Failure"].tolist() == [0] and udot["Split_Failure"].tolist() == [1]
    assert str(ours["TimeStamp"].iloc[0]) == "2025-01-06 07:15:14" and str(udot["TimeStamp"].iloc[0]) == "2025-01-06 07:14:30"
    assert M.split_failures(log, ADV, rule="udot")["TimeStamp"].astype(str).tolist() == ["2025-01-06 07:00:00"]
    with pytest.raises(ValueError, match="udot"):
        M.split_failures(log, ADV, rule="odot")
