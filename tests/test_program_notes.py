"""What a run says of a network's signal programs it does not follow (a WAUT's switches, an actuated program's own
minDur/maxDur), and the red clearance of a cyclist's link. Every network is built here by SUMO's own netconvert and
run by SUMO (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import sumolib
from support.networks import netconvert_network

from signalwise.analytics.safety_audit import audit_run
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import run_loop
from signalwise.runtime.run import execute_run

ARMS = {"W": (-200, 0), "E": (200, 0), "N": (0, 200), "S": (0, -200)}
#: the red clearance caps: a motor vehicle's, and a cyclist's (the longest all_red_s a configuration takes)
CAR_CAP_S, CYCLIST_CAP_S = 4.0, 6.0
CYCLIST_MPS = 20 / 3.6


def _crossing(folder: Path, ns_lanes: int = 1, ns_speed_mps: float = 13.89, bike_lanes: bool = False) -> Path:
    """One signal C: an east-west road of two lanes each way (with a bicycle lane on the right when `bike_lanes`)
    and a north-south road of `ns_lanes` lanes each way at `ns_speed_mps`."""
    nodes = ['<node id="C" x="0" y="0" type="traffic_light"/>',
             *(f'<node id="{k}" x="{x}" y="{y}" type="priority"/>' for k, (x, y) in ARMS.items())]
    bike = '<lane index="0" allow="bicycle" width="2"/>' if bike_lanes else ""
    edges = []
    for a in "WE":
        edges += [f'<edge id="{a}C" from="{a}" to="C" numLanes="3" speed="13.89">{bike}</edge>',
                  f'<edge id="C{a}" from="C" to="{a}" numLanes="3" speed="13.89">{bike}</edge>']
    for a in "NS":
        edges += [f'<edge id="{a}C" from="{a}" to="C" numLanes="{ns_lanes}" speed="{ns_speed_mps}"/>',
                  f'<edge id="C{a}" from="C" to="{a}" numLanes="{ns_lanes}" speed="{ns_speed_mps}"/>']
    return netconvert_network(folder, "crossing", "<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n",
                              "<edges>\n" + "\n".join(edges) + "\n</edges>\n", "--no-turnarounds")


def _routes(folder: Path, bikes: bool = False) -> Path:
    routes = folder / "traffic.rou.xml"
    flows = "\n".join(f'<flow id="f{a}" begin="0" end="120" period="12" from="{a}C" to="C{b}"/>'
                      for a, b in (("W", "E"), ("E", "W"), ("N", "S"), ("S", "N")))
    cyclists = ('<vType id="bike" vClass="bicycle"/>\n<flow id="bikes" type="bike" begin="0" end="120" period="15" '
                'from="WC" to="CE"/>\n') if bikes else ""
    routes.write_text(f"<routes>\n{cyclists}{flows}\n</routes>\n")
    return routes


def _sumocfg(folder: Path, net: Path, routes: Path, programs: str) -> Path:
    (folder / "programs.add.xml").write_text(f"<additional>\n{programs}\n</additional>\n")
    cfg = folder / "run.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{net.name}"/><route-files value="{routes.name}"/>'
                   '<additional-files value="programs.add.xml"/></input>'
                   '<time><begin value="0"/><end value="120"/></time></configuration>')
    return cfg


def _own_program(net: Path) -> list[tuple[str, float]]:
    """(state, duration) of each phase of netconvert's program for C."""
    program = next(iter(sumolib.net.readNet(str(net), withPrograms=True).getTLS("C").getPrograms().values()))
    return [(p.state, float(p.duration)) for p in program.getPhases()]


def _tl_logic(program_id: str, tls_type: str, phases: list[tuple[str, float]], green_bounds: str = "") -> str:
    rows = "".join(f'<phase duration="{d:g}" state="{s}"{green_bounds if "G" in s or "g" in s else ""}/>'
                   for s, d in phases)
    return f'<tlLogic id="C" type="{tls_type}" programID="{program_id}" offset="0">{rows}</tlLogic>'


