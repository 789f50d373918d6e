"""A Ctrl-C or SIGTERM while `signalwise live` is starting (its corridor lock taken, before the `live:` banner) is a
clean stop, as one after the banner is: exit 0, run.json `stopped` with the reason, the lock file removed, the run
directory complete; and the next run of the corridor reports no death.

Raised on whatever line it landed on, it left run.json `running` and the lock file (exit 130), so the next run
called the stopped start a SIGKILL or power cut and raised `previous_run_died`; one landing while the simulator
started removed the half-made directory and exited 130.

`grid` takes seconds to start (its simulator, then the API and the dashboard's map), so the window is hit by
watching the files a start makes: the lock file appears when `open()` begins, run.json when it has written the
run's static evidence, both well before the banner. That the banner never came proves the signal landed before it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signalwise.analytics.safety_audit import audit_run

pytestmark = pytest.mark.slow

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
REASON = {signal.SIGTERM: "terminated (SIGTERM)", signal.SIGINT: "interrupted"}


def _ctrl_c_as_in_a_terminal():
    """A suite started in the background leaves SIGINT ignored in its children: give it back its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _live(out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([SIGNALWISE, "live", "-s", "grid", "--port", "0", "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _signal_when(proc: subprocess.Popen, appeared, signum: int) -> tuple[str, str]:
    deadline = time.monotonic() + 120
    while not appeared():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the start never reached the point to signal at"
        time.sleep(0.002)
    proc.send_signal(signum)
    return proc.communicate(timeout=120)


@pytest.mark.parametrize(("point", "signum"), [("lock", signal.SIGTERM), ("run.json", signal.SIGTERM),
                                               ("lock", signal.SIGINT)])
def test_a_stop_while_starting_ends_the_run_cleanly(tmp_path, point, signum):
    lock = tmp_path / "live-grid.lock"

    def appeared() -> bool:
        return lock.exists() if point == "lock" else any(tmp_path.glob("*-live-grid-*/run.json"))

    proc = _live(tmp_path, "--speed", "5")
    out, err = _signal_when(proc, appeared, signum)
    reason = REASON[signum]
    assert proc.returncode == 0, err
    assert "live: " not in err, f"the signal came after the banner, not during the start: {err}"
    assert f"{reason} while the run was starting: stopping; evidence flushed, run directory complete" in err, err
    assert "Traceback" not in err and "error:" not in err.lower(), err
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert out.strip().splitlines()[-1] == f"run directory: {run_dir}", out
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["status"], run.get("reason")) == ("stopped", reason), run
    assert not lock.exists(), "a run removes its lock file as it ends"
    # nothing half-written: the run directory is one `signalwise audit` grades, with no violation
    assert audit_run(run_dir).ok
    for name in ("events.csv", "live_events.csv", "signal_states.csv", "signal_model.json", "changes.jsonl"):
        assert (run_dir / name).is_file(), name

    if point == "run.json" and signum == signal.SIGTERM:  # the trial's case: the next run says nothing of a death
        after = _live(tmp_path, "--speed", "max", "--duration", "5")
        out2, err2 = after.communicate(timeout=180)
        assert after.returncode == 0, err2
        assert "died" not in err2, err2
        assert json.loads((run_dir / "run.json").read_text())["status"] == "stopped"
        [second] = [p for p in tmp_path.iterdir() if p.is_dir() and p != run_dir]
        alerts = [json.loads(line) for line in (second / "alerts.jsonl").read_text().splitlines() if line]
        assert not [a for a in alerts if a.get("rule") == "previous_run_died"], alerts
