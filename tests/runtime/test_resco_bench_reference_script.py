"""bench/resco.py refuses a reference column whose script is missing before any run: the script lives beside the
checkout, not in it, and a sweep that found it missing at its last cells had run every other cell first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"


def test_a_missing_reference_script_is_refused_in_one_line_before_any_run(tmp_path):
    city = tmp_path / "city.sumocfg"  # one minute of the single intersection: a cell would take a few seconds
    city.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                    f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
                    '<time><begin value="0"/><end value="60"/></time></configuration>')
    missing, out = tmp_path / "nowhere" / "maxpressure_ref.py", tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "--networks", str(city), "--controllers",
                           "fixed,maxpressure_ref", "--profiles", "reference", "--seeds", "1", "--workers", "1",
                           "--reference-script", str(missing), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {missing}: no reference script there")
    assert "--reference-script" in lines[0]
    assert not out.exists()  # no cell ran, not even the fixed one
