"""Unusual phase structures on a real network: controlled safely, or refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signalwise.analytics.safety_audit import audit_run
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError
from signalwise.sim.scenario import load
from signalwise.sim.signal_model import UnsupportedSignal, green_phases_with_durations

SINGLE = load("single")

# 20 links: 0-2 E approach, 3 E left, 4-6 N, 7 N left, 8-10 W, 11 W left, 12-14 S, 15 S left, 16-19 crosswalks
PROGRAMS = {
    # greens only: no yellow phases at all (common in hand-made networks)
    "no_yellow": [("gGGrrrrrgGGrrrrrrGrG", 30), ("rrrGrrrrrrrGrrrrrrrr", 10),
                  ("rrrrgGGrrrrrgGGrGrGr", 30), ("rrrrrrrGrrrrrrrGrrrr", 10)],
    # extra phases: an all-red phase, a duplicate, and a pedestrian-only phase
    "extra_phases": [("gGGrrrrrgGGrrrrrrGrG", 25), ("yyyrrrrryyyrrrrrrrrr", 3), ("rrrrrrrrrrrrrrrrrrrr", 2),
                     ("rrrrrrrrrrrrrrrrGGGG", 8), ("rrrrgGGrrrrrgGGrGrGr", 25), ("rrrryyyrrrrryyyrrrrr", 3),
                     ("gGGrrrrrgGGrrrrrrGrG", 5)],
    # overlapping greens: the protected left of E runs with E's through (lead-lag), and with W's left
    "overlapping": [("gGGGrrrrrrrrrrrrrrrr", 12), ("gGGrrrrrgGGrrrrrrGrG", 25), ("rrrGrrrrrrrGrrrrrrrr", 8),
                    ("rrrrgGGGrrrrrrrrrrrr", 10), ("rrrrgGGrrrrrgGGrGrGr", 25), ("rrrrrrrGrrrrrrrGrrrr", 8)],
}


def _scenario_with_program(tmp_path: Path, name: str, phases, scenario=SINGLE, tls_id: str = "C",
                           kind: str = "static", offset_s: float = 0) -> Path:
    tll = tmp_path / f"{name}.add.xml"
    rows = "\n".join(f'    <phase duration="{d}" state="{s}"/>' for s, d in phases)
    tll.write_text(f'<additional>\n  <tlLogic id="{tls_id}" type="{kind}" programID="{name}" offset="{offset_s:g}">\n'
                   f"{rows}\n  </tlLogic>\n</additional>\n")
    cfg = tmp_path / f"{name}.sumocfg"
    cfg.write_text(f"""<configuration><input>
  <net-file value="{scenario.net_file}"/><route-files value="{scenario.route_files[0]}"/>
  <additional-files value="{tll.name}"/></input>
  <time><begin value="0"/><end value="600"/></time></configuration>""")
    return cfg


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_unusual_programs_run_safely(tmp_path, name):
    cfg = _scenario_with_program(tmp_path, name, PROGRAMS[name])
    r = execute_run(RunConfig(sumocfg=cfg, controller="max-pressure", duration_s=600, emissions=False),
                    tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())[0]
    greens = {p["green_state"] for p in model["phases"]}
    assert all("y" not in s for s in greens)
    assert "rrrrrrrrrrrrrrrrrrrr" not in greens
    report = audit_run(r.run_dir)
    assert report.ok, report.violations[:3]
    assert r.metrics["network"]["throughput_veh"] > 50


def test_duplicates_are_merged_and_a_pedestrian_only_phase_is_kept():
    phases = green_phases_with_durations(PROGRAMS["extra_phases"], frozenset({16, 17, 18, 19}))
    # the exclusive pedestrian phase is a phase of its own: dropped, a crosswalk only it serves never sees a walk
    assert [s for s, _ in phases] == ["gGGrrrrrgGGrrrrrrGrG", "rrrrrrrrrrrrrrrrGGGG", "rrrrgGGrrrrrgGGrGrGr"]
    assert phases[0][1] == 30  # the duplicate's green time is added to its twin
    assert phases[1][1] == 8


def test_off_blinking_program_is_refused_with_a_reason(tmp_path):
    cfg = _scenario_with_program(tmp_path, "blinking", [("OOOOOOOOOOOOOOOOOOOO", 30)])
    with pytest.raises(SimulationError, match="C: program has off/blinking states"):
        execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=60, emissions=False), tmp_path / "run")
    with pytest.raises(UnsupportedSignal):
        green_phases_with_durations([("OOO", 5)], frozenset())


def test_a_single_green_phase_program_is_refused_and_the_others_run(tmp_path):
    cfg = _scenario_with_program(tmp_path, "always", [("gGGrrrrrgGGrrrrrrGrG", 60)])
    with pytest.raises(SimulationError, match="C: program 'always' has a single green phase"):
        execute_run(RunConfig(sumocfg=cfg, controller="max-pressure", duration_s=60, emissions=False),
                    tmp_path / "run1")
    cfg = _scenario_with_program(tmp_path, "always", [("rrrrGGGGrrrrrGGGGr", 60)], scenario=load("corridor"),
                                 tls_id="J3")
    r = execute_run(RunConfig(sumocfg=cfg, controller="max-pressure", duration_s=300, emissions=False),
                    tmp_path / "run2")
    assert [x["id"] for x in r.metrics["refused_signals"]] == ["J3"]
    assert "single green phase" in r.metrics["refused_signals"][0]["reason"]
    model = json.loads((r.run_dir / "signal_model.json").read_text())
    assert sorted(i["id"] for i in model) == ["J1", "J2", "J4", "J5"]
    states = (r.run_dir / "signal_states.csv").read_text()
    assert ",J3," not in states and ",J2," in states  # J3 keeps its own program: we never set it
    report = audit_run(r.run_dir)
    assert report.ok
    # J3's detectors are logged (ATSPM reads them); the audit has no signal of it to check, and says nothing
    assert ",J3," in (r.run_dir / "events.csv").read_text()
    assert not [w for w in report.warnings if w.rule == "unknown_device"], report.warnings


def test_timing_is_derived_from_geometry():
    # one short run to read the model SUMO builds
    import tempfile

    from signalwise.runtime.loop import run_loop

    with tempfile.TemporaryDirectory() as d:
        loop = run_loop(RunConfig(scenario="single", controller="fixed", duration_s=5, emissions=False), Path(d))
    t = loop.intersections[0].timing
    assert 3.0 <= t.yellow_s <= 6.0  # ITE, 50 km/h approach -> 3.3 s
    assert t.all_red_s >= 1.0
    assert t.ped_clearance_s == pytest.approx(max(c.length_m for c in loop.intersections[0].crosswalks) / 1.1, abs=0.1)
    served = loop.intersections[0].phases_serving_crosswalk()
    for p in served:
        assert t.min_green_s[p] >= t.ped_walk_s + t.ped_clearance_s


def _ite_change_per_link(net_file: Path, tls_id: str) -> dict[int, tuple[float, float]]:
    """Link index -> (ITE yellow, ITE red clearance) from the network file alone (sumolib), for vehicle links."""
    import sumolib

    from signalwise.core import ite_all_red_s, ite_yellow_s

    net = sumolib.net.readNet(str(net_file), withInternal=True)
    out = {}
    for in_lane, out_lane, index in net.getTLS(tls_id).getConnections():
        conn = next(c for c in in_lane.getOutgoing() if c.getTLLinkIndex() == index and c.getToLane() == out_lane)
        if in_lane.getEdge().getFunction() == "walkingarea" or conn.getViaLaneID() == "":
            continue
        speed = in_lane.getSpeed()
        path = _path_across_m(net, conn.getViaLaneID())
        yellow, all_red = out.get(index, (0.0, 0.0))  # a signal index may serve several connections
        out[index] = (max(yellow, ite_yellow_s(speed)), max(all_red, ite_all_red_s(path, speed)))
    return out


def _path_across_m(net, via: str) -> float:
    """The length of every internal lane from `via` to the outgoing lane, read from the network file."""
    total = 0.0
    while via:
        lane = net.getLane(via)
        total += lane.getLength()
        via = next((c.getViaLaneID() for c in lane.getOutgoing() if c.getViaLaneID()), "")
    return total


def test_each_phase_ends_with_the_change_interval_its_own_links_need(tmp_path):
    """ITE works yellow and red clearance out per approach. cologne8's signals mix approach speeds and paths:
    one junction-wide value (fastest speed, longest path) gave some slow, long links too short a red clearance."""
    cfg = RunConfig(scenario="resco:cologne8", controller="max-pressure", duration_s=120, emissions=False)
    r = execute_run(cfg, tmp_path / "run")
    model = json.loads((r.run_dir / "signal_model.json").read_text())
    net_file = load("resco:cologne8").net_file
    differing = 0
    for device in model:
        timing = device["timing"]
        per_link = _ite_change_per_link(net_file, device["id"])
        for phase in device["phases"]:
            links = [i for i in phase["green_links"] if i in per_link]
            assert timing["phase_yellow_s"][phase["index"]] == max(per_link[i][0] for i in links)
            assert timing["phase_all_red_s"][phase["index"]] == max(per_link[i][1] for i in links)
        differing += len(set(timing["phase_yellow_s"]) | set(timing["phase_all_red_s"])) > 2
        assert timing["yellow_s"] == max(timing["phase_yellow_s"])
        assert timing["all_red_s"] == max(timing["phase_all_red_s"])
    assert differing >= 1  # the network does mix them: the test would not notice a junction-wide value otherwise
    report = audit_run(r.run_dir)
    assert report.ok and report.checked["all_red"] > 0 and report.checked["link_all_red"] > 0


def test_a_configured_change_interval_applies_to_every_phase_and_geometry_fills_the_rest():
    from signalwise.core import Movement, Phase
    from signalwise.sim.signal_model import phase_change_intervals_s

    fast = Movement(0, "a_0", "b_0", False, 16.7, 30.0)   # 60 km/h, 30 m across
    slow = Movement(1, "c_0", "d_0", False, 8.3, 25.0)    # 30 km/h, 25 m across
    phases = (Phase(0, "Gr", (fast,)), Phase(1, "rG", (slow,)))
    yellow, all_red = phase_change_intervals_s(phases, 16.7, 30.0, None, None)
    assert yellow == (3.7, 3.0)               # 1 + v / 6.1, at least 3 s
    assert all_red == (2.2, 3.7)              # (path + 6.1 m) / v: the slow approach needs longer to clear
    assert phase_change_intervals_s(phases, 16.7, 30.0, 3.0, 0.0) == ((3.0, 3.0), (0.0, 0.0))
    assert phase_change_intervals_s(phases, 16.7, 30.0, None, 1.5)[1] == (1.5, 1.5)


def _generated_grid(folder: Path, tls_type: str) -> Path:
    """A 3x3 grid from SUMO's own netgenerate, two lanes, signals where SUMO guesses them, of `tls_type`."""
    import os
    import subprocess

    from signalwise.sim.sumo_home import sumo_home

    home = sumo_home()
    net = folder / f"{tls_type}.net.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "150", "-L",
                    "2", "--tls.guess", "--tls.default-type", tls_type, "-o", str(net)], check=True,
                   capture_output=True, env={**os.environ, "SUMO_HOME": str(home)})
    return net


