"""The tabular agent on a user's network (`signalwise train --net ... --routes ...`, as docs/learning.md shows it):
it trains with the default threshold selection, resumes, and `evaluate` runs the model where it trained.
Real SUMO runs on the built-in `single`'s own files, given as a user's network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def own_network(tmp_path_factory) -> list[str]:
    """`single`'s network and routes copied under other names: a user's files, no built-in scenario."""
    sc = load("single")
    root = tmp_path_factory.mktemp("own")
    net = root / "my.net.xml"
    shutil.copy(sc.net_file, net)
    routes = root / "my.rou.xml"
    shutil.copy(sc.route_files[0], routes)
    return ["--net", str(net), "--routes", str(routes)]


@pytest.mark.slow
def test_train_resume_and_evaluate_on_your_own_network(own_network, tmp_path):
    out = tmp_path / "t"
    short = [*own_network, "--batch", "1", "--workers", "1", "--duration", "60", "--validation-seeds", "1",
             "--out", str(out)]
    r = cli("train", *short, "--episodes", "1")  # --guide-visits auto: two candidates and their validation
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert meta["scenario"] == "my.net" and meta["training"]["violations"] == 0
    assert Path(meta["training"]["config"]["net"]).name == "my.net.xml"
    runs = sorted((out / "guide-30" / "episodes").glob("*/config.yaml"))
    assert runs and "my.net.xml" in runs[0].read_text()  # the episodes ran the user's files

    r = cli("train", *short, "--episodes", "2", "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "guide-10" / "train_state.json").read_text())["episodes_done"] == 2

    r = cli("evaluate", "--model", str(out / "model"), "--seeds", "1", "--duration", "60",
            "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    assert "ql vs max-pressure" in r.stdout
    evaluation = json.loads((out / "model" / "meta.json").read_text())["evaluations"][-1]
    assert "my.net.xml" in json.dumps(evaluation)  # it ran on the network it trained on
