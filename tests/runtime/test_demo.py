"""`signalwise demo`, what `make demo` runs: the README's first command must work on a fresh checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from signalwise.control.learning.shipped import shipped_model_path

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_the_demo_compares_every_controller_with_the_shipped_model_and_audits_each(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a pipe, as `make demo | tee demo.log` gives
    p = subprocess.run([SIGNALWISE, "demo", "--seeds", "1", "--duration", "300", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "corridor"
    assert summary["controllers"] == ["fixed", "webster", "actuated", "max-pressure", "ql"]
    assert summary["failures"] == {} and summary["never_ran"] == []
    assert summary["safety_violations"] == {c: 0 for c in summary["controllers"]}
    assert set(summary["fallback_share"]) == set(summary["controllers"])
    # ql ran the model that ships for the corridor, not some other one or none
    ql_config = yaml.safe_load((out / "ql-s1" / "config.yaml").read_text())
    assert Path(ql_config["controller_options"]["model"]) == shipped_model_path("corridor")
    assert "fallback" in p.stdout and "safety" in p.stdout and "violations" in p.stdout
    # each row on a line of its own even in a pipe (rich's 80 columns folded a row over three lines and split
    # the summary's path in two)
    rows = {line.split("│")[1].strip(): line for line in p.stdout.splitlines() if line.startswith("│")}
    assert rows["delay per vehicle (s)"].count("±") == 5, p.stdout
    assert rows["fallback share"].count("%") == 5 and rows["safety violations"].count("0") >= 5, p.stdout
    assert f"summary: {out / 'summary.csv'} (runs in {out})" in p.stdout.splitlines(), p.stdout


def test_the_demo_says_what_is_wrong_with_a_bad_option():
    p = subprocess.run([SIGNALWISE, "demo", "--seeds", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--seeds must be at least 1" in p.stderr and "Traceback" not in p.stderr
