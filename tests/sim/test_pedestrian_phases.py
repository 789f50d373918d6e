"""Pedestrians and cyclists on a network netconvert builds the way an OSM import does: a crossing and a mid-block
crossing joined into one signal (whose program serves the mid-block crossing in a phase of its own, green to
crosswalks only), a mid-block pedestrian signal alone, and bicycle lanes.

Every network is made here from plain XML by SUMO's own netconvert (nothing downloaded)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.networks import netconvert_network

from signalwise.analytics.safety_audit import audit, audit_run
from signalwise.core.timing import BICYCLE_SPEED_MPS, CYCLIST_ALL_RED_MAX_S, ite_all_red_s
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

CLASSICAL = ("fixed", "webster", "actuated", "max-pressure")
ARMS = {"W": (-200, 0), "N": (0, 200), "S": (0, -200)}


def _netconvert(folder: Path, nodes: str, edges: str, connections: str, name: str) -> Path:
    return netconvert_network(folder, name, f"<nodes>\n{nodes}\n</nodes>\n", f"<edges>\n{edges}\n</edges>\n",
                              "--crossings.guess", connections_xml=f"<connections>\n{connections}\n</connections>\n")


def _edge(a: str, b: str, bike: bool = False) -> str:
    lane = ' bikeLaneWidth="1.5"' if bike else ""
    return f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.89" sidewalkWidth="2"{lane}/>'


def joined_crossing(folder: Path, car_period_s: float = 9.0) -> tuple[Path, Path]:
    """A four-arm crossing J and, 40 m east, a mid-block crossing M, one signal T (joined, as netconvert's
    --tls.join makes of nodes this close); bicycle lanes on the west approach. netconvert's program for T serves M's
    crosswalk in a 5 s phase green to crosswalks only. Cars on every arm (one every `car_period_s` on each), cyclists
    from the west, and walkers who cross at M, for 300 s."""
    nodes = "\n".join([
        '<node id="J" x="0" y="0" type="traffic_light" tl="T"/>',
        '<node id="M" x="40" y="0" type="traffic_light" tl="T"/>',
        '<node id="E" x="240" y="0" type="priority"/>',
        *(f'<node id="{k}" x="{x}" y="{y}" type="priority"/>' for k, (x, y) in ARMS.items())])
    edges = "\n".join([_edge("J", "M"), _edge("M", "J"), _edge("M", "E"), _edge("E", "M"),
                       _edge("W", "J", bike=True), _edge("J", "W", bike=True),
                       *(_edge(k, "J") + "\n" + _edge("J", k) for k in ("N", "S"))])
    net = _netconvert(folder, nodes, edges, '<crossing node="M" edges="JM MJ"/>', "joined")
    routes = folder / "traffic.rou.xml"
    flows = "\n".join(f'<flow id="f{a}{b}" begin="0" end="300" period="{car_period_s:g}" from="{a}" to="{b}"/>'
                      for a, b in (("WJ", "JM"), ("MJ", "JW"), ("NJ", "JS"), ("SJ", "JN"), ("EM", "MJ")))
    walkers = "\n".join(f'<person id="p{k}" depart="{k * 12}"><walk from="ME" to="EM" departPos="4" '
                        f'arrivalPos="195"/></person>' for k in range(20))
    routes.write_text(f'<routes>\n<vType id="bike" vClass="bicycle"/>\n{flows}\n'
                      f'<flow id="bikes" type="bike" begin="0" end="300" period="20" from="WJ" to="JM"/>\n'
                      f'{walkers}\n</routes>\n')
    return net, routes


def _crosswalk_link(model: dict, crossing: str) -> int:
    return next(i for c in model["crosswalks"] if c["id"] == crossing for i in c["links"])


def _green_onsets_s(run_dir: Path, device: str, link: int) -> list[float]:
    onsets, before = [], "r"
    with open(run_dir / "signal_states.csv") as fh:
        for row in csv.DictReader(fh):
            if row["device_id"] == device:
                now = row["state"][link]
                if now in "Gg" and before not in "Gg":
                    onsets.append(float(row["time_s"]))
                before = now
    return onsets


@pytest.mark.parametrize("controller", CLASSICAL)
def test_a_pedestrian_only_phase_is_kept_and_its_crosswalk_is_served_within_the_cycle_bound(tmp_path, controller):
    """The mid-block crosswalk is green in no phase but the pedestrian one: that phase was dropped as "all-red or
    pedestrian-only", and the crosswalk never showed a walk (pedestrians stood 300 s, then SUMO jammed them through).
    Each controller serves it within cycle_max_s, max-pressure (which sees no pressure for it) by the shield's
    cycle bound, at a minimum green of walk + pedestrian clearance."""
    net, routes = joined_crossing(tmp_path)
    r = execute_run(RunConfig(net=net, routes=[routes], controller=controller, duration_s=300, emissions=False),
                    tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    link = _crosswalk_link(model, ":M_c0")
    ped_only = [p for p in model["phases"] if link in p["green_links"]]
    assert len(model["phases"]) == 3 and len(ped_only) == 1
    vehicle_links = {m["index"] for m in model["links"] if not m["crosswalk"]}
    assert not set(ped_only[0]["green_links"]) & vehicle_links
    t = model["timing"]
    assert t["min_green_s"][ped_only[0]["index"]] >= t["ped_walk_s"] + t["ped_clearance_s"]
    onsets = _green_onsets_s(r.run_dir, "T", link)
    bound_s = t["cycle_max_s"] + 1.0
    assert onsets and onsets[0] <= bound_s, onsets
    assert all(b - a <= bound_s for a, b in zip(onsets, onsets[1:], strict=False)), onsets
    report = audit_run(r.run_dir)
    assert report.ok, [str(v) for v in report.violations[:3]]
    # a phase serves the crosswalk: cycle_max holds it, and crosswalk_served (for links no phase serves) has none
    assert report.checked["cycle_max"] > 0 and report.checked.get("crosswalk_served", 0) == 0
    assert r.metrics["network"]["pedestrians_jammed"] == 0


def test_actuated_calls_a_pedestrian_only_phase_in_turn(tmp_path):
    """Pedestrians are not in the lane data, so a phase with no vehicle lanes is on recall under actuated: served
    in turn after the phase before it gaps out, not only when the shield's cycle bound forces it."""
    net, routes = joined_crossing(tmp_path, car_period_s=40.0)
    r = execute_run(RunConfig(net=net, routes=[routes], controller="actuated", duration_s=300, emissions=False),
                    tmp_path / "run")
    assert "cycle_max" not in r.metrics["shield_interventions"], r.metrics["shield_interventions"]
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    onsets = _green_onsets_s(r.run_dir, "T", _crosswalk_link(model, ":M_c0"))
    assert len(onsets) >= 3, onsets


