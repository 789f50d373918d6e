"""What the commands say to an engineer bringing a network: a window that begins at 07:00:00 in times of day
(compare's conditions, its report and chart, a run's warm-up), a .sumocfg's missing file with the config and the
path it comes to, actuated programs' warnings one line for signals alike, `evaluate` on another network than the
model's, and `train` into an --out a failed training left. Networks from SUMO's own netgenerate and randomTrips,
runs by SUMO, the commands as a user types them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.sim.sumo_home import sumo_home

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _env(columns: int = 200) -> dict[str, str]:
    return {**os.environ, "SUMO_HOME": str(sumo_home()), "COLUMNS": str(columns)}


def _signalwise(*args: str, cwd: Path | None = None, columns: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300, env=_env(columns),
                          cwd=cwd)


def _two_signals(folder: Path, name: str = "two", x_number: int = 2) -> Path:
    """A row of `x_number` signals (A0, B0, ...) whose programs netgenerate writes actuated (minDur 5, maxDur 50)."""
    net = folder / f"{name}.net.xml"
    subprocess.run([str(sumo_home() / "bin" / "netgenerate"), "--grid", "--grid.x-number", str(x_number),
                    "--grid.y-number", "1", "--grid.length", "200", "--grid.attach-length", "100", "--tls.set",
                    ",".join(f"{chr(65 + k)}0" for k in range(x_number)), "--tls.default-type", "actuated",
                    "-o", str(net)], check=True, capture_output=True, env=_env())
    return net


def _trips(net: Path, begin_s: float, end_s: float) -> Path:
    routes = net.with_name(net.name.replace(".net.xml", f"-{begin_s:g}.rou.xml"))
    subprocess.run([sys.executable, str(sumo_home() / "tools" / "randomTrips.py"), "-n", str(net), "-r", str(routes),
                    "-b", str(begin_s), "-e", str(end_s), "-p", "3", "--seed", "1"], check=True, capture_output=True,
                   env=_env(), cwd=net.parent)
    return routes


@pytest.fixture(scope="module")
def morning(tmp_path_factory) -> Path:
    """A .sumocfg of the two signals from 07:00:00 to 07:05:00, its traffic departing in that window."""
    folder = tmp_path_factory.mktemp("morning")
    net = _two_signals(folder)
    routes = _trips(net, 25200, 25500)
    cfg = folder / "morning.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{net.name}"/><route-files value="{routes.name}"/>'
                   '</input><time><begin value="07:00:00"/><end value="07:05:00"/></time></configuration>')
    return cfg


@pytest.mark.slow
def test_a_window_from_seven_oclock_is_shown_in_times_of_day(morning, tmp_path):
    """Compare's conditions said `25200–25500 s simulated`, its chart ran over minutes 420-425 and a warm-up said
    `figures count from 25260 s`: an engineer thinks in 07:00-07:05."""
    p = _signalwise("compare", "--sumocfg", str(morning), "--controllers", "fixed,actuated", "--seeds", "1",
                    "--warmup", "60", "--workers", "1", "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    assert "25200–25500 s (07:00–07:05) simulated, after a 60 s warm-up (figures from 07:01)" in p.stdout, p.stdout
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| simulated window | 25200–25500 s (5 min, 07:00–07:05) |" in report
    assert "| warm-up | 60 s: the figures count from 25260 s (07:01) |" in report
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["conditions"]["begin_s"] == 25200  # the record keeps seconds

    run = _signalwise("run", "--sumocfg", str(morning), "-c", "fixed", "--warmup", "60", "--duration", "120",
                      "--out", str(tmp_path / "runs"))
    assert run.returncode == 0, run.stderr
    assert "figures count from 25260 s (07:01), after a 60 s warm-up" in " ".join(run.stdout.split()), run.stdout


def test_the_delay_chart_of_a_window_from_seven_oclock_reads_in_times_of_day():
    """The chart's axis: 07:00, 07:01, ... where the window begins at 25200 s; minutes where it begins at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from signalwise.runtime.compare import time_axis

    labels = {}
    for begin_s in (25200.0, 0.0):
        fig, ax = plt.subplots()
        start = begin_s / 60
        ax.plot([start, start + 5], [10, 20])
        time_axis(ax, begin_s)
        fig.canvas.draw()
        labels[begin_s] = ([t.get_text() for t in ax.get_xticklabels() if t.get_text()], ax.get_xlabel())
        plt.close(fig)
    ticks, label = labels[25200.0]
    assert "07:00" in ticks and "07:05" in ticks and all(re.fullmatch(r"0[67]:[05]\d", t) for t in ticks), ticks
    assert label == "simulation time (time of day)"
    assert "0" in labels[0.0][0] and labels[0.0][1] == "simulation time (min)"


def test_a_sumocfgs_missing_route_file_names_the_config_and_the_path_it_comes_to(tmp_path):
    """Run from another directory, `demand/vehs.rou.xml: no such file` did not say which config it is relative to."""
    proj = tmp_path / "proj"
    (proj / "net").mkdir(parents=True)
    net = _two_signals(proj / "net")
    (proj / "study.sumocfg").write_text(
        f'<configuration><input><net-file value="net/{net.name}"/><route-files value="demand/vehs.rou.xml"/>'
        '</input><time><begin value="0"/><end value="60"/></time></configuration>')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = _signalwise("run", "--sumocfg", "../proj/study.sumocfg", "-c", "fixed", "--out", str(tmp_path / "runs"),
                    cwd=elsewhere)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: ../proj/study.sumocfg: its route-files names demand/vehs.rou.xml, no such file "
                                f"(relative to the config's directory: {proj / 'demand' / 'vehs.rou.xml'})"), p.stderr
    assert not (tmp_path / "runs").exists()


