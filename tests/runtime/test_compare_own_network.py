"""signalwise compare takes your own network as run does: --net/--routes or --sumocfg, with --timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "compare", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_compare_on_a_net_and_routes_under_a_profile(tmp_path):
    single = load("single")
    p = _compare("--net", str(single.net_file), "--routes", str(single.route_files[0]), "--controllers",
                 "fixed,max-pressure", "--seeds", "1", "--duration", "120", "--workers", "1", "--timing",
                 "benchmark", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["scenario"] == single.net_file.name
    assert summary["controllers"] == ["fixed", "max-pressure"]
    assert all(len(e["values"]) == 1 for e in summary["metrics"]["avg_delay_s"]["controllers"].values())
    config = (tmp_path / "cmp" / "max-pressure-s1" / "config.yaml").read_text()
    assert "profile: benchmark" in config and "yellow_s: 3.0" in config


def test_compare_refuses_a_missing_network_in_one_line(tmp_path):
    p = _compare("--net", str(tmp_path / "nowhere.net.xml"), "--routes", str(tmp_path / "r.rou.xml"),
                 "--seeds", "1", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and "nowhere.net.xml" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cmp").exists()


def _no_signal_network(folder: Path) -> Path:
    """A 2x2 grid from SUMO's netgenerate with no traffic light at all (no --tls.guess)."""
    import os

    from signalwise.sim.sumo_home import sumo_home

    home = sumo_home()
    net = folder / "nosignals.net.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "2", "-o", str(net)], check=True,
                   capture_output=True, env={**os.environ, "SUMO_HOME": str(home)})
    return net


def test_compare_refuses_a_network_no_run_can_use_before_any_run(tmp_path):
    """No signal to control, or routes over an edge the network lacks: one error line, exit 2, nothing written;
    not a failed run per controller and seed under a table of dashes and '0 safety violations'."""
    single = load("single")
    for net, edges, needle in ((_no_signal_network(tmp_path), "A0B0", "no controllable traffic light (the network "
                                                                      "has no traffic lights)"),
                               (single.net_file, "E_C nowhere_edge", "'nowhere_edge'")):
        routes = tmp_path / "r.rou.xml"
        routes.write_text(f'<routes><vehicle id="car7" depart="0"><route edges="{edges}"/></vehicle></routes>')
        p = _compare("--net", str(net), "--routes", str(routes), "--controllers", "fixed,max-pressure", "--seeds",
                     "2", "--duration", "60", "--out", str(tmp_path / "cmp"))
        assert p.returncode == 2, p.stderr
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0] and "Traceback" not in p.stderr, p.stderr
        assert not (tmp_path / "cmp").exists()


def test_a_controller_with_no_finished_run_has_no_violation_count_and_no_scipy_noise():
    """Nothing audited is shown "—", not 0; a metric the same on every seed of one controller (a count) compares
    without scipy's 'Precision loss' RuntimeWarning reaching the terminal."""
    import warnings

    from signalwise.runtime.compare import summarize

    def metrics(delay, throughput):
        network = {key: 0.0 for key in ("avg_wait_s", "avg_travel_time_s", "stops_per_veh", "never_inserted",
                                        "locked_veh", "avg_queue_veh", "co2_kg", "fuel_l", "emergency_delay_s",
                                        "ped_delay_s", "fallback_fraction")}
        return {"network": {**network, "avg_delay_s": delay, "throughput_veh": throughput},
                "safety": {"violations": 0}}

    runs = {("fixed", 1): metrics(50.0, 227), ("fixed", 2): metrics(52.0, 229),
            ("max-pressure", 1): metrics(36.0, 239), ("max-pressure", 2): metrics(36.6, 239)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize(["fixed", "max-pressure", "actuated"], [1, 2], runs)
    assert summary["safety_violations"] == {"fixed": 0, "max-pressure": 0, "actuated": None}
    assert summary["metrics"]["throughput_veh"]["controllers"]["max-pressure"]["p_welch"] is not None


def test_compare_refuses_a_model_that_does_not_fit_the_network_before_any_run(tmp_path):
    """A tabular model of `single` on `corridor`: refused in one line before the baseline's runs, not as a
    failed run per seed after them. (The model: a complete tabular artifact for `single`'s real layout, as
    `train --agent tabular -s single` leaves one, written directly rather than trained for it.)"""
    from support.models import write_model

    from signalwise.envs.episode import probe_network
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.loop import resolve_scenario

    cfg = RunConfig(scenario="single")
    intersections, _ = probe_network(cfg, resolve_scenario(cfg))
    write_model(tmp_path / "t" / "model", intersections, scenario="single")
    p = _compare("-s", "corridor", "-c", f"fixed,ql:{tmp_path / 't' / 'model'}", "--seeds", "1",
                 "--duration", "60", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1
    assert "cannot run at signal 'J1'" in p.stderr and "not intersection 'J1'" in p.stderr
    assert not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_a_flow_without_an_end_that_begins_after_the_first_second_is_compared_as_it_is_run(tmp_path):
    """SUMO ends a flow without `end` at the simulation's end: the network check before the runs started SUMO with
    an end one step in, and refused the flow ("ends before its begin time") that every run takes."""
    single = load("single")
    routes = tmp_path / "flow.rou.xml"
    routes.write_text('<routes><flow id="f1" begin="5" period="exp(0.1)" from="W_C" to="C_E"/></routes>')
    p = _compare("--net", str(single.net_file), "--routes", str(routes), "--controllers", "fixed", "--seeds", "1",
                 "--duration", "120", "--workers", "1", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    metrics = json.loads((tmp_path / "cmp" / "fixed-s1" / "metrics.json").read_text())
    assert metrics["network"]["vehicles_total"] > 0
