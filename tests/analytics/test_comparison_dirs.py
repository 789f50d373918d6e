"""A `signalwise compare` directory given where a run directory is expected: `audit` audits every run in it,
as `publish` stores every run in it, and `atspm` compares its controllers' measures (each run's own tables come
from `atspm RUN`, a run the answer names). A real comparison on the `single` scenario."""

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


@pytest.mark.slow
def test_audit_of_a_comparison_audits_each_of_its_runs(comparison):
    runs = sorted(d.name for d in comparison.iterdir() if (d / "events.csv").is_file())
    assert len(runs) == 2
    done = signalwise("audit", str(comparison))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 run(s) audited" in done.stdout and "no violations" in done.stdout
    assert all(name in done.stdout for name in runs)


@pytest.mark.slow
def test_atspm_of_a_comparison_compares_its_controllers_and_names_a_run_for_the_tables(comparison, tmp_path):
    done = signalwise("atspm", str(comparison), "--out", str(tmp_path / "atspm"))
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "atspm" / "comparison.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in lines[1:]} == {"fixed", "max-pressure"}
    named = Path(done.stdout.rsplit("each run's own tables and charts: signalwise atspm ", 1)[1].strip())
    assert (named / "events.csv").is_file()
