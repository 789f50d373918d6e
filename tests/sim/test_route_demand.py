"""A user's network's nominal demand, read from its route files (`sim.route_demand`), and the lane flows
`nominal_lane_flows` makes of it; a built-in scenario keeps its metadata's.

The routes run on the built-in `single` network: one signal C, arms E, N, S, W (edges `E_C` in, `C_E` out ...);
on each incoming edge lane 1 serves right + through, lane 2 through, lane 3 (the pocket) left.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from signalwise.core import Movement
from signalwise.sim.route_demand import read_route_demand
from signalwise.sim.scenario import BUILTIN_DIR, from_files, load, nominal_lane_flows

NET = BUILTIN_DIR / "single" / "net.net.xml"

#: window 100..400 s: 300 s, so n vehicles in it are n * 12 veh/h
ROUTES = """<routes>
  <vType id="car" vClass="passenger"/>
  <vType id="walker" vClass="pedestrian"/>
  <route id="ew" edges="E_C C_W"/>
  <routeDistribution id="from_S">
    <route id="sn" edges="S_C C_N" probability="3"/>
    <route id="se" edges="S_C C_E" probability="1"/>
  </routeDistribution>
  <!-- 720 veh/h = 0.2 veh/s from 0 to 250 s: 150 s of it in the window, 30 vehicles -->
  <flow id="f" type="car" route="ew" begin="0" end="250" vehsPerHour="720"/>
  <!-- ends as the window begins: none -->
  <flow id="early" type="car" route="ew" begin="0" end="100" vehsPerHour="3600"/>
  <!-- one vehicle -->
  <vehicle id="v" type="car" route="ew" depart="150"/>
  <!-- one trip, routed on the network from N_C to C_S -->
  <trip id="t" type="car" depart="200" from="N_C" to="C_S"/>
  <!-- a chance of 0.05 each second from 300 s on (no end: it lasts): 100 s in the window, 5 vehicles -->
  <flow id="p" begin="300" probability="0.05"><route edges="W_C C_N"/></flow>
  <!-- 30 vehicles spread over 200..500 s, 0.1 veh/s: 200 s in the window, 20 vehicles, 3:1 over from_S -->
  <flow id="n" type="car" route="from_S" begin="200" end="500" number="30"/>
  <!-- no vehicles at a stop bar: a pedestrian-class vehicle, a person flow -->
  <vehicle id="w" type="walker" route="ew" depart="150"/>
  <personFlow id="pf" begin="100" end="400" personsPerHour="600"><walk from="E_C" to="C_W"/></personFlow>
  <!-- departs as the window ends: not in it -->
  <vehicle id="late" type="car" route="ew" depart="400"/>
</routes>
"""


def write(tmp_path: Path, text: str, name: str = "r.rou.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_flow_a_vehicle_a_trip_and_a_probability_flow_give_their_veh_h_per_movement(tmp_path):
    demand = read_route_demand(NET, (write(tmp_path, ROUTES),), 100.0, 300.0)
    assert demand.problem is None
    assert demand.movement_vph == pytest.approx({
        ("E_C", "C_W"): (30 + 1) * 12,  # flow f and vehicle v: 372 veh/h
        ("N_C", "C_S"): 1 * 12,  # the trip
        ("W_C", "C_N"): 5 * 12,  # the probability flow
        ("S_C", "C_N"): 20 * 3 / 4 * 12,  # flow n, 15 of its 20 on route sn: 180 veh/h
        ("S_C", "C_E"): 20 * 1 / 4 * 12,  # and 5 on se: 60 veh/h
    })


def movements() -> list[Movement]:
    """The E and N arms' links of `single`, and a crosswalk (which carries no vehicle)."""
    return [Movement(0, "E_C_1", "C_N_1"), Movement(1, "E_C_1", "C_W_1"), Movement(2, "E_C_2", "C_W_2"),
            Movement(3, "E_C_3", "C_S_2"), Movement(4, "N_C_1", "C_W_1"), Movement(5, "N_C_1", "C_S_1"),
            Movement(6, "N_C_2", "C_S_2"), Movement(7, "N_C_3", "C_E_2"), Movement(8, ":C_w0_0", ":C_c0_0", True)]


def test_a_user_networks_lane_flows_spread_each_movement_over_the_lanes_serving_it(tmp_path):
    scenario = from_files(NET, (write(tmp_path, ROUTES),), begin_s=100.0, end_s=400.0)
    flows = nominal_lane_flows(scenario, movements(), window_s=300.0)
    # E_C -> C_W (372) over lanes 1 and 2; nobody turns right (lane 1) or left (lane 3); N_C -> C_S (12) over 1, 2
    assert flows == pytest.approx({"E_C_1": 186.0, "E_C_2": 186.0, "E_C_3": 0.0,
                                   "N_C_1": 6.0, "N_C_2": 6.0, "N_C_3": 0.0})


def test_a_built_in_scenario_keeps_its_own_nominal_demand():
    flows = nominal_lane_flows(load("single"), movements(), begin_s=100.0, window_s=300.0)
    # scenario.yaml's first window: E_C -> C_W 467 over lanes 1, 2, -> C_N 99 on lane 1, -> C_S 99 on lane 3;
    # N_C -> C_S 234 over lanes 1, 2, -> C_W 50 on lane 1, -> C_E 50 on lane 3
    assert flows == pytest.approx({"E_C_1": 233.5 + 99, "E_C_2": 233.5, "E_C_3": 99.0,
                                   "N_C_1": 117.0 + 50, "N_C_2": 117.0, "N_C_3": 50.0})


