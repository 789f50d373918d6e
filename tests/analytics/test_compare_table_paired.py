"""The compare table's p is the paired test's: the seeds of a comparison share their demand."""

from __future__ import annotations

from support.tables import table_rows

from signalwise.runtime.commands import print_compare_table
from signalwise.runtime.compare import METRICS, summarize


def _metrics(**network: float) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    values.update(fallback_fraction=0.0, **network)
    return {"network": values, "safety": {"violations": 0}}


def _runs(controllers, delays):
    """Seeds differ a lot (demand), the controllers' difference within a seed little: paired p << Welch p."""
    return {(c, s): _metrics(avg_delay_s=base + shift * (1 + 0.1 * s)) for c, shift in zip(controllers, delays,
                                                                                          strict=True)
            for s, base in ((1, 30.0), (2, 45.0), (3, 60.0))}


def test_the_table_shows_the_paired_p_and_says_so(capsys):
    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs(["fixed", "actuated"], [0.0, -3.0]))
    e = summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]
    assert e["p_paired"] < 0.01 < 0.5 < e["p_welch"]  # the two tests tell different stories here
    print_compare_table(summary, width=100)
    out = capsys.readouterr().out
    assert "paired t-test p" in " ".join(out.split())
    cell = table_rows(out)["delay per vehicle (s)"][1]
    assert cell.endswith(f"p {e['p_paired']:.3f}"), cell
    assert f"p {e['p_welch']:.3f}" not in out


def test_five_controllers_with_paired_p_fit_100_columns(capsys):
    controllers = ["fixed", "webster", "actuated", "max-pressure", "ql:some-model"]
    summary = summarize(controllers, [1, 2, 3], _runs(controllers, [0.0, -1.0, -3.0, -4.0, 2.0]))
    print_compare_table(summary, width=100)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(i for i, line in enumerate(lines) if "metric" in line)
    assert "delay per vehicle" in lines[header + 2]


def test_summary_csv_names_each_p_after_its_test(tmp_path):
    """summary.csv's `p_value` was Welch's while the table showed the paired p (in `p_value_paired`): a reader
    taking `p_value` read 0.040 where the table said nothing was significant (paired 0.117)."""
    import csv

    from signalwise.runtime.compare import write_summary_csv

    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs(["fixed", "actuated"], [0.0, -3.0]))
    write_summary_csv(tmp_path / "summary.csv", summary)
    with open(tmp_path / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"p_paired", "p_welch"} <= set(rows[0]) and not [k for k in rows[0] if k.startswith("p_value")]
    # each p in the column its older name held (Welch's `p_value` 8th, `p_value_paired` 9th): a reader by position
    # must not get one for the other
    assert list(rows[0])[:11] == ["metric", "controller", "n", "mean", "ci_low", "ci_high", "change_pct",
                                  "p_welch", "p_paired", "unit", "verdict"]
    row = next(r for r in rows if (r["metric"], r["controller"]) == ("avg_delay_s", "actuated"))
    e = summary["metrics"]["avg_delay_s"]["controllers"]["actuated"]
    assert (float(row["p_paired"]), float(row["p_welch"])) == (e["p_paired"], e["p_welch"])
    assert row["verdict"] == "better" and e["p_paired"] < 0.05 < e["p_welch"]  # the verdict is the paired test's


def test_evaluate_help_names_the_test_its_table_gives():
    import subprocess
    import sys
    from pathlib import Path

    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "evaluate", "--help"],
                       capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    text = " ".join(p.stdout.split())
    assert p.returncode == 0 and "paired t-test p over the same seeds" in text, text
    assert "Welch p-values" not in text
