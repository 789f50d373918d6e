"""Webster's plans on demand it cannot read from the route files (a flow given by `fromJunction`).

The plans made before any count then assume 300 veh/h on every lane. That was one log line on standard error,
without the `warning:` the run's other warnings have, and the run directory kept no trace of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _junction_flow(folder: Path) -> Path:
    routes = folder / "junc.rou.xml"
    routes.write_text('<routes><flow id="j1" fromJunction="W" toJunction="E" begin="0" end="600" '
                      'vehsPerHour="500"/></routes>')
    return routes


def test_a_webster_run_on_demand_it_cannot_read_keeps_the_assumption_among_its_warnings(tmp_path):
    cfg = RunConfig(net=load("single").net_file, routes=[_junction_flow(tmp_path)], controller="webster",
                    duration_s=120, emissions=False, sumo_options={"junction-taz": True})
    result = execute_run(cfg, tmp_path / "run")
    warnings = json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"]
    said = [w for w in warnings if "300 veh/h on every lane" in w]
    assert len(said) == 1 and "fromJunction" in said[0] and "junc.rou.xml" in said[0]
    assert result.metrics["webster"]["plans"]


@pytest.mark.slow
def test_the_command_says_it_once_as_a_warning(tmp_path):
    (tmp_path / "jtaz.yaml").write_text("sumo_options:\n  junction-taz: true\n")
    p = subprocess.run([SIGNALWISE, "run", "--net", str(load("single").net_file), "--routes",
                        str(_junction_flow(tmp_path)), "-c", "webster", "--duration", "120", "--config",
                        str(tmp_path / "jtaz.yaml"), "--out", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [line for line in (p.stdout + p.stderr).splitlines() if "300 veh/h" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: nominal demand of net.net not read"), lines
