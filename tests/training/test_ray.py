"""`signalwise train --ray`: episodes as Ray tasks give the same model as local worker processes.

Ray >= 2.10 dropped local mode (`ray.init(local_mode=True)` raises), so the
Ray path runs on a local Ray started by `--ray` without an address:
`ray.init(num_cpus=2, include_dashboard=False)`, real worker processes, one
per episode (`max_calls=1`).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli import signalwise, stop_if_running

from signalwise.control.learning.qtable import load_model
from signalwise.training.train import TrainConfig, train

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SHORT_S = 200.0
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'signalwise[ray]')")


@needs_ray
@pytest.mark.slow
def test_ray_training_gives_the_same_model_and_evidence_as_local_processes(tmp_path):
    # 3 episodes in rounds of 2: the second round starts from a snapshot that must travel with the task
    args = ["--scenario", "single", "--episodes", "3", "--batch", "2", "--workers", "2", "--seed", "5",
            "--duration", str(SHORT_S), "--guide-visits", "30"]  # one threshold: no selection
    # Ray's run stays a process (it starts Ray and its workers) and the local one runs here meanwhile: they share
    # no file, and Ray's start-up, most of its wall time, overlaps the local episodes instead of following them
    with (tmp_path / "ray.out").open("w") as stdout, (tmp_path / "ray.err").open("w") as stderr:
        on_ray_run = subprocess.Popen([SIGNALWISE, "train", *args, "--out", str(tmp_path / "ray"), "--ray"],
                                      stdout=stdout, stderr=stderr)
        try:
            local = train(TrainConfig(scenario="single", episodes=3, batch=2, workers=2, seed=5, duration_s=SHORT_S,
                                      out=tmp_path / "local"))
            returncode = on_ray_run.wait(timeout=240)
        finally:
            stop_if_running(on_ray_run)  # the local run failed, or Ray hangs
    assert returncode == 0, (tmp_path / "ray.err").read_text()[-2000:]
    on_ray = load_model(tmp_path / "ray" / "model")
    assert on_ray.meta["training"]["executor"] == "ray" and local.meta["training"]["executor"] == "processes"
    assert on_ray.tables["C"].visits.sum() > 20  # it learned something, so equality means something
    np.testing.assert_array_equal(on_ray.tables["C"].q, local.tables["C"].q)
    np.testing.assert_array_equal(on_ray.tables["C"].visits, local.tables["C"].visits)
    # every episode's evidence comes back from the Ray worker to where a local run writes it
    for ep in ("ep-00000", "ep-00001", "ep-00002"):
        ray_m = json.loads((tmp_path / "ray" / "episodes" / ep / "metrics.json").read_text())
        local_m = json.loads((tmp_path / "local" / "episodes" / ep / "metrics.json").read_text())
        assert ray_m["safety"]["violations"] == 0
        assert ray_m["network"]["avg_delay_s"] == local_m["network"]["avg_delay_s"]
        assert (tmp_path / "ray" / "episodes" / ep / "events.csv").stat().st_size > 0


def test_ray_flag_without_ray_installed_is_one_line(tmp_path, monkeypatch):
    # in this process: the command refuses before SUMO or any worker starts. A sys.modules entry None makes
    # `import ray` fail, installed or not
    monkeypatch.setitem(sys.modules, "ray", None)
    r = signalwise("train", "--scenario", "single", "--episodes", "1", "--duration", "60",
                   "--out", str(tmp_path / "t"), "--ray")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --ray needs Ray: pip install 'signalwise[ray]'"
    assert not (tmp_path / "t" / "model").exists()
