"""bench/resco.py keeps the software that made each cell (signalwise's version, commit and uncommitted changes,
SUMO's and Python's versions) and names it under the table; a sweep resumed over cells another signalwise or SUMO
made is refused with the count of each, unless --mix-versions asks for one table of them (then it names each), and
--fresh runs them again. It mixed them unsaid: after a `git pull` or a SUMO upgrade, the documented resume put two
versions' figures in one table. Real runs of the single intersection over one minute."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.provenance import software, software_text

pytestmark = pytest.mark.slow  # bench/resco.py sweeps in subprocesses

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"


def bench(city: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--networks", str(city), "--controllers", "fixed",
                           "--profiles", "benchmark", "--workers", "2", "--out", str(out), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def cell(out: Path, seed: int) -> Path:
    (path,) = out.glob(f"cells/**/s{seed}.json")
    return path


def test_a_resumed_sweep_over_cells_of_other_software_is_refused_unless_asked(tmp_path):
    city = tmp_path / "city.sumocfg"
    city.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                    f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
                    '<time><begin value="0"/><end value="60"/></time></configuration>')
    out = tmp_path / "out"
    first = bench(city, out, "--seeds", "2")
    assert first.returncode == 0, first.stderr
    here = software_text(software())
    for seed in (1, 2):
        assert json.loads(cell(out, seed).read_text())["software"] == software()
    assert (out / "table.md").read_text().rstrip().endswith(f"Made with {here}.")

    # seed 1 as another SUMO made it, seed 2 as a cell kept before cells recorded their software
    row = json.loads(cell(out, 1).read_text())
    row["software"]["sumo"] = "1.27.0"
    cell(out, 1).write_text(json.dumps(row))
    row = json.loads(cell(out, 2).read_text())
    del row["software"]
    cell(out, 2).write_text(json.dumps(row))
    other = software_text({**software(), "sumo": "1.27.0"})

    refused = bench(city, out, "--seeds", "3")
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the table of this selection would mix the figures of several software versions: ")
    for part in (f"1 cell(s) by {other}", "1 cell(s) with software not recorded (kept before cells recorded it)",
                 f"1 cell(s) by {here}", "--fresh runs every cell again with this software", "--mix-versions"):
        assert part in line, part
    assert not list(out.glob("cells/**/s3.json"))  # refused before any run

    mixed = bench(city, out, "--seeds", "3", "--mix-versions")
    assert mixed.returncode == 0, mixed.stderr
    assert "warning: the table of this selection would mix" in mixed.stderr
    table = (out / "table.md").read_text()
    assert "Made with several software versions (--mix-versions):" in table
    for name in (other, "software not recorded (kept before cells recorded it)", here):
        assert f"- {name}: 1 cell(s)" in table

    fresh = bench(city, out, "--seeds", "3", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert all(json.loads(cell(out, s).read_text())["software"] == software() for s in (1, 2, 3))
    assert (out / "table.md").read_text().rstrip().endswith(f"Made with {here}.")
    # cells all of one other software are no mix: their table, which names it, is printed
    for seed in (1, 2, 3):
        row = json.loads(cell(out, seed).read_text())
        row["software"]["sumo"] = "1.27.0"
        cell(out, seed).write_text(json.dumps(row))
    only = bench(city, out, "--seeds", "3", "--table-only")
    assert only.returncode == 0, only.stderr
    assert only.stdout.rstrip().endswith(f"Made with {other}.")
