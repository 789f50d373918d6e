"""The last bins of a log: none starts where the log ends, and the one it ends inside is incomplete.

A 30-minute run logs events at its last instant (a begin red clearance, a detector turning on, at 00:30:00.0):
binned, they would make a 00:30-00:45 bin of one instant, marked complete and drawn by the charts. A log that
stops at 06:20 measured five of the 06:15 bin's fifteen minutes.
"""

import pandas as pd
from support import atspm_synthetic as synthetic

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame
from signalwise.analytics.atspm.charts import chart_data
from signalwise.analytics.atspm.compute import BINNED

START = pd.Timestamp("2025-01-06 06:00:00")


def _results(frame):
    _, config = synthetic.synthetic_events(n_devices=1, hours=1, seed=5)
    return compute_all(events_from_frame(frame), detectors_from_frame(synthetic.with_yellow_red(config)))


def _log(until: pd.Timestamp, last_instant: bool):
    frame, _ = synthetic.synthetic_events(n_devices=1, hours=1, seed=5)
    frame = frame[frame["TimeStamp"] < until]
    if last_instant:  # what a run logs at its end: phase 2 begins its red clearance, a stop-bar detector turns on
        end = pd.DataFrame({"TimeStamp": [until] * 3, "DeviceId": ["1000"] * 3, "EventId": [9, 10, 82],
                            "Parameter": [2, 2, 1]})
        frame = pd.concat([frame, end], ignore_index=True)
    return frame


def test_no_bin_starts_at_the_logs_last_instant():
    end = START + pd.Timedelta(minutes=30)
    res = _results(_log(end, last_instant=True))
    binned = {name: df for name, df in res.tables.items() if name in BINNED and len(df)}
    assert {"actuations", "split_failures", "red_light_running", "split_monitor_binned"} <= set(binned)
    for name, df in binned.items():
        stamps = pd.to_datetime(df["TimeStamp"])
        assert stamps.max() == START + pd.Timedelta(minutes=15), name
        assert df["Complete"].all(), name  # the log reaches the end of its last bin
    axis = chart_data(res, ["1000"])[1]
    assert axis["end"] == 6 * 60 + 30  # the charts' time axis ends with the log, in minutes of the day


def test_the_bin_the_log_ends_inside_is_incomplete():
    res = _results(_log(START + pd.Timedelta(minutes=20), last_instant=False))
    for name in ("actuations", "split_failures", "red_light_running", "arrival_on_green", "split_monitor_binned"):
        df = res.tables[name]
        stamps = pd.to_datetime(df["TimeStamp"])
        assert set(stamps) == {START, START + pd.Timedelta(minutes=15)}, name
        assert df.loc[stamps == START, "Complete"].all(), name
        assert not df.loc[stamps > START, "Complete"].any(), name
