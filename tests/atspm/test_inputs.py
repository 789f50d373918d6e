"""Bad or messy input: a clear error, or a counted warning — never a silently wrong number."""

import pandas as pd
import pytest

from signalwise.analytics.atspm import EventLogError, compute_all, read_detectors, read_event_log


def write(tmp_path, text, name="ev.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_aliases_duplicates_and_order_are_counted(tmp_path):
    p = write(tmp_path, "SignalID,Timestamp,EventCode,EventParam\n"
              "A,2025-01-06 07:00:01.0,82,1\nA,2025-01-06 07:00:00.5,81,1\nA,2025-01-06 07:00:01.0,82,1\n"
              "A,2025-01-06 07:00:02.0,999,1\n")
    log = read_event_log(p)
    assert len(log) == 3 and log.devices == ["A"]
    assert log.report.duplicates_dropped == 1
    assert log.report.out_of_order == 1
    assert log.report.unknown_codes == 1
    assert list(log.time_us) == sorted(log.time_us)


def test_parquet_and_csv_read_the_same(tmp_path):
    df = pd.DataFrame({"TimeStamp": pd.to_datetime(["2025-01-06 07:00:00.1", "2025-01-06 07:00:03.2"]),
                       "DeviceId": ["7", "7"], "EventId": [82, 81], "Parameter": [3, 3]})
    df.to_parquet(tmp_path / "e.parquet")
    df.assign(TimeStamp=df["TimeStamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-5]).to_csv(tmp_path / "e.csv", index=False)
    a, b = read_event_log(tmp_path / "e.parquet"), read_event_log(tmp_path / "e.csv")
    assert list(a.time_us) == list(b.time_us) and a.devices == b.devices == ["7"]


@pytest.mark.parametrize("text,needle", [
    ("TimeStamp,DeviceId,EventId\n2025-01-06 07:00:00.0,A,1\n", "Parameter"),
    ("TimeStamp,DeviceId,EventId,Parameter\nyesterday,A,1,2\n", "unparseable timestamp 'yesterday'"),
    ("TimeStamp,DeviceId,EventId,Parameter\n2025-01-06T07:00:00Z,A,1,2\n", "time zone"),
    ("TimeStamp,DeviceId,EventId,Parameter\n2025-01-06 07:00:00.0,A,x,2\n", "EventId"),
    ("TimeStamp,DeviceId,EventId,Parameter\n2025-01-06 07:00:00.0,A,-1,2\n", "negative"),
])
def test_bad_event_logs_raise_one_line_errors(tmp_path, text, needle):
    with pytest.raises(EventLogError) as e:
        read_event_log(write(tmp_path, text))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_detector_configuration(tmp_path):
    p = write(tmp_path, "DeviceId,Phase,Parameter,Function\nA,2,1,Loop\n", "det.csv")
    with pytest.raises(EventLogError, match="unknown detector Function 'Loop'"):
        read_detectors(p)
    p = write(tmp_path, "SignalID,Phase,Channel,Function\nA,2,1,yellow_red\nA,2,1,Yellow_Red\n", "det2.csv")
    cfg = read_detectors(p)
    assert list(cfg.frame["Function"]) == ["Yellow_Red"] and cfg.notes


def test_gaps_and_missing_configuration_are_reported(tmp_path):
    p = write(tmp_path, "TimeStamp,DeviceId,EventId,Parameter\n2025-01-06 07:00:00.0,A,82,1\n"
              "2025-01-06 07:31:00.0,A,81,1\n")
    res = compute_all(read_event_log(p), None)
    assert any("data gaps" in w for w in res.warnings)
    assert any("no detector configuration" in w for w in res.warnings)
    assert res.tables["actuations"]["Total"].tolist() == [1, 0]  # zero-filled in the bin the device logged


def test_bin_size_must_divide_an_hour(tmp_path):
    p = write(tmp_path, "TimeStamp,DeviceId,EventId,Parameter\n2025-01-06 07:00:00.0,A,82,1\n")
    with pytest.raises(ValueError, match="divide an hour"):
        compute_all(read_event_log(p), None, bin_min=7)


def test_an_event_log_with_no_events_is_said_to_be_empty(tmp_path):
    """It wrote every table empty and said nothing, as if the signal had done nothing all day."""
    from typer.testing import CliRunner

    from signalwise.cli import app

    log = tmp_path / "empty.csv"
    log.write_text("TimeStamp,DeviceId,EventId,Parameter\n")
    r = CliRunner().invoke(app, ["atspm", "--events", str(log), "--out", str(tmp_path / "out"), "--no-charts"])
    assert r.exit_code == 0, r.output
    assert f"warning: {log} holds no events: every table is empty" in r.output
