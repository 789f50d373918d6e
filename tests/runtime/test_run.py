"""Real SUMO runs on the built-in scenarios: evidence, reproducibility, safety under chaos, failure paths."""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalwise.analytics.safety_audit import audit_run
from signalwise.control.base import register
from signalwise.core import Decision, read_events
from signalwise.exitcodes import INTERRUPTED
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


class ChaosController:
    """Proposes arbitrary phases (some invalid) with arbitrary confidence at arbitrary times."""

    name = "chaos"
    observation = "none"
    wants_detectors = False

    def __init__(self, inter, ctx):
        self.inter = inter
        self.rng = random.Random(ctx.seed * 7919 + hash(inter.id) % 1000)
        self.period_s = self.rng.choice([1.0, 2.0, 7.0])

    def decide(self, obs):
        r = self.rng.random()
        if r < 0.02:
            raise RuntimeError("chaos controller crashed")
        phase = self.rng.choice([None, -1, len(self.inter.phases), *range(len(self.inter.phases))])
        return Decision(self.inter.id, phase, self.name, self.rng.random())


class SaboteurController(ChaosController):
    """Does something fatal at t = 120 s: closes SUMO, or interrupts the run."""

    def decide(self, obs):
        if obs.time_s >= 120:
            if SaboteurController.action == "kill":
                from signalwise.sim.sumo_home import import_libsumo

                import_libsumo().close()
            else:
                raise KeyboardInterrupt
        return Decision(self.inter.id, None, "saboteur")


register("chaos")(ChaosController)
register("saboteur")(SaboteurController)


def test_run_leaves_complete_evidence_and_passes_the_audit(tmp_path):
    r = execute_run(RunConfig(scenario="single", controller="actuated", duration_s=900, seed=3), tmp_path / "run")
    d = r.run_dir
    for name in ("run.json", "config.yaml", "metrics.json", "trips.csv", "timeseries.csv", "events.csv",
                 "detectors.csv", "detector_passages.csv", "signal_states.csv", "signal_model.json",
                 "interventions.csv"):
        assert (d / name).is_file(), name
    assert json.loads((d / "run.json").read_text())["status"] == "complete"
    m = json.loads((d / "metrics.json").read_text())
    net = m["network"]
    assert net["vehicles_total"] > 300 and net["throughput_veh"] > 0
    assert net["avg_delay_s"] > 0 and net["co2_kg"] > 0 and net["fuel_l"] > 0
    assert net["pedestrians"] > 0
    assert net["locked_junctions"] == {} and net["locked_veh"] == 0
    assert not any("locked" in w for w in m.get("warnings", ()))
    assert m["safety"]["violations"] == 0 and m["safety"]["checked"]["min_green"] > 10
    # hi-res log: ATSPM header, 0.1 s timestamps, phase, pedestrian and detector events
    with open(d / "events.csv") as fh:
        header = fh.readline().strip()
        first = fh.readline().strip()
    assert header == "TimeStamp,DeviceId,EventId,Parameter"
    assert first.startswith("2025-01-06 00:00:00.0,C,")
    codes = {e.event_code for e in read_events(d / "events.csv")}
    assert {1, 8, 9, 10, 11, 21, 22, 23, 81, 82} <= codes
    with open(d / "detectors.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["Function"] for r in rows} == {"Presence", "Advance"}
    with open(d / "timeseries.csv") as fh:
        series = [r for r in csv.DictReader(fh) if r["scope"] == "network"]
    assert len(series) == 15  # 900 s in 60 s intervals


def test_a_run_that_ends_locked_names_the_junctions_and_why_nothing_frees_them():
    from signalwise.runtime.run import _lock_warning

    text = _lock_warning({"J1": 2, "GS_cluster_1_2": 10, "J3": 1, "J4": 1}, teleport_s=-1)
    assert text.startswith("14 vehicles stood locked inside 4 junction(s)")
    assert "GS_cluster_1_2 (10), J1 (2), J3 (1) and 1 more" in text  # the worst first
    assert "never teleports" in text and "300 s or more" in text
    assert "never teleports" not in _lock_warning({"J1": 1}, teleport_s=300)


@pytest.mark.slow
def test_same_seed_reproduces_a_run_exactly_and_another_seed_differs(tmp_path):
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        runs[name] = execute_run(RunConfig(scenario="grid", controller="max-pressure", duration_s=400, seed=seed),
                                 tmp_path / name).run_dir
    same = [(runs["a"] / f).read_bytes() == (runs["b"] / f).read_bytes() for f in ("trips.csv", "events.csv")]
    assert all(same)
    assert (runs["a"] / "trips.csv").read_bytes() != (runs["c"] / "trips.csv").read_bytes()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), scenario=st.sampled_from(["single", "corridor", "grid"]),
       threshold=st.floats(0.0, 0.9))
