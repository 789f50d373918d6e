"""Plausible hi-res event logs made up from a seed: for tests, benchmarks and demos.

Each device runs a dual-ring-like sequence of 8 phases (green, yellow, red
clearance) with gap-out/max-out/force-off terminations, stop-bar presence and
advance detectors with vehicles arriving at random, pedestrian pushes and
walks, and an occasional preemption. Not a traffic model: a generator of the
event patterns the measures have to handle.
"""

from __future__ import annotations

import numpy as np

from signalwise.analytics.atspm.inputs import US_PER_S

START_US = int(np.datetime64("2025-01-06T06:00:00", "us").astype(np.int64))


def synthetic_events(n_devices: int = 2, hours: float = 2.0, seed: int = 0, detectors_per_phase: int = 2,
                     arrivals_per_s: float = 0.12):
    """Return (events DataFrame [TimeStamp, DeviceId, EventId, Parameter], detector config DataFrame)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows_t, rows_d, rows_e, rows_p = [], [], [], []
    cfg = []

    def add(t_s, dev, code, param):
        t_s = np.atleast_1d(np.asarray(t_s, float))
        rows_t.append(np.round(t_s * 10).astype(np.int64) * (US_PER_S // 10) + START_US)
        rows_d.append(np.full(len(t_s), dev, dtype=object))
        rows_e.append(np.full(len(t_s), code, np.int64))
        rows_p.append(np.broadcast_to(np.asarray(param, np.int64), t_s.shape).copy())

    horizon = hours * 3600.0
    for d in range(n_devices):
        dev = f"{1000 + d}"
        yellow, red_clear = 3.5, 1.5
        channels = {}
        ch = 1
        for ph in range(1, 9):
            pres = list(range(ch, ch + detectors_per_phase))
            ch += detectors_per_phase
            adv = ch
            ch += 1
            channels[ph] = (pres, adv)
            for c in pres:
                cfg.append((dev, ph, c, "Presence", np.nan, np.nan))
            cfg.append((dev, ph, adv, "Advance", 60.0, 15.0))
        t = float(rng.uniform(0, 30))
        t_green = {ph: [] for ph in range(1, 9)}
        while t < horizon:
            for pair in ((1, 5), (2, 6), (3, 7), (4, 8)):
                green = float(rng.uniform(7, 40))
                for ph in pair:
                    g = green if ph == pair[0] else max(5.0, green - rng.uniform(0, 5))
                    add(t, dev, 1, ph)
                    term = rng.choice([4, 5, 6], p=[0.6, 0.25, 0.15])
                    add(t + g, dev, int(term), ph)
                    add(t + g, dev, 8, ph)
                    add(t + g + yellow, dev, 9, ph)
                    add(t + g + yellow, dev, 10, ph)
                    add(t + g + yellow + red_clear, dev, 11, ph)
                    t_green[ph].append((t, t + g))
                    if ph in (2, 4, 6, 8) and rng.random() < 0.5:
                        add(t, dev, 21, ph)
                        add(t + 7, dev, 22, ph)
                        add(t + min(g, 7 + 12), dev, 23, ph)
                t += green + yellow + red_clear
            if rng.random() < 0.01:
                add(t, dev, 102, 1)
                add(t + 2, dev, 105, 1)
                add(t + rng.uniform(20, 60), dev, 104, 1)
        for ph, (pres, adv) in channels.items():
            for c in pres + [adv]:
                n = rng.poisson(arrivals_per_s * horizon)
                on = np.sort(rng.uniform(0, horizon, n))
                dur = rng.exponential(1.2, n) + 0.2
                # queued vehicles sit on stop-bar detectors for a long time during red
                if c in pres:
                    dur = np.where(rng.random(n) < 0.3, dur + rng.uniform(5, 40, n), dur)
                off = on + dur
                # keep on/off alternating: an ON after the previous OFF
                keep = np.ones(n, bool)
                if n > 1:
                    last_off = np.maximum.accumulate(off)
                    keep[1:] = on[1:] > last_off[:-1] + 0.1
                add(on[keep], dev, 82, c)
                add(off[keep], dev, 81, c)
            if ph in (2, 4, 6, 8):
                pushes = np.sort(rng.uniform(0, horizon, rng.poisson(horizon / 120)))
                add(pushes, dev, 90, ph)
                add(pushes, dev, 45, ph)
    t_us = np.concatenate(rows_t)
    frame = pd.DataFrame({
        "TimeStamp": pd.to_datetime(t_us, unit="us"),
        "DeviceId": np.concatenate(rows_d),
        "EventId": np.concatenate(rows_e),
        "Parameter": np.concatenate(rows_p),
    })
    frame = frame.sort_values(["TimeStamp", "DeviceId", "EventId", "Parameter"], kind="stable").reset_index(drop=True)
    config = pd.DataFrame(cfg, columns=["DeviceId", "Phase", "Parameter", "Function", "DistanceToStopbar_m",
                                        "ApproachSpeed_mps"])
    return frame, config


def with_yellow_red(config):
    """Copy every Presence row as a Yellow_Red row (stop-bar detectors count yellow/red actuations)."""
    import pandas as pd

    extra = config[config["Function"] == "Presence"].copy()
    extra["Function"] = "Yellow_Red"
    return pd.concat([config, extra], ignore_index=True)
