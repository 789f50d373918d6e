"""Vehicles whose trips end on a signal's approach are no red-light runners.

SUMO drives a vehicle whose route ends on a lane to the lane's end and removes it there, whatever the signal
shows: a stop-bar zone sees it leave on red without it ever crossing the stop line. The run leaves such a
vehicle out of that detector's events and passages, so the ATSPM red-light running counts only vehicles that
crossed. A real one still counts: a vehicle type that drives on through red (SUMO's `jmDriveAfterRedTime`).
An advance loop loses the vehicles whose trip ends over it, and keeps those that drove on over it to the lane's
end.

One signal J built here by SUMO's own netconvert: the west approach WJ carries through traffic and trips that
end on WJ; the north approach NJ carries only red-runners. Which vehicle ended where comes from SUMO's tripinfo,
independent of the code under test.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sumolib
from support.networks import netconvert_network

from signalwise.analytics.atspm import compute_all, read_detectors, read_event_log, with_stopbar_yellow_red
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.outputs import read_arrivals

NODES = """<nodes>
<node id="W" x="-300" y="0" type="priority"/><node id="J" x="0" y="0" type="traffic_light"/>
<node id="E" x="300" y="0" type="priority"/><node id="N" x="0" y="300" type="priority"/>
<node id="S" x="0" y="-300" type="priority"/>
</nodes>"""
EDGES = """<edges>
<edge id="WJ" from="W" to="J" numLanes="1" speed="16.67"/><edge id="JE" from="J" to="E" numLanes="1" speed="16.67"/>
<edge id="NJ" from="N" to="J" numLanes="1" speed="11.11"/><edge id="JS" from="J" to="S" numLanes="1" speed="11.11"/>
</edges>"""
#: trips that end on WJ at its end (`end`) and over its advance loop (`park`, arrival position {park_m}), through
#: traffic that queues there at red (`thru`), and on NJ only vehicles that drive on through red however long it
#: has lasted (`run`)
ROUTES = """<routes><!-- SUMO reads flows in order of their begin -->
<vType id="runner" jmDriveAfterRedTime="1000" jmDriveRedSpeed="11.11"/>
<flow id="end" begin="0" end="600" period="13" from="WJ" to="WJ"/>
<flow id="thru" begin="0" end="600" period="17" from="WJ" to="JE"/>
<flow id="run" type="runner" begin="0" end="600" period="23" from="NJ" to="JS"/>
<flow id="park" begin="5" end="600" period="41" from="WJ" to="WJ" arrivalPos="{park_m}"/>
</routes>"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trip-ends")
    netconvert_network(folder, "j", NODES, EDGES)
    length_m = sumolib.net.readNet(str(folder / "j.net.xml")).getLane("WJ_0").getLength()
    # a car's front 2 m past the advance loop (100 m before the stop line) when its trip ends: it is over the loop
    (folder / "j.rou.xml").write_text(ROUTES.format(park_m=round(length_m - 100 + 2, 1)))
    run_dir = folder / "run"
    result = execute_run(RunConfig(net=folder / "j.net.xml", routes=[folder / "j.rou.xml"], controller="fixed",
                                   duration_s=600, emissions=False, evidence="inline"), run_dir)
    assert result.status == "complete"
    return run_dir


def _arrival_lanes(run_dir: Path) -> dict[str, str]:
    root = ET.parse(run_dir / "sumo" / "tripinfo.xml").getroot()
    return {t.get("id"): t.get("arrivalLane") for t in root.iter("tripinfo") if float(t.get("arrival")) >= 0}


