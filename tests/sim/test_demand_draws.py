"""What of the demand a seed draws, read from the route files: the built-in scenarios draw it per seed, RESCO's
and randomTrips' route files fix it (SUMO's own randomness still varies with the seed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from signalwise.sim.demand_draws import seed_draws
from signalwise.sim.scenario import load

HEAD = '<routes>\n  <vType id="car"/>\n  <vType id="truck"/>\n'


def _routes(tmp_path: Path, body: str, name: str = "r.rou.xml") -> Path:
    path = tmp_path / name
    text = HEAD + body + "</routes>\n"
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(("body", "draws"), [
    ('  <vehicle id="v" depart="0"><route edges="a b"/></vehicle>\n  <trip id="t" depart="3" from="a" to="b"/>\n', ()),
    ('  <flow id="f" begin="0" end="60" period="2" from="a" to="b"/>\n', ()),
    ('  <flow id="f" begin="0" end="60" vehsPerHour="600" from="a" to="b"/>\n', ()),
    ('  <flow id="f" begin="0" end="60" period="exp(0.2)" from="a" to="b"/>\n', ("arrivals",)),
    ('  <flow id="f" begin="0" end="60" probability="0.1" from="a" to="b"/>\n', ("arrivals",)),
    ('  <vTypeDistribution id="mix" vTypes="car truck" probabilities="0.9 0.1"/>\n', ("vehicle types",)),
    ('  <vTypeDistribution id="one" vTypes="car"/>\n', ()),
    ('  <routeDistribution id="d"><route id="r1" edges="a b" probability="0.5"/>'
     '<route id="r2" edges="a c" probability="0.5"/></routeDistribution>\n', ("routes",)),
    ('  <routeDistribution id="d"><route id="r1" edges="a b"/></routeDistribution>\n', ()),
    ('  <trip id="t" depart="0" fromTaz="z1" toTaz="z2"/>\n', ("origins and destinations",)),
])
def test_what_the_seed_draws_of_the_demand(tmp_path, body, draws):
    assert seed_draws([_routes(tmp_path, body)]) == draws
    assert seed_draws([_routes(tmp_path, body, "r.rou.xml.gz")]) == draws  # a gzipped city file reads the same


def test_the_draws_of_several_files_together_and_a_missing_file_draws_nothing(tmp_path):
    a = _routes(tmp_path, '  <flow id="f" begin="0" end="60" period="exp(0.2)" from="a" to="b"/>\n', "a.rou.xml")
    b = _routes(tmp_path, '  <vTypeDistribution id="mix" vTypes="car truck"/>\n', "b.rou.xml")
    assert seed_draws([b, tmp_path / "missing.rou.xml", a]) == ("arrivals", "vehicle types")


def test_the_built_in_scenarios_draw_their_demand_and_resco_networks_fix_it():
    for name in ("single", "corridor", "grid", "grid10x10"):
        sc = load(name)
        assert seed_draws(sc.route_files) == ("arrivals", "routes", "vehicle types"), name
    for name in ("cologne1", "ingolstadt21", "grid4x4"):
        assert seed_draws(load(f"resco:{name}").route_files) == (), name
