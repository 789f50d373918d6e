"""`signalwise live` end to end: SUMO in its own process, killed mid-run and recovered; Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import EventCode, read_events

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, *args):
    port = _free_port()
    proc = subprocess.Popen([SIGNALWISE, "live", "--scenario", "corridor", "--port", str(port), "--out", str(tmp_path),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{base}/api/v1/live/status", timeout=2).json()
            if status.get("running"):
                return proc, base, status
        except (httpx.HTTPError, ValueError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"signalwise live exited early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("signalwise live did not start in 90 s")


def _wait(base, until, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/api/v1/live/status", timeout=2).json()
        if until(status):
            return status
        time.sleep(0.1)
    pytest.fail(f"status never reached the condition: {status}")


def test_a_killed_simulator_is_recovered_and_the_run_is_complete_and_safe(tmp_path):
    proc, base, status = _start(tmp_path, "--speed", "20", "--duration", "300", "--state-every", "30")
    try:
        sim_pid = status["sim_pid"]
        assert sim_pid and sim_pid != proc.pid  # SUMO runs in its own process
        _wait(base, lambda s: s["sim_time_s"] >= 100)
        t_kill = time.monotonic()
        os.kill(sim_pid, signal.SIGKILL)
        status = _wait(base, lambda s: s["restarts"] >= 1)
        # recovered, and reported; the < 5 s target is measured by bench/live_bench.py --only recovery, on
        # an idle machine: here the bound only catches a recovery that hangs
        assert time.monotonic() - t_kill < 30 and 0 < status["last_recovery_s"] < 30
        assert status["sim_pid"] != sim_pid
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["restarts"] == 1 and info["recoveries"][0]["rewound_s"] <= 30
    events = list(read_events(run_dir / "events.csv"))
    assert any(e.event_code == EventCode.RUNTIME_RECOVERY for e in events)
    report = audit_run(run_dir)
    assert report.ok, [str(v) for v in report.violations[:3]]


def test_ctrl_c_stops_cleanly_and_leaves_the_run_directory_complete(tmp_path):
    proc, base, _status = _start(tmp_path, "--speed", "10")
    _wait(base, lambda s: s["sim_time_s"] >= 40)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "stopped" and info["sim_time_s"] >= 40
    assert "Traceback" not in err
    assert len(list(read_events(run_dir / "events.csv"))) > 10
    assert audit_run(run_dir).ok
