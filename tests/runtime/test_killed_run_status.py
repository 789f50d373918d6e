"""A run killed with SIGKILL cannot say how it ended: run.json stays `running`, and readers show it `died`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signalwise.outdirs import run_status

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _started(tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([SIGNALWISE, *args, "--out", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # its own group: SUMO dies with it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in tmp_path.glob("*/run.json"):
            try:
                if json.loads(path.read_text()).get("status") == "running":
                    return proc, path.parent
            except ValueError:
                pass  # being written
        if proc.poll() is not None:
            pytest.fail(f"signalwise {args[0]} exited early ({proc.returncode})")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail(f"signalwise {args[0]} wrote no running run.json in 60 s")


@pytest.mark.parametrize("args", [
    ["live", "--scenario", "single", "--speed", "1", "--duration", "3600", "--port", "0"],
    ["run", "--scenario", "corridor"],
], ids=["live", "run"])
def test_a_run_killed_with_sigkill_is_shown_died_and_its_run_json_is_left_as_written(tmp_path, args):
    proc, run_dir = _started(tmp_path, args)
    try:
        recorded = json.loads((run_dir / "run.json").read_text())
        assert recorded["process"]["pid"] == proc.pid and recorded["process"]["start_ticks"]
        assert run_status(run_dir)["status"] == "running"  # alive: shown as it is
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    on_disk = json.loads((run_dir / "run.json").read_text())
    assert on_disk["status"] == "running"  # history is not rewritten by a reader
    shown = run_status(run_dir)
    assert shown["status"] == "died" and shown["recorded_status"] == "running"
    assert f"process {proc.pid} is gone" in shown["reason"] and "SIGKILL" in shown["reason"]
    assert json.loads((run_dir / "run.json").read_text()) == on_disk
    audit = subprocess.run([SIGNALWISE, "audit", str(run_dir)], capture_output=True, text=True, timeout=120)
    # a live run writes its evidence as it goes: the audit grades it and says it died; a run writes it at its
    # end, so there is nothing to grade, and the refusal says why
    assert "the run died: process" in audit.stdout + audit.stderr, audit.stdout + audit.stderr
    if args[0] == "run":
        assert audit.returncode == 2 and "not a complete run directory, missing events.csv" in audit.stderr
    if args[0] == "live":
        # killed while a file was half written (here: before its header reached the disk), the file cannot be
        # read: the refusal still says the run died, so nobody hunts for a bug in the writer
        (run_dir / "signal_states.csv").write_text("")
        broken = subprocess.run([SIGNALWISE, "audit", str(run_dir)], capture_output=True, text=True, timeout=120)
        assert broken.returncode == 2 and "lacks columns" in broken.stderr, broken.stderr
        assert "the run died: process" in broken.stderr, broken.stderr
