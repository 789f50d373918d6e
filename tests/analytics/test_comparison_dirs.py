"""A `signalwise compare` directory given where a run directory is expected: `audit` audits every run in it,
as `publish` stores every run in it, and `atspm` (one run's measures at a time) names one of its runs instead
of saying that `events.csv` is missing. A real comparison on the `single` scenario."""

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise

SIGNALWISE = Path(sys.executable).with_name("signalwise")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    done = subprocess.run([str(SIGNALWISE), "compare", "-s", "single", "--controllers", "fixed,max-pressure",
                           "--seeds", "1", "--duration", "300", "--workers", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_audit_of_a_comparison_audits_each_of_its_runs(comparison):
    runs = sorted(d.name for d in comparison.iterdir() if (d / "events.csv").is_file())
    assert len(runs) == 2
    done = signalwise("audit", str(comparison))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 run(s) audited" in done.stdout and "no violations" in done.stdout
    assert all(name in done.stdout for name in runs)


def test_atspm_of_a_comparison_names_one_of_its_runs(comparison, tmp_path):
    done = signalwise("atspm", str(comparison), "--out", str(tmp_path / "atspm"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a comparison's directory of 2 runs" in errors[0]
    named = Path(errors[0].rsplit("signalwise atspm ", 1)[1])
    assert (named / "events.csv").is_file()
