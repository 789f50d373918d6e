"""A live run on SUMO records its stop-bar detectors as an offline run does: a presence zone (2-10 m before the
line), so a queue standing at red keeps it on and its ATSPM split failures and phase waits are the offline
run's. The live run reads its loops each step (TraCI's clock); the offline run reads SUMO's instant loops after
the run (stamped a step early, put back on the run's clock): the same traffic must give the same measures."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.runtime.run import execute_run

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]


def _measures(run_dir: Path) -> dict:
    out = run_dir / "atspm"
    p = subprocess.run([*SIGNALWISE, "atspm", str(run_dir), "--out", str(out), "--no-charts"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with (out / "split_failures.csv").open() as f:
        failures = list(csv.DictReader(f))
    with (out / "phase_wait.csv").open() as f:
        waits = {(r["DeviceId"], r["Phase"]): float(r["Mean_Wait_s"]) for r in csv.DictReader(f)}
    return {"failures": sum(int(r["Split_Failure"]) for r in failures),
            "max_red_occupancy": max(float(r["Red_Occupancy"]) for r in failures), "waits": waits}


@pytest.mark.slow
def test_a_live_runs_stop_bars_read_as_an_offline_runs(tmp_path):
    cfg = RunConfig(scenario="corridor", controller="fixed", seed=1)
    live = LiveRuntime(cfg, LiveOptions(speed=None, duration_s=900, in_process=True, state_every_s=300),
                       tmp_path / "live")
    live.open()
    live.run()
    offline = tmp_path / "offline"
    execute_run(cfg.model_copy(update={"duration_s": 900.0, "evidence": "inline"}), offline)
    on_line, off_line = _measures(tmp_path / "live"), _measures(offline)
    assert on_line["max_red_occupancy"] >= 0.8 and on_line["failures"] >= 1  # a standing queue is seen
    assert abs(on_line["failures"] - off_line["failures"]) <= 1, (on_line["failures"], off_line["failures"])
    assert on_line["waits"].keys() == off_line["waits"].keys()
    for key, wait_s in off_line["waits"].items():
        assert on_line["waits"][key] == pytest.approx(wait_s, abs=0.5), key
