"""The audit of a live run killed with SIGKILL grades only what both of its logs cover.

Found in a trial: a `--field none` run holds its events back (they wait out the feed's lateness, then go into
`events.csv` in time order) while it writes `signal_states.csv` at once, so SIGKILL leaves `events.csv` ending
10-15 s before the signal states. The audit graded the gap: a legal green there was "a link turned green while no
phase serving it was green in the log", and the cycle was measured "until the log ends" past the log's end (exit 1).

Here a real short `--field none` run is cut as the kill cuts it: its `events.csv` ends before a green that its
`signal_states.csv` goes on to show. Marked died (as a reader sees a run whose process is gone, and as the next
run of the corridor writes it), it audits clean, and the warning says how much was not graded; the same cut
evidence in a run that says it completed is a real fault, and fails.
"""

from __future__ import annotations

import csv
import json
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
    """A real live run without a simulator, run to its end (unpaced: a fraction of a second)."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path_factory.mktemp("feed") / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=None, duration_s=200.0, field="none", sink="shadow"), run_dir)
    rt.open()
    rt.run()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert audit_run(run_dir).ok  # the whole evidence is clean
    return run_dir


def _cut_events_before_a_green(src: Path, dst: Path) -> tuple[float, float]:
    """A copy of the run whose events.csv ends before the last green its signal states show, as SIGKILL leaves a
    feed run; (the time events.csv now ends, the time signal_states.csv ends)."""
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


def _killed(run_dir: Path) -> None:
    """run.json as SIGKILL leaves it: `running`, naming a process that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = json.loads((run_dir / "run.json").read_text())
    run = {k: v for k, v in run.items() if k not in ("finished", "sim_time_s", "profiler")}
    run.update(status="running", process={"pid": gone.pid, "host": socket.gethostname()})
    (run_dir / "run.json").write_text(json.dumps(run))


def _found_dead(run_dir: Path) -> None:
    """run.json as the next run of the corridor marks a killed one (`previous.mark_died`)."""
    import datetime as dt

    from signalwise.outdirs import run_status
    from signalwise.runtime.live.previous import DeadRun, mark_died

    _killed(run_dir)
    mark_died(DeadRun(run_dir, run_status(run_dir)["reason"], dt.datetime.now().astimezone(), 5.0), run_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "died"


@pytest.mark.parametrize("mark", [_killed, _found_dead], ids=["killed", "found-dead"])
def test_a_killed_feed_run_is_graded_up_to_where_both_logs_end(complete_run, tmp_path, mark):
    run_dir = tmp_path / "run"
    events_end, states_end = _cut_events_before_a_green(complete_run, run_dir)
    mark(run_dir)
    report = audit_run(run_dir)
    assert report.violations == [], [str(v) for v in report.violations]
    said = report.warnings[0]
    assert said.rule == "run_status" and "the run died" in said.detail, said
    assert (f"graded up to t={events_end:g} s, where events.csv ends: the last {states_end - events_end:g} s of "
            "signal_states.csv were not graded") in said.detail, said.detail
    audited = subprocess.run([SIGNALWISE, "audit", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "were not graded" in " ".join(audited.stdout.split()), audited.stdout


def test_the_same_cut_in_a_run_that_says_it_completed_fails(complete_run, tmp_path):
    run_dir = tmp_path / "run"
    _cut_events_before_a_green(complete_run, run_dir)
    report = audit_run(run_dir)
    assert {v.rule for v in report.violations} >= {"link_green"}, [str(v) for v in report.violations]
    assert not any("not graded" in w.detail for w in report.warnings)
