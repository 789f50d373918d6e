"""Each phase's pedestrian clearance is timed from the longest crosswalk it serves (MUTCD 4E.06 times it per
crossing), not from the signal's longest: a phase over short crosswalks ends its flashing don't walk, and may end
its green, when they are clear.

Signal C, built here by SUMO's netconvert: a 3 + 3 lane east-west street (its crosswalks 19.2 m) and a 1 + 1 lane
north-south one (6.4 m). The program: a protected east-west left (no crosswalk), east-west with the crosswalks
across the north and south legs, north-south with the crosswalks across the east and west legs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sumolib
from support.networks import netconvert_network

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import read_events
from signalwise.core.timing import ped_clearance_s
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

LANES = {"W": 3, "E": 3, "N": 1, "S": 1}
XY = {"W": (-200, 0), "E": (200, 0), "N": (0, 200), "S": (0, -200)}
NODES = "<nodes>\n" + '<node id="C" x="0" y="0" type="traffic_light"/>\n' + "\n".join(
    f'<node id="{a}" x="{x}" y="{y}" type="priority"/>' for a, (x, y) in XY.items()) + "\n</nodes>\n"
EDGES = "<edges>\n" + "\n".join(
    f'<edge id="{a}C" from="{a}" to="C" numLanes="{n}" speed="13.89" sidewalkWidth="2"/>\n'
    f'<edge id="C{a}" from="C" to="{a}" numLanes="{n}" speed="13.89" sidewalkWidth="2"/>'
    for a, n in LANES.items()) + "\n</edges>\n"
#: right-hand traffic: heading east from W, north is on the left and south on the right
LEFT_OUT = {"W": "N", "E": "S", "N": "E", "S": "W"}
RIGHT_OUT = {"W": "S", "E": "N", "N": "W", "S": "E"}
STEP_S = 1.0
WALK_S = 7.0


def _links(net_file: Path) -> dict[int, tuple[str, str]]:
    """Link index of signal C -> (approach, 'left' | 'right' | 'through'), or (leg crossed, 'crosswalk')."""
    net = sumolib.net.readNet(str(net_file), withPrograms=True, withPedestrianConnections=True)
    legs = {e.getID(): ({c for edge in e.getCrossingEdges() for c in edge.getID()} - {"C"}).pop()
            for e in net.getEdges(withInternal=True) if e.getFunction() == "crossing"}
    out = {}
    for in_lane, out_lane, index in net.getTLS("C").getConnections():
        to = out_lane.getEdge().getID()
        if to in legs:
            out[index] = (legs[to], "crosswalk")
            continue
        a, b = in_lane.getEdge().getID()[0], to[1]
        out[index] = (a, "left" if LEFT_OUT[a] == b else "right" if RIGHT_OUT[a] == b else "through")
    return out


@pytest.fixture(scope="module")
def two_widths(tmp_path_factory):
    """The sumocfg of signal C with its three-phase program, and the crosswalk link indices by leg crossed."""
    folder = tmp_path_factory.mktemp("two_widths")
    net = netconvert_network(folder, "cross", NODES, EDGES, "--crossings.guess", "--no-turnarounds")
    links = _links(net)

    def state(rule) -> str:
        return "".join(rule(*links[i]) for i in range(len(links)))

    left = state(lambda a, kind: "G" if a in "WE" and kind == "left" else "r")
    ew = state(lambda a, kind: ("G" if a in "NS" else "r") if kind == "crosswalk" else
               ("G" if kind == "through" else "g") if a in "WE" else "r")
    ns = state(lambda a, kind: ("G" if a in "WE" else "r") if kind == "crosswalk" else
               ("G" if kind == "through" else "g") if a in "NS" else "r")

    def change(s: str) -> str:
        return "".join("y" if c in "Gg" and links[i][1] != "crosswalk" else "r" for i, c in enumerate(s))

    program = [(10, left), (3, change(left)), (25, ew), (4, change(ew)), (2, "r" * len(links)), (25, ns),
               (4, change(ns)), (2, "r" * len(links))]
    (folder / "prog.add.xml").write_text(
        '<additional><tlLogic id="C" type="static" programID="mine" offset="0">' + "".join(
            f'<phase duration="{d}" state="{s}"/>' for d, s in program) + "</tlLogic></additional>")
    cars = "".join(f'<flow id="{a}{b}" from="{a}C" to="C{b}" begin="0" end="300" vehsPerHour="{v}"/>'
                   for a, b, v in (("W", "E", 40), ("E", "W", 40), ("W", "N", 20), ("E", "S", 20),
                                   ("N", "S", 300), ("S", "N", 300)))
    walkers = "".join(f'<personFlow id="p{a}{b}" begin="0" end="300" period="30"><walk from="{a}C" to="C{b}"/>'
                      "</personFlow>" for a, b in (("W", "E"), ("N", "S")))
    (folder / "cross.rou.xml").write_text(f"<routes>{cars}{walkers}</routes>")
    (folder / "c.sumocfg").write_text(
        '<configuration><input><net-file value="cross.net.xml"/><route-files value="cross.rou.xml"/>'
        '<additional-files value="prog.add.xml"/></input><time><begin value="0"/><end value="300"/></time>'
        "</configuration>")
    return folder / "c.sumocfg"


def _intervals_s(run_dir: Path, begin: int, end: int) -> dict[int, list[float]]:
    """Per phase number, every interval of the event log from a `begin` event to the phase's next `end` event."""
    opened: dict[int, float] = {}
    out: dict[int, list[float]] = {}
    for e in read_events(run_dir / "events.csv"):
        if e.device_id != "C":
            continue
        if e.event_code == begin:
            opened[e.parameter] = e.time_s
        elif e.event_code == end and e.parameter in opened:
            out.setdefault(e.parameter, []).append(round(e.time_s - opened.pop(e.parameter), 3))
    return out


