"""`train` on a network with nothing to control refuses before any episode, as `compare` does.

It ran episodes for some seconds, refused with the same line, and left the episodes' directories in --out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import sumo_home

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _single_without_control(folder: Path, how: str) -> Path:
    """The built-in single made uncontrollable by SUMO's netconvert: its signal removed, or a NEMA program."""
    options = {"no-signal": ["--tls.unset", "C"], "nema": ["--tls.rebuild", "--tls.default-type", "NEMA"]}[how]
    net = folder / f"{how}.net.xml"
    home = sumo_home()
    subprocess.run([str(home / "bin" / "netconvert"), "-s", str(load("single").net_file), *options, "-o", str(net)],
                   check=True, capture_output=True, env={**os.environ, "SUMO_HOME": str(home)})
    return net


@pytest.mark.slow
@pytest.mark.parametrize("how, said, agent", [
    ("no-signal", "the network has no traffic lights", ["--generations", "1", "--popsize", "2"]),
    ("nema", "NEMA dual-ring", ["--agent", "tabular", "--episodes", "1"]),
], ids=["no-signal-phase-score", "nema-tabular"])
def test_train_refuses_before_any_episode_and_leaves_no_training_directory(tmp_path, how, said, agent):
    out = tmp_path / "models" / "x"
    p = subprocess.run([SIGNALWISE, "train", "--net", str(_single_without_control(tmp_path, how)), "--routes",
                        str(load("single").route_files[0]), *agent, "--duration", "300", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no controllable traffic light (") and said in last
    assert not out.exists()
