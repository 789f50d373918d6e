"""What a tabular model was made under, said where it matters: the validation's Webster fallback share in the
train summary (on stdout, unfolded), a resume from another directory or without --sumocfg, the demand it trained
on (evaluate and compare say when it runs on other route files), its training seeds and episode length in
compare, and evaluate's p-values as compare writes them.

Real SUMO runs: `single`'s files as a user's .sumocfg, one 60 s episode per threshold, one validation seed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SHORT = ["--episodes", "1", "--batch", "1", "--workers", "1", "--duration", "60", "--validation-seeds", "1"]
SUMOCFG = """<configuration>
    <input>
        <net-file value="my.net.xml"/>
        <route-files value="my.rou.xml"/>
    </input>
    <time><begin value="0"/><end value="600"/></time>
</configuration>
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "COLUMNS": "80"})


def network(root: Path, period: str | None = None) -> Path:
    """`single`'s network and routes under a user's names, with a .sumocfg naming them relatively; `period`:
    the first flow's headway rewritten (other traffic under the same file names)."""
    sc = load("single")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(sc.net_file, root / "my.net.xml")
    text = sc.route_files[0].read_text()
    if period is not None:
        text = text.replace('period="exp(0.183333)"', f'period="exp({period})"', 1)
    (root / "my.rou.xml").write_text(text)
    (root / "my.sumocfg").write_text(SUMOCFG)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A --guide-visits auto training started in the network's directory with a relative --sumocfg."""
    root = network(tmp_path_factory.mktemp("made") / "net")
    r = cli("train", "--agent", "tabular", "--sumocfg", "my.sumocfg", *SHORT, "--out", "t", cwd=root)
    assert r.returncode == 0, r.stderr
    return root, r


@pytest.mark.slow
def test_train_summary_gives_the_validation_fallback_share_on_stdout_unfolded(trained):
    root, r = trained
    # the result is stdout's, one line per line however narrow the terminal (COLUMNS 80)
    model_line = next((x for x in r.stdout.splitlines() if x.startswith("model: ")), "")
    assert model_line.endswith("shield violations 0)"), r.stdout
    assert "validation (seeds" not in r.stderr
    meta = json.loads((root / "t" / "model" / "meta.json").read_text())
    share = meta["selection"]["fallback_share"]
    summary = json.loads((root / "t" / "validation" / "summary.json").read_text())["fallback_share"]
    guide_only = json.loads((root / "t" / "validation" / "guide-only" / "summary.json").read_text())["fallback_share"]
    assert share["10"] == summary[f"ql:{(root / 't' / 'guide-10' / 'model').resolve()}"]
    assert share["guide_only"] == next(iter(guide_only.values())) and share["max_pressure"] == 0.0
    line = next(x for x in r.stdout.splitlines() if x.startswith("validation (seeds"))
    assert f"guide 10: {meta['selection']['candidates']['10']:.1f} s (Webster fallback {share['10']:.0%})" in line
    assert f"(Webster fallback {share['guide_only']:.0%}), max-pressure:" in line
    assert "behind max-pressure alone" not in line  # it is max-pressure's decisions under the table's confidence


def test_the_loses_warning_says_how_much_of_the_model_was_webster():
    from signalwise.training.commands import _selection_line

    sel = {"seeds": [501000], "candidates": {"10": 27.1, "30": 27.1}, "guide_only_avg_delay_s": 27.1,
           "max_pressure_avg_delay_s": 23.3, "trained_with": 30, "guide_visits": 30,
           "fallback_share": {"10": 0.3056, "30": 0.3056, "guide_only": 0.3056, "max_pressure": 0.0}}
    text = _selection_line(sel)
    assert "guide 30: 27.1 s (Webster fallback 31%)" in text
    assert "LOSES to max-pressure" in text and "for 31% of its steps" in text and "Webster's fallback plan ran" in text
    # a model made before the share was kept: the line stands without it
    assert "fallback" not in _selection_line({k: v for k, v in sel.items() if k != "fallback_share"}).split("\n")[0]


