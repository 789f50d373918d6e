"""`signalwise atspm COMPARE_DIR`: each controller's ATSPM figures over its seeds, against the baseline.

The figures are held to each run's own tables, written by `signalwise atspm RUN` (the per-run command), summed over
signals and phases as the comparison says it sums them, and the means and changes to those per-run figures.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

# slow (`make test-all`, not `make test`): the tests here share one module fixture of many seconds
pytestmark = pytest.mark.slow

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
CONTROLLERS = ("fixed", "max-pressure")
SEEDS = (1, 2)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*SIGNALWISE, *args], capture_output=True, text=True, timeout=600)


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    p = _cli("compare", "-s", "corridor", "-c", ",".join(CONTROLLERS), "--seeds", str(len(SEEDS)), "--duration",
             "600", "--workers", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out, _cli("atspm", str(out))


def _per_run_aog_pct(run: Path, tmp: Path) -> float:
    p = _cli("atspm", str(run), "--out", str(tmp / run.name), "--no-charts")
    assert p.returncode == 0, p.stderr
    rows = _rows(tmp / run.name / "arrival_on_green.csv")
    return 100 * sum(float(r["Green_Actuations"]) for r in rows) / sum(float(r["Total_Actuations"]) for r in rows)


def test_each_controller_is_the_mean_of_its_runs_and_changes_against_the_baseline(comparison, tmp_path):
    out, p = comparison
    assert p.returncode == 0, p.stderr
    assert "change vs fixed, paired t-test p over the same seeds" in p.stdout
    rows = {(r["controller"], r["figure"]): r for r in _rows(out / "atspm" / "comparison.csv")}
    assert {c for c, _f in rows} == set(CONTROLLERS)
    aog = {c: [_per_run_aog_pct(out / f"{c}-s{s}", tmp_path) for s in SEEDS] for c in CONTROLLERS}
    for c in CONTROLLERS:
        row = rows[c, "arrivals_on_green_pct"]
        assert float(row["mean"]) == pytest.approx(sum(aog[c]) / len(SEEDS), rel=1e-3), c
        assert int(row["n"]) == len(SEEDS)
    base, mp = sum(aog["fixed"]) / 2, sum(aog["max-pressure"]) / 2
    assert float(rows["max-pressure", "arrivals_on_green_pct"]["change_pct"]) == pytest.approx(
        (mp - base) / base * 100, rel=1e-3)
    assert rows["fixed", "arrivals_on_green_pct"]["change_pct"] == ""  # the baseline has no change of its own
    assert {f for _c, f in rows} == {"arrivals_on_green_pct", "split_failure_pct", "split_failures", "phase_wait_s"}


def test_a_run_without_detector_events_is_named_and_left_out(comparison, tmp_path):
    import shutil

    out, _ = comparison
    copy = tmp_path / "cmp"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("atspm"))
    (copy / "max-pressure-s2" / "detectors.csv").unlink()
    p = _cli("atspm", str(copy))
    assert p.returncode == 0, p.stderr
    assert "warning: max-pressure-s2: no detectors.csv or events.csv" in p.stdout
    rows = {(r["controller"], r["figure"]): r for r in _rows(copy / "atspm" / "comparison.csv")}
    assert rows["max-pressure", "phase_wait_s"]["n"] == "1"
