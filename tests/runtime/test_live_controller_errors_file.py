"""A live run's controller_errors.csv is a diagnostic file: failing to write it must not stop the signals.

The run is opened (SUMO loaded, not looping) and given one fault; the `.partial` file the rewrite goes through is
made a directory, so writing fails with an OSError: the tick goes on, says it once, and writes the file when the
next rewrite is due.
"""

from __future__ import annotations

import csv
import logging

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import FAULTS_WRITE_EVERY_S, LiveOptions, LiveRuntime


def test_a_controller_errors_file_that_cannot_be_written_is_said_once_and_written_when_it_can(tmp_path, caplog):
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / "live")
    rt.open()
    try:
        partial = rt.run_dir / "controller_errors.csv.partial"
        partial.mkdir()  # opening it for writing fails
        rt.stepper.controller_faults.raised(KeyError("E1_0"), "C", 3.0)
        with caplog.at_level(logging.WARNING, logger="signalwise"):
            rt._keep_controller_errors(100.0)
            rt._keep_controller_errors(100.0 + FAULTS_WRITE_EVERY_S)
        said = [r.getMessage() for r in caplog.records if "controller_errors.csv not written" in r.getMessage()]
        assert len(said) == 1, said
        rows = list(csv.DictReader(open(rt.run_dir / "controller_errors.csv")))
        assert rows == []  # only the header written at open
        partial.rmdir()
        rt._keep_controller_errors(100.0 + 2 * FAULTS_WRITE_EVERY_S)
        rows = list(csv.DictReader(open(rt.run_dir / "controller_errors.csv")))
        assert [(r["kind"], r["count"], r["first_signal"]) for r in rows] == [("raised", "1", "C")], rows
    finally:
        rt.field.backend.close()