def test_a_mid_block_pedestrian_signal_is_controlled_with_its_walk_as_a_phase(tmp_path):
    """netconvert's program for a signal with only a mid-block crossing (GGGr / yyyr / rrrG / rrrr) was refused
    as "a single green phase, with its yellow and red", the pedestrians' green counted as red."""
    nodes = "\n".join(['<node id="W" x="-150" y="0" type="priority"/>',
                       '<node id="M" x="0" y="0" type="traffic_light"/>',
                       '<node id="E" x="150" y="0" type="priority"/>'])
    edges = "\n".join([_edge("W", "M"), _edge("M", "W"), _edge("M", "E"), _edge("E", "M")])
    net = _netconvert(tmp_path, nodes, edges, '<crossing node="M" edges="WM MW"/>', "midblock")
    routes = tmp_path / "r.rou.xml"
    routes.write_text('<routes><flow id="c" begin="0" end="200" period="6" from="WM" to="ME"/>'
                      '<person id="p" depart="5"><walk from="WM" to="MW" departPos="140" arrivalPos="5"/></person>'
                      '</routes>')
    r = execute_run(RunConfig(net=net, routes=[routes], controller="max-pressure", duration_s=200, emissions=False),
                    tmp_path / "run")
    assert r.metrics["refused_signals"] == []
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    link = _crosswalk_link(model, ":M_c0")
    assert [sorted(p["green_links"]) for p in model["phases"]] == [[0, 1], [link]]
    assert _green_onsets_s(r.run_dir, "M", link)
    assert audit_run(r.run_dir).ok


