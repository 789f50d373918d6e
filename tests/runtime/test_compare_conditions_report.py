"""What a `compare` leaves for a memo: the conditions its figures hold under, in the table, summary.json,
summary.csv and report.md; "better"/"worse" in words, not only in colour; units in summary.csv.

The trial user's report: with `--demand-scale 1.3` (or `--timing benchmark`) the table title, summary.csv and
summary.json looked exactly like the 1.0 run's; in a file or pipe "+27.6% p 0.001" had no "worse" beside it and
a tiny p printed "p 0.000"; summary.csv had no unit; there was no report; `compare --help` called the table's
p Welch's, where it is the paired test's.
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
from support.tables import table_rows

from signalwise.runtime.commands import print_compare_table
from signalwise.runtime.compare import METRICS, summarize

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _env() -> dict:
    """A pipe, as `signalwise compare ... > cmp.log` gives: no terminal, no colour."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """`single` at 1.3 times its demand under the benchmark profile, 2 seeds of 120 s (a few seconds)."""
    tmp = tmp_path_factory.mktemp("scaled")
    out = tmp / "cmp"
    p = subprocess.run([SIGNALWISE, "compare", "--scenario", "single", "--controllers", "fixed,max-pressure",
                        "--seeds", "2", "--duration", "120", "--demand-scale", "1.3", "--timing", "benchmark",
                        "--out", str(out)], capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p.stdout


@pytest.mark.slow
def test_the_demand_scale_and_timing_profile_are_in_summary_json_csv_and_the_tables_heading(scaled):
    out, stdout = scaled
    cond = json.loads((out / "summary.json").read_text())["conditions"]
    assert cond["demand_scale"] == 1.3 and cond["timing_profile"] == "benchmark"
    assert (cond["begin_s"], cond["end_s"], cond["warmup_s"]) == (0.0, 120.0, 0.0)
    assert cond["seeds"] == [1, 2] and cond["scenario"] == "single"
    assert cond["time_to_teleport_s"] == -1.0  # the benchmark profile's: no teleports

    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(METRICS) * 2
    for r in rows:  # constant columns a spreadsheet filters and pivots on; not a comment line
        assert (r["demand_scale"], r["timing_profile"], r["scenario"]) == ("1.3", "benchmark", "single"), r
        assert (r["begin_s"], r["end_s"], r["warmup_s"], r["seeds"]) == ("0.0", "120.0", "0.0", "1 2"), r

    heading = stdout.splitlines()[0]  # one line, however narrow the table under it
    assert heading == "single: 0–120 s simulated, demand ×1.3, benchmark timing, seeds 1, 2 (each draws new demand)", \
        stdout


def test_summary_csv_has_each_metrics_unit_as_summary_json_does(scaled):
    out, _stdout = scaled
    units = {key: row["unit"] for key, row in json.loads((out / "summary.json").read_text())["metrics"].items()}
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["metric"]: r["unit"] for r in rows} == units
    assert units["avg_delay_s"] == "s" and units["co2_kg"] == "kg" and units["fuel_l"] == "l"


def test_the_verdict_words_of_the_piped_table_and_csv_follow_summary_json(scaled):
    out, stdout = scaled
    summary = json.loads((out / "summary.json").read_text())
    assert "\x1b[" not in stdout  # no colour in a pipe: the words are all there is
    cells = table_rows(stdout)
    with open(out / "summary.csv") as fh:
        csv_verdicts = {(r["metric"], r["controller"]): r["verdict"] for r in csv.DictReader(fh)}
    said = 0
    for key, row in summary["metrics"].items():
        label = row["label"] + (f" ({row['unit']})" if row["unit"] else "")
        cell = next(c for first, c in cells.items() if label.startswith(first))[1]  # a folded label: its 1st line
        e = row["controllers"]["max-pressure"]
        verdict = e.get("verdict")
        assert csv_verdicts[(key, "max-pressure")] == (verdict or ""), key
        assert csv_verdicts[(key, "fixed")] == "", key  # the baseline is no change
        if verdict:
            said += 1
            assert e["p_paired"] < 0.05, (key, e)
            assert (e["change_pct"] < 0) == row["lower_is_better"] if verdict == "better" else \
                (e["change_pct"] < 0) != row["lower_is_better"], (key, e)
            assert re.search(rf"\b{verdict} [+-]\d+\.\d%( \[[^]]+\])? p ", cell), (key, cell)
        else:
            assert "better" not in cell and "worse" not in cell, (key, cell)
    # the premise: this run has a change the paired test finds (the queue at 1.3 times the demand)
    assert said >= 1, summary["metrics"]


def test_the_report_holds_the_conditions_table_changes_definitions_and_chart(scaled):
    from signalwise.runtime.compare import DEFINITIONS, change_text, mean_text

    out, stdout = scaled
    report = out / "report.md"
    assert f"report: {report}" in stdout, stdout  # the command says where it is
    text = report.read_text()
    summary = json.loads((out / "summary.json").read_text())

    assert "| demand scale | ×1.3" in text and "| timing profile | benchmark |" in text
    assert "| simulated window | 0–120 s" in text and "| seeds | 1, 2 " in text
    # the table with units, mean ± 95% CI as the printed table shows them
    assert "| metric | unit | fixed | max-pressure |" in text
    delay = summary["metrics"]["avg_delay_s"]["controllers"]
    assert f"| delay per vehicle | s | {mean_text(delay['fixed'], 2)} | " \
        f"{mean_text(delay['max-pressure'], 2)} |" in text
    assert "95 % confidence interval" in text
    # the change with its paired p, and the verdict in words where there is one
    assert "## Change against fixed" in text and "paired t-test" in text
    change = delay["max-pressure"]
    assert f"| delay per vehicle | {change_text(change)} (p " in text
    for row in summary["metrics"].values():
        e = row["controllers"]["max-pressure"]
        if e.get("change_pct") is not None:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row['label']} | {e['change_pct']:+.1f} %"))
            said = e.get("verdict") or e.get("no_verdict")
            assert line.endswith(f": **{said}** |" if said else ") |"), line
    # a definition per metric: RESCO's delay, and the scope of CO2 and fuel
    for key, row in summary["metrics"].items():
        assert f"- **{row['label']}**" in text and DEFINITIONS[key] in text, key
    assert "timeLoss + departDelay" in text and "those still driving at the end and those never inserted" in text
    # RESCO named once, in the definitions, with where to read more
    resco = [line for line in text.splitlines() if "RESCO" in line]
    assert len(resco) == 1 and resco[0].startswith("- **delay per vehicle** (s): "), resco
    assert "the RESCO benchmark's definition of delay (docs/benchmarks.md" in resco[0]
    assert "every edge of the network" in text
    assert "Safety violations" in text and "fixed 0, max-pressure 0" in text
    assert "![Delay over time](delay_over_time.png)" in text and (out / "delay_over_time.png").is_file()


def _metrics(**network: float) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    # 1000 vehicles due, all inserted: the per-vehicle figures average over enough to be judged
    values.update(fallback_fraction=0.0, vehicles_total=1000.0, never_inserted=0.0, **network)
    return {"network": values, "safety": {"violations": 0}}


def test_a_losing_controller_reads_worse_and_a_tiny_p_reads_below_0_001_without_colour(capsys):
    """webster: 0.70 more stops on every seed (worse, p ~ 1e-6), less delay (better), more throughput (better:
    higher is); actuated: a change of delay the seeds do not tell from chance (no word)."""
    runs = {}
    for s, (delay, stops, through) in enumerate(((100.0, 2.60, 2000.0), (120.0, 2.80, 2100.0),
                                                 (110.0, 3.00, 2050.0)), start=1):
        runs[("fixed", s)] = _metrics(avg_delay_s=delay, stops_per_veh=stops, throughput_veh=through)
        runs[("webster", s)] = _metrics(avg_delay_s=delay - (31, 36, 29)[s - 1], stops_per_veh=stops + 0.7 + 0.001 * s,
                                        throughput_veh=through + (90, 120, 100)[s - 1])
        runs[("actuated", s)] = _metrics(avg_delay_s=delay + (4, -5, 2)[s - 1], stops_per_veh=stops,
                                         throughput_veh=through)
    summary = summarize(["fixed", "webster", "actuated"], [1, 2, 3], runs)
    webster = {key: row["controllers"]["webster"] for key, row in summary["metrics"].items()}
    assert webster["stops_per_veh"]["p_paired"] < 0.001 and webster["stops_per_veh"]["verdict"] == "worse"
    for key in ("avg_delay_s", "throughput_veh"):  # p between 0.001 and 0.05: three decimals
        assert 0.001 < webster[key]["p_paired"] < 0.05 and webster[key]["verdict"] == "better", webster[key]
    assert "verdict" not in summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]
    assert summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]["no_verdict"] == "no clear change"

    print_compare_table(summary, width=100)
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    rows = table_rows(out)
    # the label folds its unit onto a line of its own: the row's cells continue under it
    stops = " ".join(filter(None, (rows["stops per vehicle"][1], rows.get("(stops/veh)", ["", ""])[1])))
    assert re.fullmatch(r"3\.50 ± 0\.50 worse \+25\.1% \[\+25\.\d, \+25\.\d\] p < 0\.001", stops), rows
    assert re.fullmatch(r"2153\.3 ± \d+\.\d better \+5\.0% \[\+[\d.]+, \+[\d.]+\] p 0\.0\d\d", rows["throughput (veh)"][1]), rows
    assert re.fullmatch(r"78\.0 ± \d+\.\d better -29\.1% \[-[\d.]+, -[\d.]+\] p 0\.0\d\d", rows["delay per vehicle (s)"][1]), rows
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d no clear change \+0\.3% \[-[\d.]+, \+[\d.]+\] p 0\.\d{3}", rows["delay per vehicle (s)"][2]), rows
    assert "p 0.000" not in out


def test_compare_help_says_the_tables_p_is_the_paired_tests():
    p = subprocess.run([SIGNALWISE, "compare", "--help"], capture_output=True, text=True, timeout=60,
                       env={**_env(), "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.replace("│", " ").split())
    assert "paired t-test p over the same seeds (p_paired; Welch's beside it in summary.csv, p_welch)" in text, text
    assert "report.md" in text
    assert "Welch p-value" not in text