def test_the_reader_finds_the_demand_a_built_in_scenarios_metadata_states():
    """`single`'s route file (random flows `period="exp(λ)"`, route and type distributions, buses) read over
    its first 900 s gives the movements its metadata states for the first window, within 3 veh/h (the metadata
    spreads each bus over the 1200 s window)."""
    s = load("single")
    demand = read_route_demand(s.net_file, s.route_files, 0.0, 900.0)
    assert demand.problem is None
    assert set(demand.movement_vph) == set(s.nominal_movement_flow_vph)
    for key, vph in s.nominal_movement_flow_vph.items():
        assert demand.movement_vph[key] == pytest.approx(vph, abs=3.0), key


def test_an_origin_by_taz_is_not_read_and_the_run_assumes_the_default_saying_why_once(tmp_path, caplog):
    text = ROUTES.replace('<trip id="t" type="car" depart="200" from="N_C" to="C_S"/>',
                          '<trip id="t" type="car" depart="200" fromTaz="north" toTaz="south"/>')
    demand = read_route_demand(NET, (write(tmp_path, text),), 100.0, 300.0)
    assert demand.movement_vph == {}
    assert "<trip id='t'>" in demand.problem and "fromTaz" in demand.problem
    scenario = from_files(NET, (tmp_path / "r.rou.xml",), begin_s=100.0, end_s=400.0, name="taz")
    with caplog.at_level(logging.WARNING, logger="signalwise.sim"):
        assert nominal_lane_flows(scenario, movements(), window_s=300.0) == {}
        assert nominal_lane_flows(scenario, movements(), window_s=300.0) == {}
    said = [r.getMessage() for r in caplog.records if "nominal demand of taz" in r.getMessage()]
    assert len(said) == 1 and "fromTaz" in said[0] and "300 veh/h" in said[0]


def test_no_vehicle_in_the_window_is_no_demand_to_plan_on(tmp_path):
    text = '<routes><route id="ew" edges="E_C C_W"/><vehicle id="v" route="ew" depart="150"/></routes>'
    demand = read_route_demand(NET, (write(tmp_path, text),), 1000.0, 900.0)
    assert demand.movement_vph == {} and "no vehicle" in demand.problem


def test_a_flow_without_begin_or_end_runs_from_the_runs_begin_and_lasts_as_sumo_runs_it(tmp_path):
    # 5 vehicles one every 10 s: from the run's begin at 90000 s (not from 0, when they would all be gone),
    # so all 5 in the window of 300 s: 60 veh/h; and a flow of 360 veh/h with neither begin nor end
    text = """<routes><route id="ew" edges="E_C C_W"/><route id="ns" edges="N_C C_S"/>
      <flow id="five" route="ew" period="10" number="5"/><flow id="ever" route="ns" vehsPerHour="360"/></routes>"""
    demand = read_route_demand(NET, (write(tmp_path, text),), 90000.0, 300.0)
    assert demand.movement_vph == pytest.approx({("E_C", "C_W"): 60.0, ("N_C", "C_S"): 360.0})


def test_reading_stops_past_the_window_as_sumo_reads_a_file_sorted_by_departure(tmp_path):
    text = ROUTES.replace("</routes>", '<vehicle id="next" type="car" route="ew" depart="1000"/>\n'
                                       "<unknownElement/>\n</routes>")
    assert read_route_demand(NET, (write(tmp_path, text),), 100.0, 300.0).problem is None
    # inside the window the same element is a problem
    text = ROUTES.replace("</routes>", "<unknownElement/>\n</routes>")
    assert "unknownElement" in read_route_demand(NET, (write(tmp_path, text, "u.rou.xml"),), 100.0, 300.0).problem


def test_vehicles_in_an_additional_file_count_and_its_other_elements_are_passed_over(tmp_path):
    add = write(tmp_path, '<additional><e1Detector id="d" lane="E_C_1" pos="10" period="60" file="NUL"/>'
                          '<route id="ew" edges="E_C C_W"/><vehicle id="v" route="ew" depart="150"/></additional>',
                "a.add.xml")
    demand = read_route_demand(NET, (), 100.0, 300.0, (add,))
    assert demand.movement_vph == pytest.approx({("E_C", "C_W"): 12.0})


def test_a_route_file_this_reader_does_not_foresee_gives_a_problem_not_an_error(tmp_path):
    """Every run reads the demand (the shield's fallback plan): a flow that begins 'triggered' raised TypeError
    and a broken .gz zlib.error, which stopped the run at its start whatever the controller (reviewer)."""
    import gzip

    from signalwise.sim.route_demand import read_route_demand
    from signalwise.sim.scenario import load

    net = load("single").net_file
    triggered = tmp_path / "t.rou.xml"
    triggered.write_text('<routes><flow id="f" begin="triggered" end="900" vehsPerHour="100" '
                         'from="x" to="y"/></routes>')
    broken = tmp_path / "b.rou.xml.gz"
    data = bytearray(gzip.compress(b"<routes>" + b'<vehicle id="v" depart="1"/>' * 2000 + b"</routes>"))
    data[40:60] = bytes(20)
    broken.write_bytes(bytes(data))
    for files in ((triggered,), (broken,)):
        demand = read_route_demand(net, files, 0.0, 900.0)
        assert demand.problem and not demand.movement_vph, (files, demand)
