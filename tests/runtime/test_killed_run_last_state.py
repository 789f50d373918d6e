"""What a `signalwise live` run killed with SIGKILL leaves for the next run of its corridor to say: when it was
last alive, to within a tick, and the controller it ran. On the way, a controller switch sent during a
clearance shows in `/status` as pending until the signal's next green.

Found in a trial: `died_at` was the newest evidence file's modification, cut to whole seconds (2.4 s before the
kill at --speed 1: files are written only when they get rows); `run.json` named the controller the run started
with, not the one an operator switched to; `/status` listed the switch in force while the signal was still in
its yellow."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_live_restart_after_kill import HTTP, start_live, wait_for  # noqa: E402 - the live command helpers

from signalwise.runtime.live.previous import previous_run_lines, settle  # noqa: E402

SPEED = 4.0  # simulated seconds per wall second: a tick (1 s) is 0.25 s of wall time


@pytest.mark.slow
def test_a_killed_run_is_seen_alive_to_a_tick_and_named_with_the_controller_it_ran(tmp_path):
    out = tmp_path / "runs"
    proc, base = start_live(out, "--speed", str(SPEED), "--insecure-no-auth", "--controller", "max-pressure")
    try:
        def clearing():
            """a signal at the start of its yellow: its clearance lasts a few wall seconds more"""
            signals = HTTP.get(f"{base}/api/v1/live/snapshot").json()["signals"]
            return next((s for s in signals if s["interval"] == "yellow" and s["elapsed_s"] <= 1.0), None)

        signal_id = wait_for(clearing, 60)["intersection_id"]
        answer = HTTP.post(f"{base}/api/v1/live/controller", json={"controller": "actuated"})
        assert answer.status_code == 200 and answer.json()["result"] == "applied", answer.text
        status = HTTP.get(f"{base}/api/v1/live/status").json()
        assert status["pending_controllers"] == {signal_id: "actuated"}, status
        run_dir = Path(status["run_dir"])
        assert json.loads((run_dir / "run.json").read_text())["controller"] == "actuated"
        wait_for(lambda: not HTTP.get(f"{base}/api/v1/live/status").json()["pending_controllers"], 30)
        view = HTTP.get(f"{base}/api/v1/live/snapshot").json()["signals"][0]
        assert view["controller"] == "actuated" and view["controller_since_s"] is not None, view
        time.sleep(1.0)  # a quiet spell of 4 ticks: no evidence file need be written in it
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=30)

    # what the next run of the corridor does before its first tick (`LiveRuntime._settle_dead_runs`)
    said = " ".join(previous_run_lines(settle(out, "single", out / "the-next-run", None)))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "died" and run["controller"] == "actuated", run
    died_at = dt.datetime.fromisoformat(run["died_at"])
    assert died_at.microsecond, run["died_at"]  # to the millisecond, not cut to the second
    tick_s = 1.0 / SPEED
    # within a tick, and half a second of slack for a loaded machine's scheduling
    assert killed_at - tick_s - 0.5 <= died_at.timestamp() <= killed_at, (run["died_at"], killed_at)
    assert "heartbeat" in run["died_at_source"], run["died_at_source"]
    assert f"last seen alive at {died_at.isoformat(timespec='milliseconds')}" in said, said[-2000:]
