"""`signalwise atspm COMPARE_DIR`'s comparison.csv: intervals within the values a figure can take (a count or a wait
never below 0, a share within 0-100 %), the verdict of `analytics.verdict` with Welch's p beside the paired one, and
the comparison's conditions on every row, as `compare`'s summary.csv has them."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.analytics.atspm.comparison import run_figures
from signalwise.analytics.stats import compare
from signalwise.analytics.verdict import judge

pytestmark = pytest.mark.slow  # a comparison of 4 corridor runs, then their ATSPM

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]


@pytest.fixture(scope="module")
def atspm(tmp_path_factory) -> tuple[Path, list[dict], str]:
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    made = subprocess.run([*SIGNALWISE, "compare", "-s", "corridor", "-c", "fixed,max-pressure", "--seeds", "2",
                           "--duration", "600", "--workers", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr
    p = subprocess.run([*SIGNALWISE, "atspm", str(out)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    with (out / "atspm" / "comparison.csv").open() as fh:
        return out, list(csv.DictReader(fh)), p.stdout


def _num(cell: str) -> float:
    return float(cell) if cell != "" else math.nan


def test_no_interval_leaves_the_values_its_figure_can_take(atspm):
    _out, rows, stdout = atspm
    cut = 0
    for r in rows:
        low, high = _num(r["ci_low"]), _num(r["ci_high"])
        if math.isnan(low):
            continue
        assert low >= 0, r
        if r["unit"] == "%":
            assert high <= 100, r
        assert low <= float(r["mean"]) <= high, r
        if r["ci_note"]:
            cut += 1
            assert r["ci_note"].startswith("t-interval cut at"), r
            assert low == 0 or high == 100, r
    # 2 seeds (t with 1 degree of freedom): the split failures of a corridor run reach below 0 before the cut
    assert cut >= 1, rows
    assert "t-interval cut at 0" in stdout


def test_each_change_has_welchs_p_and_the_verdict_of_compare(atspm):
    out, rows, _stdout = atspm
    per_run: dict[tuple[str, str], list[float]] = {}
    for run in sorted(out.glob("*-s*")):  # each run's own figure, to test the rows' verdicts against
        meta = json.loads((run / "run.json").read_text())
        for name, value in run_figures(run, {}).items():
            per_run.setdefault((meta["controller"], name), []).append(value)
    lower = {"arrivals_on_green_pct": False, "split_failure_pct": True, "split_failures": True, "phase_wait_s": True}
    judged = 0
    for r in rows:
        if r["controller"] == "fixed":
            assert r["p_welch"] == r["verdict"] == r["verdict_note"] == "", r
            continue
        cmp = compare(per_run["fixed", r["figure"]], per_run[r["controller"], r["figure"]], paired=True)
        assert _num(r["p_welch"]) == pytest.approx(cmp.p_value, rel=1e-3, nan_ok=True), r
        want = judge(cmp, lower[r["figure"]])
        assert (r["verdict"], r["verdict_note"]) == (want.get("verdict", ""), want.get("no_verdict", "")), r
        judged += bool(r["verdict"] or r["verdict_note"])
    assert judged >= 3, rows


def test_every_row_carries_the_comparisons_conditions(atspm):
    out, rows, _stdout = atspm
    cond = json.loads((out / "summary.json").read_text())["conditions"]
    for r in rows:
        assert r["scenario"] == "corridor" and r["seeds"] == "1 2", r
        assert float(r["end_s"]) == cond["end_s"] == 600 and float(r["warmup_s"]) == cond["warmup_s"], r