def test_chaos_controller_on_real_scenarios_never_breaks_a_rule(tmp_path_factory, seed, scenario, threshold):
    cfg = RunConfig(scenario=scenario, controller="chaos", duration_s=420, seed=seed,
                    shield={"confidence_threshold": threshold}, emissions=False)
    r = execute_run(cfg, tmp_path_factory.mktemp("chaos") / "run")
    report = audit_run(r.run_dir)
    assert report.ok, report.violations[:3]
    assert report.checked.get("min_green", 0) > 0


@pytest.mark.parametrize("action,status", [("kill", "failed"), ("interrupt", "incomplete")])
def test_a_run_that_dies_is_marked_and_says_why(tmp_path, action, status):
    SaboteurController.action = action
    cfg = RunConfig(scenario="single", controller="saboteur", duration_s=600)
    expected = SimulationError if action == "kill" else KeyboardInterrupt
    with pytest.raises(expected):
        execute_run(cfg, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == status and info["reason"]
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("stop,status", [(KeyboardInterrupt, "incomplete"), (OSError("disk full"), "failed")])
def test_a_stop_while_the_evidence_is_written_is_marked_too(tmp_path, monkeypatch, stop, status):
    """Ctrl-C (or SIGTERM, or a full disk) after the simulation, while the run directory is written: run.json
    must not stay `running`, as if the process were still at work."""
    import signalwise.runtime.run as run_module

    def writing_stops(cfg, loop, run_dir):
        (run_dir / "trips.csv").write_text("half")
        raise stop

    monkeypatch.setattr(run_module, "write_evidence", writing_stops)
    with pytest.raises(type(stop) if isinstance(stop, Exception) else stop):
        execute_run(RunConfig(scenario="single", controller="fixed", duration_s=60, emissions=False), tmp_path / "r")
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == status and info["reason"] in ("interrupted", "disk full") and "finished" in info


@pytest.mark.parametrize("sig,reason", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated (SIGTERM)")],
                         ids=["ctrl-c", "sigterm"])
@pytest.mark.slow
def test_ctrl_c_or_sigterm_marks_the_run_incomplete_and_says_which(tmp_path, sig, reason):
    """`kill` (SIGTERM: systemd, `docker stop`) takes Ctrl-C's path: the same exit code, run.json `incomplete`."""
    run_dir = tmp_path / "run"
    # grid10x10 simulates for seconds, long enough to be stopped mid-loop; SIGINT at its default, as in a terminal
    proc = subprocess.Popen([SIGNALWISE, "run", "--scenario", "grid10x10", "--record", "lean", "--run-dir",
                             str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "sumo" / "tripinfo.xml").exists():  # SUMO writes it once the loop has started it
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the run never started SUMO"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 15
    finally:
        proc.kill()
    assert proc.returncode == INTERRUPTED, err[-2000:]
    assert f"error: {reason}; the run directory {run_dir} is marked incomplete" in err and "Traceback" not in err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "incomplete" and info["reason"] == reason and info["finished"]
    assert not (run_dir / "metrics.json").exists()


def _cli(*args, cwd=None):
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["run", "--scenario", "atlantis"], "unknown scenario 'atlantis'"),
    (["run", "--controller", "magic"], "unknown controller 'magic'"),
    (["run", "--sumocfg", "missing.sumocfg"], "no such SUMO config file"),
    (["run", "--duration", "-5"], "invalid duration_s"),
    (["compare", "--controllers", "fixed,magic", "--seeds", "1"], "unknown controller 'magic'"),
])
@pytest.mark.slow
def test_bad_input_gets_one_line_and_nonzero_exit(tmp_path, args, needle):
    p = _cli(*args, "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode != 0
    assert needle in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    if "unknown controller" in needle:  # the choices are what a user may run, not the training's own label
        assert "choose from actuated, coordinated, fixed, max-pressure, ql, webster" in p.stderr


def test_broken_network_and_bad_config_value_are_reported(tmp_path):
    net = tmp_path / "broken.net.xml"
    net.write_text("<net><edge id='a'")
    routes = tmp_path / "r.rou.xml"
    routes.write_text("<routes/>")
    p = _cli("run", "--net", str(net), "--routes", str(routes), "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2 and "error:" in p.stderr and "Traceback" not in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.startswith("error:")]) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timing:\n  yellow_s: 12\n")
    p = _cli("run", "--config", str(cfg), "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2 and "timing.yellow_s" in p.stderr


def test_cli_run_prints_a_summary_and_compare_writes_table_and_chart(tmp_path):
    p = _cli("run", "--scenario", "single", "--controller", "webster", "--duration", "300",
             "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "│ delay per vehicle " in p.stdout and "safety violations" in p.stdout
    assert "delay per vehicle: the RESCO definition, every vehicle due" in p.stdout
    p = _cli("compare", "--scenario", "single", "--controllers", "fixed,actuated", "--seeds", "2",
             "--duration", "300", "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["seeds"] == [1, 2]
    delay = summary["metrics"]["avg_delay_s"]["controllers"]
    assert len(delay["fixed"]["values"]) == 2 and "p_welch" in delay["actuated"]
    assert (tmp_path / "cmp" / "delay_over_time.png").stat().st_size > 5000
    assert "Welch" in p.stdout


def test_run_directory_names_of_two_long_model_specs_differ():
    from signalwise.runtime.run import slug

    a, b = "ql:/home/ops/models/corridor-2026/guide-10/model", "ql:/home/ops/models/corridor-2026/guide-30/model"
    assert slug(a) != slug(b) and len(slug(a)) <= 40 and slug(a) == slug(a)
    assert slug("max-pressure") == "max-pressure" and slug("ql:m") == "ql-m"


def test_a_run_directory_of_your_own_network_is_named_after_it(tmp_path):
    from signalwise.runtime.run import new_run_dir

    own = RunConfig(net=tmp_path / "my.city.net.xml", routes=[tmp_path / "r.rou.xml"], out_dir=tmp_path)
    assert new_run_dir(own).name.endswith("-my-city-max-pressure-s1")
    assert new_run_dir(RunConfig(sumocfg=tmp_path / "harbour.sumocfg", seed=3, out_dir=tmp_path)).name.endswith(
        "-harbour-max-pressure-s3")
    assert new_run_dir(RunConfig(scenario="corridor", out_dir=tmp_path)).name.endswith("-corridor-max-pressure-s1")


def test_a_run_directory_of_a_controller_file_is_named_after_the_file_not_its_path(tmp_path):
    from signalwise.runtime.run import distinct_slugs, new_run_dir

    def name(spec: str) -> str:
        return new_run_dir(RunConfig(scenario="single", controller=spec, out_dir=tmp_path)).name

    assert name("py:../lqf.py:make").endswith("-single-py-lqf-make-s1")  # was py----lqf-py-make
    assert name("py:/home/me/lab/lqf.py:make").endswith("-single-py-lqf-make-s1")
    assert name("py:mylab.ctl:make").endswith("-single-py-mylab-ctl-make-s1")
    dirs = distinct_slugs(["py:a/lqf.py:make", "py:b/lqf.py:make", "fixed"])  # one comparison: never one directory
    assert len(set(dirs.values())) == 3 and all(d.startswith("py-lqf-make-") for d in list(dirs.values())[:2])


@pytest.mark.slow
def test_a_comparison_of_two_models_whose_names_make_one_directory_runs_both(tmp_path, monkeypatch):
    """ql:x-y/model and ql:x/y-model both make ql-x-y-model: the second run found the first's directory and failed,
    told to use a --run-dir that compare does not have."""
    import shutil

    from signalwise.control.learning.shipped import shipped_model_path
    from signalwise.runtime.compare import compare_controllers
    from signalwise.runtime.config import RunConfig

    for where in ("x-y/model", "x/y-model"):
        shutil.copytree(shipped_model_path("single"), tmp_path / where)
    monkeypatch.chdir(tmp_path)  # short names, as a user gives them: a long one has a hash of its own
    specs = ["ql:x-y/model", "ql:x/y-model"]
    result = compare_controllers(RunConfig(scenario="single", duration_s=60, record="lean"), specs, [1],
                                 tmp_path / "cmp", workers=1)
    assert not result.failures, result.failures
    dirs = {result.run_dirs[(c, 1)] for c in specs}
    assert len(dirs) == 2 and all(d.parent == tmp_path / "cmp" for d in dirs)


def test_a_figure_nothing_measured_is_none_and_an_intersection_counts_every_vehicle_on_its_approaches(tmp_path):
    """30 s of `single`: no vehicle arrives, so there is no travel time (it was 0.0 s, which a comparison averaged
    in as the best value); the intersection's delay per vehicle divided the loss of every vehicle on its approaches
    by the two that had left (26 s per vehicle against a network delay of 3 s)."""
    from signalwise.runtime.run import execute_run

    result = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=30), tmp_path / "r")
    net = result.metrics["network"]
    assert net["throughput_veh"] == 0 and net["avg_travel_time_s"] is None
    assert (net["emergency_delay_s"] is None) == (net["emergency_vehicles"] == 0)
    (inter,) = result.metrics["intersections"].values()
    assert 0 < inter["delay_per_veh_s"] <= 2 * net["avg_delay_s"], (inter, net["avg_delay_s"])
    p = _cli("run", "--scenario", "single", "--controller", "fixed", "--duration", "30",
             "--run-dir", str(tmp_path / "cli"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "— (no vehicle arrived)" in p.stdout


def test_compare_leaves_out_the_seeds_that_measured_nothing_of_a_figure(tmp_path):
    """Seeds without an emergency vehicle wrote 0.0 s of emergency delay, averaged in: a CI reaching below 0 s."""
    from signalwise.runtime.compare import METRICS, summarize

    def run(delay_s, emergency_s):
        return {"network": {**{key: 1.0 for key, *_ in METRICS}, "fallback_fraction": 0.0,
                            "emergency_delay_s": emergency_s, "avg_delay_s": delay_s}}

    runs = {("fixed", s): run(30.0 + s, d) for s, d in ((1, 15.84), (2, 6.64), (3, None))}
    runs |= {("max-pressure", s): run(25.0 + s, d) for s, d in ((1, 15.84), (2, 14.013), (3, None))}
    table = summarize(["fixed", "max-pressure"], [1, 2, 3], runs)["metrics"]
    emergency = table["emergency_delay_s"]["controllers"]
    assert emergency["fixed"]["values"] == [15.84, 6.64] and emergency["fixed"]["mean"] == 11.24
    assert emergency["max-pressure"]["change_pct"] == round((14.9265 - 11.24) / 11.24 * 100, 4)
    assert len(table["avg_delay_s"]["controllers"]["fixed"]["values"]) == 3
    # a seed one side measured and the other did not is left out of both sides' change
    runs[("max-pressure", 2)]["network"]["emergency_delay_s"] = None
    emergency = summarize(["fixed", "max-pressure"], [1, 2, 3], runs)["metrics"]["emergency_delay_s"]["controllers"]
    assert emergency["max-pressure"]["change_pct"] == 0.0 and emergency["max-pressure"]["seeds_compared"] == [1]
    assert emergency["fixed"]["mean"] == 11.24  # its own mean is still over every seed it measured
