"""SUMO's teleports, counted: in metrics.json (held to SUMO's own statistics of the same run), the run summary and
its warning, the compare table, summary.json and summary.csv, and bench/resco.py's cells and table.

Teleports are made to happen on purpose: on `corridor` with `time_to_teleport_s: 10`, every vehicle that waits
out a red light for more than 10 s is teleported across the junction, some hundreds in five minutes. The
benchmark profile (`--time-to-teleport -1`) never teleports.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.scripts import load_script
from support.tables import table_rows

from signalwise.runtime.commands import print_compare_table, print_run_summary
from signalwise.runtime.compare import compare_controllers, summarize
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
ROOT = Path(__file__).resolve().parents[2]
#: SUMO teleports a vehicle that has stood this long (a red light is longer)
SOON_S = 10.0
DURATION_S = 300.0


def sumo_teleports(run_dir: Path) -> int:
    """The total in SUMO's own statistic output of the run, read apart from the code under test."""
    text = (run_dir / "sumo" / "statistics.xml").read_text()
    return int(re.search(r'<teleports total="(\d+)"', text)[1])


def _run(path: Path, **options) -> dict:
    cfg = RunConfig(scenario="corridor", controller="fixed", duration_s=DURATION_S, seed=1, record="lean", **options)
    return execute_run(cfg, path).metrics


@pytest.fixture(scope="module")
def teleporting(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("teleporting") / "run"
    return d, _run(d, time_to_teleport_s=SOON_S)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("benchmark") / "run"
    return d, _run(d, timing="benchmark")


def _unwrapped(text: str) -> str:
    return " ".join(text.split())


def test_metrics_json_carries_sumos_own_teleport_count_and_warns(teleporting):
    run_dir, metrics = teleporting
    net = json.loads((run_dir / "metrics.json").read_text())["network"]
    total = sumo_teleports(run_dir)
    assert total > 50  # the premise: a 10 s limit teleports vehicles out of every red
    assert net["teleports"] == total
    assert set(net["teleports_by_kind"]) == {"jam", "yield", "wrong_lane"}
    assert sum(net["teleports_by_kind"].values()) == total
    said = [w for w in metrics.get("warnings", ()) if "teleport" in w]
    assert len(said) == 1, metrics.get("warnings")
    assert f"teleported vehicles {total} times" in said[0] and "cut short" in said[0]


def test_teleports_lower_the_delay_of_the_same_traffic(teleporting, tmp_path):
    """Why they must be counted: the same run without teleports has a higher delay, and nothing else differs."""
    _run_dir, metrics = teleporting
    held = _run(tmp_path / "run", time_to_teleport_s=-1)
    assert held["network"]["teleports"] == 0
    assert held["network"]["avg_delay_s"] > metrics["network"]["avg_delay_s"]


def test_a_run_without_teleports_counts_0_and_does_not_warn(benchmark):
    run_dir, metrics = benchmark
    assert sumo_teleports(run_dir) == 0
    assert metrics["network"]["teleports"] == 0
    assert metrics["network"]["teleports_by_kind"] == {"jam": 0, "yield": 0, "wrong_lane": 0}
    assert not any("teleport" in w for w in metrics.get("warnings", ()))


def test_the_run_summary_shows_the_count_beside_never_inserted(teleporting, benchmark, capsys):
    run_dir, metrics = teleporting
    print_run_summary(metrics, run_dir)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "│" in line]
    labels = [line.split("│")[1].strip() for line in lines]
    assert labels.index("teleports (SUMO)") == labels.index("still running / never inserted") + 1, out
    row = lines[labels.index("teleports (SUMO)")]
    assert f"{sumo_teleports(run_dir)} (yield" in row, row
    assert f"warning: SUMO teleported vehicles {sumo_teleports(run_dir)} times" in _unwrapped(out)

    print_run_summary(benchmark[1], benchmark[0])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "teleports (SUMO)" in line)
    assert row.split("│")[2].strip() == "0" and "teleport" not in out.replace(row, "")

    old = json.loads(json.dumps(metrics))  # a metrics.json from before teleports were counted
    del old["network"]["teleports"], old["network"]["teleports_by_kind"]
    old["warnings"] = []
    print_run_summary(old, run_dir)
    row = next(line for line in capsys.readouterr().out.splitlines() if "teleports (SUMO)" in line)
    assert "not counted" in row and " 0 " not in row, row