def _notes(run_dir: Path, tls_id: str = "C") -> list[str]:
    return next(s["notes"] for s in json.loads((run_dir / "signal_model.json").read_text()) if s["id"] == tls_id)


def test_a_signal_a_waut_switches_says_which_program_runs_and_that_the_switches_are_not_followed(tmp_path):
    """SUMO switches C to 'night' at 60 s; the run's model is 'day', the program at its begin, for the whole
    run: `fixed` said nothing of it, and its baseline was silently the first plan only."""
    net = _crossing(tmp_path)
    day = _own_program(net)
    night = [(s, d / 2 if "y" not in s else d) for s, d in day]
    waut = ('<WAUT startProg="day" refTime="0" id="w1"><wautSwitch to="day" time="0"/>'
            '<wautSwitch to="night" time="60"/></WAUT><wautJunction junctionID="C" wautID="w1"/>')
    cfg = _sumocfg(tmp_path, net, _routes(tmp_path),
                   _tl_logic("day", "static", day) + _tl_logic("night", "static", night) + waut)
    r = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=30, emissions=False), tmp_path / "run")
    said = [n for n in _notes(r.run_dir) if "WAUT 'w1'" in n]
    assert len(said) == 1, _notes(r.run_dir)
    assert "at 60 s to 'night'" in said[0] and "program 'day'" in said[0] and "no controller" in said[0]
    warned = [w for w in r.metrics.get("warnings", []) if "WAUT 'w1'" in w]
    assert len(warned) == 1 and "signal 'C'" in warned[0], r.metrics.get("warnings")


def test_an_actuated_programs_own_min_and_max_greens_are_named_as_not_used(tmp_path):
    """C's program is actuated with minDur 8-12 s and maxDur 15-25 s on its greens; every controller times the
    run's min_green_s / max_green_s instead, and nothing said so."""
    net = _crossing(tmp_path)
    phases = _own_program(net)
    greens = [k for k, (s, _) in enumerate(phases) if "G" in s or "g" in s]
    rows = "".join(f'<phase duration="{d:g}" state="{s}"'
                   + (f' minDur="{8 + 4 * (k == greens[0])}" maxDur="{15 + 10 * (k == greens[0])}"'
                      if k in greens else "") + "/>" for k, (s, d) in enumerate(phases))
    cfg = _sumocfg(tmp_path, net, _routes(tmp_path),
                   f'<tlLogic id="C" type="actuated" programID="act" offset="0">{rows}</tlLogic>')
    loop = run_loop(RunConfig(sumocfg=cfg, controller="actuated", duration_s=20, emissions=False), tmp_path / "run")
    signal = next(i for i in loop.intersections if i.id == "C")
    said = [n for n in signal.notes if "minDur" in n]
    assert len(said) == 1, signal.notes
    assert "minDur 8-12 s and maxDur 15-25 s are not used" in said[0]
    assert f"min green {signal.timing.min_green_s[0]:g} s" in said[0]
    assert "timing.per_intersection" in said[0]
    from signalwise.sim.signal_model import timing_warnings

    warned = [w for w in timing_warnings(loop.intersections) if "minDur" in w]
    assert len(warned) == 1 and warned[0].startswith("signal(s) C:"), warned


def _needs_s(net: Path, bike: bool) -> dict[int, float]:
    """Link index -> ITE red clearance before any cap, from the network file: bicycle lanes at 20 km/h, the rest at
    their speed limit."""
    network = sumolib.net.readNet(str(net), withInternal=True)
    out: dict[int, float] = {}
    for in_lane, out_lane, index in network.getTLS("C").getConnections():
        if (in_lane.getPermissions() == {"bicycle"}) != bike:
            continue
        conn = next(c for c in in_lane.getOutgoing() if c.getToLane() == out_lane and c.getTLLinkIndex() == index)
        path_m, via = 0.0, conn.getViaLaneID()
        while via:
            lane = network.getLane(via)
            path_m += lane.getLength()
            via = next((c.getViaLaneID() for c in lane.getOutgoing() if c.getViaLaneID()), "")
        speed = min(in_lane.getSpeed(), CYCLIST_MPS) if bike else in_lane.getSpeed()
        out[index] = max(out.get(index, 0.0), (path_m + 6.1) / speed)  # ITE: (W + 6.1 m vehicle) / v
    return out


