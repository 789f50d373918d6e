"""Data gaps in a device's log: which cycles and bins they cut, and what was left out because of them.

A device silent for longer than `inputs.DATA_GAP_S` (the input report's data gaps, the spring-forward
hour included) did not log what its phases showed or what its detectors saw in that time; nor does a
controller's log say it through a power failure, flash or restart (`interruptions`), handled alike. A
cycle, split, clearance or wait that runs across such a silence is not measured: read as one interval, a
20-minute outage is a 1202 s red clearance, a spring-forward hour a 3700 s cycle. The cycle-based
measures leave such intervals out (`across_gap`) and say how many (`note_left_out`, `left_out_warnings`);
binned tables mark the bins a gap touches (`with_complete`). Before the log's start and after its end
nothing is logged either: binned tables mark the bins it starts and ends inside, and leave out any bin from
its end on.
"""

from __future__ import annotations

import threading

import numpy as np

from .inputs import DATA_GAP_S, US_PER_S, EventLog, _fmt_us

_NOTES_KEY = ("gap_left_out",)
_NOTES_LOCK = threading.Lock()
#: at most this many left-out intervals named per measure in a warning
NAMED = 3


def gap_spans_us(log: EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(device, last event before, first event after) of every silence over `DATA_GAP_S` in each device's
    log, in (device, time) order, as the input report finds them (all of them, not the report's first 1000)."""
    from . import _kernels as K

    return K.memo(log, ("gap_spans",), lambda: _gap_spans_us(log))


def _gap_spans_us(log: EventLog):
    t, dev = log.time_us, log.device
    if len(t) < 2:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    i = np.flatnonzero((dev[1:] == dev[:-1]) & (t[1:] - t[:-1] > DATA_GAP_S * US_PER_S))
    return dev[i].astype(np.int64), t[i].astype(np.int64), t[i + 1].astype(np.int64)


def break_spans_us(log: EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(device, start, end) of every span the log does not say what the signal showed in: its data gaps and
    its controller interruptions (`interruptions`), merged where they overlap, in (device, time) order."""
    from . import _kernels as K

    return K.memo(log, ("break_spans",), lambda: _break_spans_us(log))


def _break_spans_us(log: EventLog):
    from .interruptions import interruption_spans_us

    gdev, g0, g1 = gap_spans_us(log)
    idev, i0, i1, _ = interruption_spans_us(log)
    if not len(idev):
        return gdev, g0, g1
    dev, s0, s1 = np.concatenate([gdev, idev]), np.concatenate([g0, i0]), np.concatenate([g1, i1])
    order = np.lexsort((s0, dev))
    out: list[list[int]] = []
    for d, a, b in zip(dev[order].tolist(), s0[order].tolist(), s1[order].tolist(), strict=True):
        if out and out[-1][0] == d and a <= out[-1][2]:
            out[-1][2] = max(out[-1][2], b)
        else:
            out.append([d, a, b])
    spans = np.array(out, np.int64).reshape(-1, 3)
    return spans[:, 0], spans[:, 1], spans[:, 2]


def across_gap(log: EventLog, dev: np.ndarray, start_us: np.ndarray, end_us: np.ndarray) -> np.ndarray:
    """For intervals (device, start, end): whether a data gap or a controller interruption of the device
    (`break_spans_us`) overlaps it. An interval whose end is unknown (NaN or below its start) reaches to the
    device's next gap only if it starts before it and ends after its start: pass the best known end."""
    gdev, g0, g1 = break_spans_us(log)
    dev = np.asarray(dev, np.int64)
    out = np.zeros(len(dev), bool)
    if not len(gdev) or not len(dev):
        return out
    start = np.asarray(start_us, np.float64)
    end = np.asarray(end_us, np.float64)
    for d in np.unique(gdev):
        rows = np.flatnonzero(dev == d)
        if not len(rows):
            continue
        gs, ge = g0[gdev == d].astype(np.float64), g1[gdev == d].astype(np.float64)
        # the first gap of the device ending after the interval's start: does it begin before the interval ends?
        k = np.searchsorted(ge, start[rows], "right")
        ok = k < len(ge)
        hit = np.zeros(len(rows), bool)
        hit[ok] = gs[k[ok]] < end[rows][ok]
        out[rows] = hit
    return out


def note_left_out(log: EventLog, measure: str, unit: str, dev: np.ndarray, start_us: np.ndarray) -> None:
    """Remember that `measure` left out these intervals (device, start) for spanning a data gap."""
    dev = np.asarray(dev, np.int64)
    start = np.asarray(start_us, np.int64)
    pairs = sorted({(int(d), int(s)) for d, s in zip(dev.tolist(), start.tolist(), strict=True)})
    named = [(log.devices[d], _fmt_us(s)[:19]) for d, s in pairs[:NAMED]]
    with _NOTES_LOCK:
        log.memo.setdefault(_NOTES_KEY, {})[measure] = (len(dev), unit, named, len(pairs) > NAMED)


def left_out_warnings(log: EventLog, measures: set[str] | None = None) -> list[str]:
    """One warning per measure (of `measures`, or all) that left intervals out for spanning a data gap or a
    controller interruption."""
    from .interruptions import interruption_spans_us

    notes = log.memo.get(_NOTES_KEY, {})
    gaps, stops = len(gap_spans_us(log)[0]) > 0, len(interruption_spans_us(log)[0]) > 0
    what = "gap or interruption" if gaps and stops else "interruption" if stops else "gap"
    across = {"gap": "a data gap", "interruption": "a controller interruption",
              "gap or interruption": "a data gap or a controller interruption"}[what]
    out = []
    for measure, (n, unit, named, more) in sorted(notes.items()):
        if not n or (measures is not None and measure.split(" ")[0] not in measures):
            continue
        where = "; ".join(f"device {d} from {s}" for d, s in named)
        out.append(f"{measure}: {n} {unit} across {across} left out ({where}{'; …' if more else ''}): the log "
                   f"does not say what happened in the {what}, so they are not measured")
    return out


def log_end_us(log: EventLog) -> int | None:
    """Where the log ends: its last event's time, rounded up to a whole second (None: no events). A
    controller stamps events to a tenth of a second, so a log whose last event is at 14:59.9 logged up to
    15:00; one whose last event falls on a bin's start logged nothing after that instant."""
    if not len(log):
        return None
    return -(-int(log.time_us.max()) // US_PER_S) * US_PER_S


def log_start_us(log: EventLog) -> int | None:
    """Where the log starts: its first event's time, rounded down to a whole second (None: no events), as
    `log_end_us` rounds the end up: a log whose first event is at 07:00:00.3 logged from 07:00."""
    if not len(log):
        return None
    return int(log.time_us.min()) // US_PER_S * US_PER_S


def with_complete(df, log: EventLog, bin_min: int):
    """The binned table with a `Complete` column: False for a bin of a device that a data gap or a
    controller interruption of the device overlaps (its counts and averages miss the gap's events), for
    the bin the log starts inside (`log_start_us`: a log or an API window from 23:50 holds ten minutes of
    the 23:45 bin), and for the bin the log ends inside (`log_end_us`: a 30-minute run in 20-minute bins
    measured ten minutes of its second). A bin that starts at or after the log's end is left out: it would
    hold only the events at that last instant (a cycle cut at its begin red, a detector's last on), not a
    measured bin."""
    if df is None or "TimeStamp" not in df or "DeviceId" not in df:
        return df
    df = df.copy()
    if df.empty:
        df["Complete"] = np.array([], bool)
        return df
    import pandas as pd

    bin_us = bin_min * 60 * US_PER_S
    lo = pd.to_datetime(df["TimeStamp"]).to_numpy("datetime64[us]").astype(np.int64)
    end = log_end_us(log)
    if end is not None:
        df, lo = df[lo < end].reset_index(drop=True), lo[lo < end]
    index = {name: i for i, name in enumerate(log.devices)}
    dev = np.array([index.get(str(d), -1) for d in df["DeviceId"]], np.int64)
    ended = lo + bin_us > end if end is not None else np.zeros(len(lo), bool)
    started = lo < log_start_us(log) if end is not None else np.zeros(len(lo), bool)
    df["Complete"] = ~across_gap(log, dev, lo, lo + bin_us) & ~ended & ~started
    return df
