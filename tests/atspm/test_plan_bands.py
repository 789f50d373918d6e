"""Coordination plans along the charts' time axis, as UDOT ATSPM draws them: each plan span a tinted band with a
divider where the plan changes and a label over it naming the plan and the chart's figure for it.

The logs are a real 10-minute `signalwise run -s single -c coordinated`, which logs plan 1 (its 131, 132 and 133)
at its start, read by the command's own job (`support.atspm_drawn`):

- as run, plus a second plan (131 = 2, cycle 100 s, offset 12 s) at 00:05: two spans;
- without its plan rows and with plan 2 logged at 00:05 and plan 3 at 00:09:15: an unknown span before the
  first 131, then a 45-second span too narrow for its full label;
- without its plan rows: no 131 at all, no band.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.atspm_drawn import drawn_plots

from signalwise.analytics.atspm.charts import PLAN_BAND_COLOURS, PLAN_DIVIDER_LABEL

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
RUN_MIN = 10
CHARTS = ("pcd_C.png", "split_monitor_C.png", "aog_by_hour_C.png", "split_failures_C.png", "ped_delay_C.png")
PLAN_ROWS = ("131", "132", "133")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coordinated")
    r = subprocess.run(SIGNALWISE + ["run", "--scenario", "single", "--controller", "coordinated",
                                     "--duration", str(RUN_MIN * 60), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if (p / "events.csv").exists()]
    return run


def run_lines(run_dir: Path) -> tuple[str, list[str], list[str]]:
    """(header, the run's plan rows 131-133, its other rows) of its events.csv."""
    header, *rows = (run_dir / "events.csv").read_text().splitlines()
    plan = [r for r in rows if r.split(",")[2] in PLAN_ROWS]
    return header, plan, [r for r in rows if r.split(",")[2] not in PLAN_ROWS]


def log_dir(run_dir: Path, to: Path, lines: list[str]) -> Path:
    """A directory read as the run's (its detectors and signal model) with `lines` as its events.csv."""
    to.mkdir()
    for name in ("detectors.csv", "signal_model.json"):
        shutil.copy(run_dir / name, to / name)
    (to / "events.csv").write_text("\n".join(lines) + "\n")
    return to


def drawn(run_dir: Path, tmp: Path, name: str, extra: list[str], keep_plan: bool):
    header, plan, rest = run_lines(run_dir)
    d = log_dir(run_dir, tmp / name, [header, *rest, *(plan if keep_plan else []), *extra])
    out = tmp / f"{name}-atspm"
    return drawn_plots(d, out), pd.read_csv(out / "plans.csv", parse_dates=["Start", "End"])


@pytest.fixture(scope="module")
def two_plans(run_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    return drawn(run_dir, tmp, "two", ["2025-01-06 00:05:00.0,C,131,2", "2025-01-06 00:05:00.0,C,132,100",
                                       "2025-01-06 00:05:00.0,C,133,12"], keep_plan=True)


@pytest.fixture(scope="module")
def unknown_first(run_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unknown")
    return drawn(run_dir, tmp, "unknown", ["2025-01-06 00:05:00.0,C,131,2", "2025-01-06 00:09:15.0,C,131,3"],
                 keep_plan=False)


def minutes(ts) -> float:
    return (ts - pd.Timestamp("2025-01-06")).total_seconds() / 60


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def plan_1(run_dir: Path) -> str:
    """Plan 1's name on a chart, with the cycle and offset the run logged for it (132, 133)."""
    _header, plan, _rest = run_lines(run_dir)
    logged = {r.split(",")[2]: int(r.split(",")[3]) for r in plan}
    return f"Plan 1 (C {logged['132']} s, off {logged['133']} s)"


def test_the_run_logs_one_plan_and_the_log_read_has_two(run_dir, two_plans):
    _header, plan, _rest = run_lines(run_dir)
    assert [r.split(",")[2] for r in plan] == ["131", "132", "133"]  # one pattern, with its cycle and offset
    assert plan[0].split(",")[3] == "1" and int(plan[1].split(",")[3]) > 0  # plan 1, coordinated
    assert all(r.startswith("2025-01-06 00:00:00") for r in plan)  # at the start
    _plots, plans = two_plans
    spans = plans.drop_duplicates("Start")
    assert spans["PlanName"].tolist() == ["Plan 1", "Plan 2"]
    assert [minutes(t) for t in spans["Start"]] == [0, 5] and minutes(spans["End"].iloc[-1]) == RUN_MIN


def test_every_time_based_chart_shows_each_plan_as_a_band_at_its_times(run_dir, two_plans):
    plots, _plans = two_plans
    assert set(CHARTS) <= set(plots)
    bands = [(plan_1(run_dir), 0.0, 5.0, PLAN_BAND_COLOURS[0]),
             ("Plan 2 (C 100 s, off 12 s)", 5.0, float(RUN_MIN), PLAN_BAND_COLOURS[1])]
    for name in CHARTS:
        for ax in plots[name].axes:
            assert ax.record.get("bands", []) == bands, name
            assert ax.record.get("vlines", []) == [(PLAN_DIVIDER_LABEL, 5.0)], name  # where the plan changes, not at 00:00


def test_each_band_is_labelled_with_its_plan_and_the_charts_figure_for_it(run_dir, two_plans):
    plots, plans = two_plans
    spans = sorted(plans["Start"].unique())
    row = {(minutes(s), int(p)): r for s, p, r in zip(plans["Start"], plans["Phase"], plans.to_dict("records"),
                                                      strict=True)}

    def labels(ax):
        return [(text, x0, x1) for text, x0, x1, _box in ax.record.get("span_labels", [])]

    # the PCD: each phase's arrivals on green in the plan, as plans.csv gives them
    pcd = plots["pcd_C.png"]
    for ax in pcd.axes:
        phase = int(ax.record["title"].split()[1])
        texts = labels(ax)
        assert [(x0, x1) for _t, x0, x1 in texts] == [(0.0, 5.0), (5.0, float(RUN_MIN))]
        for (text, x0, _x1), plan in zip(texts, ("Plan 1", "Plan 2"), strict=True):
            r = row[(x0, phase)]
            assert text.startswith(plan)
            assert (f"AoG {r['Percent_AOG']:.0f} %" in text) if r["Arrivals"] else ("no arrivals" in text)
    assert any("Plan 2 (C 100 s, off 12 s): AoG" in t for ax in pcd.axes for t, _a, _b in labels(ax))
    # split failures: the plan's failed cycles of all phases, labelled once, over the upper panel
    upper, lower = plots["split_failures_C.png"].axes
    assert lower.record.get("span_labels", []) == []
    for (text, x0, _x1), start in zip(labels(upper), spans, strict=True):
        of = plans[plans["Start"] == start]
        assert minutes(start) == x0
        assert f"{of['Split_Failures'].sum()} of {of['Cycles'].sum()} cycles" in text
    # the pedestrian delay: the plan's walks (the run serves its crosswalks on recall) and their mean delay
    for ax in plots["ped_delay_C.png"].axes:
        phase = int(ax.record["title"].split()[1])
        for text, x0, _x1 in labels(ax):
            r = row[(x0, phase)]
            n = int(r["Ped_Count"])
            assert (f"{n} walk" in text and f"mean delay {r['Mean_PedDelay_s']:.0f} s" in text) if n \
                else "no pedestrians" in text
    # the split monitor names the plans (plans.csv has no split figure per plan)
    for ax in plots["split_monitor_C.png"].axes:
        assert [t for t, _a, _b in labels(ax)] == [plan_1(run_dir), "Plan 2 (C 100 s, off 12 s)"]
    # arrivals on green by hour: all phases' arrivals on green in the plan
    (ax,) = plots["aog_by_hour_C.png"].axes
    for (text, _x0, _x1), start in zip(labels(ax), spans, strict=True):
        of = plans[plans["Start"] == start]
        assert f"AoG {100 * of['Green_Arrivals'].sum() / of['Arrivals'].sum():.0f} %" in text


def test_plan_labels_sit_over_their_own_span_and_clear_each_other_and_the_titles(two_plans, unknown_first):
    for plots in (two_plans[0], unknown_first[0]):
        for name in CHARTS:
            plot = plots[name]
            assert any(ax.record.get("span_labels") for ax in plot.axes), name
            for ax in plot.axes:
                left, top, right, _bottom = ax.box
                boxes = [box for _t, _a, _b, box in ax.record.get("span_labels", [])]
                for (text, x0, x1, box) in ax.record.get("span_labels", []):
                    (a, b), _ = ax.px([x0, x1], [0, 0])
                    assert a <= box[0] and box[2] <= b, (name, text)  # inside its own span
                    assert box[3] <= top and box[1] >= top - ax.label_row_px, (name, text)  # in the row over it
                    assert left <= box[0] and box[2] <= right
                    if ax.record.get("title_box") is not None:
                        assert not overlap(box, ax.record["title_box"]), (name, text)
                for i, box in enumerate(boxes):
                    assert not any(overlap(box, other) for other in boxes[i + 1:]), name


def test_a_span_before_the_first_plan_change_is_unknown_and_a_narrow_span_gets_a_short_label(unknown_first):
    plots, plans = unknown_first
    assert plans.drop_duplicates("Start")["PlanName"].tolist() == ["unknown", "Plan 2", "Plan 3"]
    for name in CHARTS:
        for ax in plots[name].axes:
            assert [(label, x0, x1) for label, x0, x1, _c in ax.record.get("bands", [])] == [
                ("Unknown", 0.0, 5.0), ("Plan 2", 5.0, 9.25), ("Plan 3", 9.25, float(RUN_MIN))], name
            assert [x for _l, x in ax.record.get("vlines", [])] == [5.0, 9.25]
    (ax,) = plots["aog_by_hour_C.png"].axes  # a wide panel: the 45 s span has room for its name only
    texts = [t for t, _a, _b, _box in ax.record.get("span_labels", [])]
    assert texts[0].startswith("Unknown: AoG") and texts[1].startswith("Plan 2: AoG")
    assert texts[2] in ("Plan 3", "P3")
    for ax in plots["pcd_C.png"].axes:
        assert ax.record.get("span_labels", [])[0][0].startswith("Unknown")


def test_a_log_without_a_plan_change_draws_no_band(run_dir, tmp_path):
    plots, plans = drawn(run_dir, tmp_path, "none", [], keep_plan=False)
    assert plans["PlanName"].unique().tolist() == ["unknown"]
    assert set(CHARTS) <= set(plots)
    for name in CHARTS:
        for ax in plots[name].axes:
            assert (ax.record.get("bands", []), ax.record.get("vlines", []), ax.record.get("span_labels", []), getattr(ax, "label_row_px", 0)) == (
                [], [], [], 0), name