def test_a_nema_dual_ring_program_is_refused_with_its_reason(tmp_path):
    """SUMO's NEMA controller greens a phase of each ring at once (2 and 6 together): read as a sequence of its
    phases, the two through movements of a road would never be green together, and `fixed` would run the
    phases' 90 s `duration`s one after the other. Refused by name; the same grid with actuated programs runs."""
    from signalwise.sim.backend import SumoBackend, SumoOptions

    nema, actuated = _generated_grid(tmp_path, "NEMA"), _generated_grid(tmp_path, "actuated")
    defaults = {"yellow_s": None, "all_red_s": None, "min_green_s": 5.0, "max_green_s": 60.0, "ped_walk_s": 7.0,
                "ped_clearance_s": None, "cycle_min_s": 40.0, "cycle_max_s": 150.0}
    with SumoBackend(SumoOptions(net_file=nema, end_s=1)) as backend:
        inters, refused = backend.read_signals(defaults)
    assert not inters and len(refused) == 5
    assert all("is NEMA dual-ring" in r.reason and "--tls.default-type static" in r.reason for r in refused)
    with SumoBackend(SumoOptions(net_file=actuated, end_s=1)) as backend:
        inters, refused = backend.read_signals(defaults)
    assert len(inters) == 5 and not refused
    routes = tmp_path / "r.rou.xml"
    routes.write_text('<routes><vehicle id="v" depart="0"><route edges="A0B0 B0C0"/></vehicle></routes>')
    with pytest.raises(SimulationError, match=r"no controllable traffic light \(A1, B0, B1, B2 and 1 more: program "
                                              r"'0' is NEMA dual-ring") as refusal:
        execute_run(RunConfig(net=nema, routes=[routes], controller="fixed", duration_s=30, emissions=False),
                    tmp_path / "run")
    assert str(refusal.value).count("NEMA") == 1  # one reason for five signals, said once


