"""Pedestrian figures of a run on a network with crosswalks, held to SUMO's own statistics of the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.sumo_home import sumo_home


def _walkers_on_a_grid(folder: Path) -> tuple[Path, Path]:
    """A 2x2 grid from netgenerate with sidewalks and signalled crosswalks; a walker every 4 s for 600 s."""
    home = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(home)}
    net, walks = folder / "walk.net.xml", folder / "walks.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "2", "--grid.length", "200",
                    "--grid.attach-length", "150", "-L", "2", "--tls.guess", "--sidewalks.guess", "--crossings.guess",
                    "-o", str(net)], check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", "600", "-p", "4",
                    "--seed", "3", "--pedestrians", "--max-distance", "600", "-o", str(walks)], check=True,
                   capture_output=True, env=env, cwd=folder)
    return net, walks


def test_walkers_due_after_the_end_are_not_counted_and_those_still_walking_count_their_wait(tmp_path):
    """SUMO loads persons ahead of time and writes each one it loaded, those due after the run's end with
    depart -1: they were counted as pedestrians with no delay (103 walkers instead of 75 in 300 s, and a third
    less delay than SUMO's own statistics of the same run). A walk still under way at the end was counted with no
    delay, as SUMO writes it, however long it had stood at a crosswalk."""
    net, walks = _walkers_on_a_grid(tmp_path)
    r = execute_run(RunConfig(net=net, routes=[walks], controller="fixed", duration_s=300, emissions=False),
                    tmp_path / "run")
    stats = ET.parse(r.run_dir / "sumo" / "statistics.xml").getroot().find("pedestrianStatistics")
    due = sum(1 for p in ET.parse(walks).getroot().iter("person") if float(p.get("depart")) < 300)
    net_metrics = json.loads((r.run_dir / "metrics.json").read_text())["network"]
    n = int(stats.get("number"))
    assert net_metrics["pedestrians"] == n == due
    # SUMO's statistics count a walk still under way at the end with no time loss; ours counts the time it has
    # stood so far, which SUMO's tripinfo gives
    walking = [w for w in ET.parse(r.run_dir / "sumo" / "tripinfo.xml").getroot().iter("walk")
               if float(w.get("arrival")) < 0]
    stood_s = sum(float(w.get("waitingTime")) for w in walking)
    assert walking and stood_s > 0 and all(float(w.get("timeLoss")) == 0 for w in walking)
    assert net_metrics["walking_at_end"] == len(walking)
    expected = float(stats.get("timeLoss")) + stood_s / n
    assert abs(net_metrics["ped_delay_s"] - expected) < 0.01  # SUMO writes 2 decimals
