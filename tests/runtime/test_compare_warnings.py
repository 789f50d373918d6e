"""What each run of a comparison warned of reaches its reader: the console under the table, report.md's "Safety and
warnings" and summary.json, each warning once with the runs that gave it. The start check refuses, in one line
before any run, a network whose walks SUMO cannot route; `run`'s summary table stays narrow however many signals
the network leaves uncontrolled.

The warnings are made on purpose, on `single` for 120 s: `time_to_teleport_s: 10` teleports vehicles out of every
red (a different count per controller), and a vehicle set to depart too fast before a red link is discarded by SUMO
in every run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.networks import netconvert_network
from support.tables import table_rows

from signalwise.runtime.commands import print_run_summary
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load
from signalwise.sim.sumo_home import sumo_home

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
#: the environment of a command whose output a test reads: no terminal width or colour of the caller's
QUIET_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
#: a vehicle SUMO discards: it cannot stop at 13.8 m/s in the 16 m left before the red link it needs
DISCARDED_ROUTES = """<routes>
    <vType id="fast" length="4.5" accel="2.6" decel="4.5" sigma="0"/>
    <route id="rfast" edges="W_C C_S"/>
    <vehicle id="too-fast" type="fast" route="rfast" depart="6" departPos="234" departSpeed="13.8" departLane="best"/>
</routes>
"""


def _compare(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "compare", *args], capture_output=True, text=True, timeout=300,
                          env=QUIET_ENV, cwd=cwd)


def _unwrapped(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_compare_shows_each_runs_warnings_once_with_the_runs_that_gave_them(tmp_path):
    single = load("single")
    (tmp_path / "discard.rou.xml").write_text(DISCARDED_ROUTES)
    (tmp_path / "teleport.yaml").write_text("time_to_teleport_s: 10\n")
    out = tmp_path / "cmp"
    p = _compare(tmp_path, "--net", str(single.net_file), "--routes", str(single.route_files[0]), "--routes",
                 "discard.rou.xml", "--config", "teleport.yaml", "--controllers", "fixed,max-pressure", "--seeds",
                 "1", "--duration", "120", "--workers", "2", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    said = {c: json.loads((out / f"{c}-s1" / "metrics.json").read_text()) for c in ("fixed", "max-pressure")}
    teleports = {c: m["network"]["teleports"] for c, m in said.items()}
    assert min(teleports.values()) > 0 and teleports["fixed"] != teleports["max-pressure"], teleports  # premise
    assert all(m["network"]["discarded_veh"] == 1 for m in said.values())

    lines = [line for line in p.stdout.splitlines() if line.startswith("warning:")]
    discarded = [line for line in lines if "discarded by SUMO" in line]
    teleported = [line for line in lines if "teleported" in line]
    # the same sentence from both runs once, naming both; the teleports once, each run's count in it
    assert len(discarded) == 1 and discarded[0].startswith("warning: fixed s1, max-pressure s1: 1 vehicles were "
                                                           "discarded by SUMO"), lines
    assert len(teleported) == 1, lines
    for c, n in teleports.items():
        assert f"{c} s1: {n} times" in teleported[0], teleported
    assert "the average delay is lower than without teleports" in teleported[0]
    # a row for the discarded vehicles, which no other figure counts
    fixed, mp = table_rows(p.stdout)["discarded by SUMO (veh)"][:2]
    assert fixed == "1.00 ± n/a" and re.fullmatch(r"1\.00 ± n/a [+-]\d+\.\d%( \[[^]]+\])? p .*", mp), p.stdout

    report = (out / "report.md").read_text()
    section = report.split("## Safety and warnings", 1)[1].split("\n## ", 1)[0]
    assert discarded[0].removeprefix("warning: ") in section, section
    assert teleported[0].removeprefix("warning: ") in section, section
    assert "| discarded by SUMO | veh | 1.00 ± n/a | 1.00 ± n/a |" in report

    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_warnings"] == {f"{c}:s1": m["warnings"] for c, m in said.items()}
    assert [g["runs"] for g in summary["warnings"]] == [["fixed:s1", "max-pressure:s1"]] * 2
    assert summary["metrics"]["discarded_veh"]["controllers"]["fixed"]["values"] == [1]


def _network_without_sidewalks(folder: Path) -> tuple[Path, Path]:
    """One signal, four arms none of which pedestrians may use, and persons set to walk from the west arm to
    the north one from 20 s: SUMO cannot route a single walk."""
    nodes = """<nodes>
    <node id="W" x="-200" y="0"/><node id="E" x="200" y="0"/><node id="N" x="0" y="200"/><node id="S" x="0" y="-200"/>
    <node id="C" x="0" y="0" type="traffic_light"/>