@pytest.mark.parametrize("controller", ["fixed", "actuated"])
def test_each_phase_times_its_own_crosswalks_clearance(tmp_path, two_widths, controller):
    """Phase 2 serves the 6.4 m crosswalks: 5.9 s of flashing don't walk (6 s as shown), a 13 s minimum green;
    phase 3 the 19.2 m ones: 17.5 s (18 s), 25 s. Every phase had the 19.2 m crosswalks' 18 s and 25 s. Phase 1
    serves no crosswalk: no pedestrian interval, its minimum green the configured 5 s."""
    r = execute_run(RunConfig(sumocfg=two_widths, controller=controller, duration_s=300, emissions=False),
                    tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    length_of = {c["id"]: c["length_m"] for c in model["crosswalks"]}
    assert sorted(length_of.values()) == [6.4, 6.4, 19.2, 19.2]
    served = {p["number"]: [c["id"] for c in model["crosswalks"] if set(c["links"]) & set(p["green_links"])]
              for p in model["phases"]}
    need_s = {n: ped_clearance_s(max(length_of[c] for c in cws), 1.1) if cws else 0.0 for n, cws in served.items()}
    assert need_s == {1: 0.0, 2: 5.9, 3: 17.5}
    fdw = _intervals_s(r.run_dir, 22, 23)
    assert set(fdw) == {2, 3}, fdw  # phase 1 serves no crosswalk: no pedestrian interval
    for n in (2, 3):
        assert set(fdw[n]) == {math.ceil(need_s[n] / STEP_S) * STEP_S}, (n, fdw)
    assert set(_intervals_s(r.run_dir, 21, 22)[2]) == {WALK_S}
    green = _intervals_s(r.run_dir, 1, 8)
    assert min(green[2]) >= WALK_S + 6.0 and min(green[3]) >= WALK_S + 18.0, green
    if controller == "actuated":  # little east-west traffic: phase 2 gaps out at walk + its own clearance
        assert min(green[2]) == WALK_S + 6.0, green
    t = model["timing"]
    assert t["min_green_s"] == [5, math.ceil(WALK_S + need_s[2]), math.ceil(WALK_S + need_s[3])] == [5, 13, 25]
    assert t["ped_clearance_s"] == 17.5  # the signal's longest
    assert t["phase_ped_clearance_s"] == [need_s[1], need_s[2], need_s[3]]
    assert t["phase_ped_clearance_shown_s"] == [0.0, 6.0, 18.0]
    report = audit_run(r.run_dir)
    assert report.ok and report.checked["ped"] > 0, [str(v) for v in report.violations[:3]]


def test_a_configured_clearance_applies_to_every_crosswalk_phase(tmp_path, two_widths):
    """A policy `ped_clearance_s` (at least the longest crosswalk's 17.5 s) is every crosswalk phase's."""
    r = execute_run(RunConfig(sumocfg=two_widths, controller="fixed", duration_s=150, emissions=False,
                              timing={"ped_clearance_s": 18}), tmp_path / "run")
    t = json.loads((r.run_dir / "signal_model.json").read_text())[0]["timing"]
    assert t["ped_clearance_s"] == 18 and t["phase_ped_clearance_s"] == [0.0, 18.0, 18.0]
    assert t["min_green_s"] == [5, 25, 25]
    fdw = _intervals_s(r.run_dir, 22, 23)
    assert set(fdw[2]) == set(fdw[3]) == {18.0}, fdw
    assert audit_run(r.run_dir).ok


def test_the_audit_holds_a_phase_to_its_own_clearance(tmp_path, two_widths):
    """A model whose phase 2 says 12 s: the audit fails phase 2's 6 s flashing don't walk against it, although
    the crossing itself (6.4 m at 1.22 m/s, 5.2 s) and a signal-wide value below 6 s would pass it."""
    r = execute_run(RunConfig(sumocfg=two_widths, controller="fixed", duration_s=150, emissions=False,
                              record="lean"), tmp_path / "run")
    path = r.run_dir / "signal_model.json"
    model = json.loads(path.read_text())
    model[0]["timing"]["phase_ped_clearance_s"] = [0.0, 12.0, 17.5]
    path.write_text(json.dumps(model))
    report = audit_run(r.run_dir)
    short = {(v.phase, v.measured_s, v.required_s) for v in report.violations}
    assert short and {s[:1] + s[2:] for s in short} == {(2, 12.0)}, report.violations
    assert all(v.rule == "ped" and "phase_ped_clearance_s" in v.detail for v in report.violations)