def _generated_protected_lefts(folder: Path, *options: str) -> Path:
    """A 2x2 grid from SUMO's netgenerate: two lanes and a left-turn lane, protected left phases."""
    import os
    import subprocess

    from signalwise.sim.sumo_home import sumo_home

    home = sumo_home()
    net = folder / "lefts.net.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "2", "--grid.length", "200",
                    "--grid.attach-length", "150", "-L", "2", "--turn-lanes", "1", "--tls.guess",
                    "--tls.left-green.time", "6", *options, "-o", str(net)], check=True, capture_output=True,
                   env={**os.environ, "SUMO_HOME": str(home)})
    return net


@pytest.mark.parametrize("options", [(), ("--tls.group-signals",)], ids=["one-link-per-index", "grouped-signals"])
def test_a_protected_left_clears_its_whole_path_across_the_junction(tmp_path, options):
    """A left turn that yields to oncoming traffic has its path across the junction split where it waits,
    mid-junction; its red clearance came from the first piece alone (1.0 s, the floor, for a 19 m turn). And a
    signal index serving several connections (grouped signals) was read as its first connection only: the
    others' paths were not cleared, and a lane none of whose connections came first was never observed."""
    import sumolib

    from signalwise.sim.backend import SumoBackend, SumoOptions

    net = _generated_protected_lefts(tmp_path, *options)
    defaults = {"yellow_s": None, "all_red_s": None, "min_green_s": 5.0, "max_green_s": 60.0, "ped_walk_s": 7.0,
                "ped_clearance_s": None, "cycle_min_s": 40.0, "cycle_max_s": 150.0}
    with SumoBackend(SumoOptions(net_file=net, end_s=1)) as backend:
        inters, refused = backend.read_signals(defaults)
    assert len(inters) == 4 and not refused
    for inter in inters:
        per_link = _ite_change_per_link(net, inter.id)
        for phase in inter.phases:
            links = [i for i in phase.green_links if i in per_link]
            assert inter.timing.phase_yellow_s[phase.index] == max(per_link[i][0] for i in links)
            assert inter.timing.phase_all_red_s[phase.index] == max(per_link[i][1] for i in links)
        assert min(inter.timing.phase_all_red_s) > 1.5  # the left-turn phases clear a full turn too
        signal = sumolib.net.readNet(str(net)).getTLS(inter.id)
        assert set(inter.in_lanes) == {lane.getID() for lane, _out, _i in signal.getConnections()}


