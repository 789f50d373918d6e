"""A short run's charts and tables, as an engineer reads them: a plain time-axis label, axes that span the run,
incomplete bins marked, arrivals on green as one percent, and a pedestrian delay chart named for what it measures.

On a 20-minute `single` run (actuated, with its pedestrians), read the way `signalwise atspm RUN_DIR` reads it
(`_compute_write_draw`, in this process so that the drawn plots can be read), and once through the command.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.atspm_drawn import drawn_plots

from signalwise.analytics.atspm import raster
from signalwise.analytics.atspm.charts import PARTIAL_BIN_LABEL, RECALL_NOTE, RUN_FORCE_OFF_NOTE, RUN_PED_NOTE

SIGNALWISE = [sys.executable, "-m", "signalwise.cli"]
RUN_MIN = 20
RUN_AXIS_LABEL = "time of day (simulated; the log is dated 2025-01-06)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run20")
    r = subprocess.run(SIGNALWISE + ["run", "--scenario", "single", "--controller", "actuated",
                                     "--duration", str(RUN_MIN * 60), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if (p / "events.csv").exists()]
    return run


@pytest.fixture(scope="module")
def drawn(run_dir, tmp_path_factory) -> tuple[dict[str, raster.Plot], Path]:
    """({file name: the plot as saved}, the output directory) of the command's job on the run directory."""
    out = tmp_path_factory.mktemp("atspm20")
    plots = drawn_plots(run_dir, out)
    return plots, out


def test_every_time_axis_of_a_run_says_simulated_time_of_day_in_plain_words(drawn):
    plots, _ = drawn
    assert {"pcd_C.png", "split_monitor_C.png", "aog_by_hour_C.png", "split_failures_C.png",
            "ped_delay_C.png"} <= set(plots)
    for name, plot in plots.items():
        labels = {ax.record["xlabel"] for ax in plot.axes if ax.record["xlabel"]}
        assert labels == {RUN_AXIS_LABEL}, name


def test_every_chart_of_a_20_minute_run_spans_the_run_not_an_hour(drawn):
    plots, _ = drawn
    for name, plot in plots.items():
        for ax in plot.axes:
            assert ax.xlim == (0, RUN_MIN), (name, ax.xlim)
    (ax,) = plots["aog_by_hour_C.png"].axes
    bars = ax.record["bars"]
    assert len(bars) == 4  # one per phase with arrivals, in the one (partial) hour
    for _label, left, width, _height, partial in bars:
        assert 0 <= left and left + width <= RUN_MIN and partial
    assert "lighter: partial hour (00:00-00:20)" in ax.record["legend"]


def test_the_bin_the_run_ends_inside_is_hatched_and_drawn_only_as_far_as_the_run(drawn):
    plots, out = drawn
    table = pd.read_csv(out / "split_failures.csv", parse_dates=["TimeStamp"])
    incomplete = sorted({(t.hour * 60 + t.minute) for t in table.loc[~table["Complete"], "TimeStamp"]})
    assert incomplete == [15]  # the 00:15 bin: the run ends at 00:20
    for ax in plots["split_failures_C.png"].axes:
        assert ax.record["shaded"] == [(PARTIAL_BIN_LABEL, 15.0, float(RUN_MIN))]
    assert PARTIAL_BIN_LABEL in plots["split_failures_C.png"].axes[0].record["legend"]
    ped = pd.read_csv(out / "ped_delay.csv", parse_dates=["TimeStamp"])
    late = ped["TimeStamp"] == pd.Timestamp("2025-01-06 00:15")
    assert late.any() and not ped.loc[late, "Complete"].any()
    for ax in plots["ped_delay_C.png"].axes:  # the partial bin's bar is lighter, and no wider than the run
        partial = [(left, width) for _l, left, width, _h, part in ax.record["bars"] if part]
        assert partial and all(15 <= left and left + width <= RUN_MIN for left, width in partial)


def test_arrivals_on_green_are_one_percent_in_every_table(run_dir, tmp_path):
    """A 60-minute bin holds the whole run, as its one plan span does: the same arrivals, the same number."""
    out = tmp_path / "atspm"
    r = subprocess.run(SIGNALWISE + ["atspm", str(run_dir), "--bin", "60", "--out", str(out), "--no-charts"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(out / "arrival_on_green.csv") as f:
        aog = {row["Phase"]: row for row in csv.DictReader(f)}
    with open(out / "plans.csv") as f:
        plans = {row["Phase"]: row for row in csv.DictReader(f)}
    with open(out / "platoon_ratio.csv") as f:
        platoon = {row["Phase"]: row for row in csv.DictReader(f)}
    assert set(aog) == set(plans) and len(aog) == 4
    for phase, row in aog.items():
        green, total = int(row["Green_Actuations"]), int(row["Total_Actuations"])
        assert (green, total) == (int(plans[phase]["Green_Arrivals"]), int(plans[phase]["Arrivals"]))
        assert row["Percent_AOG"] == plans[phase]["Percent_AOG"] == platoon[phase]["Percent_AOG"]  # as written
        assert float(row["Percent_AOG"]) == pytest.approx(100 * green / total, rel=1e-15)
        share = float(platoon[phase]["Percent_AOG"]) / 100
        assert float(platoon[phase]["Platoon_Ratio"]) == pytest.approx(share / float(platoon[phase]["Green_Ratio"]))
    assert max(float(row["Percent_AOG"]) for row in aog.values()) > 1  # a percent, not a fraction


def test_a_runs_pedestrian_delay_chart_says_what_it_measures(drawn):
    plots, out = drawn
    plot = plots["ped_delay_C.png"]
    ped = pd.read_csv(out / "ped_delay.csv")
    assert set(ped["Method"]) == {"recall"}  # a run serves its crosswalks on recall
    assert plot.record["suptitle"].startswith("Pedestrian delay (push-button or arrival to the walk)")
    assert plot.record["notes"] == [RUN_PED_NOTE, RECALL_NOTE]
    assert [ax.record["title"].split(":")[0] for ax in plot.axes] == [
        f"phase {p} ({m})" for p, m in ((1, "NB/SB through"), (3, "EB/WB through"))]
    for ax, (phase, rows) in zip(plot.axes, ped.groupby("Phase"), strict=True):
        heights = [h for _l, _x, _w, h, _p in ax.record["bars"]]
        assert heights == pytest.approx(rows["Mean_PedDelay_s"].tolist()), phase
        assert f"{int(rows['Count'].sum())} walks on recall" in ax.record["title"]  # a recall row is a walk
    assert "force-off" in RUN_FORCE_OFF_NOTE and plots["split_monitor_C.png"].record["notes"] == [RUN_FORCE_OFF_NOTE]
