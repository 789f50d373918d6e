"""The audit of a live run that is still running grades only what both of its logs cover so far.

Found in a trial: `signalwise audit` on a `--field none` run in progress reported `link_green` violations: the run
writes `signal_states.csv` at once while `events.csv` waits out the feed's lateness (10 s), so the newest greens had
no phase event yet. Here a real short run is cut as a running one looks (events.csv behind the states, its last line
half written) and marked running by a live process: it audits clean, saying it is running and up to when.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.analytics.safety_audit import audit_run, read_signal_states
from signalwise.core import read_events
from signalwise.core.eventlog import COLUMNS
from signalwise.runtime.config import RunConfig

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path_factory.mktemp("feed") / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=None, duration_s=200.0, field="none", sink="shadow"), run_dir)
    rt.open()
    rt.run()
    assert audit_run(run_dir).ok
    return run_dir


def _cut_events_before_a_green(src: Path, dst: Path) -> tuple[float, float]:
    """A copy of the run whose events.csv ends before the last green its signal states show, as a running feed run
    has it (its events wait out the feed's lateness); (the time events.csv ends, the time signal_states.csv ends)."""
    shutil.copytree(src, dst)
    states = read_signal_states(dst / "signal_states.csv")
    last: dict[str, str] = {}
    onsets = []
    for t, device, state in states:
        before = last.get(device)
        if before is not None and any(a not in "Gg" and b in "Gg" for a, b in zip(before, state, strict=True)):
            onsets.append(t)
        last[device] = state
    green_s = max(onsets)
    kept = [e for e in read_events(dst / "events.csv") if e.time_s < green_s]
    with open(dst / "events.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    with open(dst / "events.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([list(COLUMNS), *rows[1:len(kept) + 1]])
    events_end = max(e.time_s for e in read_events(dst / "events.csv"))
    states_end = max(t for t, _d, _s in states)
    assert events_end < green_s < states_end
    return events_end, states_end


def _running(run_dir: Path) -> None:
    """run.json as a run in progress has it: `running`, naming a process that is alive (this one)."""
    run = json.loads((run_dir / "run.json").read_text())
    run = {k: v for k, v in run.items() if k not in ("finished", "sim_time_s", "profiler")}
    run.update(status="running", process={"pid": os.getpid(), "host": socket.gethostname()})
    (run_dir / "run.json").write_text(json.dumps(run))


def _half_written_last_line(path: Path) -> None:
    """Another row, cut mid-way as a buffer flush leaves it: `…,J1,8,1` of `…,J1,8,12` reads as a valid event."""
    data = path.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    path.write_bytes(data + last[:-1])


def test_a_running_feed_run_is_audited_up_to_where_both_logs_end(complete_run, tmp_path):
    run_dir = tmp_path / "run"
    events_end, states_end = _cut_events_before_a_green(complete_run, run_dir)
    _half_written_last_line(run_dir / "events.csv")
    _running(run_dir)
    report = audit_run(run_dir)
    assert report.violations == [], [str(v) for v in report.violations]
    said = report.warnings[0]
    assert said.rule == "run_status", said
    assert "still running" in said.detail and f"audited up to t={events_end:g} s" in said.detail, said.detail
    assert f"the last {states_end - events_end:g} s of signal_states.csv were not graded" in said.detail
    audited = subprocess.run([SIGNALWISE, "audit", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "still running" in " ".join(audited.stdout.split()), audited.stdout


def test_a_running_run_whose_logs_end_together_says_so_and_is_graded_to_the_end(complete_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(complete_run, run_dir)
    _running(run_dir)
    report = audit_run(run_dir)
    assert report.ok
    end_s = max(e.time_s for e in read_events(run_dir / "events.csv"))
    assert "still running" in report.warnings[0].detail and "not graded" not in report.warnings[0].detail
    assert f"audited up to t={end_s:g} s" in report.warnings[0].detail, report.warnings[0].detail
    # finished, the same evidence is audited as any complete run: no warning about the run's status
    assert not any(w.rule == "run_status" for w in audit_run(complete_run).warnings)

