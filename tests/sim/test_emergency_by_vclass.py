"""A run's emergency vehicles are those of vClass "emergency", the vehicles preemption serves, whatever their
vType ids say: a shuttle bus whose type is called "emergency_shuttle" is none, an "ambulance" is one, and so is an
ambulance SUMO never let in (it counts by its type's vClass, known from those of its type that did enter)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

ROUTES = """<routes>
    <vType id="emergency_shuttle" vClass="bus" length="8" accel="1.2" decel="4.0" sigma="0"/>
    <vType id="ambulance" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0"/>
    <route id="we" edges="W_C C_E"/>
    <route id="ns" edges="N_C C_S"/>
    <vehicle id="shuttle.0" type="emergency_shuttle" route="we" depart="0"/>
    <vehicle id="amb.0" type="ambulance" route="ns" depart="3"/>
    <vehicle id="shuttle.1" type="emergency_shuttle" route="ns" depart="10"/>
    <vehicle id="shuttle.2" type="emergency_shuttle" route="we" depart="20"/>
    <vehicle id="amb.1" type="ambulance" route="we" depart="58" departLane="first" departPos="0"/>
    <vehicle id="amb.2" type="ambulance" route="we" depart="58" departLane="first" departPos="0"/>
    <vehicle id="amb.3" type="ambulance" route="we" depart="58" departLane="first" departPos="0"/>
</routes>
"""


def test_emergency_vehicles_are_counted_by_vclass_not_by_the_type_ids_text(tmp_path):
    (tmp_path / "r.rou.xml").write_text(ROUTES)
    r = execute_run(RunConfig(net=load("single").net_file, routes=[tmp_path / "r.rou.xml"], controller="actuated",
                              duration_s=60, emissions=False), tmp_path / "run")
    net = json.loads((r.run_dir / "metrics.json").read_text())["network"]
    trips = {t.get("id"): t for t in ET.parse(r.run_dir / "sumo" / "tripinfo.xml").getroot().iter("tripinfo")}
    ambulances = [v for v, t in trips.items() if t.get("vType") == "ambulance"]
    assert {"shuttle.0", "shuttle.1", "shuttle.2", "amb.0"} <= set(trips)
    # three ambulances due at the same place in the last two seconds: SUMO lets in one at most
    assert any(float(trips[v].get("depart", -1)) < 0 for v in ambulances), ambulances
    assert net["emergency_vehicles"] == len(ambulances)
    # RESCO's delay (time loss + wait to enter) of the ambulances alone, the shuttles' left out
    delays = [float(trips[v].get("timeLoss", 0)) + float(trips[v].get("departDelay", 0)) for v in ambulances]
    assert abs(net["emergency_delay_s"] - sum(delays) / len(delays)) < 1e-3
    assert net["preemptions"] >= 1  # amb.0 called one: the vehicles counted are the ones preemption serves


def test_an_emergency_vehicle_that_never_entered_counts_when_none_of_its_type_did():
    """Its type is emergency by the simulator's map (`vtype_classes.json`), not by a vehicle of it that entered."""
    from signalwise.sim.metrics import network_metrics
    from signalwise.sim.outputs import Trip

    def trip(vid, vtype, status, depart_s):
        return Trip(vid, vtype, depart_s, 200.0 if status == "arrived" else -1, 100.0, 500.0, 5.0, 1, 20.0,
                    30.0 if status == "undeparted" else 0.0, 0.0, 0.0, status)

    trips = [trip("car0", "sedan", "arrived", 10.0), trip("amb0", "ambulance", "undeparted", -1)]
    alone = network_metrics(trips, [], [], set())
    told = network_metrics(trips, [], [], set(), emergency_types=["ambulance"])
    assert alone.emergency_vehicles == 0 and told.emergency_vehicles == 1