def _red_running_by_lane(run_dir: Path) -> dict[str, int]:
    """Red_Running of the ATSPM table, per approach lane (the phase its stop-bar detector calls)."""
    config = read_detectors(run_dir / "detectors.csv")
    results = compute_all(read_event_log(run_dir / "events.csv"), with_stopbar_yellow_red(config),
                          only=("red_light_running",))
    with open(run_dir / "detectors.csv") as fh:
        phase_lane = {int(r["Phase"]): r["Lane"] for r in csv.DictReader(fh) if r["Function"] == "Presence"}
    table = results.tables["red_light_running"]
    return {lane: int(table.loc[table["Phase"] == phase, "Red_Running"].sum()) for phase, lane in phase_lane.items()}


def test_trips_that_end_on_the_approach_leave_no_stop_bar_passage(run):
    arrived = _arrival_lanes(run)
    ended_on_wj = {v for v, lane in arrived.items() if lane == "WJ_0"}
    assert len(ended_on_wj) > 20  # the case is there: many trips ended at WJ's stop line
    with open(run / "detector_passages.csv") as fh:
        stop_bar = [r for r in csv.DictReader(fh) if r["detector_id"] == "sb_WJ_0"]
    assert stop_bar, "through traffic crossed WJ's stop bar"
    assert not [r["vehicle_id"] for r in stop_bar if r["vehicle_id"] in ended_on_wj]
    assert all(arrived.get(r["vehicle_id"], "JE_0") == "JE_0" for r in stop_bar)


def test_only_vehicles_that_cross_on_red_run_it(run):
    red_running = _red_running_by_lane(run)
    assert red_running["WJ_0"] == 0  # trips ending at WJ's stop line on red ran no red
    assert red_running["NJ_0"] >= 3  # the runners on NJ did, crossing into JS
    assert all(lane == "JS_0" for v, lane in _arrival_lanes(run).items() if v.startswith("run."))


def test_an_advance_loop_loses_the_trips_that_end_over_it(run):
    arrived = _arrival_lanes(run)
    with open(run / "detector_passages.csv") as fh:
        advance = [r["vehicle_id"] for r in csv.DictReader(fh) if r["detector_id"] == "adv_WJ_0"]
    parked = {v for v, lane in arrived.items() if v.startswith("park.") and lane == "WJ_0"}
    assert len(parked) >= 5
    assert not parked & set(advance)
    # those that ended at the stop line drove over it
    assert {v for v in arrived if v.startswith("end.")} <= set(advance)


def test_arrivals_read_the_same_by_either_reader(run, tmp_path):
    """`read_arrivals` reads tripinfo with a regular expression, or with an XML parser where the text has what the
    expression does not read (an `&amp;` in an id): both give each arrived vehicle's time and lane."""
    fast = read_arrivals(run / "sumo" / "tripinfo.xml")
    assert {v: lane for v, (_t, lane) in fast.items()} == _arrival_lanes(run)
    text = (run / "sumo" / "tripinfo.xml").read_text().replace('id="end.0"', 'id="end&amp;0"')
    (tmp_path / "tripinfo.xml").write_text(text)
    parsed = read_arrivals(tmp_path / "tripinfo.xml", lanes={"WJ_0"})
    assert parsed.pop("end&0") == fast.pop("end.0")
    assert parsed == {v: a for v, a in fast.items() if a[1] == "WJ_0"}


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "simulator-worker"])
def test_a_live_run_on_sumo_leaves_them_out_too(run, in_process):
    """A live run reads its loops each step and logs as it goes: it must not see a vehicle whose trip ends on the
    stop bar's edge in the first place (its route's last edge, from SUMO), whether SUMO runs in the run's process
    or in its simulator worker (which sends each step's loop data in one reply)."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    folder = run.parent
    live_dir = folder / f"live-{in_process}"
    live = LiveRuntime(RunConfig(net=folder / "j.net.xml", routes=[folder / "j.rou.xml"], controller="fixed"),
                       LiveOptions(speed=None, duration_s=600, in_process=in_process, state_every_s=300), live_dir)
    live.open()
    live.run()
    red_running = _red_running_by_lane(live_dir)
    assert red_running["WJ_0"] == 0
    assert red_running["NJ_0"] >= 3
