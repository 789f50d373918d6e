"""A grid from netgenerate: the README's recipe signals the grid's junctions and not its fringe nodes, so its runs
warn of nothing; a grid whose fringe nodes are signals too (`--default-junction-type traffic_light`) gets, from
`compare`, one short line for the twelve alike (their count, four named, where every one is listed), not a
1,400-character line repeating the reason for each. Real netgenerate, randomTrips and SUMO runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.sumo_home import sumo_home

ROOT = Path(__file__).resolve().parents[2]
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _env() -> dict[str, str]:
    return {**os.environ, "SUMO_HOME": str(sumo_home()), "COLUMNS": "200"}


def _readme_netgenerate() -> list[str]:
    """The README's netgenerate command, its continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^netgenerate (?:.*\\\n)*.*$", text, flags=re.M)
    assert match, "the README has no netgenerate recipe"
    return shlex.split(match.group(0).replace("\\\n", " "))


def _trips(net: Path, folder: Path) -> Path:
    trips = folder / "my.rou.xml"
    subprocess.run([sys.executable, str(sumo_home() / "tools" / "randomTrips.py"), "-n", str(net), "-e", "120",
                    "-p", "2", "--seed", "1", "-o", str(trips)], check=True, capture_output=True, env=_env(),
                   cwd=folder)
    return trips


@pytest.mark.slow
def test_the_readme_grid_recipe_signals_the_junctions_alone_and_its_run_warns_of_nothing(tmp_path):
    command = _readme_netgenerate()
    subprocess.run([str(sumo_home() / "bin" / "netgenerate"), *command[1:]], check=True, capture_output=True,
                   env=_env(), cwd=tmp_path)
    net = tmp_path / command[command.index("-o") + 1]
    p = subprocess.run([SIGNALWISE, "run", "--net", str(net), "--routes", str(_trips(net, tmp_path)), "--controller",
                        "actuated", "--duration", "120", "--out", str(tmp_path / "runs")], capture_output=True,
                       text=True, timeout=300, env=_env())
    assert p.returncode == 0, p.stderr
    assert "warning:" not in p.stdout + p.stderr, p.stdout + p.stderr
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["refused_signals"] == [] and len(metrics["intersections"]) == 9


@pytest.mark.slow
def test_compare_warns_of_signals_left_alike_in_one_short_line(tmp_path):
    net = tmp_path / "fringe.net.xml"
    subprocess.run([str(sumo_home() / "bin" / "netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "200",
                    "--grid.attach-length", "100", "-L", "2", "--default-junction-type", "traffic_light", "-o",
                    str(net)], check=True, capture_output=True, env=_env())
    p = subprocess.run([SIGNALWISE, "compare", "--net", str(net), "--routes", str(_trips(net, tmp_path)),
                        "--controllers", "fixed,max-pressure", "--seeds", "1", "--duration", "60", "--workers", "1",
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=300, env=_env())
    assert p.returncode == 0, p.stderr
    said = [line for line in p.stderr.splitlines() if "left to their own program" in line]
    assert len(said) == 1 and len(said[0]) < 400, said
    assert said[0].startswith("warning: 12 signal(s) left to their own program, the same for every controller: ")
    assert "and 8 more: program '0' has a single green phase" in said[0] and said[0].count("single green") == 1
    assert "metrics.json names every one, under refused_signals" in said[0]
    (run,) = [d for d in (tmp_path / "cmp").iterdir() if d.name.startswith("fixed")]
    assert len(json.loads((run / "metrics.json").read_text())["refused_signals"]) == 12
