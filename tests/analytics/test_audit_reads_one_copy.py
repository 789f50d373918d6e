"""The audit of a running run reads each log once: the complete lines of one copy, never the run's file again.

Found in review: when the copy ended in a newline the audit read the run's file a second time from disk, so a row
the writer flushed in between was read cut (`J1,GGr` of `J1,GGrr` is a valid but wrong state). Here the reader
itself is the writer's accomplice: right before it reads, another half row lands in the run's file.
"""

from __future__ import annotations

from pathlib import Path

from signalwise.analytics.safety_audit import _read_whole_lines, read_signal_states

COMPLETE = "time_s,device_id,state\n0.0,J1,GGrr\n1.0,J1,yyrr\n"


def _appending_then_reading(run_file: Path, appended: str):
    def read(path: Path):
        with open(run_file, "a") as fh:  # the writer flushes a cut row while the audit is between copy and read
            fh.write(appended)
        return read_signal_states(path)
    return read


def test_a_row_flushed_after_the_copy_is_not_read_cut(tmp_path):
    run_file = tmp_path / "signal_states.csv"
    run_file.write_text(COMPLETE)
    rows = _read_whole_lines(run_file, _appending_then_reading(run_file, "2.0,J1,rr"), growing=True)
    assert rows == [(0.0, "J1", "GGrr"), (1.0, "J1", "yyrr")]


def test_a_half_written_last_line_is_left_out_however_long(tmp_path):
    run_file = tmp_path / "signal_states.csv"
    run_file.write_text(COMPLETE + "2.0,J1," + "r" * 200_000)  # longer than one chunk read back from the end
    assert _read_whole_lines(run_file, read_signal_states, growing=True) == [(0.0, "J1", "GGrr"),
                                                                             (1.0, "J1", "yyrr")]
    run_file.write_text("time_s,devi")  # not even a whole header yet
    assert _read_whole_lines(run_file, lambda p: p.read_bytes(), growing=True) == b""


def test_a_finished_run_is_read_as_it_is(tmp_path):
    run_file = tmp_path / "signal_states.csv"
    run_file.write_text(COMPLETE + "2.0,J1,rrGG")  # no newline at the end of a finished file: still a row
    assert _read_whole_lines(run_file, read_signal_states, growing=False)[-1] == (2.0, "J1", "rrGG")
