"""A run's ATSPM detector file gives each detector its own lane's speed limit.

ATSPM projects an advance detector's arrivals to the stop bar at the detector's approach speed: a 40 km/h side
street's at the arterial's 60 km/h would arrive 3 s early. One signal built here by SUMO's own netconvert, its
approaches at four speed limits, one of them with a faster second lane; the limits are read back from the network
with sumolib, independent of the code under test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import sumolib
from support.networks import netconvert_network

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

NODES = """<nodes>
<node id="W" x="-300" y="0" type="priority"/><node id="J" x="0" y="0" type="traffic_light"/>
<node id="E" x="300" y="0" type="priority"/><node id="N" x="0" y="300" type="priority"/>
<node id="S" x="0" y="-300" type="priority"/>
</nodes>"""
EDGES = """<edges>
<edge id="WJ" from="W" to="J" numLanes="2" speed="16.67"><lane index="1" speed="19.44"/></edge>
<edge id="JW" from="J" to="W" numLanes="2" speed="16.67"/>
<edge id="EJ" from="E" to="J" numLanes="1" speed="13.89"/><edge id="JE" from="J" to="E" numLanes="1" speed="13.89"/>
<edge id="NJ" from="N" to="J" numLanes="1" speed="11.11"/><edge id="JN" from="J" to="N" numLanes="1" speed="11.11"/>
<edge id="SJ" from="S" to="J" numLanes="1" speed="8.33"/><edge id="JS" from="J" to="S" numLanes="1" speed="8.33"/>
</edges>"""
ROUTES = """<routes>
<flow id="we" begin="0" end="60" period="10" from="WJ" to="JE"/>
<flow id="ns" begin="0" end="60" period="10" from="NJ" to="JS"/>
</routes>"""


def test_each_detector_row_carries_its_lanes_speed_limit(tmp_path):
    netconvert_network(tmp_path, "j", NODES, EDGES)
    (tmp_path / "j.rou.xml").write_text(ROUTES)
    run_dir = tmp_path / "run"
    result = execute_run(RunConfig(net=tmp_path / "j.net.xml", routes=[tmp_path / "j.rou.xml"], controller="fixed",
                                   duration_s=60, emissions=False), run_dir)
    assert result.status == "complete"
    net = sumolib.net.readNet(str(tmp_path / "j.net.xml"))
    with open(Path(run_dir) / "detectors.csv") as fh:
        rows = list(csv.DictReader(fh))
    lanes = {r["Lane"] for r in rows}
    assert lanes == {"WJ_0", "WJ_1", "EJ_0", "NJ_0", "SJ_0"}
    assert {r["Function"] for r in rows} == {"Presence", "Advance"}
    for r in rows:
        assert float(r["ApproachSpeed_mps"]) == round(net.getLane(r["Lane"]).getSpeed(), 2), r
    assert len({r["ApproachSpeed_mps"] for r in rows}) == 5  # 19.44, 16.67, 13.89, 11.11 and 8.33 m/s
