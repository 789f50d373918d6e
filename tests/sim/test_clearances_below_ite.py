"""Clearances against ITE on networks netconvert builds here from plain XML (nothing downloaded): a configured yellow
or red clearance below what ITE gives a phase's geometry runs as configured and is said (the run's warning,
signal_model.json, the audit's below-ITE section), the benchmark profile's clearances are its rules and are not,
and an exclusive pedestrian phase has no vehicle yellow, only MUTCD's buffer interval as its red clearance."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import sumolib
from support.networks import netconvert_network

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import read_events
from signalwise.core.timing import (
    ALL_RED_MAX_S,
    BICYCLE_SPEED_MPS,
    CYCLIST_ALL_RED_MAX_S,
    ite_all_red_s,
    ite_yellow_s,
)
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

ARMS = {"W": (-200, 0), "E": (200, 0), "N": (0, 200), "S": (0, -200)}
#: the configured values of the run held to ITE: ITE gives the 50 km/h road more of both, the cyclist more red
SHORT = {"per_intersection": {"C": {"yellow_s": 3.0, "all_red_s": 1.0}}}


def _crossing(folder: Path) -> tuple[Path, Path]:
    """Signal C: an east-west road of three lanes each way at 50 km/h, the rightmost a bicycle lane, and a
    north-south road of two lanes each way at 40 km/h; cars on every arm and cyclists from the west for 120 s."""
    nodes = ['<node id="C" x="0" y="0" type="traffic_light"/>',
             *(f'<node id="{k}" x="{x}" y="{y}" type="priority"/>' for k, (x, y) in ARMS.items())]
    bike = '<lane index="0" allow="bicycle" width="2"/>'
    edges = [f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="3" speed="13.89">{bike}</edge>'
             for a, b in (("W", "C"), ("C", "W"), ("E", "C"), ("C", "E"))]
    edges += [f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="2" speed="11.11"/>'
              for a, b in (("N", "C"), ("C", "N"), ("S", "C"), ("C", "S"))]
    net = netconvert_network(folder, "crossing", "<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n",
                             "<edges>\n" + "\n".join(edges) + "\n</edges>\n", "--no-turnarounds")
    routes = folder / "traffic.rou.xml"
    flows = "\n".join(f'<flow id="f{a}" begin="0" end="120" period="10" from="{a}C" to="C{b}"/>'
                      for a, b in (("W", "E"), ("E", "W"), ("N", "S"), ("S", "N")))
    routes.write_text('<routes>\n<vType id="bike" vClass="bicycle"/>\n<flow id="bikes" type="bike" begin="0" '
                      f'end="120" period="15" from="WC" to="CE"/>\n{flows}\n</routes>\n')
    return net, routes


def _ite_by_phase(net: Path, model: dict) -> dict[int, tuple[float, float]]:
    """Phase number -> (ITE yellow, ITE red clearance) of the vehicle links its green serves, from the network file
    alone (sumolib): a bicycle lane's link at 20 km/h and capped at 6 s, the others at their speed limit, capped
    at 4 s."""
    network = sumolib.net.readNet(str(net), withInternal=True)
    per_link: dict[int, tuple[float, float]] = {}
    for in_lane, out_lane, index in network.getTLS(model["id"]).getConnections():
        conn = next(c for c in in_lane.getOutgoing() if c.getToLane() == out_lane and c.getTLLinkIndex() == index)
        path_m, via = 0.0, conn.getViaLaneID()
        while via:
            lane = network.getLane(via)
            path_m += lane.getLength()
            via = next((c.getViaLaneID() for c in lane.getOutgoing() if c.getViaLaneID()), "")
        bike = in_lane.getPermissions() == {"bicycle"}
        speed = min(in_lane.getSpeed(), BICYCLE_SPEED_MPS) if bike else in_lane.getSpeed()
        y, r = per_link.get(index, (0.0, 0.0))
        per_link[index] = (max(y, ite_yellow_s(speed)),
                           max(r, ite_all_red_s(path_m, speed, hi_s=CYCLIST_ALL_RED_MAX_S if bike else ALL_RED_MAX_S)))
    return {p["number"]: (max(per_link[i][0] for i in p["green_links"] if i in per_link),
                          max(per_link[i][1] for i in p["green_links"] if i in per_link)) for p in model["phases"]}


def _run(folder: Path, net: Path, routes: Path, timing=None, controller: str = "fixed", duration_s: float = 120):
    cfg = RunConfig(net=net, routes=[routes], controller=controller, duration_s=duration_s, emissions=False,
                    **({"timing": timing} if timing is not None else {}))
    r = execute_run(cfg, folder)
    return r, json.loads((r.run_dir / "signal_model.json").read_text())


def _said_of_phase(line: str, number: int) -> str:
    """What a below-ITE line says of one phase: from "phase N " to the next phase."""
    found = re.search(rf"phase {number} (.*?)(?:; phase \d+ |$)", line)
    return found.group(1) if found else ""


def test_a_configured_clearance_below_ite_runs_and_the_run_says_so_per_signal(tmp_path):
    """`per_intersection: {C: {yellow_s: 3, all_red_s: 1}}` ran with no word, where ITE gives the 50 km/h road a
    3.3 s yellow and 1.9 s of red clearance and a cyclist on the bicycle lane 6 s: the cyclist's warning of a
    default run disappeared. The values run as configured, and one line says which phases fall short of what."""
    net, routes = _crossing(tmp_path)
    r, models = _run(tmp_path / "short", net, routes, SHORT)
    model = models[0]
    assert model["timing"]["phase_yellow_s"] == [3.0] * len(model["phases"])  # an agency's policy value is honoured
    assert model["timing"]["phase_all_red_s"] == [1.0] * len(model["phases"])
    ite = _ite_by_phase(net, model)
    short_yellow = [n for n, (y, _r) in ite.items() if y > 3.0]
    short_red = [n for n, (_y, r) in ite.items() if r > 1.0]
    assert short_yellow and short_red and max(r for _y, r in ite.values()) > ALL_RED_MAX_S  # the cyclist's too
    said = [w for w in r.metrics.get("warnings", []) if "below ITE" in w]
    assert len(said) == 1, r.metrics.get("warnings")
    line = said[0]
    assert line.startswith("signal 'C': below ITE: timing.per_intersection.C.yellow_s 3 s and "
                           "timing.per_intersection.C.all_red_s 1 s are below ITE"), line
    for n, (y, red) in ite.items():
        of_phase = _said_of_phase(line, n)
        assert (f"yellow 3 s < ITE {y:g} s" in of_phase) == (n in short_yellow), (n, line)
        assert (f"red clearance 1 s < ITE {red:g} s" in of_phase) == (n in short_red), (n, line)
    assert "m/s" in line and "+ 6.1 m)" in line and re.search(r"a cyclist from [WE]C_0", line)  # the inputs
    assert [n for n in model["notes"] if n.startswith("below ITE: ")] == [line.removeprefix("signal 'C': ")]
    assert audit_run(r.run_dir).ok  # the run's own model holds: below ITE is no violation


@pytest.mark.parametrize("timing", [None, "benchmark"], ids=["safety-derived", "benchmark"])
def test_clearances_derived_from_geometry_or_set_by_a_benchmark_profile_are_not_below_ite(tmp_path, timing):
    """Derived, the clearances are ITE's; the benchmark profile's 3 s yellow and no all-red are its rules (RESCO's):
    neither run says anything of ITE, nor does its audit."""
    net, routes = _crossing(tmp_path)
    r, models = _run(tmp_path / "run", net, routes, timing)
    assert not [w for w in r.metrics.get("warnings", []) if "ITE" in w], r.metrics.get("warnings")
    assert not [n for n in models[0]["notes"] if "ITE" in n]
    report = audit_run(r.run_dir)
    assert report.ok and report.below_ite == [] and report.as_dict()["below_ite"] == []


def test_signal_model_records_ite_beside_the_configured_clearance_and_the_audit_reports_each_phase_below_it(
        tmp_path):
    """signal_model.json held the configured values only, and the audit held the run to them: 0 violations, and no
    word of the 1 s red clearance a cyclist needs 6 s of. The model records ITE's values beside them and each
    vehicle link's geometry; the audit works ITE out from that geometry and lists every phase and interval that
    ran below it, apart from the violations."""
    net, routes = _crossing(tmp_path)
    r, models = _run(tmp_path / "short", net, routes, SHORT)
    model = models[0]
    ite = _ite_by_phase(net, model)
    by_index = {p["index"]: p["number"] for p in model["phases"]}
    assert model["timing"]["ite_phase_yellow_s"] == [ite[by_index[k]][0] for k in range(len(by_index))]
    assert model["timing"]["ite_phase_all_red_s"] == [ite[by_index[k]][1] for k in range(len(by_index))]
    vehicle_links = [m for m in model["links"] if not m["crosswalk"]]
    assert all(m["path_m"] > 0 and m["approach_speed_mps"] > 0 for m in vehicle_links)
    assert {m["in_lane"] for m in vehicle_links if m["bicycle_lane"]} == {"WC_0", "EC_0"}

    report = audit_run(r.run_dir)
    assert report.ok and report.checked["all_red"] > 0
    found = {(b.phase, b.detail.split(" below ITE")[0]): b for b in report.below_ite}
    expected = {(n, "yellow") for n, (y, _r) in ite.items() if y > 3.0}
    expected |= {(n, "red clearance") for n, (_y, red) in ite.items() if red > 1.0}
    assert set(found) == expected, report.below_ite_lines()
    for (n, kind), b in found.items():
        assert b.rule == "below_ite" and b.device_id == "C"
        assert b.required_s == (ite[n][0] if kind == "yellow" else ite[n][1])
        assert b.measured_s == (3.0 if kind == "yellow" else 1.0)
    assert len(report.as_dict()["below_ite"]) == len(expected)
    assert all(line.startswith("below ITE: C ") for line in report.below_ite_lines())


def _midblock(folder: Path) -> tuple[Path, Path]:
    """A mid-block crossing M on a 50 km/h road: netconvert's program is a vehicle green and a crosswalk-only green
    (GGGr / yyyr / rrrG / rrrr). Cars every 6 s and a walker every 20 s for 200 s."""
    nodes = "\n".join(['<node id="W" x="-150" y="0" type="priority"/>',
                       '<node id="M" x="0" y="0" type="traffic_light"/>',
                       '<node id="E" x="150" y="0" type="priority"/>'])
    edges = "\n".join(f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.89" sidewalkWidth="2"/>'
                      for a, b in (("W", "M"), ("M", "W"), ("M", "E"), ("E", "M")))
    net = netconvert_network(folder, "midblock", f"<nodes>\n{nodes}\n</nodes>\n", f"<edges>\n{edges}\n</edges>\n",
                             "--crossings.guess",
                             connections_xml='<connections>\n<crossing node="M" edges="WM MW"/>\n</connections>\n')
    routes = folder / "r.rou.xml"
    walkers = "".join(f'<person id="p{k}" depart="{k * 20}"><walk from="WM" to="MW" departPos="140" '
                      'arrivalPos="5"/></person>' for k in range(10))
    routes.write_text(f'<routes><flow id="c" begin="0" end="200" period="6" from="WM" to="ME"/>{walkers}</routes>')
    return net, routes


def _events(run_dir: Path, device: str) -> list[tuple[float, int, int]]:
    """(time, event code, parameter) of a device's events, in log order."""
    return [(e.time_s, e.event_code, e.parameter) for e in read_events(run_dir / "events.csv") if e.device_id == device]


def test_an_exclusive_pedestrian_phase_ends_with_no_yellow_and_a_3_s_buffer(tmp_path):
    """A crosswalk-only phase got a vehicle yellow and red clearance (3.3 + 1.9 s at the road's speed and the
    junction's longest path, 7 s shown) where no vehicle link changes: its flashing don't walk had already ended
    the crosswalk's green. It has no yellow, and a 3 s red clearance, MUTCD 4E.06's buffer interval of steady
    don't walk before the conflicting vehicles go; the shield times it, SUMO's states are valid, the audit holds."""
    net, routes = _midblock(tmp_path)
    r, models = _run(tmp_path / "run", net, routes, controller="fixed", duration_s=200)
    model = models[0]
    crosswalk = {i for c in model["crosswalks"] for i in c["links"]}
    ped = next(p for p in model["phases"] if set(p["green_links"]) <= crosswalk)
    vehicle = next(p for p in model["phases"] if p is not ped)
    timing = model["timing"]
    assert timing["phase_yellow_s"][ped["index"]] == 0.0 and timing["phase_all_red_s"][ped["index"]] == 3.0
    assert timing["phase_yellow_s"][vehicle["index"]] >= 3.0  # the vehicle phase keeps ITE's

    events = _events(r.run_dir, "M")
    ends = [t for t, code, p in events if code == 8 and p == ped["number"]]
    assert ends, events
    for t in ends:
        at = {(code, p) for s, code, p in events if s == t}
        assert {(9, ped["number"]), (10, ped["number"]), (23, ped["number"])} <= at  # no yellow; walk over
        assert (11, ped["number"]) in {(code, p) for s, code, p in events if s == t + 3.0}
        assert (1, vehicle["number"]) in {(code, p) for s, code, p in events if s == t + 3.0}
    with open(r.run_dir / "signal_states.csv") as fh:  # a row where the state changes
        changes = [(float(row["time_s"]), row["state"]) for row in csv.DictReader(fh) if row["device_id"] == "M"]
    for t in ends:  # all red through the buffer (the crosswalk turned red when its flashing don't walk began)
        shown = [next(s for at, s in reversed(changes) if at <= t + k) for k in (0.0, 1.0, 2.0)]
        assert all(set(s) == {"r"} for s in shown), (t, shown)
        assert set(next(s for at, s in reversed(changes) if at <= t + 3.0)) != {"r"}  # the vehicles' green
    report = audit_run(r.run_dir)
    assert report.ok, [str(v) for v in report.violations[:3]]
    assert report.checked["yellow"] >= 2 * len(ends) - 1 and report.below_ite == []


def test_under_the_benchmark_profile_an_exclusive_pedestrian_phase_ends_as_its_vehicle_links_do(tmp_path):
    """Without pedestrian intervals (RESCO's rules) the crosswalks show their phase's green to its end, so they
    are cleared as vehicle links are: the profile's 3 s yellow and no all-red."""
    net, routes = _midblock(tmp_path)
    r, models = _run(tmp_path / "run", net, routes, timing="benchmark", controller="fixed", duration_s=200)
    timing = models[0]["timing"]
    assert timing["phase_yellow_s"] == [3.0, 3.0] and timing["phase_all_red_s"] == [0.0, 0.0]
    assert audit_run(r.run_dir).ok


def test_an_agencys_longer_all_red_holds_after_an_exclusive_pedestrian_phase_too(tmp_path):
    """The 3 s buffer is MUTCD's least: an agency that clears every phase for 5 s keeps 5 s after its pedestrian
    phase (the reviewer found 3 s there whatever all_red_s said)."""
    net, routes = _midblock(tmp_path)
    _r, models = _run(tmp_path / "run", net, routes, timing={"all_red_s": 5.0}, duration_s=30)
    model = models[0]
    crosswalk = {i for c in model["crosswalks"] for i in c["links"]}
    ped = next(p for p in model["phases"] if set(p["green_links"]) <= crosswalk)
    assert model["timing"]["phase_yellow_s"][ped["index"]] == 0.0
    assert model["timing"]["phase_all_red_s"][ped["index"]] == 5.0
