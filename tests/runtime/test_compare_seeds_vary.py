"""A comparison says what its seeds vary, derived from how the scenario's demand is made: on a built-in scenario
each seed draws new demand; on a network with a route file listing each trip (randomTrips') the demand is the
same on every seed, which varies only SUMO's randomness, and the report says how to vary the demand. Said in
summary.json, report.md and on the terminal. Real comparisons, one simulated minute each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.sumo_home import sumo_home

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _own_network(folder: Path) -> tuple[Path, Path]:
    """A 2x2 grid of two-lane roads from netgenerate with SUMO-guessed signals, and randomTrips' trips over it."""
    home = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(home)}
    net, trips = folder / "my.net.xml", folder / "my.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "2", "--grid.length", "200",
                    "--grid.attach-length", "100", "-L", "2", "--tls.guess", "-o", str(net)], check=True,
                   capture_output=True, env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", "120", "-p", "2",
                    "--seed", "1", "-o", str(trips)], check=True, capture_output=True, env=env, cwd=folder)
    return net, trips


def _compare(out: Path, *where: str) -> tuple[dict, str, str]:
    p = subprocess.run([SIGNALWISE, "compare", *where, "--controllers", "fixed,max-pressure", "--seeds", "2",
                        "--duration", "60", "--workers", "2", "--out", str(out)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    return json.loads((out / "summary.json").read_text()), (out / "report.md").read_text(), p.stdout


@pytest.mark.slow
def test_a_built_in_scenario_and_a_fixed_route_file_say_different_things_of_their_seeds(tmp_path):
    builtin, builtin_report, builtin_out = _compare(tmp_path / "builtin", "-s", "single")
    net, trips = _own_network(tmp_path)
    own, own_report, own_out = _compare(tmp_path / "own", "--net", str(net), "--routes", str(trips))

    assert builtin["conditions"]["seeds_vary"] == "demand"
    assert builtin["conditions"]["seed_draws"] == ["arrivals", "routes", "vehicle types"]
    assert own["conditions"]["seeds_vary"] == "sumo" and own["conditions"]["seed_draws"] == []

    assert "each seed draws new demand (arrivals, routes, vehicle types" in builtin_report
    assert "each seed varies only SUMO's randomness" in own_report and "randomTrips.py --seed N" in own_report
    assert "SUMO's randomness" not in builtin_report
    # the terminal: the table's heading, and for fixed demand a note with the way to vary it
    assert "seeds 1, 2 (each draws new demand)" in builtin_out and "note: seeds:" not in builtin_out
    assert "seeds 1, 2 (one fixed demand: seeds vary SUMO's randomness only)" in own_out
    assert "note: seeds: the route files fix every vehicle" in own_out and "randomTrips.py --seed N" in own_out
    rows = (tmp_path / "own" / "summary.csv").read_text().splitlines()
    assert "seeds_vary" in rows[0].split(",") and rows[1].split(",")[rows[0].split(",").index("seeds_vary")] == "sumo"
