"""A `compare` report a manager can read (the signal engineer's trial, finding 8, and the last part of 6): the
headline figure has a plain name and RESCO's definition is said once, in the definitions; a change reads better or
worse only when the paired test finds it and it is at least 1 % (the trial's throughput +0.4 % at p 0.025 read
"better"), else "no clear change"; a figure averaged over a handful of vehicles or pedestrians a seed says how
many and gets no verdict; the per-signal below-ITE warnings read as one line naming the signals; SUMO's time lost
per walk is not called pedestrian delay, ATSPM's wait at a crossing.

Real runs, kept short: `corridor` for 600 s under an all-red of 2 s (below ITE at every signal; one emergency
vehicle in one seed), and `single` for 120 s (a few pedestrians each seed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.tables import table_rows

from signalwise.analytics.stats import p_text
from signalwise.runtime.commands import print_compare_table, print_run_summary
from signalwise.runtime.compare import (
    METRICS,
    MIN_CHANGE_PCT,
    MIN_PER_SEED,
    change_text,
    report_markdown,
    summarize,
)

pytestmark = pytest.mark.slow  # real comparisons, several seconds each

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
QUIET_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}


def _metric_rows(stdout: str, summary: dict) -> dict[str, str]:
    """The compare table's rows by metric label, each the words of all its lines: a long label folds over several
    lines of the first column, where `support.tables.table_rows` would start a row at each."""
    shown = {row["label"] + (f" ({row['unit']})" if row["unit"] else ""): row["label"]
             for row in summary["metrics"].values()}
    rows: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if not line.startswith("│"):
            continue
        first = line.strip("│").split("│")[0].strip()
        starts = [label for text, label in shown.items() if first and text.startswith(first)]
        if starts and starts[0] not in rows:
            current = starts[0]
        elif first in ("fallback share", "controller errors", "invalid proposals", "safety violations"):
            current = None  # the rows under the metrics'
        if current is not None:
            rows.setdefault(current, []).append(line.replace("│", " "))
    return {label: " ".join(" ".join(lines).split()) for label, lines in rows.items()}


def _compare(cwd: Path, out: Path, *args: str) -> str:
    p = subprocess.run([SIGNALWISE, "compare", *args, "--seeds", "2", "--workers", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=QUIET_ENV, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def corridor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corridor")
    (tmp / "policy.yaml").write_text("timing:\n  all_red_s: 2.0\n")
    out = tmp / "cmp"
    stdout = _compare(tmp, out, "--scenario", "corridor", "--controllers", "fixed,actuated", "--duration", "600",
                      "--config", "policy.yaml")
    return out, stdout


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    out = tmp / "cmp"
    stdout = _compare(tmp, out, "--scenario", "single", "--controllers", "fixed,max-pressure", "--duration", "120")
    return out, stdout


def test_the_below_ite_warnings_read_one_line_naming_the_signals(corridor):
    out, stdout = corridor
    runs = {c: json.loads((out / f"{c}-s{s}" / "metrics.json").read_text()) for c in ("fixed", "actuated")
            for s in (1, 2)}
    # the premise: each run warns once per signal, at each of the corridor's five
    each = [w for w in runs["fixed"]["warnings"] if "below ITE" in w]
    assert len(each) == 5 and all(w.startswith(f"signal 'J{i}': below ITE: timing.all_red_s 2 s") for i, w in
                                  enumerate(each, start=1)), each

    said = [line for line in stdout.splitlines() if "below ITE" in line]
    assert len(said) == 1, said
    assert said[0].startswith("warning: fixed s1, s2, actuated s1, s2: below ITE at 5 signals (J1, J2, J3, J4, J5): "
                              "timing.all_red_s 2 s, where ITE's red clearance is "), said
    # the span of ITE's values the runs gave, and where the detail of each phase is
    ite = [float(v) for w in each for v in re.findall(r"< ITE (\d+(?:\.\d+)?) s", w)]
    assert f"{min(ite):g}–{max(ite):g} s for their geometry" in said[0], (said, ite)
    assert "not a safety violation" in said[0] and "metrics.json" in said[0]
    assert " m / " not in said[0]  # the formula's inputs stay in the run's files

    summary = json.loads((out / "summary.json").read_text())
    assert [g["text"] for g in summary["warnings"] if "below ITE" in g["text"]] == [said[0].removeprefix("warning: ")]
    section = (out / "report.md").read_text().split("## Safety and warnings", 1)[1].split("\n## ", 1)[0]
    assert [line for line in section.splitlines() if "below ITE" in line] == [f"  - {said[0].removeprefix('warning: ')}"]


def test_the_headline_figure_has_a_plain_name_and_resco_is_named_once_in_the_definitions(corridor):
    out, stdout = corridor
    report = (out / "report.md").read_text()
    assert "delay per vehicle (s)" in table_rows(stdout)
    assert re.search(r"^\| delay per vehicle \| s \| ", report, re.M)
    resco = [line for line in report.splitlines() if "RESCO" in line]
    assert len(resco) == 1 and resco[0].startswith("- **delay per vehicle** (s): "), resco
    assert "those that arrived, those still driving at the end and those never inserted" in resco[0]
    assert "RESCO benchmark's definition of delay (docs/benchmarks.md" in resco[0]
    assert "RESCO" not in stdout


def test_an_emergency_delay_over_one_vehicle_a_seed_says_so(corridor):
    out, _stdout = corridor
    summary = json.loads((out / "summary.json").read_text())
    row = summary["metrics"]["emergency_delay_s"]
    counts = [json.loads(p.read_text())["network"]["emergency_vehicles"] for p in out.glob("*/metrics.json")]
    measured = [n for n in counts if n]
    assert measured and max(measured) < MIN_PER_SEED, counts  # the premise: one or two, not ten
    assert row["per_seed_n"] == {"of": "vehicles", "min": min(measured), "max": max(measured), "too_few": True,
                                 "runs": len(measured), "of_runs": len(counts)}
    span = f"{min(measured)}" if min(measured) == max(measured) else f"{min(measured)}–{max(measured)}"
    of = "vehicle" if max(measured) == 1 else "vehicles"
    assert "verdict" not in row["controllers"]["actuated"]
    report = (out / "report.md").read_text()
    # seeds without an emergency vehicle are not said to have had one
    per = "per seed" if len(measured) == len(counts) else \
        f"per run that had any ({len(measured)} of {len(counts)} runs; the others had none)"
    assert f"| emergency vehicle delay (n = {span} {of} {per}: too few to judge) | s | " in report, report


def test_a_figure_over_too_few_reads_too_few_to_judge_where_the_test_gives_no_p(corridor):
    """The engineer's re-trial, finding 1: the emergency vehicles' delay, measured in one seed of two (one vehicle),
    got no p and no word: the change table read "+21.1 % (p n/a)", summary.csv's verdict_note was empty."""
    import csv

    out, _stdout = corridor
    summary = json.loads((out / "summary.json").read_text())
    e = summary["metrics"]["emergency_delay_s"]["controllers"]["actuated"]
    assert summary["metrics"]["emergency_delay_s"]["per_seed_n"]["too_few"], summary["metrics"]["emergency_delay_s"]
    assert e.get("change_pct") is not None and e["p_paired"] is None, e  # the premise: a change, and no test
    assert "verdict" not in e and e["no_verdict"] == "too few to judge", e
    line = next(ln for ln in (out / "report.md").read_text().splitlines()
                if ln.startswith(f"| emergency vehicle delay | {e['change_pct']:+.1f} % (p n/a"))
    assert line.endswith(": **too few to judge** |"), line
    with (out / "summary.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["metric"] == "emergency_delay_s" and r["controller"] == "actuated")
    assert row["verdict"] == "" and row["verdict_note"] == "too few to judge", row


def test_a_figure_over_a_few_pedestrians_a_seed_gets_no_verdict_and_is_not_called_pedestrian_delay(single):
    out, stdout = single
    summary = json.loads((out / "summary.json").read_text())
    row = summary["metrics"]["ped_delay_s"]
    assert row["label"] == "pedestrians: time lost per walk (SUMO)"
    counts = [json.loads(p.read_text())["network"]["pedestrians"] for p in out.glob("*/metrics.json")]
    assert 0 < min(counts) < MIN_PER_SEED, counts  # the premise: a few pedestrians a seed
    e = row["controllers"]["max-pressure"]
    assert e["p_paired"] is not None  # a test ran: it is the sample, not the test, that leaves no verdict
    assert "verdict" not in e and e["no_verdict"] == "too few to judge"
    text = _metric_rows(stdout, summary)["pedestrians: time lost per walk (SUMO)"]
    span = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
    assert f"n = {span} pedestrians per seed" in text and "too few to judge" in text, text
    assert "better" not in text and "worse" not in text, text
    report = (out / "report.md").read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| pedestrians: time lost per walk (SUMO) | "
                                                                  f"{e['change_pct']:+.1f} %"))
    assert line.endswith(": **too few to judge** |"), line
    assert "Not ATSPM's pedestrian delay, the wait at one crossing from the push button to the walk" in report
    assert "pedestrian delay |" not in report