@pytest.mark.slow
def test_resume_names_the_config_another_way_or_not_at_all(trained, tmp_path):
    root, _ = trained
    out = tmp_path / "t"
    shutil.copytree(root / "t", out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the same file by its absolute path, from another directory
    r = cli("train", "--agent", "tabular", "--sumocfg", str(root / "my.sumocfg"), *SHORT[2:], "--episodes", "2",
            "--out", str(out), "--resume", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "guide-30" / "train_state.json").read_text())["episodes_done"] == 2
    # no network named: the one it was started on, as for the other options left out
    r = cli("train", "--agent", "tabular", "--episodes", "3", "--workers", "1", "--validation-seeds", "1",
            "--out", str(out), "--resume", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    state = json.loads((out / "guide-10" / "train_state.json").read_text())
    assert state["episodes_done"] == 3 and state["config"]["sumocfg"] == str((root / "my.sumocfg").resolve())
    # another network is still refused, before any episode: in this process
    other = network(tmp_path / "other")
    r = signalwise("train", "--agent", "tabular", "--sumocfg", str(other / "my.sumocfg"), "--episodes", "3",
            "--workers", "1", "--out", str(out), "--resume", cwd=elsewhere, env={"COLUMNS": "80"})
    assert r.returncode == 2 and "--resume with another sumocfg" in r.stderr, r.stderr


@pytest.mark.slow
def test_evaluate_and_compare_say_when_the_demand_or_the_seeds_or_the_window_differ(trained, tmp_path):
    root, _ = trained
    model = tmp_path / "t" / "model"
    shutil.copytree(root / "t" / "model", model)
    meta = json.loads((model / "meta.json").read_text())
    demand = meta["training"]["demand"]
    assert demand["route_files"] == ["my.rou.xml"] and demand["scale"] == 1.0 and len(demand["routes_sha256"]) == 16
    heavier = network(tmp_path / "heavier", period="0.3")  # the same names, other traffic
    r = cli("evaluate", "--model", str(model), "--sumocfg", str(heavier / "my.sumocfg"), "--seeds", "1",
            "--duration", "30", "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert "warning: the model ran on other route files than it trained on (my.rou.xml: digest" in said, said
    assert "the model trained on episodes of 1 min" in said
    evaluation = json.loads((model / "meta.json").read_text())["evaluations"][-1]
    assert evaluation["scenario"] == "my.sumocfg" and evaluation["other_demand"].startswith("other route files")
    assert evaluation["demand"]["routes_sha256"] != demand["routes_sha256"]

    r = cli("compare", "--sumocfg", str(heavier / "my.sumocfg"), "--controllers", f"max-pressure,ql:{model}",
            "--seeds", "1", "--duration", "60", "--workers", "1", "--out", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    assert f"ql: {model} runs here on other route files than it trained on" in r.stderr
    assert "these runs cover" not in r.stderr and "trained or was validated" not in r.stderr


@pytest.mark.slow
def test_compare_says_when_a_model_runs_its_training_seeds_or_another_window(trained, tmp_path):
    root, _ = trained
    model = root / "t" / "model"
    first = json.loads((model / "meta.json").read_text())["training"]["seeds"][0]
    r = cli("compare", "--sumocfg", str(root / "my.sumocfg"), "--controllers", f"max-pressure,ql:{model}",
            "--seeds", "1", "--first-seed", str(first), "--duration", "30", "--workers", "1",
            "--out", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    assert f"ql: {model} trained or was validated on seed(s) {first} of these runs" in r.stderr
    assert f"ql: {model} trained on episodes of 60 s; these runs cover 30 s" in r.stderr
    assert "other route files" not in r.stderr  # the routes it trained on


def test_evaluate_writes_a_tiny_p_as_compare_does():
    from signalwise.training.commands import _p

    assert _p(0.0004) == "< 0.001" and _p(0.0123) == "0.012" and _p(None).startswith("n/a")
