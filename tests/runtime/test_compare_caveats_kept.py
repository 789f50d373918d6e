"""What `compare` says before the runs about a learned model's figures (on its own training or validation seeds,
under another timing profile than it trained under) is kept in summary.json (`caveats`) and in report.md's
"Safety and warnings", not on the terminal alone: a memo made from report.md presented a model's validation seeds
as results with no word of it.

A real comparison: the model shipped for `single` (trained under the safety profile, validated on seed 601000)
against max-pressure on that seed, under the benchmark profile, one simulated minute."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.control.learning.shipped import shipped_model_path

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


@pytest.mark.slow
def test_the_caveats_about_a_learned_model_reach_summary_json_and_report_md(tmp_path):
    model = shipped_model_path("single")
    out = tmp_path / "cmp"
    p = subprocess.run([SIGNALWISE, "compare", "-s", "single", "--controllers", f"max-pressure,ql:{model}",
                        "--seeds", "1", "--first-seed", "601000", "--timing", "benchmark", "--duration", "60",
                        "--workers", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    caveats = json.loads((out / "summary.json").read_text())["caveats"]
    seeds = f"ql: {model} trained or was validated on seed(s) 601000 of these runs"
    profile = f"ql: {model} trained under the safety timing profile; this run is under benchmark"
    assert [c for c in caveats if c.startswith(seeds)] and [c for c in caveats if c.startswith(profile)], caveats
    assert all(c in p.stderr for c in caveats)  # the very lines the terminal gave
    report = (out / "report.md").read_text()
    warnings = report.split("## Safety and warnings", 1)[1].split("\n## ", 1)[0]
    assert all(f"- {c}" in warnings for c in caveats), warnings


@pytest.mark.slow
def test_a_comparison_without_a_learned_model_has_no_caveat(tmp_path):
    out = tmp_path / "cmp"
    p = subprocess.run([SIGNALWISE, "compare", "-s", "single", "--controllers", "fixed,max-pressure", "--seeds", "1",
                        "--duration", "60", "--workers", "1", "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "summary.json").read_text())["caveats"] == []
