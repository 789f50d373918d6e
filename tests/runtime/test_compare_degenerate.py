"""A comparison where some metric does not vary across seeds: no p-value and no interval for it, in the table,
summary.json and summary.csv alike, while the metrics that vary keep theirs.

The user's report: `evaluate --seeds 2` printed `throughput (veh) │ 1999.0 ± 0.0 │ 1998.0 ± 0.0 │ -0.1% p 0.000`
and `never inserted 1.00 ± 0.00 → 0.00 ± 0.00 -100.0% p 0.000`; summary.csv had `p_value 0.0`. A t-test on
samples without spread is undefined (`analytics/stats.py`).
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



@pytest.mark.slow
def test_a_compare_writes_no_p_for_a_metric_without_spread_and_keeps_the_others(tmp_path):
    out = tmp_path / "cmp"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    p = subprocess.run([SIGNALWISE, "compare", "--scenario", "single", "--controllers", "fixed,max-pressure",
                        "--seeds", "2", "--duration", "300", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads((out / "summary.json").read_text())
    never = summary["metrics"]["never_inserted"]["controllers"]
    # the premise: in five minutes of `single` every vehicle gets in, on every run
    assert never["fixed"]["values"] == [0, 0] and never["max-pressure"]["values"] == [0, 0], never
    for side in ("fixed", "max-pressure"):
        assert never[side]["ci_low"] is None and never[side]["ci_high"] is None  # was 0.0 and 0.0
    assert never["max-pressure"]["p_welch"] is None and never["max-pressure"]["p_paired"] is None  # was 1.0
    delay = summary["metrics"]["avg_delay_s"]["controllers"]["max-pressure"]
    assert 0 < delay["p_welch"] <= 1 and 0 < delay["p_paired"] <= 1

    with open(out / "summary.csv") as fh:
        csv_rows = {(r["metric"], r["controller"]): r for r in csv.DictReader(fh)}
    row = csv_rows[("never_inserted", "max-pressure")]
    assert (row["ci_low"], row["ci_high"], row["p_paired"], row["p_welch"]) == ("", "", "", "")
    assert float(csv_rows[("avg_delay_s", "max-pressure")]["p_welch"]) == delay["p_welch"]

    rows = table_rows(p.stdout)
    assert rows["never inserted (veh)"] == ["0.00 ± n/a", "0.00 ± n/a"], p.stdout  # was 0.00 ± 0.00
    assert rows["delay per vehicle (s)"][1].endswith(f"p {delay['p_paired']:.3f}"), p.stdout


def _metrics(**network: float) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    values.update(fallback_fraction=0.0, **network)
    return {"network": values, "safety": {"violations": 0}}


def test_the_users_table_says_p_n_a_for_throughput_and_never_inserted_without_spread(capsys):
    """The report's figures: 1999 vs 1998 vehicles and 1 vs 0 never inserted on both seeds; delay varies."""
    runs = {("max-pressure", 1): _metrics(throughput_veh=1999.0, never_inserted=1.0, avg_delay_s=30.0),
            ("max-pressure", 2): _metrics(throughput_veh=1999.0, never_inserted=1.0, avg_delay_s=34.0),
            ("ql", 1): _metrics(throughput_veh=1998.0, never_inserted=0.0, avg_delay_s=27.0),
            ("ql", 2): _metrics(throughput_veh=1998.0, never_inserted=0.0, avg_delay_s=32.5)}
    summary = summarize(["max-pressure", "ql"], [1, 2], runs)
    through = summary["metrics"]["throughput_veh"]["controllers"]["ql"]
    assert through["change_pct"] == round((1998 - 1999) / 1999 * 100, 4)
    assert through["p_welch"] is None and through["p_paired"] is None and through["ci_low"] is None
    assert summary["metrics"]["never_inserted"]["controllers"]["ql"]["p_welch"] is None
    assert summary["metrics"]["avg_delay_s"]["controllers"]["ql"]["p_welch"] is not None

    print_compare_table(summary, width=120)
    rows = table_rows(capsys.readouterr().out)
    assert rows["throughput (veh)"] == ["1999.0 ± n/a", "1998.0 ± n/a -0.1% p n/a"], rows  # was ± 0.0, p 0.000
    assert rows["never inserted (veh)"] == ["1.00 ± n/a", "0.00 ± n/a -100.0% p n/a"], rows
    # the change's 95 % CI in brackets before the paired p; the level's own interval (29.8 ± 34.9 over two seeds)
    # reaches below 0 s and is given cut there, as the interval itself
    assert re.match(r"29\.8 \[0, 64\.7\] no clear change -7\.0% \[-[\d.]+, \+[\d.]+\] p 0\.", rows["delay per vehicle (s)"][1]), rows


def test_in_a_pipe_the_title_names_the_change_interval_and_no_metric_name_folds(capsys, monkeypatch):
    """`compare | tee log`: the title's "[its 95% CI]" is text, not rich markup (it vanished), and a metric name
    longer than the terminal's 22 columns ("fuel per 100 vehicle-km ...") stays on one line, which a grep finds."""
    monkeypatch.delenv("COLUMNS", raising=False)  # capsys's stdout is no terminal: the piped layout
    runs = {(c, s): _metrics(throughput_veh=1000.0 + s, never_inserted=0.0, avg_delay_s=30.0 + s + (c == "ql"))
            for c in ("max-pressure", "ql") for s in (1, 2)}
    summary = summarize(["max-pressure", "ql"], [1, 2], runs)
    print_compare_table(summary)
    out = capsys.readouterr().out
    assert "change vs max-pressure [its 95% CI], paired t-test" in " ".join(out.split())
    labels = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    named = [label for label in labels if label]
    whole = {f"{m['label']} ({m['unit']})" if m["unit"] else m["label"] for m in summary["metrics"].values()}
    assert max(len(n) for n in whole) > 22 and "delay per vehicle (s)" in named
    assert set(named) - {"fallback share", "safety violations"} == whole, named  # each whole, on one line