def test_the_run_summary_calls_the_walks_time_lost_not_delay(single, capsys):
    out, _stdout = single
    metrics = json.loads((out / "fixed-s1" / "metrics.json").read_text())
    print_run_summary(metrics, out / "fixed-s1")
    rows = table_rows(capsys.readouterr().out)
    label = next(k for k in rows if k.startswith("pedestrians: time lost"))
    assert rows[label][0].startswith(f"{metrics['network']['pedestrians']}: "), rows
    assert "pedestrians: delay" not in rows


def test_every_verdict_of_a_real_compare_needs_p_below_0_05_and_a_change_of_1_percent(single, corridor):
    for out, stdout in (single, corridor):
        summary = json.loads((out / "summary.json").read_text())
        report = (out / "report.md").read_text()
        rows = _metric_rows(stdout, summary)
        for row in summary["metrics"].values():
            e = row["controllers"][summary["controllers"][1]]
            if e.get("change_pct") is None:
                continue
            said = e.get("verdict") or e.get("no_verdict")
            if e.get("verdict"):
                assert e["p_paired"] < 0.05 and abs(e["change_pct"]) >= MIN_CHANGE_PCT, e
            elif row["lower_is_better"] is None:  # a count of the demand or the travel: no direction, no word
                assert said is None, e
            elif e.get("p_paired") is not None:  # a test ran: it says why there is no verdict
                assert e["no_verdict"] in ("no clear change", "too few to judge",
                                           "no change in percent: a baseline of 0"), e
            elif row.get("per_seed_n", {}).get("too_few"):
                assert said == "too few to judge", e  # "p n/a" over too few: the sample leaves no verdict
            else:
                assert said is None, e  # "p n/a": no test, no word
            assert (said or (p_text(e.get("p_paired")) if row["lower_is_better"] is None else "p n/a")) \
                in rows[row["label"]], (row["label"], rows[row["label"]])
            line = next(ln for ln in report.splitlines() if ln.startswith(f"| {row['label']} | {change_text(e)} ("))
            assert line.endswith(f": **{said}** |" if said else ") |"), line