def test_a_crosswalk_the_program_never_shows_green_is_a_warning_a_jam_and_an_audit_violation(tmp_path):
    """A program that never gives the mid-block crosswalk a walk (its pedestrian phase taken out): every controller
    keeps it so, the run says so, SUMO's count of jammed pedestrians reaches metrics.json with a warning, and the
    audit's crosswalk_served rule fails it."""
    net, routes = joined_crossing(tmp_path)
    import sumolib

    logic = sumolib.net.readNet(str(net), withPrograms=True).getTLS("T").getPrograms()["0"]
    # the pedestrian phase: red everywhere but the crosswalks, which come last in netconvert's link order
    phases = [(p.state, p.duration) for p in logic.getPhases() if not ("G" in p.state and p.state.rstrip("G").strip("r") == "")]
    assert len(phases) == len(logic.getPhases()) - 1
    program = tmp_path / "no_walk.add.xml"
    program.write_text('<additional><tlLogic id="T" type="static" programID="no_walk" offset="0">'
                       + "".join(f'<phase duration="{d:g}" state="{s}"/>' for s, d in phases)
                       + "</tlLogic></additional>")
    cfg = tmp_path / "no_walk.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{net.name}"/><route-files value="{routes.name}"/>'
                   f'<additional-files value="{program.name}"/></input>'
                   '<time><begin value="0"/><end value="300"/></time></configuration>')
    r = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=300, emissions=False,
                              sumo_options={"pedestrian.striping.jamtime": 30}), tmp_path / "run")
    warnings = r.metrics.get("warnings", [])
    assert any(":M_c0" in w and "never green" in w for w in warnings), warnings
    assert r.metrics["network"]["pedestrians_jammed"] > 0
    assert any("pedestrians jammed" in w for w in warnings), warnings
    assert r.metrics["safety"]["by_rule"] == {"crosswalk_served": 1}
    # without pedestrians nobody waits there: the rule does not apply
    run_dir = r.run_dir
    from signalwise.analytics.safety_audit import read_signal_states
    from signalwise.core import read_events

    model = json.loads((run_dir / "signal_model.json").read_text())
    states = read_signal_states(run_dir / "signal_states.csv")
    events = list(read_events(run_dir / "events.csv"))
    assert audit(events, model, states, 1.0, pedestrians=False).ok


def test_a_bicycle_lane_clears_at_a_cyclists_speed(tmp_path):
    """A link from a bicycle lane was timed at the lane's speed limit (13.89 m/s, a car's): its red clearance
    was a car's crossing time. It takes a cyclist's (20 km/h), up to the 6 s all_red_s may be (a car's is capped at
    4 s)."""
    net, routes = joined_crossing(tmp_path)
    r = execute_run(RunConfig(net=net, routes=[routes], controller="fixed", duration_s=30, emissions=False),
                    tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    import sumolib

    network = sumolib.net.readNet(str(net), withInternal=True)
    bike_links = {}
    for link in model["links"]:
        lane = network.getLane(link["in_lane"]) if not link["crosswalk"] else None
        if lane is not None and lane.allows("bicycle") and not lane.allows("passenger"):
            conn = next(c for c in lane.getOutgoing() if c.getToLane().getID() == link["out_lane"])
            via = network.getLane(conn.getViaLaneID())
            bike_links[link["index"]] = via.getLength()
    assert bike_links
    for p in model["phases"]:
        paths = [bike_links[i] for i in p["green_links"] if i in bike_links]
        if paths:
            needed = ite_all_red_s(max(paths), BICYCLE_SPEED_MPS, hi_s=CYCLIST_ALL_RED_MAX_S)
            assert needed > ite_all_red_s(max(paths), 13.89)
            assert model["timing"]["phase_all_red_s"][p["index"]] >= needed
