"""Traffic SUMO drops from a route file out of departure order is counted and warned of.

SUMO reads a route file in departure order: a flow, person flow or vehicle listed after one that departs later is
skipped whole, and only SUMO's error log says so ("Route file should be sorted by departure time, ignoring 'X'!").
The run counts those entries (`network.unsorted_ignored`), names them in a warning, and a comparison's report
lists that warning under "Safety and warnings".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
QUIET_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
#: `late_car` and `walkers` begin at 0 s but come after a flow that begins at 20 s: SUMO ignores both
UNSORTED = """<routes>
    <vType id="car" vClass="passenger" length="4.5" sigma="0"/>
    <route id="we" edges="W_C C_E"/>
    <flow id="early" type="car" route="we" begin="0" end="90" period="10"/>
    <flow id="later" type="car" route="we" begin="20" end="90" period="10"/>
    <flow id="late_car" type="car" route="we" begin="0" end="90" period="5"/>
    <personFlow id="walkers" begin="0" end="90" period="10"><walk edges="W_C C_E"/></personFlow>
</routes>
"""


def test_a_run_counts_and_names_the_entries_sumo_ignored(tmp_path):
    (tmp_path / "u.rou.xml").write_text(UNSORTED)
    r = execute_run(RunConfig(net=load("single").net_file, routes=[tmp_path / "u.rou.xml"], controller="fixed",
                              duration_s=90, emissions=False), tmp_path / "run")
    metrics = json.loads((r.run_dir / "metrics.json").read_text())
    trips = (r.run_dir / "trips.csv").read_text()
    assert "early." in trips and "later." in trips and "late_car" not in trips  # SUMO did drop it
    assert metrics["network"]["unsorted_ignored"] == 2
    (said,) = [w for w in metrics.get("warnings", ()) if "route-file entries" in w]
    assert said.startswith("SUMO ignored 2 route-file entries") and "'late_car', 'walkers'" in said, said


@pytest.mark.slow
def test_a_comparison_report_lists_the_warning(tmp_path):
    (tmp_path / "u.rou.xml").write_text(UNSORTED)
    out = tmp_path / "cmp"
    p = subprocess.run([SIGNALWISE, "compare", "--net", str(load("single").net_file), "--routes", "u.rou.xml",
                        "--controllers", "fixed", "--seeds", "1", "--duration", "60", "--workers", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=300, env=QUIET_ENV, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    report = " ".join((out / "report.md").read_text().split())
    section = report.split("## Safety and warnings", 1)[1]
    assert "SUMO ignored 2 route-file entries" in section and "'late_car', 'walkers'" in section, section
    assert "SUMO ignored 2 route-file entries" in " ".join(p.stdout.split())
