"""A protected left that becomes permitted ('G' -> 'g') is ended by a yellow under the safety profile.

A leading protected left (phase 1: the east-west left turns 'G'), then the through phase that permits them
('g'), on a four-arm junction built by netconvert; the program shows the yellow arrow between the two, as a
network's own program would. Under the safety profile (`timing.protected_yellow`) the left links show the
ending phase's yellow, then red for its red clearance, then 'g'; under the benchmark profile (RESCO's rule)
they stay green through the change. The independent audit holds a run to the flag its signal model records.
"""

from __future__ import annotations

import csv
import json

import pytest
import sumolib
from pydantic import ValidationError
from support.networks import netconvert_network

from signalwise.analytics.safety_audit import audit
from signalwise.core import SignalEvent
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

NODES = """<nodes>
  <node id="C" x="0" y="0" type="traffic_light"/>
  <node id="W" x="-200" y="0"/><node id="E" x="200" y="0"/><node id="N" x="0" y="200"/><node id="S" x="0" y="-200"/>
</nodes>"""
EDGES = "<edges>" + "".join(
    f'<edge id="{a}C" from="{a}" to="C" numLanes="1" speed="13.89"/><edge id="C{a}" from="C" to="{a}" numLanes="1" '
    f'speed="13.89"/>' for a in "WENS") + "</edges>"
#: the left turn of each approach (right-hand traffic): heading east from W, north is on the left
LEFT_OUT = {"W": "N", "E": "S", "N": "E", "S": "W"}
GREEN_S = {"left": 10, "ew": 25, "ns": 25}


def _links(net_file) -> dict[int, tuple[str, str]]:
    """Link index of signal C -> (approach, 'left' | 'through')."""
    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    out = {}
    for in_lane, out_lane, index in net.getTLS("C").getConnections():
        a, b = in_lane.getEdge().getID()[0], out_lane.getEdge().getID()[1]
        out[index] = (a, "left" if LEFT_OUT[a] == b else "through")
    return out


def _state(links: dict[int, tuple[str, str]], rule) -> str:
    return "".join(rule(*links[i]) for i in range(len(links)))


@pytest.fixture(scope="module")
def leading_left(tmp_path_factory):
    """The network, its routes and a program with a leading protected east-west left; (sumocfg, left links)."""
    folder = tmp_path_factory.mktemp("leading_left")
    net = netconvert_network(folder, "cross", NODES, EDGES, "--no-turnarounds")
    links = _links(net)
    ew_left = [i for i, (a, kind) in links.items() if a in "WE" and kind == "left"]
    left = _state(links, lambda a, kind: "G" if a in "WE" and kind == "left" else "r")
    left_yellow = left.replace("G", "y")
    ew = _state(links, lambda a, kind: ("g" if kind == "left" else "G") if a in "WE" else "r")
    ns = _state(links, lambda a, kind: ("g" if kind == "left" else "G") if a in "NS" else "r")
    phases = [(GREEN_S["left"], left), (3, left_yellow), (GREEN_S["ew"], ew), (3, ew.replace("G", "y").replace(
        "g", "y")), (2, "r" * len(links)), (GREEN_S["ns"], ns), (3, ns.replace("G", "y").replace("g", "y")),
        (2, "r" * len(links))]
    (folder / "lead.add.xml").write_text(
        '<additional><tlLogic id="C" type="static" programID="leadleft" offset="0">' + "".join(
            f'<phase duration="{d}" state="{s}"/>' for d, s in phases) + "</tlLogic></additional>")
    (folder / "cross.rou.xml").write_text('<routes><vType id="car"/>' + "".join(
        f'<flow id="{a}{b}" type="car" from="{a}C" to="C{b}" begin="0" end="200" vehsPerHour="300"/>'
        for a in "WENS" for b in "WENS" if a != b) + "</routes>")
    (folder / "lead.sumocfg").write_text(
        '<configuration><input><net-file value="cross.net.xml"/><route-files value="cross.rou.xml"/>'
        '<additional-files value="lead.add.xml"/></input><time><begin value="0"/><end value="200"/></time>'
        "</configuration>")
    return folder / "lead.sumocfg", ew_left


def _run(sumocfg, run_dir, timing=None):
    cfg = RunConfig(sumocfg=sumocfg, controller="fixed", duration_s=120, emissions=False, record="lean",
                    **({"timing": timing} if timing else {}))
    result = execute_run(cfg, run_dir)
    assert result.status == "complete"
    with open(result.run_dir / "signal_states.csv") as f:
        states = [(float(r["time_s"]), r["state"]) for r in csv.DictReader(f) if r["device_id"] == "C"]
    model = next(m for m in json.loads((result.run_dir / "signal_model.json").read_text()) if m["id"] == "C")
    return result, states, model


def _after_protected(states: list[tuple[float, str]], link: int) -> list[list[tuple[float, str]]]:
    """For each end of the link's protected green: the (time, char) of its next three changes."""
    changes = [(t, s[link]) for k, (t, s) in enumerate(states) if k == 0 or states[k - 1][1][link] != s[link]]
    return [changes[k + 1:k + 4] for k, (_, c) in enumerate(changes[:-1]) if c == "G"]


