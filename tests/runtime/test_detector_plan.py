"""`signalwise detectors`: a live run's detector plan before the run starts, equal to the `detectors.csv` real runs
of the same network write (a `live --field none` run of a built-in, an offline run of a user's network with
signals the run refuses), limited to some signals, and refused in one line when asked what cannot be."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise

from signalwise.runtime.detector_config import COLUMNS
from signalwise.sim.scenario import load

CORRIDOR = load("corridor")


def _with_programs(net_text: str, programs: dict[str, list[tuple[str, int]]]) -> str:
    """The network with these signals' programs replaced in the network file itself (which every run reads)."""
    for tls, phases in programs.items():
        rows = "".join(f'\n        <phase duration="{d}" state="{s}"/>' for s, d in phases)
        net_text, n = re.subn(rf'(<tlLogic id="{tls}"[^>]*>).*?(</tlLogic>)',
                              lambda m, rows=rows: m.group(1) + rows + "\n    " + m.group(2), net_text, flags=re.S)
        assert n == 1, tls
    return net_text


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> list[str]:
    """`corridor`'s files as a user's network, J3 with a single green phase and J4 blinking: signals the run
    leaves to their own program."""
    root = tmp_path_factory.mktemp("city")
    net, routes = root / "city.net.xml", root / "city.rou.xml"
    net.write_text(_with_programs(CORRIDOR.net_file.read_text(), {
        "J3": [("rrrrGGGGrrrrrGGGGr", 60)], "J4": [("O" * 16, 30)]}))
    shutil.copy(CORRIDOR.route_files[0], routes)
    return ["--net", str(net), "--routes", str(routes)]


