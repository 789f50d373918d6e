"""`signalwise compare`: a signal whose runs saw too few vehicles gets no verdict, by the rule the network's
figures follow (`analytics.verdict.MIN_PER_SEED`); and simulated seconds read as seconds however late the window."""

from __future__ import annotations

import csv

import pytest

from signalwise.analytics.verdict import MIN_PER_SEED, TOO_FEW
from signalwise.runtime.compare import (
    METRICS,
    conditions_text,
    report_markdown,
    summarize,
    write_intersections_csv,
)
from signalwise.sim.scenario import seconds_text, window_text


def _metrics(delays: dict[str, tuple[float, int]]) -> dict:
    values = {key: 10.0 for key, *_ in METRICS}
    values.update(fallback_fraction=0.0, never_inserted=0)
    return {"network": values, "safety": {"violations": 0},
            "intersections": {tls: {"delay_per_veh_s": d, "throughput_veh": n} for tls, (d, n) in delays.items()}}


def _runs(small: int) -> dict:
    """The same delays at J1 (100 vehicles a run) and J2 (`small` a run): lower under actuated in every seed."""
    fixed, actuated = (30.0, 31.0, 32.0), (20.0, 21.1, 21.9)
    return {**{("fixed", s): _metrics({"J1": (d, 100), "J2": (d, small)}) for s, d in zip((1, 2, 3), fixed, strict=True)},
            **{("actuated", s): _metrics({"J1": (d, 100), "J2": (d, small)}) for s, d in zip((1, 2, 3), actuated, strict=True)}}


def test_a_signal_too_few_vehicles_passed_gets_no_verdict(tmp_path):
    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs(small=2))
    j1 = summary["intersections"]["J1"]["delay_per_veh_s"]
    j2 = summary["intersections"]["J2"]["delay_per_veh_s"]
    # the same delays: the paired test gives the same p at both, well below 0.05
    assert j1["controllers"]["actuated"]["p_paired"] == j2["controllers"]["actuated"]["p_paired"] < 0.01
    assert j1["controllers"]["actuated"]["verdict"] == "better" and not j1.get("per_seed_n", {}).get("too_few")
    assert "verdict" not in j2["controllers"]["actuated"]
    assert j2["controllers"]["actuated"]["no_verdict"] == TOO_FEW
    assert j2["per_seed_n"] == {"of": "vehicles", "min": 2, "max": 2, "too_few": True}
    report = report_markdown(summary, None)
    section = report[report.index("## Delay per intersection"):report.index("## Safety and warnings")]
    j2_line = next(line for line in section.splitlines() if line.startswith("| J2 "))
    assert f"**{TOO_FEW}**" in j2_line and "n = 2 vehicles per seed" in j2_line and "better" not in j2_line
    write_intersections_csv(tmp_path / "intersections.csv", summary)
    with open(tmp_path / "intersections.csv") as fh:
        rows = {(r["intersection"], r["controller"]): r for r in csv.DictReader(fh) if r["metric"] == "delay_per_veh_s"}
    assert (rows[("J2", "actuated")]["verdict"], rows[("J2", "actuated")]["verdict_note"]) == ("", TOO_FEW)
    assert rows[("J1", "actuated")]["verdict"] == "better"


def test_a_signal_with_enough_vehicles_each_seed_is_judged():
    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs(small=MIN_PER_SEED))
    assert summary["intersections"]["J2"]["delay_per_veh_s"]["controllers"]["actuated"]["verdict"] == "better"


@pytest.mark.parametrize(("seconds", "text"), [(111930.5, "111930.5 s"), (1036800, "1036800 s"),
                                               (25200.0, "25200 s"), (120.04, "120 s"), (86400.06, "86400.1 s")])
def test_seconds_print_whole_or_to_a_tenth_never_as_an_exponent(seconds, text):
    assert seconds_text(seconds, None) == text


def test_a_window_on_a_later_day_reads_in_seconds():
    assert window_text(111930.5, 112530.5).startswith("111930.5–112530.5 s (1:07:05:30.5–")
    assert window_text(1036800, 1040400) == "1036800–1040400 s (12:00:00:00–12:01:00:00)"
    cond = {"begin_s": 1036800.0, "end_s": 1040400.0, "warmup_s": 1200.0, "demand_scale": 1.0,
            "timing_profile": "benchmark", "scenario": "single"}
    assert conditions_text(cond, short=True).startswith("1036800–1040400 s (12:00:00:00–12:01:00:00) simulated, "
                                                        "after a 1200 s warm-up")
    summary = summarize(["fixed", "actuated"], [1, 2, 3], _runs(small=100))
    summary["conditions"] = cond
    report = report_markdown(summary, None)
    assert "| simulated window | 1036800–1040400 s (60 min, 12:00:00:00–12:01:00:00) |" in report
    assert "e+06" not in report
