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
    assert e["p_value_paired"] < 0.01 < 0.5 < e["p_value"]  # the two tests tell different stories here
    print_compare_table(summary, width=100)
    out = capsys.readouterr().out
    assert "paired t-test p" in " ".join(out.split())
    cell = table_rows(out)["avg delay (RESCO) (s)"][1]
    assert cell.endswith(f"p {e['p_value_paired']:.3f}"), cell
    assert f"p {e['p_value']:.3f}" not in out


def test_five_controllers_with_paired_p_fit_100_columns(capsys):
    controllers = ["fixed", "webster", "actuated", "max-pressure", "ql:some-model"]
    summary = summarize(controllers, [1, 2, 3], _runs(controllers, [0.0, -1.0, -3.0, -4.0, 2.0]))
    print_compare_table(summary, width=100)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(i for i, line in enumerate(lines) if "metric" in line)
    assert "avg delay (RESCO)" in lines[header + 2]
