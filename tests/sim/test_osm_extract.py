"""An OpenStreetMap extract given where a SUMO file belongs is refused before any run directory is made, with
the netconvert command that makes a network of it; and that command, then randomTrips, then `signalwise run`,
work end to end on a tiny extract written here (docs/networks.md, "An OpenStreetMap extract").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SIGNALWISE = str(BIN / "signalwise")

#: two signalised junctions on a two-lane main street, 170 m apart, each crossed by a residential street: the
#: signals are mapped on the junction nodes, as OSM usually has them at a small junction
TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <bounds minlat="52.5000" minlon="13.4000" maxlat="52.5060" maxlon="13.4100"/>
  <node id="1" lat="52.5030" lon="13.4050" version="1"><tag k="highway" v="traffic_signals"/></node>
  <node id="2" lat="52.5030" lon="13.4000" version="1"/>
  <node id="3" lat="52.5030" lon="13.4100" version="1"/>
  <node id="4" lat="52.5000" lon="13.4050" version="1"/>
  <node id="5" lat="52.5060" lon="13.4050" version="1"/>
  <node id="6" lat="52.5030" lon="13.4075" version="1"><tag k="highway" v="traffic_signals"/></node>
  <node id="7" lat="52.5000" lon="13.4075" version="1"/>
  <node id="8" lat="52.5060" lon="13.4075" version="1"/>
  <way id="10" version="1"><nd ref="2"/><nd ref="1"/><nd ref="6"/><nd ref="3"/>
    <tag k="highway" v="secondary"/><tag k="lanes" v="2"/><tag k="maxspeed" v="50"/></way>
  <way id="11" version="1"><nd ref="4"/><nd ref="1"/><nd ref="5"/><tag k="highway" v="residential"/></way>
  <way id="12" version="1"><nd ref="7"/><nd ref="6"/><nd ref="8"/><tag k="highway" v="residential"/></way>
</osm>
"""


def _signalwise(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([SIGNALWISE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture()
def extract(tmp_path: Path) -> Path:
    (tmp_path / "tiny.osm").write_text(TINY_OSM)
    return tmp_path / "tiny.osm"


@pytest.mark.parametrize("given", [["--net", "tiny.osm", "--routes", "tiny.osm"], ["--sumocfg", "tiny.osm"]])
def test_an_osm_extract_is_refused_with_the_netconvert_command_and_no_run_directory(extract: Path,
                                                                                   given: list[str]) -> None:
    done = _signalwise("run", *given, "--duration", "60", "--out", "runs", cwd=extract.parent)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: tiny.osm: an OpenStreetMap extract"), line
    assert "netconvert --osm-files tiny.osm" in line and "-o tiny.net.xml" in line and "randomTrips" in line
    assert "no network version" not in done.stderr
    assert not (extract.parent / "runs").exists()  # refused before the run directory was made


@pytest.mark.slow
def test_the_command_the_refusal_gives_makes_a_network_a_run_controls(extract: Path) -> None:
    work = extract.parent
    refused = _signalwise("run", "--net", "tiny.osm", "--routes", "tiny.osm", cwd=work)
    netconvert = re.search(r"(netconvert --osm-files .*? -o \S+?\.net\.xml)", refused.stderr)[1]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(netconvert.split(), cwd=work, check=True, capture_output=True, env=env, timeout=120)
    net = work / "tiny.net.xml"
    # SUMO's own count of the signals it made: one per OSM traffic_signals junction
    assert len(re.findall(r"<tlLogic ", net.read_text())) == 2

    import sumo

    random_trips = Path(sumo.__file__).parent / "tools" / "randomTrips.py"
    subprocess.run([sys.executable, str(random_trips), "-n", "tiny.net.xml", "-r", "tiny.rou.xml", "-e", "300",
                    "-p", "3", "--seed", "1"], cwd=work, check=True, capture_output=True, env=env, timeout=120)
    due = len(re.findall(r"<vehicle ", (work / "tiny.rou.xml").read_text()))
    assert due == 100  # one every 3 s over 300 s

    done = _signalwise("run", "--net", "tiny.net.xml", "--routes", "tiny.rou.xml", "-c", "actuated",
                       "--duration", "600", "--run-dir", "run", cwd=work)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert metrics["network"]["vehicles_total"] == due
    assert metrics["network"]["throughput_veh"] > 0.9 * due
    assert metrics["safety"]["violations"] == 0
    assert sorted(metrics["intersections"]) == sorted(re.findall(r'<tlLogic id="([^"]+)"', net.read_text()))
