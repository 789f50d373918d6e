"""The charts `signalwise atspm` draws for a run, as plot objects: each test reads what a chart says (titles,
legends, axes, bars) rather than pixels."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalwise.analytics.atspm import raster
from signalwise.analytics.atspm.commands import _compute_write_draw
from signalwise.analytics.atspm.worker import Job


def drawn_plots(run_dir: Path, out: Path, **job: object) -> dict[str, raster.Plot]:
    """{file name: the plot as saved} of the command's own job over `run_dir` (15-min bins, charts on, the run's
    clock); `job`: further `Job` fields (`nema=`)."""
    plots: dict[str, raster.Plot] = {}
    original = raster.Plot.save

    def save(plot, path):
        saved = original(plot, path)
        plots[Path(path).name] = plot
        return saved

    spec = Job(events=run_dir / "events.csv", detectors=run_dir / "detectors.csv",
               options=dict(bin_min=15, latency_s=0.0, project=True, split_failure_rule="atspm"), out_dir=out,
               fmt="csv", charts=True, run_clock=True, **job)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(raster.Plot, "save", save)
        _compute_write_draw(spec, None)
    return plots
