"""Emergency vehicles' stops and time stopped in metrics.json, held to SUMO's tripinfo of the same run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


@pytest.mark.slow
def test_emergency_stops_and_time_stopped_are_tripinfos_per_vehicle_mean_and_max(tmp_path):
    """The corridor's hour sends five emergency vehicles; under the fixed plan some of them halt. metrics.json gives
    their halts (waitingCount) and time halted (waitingTime), mean and max. Its first 2500 s hold four of them (at
    578, 2232, 2374 and 2422 s), three of which halt (4, 2 and 1 times): enough to tell a mean from a max."""
    r = execute_run(RunConfig(scenario="corridor", controller="fixed", duration_s=2500, emissions=False),
                    tmp_path / "run")
    net = json.loads((r.run_dir / "metrics.json").read_text())["network"]
    evs = [t for t in ET.parse(r.run_dir / "sumo" / "tripinfo.xml").getroot().iter("tripinfo")
           if t.get("vType", "").startswith("emergency") and float(t.get("depart", -1)) >= 0]
    stops = [int(float(t.get("waitingCount"))) for t in evs]
    waits = [float(t.get("waitingTime")) for t in evs]
    assert evs and net["emergency_vehicles"] >= len(evs) and max(waits) > 0  # a stop to measure
    assert len(set(stops)) > 1 and len(set(waits)) > 1, (stops, waits)  # a mean that is no max
    assert net["emergency_stops_per_veh"] == round(sum(stops) / len(stops), 3)
    assert net["emergency_stops_max"] == max(stops)
    assert abs(net["emergency_wait_s"] - sum(waits) / len(waits)) < 1e-3
    assert net["emergency_wait_max_s"] == max(waits)
