"""`signalwise atspm` splits its work with a second process: the same tables and charts as one process
makes, and when that process dies the command still writes everything."""

import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest

from signalwise.analytics.atspm.charts import CHART_KINDS
from signalwise.analytics.atspm.commands import _compute_write_draw
from signalwise.analytics.atspm.compute import MEASURES, compute_all, write_tables
from signalwise.analytics.atspm.inputs import read_detectors, read_event_log, with_stopbar_yellow_red
from signalwise.analytics.atspm.worker import Job, MeasureWorker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # support.*
from support import atspm_synthetic as synthetic  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker forks (Linux only)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("log")
    frame, config = synthetic.synthetic_events(n_devices=4, hours=1, seed=42)
    # a green begun as the log ends: a split-failure cycle left out as incomplete, a warning from the worker
    pres = config[config["Function"] == "Presence"].iloc[0]
    frame = pd.concat([frame, pd.DataFrame({"TimeStamp": [frame["TimeStamp"].max()], "DeviceId": [pres["DeviceId"]],
                                            "EventId": [1], "Parameter": [pres["Phase"]]})], ignore_index=True)
    frame.to_parquet(tmp / "events.parquet", index=False)
    synthetic.with_yellow_red(config).to_csv(tmp / "detectors.csv", index=False)
    return tmp / "events.parquet", tmp / "detectors.csv"


def job(files, out: Path) -> Job:
    events, detectors = files
    return Job(events=events, detectors=detectors, options=dict(bin_min=15, latency_s=0.0, project=True),
               out_dir=out, fmt="csv", charts=True, chart_devices=None)


def test_two_processes_write_what_one_computation_writes(files, tmp_path):
    """Split or not, the tables are byte for byte those of every measure computed at once, with the
    same warnings, and the charts are drawn."""
    worker = MeasureWorker.start()
    try:
        n_events, n_devices, rows, paths, charts, warnings = _compute_write_draw(job(files, tmp_path / "two"), worker)
    finally:
        worker.close()
    events, detectors = files
    log = read_event_log(events)
    whole = compute_all(log, with_stopbar_yellow_red(read_detectors(detectors)), bin_min=15)
    expected = write_tables(whole, tmp_path / "whole")
    assert (n_events, n_devices) == (len(log), len(log.devices))
    assert rows == {name: len(df) for name, df in whole.tables.items()}
    assert list(rows) == list(MEASURES)  # every table, in the documented order
    assert [p.name for p in paths] == [p.name for p in expected]
    for a, b in zip(paths, expected, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert set(whole.warnings) <= set(warnings) and len(warnings) == len(set(warnings))
    assert any(w.startswith("split failures:") for w in warnings)  # a warning from the worker's measures
    assert len(charts) == len(CHART_KINDS) * 4 and all(p.stat().st_size > 1000 for p in charts)  # x 4 devices


def test_a_killed_worker_leaves_the_work_to_the_command(files, tmp_path):
    worker = MeasureWorker.start()
    try:
        os.kill(worker.pid, signal.SIGKILL)
        n_events, _, rows, paths, charts, warnings = _compute_write_draw(job(files, tmp_path / "out"), worker)
    finally:
        worker.close()
    assert set(rows) == set(MEASURES) and len(paths) == len(MEASURES) and charts
    assert all(p.exists() for p in paths + charts)
    assert any("chart process failed" in w for w in warnings)
