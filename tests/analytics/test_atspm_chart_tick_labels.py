"""Every time-axis label of the ATSPM charts is drawn whole inside the PNG, and no two overlap.

A log that crosses midnight labels its ticks with the date ("06-05 00:15"), wider than a time of day: centred on
the last tick of a panel at the figure's right edge, it was cut off ("06-05 00:1"), and the last label of the left
panel ran into the first of the right one. The plotter records the box each label's text takes as Pillow lays it
out (`ImageDraw.textbbox`, the renderer that draws the PNG), which is what is checked here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from support import atspm_synthetic as synthetic

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame, raster
from signalwise.analytics.atspm.charts import write_charts


def drawn_plots(monkeypatch) -> dict[str, raster.Plot]:
    """Every plot the chart code saves, by file name."""
    plots = {}
    original = raster.Plot.save

    def save(plot, path):
        out = original(plot, path)
        plots[Path(path).name] = plot
        return out

    monkeypatch.setattr(raster.Plot, "save", save)
    return plots


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_time_labels_of_a_log_across_midnight_lie_inside_the_figure(monkeypatch, tmp_path):
    frame, config = synthetic.synthetic_events(n_devices=1, hours=0.5, seed=3)
    # 06:00-06:30 moved to 23:50-00:20: the axis runs with the log, 23:50 to 00:20, and its labels name the day
    frame["TimeStamp"] = frame["TimeStamp"] + pd.Timedelta(hours=17, minutes=50)
    res = compute_all(events_from_frame(frame), detectors_from_frame(config))
    plots = drawn_plots(monkeypatch)
    write_charts(res, tmp_path)
    assert {"pcd_1000.png", "split_monitor_1000.png", "split_failures_1000.png"} <= set(plots)
    for name, plot in plots.items():
        boxes = [(label, box) for ax in plot.axes for label, box in ax.record["xtick_boxes"]]
        assert boxes, name
        if name.startswith(("pcd", "split_monitor")):
            assert boxes[-1][0] == "01-07 00:20", (name, boxes[-1])  # at the right edge: the one that was cut off
        for label, (left, top, right, bottom) in boxes:
            assert 0 <= left and right <= plot.width and 0 <= top and bottom <= plot.height, (name, label)
        for i, (label, box) in enumerate(boxes):
            clash = [other for other, b in boxes[i + 1:] if overlap(box, b)]
            assert not clash, (name, label, clash)
