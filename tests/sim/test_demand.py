"""Repeated demand (`repeat_routes`): a live run of many hours keeps its traffic."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from signalwise.sim.backend import SumoBackend, SumoOptions
from signalwise.sim.demand import DemandError, repeat_routes
from signalwise.sim.scenario import load


def _departed(opts: SumoOptions, steps: int) -> list[str]:
    ids = []
    with SumoBackend(opts) as b:
        for _ in range(steps):
            b.step()
            ids += b.api.simulation.getDepartedIDList()
    return ids


def test_corridor_demand_repeats_every_hour_and_sumo_runs_it(tmp_path):
    """SUMO loads the file, and vehicles of the second and third repetition depart in the second and third hour."""
    s = load("corridor")
    routes = repeat_routes(s.route_files, 3600.0, 3 * 3600.0, tmp_path / "demand.rou.xml")
    for hour in (1, 2):
        opts = SumoOptions(net_file=s.net_file, route_files=(routes,), begin_s=hour * 3600.0 + 600, seed=1)
        departed = _departed(opts, 300)
        assert len(departed) > 30, f"hour {hour + 1}: too little traffic"
        assert all(f"#{hour}." in v for v in departed), f"hour {hour + 1}: {departed[:5]}"  # flow id#k.index


def test_repetitions_shift_times_rename_ids_and_stop_at_the_end(tmp_path):
    s = load("single")
    original = ET.parse(s.route_files[0]).getroot()
    out = ET.parse(repeat_routes(s.route_files, 3600.0, 9000.0, tmp_path / "r.rou.xml")).getroot()
    defs = ("vType", "vTypeDistribution", "route", "routeDistribution")
    for tag in defs:  # written once
        assert len(out.findall(tag)) == len(original.findall(tag))
    flows = {f.get("id"): f for f in out if f.tag in ("flow", "personFlow")}
    begins = [float(f.get("begin")) for f in original if f.tag in ("flow", "personFlow")]
    assert len(flows) == sum(1 for b in begins for k in range(3) if b + k * 3600 < 9000)  # the last hour is cut
    assert "W_C.w2#2" not in flows and "W_C.w1#2" in flows  # the last window would begin at 9600
    bus = flows["bus_WE#2"]
    assert (bus.get("begin"), bus.get("end")) == ("7260", "9000")  # shifted by 2 h, cut at the end
    peds = [f for f in out if f.tag == "personFlow"]
    assert peds and all(len(p.findall("walk")) == 1 for p in peds)
    starts = [float(e.get("begin")) for e in out if e.tag not in defs]
    assert starts == sorted(starts)  # SUMO reads route files incrementally


def test_vehicles_and_flows_without_an_end(tmp_path):
    src = tmp_path / "in.rou.xml"
    src.write_text("""<routes>
        <vType id="car"/>
        <route id="r" edges="a b"/>
        <vehicle id="v" type="car" route="r" depart="10"/>
        <flow id="f" type="car" route="r" begin="5" period="60"/>
        <flow id="g" type="car" route="r" begin="0" number="3" period="100"/>
        <trip id="t" from="a" to="b" depart="3599"/>
        <interval begin="100" end="200"><flow id="i" route="r" period="10"/></interval>
    </routes>""")
    out = ET.parse(repeat_routes([src], 3600.0, 7200.0, tmp_path / "out.rou.xml")).getroot()
    got = {e.get("id"): e.attrib for e in out if e.tag not in ("vType", "route")}
    assert got["v#1"]["depart"] == "3610" and got["t#1"]["depart"] == "7199"
    assert (got["f"]["begin"], got["f"]["end"]) == ("5", "3600")  # endless in SUMO: one period's worth
    assert (got["f#1"]["begin"], got["f#1"]["end"]) == ("3605", "7200")
    assert "end" not in got["g#1"] and got["g#1"]["number"] == "3"
    assert (got["i#1"]["begin"], got["i#1"]["end"]) == ("3700", "3800")
    assert len(got) == 10


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "bad.rou.xml"
    bad.write_text("<routes><flow id='x'")
    with pytest.raises(DemandError, match="bad.rou.xml"):
        repeat_routes([bad], 3600.0, 7200.0, tmp_path / "out.rou.xml")
    with pytest.raises(DemandError, match="period"):
        repeat_routes([bad], 0.0, 7200.0, tmp_path / "out.rou.xml")
