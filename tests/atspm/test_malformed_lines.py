"""A trailer line does not sink a whole log; an event without a device is refused."""

import pytest

from signalwise.analytics.atspm import EventLogError, read_event_log

HEADER = "SignalID,Timestamp,EventCode,EventParam\n"


def test_lines_with_the_wrong_number_of_fields_are_skipped_and_named(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "1001,2024-11-03 00:00:00.0,1,2\ngarbage line\n1001,2024-11-03 00:00:01.0,8,2\n"
                    "End of export,,\n")
    log = read_event_log(path)
    assert len(log) == 2
    assert log.report.malformed_lines == [(3, "garbage line"), (5, "End of export,,")]
    (w,) = [w for w in log.report.warnings() if "wrong number of fields" in w]
    assert w.startswith("2 lines with the wrong number of fields skipped: line(s) 3 ('garbage line'), 5")


def test_a_file_with_no_valid_row_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "garbage\n")
    with pytest.raises(EventLogError, match="no valid row: 1 lines with the wrong number of fields, e.g. line 2"):
        read_event_log(path)


def test_an_empty_device_id_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "1001,2024-11-03 00:00:00.0,1,2\n,2024-11-03 00:00:01.0,8,2\n")
    with pytest.raises(EventLogError, match="1 empty DeviceId values .the first at row 3."):
        read_event_log(path)