def test_actuated_programs_whose_warnings_differ_only_in_their_ranges_are_one_line(tmp_path):
    """A0's own min green 8 s, B0's 5 s: one warning naming both signals and the range 5-8 s, not one per signal
    (SUMO's tools/game/DRT.sumocfg gave 11 lines differing only in their min green ranges)."""
    net = _two_signals(tmp_path)
    config = tmp_path / "a0.yaml"
    config.write_text("timing:\n  per_intersection:\n    A0:\n      min_green_s: 8\n")
    p = _signalwise("run", "--net", str(net), "--routes", str(_trips(net, 0, 60)), "-c", "actuated", "--duration",
                    "60", "--config", str(config), "--out", str(tmp_path / "runs"))
    assert p.returncode == 0, p.stderr
    said = [line for line in (p.stdout + p.stderr).splitlines() if "minDur" in line]
    assert len(said) == 1, said
    assert said[0].startswith("warning: signal(s) A0, B0: the actuated program's own minDur 5 s and maxDur 50 s are "
                              "not used: every controller keeps each green between min green 5-8 s and max green "
                              "60 s"), said
    (run,) = (tmp_path / "runs").iterdir()
    warned = json.loads((run / "metrics.json").read_text())["warnings"]
    assert sum("minDur" in w for w in warned) == 1, warned
    # each signal's own note keeps its own figure
    notes = {s["id"]: " ".join(s["notes"]) for s in json.loads((run / "signal_model.json").read_text())}
    assert "min green 8 s" in notes["A0"] and "min green 5 s" in notes["B0"]


@pytest.mark.slow
def test_evaluate_on_another_network_says_so_and_prints_its_path_on_the_labels_line(tmp_path):
    """A model trained on two.net.xml evaluated on three.net.xml warned only of other route files; and on a
    narrow terminal `runs and summary: ` stood alone, its path on the next line."""
    net = _two_signals(tmp_path)
    other = _two_signals(tmp_path, "three", 3)
    model_dir = tmp_path / "models" / "two"
    trained = _signalwise("train", "--net", str(net), "--routes", str(_trips(net, 0, 60)), "--generations", "1",
                          "--popsize", "2", "--duration", "60", "--validation-seeds", "1", "--workers", "1",
                          "--out", str(model_dir))
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "evaluations" / "on-the-three-signal-network"
    p = _signalwise("evaluate", "--model", str(model_dir / "model"), "--net", str(other), "--routes",
                    str(_trips(other, 0, 60)), "--seeds", "1", "--duration", "60", "--baseline", "fixed",
                    "--workers", "1", "--out", str(out), columns=60)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert re.search(r"warning: the model ran on another network than it trained on: three\.net\.xml \(digest "
                     r"[0-9a-f]{16}\), where it trained on two\.net\.xml \(digest [0-9a-f]{16}\)", text), p.stdout
    assert f"runs and summary: {out}" in p.stdout.splitlines(), p.stdout
    (evaluation,) = json.loads((model_dir / "model" / "meta.json").read_text())["evaluations"]
    assert evaluation["other_network"].startswith("three.net.xml")
    # the same network again: nothing said of it
    again = _signalwise("evaluate", "--model", str(model_dir / "model"), "--seeds", "1", "--first-seed", "7",
                        "--duration", "60", "--baseline", "fixed", "--workers", "1", "--out", str(tmp_path / "same"))
    assert again.returncode == 0, again.stderr
    assert "another network" not in again.stdout


@pytest.mark.slow
def test_train_into_an_out_a_failed_training_left_says_it_starts_over_there(tmp_path):
    """A training whose episodes failed left its settings and episodes in --out; the next `train` into it started
    over there (docs/learning.md) without a word. And an --out holding anything else was trained into, where
    `run` and `compare` refuse a directory that holds files."""
    net = _two_signals(tmp_path)
    broken = tmp_path / "late.rou.xml"  # a departure lane the edge lacks: SUMO stops when the vehicle is due
    broken.write_text('<routes><vehicle id="v0" depart="0"><route edges="left0A0"/></vehicle>'
                      '<vehicle id="v1" depart="40" departLane="7"><route edges="left0A0"/></vehicle></routes>')
    out = tmp_path / "models" / "m"
    args = ["--generations", "1", "--popsize", "2", "--duration", "60", "--validation-seeds", "1", "--workers", "1"]
    failed = _signalwise("train", "--net", str(net), "--routes", str(broken), *args, "--out", str(out))
    assert failed.returncode != 0 and "Invalid departLane" in failed.stderr, failed.stderr
    left = sorted(p.name for p in out.iterdir())
    assert left and "model" not in left
    routes = _trips(net, 0, 60)
    p = _signalwise("train", "--net", str(net), "--routes", str(routes), *args, "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert (f"note: --out {out} holds a training that did not finish (no model): it starts over there, replacing "
            "what that training left; the same command with --resume goes on from its last checkpoint or "
            "generation instead") in p.stderr.splitlines(), p.stderr
    assert (out / "model" / "meta.json").is_file()
    # a directory of other files: refused, as `run --run-dir` refuses one, and left as it was
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("field counts\n")
    p = _signalwise("train", "--net", str(net), "--routes", str(routes), *args, "--out", str(other))
    assert p.returncode == 2
    assert p.stderr.strip() == (f"error: --out {other}: exists and is not empty: a training never overwrites "
                                "another's results; give a new --out or remove it"), p.stderr
    assert [f.name for f in other.iterdir()] == ["notes.txt"]
