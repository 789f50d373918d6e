"""The example run configuration the README points to (examples/city.yaml) is accepted by `signalwise run
--config` as shipped, and the run runs under what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "city.yaml"
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_the_readme_and_the_configuration_reference_point_to_the_example() -> None:
    assert "examples/city.yaml" in (ROOT / "README.md").read_text()
    assert "examples/city.yaml" in (ROOT / "docs" / "configuration.md").read_text()


def test_signalwise_run_accepts_the_example_and_runs_under_it(tmp_path: Path) -> None:
    done = subprocess.run([SIGNALWISE, "run", "-s", "single", "--config", str(EXAMPLE), "--duration", "600",
                           "--run-dir", "run", "--record", "lean", "--evidence", "inline"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    given = yaml.safe_load(EXAMPLE.read_text())
    ran = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert ran["controller"] == given["controller"] == "actuated"
    assert ran["warmup_s"] == given["warmup_s"]
    for key, value in given["timing"].items():
        assert ran["timing"][key] == value, key
    for key, value in given["shield"].items():
        assert ran["shield"][key] == value, key
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["safety"]["violations"] == 0