</nodes>"""
    edges = "<edges>\n" + "".join(
        f'    <edge id="{a}{b}" from="{a}" to="{b}" numLanes="1" speed="13.9" disallow="pedestrian"/>\n'
        for a, b in (("W", "C"), ("C", "E"), ("S", "C"), ("C", "N"))) + "</edges>"
    net = netconvert_network(folder, "nowalk", nodes, edges)
    routes = folder / "nowalk.rou.xml"
    routes.write_text("""<routes>
    <flow id="c1" begin="0" end="300" vehsPerHour="400" from="WC" to="CE"/>
    <flow id="c2" begin="0" end="300" vehsPerHour="300" from="SC" to="CN"/>
    <personFlow id="p1" begin="20" end="300" period="30"><walk from="WC" to="CN"/></personFlow>
</routes>
""")
    return net, routes


def test_compare_refuses_walks_sumo_cannot_route_before_any_run(tmp_path):
    net, routes = _network_without_sidewalks(tmp_path)
    p = _compare(tmp_path, "--net", str(net), "--routes", str(routes), "--controllers", "fixed,max-pressure",
                 "--seeds", "2", "--duration", "120", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "No connection found between edge 'WC' and edge 'CN' for person 'p1.0'" in lines[0]
    assert "before the runs" in lines[0] and "nowalk.rou.xml" in lines[0]
    assert not (tmp_path / "cmp").exists()  # no run started


def test_the_run_summary_stays_narrow_with_many_signals_left_uncontrolled(tmp_path, capsys):
    """netgenerate's grid with a signal at every node: the 12 at its dead ends have one green and are refused."""
    home = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(home)}
    net, trips = tmp_path / "tl.net.xml", tmp_path / "tl.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "3", "--grid.attach-length", "100",
                    "--default-junction-type", "traffic_light", "-o", str(net)], check=True, capture_output=True,
                   env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", "60", "-p", "3",
                    "--seed", "1", "-o", str(trips)], check=True, capture_output=True, env=env, cwd=tmp_path)
    cfg = RunConfig(net=net, routes=[trips], controller="fixed", duration_s=60, record="lean", out_dir=tmp_path)
    result = execute_run(cfg, tmp_path / "run")
    refused = result.metrics["refused_signals"]
    assert len(refused) == 12, refused  # the premise

    print_run_summary(result.metrics, result.run_dir)
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(len(line) for line in table) <= 100, out
    cell = table_rows(out)["signals left uncontrolled"][0]
    assert cell.startswith(f"12: {refused[0]['id']}, {refused[1]['id']}, {refused[2]['id']} and 9 more"), cell
    # every signal and its reason, once, on the warning line under the table
    warning = next(line for line in out.splitlines() if line.startswith("warning: 12 signal(s) left"))
    assert all(re.search(rf"\b{re.escape(r['id'])}\b", warning) for r in refused), warning
    assert _unwrapped(warning).count(refused[0]["reason"]) == 1, warning


def test_demo_help_gives_the_default_output_directory(tmp_path):
    p = subprocess.run([SIGNALWISE, "demo", "--help"], capture_output=True, text=True, timeout=60,
                       env={**QUIET_ENV, "COLUMNS": "200"}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out_line = next(line for line in p.stdout.splitlines() if "--out" in line)
    assert "default runs/compare-<time>-corridor" in out_line, p.stdout


def test_compare_refuses_a_truncated_network_in_runs_one_line(tmp_path):
    """The network read as `run` reads it, before SUMO is given it: SUMO would print its parser's lines first."""
    corridor = load("corridor")
    broken = tmp_path / "broken.net.xml"
    broken.write_bytes(corridor.net_file.read_bytes()[:20000])
    p = _compare(tmp_path, "--net", str(broken), "--routes", str(corridor.route_files[0]), "--controllers",
                 "fixed,actuated", "--seeds", "1", "--duration", "60", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()], p.stderr  # one line, SUMO's own none of it
    assert p.stderr.startswith(f"error: {broken}: not a readable SUMO network (SAXParseException: "), p.stderr
    assert not (tmp_path / "cmp").exists()