def test_the_command_prints_the_warning_with_the_count(tmp_path):
    """The researcher's command: `signalwise run ... --config` with a short time_to_teleport_s."""
    config = tmp_path / "tp.yaml"
    config.write_text(f"time_to_teleport_s: {SOON_S:g}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    run_dir = tmp_path / "run"
    p = subprocess.run([SIGNALWISE, "run", "-s", "corridor", "-c", "fixed", "--duration", f"{DURATION_S:g}",
                        "--config", str(config), "--run-dir", str(run_dir)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    total = sumo_teleports(run_dir)
    text = _unwrapped(p.stdout + p.stderr)
    assert f"warning: SUMO teleported vehicles {total} times" in text, text
    assert "trip is cut short" in text
    assert json.loads((run_dir / "metrics.json").read_text())["network"]["teleports"] == total



@pytest.mark.slow
def test_compare_summary_files_and_table_carry_the_teleports(tmp_path, capsys):
    base = RunConfig(scenario="corridor", duration_s=DURATION_S, record="lean", time_to_teleport_s=SOON_S)
    result = compare_controllers(base, ["fixed", "max-pressure"], [1, 2], tmp_path / "cmp", workers=2)
    assert not result.failures, result.failures
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    row = summary["metrics"]["teleports"]
    for c in ("fixed", "max-pressure"):
        want = [sumo_teleports(result.run_dirs[(c, s)]) for s in (1, 2)]
        assert row["controllers"][c]["values"] == want and min(want) > 0, (c, want)
        assert row["controllers"][c]["mean"] == sum(want) / 2
    with open(tmp_path / "cmp" / "summary.csv") as fh:
        csv_rows = {(r["metric"], r["controller"]): r for r in csv.DictReader(fh)}
    assert float(csv_rows[("teleports", "fixed")]["mean"]) == row["controllers"]["fixed"]["mean"]
    assert csv_rows[("teleports", "max-pressure")]["n"] == "2"

    print_compare_table(summary, width=140)
    out = capsys.readouterr().out
    labels = [label for label in table_rows(out)]
    assert labels.index("teleports (SUMO) (count)") == labels.index("never inserted (veh)") + 1, out
    cells = table_rows(out)["teleports (SUMO) (count)"]
    mean = row["controllers"]["fixed"]["mean"]
    assert cells[0].startswith(f"{mean:.1f} ± " if mean >= 10 else f"{mean:.2f} ± "), cells
    assert re.search(r"[+-]\d+\.\d%( \[[^]]+\])? p ", cells[1]), cells  # a change against fixed, as every other row


def test_compare_shows_0_for_no_teleports_and_a_dash_for_runs_that_never_counted(benchmark, capsys):
    _run_dir, metrics = benchmark
    old = json.loads(json.dumps(metrics))
    del old["network"]["teleports"]
    summary = summarize(["fixed", "old"], [1], {("fixed", 1): metrics, ("old", 1): old})
    entry = summary["metrics"]["teleports"]["controllers"]
    assert entry["fixed"]["values"] == [0] and entry["fixed"]["mean"] == 0
    assert entry["old"]["values"] == [] and entry["old"]["mean"] is None  # unknown, not 0
    print_compare_table(summary, width=140)
    assert table_rows(capsys.readouterr().out)["teleports (SUMO) (count)"] == ["0.00 ± n/a", "—"]


@pytest.fixture(scope="module")
def resco():
    return load_script(ROOT / "bench" / "resco.py", "resco_bench_teleports")


def test_a_bench_cell_keeps_the_count_and_its_table_cell_says_it(resco):
    cell = {"network": "corridor", "profile": "safety", "controller": "fixed", "seed": 1,
            "config": {"time_to_teleport_s": SOON_S, "duration_s": DURATION_S}}
    done = resco.run_cell(cell)
    assert done["teleports"] > 50
    assert f", {done['teleports']} teleports" in resco.cell_notes([done], 1)

    quiet = resco.run_cell({**cell, "profile": "benchmark", "config": {"duration_s": DURATION_S}})
    assert quiet["teleports"] == 0 and "teleport" not in resco.cell_notes([quiet], 1)

    # a cell kept from before teleports were counted: unknown where SUMO could teleport, nothing to say where not
    kept = {k: v for k, v in done.items() if k != "teleports"}
    assert "teleports not counted in 1 run" in resco.cell_notes([kept], 1)
    assert "teleport" not in resco.cell_notes([{k: v for k, v in quiet.items() if k != "teleports"}], 1)