def _metrics(**network: float) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    values.update(fallback_fraction=0.0, **network)
    return {"network": values, "safety": {"violations": 0}}


def test_a_significant_change_under_1_percent_reads_no_clear_change(capsys):
    """The trial's throughput: +0.4 % on every seed (p ~ 0.01) is no change anyone would act on; +5 % is."""
    runs = {}
    for s, base in enumerate((4000.0, 4200.0, 4380.0), start=1):
        runs[("fixed", s)] = _metrics(throughput_veh=base)
        runs[("actuated", s)] = _metrics(throughput_veh=base * 1.004 + s)
        runs[("webster", s)] = _metrics(throughput_veh=base * 1.05 + s)
    summary = summarize(["fixed", "actuated", "webster"], [1, 2, 3], runs)
    small = summary["metrics"]["throughput_veh"]["controllers"]["actuated"]
    assert small["p_paired"] < 0.05 and 0 < small["change_pct"] < MIN_CHANGE_PCT, small  # significant, and small
    assert "verdict" not in small and small["no_verdict"] == "no clear change"
    large = summary["metrics"]["throughput_veh"]["controllers"]["webster"]
    assert large["p_paired"] < 0.05 and large["verdict"] == "better", large

    report = report_markdown(summary, None)
    assert f"| throughput | {change_text(small)} ({p_text(small['p_paired'])}): **no clear change** | " \
           f"{change_text(large)} ({p_text(large['p_paired'])}): **better** |" in report, report
    print_compare_table(summary, width=100)
    cells = table_rows(capsys.readouterr().out)["throughput (veh)"]
    # the change with its 95 % CI in brackets, then the paired p
    assert re.search(r"no clear change \+0\.4% \[\+[\d.]+, \+[\d.]+\] p 0\.0", cells[1]) and \
        re.search(r"better \+5\.0% \[\+[\d.]+, \+[\d.]+\] p ", cells[2]), cells
