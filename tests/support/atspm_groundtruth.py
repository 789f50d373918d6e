"""What SUMO says about the vehicles themselves, to check the event-log measures against.

Inputs are a `signalwise run` directory's `detector_passages.csv` (every
vehicle over every detector, from SUMO's instantaneous induction loops, with
its own speed), `signal_states.csv` (the SUMO state string of each traffic
light at every change) and `signal_model.json` (which links leave which lane).
None of these pass through the hi-res event log.

- Arrival on green (truth): a vehicle passing an advance detector arrives at
  the stop line `distance / its own speed` later; it arrived on green if its
  lane's link shows G/g in SUMO's state string at that moment.
- Red-light running (truth): a vehicle reaching the stop-bar loop while its
  link shows red, and leaving the loop before the link turns green (it did
  not wait for green); severe when more than 4 s after the red began.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from signalwise.analytics.atspm.inputs import US_PER_S

DEFAULT_START_US = int(np.datetime64("2025-01-06T00:00:00", "us").astype(np.int64))


def _load(run: Path):
    import pandas as pd

    passages = pd.read_csv(run / "detector_passages.csv", dtype={"device_id": str, "detector_id": str})
    states = pd.read_csv(run / "signal_states.csv", dtype={"device_id": str})
    model = json.loads((run / "signal_model.json").read_text())
    detectors = pd.read_csv(run / "detectors.csv", dtype={"DeviceId": str})
    return passages, states, model, detectors


def _lane_link(model) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for dev in model:
        for link in dev["links"]:
            if not link.get("crosswalk"):
                out.setdefault((str(dev["id"]), link["in_lane"]), int(link["index"]))
    return out


class _States:
    """SUMO state of one link at any time, with the time that state began and ends."""

    def __init__(self, states):
        self.by_dev = {}
        for dev, g in states.groupby("device_id"):
            g = g.sort_values("time_s")
            self.by_dev[dev] = (g["time_s"].to_numpy(float), np.array([list(s) for s in g["state"]]))

    def at(self, dev: str, link: int, t: np.ndarray) -> np.ndarray:
        times, chars = self.by_dev[dev]
        i = np.searchsorted(times, t, side="right") - 1
        return np.where(i >= 0, chars[np.maximum(i, 0), link], "?")

    def red_since(self, dev: str, link: int, t: np.ndarray) -> np.ndarray:
        """Start of the red interval containing t (seconds)."""
        times, chars = self.by_dev[dev]
        col = chars[:, link]
        red = col == "r"
        begin = np.where(red & ~np.r_[False, red[:-1]], times, -np.inf)
        begin = np.maximum.accumulate(begin)
        i = np.searchsorted(times, t, side="right") - 1
        return begin[np.maximum(i, 0)]

    def next_green(self, dev: str, link: int, t: np.ndarray) -> np.ndarray:
        times, chars = self.by_dev[dev]
        green = np.isin(chars[:, link], ["G", "g"])
        nxt = np.where(green, times, np.inf)
        nxt = np.minimum.accumulate(nxt[::-1])[::-1]
        i = np.searchsorted(times, t, side="right")
        return np.where(i < len(times), nxt[np.minimum(i, len(times) - 1)], np.inf)


def _bins(t_s: np.ndarray, bin_min: int):
    import pandas as pd

    us = DEFAULT_START_US + np.round(t_s * US_PER_S).astype(np.int64)
    return pd.to_datetime(us, unit="us").floor(f"{bin_min}min")


def arrivals_on_green_truth(run: Path, bin_min: int = 15, cycles_us: dict | None = None):
    """Per bin, device and phase: vehicles arriving at the stop line, and the share on green.

    `cycles_us` {(device, phase): (from, to)} keeps only the arrivals in [from, to) (µs of the log's clock),
    as the measure counts only those in the phase's complete cycles."""
    import pandas as pd

    passages, states, model, detectors = _load(Path(run))
    adv = detectors[detectors["Function"] == "Advance"]
    p = passages.merge(adv[["DeviceId", "Parameter", "Phase", "DistanceToStopbar_m"]],
                       left_on=["device_id", "channel"], right_on=["DeviceId", "Parameter"])
    lane_link = _lane_link(model)
    st = _States(states)
    out = []
    for (dev, lane), g in p.groupby(["device_id", "lane"]):
        link = lane_link[(dev, lane)]
        speed = np.maximum(g["speed_mps"].to_numpy(float), 0.5)
        arrive = g["enter_s"].to_numpy(float) + g["DistanceToStopbar_m"].to_numpy(float) / speed
        on_green = np.isin(st.at(dev, link, arrive), ["G", "g"])
        phase = g["Phase"].to_numpy()
        if cycles_us is not None:
            at_us = DEFAULT_START_US + np.round(arrive * US_PER_S).astype(np.int64)
            lo = np.array([cycles_us.get((dev, ph), (0, 0))[0] for ph in phase], np.int64)
            hi = np.array([cycles_us.get((dev, ph), (0, 0))[1] for ph in phase], np.int64)
            keep = (at_us >= lo) & (at_us < hi)
            arrive, on_green, phase = arrive[keep], on_green[keep], phase[keep]
        out.append(pd.DataFrame({"TimeStamp": _bins(arrive, bin_min), "DeviceId": dev,
                                 "Phase": phase, "green": on_green.astype(int)}))
    df = pd.concat(out) if out else pd.DataFrame(columns=["TimeStamp", "DeviceId", "Phase", "green"])
    agg = df.groupby(["TimeStamp", "DeviceId", "Phase"]).agg(Arrivals=("green", "size"),
                                                             Green_Arrivals=("green", "sum")).reset_index()
    agg["Percent_AOG"] = 100 * agg["Green_Arrivals"] / agg["Arrivals"]  # a percent, as the measure's
    return agg


def red_light_running_truth(run: Path, bin_min: int = 15, severe_s: float = 4.0):
    """Per bin, device and phase: vehicles that crossed the stop-bar loop on red without waiting for green."""
    import pandas as pd

    passages, states, model, detectors = _load(Path(run))
    pres = detectors[detectors["Function"] == "Presence"]
    p = passages.merge(pres[["DeviceId", "Parameter", "Phase"]], left_on=["device_id", "channel"],
                       right_on=["DeviceId", "Parameter"])
    lane_link = _lane_link(model)
    st = _States(states)
    out = []
    for (dev, lane), g in p.groupby(["device_id", "lane"]):
        link = lane_link[(dev, lane)]
        enter = g["enter_s"].to_numpy(float)
        leave = g["leave_s"].to_numpy(float)
        state = st.at(dev, link, enter)
        red = state == "r"
        ran = red & (leave < st.next_green(dev, link, enter))
        into_red = enter - st.red_since(dev, link, enter)
        out.append(pd.DataFrame({"TimeStamp": _bins(enter, bin_min), "DeviceId": dev, "Phase": g["Phase"].to_numpy(),
                                 "yellow": (state == "y").astype(int), "ran": ran.astype(int),
                                 "severe": (ran & (into_red > severe_s)).astype(int)}))
    df = pd.concat(out) if out else pd.DataFrame(columns=["TimeStamp", "DeviceId", "Phase", "yellow", "ran", "severe"])
    return df.groupby(["TimeStamp", "DeviceId", "Phase"]).agg(
        Yellow_Entries=("yellow", "sum"), Red_Running=("ran", "sum"), Severe_Red_Running=("severe", "sum"),
        Vehicles=("ran", "size")).reset_index()
