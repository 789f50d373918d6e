"""What the tables say of figures a network has nothing for, and of a single teleport: a run with no pedestrian
says so beside its pedestrians' figure, a comparison whose runs had none says so in the row's name (a row of "—"
alone reads as broken), and one teleport is "1 time", of one kind with "3 times" for `compare`'s warnings.

Real short runs on `corridor`, which has no pedestrian demand (SUMO's own person output of the run is empty).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from signalwise.runtime import commands
from signalwise.runtime.compare import report_markdown, summarize, warning_groups
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import _teleport_warning, execute_run
from signalwise.sim.outputs import Teleports


@pytest.fixture(scope="module")
def corridor_runs(tmp_path_factory) -> dict[tuple[str, int], tuple[Path, dict]]:
    runs = {}
    for controller in ("fixed", "actuated"):
        d = tmp_path_factory.mktemp(controller) / "run"
        cfg = RunConfig(scenario="corridor", controller=controller, duration_s=120, seed=1, record="lean",
                        evidence="inline")
        runs[(controller, 1)] = (d, execute_run(cfg, d).metrics)
    return runs


def _persons_in_sumo_output(run_dir: Path) -> int:
    text = (run_dir / "sumo" / "tripinfo.xml").read_text()
    return len(re.findall(r"<personinfo ", text))


@pytest.fixture()
def wide(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the tables' console takes this width: no folded row


def test_a_run_without_pedestrians_says_so_beside_their_figure(corridor_runs, wide, capsys) -> None:
    run_dir, metrics = corridor_runs[("fixed", 1)]
    assert _persons_in_sumo_output(run_dir) == 0
    commands.print_run_summary(metrics, run_dir)
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if "time lost per walk" in line)
    assert "no pedestrians in this run" in row
    waits = next(line for line in text.splitlines() if "wait mean / p95 / max" in line)
    assert "no pedestrians in this run" in waits, waits


def test_a_comparison_whose_runs_had_no_pedestrians_says_so_in_the_rows(corridor_runs, capsys) -> None:
    runs = {key: metrics for key, (_d, metrics) in corridor_runs.items()}
    summary = summarize(["fixed", "actuated"], [1], runs)
    ped_rows = [key for key in summary["metrics"] if key.startswith("ped_")]
    assert ped_rows
    for key in ped_rows:
        assert summary["metrics"][key]["none_in_runs"] == "no pedestrians in these runs", key
    assert "none_in_runs" not in summary["metrics"]["avg_delay_s"]  # every run had vehicles
    commands.print_compare_table(summary, width=200)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if "pedestrians: time lost per walk (SUMO) (s)" in line)
    assert "no pedestrians in these runs" in lines[at + 1]  # under the row's name, in its cell
    assert "pedestrians: time lost per walk (SUMO) (no pedestrians in these runs)" in report_markdown(summary, None)


def test_one_teleport_is_one_time_and_of_one_kind_with_several() -> None:
    one = _teleport_warning(Teleports(total=1, jam=0, yield_=1, wrong_lane=0), 300.0)
    three = _teleport_warning(Teleports(total=3, jam=0, yield_=3, wrong_lane=0), 300.0)
    assert one.startswith("SUMO teleported vehicles 1 time (yield 1)"), one
    assert three.startswith("SUMO teleported vehicles 3 times (yield 3)"), three
    groups = warning_groups({"fixed:s1": [one], "ql:s1": [three]})
    assert len(groups) == 1, groups
    assert "[fixed s1: 1 time (yield 1); ql s1: 3 times (yield 3)]" in groups[0]["text"]
