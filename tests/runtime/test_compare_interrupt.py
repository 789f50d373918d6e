"""Stopping `signalwise compare` on your own network: Ctrl-C or SIGTERM stops every run, and starts no other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signalwise.exitcodes import INTERRUPTED
from signalwise.sim.sumo_home import sumo_home

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _busy_grid(folder: Path) -> tuple[Path, Path]:
    """A 5x5 grid from netgenerate, two lanes, signals where SUMO guesses them; a trip every 0.5 s for 30 min."""
    home = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(home)}
    net, trips = folder / "grid.net.xml", folder / "grid.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "5", "--grid.length", "200", "-L",
                    "2", "--tls.guess", "-o", str(net)], check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", "1800", "-p", "0.5",
                    "--seed", "1", "-o", str(trips)], check=True, capture_output=True, env=env, cwd=folder)
    return net, trips


def _statuses(out: Path) -> dict[str, str]:
    return {d.name: json.loads((d / "run.json").read_text())["status"] for d in out.iterdir()
            if (d / "run.json").is_file()}


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigint-to-compare-alone"])
@pytest.mark.slow
def test_a_stopped_compare_stops_its_runs_and_starts_no_queued_one(tmp_path, how):
    """Leaving the worker pool waited for every queued run: after Ctrl-C a 3-controller, 2-seed compare ran its
    remaining runs to the end before saying `interrupted`. SIGTERM ended the command on the spot while its
    workers ran on, and their run directories read `complete` for a comparison that was killed. A SIGINT to the
    command's process alone (`kill -INT PID`, a wrapper script) waited, silently, for the runs under way to finish,
    then said they were marked incomplete when their run.json said `complete`."""
    net, trips = _busy_grid(tmp_path)
    out = tmp_path / "cmp"
    p = subprocess.Popen([SIGNALWISE, "compare", "--net", str(net), "--routes", str(trips), "--controllers",
                          "fixed,max-pressure,actuated", "--seeds", "2", "--workers", "1", "--duration", "1800",
                          "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and "running" in _statuses(out).values()):
            assert time.monotonic() < deadline and p.poll() is None, "the first run never started"
            time.sleep(0.1)
        time.sleep(0.5)
        stopped_at = time.monotonic()
        if how == "ctrl-c":
            os.killpg(p.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
        elif how == "sigint-to-compare-alone":
            p.send_signal(signal.SIGINT)  # `kill -INT PID`: the command's own process, not its workers
        else:
            p.send_signal(signal.SIGTERM)  # `kill`, docker stop: the command's own process only
        _out, err = p.communicate(timeout=60)
        waited_s = time.monotonic() - stopped_at
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    reason = "terminated (SIGTERM)" if how == "sigterm" else "interrupted"
    assert p.returncode == INTERRUPTED and f"error: {reason}" in err, err
    time.sleep(0.5)  # a worker orphaned by the command would still be writing
    statuses = _statuses(out)
    assert set(statuses.values()) == {"incomplete"}, statuses
    assert waited_s < 10
    # the wait is said, and the last line says what became of each run, as its run.json does
    assert "stopping: waiting for the 1 run(s) under way to stop and mark their run directories" in err, err
    (marked,) = statuses
    assert f"; 1 run(s) marked incomplete: {marked}; 5 run(s) never started: " in err.splitlines()[-1], err
    assert json.loads((out / marked / "run.json").read_text())["reason"] == reason