@pytest.fixture(scope="module")
def live_run(tmp_path_factory) -> Path:
    """A real `signalwise live --field none` run of `corridor`, 5 simulated seconds unpaced."""
    out = tmp_path_factory.mktemp("live")
    p = in_a_process("live", "-s", "corridor", "--field", "none", "--duration", "5", "--speed", "max",
                     "--port", "0", "--out", str(out), timeout_s=180)
    assert p.returncode == 0, p.stderr
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return run_dir


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_built_in_scenarios_plan_per_signal_with_its_topic(tmp_path):
    p = signalwise("detectors", "-s", "single", env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    assert "1 signal(s), 24 detector channel(s)" in p.stdout
    assert "C: MQTT topic signalwise/C/detectors" in p.stdout
    lines = [line for line in p.stdout.splitlines() if re.match(r"│\s+\d+ │", line)]
    assert len(lines) == 24
    assert sum("stop bar" in line for line in lines) == 12 and sum("advance" in line for line in lines) == 12

    p = signalwise("detectors", "-s", "single", "--format", "json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    (signal,) = plan["signals"]
    assert signal["device_id"] == "C" and signal["mqtt_topic"] == "signalwise/C/detectors"
    dets = signal["detectors"]
    assert [d["channel"] for d in dets] == list(range(1, 25))
    # a stop bar and an advance detector 100 m upstream on each of the 12 incoming lanes, every approach with lanes
    assert {d["lane"] for d in dets if d["kind"] == "stopbar"} == {d["lane"] for d in dets if d["kind"] == "advance"}
    assert {d["distance_to_stopbar_m"] for d in dets} == {1.0, 100.0}
    assert {d["approach"] for d in dets} == {"north", "south", "east", "west"}
    assert all(d["phase"] >= 1 for d in dets) and plan["refused"] == []


def test_the_plan_names_the_topic_of_the_runs_own_prefix(tmp_path):
    """Two corridors on one broker each take a prefix (`mqtt_topic_prefix`): the plan an integrator wires devices
    from names the topic the run subscribes to, not the default's."""
    cfg = tmp_path / "east.yaml"
    cfg.write_text("mqtt_topic_prefix: city/east\n")
    p = signalwise("detectors", "-s", "single", "--config", str(cfg), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["signals"][0]["mqtt_topic"] == "city/east/C/detectors"


@pytest.mark.slow
def test_its_csv_is_the_detectors_csv_a_live_field_none_run_writes(live_run, tmp_path):
    out = tmp_path / "plan.csv"
    p = signalwise("detectors", "-s", "corridor", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == (live_run / "detectors.csv").read_bytes()
    assert "to " + str(out) in p.stderr and not (tmp_path / "plan.csv.partial").exists()

    p = signalwise("detectors", "-s", "corridor", "--format", "csv")
    assert p.returncode == 0, p.stderr
    assert _rows(p.stdout) == _rows((live_run / "detectors.csv").read_text())

    # the approach each channel is on is the one the run's signal model (and a camera file's zones) names
    plan = json.loads(signalwise("detectors", "-s", "corridor", "--format", "json").stdout)
    model = {s["id"]: s["approaches"] for s in json.loads((live_run / "signal_model.json").read_text())}
    assert sorted(model) == [s["device_id"] for s in plan["signals"]]
    for signal in plan["signals"]:
        for d in signal["detectors"]:
            assert d["approach"] == model[signal["device_id"]][d["lane"]], (signal["device_id"], d)


def test_a_users_network_says_which_signals_the_run_refuses_and_matches_an_offline_run(city, tmp_path):
    p = signalwise("detectors", *city, env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    assert "3 signal(s)" in p.stdout
    for tls in ("J1", "J2", "J5"):
        assert f"{tls}: MQTT topic signalwise/{tls}/detectors" in p.stdout
    text = " ".join(p.stdout.split())  # the table's lines wrap long reasons
    assert "J3: not controlled by the run, so no detector channels: program '0' has a single green phase" in text
    assert "J4: not controlled by the run, so no detector channels: program has off/blinking states" in text
    assert "signalwise/J3/" not in p.stdout and "signalwise/J4/" not in p.stdout

    out = tmp_path / "plan.csv"
    p = signalwise("detectors", *city, "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "J3: not controlled by the run" in p.stderr and "J4: not controlled by the run" in p.stderr
    assert {row[0] for row in _rows(out.read_text())[1:]} == {"J1", "J2", "J5"}
    ran = in_a_process("run", *city, "--duration", "30", "--controller", "fixed", "--run-dir", str(tmp_path / "run"),
                       timeout_s=180)
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == (tmp_path / "run" / "detectors.csv").read_bytes()


def test_intersection_limits_the_plan(city, tmp_path):
    p = signalwise("detectors", *city, "-i", "J5", "--intersection", "J2", "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = _rows(p.stdout)
    assert tuple(rows[0]) == COLUMNS
    assert [r[0] for r in rows[1:]] == sorted((r[0] for r in rows[1:]), key=["J2", "J5"].index)  # the run's order
    assert {r[0] for r in rows[1:]} == {"J2", "J5"}

    p = signalwise("detectors", *city, "-i", "J3")  # a refused signal: why, and no channels
    assert p.returncode == 0, p.stderr
    assert "0 signal(s), 0 detector channel(s)" in p.stdout and "J3: not controlled by the run" in p.stdout
    assert "J4" not in p.stdout and "MQTT topic" not in p.stdout


def test_a_config_files_partition_is_the_plans_and_its_alerts_are_left_to_the_run(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("scenario: corridor\npartition: [J1, J2]\nalerts:\n  rules: []\n")
    p = signalwise("detectors", "--config", str(config), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert [s["device_id"] for s in json.loads(p.stdout)["signals"]] == ["J1", "J2"]
    p = signalwise("detectors", "--config", str(config), "-i", "J3")
    assert p.returncode == 2
    assert p.stderr == "error: --intersection J3: not a signal of this run (its signals: J1, J2)\n"


@pytest.mark.parametrize("args,says", [
    (["-s", "corridor", "-i", "J2", "-i", "J9", "-i", "X"],
     "error: --intersection J9, X: not a signal of this run (its signals: J1, J2, J3, J4, J5)\n"),
    (["-s", "nowhere"], "error: unknown scenario 'nowhere'"),
    (["-s", "single", "--format", "yaml"], "error: --format must be table, csv or json, not 'yaml'\n"),
    (["-s", "single", "--format", "table", "--out", "{tmp}/plan.txt"], "error: --out writes csv or json"),
    (["-s", "single", "--out", "{tmp}/no/such/plan.csv"], "error: --out {tmp}/no/such/plan.csv: no such directory"),
    (["-s", "single", "--out", "{tmp}"], "error: --out {tmp}: a directory"),
    (["--net", "{tmp}/none.net.xml"], "error: net needs at least one routes file (--routes)"),
])
def test_what_cannot_be_planned_is_one_line_and_exit_2(args, says, tmp_path):
    p = signalwise("detectors", *(a.format(tmp=tmp_path) for a in args))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith(says.format(tmp=tmp_path)) and p.stderr.count("\n") == 1, p.stderr
    assert p.stdout == "" and sorted(tmp_path.iterdir()) == []  # nothing written


def test_a_network_whose_every_signal_is_refused_is_refused_as_the_run_refuses_it(tmp_path):
    single = load("single")
    net, routes = tmp_path / "blink.net.xml", tmp_path / "blink.rou.xml"
    net.write_text(_with_programs(single.net_file.read_text(), {"C": [("O" * 20, 30)]}))
    shutil.copy(single.route_files[0], routes)
    out = tmp_path / "plan.csv"
    p = signalwise("detectors", "--net", str(net), "--routes", str(routes), "--out", str(out))
    assert p.returncode == 2
    assert p.stderr == "error: no controllable traffic light (C: program has off/blinking states ('o'/'O'))\n"
    assert not out.exists() and not (tmp_path / "plan.csv.partial").exists()


@pytest.mark.slow
def test_a_signal_program_in_an_additional_file_is_the_one_the_plan_and_a_feed_only_run_read(tmp_path):
    """A .sumocfg whose additional file gives J4 a blinking program (SUMO makes the last program loaded the one
    that runs): a run with traffic leaves J4 alone, and so must the plan and a `--field none` run, which load
    no routes. They read the network file alone before, and a feed-only run took control of J4."""
    shutil.copy(CORRIDOR.net_file, tmp_path / "city.net.xml")
    shutil.copy(CORRIDOR.route_files[0], tmp_path / "city.rou.xml")
    (tmp_path / "programs.add.xml").write_text(
        '<additional>\n  <tlLogic id="J4" type="static" programID="night" offset="0">\n'
        f'    <phase duration="30" state="{"o" * 16}"/>\n  </tlLogic>\n'
        '  <e1Detector id="loop" lane="J1_J2_0" pos="10" period="60" file="det_out.xml"/>\n</additional>\n')
    (tmp_path / "types.add.xml").write_text('<additional>\n  <vType id="city_tram" vClass="tram"/>\n</additional>\n')
    cfg = tmp_path / "city.sumocfg"
    cfg.write_text('<configuration><input><net-file value="city.net.xml"/><route-files value="city.rou.xml"/>'
                   '<additional-files value="programs.add.xml,types.add.xml"/></input>'
                   '<time><begin value="0"/><end value="60"/></time></configuration>')
    p = signalwise("detectors", "--sumocfg", str(cfg), "--format", "json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert [r["device_id"] for r in plan["refused"]] == ["J4"] and "blinking" in plan["refused"][0]["reason"]
    assert "J4" not in {s["device_id"] for s in plan["signals"]}
    live = in_a_process("live", "--sumocfg", str(cfg), "--field", "none", "--duration", "5", "--speed", "max",
                        "--port", "0", "--out", str(tmp_path / "live"), timeout_s=180)
    assert live.returncode == 0, live.stderr
    (run_dir,) = [d for d in (tmp_path / "live").iterdir() if d.is_dir()]
    assert sorted(s["id"] for s in json.loads((run_dir / "signal_model.json").read_text())) == ["J1", "J2", "J3", "J5"]
    assert "J4" not in {row["DeviceId"] for row in csv.DictReader(io.StringIO((run_dir / "detectors.csv").read_text()))}
    # the programs alone: the loop beside them writes its output file only in a run with traffic, which has one
    assert not (tmp_path / "det_out.xml").exists()
    ran = in_a_process("run", "--sumocfg", str(cfg), "--duration", "10", "--controller", "fixed",
                       "--run-dir", str(tmp_path / "run"), timeout_s=180)
    assert ran.returncode == 0, ran.stderr
    assert [r["id"] for r in json.loads((tmp_path / "run" / "metrics.json").read_text())["refused_signals"]] == ["J4"]