G1, Y1, G2, Y2 = "gGGrrrrrgGGrrrrrrrrr", "yyyrrrrryyyrrrrrrrrr", "rrrrgGGrrrrrgGGrrrrr", "rrrryyyrrrrryyyrrrrr"


@pytest.mark.parametrize("name,program,options,says", [
    ("offset", PROGRAMS["no_yellow"], {"offset_s": 20}, "offset 20 s not applied"),
    ("actuated", PROGRAMS["no_yellow"], {"kind": "actuated"}, "the program is actuated: its phases' durations are "
                                                              "played as fixed greens"),
    ("twice", [(G1, 20), (Y1, 3), (G2, 20), (Y2, 3), (G1, 20), (Y1, 3), (G2, 20), (Y2, 3)], {},
     "the program serves a phase more than once a cycle"),
    ("long", [(G1, 90), (Y1, 3), (G2, 20), (Y2, 3)], {}, "greens longer than max_green_s are cut to it (phase 1 "
                                                        "90 s > 60 s)"),
])
def test_where_fixed_is_not_the_program_as_written_its_run_says_so(tmp_path, name, program, options, says):
    """The baseline every change is measured against: where it cannot be the city's program as SUMO would run
    it, a fixed-time run warns; another controller's run, which never plays the program, does not."""
    cfg = _scenario_with_program(tmp_path, name, program, **options)
    fixed = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=60, emissions=False), tmp_path / "f")
    plan = [w for w in fixed.metrics.get("warnings", []) if w.startswith("fixed at signal 'C' is not the network's program")]
    assert len(plan) == 1 and says in plan[0], fixed.metrics.get("warnings")
    assert "crosswalk" not in plan[0]  # no crosswalk variant was merged in these programs
    other = execute_run(RunConfig(sumocfg=cfg, controller="max-pressure", duration_s=60, emissions=False),
                        tmp_path / "m")
    assert not any("is not the network's program" in w for w in other.metrics.get("warnings", []))
    assert audit_run(fixed.run_dir).ok


@pytest.mark.slow
def test_a_single_phase_whose_links_are_red_for_good_says_so_and_compare_names_it(tmp_path, capsys):
    """A ramp meter's single phase is "always green"; a program that keeps some links red for good is not, and
    a comparison on such a network says before it starts which signal no controller of it runs."""
    import subprocess
    import sys

    cfg = _scenario_with_program(tmp_path, "half", [("rrrrGGGGrrrrrGGGGr", 60)], scenario=load("corridor"),
                                 tls_id="J3")
    r = execute_run(RunConfig(sumocfg=cfg, controller="fixed", duration_s=60, emissions=False), tmp_path / "run")
    (refused,) = r.metrics["refused_signals"]
    assert refused["id"] == "J3" and "has a single green phase (links [" in refused["reason"]
    from signalwise.runtime.commands import print_run_summary

    print_run_summary(r.metrics, r.run_dir)  # the queue row says whose queues it counts
    assert "avg / max queue (controlled signals)" in capsys.readouterr().out
    assert "are never green)" in refused["reason"] and "always green" not in refused["reason"]
    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "compare", "--sumocfg", str(cfg),
                        "-c", "fixed,max-pressure", "--seeds", "1", "--duration", "30", "--workers", "1",
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "warning: 1 signal(s) left to their own program, the same for every controller: J3: program" in p.stderr