def test_safety_profile_ends_the_protected_left_with_yellow_then_red_then_its_permitted_green(leading_left,
                                                                                             tmp_path):
    sumocfg, ew_left = leading_left
    result, states, model = _run(sumocfg, tmp_path / "safety")
    timing = model["timing"]
    assert timing["protected_yellow"] is True
    yellow_s, all_red_s = timing["phase_yellow_shown_s"][0], timing["phase_all_red_shown_s"][0]
    assert yellow_s >= 3 and all_red_s >= 1
    for link in ew_left:
        ends = _after_protected(states, link)
        assert ends, f"link {link} never ended a protected green"
        for (ty, y), (tr, r), (tg, g) in ends[:1]:
            assert (y, r, g) == ("y", "r", "g"), ends
            assert (tr - ty, tg - tr) == (yellow_s, all_red_s)
    assert result.metrics["safety"]["violations"] == 0
    assert result.metrics["safety"]["checked"]["protected_yellow"] >= len(ew_left)


def test_benchmark_profile_keeps_the_direct_change_from_protected_to_permitted(leading_left, tmp_path):
    sumocfg, ew_left = leading_left
    result, states, model = _run(sumocfg, tmp_path / "benchmark", timing="benchmark")
    assert model["timing"]["protected_yellow"] is False
    for link in ew_left:
        ends = _after_protected(states, link)
        assert ends and ends[0][0][1] == "g", ends  # RESCO's rule: no yellow for a link that stays green
    assert result.metrics["safety"]["violations"] == 0


def test_the_flag_is_the_safety_profiles_and_only_the_others_leave_it():
    assert RunConfig().timing.protected_yellow is True
    assert RunConfig(timing="benchmark").timing.protected_yellow is False
    assert RunConfig(timing="reference").timing.protected_yellow is False
    with pytest.raises(ValidationError, match="protected_yellow false .* only the benchmark and reference"):
        RunConfig(timing={"protected_yellow": False})


# -- the audit, on hand-written evidence --------------------------------------------------------------------------
#: link 0 a left turn (protected in phase 1, permitted in phase 2), link 1 the through beside it, link 2 the cross
#: street; each phase 10 s at least, 3 s yellow, 2 s red clearance
GREEN = {1: "Grr", 2: "gGr", 3: "rrG"}


def _model(**timing) -> list[dict]:
    t = {"yellow_s": 3.0, "all_red_s": 2.0, "min_green_s": [10.0] * 3, "max_green_s": [60.0] * 3,
         "ped_walk_s": 0.0, "ped_clearance_s": 0.0, "cycle_min_s": 30.0, "cycle_max_s": 120.0, **timing}
    return [{"id": "A", "n_links": 3,
             "phases": [{"index": p - 1, "number": p, "green_state": s,
                         "green_links": [i for i, c in enumerate(s) if c in "Gg"]} for p, s in GREEN.items()],
             "links": [{"index": i, "in_lane": f"in{i}", "out_lane": f"out{i}", "crosswalk": False}
                       for i in range(3)],
             "crosswalks": [], "timing": t}]


def _events() -> list[SignalEvent]:
    """Phases 1, 2, 3 then 1 again, each 10 s of green, 3 s of yellow, 2 s of red clearance."""
    out, t = [], 0.0
    for p in (1, 2, 3):
        out += [(t, 1, p), (t + 10, 8, p), (t + 13, 9, p), (t + 13, 10, p), (t + 15, 11, p)]
        t += 15
    out.append((t, 1, 1))
    return [SignalEvent(t, "A", code, p) for t, code, p in out]


def _states(left_change: list[tuple[float, str]]) -> list[tuple[float, str, str]]:
    """The states of `_events`, with the change from phase 1 to phase 2 as given."""
    rest = [(15.0, "gGr"), (25.0, "yyr"), (28.0, "rrr"), (30.0, "rrG"), (40.0, "rry"), (43.0, "rrr"), (45.0, "Grr")]
    return [(t, "A", s) for t, s in [(0.0, "Grr"), *left_change, *rest]]


#: what the shield showed without protected_yellow: the left stays green ('g') through the change
DIRECT = [(10.0, "grr")]
#: with it: yellow, red clearance, then the permitted green
CLEARED = [(10.0, "yrr"), (13.0, "rrr")]


def test_audit_fails_a_protected_green_going_to_permitted_without_yellow_under_the_flag():
    report = audit(_events(), _model(protected_yellow=True), _states(DIRECT), 1.0)
    assert {(v.rule, v.link, v.time_s) for v in report.violations} == {("protected_yellow", 0, 10.0)}


def test_audit_passes_the_cleared_change_and_runs_without_the_flag_as_before():
    cleared = audit(_events(), _model(protected_yellow=True), _states(CLEARED), 1.0)
    assert cleared.ok, [str(v) for v in cleared.violations]
    assert cleared.checked["protected_yellow"] == 1
    for timing in ({"protected_yellow": False}, {}):  # {}: a run directory written before the key
        report = audit(_events(), _model(**timing), _states(DIRECT), 1.0)
        assert report.ok and report.checked["protected_yellow"] == 0, [str(v) for v in report.violations]


def test_audit_fails_a_short_yellow_that_leads_straight_to_the_permitted_green_and_its_missing_red():
    """The left's 2 s yellow (13 -> 15) goes straight to 'g' as the through is released: too short a yellow, and
    no red clearance after it before the through's green."""
    short = audit(_events(), _model(protected_yellow=True), _states([(13.0, "yrr")]), 1.0)
    assert sorted((v.rule, v.link, v.measured_s) for v in short.violations) == [
        ("link_all_red", 1, 0.0), ("protected_yellow", 0, 2.0)]