def test_a_cyclists_red_clearance_is_the_crossing_it_needs_and_a_cars_keeps_its_cap(tmp_path):
    """The bicycle lanes cross a north-south road of three lanes each way (a 23.2 m path: 5.3 s at 20 km/h);
    their red clearance was capped at a car's 4 s. The slow (4 m/s) north-south road's links need up to 6.7 s
    too, and keep the cap."""
    net = _crossing(tmp_path, ns_lanes=3, ns_speed_mps=4.0, bike_lanes=True)
    bike, motor = _needs_s(net, bike=True), _needs_s(net, bike=False)
    assert bike and max(bike.values()) >= 5.0 and max(bike.values()) < CYCLIST_CAP_S
    r = execute_run(RunConfig(net=net, routes=[_routes(tmp_path, bikes=True)], controller="fixed", duration_s=30,
                              emissions=False), tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    all_red = model["timing"]["phase_all_red_s"]
    motor_only = 0
    for p in model["phases"]:
        cyclists = [bike[i] for i in p["green_links"] if i in bike]
        if cyclists:
            assert all_red[p["index"]] >= round(max(cyclists), 1) >= 5.0
        else:
            needs = [motor[i] for i in p["green_links"] if i in motor]
            if max(needs) > CAR_CAP_S:
                assert all_red[p["index"]] == CAR_CAP_S
                motor_only += 1
    assert motor_only  # a motor phase that needs more than the cap: the test would not see it lifted otherwise
    assert not [n for n in model["notes"] if "cyclist" in n]
    assert audit_run(r.run_dir).ok  # the audit holds the signal to the model's longer clearance, and it holds


def test_where_even_the_longest_red_clearance_cuts_a_cyclists_crossing_the_signal_says_so(tmp_path):
    """Four lanes each way to cross: a 29.6 m path, 6.4 s at 20 km/h, more than the 6 s all_red_s may be."""
    net = _crossing(tmp_path, ns_lanes=4, bike_lanes=True)
    need = max(_needs_s(net, bike=True).values())
    assert need > CYCLIST_CAP_S + 0.05
    loop = run_loop(RunConfig(net=net, routes=[_routes(tmp_path, bikes=True)], controller="fixed", duration_s=10,
                              emissions=False), tmp_path / "run")
    signal = loop.intersections[0]
    assert max(signal.timing.phase_all_red_s) == CYCLIST_CAP_S
    cut = [n for n in signal.notes if "cyclist" in n]
    assert len(cut) == 1 and "red clearance cut to 6 s" in cut[0], signal.notes
    from signalwise.sim.signal_model import timing_warnings

    warned = [w for w in timing_warnings(loop.intersections) if "cyclist" in w]
    assert len(warned) == 1 and warned[0].startswith("signal 'C': red clearance cut to 6 s"), warned
    assert f"needs {need:.1f} s" in warned[0]


def test_a_cycle_bound_too_short_for_the_minimums_is_raised_and_a_batch_run_says_so(tmp_path):
    """min_green_s 60 on four phases cannot fit in a 150 s cycle with their yellows and all-reds: the bound is
    raised to fit (as a live timing change raises it), and the run's warnings name the signal and the new bound."""
    from signalwise.sim.signal_model import timing_warnings

    cfg = RunConfig(scenario="single", controller="fixed", duration_s=10, emissions=False,
                    timing={"min_green_s": 60.0, "cycle_max_s": 150.0})
    loop = run_loop(cfg, tmp_path / "run")
    signal = loop.intersections[0]
    assert signal.timing.cycle_max_s > 150.0
    warned = [w for w in timing_warnings(loop.intersections) if "cycle bound raised" in w]
    assert len(warned) == 1 and warned[0].startswith(f"signal {signal.id!r}: cycle bound raised"), warned
    assert f"raised to {signal.timing.cycle_max_s:g} s" in warned[0]
