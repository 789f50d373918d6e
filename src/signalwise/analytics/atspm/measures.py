"""The ATSPM measures that must agree with the atspm package, bin for bin.

Each function takes an `EventLog` (+ `DetectorConfig`) and returns a pandas
DataFrame whose columns carry the atspm package's names, so an engineer who
knows that package reads these tables unchanged. Definitions follow the
package's SQL (atspm 2.6.1, queries/*.sql); where we differ on purpose it is
listed in the package docstring (`signalwise.analytics.atspm`).
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from . import gaps as G
from .detector_health import overlaps_stuck
from .inputs import US_PER_S, DetectorConfig, EventLog
from .interruptions import clip_greens


def _frame(log: EventLog, bin_us=None, **cols):
    """Columns -> DataFrame; `TimeStamp` (int µs) becomes datetime, `DeviceId` (codes) names."""
    import pandas as pd

    data = {}
    for name, values in cols.items():
        if name == "TimeStamp":
            data[name] = pd.to_datetime(np.asarray(values, np.int64), unit="us")
        elif name == "DeviceId":
            names = np.array(log.devices, dtype=object)
            data[name] = names[np.asarray(values, np.int64)] if len(values) else np.array([], object)
        else:
            data[name] = values
    return pd.DataFrame(data)


def _count(keys: dict[str, np.ndarray], values: dict[str, np.ndarray] | None = None):
    """Group rows by keys (sorted), counting rows (as `_n`) and summing `values`.

    Keys are small integers in disguise (bins, devices, phases, codes): each is turned into its step
    index ((value - min) / gcd of the offsets) and the indices are packed into one number per row;
    np.bincount then counts and sums in one pass when the packed space is small next to the rows,
    else np.unique sorts the packed numbers — 2-5x faster than a pandas groupby, which remains for
    keys that are not integers.
    """
    values = values or {}
    n = len(next(iter(keys.values())))
    codes = np.zeros(n, np.int64)
    space, parts = 1, []
    for name, col in keys.items():
        col = np.asarray(col)
        if n == 0 or col.dtype.kind not in "iub":
            return _count_pandas(keys, values)
        c64 = col.astype(np.int64)
        lo = int(c64.min())
        off = c64 - lo
        step = int(np.gcd.reduce(off)) or 1
        size = int(off.max()) // step + 1
        space *= size
        if space > 2**62:
            return _count_pandas(keys, values)
        codes = codes * size + off // step
        parts.append((name, size, lo, step, col.dtype))
    if space <= 4 * n + 100_000:  # dense: count every possible key, keep those present
        counts = np.bincount(codes, minlength=space)
        present = np.flatnonzero(counts)
        counts, index, slots, take = counts[present], codes, space, present
    else:  # sparse: sort the packed keys
        present, index, counts = np.unique(codes, return_inverse=True, return_counts=True)
        slots, take = len(present), slice(None)
    out: dict[str, np.ndarray] = {}
    rest = present.copy()
    for name, size, lo, step, dtype in reversed(parts):
        out[name] = (rest % size * step + lo).astype(dtype)
        rest //= size
    out = {name: out[name] for name in keys}
    for name, v in values.items():
        v = np.asarray(v)
        total = np.bincount(index, weights=v, minlength=slots)[take]
        out[name] = total.astype(np.int64) if v.dtype.kind in "iub" else total
    out["_n"] = counts.astype(np.int64)
    return out


def _count_pandas(keys: dict[str, np.ndarray], values: dict[str, np.ndarray]):
    import pandas as pd

    df = pd.DataFrame({**keys, **values})
    df["_n"] = 1
    out = df.groupby(list(keys), sort=True).sum().reset_index()
    return {c: out[c].to_numpy() for c in out.columns}


# ---------------------------------------------------------------------------
# Detector actuations
# ---------------------------------------------------------------------------


def actuations(log: EventLog, bin_min: int = 15, fill_in_missing: bool = True):
    """Detector-on (82) events per bin, device and detector channel.

    With `fill_in_missing`, a detector seen anywhere in the log gets a 0 row in
    every bin where its device logged anything (as atspm's `fill_in_missing`).
    """
    bin_us = bin_min * 60 * US_PER_S
    on = log.event == 82
    g = _count({"TimeStamp": K.bucket(log.time_us[on], bin_us), "DeviceId": log.device[on],
                "Detector": log.param[on]})
    ts, dev, det, total = g["TimeStamp"], g["DeviceId"], g["Detector"], g["_n"]
    if fill_in_missing and len(ts):
        import pandas as pd

        device_bins = pd.DataFrame({"TimeStamp": K.bucket(log.time_us, bin_us), "DeviceId": log.device})
        device_bins = device_bins.drop_duplicates()
        dets = pd.DataFrame({"DeviceId": dev, "Detector": det}).drop_duplicates()
        full = device_bins.merge(dets, on="DeviceId")
        counts = pd.DataFrame({"TimeStamp": ts, "DeviceId": dev, "Detector": det, "Total": total})
        full = full.merge(counts, on=["TimeStamp", "DeviceId", "Detector"], how="left")
        full = full.sort_values(["TimeStamp", "DeviceId", "Detector"], kind="stable")
        ts, dev, det = full["TimeStamp"].to_numpy(), full["DeviceId"].to_numpy(), full["Detector"].to_numpy()
        total = full["Total"].fillna(0).to_numpy(np.int64)
    return _frame(log, TimeStamp=ts, DeviceId=dev, Detector=det.astype(np.int64), Total=total.astype(np.int64))


# ---------------------------------------------------------------------------
# Arrivals on green, platoon ratio
# ---------------------------------------------------------------------------


def arrival_shift_us(dist_m: np.ndarray, speed_mps: np.ndarray, latency_s: float, project: bool) -> np.ndarray:
    """Detector time -> arrival time at the stop bar: minus latency, plus travel time if projecting."""
    shift = np.full(len(dist_m), -latency_s * US_PER_S)
    if project:
        travel = np.where((dist_m > 0) & (speed_mps > 0), dist_m / np.where(speed_mps > 0, speed_mps, 1), 0.0)
        shift = shift + np.nan_to_num(travel) * US_PER_S
    return np.round(shift).astype(np.int64)


def _aog_rows(log: EventLog, config: DetectorConfig, latency_s: float, project: bool):
    """Advance-detector arrivals labelled with the signal state at arrival.

    Returns arrays (time_us, device, phase, channel, state, complete) for arrivals only; `complete` is
    whether the arrival falls in a complete cycle of its phase, as UDOT ATSPM's cycles run (begin red to
    begin red): at or after the phase's first begin red in the log and before its last (begin red =
    begin red clearance 10, or end of yellow 9 for a phase that never logs a 10, as the PCD takes it),
    in a cycle no data gap of the device cuts.
    """
    return K.memo(log, ("aog_rows", id(config), latency_s, project),
                  lambda: _compute_aog_rows(log, config, latency_s, project), config)


def _compute_aog_rows(log: EventLog, config: DetectorConfig, latency_s: float, project: bool):
    di, dphase, dchan, ddist, dspeed = K.join_detectors(log, config, "Advance", (82,))
    pi = K.phase_events(log, config, "Advance", (1, 8, 10))
    t = np.concatenate([log.time_us[pi], log.time_us[di] + arrival_shift_us(ddist, dspeed, latency_s, project)])
    dev = np.concatenate([log.device[pi], log.device[di]]).astype(np.int64)
    phase = np.concatenate([log.param[pi], dphase]).astype(np.int64)
    code = np.concatenate([log.event[pi], np.full(len(di), 82)]).astype(np.int64)
    chan = np.concatenate([np.zeros(len(pi), np.int64), dchan])
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))
    t, dev, phase, code, chan, group = t[order], dev[order], phase[order], code[order], chan[order], group[order]
    _, _, state = K.label_cycles(group, code)
    det = code == 82
    t, dev, phase = t[det], dev[det], phase[det]
    first_red, last_red = red_span_us(log, config, dev, phase)
    complete = (t >= first_red) & (t < last_red)
    _outside_gap_cycles(log, config, t, dev, phase, complete)
    return t, dev, phase, chan[det], state[det], complete


def _outside_gap_cycles(log: EventLog, config: DetectorConfig, t, dev, phase, complete) -> None:
    """Clear `complete` for arrivals in a cycle (begin red to begin red) across a data gap or a controller
    interruption of their device: after it the phase's state is carried over from before it, which the log
    does not say (a green cut by a power failure would read green through the outage)."""
    gdev = G.break_spans_us(log)[0]
    risky = complete & np.isin(dev, gdev)
    if not risky.any():
        G.note_left_out(log, "arrival_on_green", "arrivals in cycles", dev[:0], t[:0])
        return
    rkey, rt = _begin_reds(log, config)
    akey = dev * K.KEY_SHIFT + phase
    cut_rows, cut_start = [], []
    for key in np.unique(akey[risky]):
        rows = np.flatnonzero(risky & (akey == key))
        reds = rt[rkey == key]
        k = np.searchsorted(reds, t[rows], "right")  # reds[k - 1] <= t < reds[k]: complete says both exist
        cut = G.across_gap(log, dev[rows], reds[k - 1], reds[k])
        cut_rows.append(rows[cut])
        cut_start.append(reds[k - 1][cut])
    rows = np.concatenate(cut_rows)
    complete[rows] = False
    G.note_left_out(log, "arrival_on_green", "arrivals in cycles", dev[rows], np.concatenate(cut_start))


def _begin_reds(log: EventLog, config: DetectorConfig):
    """(device * KEY_SHIFT + phase, time) of every begin red of the phases with advance detectors, sorted:
    10, or 9 for a phase that never logs a 10."""
    ri = K.phase_events(log, config, "Advance", (9, 10))
    rkey = log.device[ri].astype(np.int64) * K.KEY_SHIFT + log.param[ri]
    rcode, rt = log.event[ri], log.time_us[ri]
    with10 = np.unique(rkey[rcode == 10])
    use = (rcode == 10) | ~np.isin(rkey, with10)
    rkey, rt = rkey[use], rt[use]
    order = np.lexsort((rt, rkey))
    return rkey[order], rt[order]


def red_span_us(log: EventLog, config: DetectorConfig, dev: np.ndarray, phase: np.ndarray):
    """For rows (device, phase) of phases with advance detectors: the time of the phase's first and of its
    last begin red (10, or 9 for a phase that never logs a 10); (max, min) int64 when it has none."""
    rkey, rt = _begin_reds(log, config)
    keys, inv = np.unique(rkey, return_inverse=True)
    first = np.full(len(keys), np.iinfo(np.int64).max, np.int64)
    last = np.full(len(keys), np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, inv, rt)
    np.maximum.at(last, inv, rt)
    key = dev.astype(np.int64) * K.KEY_SHIFT + phase
    at = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
    found = (keys[at] == key) if len(keys) else np.zeros(len(key), bool)
    none_first, none_last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    return (np.where(found, first[at] if len(keys) else none_first, none_first),
            np.where(found, last[at] if len(keys) else none_last, none_last))


def device_spans_us(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """Per device (by its index in `log.devices`): the time of its first and its last event, µs (once per log)."""
    return K.memo(log, ("device_spans",), lambda: _device_spans_us(log))


def _device_spans_us(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    n = len(log.devices)
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    if len(log):
        dev = log.device.astype(np.int64)
        np.minimum.at(first, dev, log.time_us)
        np.maximum.at(last, dev, log.time_us)
    return first, last


def arrival_on_green(log: EventLog, config: DetectorConfig, bin_min: int = 15,
                     latency_s: float = 0.0, project: bool = False):
    """Share of advance-detector arrivals while the phase shows green, per bin and phase (`Percent_AOG`,
    a percent, 0-100: `percent_aog`).

    Only arrivals in complete cycles count, as UDOT ATSPM counts them (begin red to begin red, from the
    phase's first begin red in the log to its last): before the first, the log may not say what the
    phase showed (atspm counts those arrivals as not on green), and after the last the cycle is open.
    An arrival projected to the stop bar past the device's last event is left out too: the log does
    not say what the signal showed then.
    """
    bin_us = bin_min * 60 * US_PER_S
    t, dev, phase, _, state, complete = _aog_rows(log, config, latency_s, project)
    t, dev, phase, state = t[complete], dev[complete], phase[complete], state[complete]
    if len(t):
        seen = t <= device_spans_us(log)[1][dev]
        t, dev, phase, state = t[seen], dev[seen], phase[seen], state[seen]
    g = _count({"TimeStamp": K.bucket(t, bin_us), "DeviceId": dev, "Phase": phase},
               {"Green_Actuations": (state == 1).astype(np.int64)})
    total = g["_n"]
    green = g["Green_Actuations"]
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  Total_Actuations=total, Green_Actuations=green, Percent_AOG=percent_aog(green, total))


def approach_codes(log: EventLog, config: DetectorConfig, dev: np.ndarray, chan: np.ndarray
                   ) -> tuple[np.ndarray, list[str], list[str]]:
    """For advance arrivals (device index, channel): the index of their approach (-1 where the configuration
    names none), and each approach's name and direction of travel, from the Advance rows' `Approach` and
    `Direction` (`inputs.approach_of_lane`). A channel given two approaches takes its first row's."""
    rows = config.rows("Advance")
    if not {"Approach", "Direction"} <= set(rows.columns):  # a configuration made without them: no approaches
        return np.full(len(dev), -1, np.int64), [], []
    rows = rows[rows["Approach"] != ""]
    lookup = {name: i for i, name in enumerate(log.devices)}
    names: list[str] = []
    directions: list[str] = []
    index: dict[tuple[str, str], int] = {}
    by_channel: dict[int, int] = {}
    for d, ch, a, direction in zip(rows["DeviceId"], rows["Parameter"], rows["Approach"], rows["Direction"],
                                   strict=True):
        if d not in lookup:
            continue
        k = index.setdefault((d, a), len(names))
        if k == len(names):
            names.append(a)
            directions.append(direction)
        by_channel.setdefault(lookup[d] * K.KEY_SHIFT + int(ch), k)
    key = dev.astype(np.int64) * K.KEY_SHIFT + chan.astype(np.int64)
    code = np.array([by_channel.get(int(x), -1) for x in key], np.int64) if len(key) else np.empty(0, np.int64)
    return code, names, directions


def arrival_on_green_by_approach(log: EventLog, config: DetectorConfig, bin_min: int = 15,
                                 latency_s: float = 0.0, project: bool = False):
    """`arrival_on_green` per approach: the arrivals of each phase split by the approach their advance detector
    is on (`Approach`, its `Direction` of travel), as UDOT ATSPM's Purdue Coordination Diagram and arrivals on
    green are per approach. A phase serving two opposite directions (EB and WB through) gets a row for each: the
    offset that brings one a platoon on green can bring the other its platoon on red. The same arrivals as
    `arrival_on_green` (complete cycles, none projected past the log), less those on detectors the
    configuration names no approach for; the per-phase rows stay in `arrival_on_green`."""
    bin_us = bin_min * 60 * US_PER_S
    t, dev, phase, chan, state, complete = _aog_rows(log, config, latency_s, project)
    t, dev, phase, chan, state = t[complete], dev[complete], phase[complete], chan[complete], state[complete]
    if len(t):
        seen = t <= device_spans_us(log)[1][dev]
        t, dev, phase, chan, state = t[seen], dev[seen], phase[seen], chan[seen], state[seen]
    code, names, directions = approach_codes(log, config, dev, chan)
    known = code >= 0
    t, dev, phase, state, code = t[known], dev[known], phase[known], state[known], code[known]
    g = _count({"TimeStamp": K.bucket(t, bin_us), "DeviceId": dev, "Phase": phase, "_approach": code},
               {"Green_Actuations": (state == 1).astype(np.int64)})
    total, green, k = g["_n"], g["Green_Actuations"], g["_approach"].astype(np.int64)
    out = _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"])
    out["Approach"] = np.array(names, dtype=object)[k] if len(k) else np.array([], object)
    out["Direction"] = np.array(directions, dtype=object)[k] if len(k) else np.array([], object)
    out["Total_Actuations"], out["Green_Actuations"] = total, green
    out["Percent_AOG"] = percent_aog(green, total)
    return out


def approach_volume(log: EventLog, config: DetectorConfig, bin_min: int = 15):
    """Vehicles per bin and approach, UDOT ATSPM's Approach Volume: the detector-on events (82) of the
    approach's advance detectors, one per vehicle over each lane's loop, summed over its lanes (`Detectors`:
    how many channels counted), and as an hourly flow (`Volume_vph`, the bin's count times the bins in an hour:
    a flow only where the bin is `Complete`). Advance detectors only: a stop-bar presence zone holds a queue
    and does not count vehicles one by one. An approach without an advance detector (a lane too short for
    one) has no rows, nor does a bin in which no vehicle crossed its loops."""
    bin_us = bin_min * 60 * US_PER_S
    di, _phase, chan, _dist, _speed = K.join_detectors(log, config, "Advance", (82,))
    di, first = np.unique(di, return_index=True)  # an event of a channel two phases share counts once
    chan = chan[first]
    dev, t = log.device[di].astype(np.int64), log.time_us[di]
    code, names, directions = approach_codes(log, config, dev, chan)
    known = code >= 0
    t, dev, chan, code = t[known], dev[known], chan[known], code[known]
    g = _count({"TimeStamp": K.bucket(t, bin_us), "DeviceId": dev, "_approach": code})
    k = g["_approach"].astype(np.int64)
    out = _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"])
    out["Approach"] = np.array(names, dtype=object)[k] if len(k) else np.array([], object)
    out["Direction"] = np.array(directions, dtype=object)[k] if len(k) else np.array([], object)
    lanes = _count({"TimeStamp": K.bucket(t, bin_us), "DeviceId": dev, "_approach": code, "_chan": chan})
    per = _count({"TimeStamp": lanes["TimeStamp"], "DeviceId": lanes["DeviceId"], "_approach": lanes["_approach"]})
    out["Detectors"] = per["_n"]  # the same keys in the same (sorted) order as `g`
    out["Volume"] = g["_n"]
    out["Volume_vph"] = g["_n"] * (60.0 / bin_min)
    return out


def percent_aog(green, total) -> np.ndarray:
    """Arrivals on green as a percent (0-100), as UDOT ATSPM's Percent AOG reads, from the counts in float64:
    every table that gives it (`arrival_on_green`, `platoon_ratio`, `plans`) gives the same number for the same
    counts. (The `atspm` package gives a fraction, 0-1, in float32.) NaN where there is no arrival."""
    green, total = np.asarray(green, np.float64), np.asarray(total, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * green / np.where(total > 0, total, 1.0), np.nan)


def green_seconds_by_bin(log: EventLog, config: DetectorConfig | None, bin_min: int = 15,
                         function: str | None = "Advance"):
    """Seconds each phase showed green in each bin (greens clipped at bin edges).

    A green runs from begin green (1) to the next begin green/yellow (1/8); a
    green still open at the end of the data runs to the device's last event,
    and a yellow with no green before it (data starts mid-green) is green from
    the device's first event. atspm's platoon ratio runs them to the end and
    from the start of their bins, which on a log ending mid-bin (a 5-minute
    run, an API time range) counted greens the log never showed. A controller
    interruption (`interruptions`: a power failure, flash or restart) ends a
    green, and none is counted inside one: the green cut by a power failure
    does not last until the phase's next begin green after the restart.
    """
    bin_us = bin_min * 60 * US_PER_S
    first_us, last_us = device_spans_us(log)
    pi = K.phase_events(log, config, function, (1, 8))
    t = log.time_us[pi]
    dev = log.device[pi].astype(np.int64)
    phase = log.param[pi].astype(np.int64)
    code = log.event[pi].astype(np.int64)
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))
    t, dev, phase, code, group = t[order], dev[order], phase[order], code[order], group[order]
    n = len(t)
    new = K.group_starts(group)
    last = np.ones(n, bool)
    if n:
        last[:-1] = new[1:]
    nxt_t = np.empty(n, np.int64)
    if n:
        nxt_t[:-1] = t[1:]
    prev_code = np.zeros(n, np.int64)
    if n:
        prev_code[1:] = code[:-1]
    prev_code[new] = 0
    g1 = code == 1
    open_end = np.minimum(K.bucket(t[g1], bin_us) + bin_us, last_us[dev[g1]])
    start1, end1 = t[g1], np.where(last[g1], open_end, nxt_t[g1])
    g8 = (code == 8) & ((prev_code == 0) | (prev_code == 8))
    start8, end8 = np.maximum(K.bucket(t[g8], bin_us), first_us[dev[g8]]), t[g8]
    start = np.concatenate([start1, start8])
    end = np.concatenate([end1, end8])
    gdev = np.concatenate([dev[g1], dev[g8]])
    gph = np.concatenate([phase[g1], phase[g8]])
    start, end = clip_greens(log, gdev, start, end)
    ok = end > start
    start, end, gdev, gph = start[ok], end[ok], gdev[ok], gph[ok]
    b0 = K.bucket(start, bin_us)
    b1 = K.bucket(end - 1000, bin_us)
    nb = (b1 - b0) // bin_us + 1
    rep = np.repeat(np.arange(len(start)), nb)
    k = np.arange(len(rep)) - np.repeat(np.cumsum(nb) - nb, nb)
    b = b0[rep] + k * bin_us
    lo = np.maximum(start[rep], b)
    hi = np.minimum(end[rep], b + bin_us)
    secs = (K.ms(hi) - K.ms(lo)) / 1000.0
    g = _count({"TimeStamp": b, "DeviceId": gdev[rep], "Phase": gph[rep]}, {"Green_Seconds": secs})
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  Green_Seconds=g["Green_Seconds"])


def covered_seconds(log: EventLog, bins, devices, bin_min: int) -> np.ndarray:
    """Seconds of each (bin start, device name) the device's log covers, first event to last."""
    import pandas as pd

    bin_us = bin_min * 60 * US_PER_S
    first_us, last_us = device_spans_us(log)
    index = {name: i for i, name in enumerate(log.devices)}
    dev = np.array([index[d] for d in devices], np.int64)
    lo = pd.to_datetime(bins).to_numpy("datetime64[us]").astype(np.int64)
    start = np.maximum(lo, first_us[dev])
    end = np.minimum(lo + bin_us, last_us[dev])
    return np.maximum(end - start, 0) / US_PER_S


def platoon_ratio(log: EventLog, config: DetectorConfig, aog, bin_min: int = 15):
    """Platoon ratio Rp = (share arriving on green) / (g/C) per bin, and the HCM arrival type.

    g/C is the bin's green over the part of the bin the device's log covers (atspm divides by the
    whole bin, so a log ending mid-bin made random arrivals look like type-6 platoons).
    """
    greens = green_seconds_by_bin(log, config, bin_min, "Advance")
    df = aog.merge(greens, on=["TimeStamp", "DeviceId", "Phase"], how="inner")
    df = df[df["Green_Seconds"] > 0].copy()
    # per approach (`arrival_on_green_by_approach`): the phase's green over the bin, each approach's own arrivals
    by = [c for c in ("Approach", "Direction") if c in df]
    covered = covered_seconds(log, df["TimeStamp"], df["DeviceId"], bin_min)
    df["Green_Ratio"] = df["Green_Seconds"] / np.where(covered > 0, covered, bin_min * 60.0)
    df["Platoon_Ratio"] = df["Percent_AOG"] / 100.0 / df["Green_Ratio"]  # the share arriving on green, 0-1
    rp = df["Platoon_Ratio"].to_numpy()
    df["Arrival_Type"] = np.select([rp <= 0.5, rp <= 0.85, rp <= 1.15, rp <= 1.5, rp <= 2.0],
                                   [1, 2, 3, 4, 5], 6).astype(np.int64)
    return df[["TimeStamp", "DeviceId", "Phase", *by, "Total_Actuations", "Green_Actuations", "Percent_AOG",
               "Green_Seconds", "Green_Ratio", "Platoon_Ratio", "Arrival_Type"]].reset_index(drop=True)


# ---------------------------------------------------------------------------
# Yellow and red actuations (red-light-running proxy)
# ---------------------------------------------------------------------------


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return (np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))).astype(x.dtype)


def yellow_red_rows(log: EventLog, config: DetectorConfig, latency_s: float = 0.0):
    """Yellow_Red detector actuations in complete cycles (exactly one 1, 8 and 10).

    Returns arrays (red_start_us, device, phase, state, offset_ms) — offset
    from the cycle's begin red clearance (10), negative before it.
    """
    return K.memo(log, ("yellow_red_rows", id(config), latency_s),
                  lambda: _compute_yellow_red_rows(log, config, latency_s), config)


def _yellow_red_stream(log: EventLog, config: DetectorConfig, latency_s: float):
    """Yellow_Red detector-on events and the phase events (1, 8, 10) of their phases, sorted by
    (device, phase, time, code), with cycle segment and signal state; `src` is a detector row's
    index in the log (-1 for phase events). Shared by yellow_red_rows and red_light_running."""
    return K.memo(log, ("yellow_red_stream", id(config), latency_s),
                  lambda: _compute_yellow_red_stream(log, config, latency_s), config)


def _compute_yellow_red_stream(log: EventLog, config: DetectorConfig, latency_s: float):
    di, dphase, _, _, _ = K.join_detectors(log, config, "Yellow_Red", (82,))
    pi = K.phase_events(log, config, "Yellow_Red", (1, 8, 10))
    t = np.concatenate([log.time_us[pi], log.time_us[di] - int(round(latency_s * US_PER_S))])
    dev = np.concatenate([log.device[pi], log.device[di]]).astype(np.int64)
    phase = np.concatenate([log.param[pi], dphase]).astype(np.int64)
    code = np.concatenate([log.event[pi], np.full(len(di), 82)]).astype(np.int64)
    src = np.concatenate([np.full(len(pi), -1, np.int64), di])
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))
    t, dev, phase, code, src, group = t[order], dev[order], phase[order], code[order], src[order], group[order]
    _, seg, state = K.label_cycles(group, code)
    return {"t": t, "dev": dev, "phase": phase, "code": code, "src": src, "group": group, "seg": seg,
            "state": state}


def _compute_yellow_red_rows(log: EventLog, config: DetectorConfig, latency_s: float):
    st = _yellow_red_stream(log, config, latency_s)
    t, dev, phase, code, seg, state = st["t"], st["dev"], st["phase"], st["code"], st["seg"], st["state"]
    nseg = int(seg.max()) + 1 if len(seg) else 1
    c1 = np.bincount(seg, code == 1, nseg)
    c8 = np.bincount(seg, code == 8, nseg)
    c10 = np.bincount(seg, code == 10, nseg)
    valid = (c1 == 1) & (c8 == 1) & (c10 == 1)
    red_t = np.zeros(nseg, np.int64)
    red_t[seg[code == 10]] = t[code == 10]
    keep = (code == 82) & valid[seg]
    rt = red_t[seg[keep]]
    offset_ms = K.ms(t[keep]) - K.ms(rt)
    return rt, dev[keep], phase[keep], state[keep], offset_ms, int(np.count_nonzero(~valid[1:] & (c1[1:] > 0)))


def yellow_red(log: EventLog, config: DetectorConfig, bin_min: int = 15, latency_s: float = 0.0):
    """Actuations by signal state and offset from begin red (0.5 s steps), per bin — atspm's table."""
    bin_us = bin_min * 60 * US_PER_S
    rt, dev, phase, state, off_ms, _ = yellow_red_rows(log, config, latency_s)
    off = _round_half_away(off_ms.astype(np.float32) * np.float32(2) / np.float32(1000)) / np.float32(2)
    half_s = np.rint(off * 2).astype(np.int64)  # offsets are whole half-seconds: count them as integers
    g = _count({"TimeStamp": K.bucket(rt, bin_us), "DeviceId": dev, "Phase": phase, "Signal_State": state,
                "Red_Offset": half_s})
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  Signal_State=g["Signal_State"], Red_Offset=g["Red_Offset"] / 2.0, Count=g["_n"].astype(np.float64))


def _off_time(log: EventLog, idx: np.ndarray) -> np.ndarray:
    """For detector-on events `idx`, the time of the detector-off that follows on the same channel (-1 if none)."""
    ev = K.event_indices(log, (81, 82))
    chan = log.device[ev].astype(np.int64) * K.KEY_SHIFT + log.param[ev]
    ev = ev[np.isin(chan, np.unique(log.device[idx].astype(np.int64) * K.KEY_SHIFT + log.param[idx]))]
    key = K.group_key(log.device[ev], log.param[ev])
    order = K.group_order(key)  # the log is in (device, time, code) order: each channel's events stay in it
    ev, key = ev[order], key[order]
    nxt_off = np.full(len(ev), -1, np.int64)
    if len(ev) > 1:
        ok = (key[1:] == key[:-1]) & (log.event[ev[1:]] == 81)
        nxt_off[:-1] = np.where(ok, log.time_us[ev[1:]], -1)
    pos = np.zeros(len(log), np.int64)
    pos[ev] = np.arange(len(ev))
    return nxt_off[pos[idx]]


def red_light_running(log: EventLog, config: DetectorConfig, bin_min: int = 15, latency_s: float = 0.0,
                      severe_s: float = 4.0, max_on_s: float = 3.0):
    """Yellow/red actuations on stop-bar (Yellow_Red) detectors, per bin and phase, and red-light running.

    `Yellow_Actuations` / `Red_Actuations` count detector-on events during
    yellow / red, as atspm's yellow_red table does (a vehicle that stops over
    the detector on red counts there). `Red_Running` keeps only vehicles that
    entered on red and left the detector within `max_on_s`, before the next
    green — they crossed without waiting; `Severe_Red_Running` those more than
    `severe_s` into red. Binned by the actuation's time.
    """
    bin_us = bin_min * 60 * US_PER_S
    lat = int(round(latency_s * US_PER_S))
    st = _yellow_red_stream(log, config, latency_s)
    t, dev, phase, code, group, state = st["t"], st["dev"], st["phase"], st["code"], st["group"], st["state"]
    off_all = np.full(len(t), -1, np.int64)
    d = np.flatnonzero(code == 82)
    off = _off_time(log, st["src"][d])
    off_all[d] = np.where(off >= 0, off - lat, -1)
    n = len(t)
    red_idx = K.forward_fill_index(code == 10, group)
    red_t = np.where(red_idx >= 0, t[np.maximum(red_idx, 0)], np.iinfo(np.int64).min)
    # next begin green in the group, after each row
    g1 = np.where(code == 1, np.arange(n), n)
    nxt1 = np.minimum.accumulate(g1[::-1])[::-1] if n else g1
    nxt_green = np.where(nxt1 < n, t[np.minimum(nxt1, max(n - 1, 0))], np.iinfo(np.int64).max)
    nxt_green = np.where((nxt1 < n) & (group[np.minimum(nxt1, max(n - 1, 0))] == group), nxt_green,
                         np.iinfo(np.int64).max)
    det = code == 82
    on_red = det & (state == 10)
    ran = on_red & (off_all >= 0) & (off_all <= nxt_green) & (off_all - t <= max_on_s * US_PER_S)
    severe = ran & (t - red_t > severe_s * US_PER_S)
    g = _count({"TimeStamp": K.bucket(t[det], bin_us), "DeviceId": dev[det], "Phase": phase[det]},
               {"Yellow_Actuations": (state[det] == 8).astype(np.int64),
                "Red_Actuations": on_red[det].astype(np.int64),
                "Red_Running": ran[det].astype(np.int64),
                "Severe_Red_Running": severe[det].astype(np.int64)})
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  Total_Actuations=g["_n"], Yellow_Actuations=g["Yellow_Actuations"],
                  Red_Actuations=g["Red_Actuations"], Red_Running=g["Red_Running"],
                  Severe_Red_Running=g["Severe_Red_Running"])


# ---------------------------------------------------------------------------
# Split failures
# ---------------------------------------------------------------------------


def _impute_detector_events(t, dev, det, phase, code):
    """atspm's repair of detector on/off sequences, per (device, detector, phase); rows in log order.

    ON,ON within 2 s: OFF at the second ON; ON,ON further apart: OFF half-way;
    OFF,OFF: ON half-way; a stream starting with OFF gets an ON 1 ms before.
    """
    group = K.group_key(dev, det, phase)
    order = K.group_order(group)  # rows come in log order: each stream is already in (time, code) order
    t, dev, det, phase, code, group = t[order], dev[order], det[order], phase[order], code[order], group[order]
    n = len(t)
    new = K.group_starts(group)
    prev_code = np.zeros(n, np.int64)
    prev_t = np.zeros(n, np.int64)
    if n:
        prev_code[1:] = code[:-1]
        prev_t[1:] = t[:-1]
    prev_code[new] = 0
    diff = K.ms(t) - K.ms(prev_t)
    on_on = (code == 82) & (prev_code == 82)
    rapid = on_on & (diff <= 2000)
    slow = on_on & (diff > 2000)
    off_off = (code == 81) & (prev_code == 81)
    first_off = new & (code == 81)
    add_t = np.concatenate([t[rapid], t[slow] - diff[slow] * 500, t[off_off] - diff[off_off] * 500,
                            t[first_off] - 1000])
    add_code = np.concatenate([np.full(rapid.sum() + slow.sum(), 81), np.full(off_off.sum() + first_off.sum(), 82)])
    sel = np.concatenate([np.flatnonzero(rapid), np.flatnonzero(slow), np.flatnonzero(off_off),
                          np.flatnonzero(first_off)])
    return (np.concatenate([t, add_t]), np.concatenate([dev, dev[sel]]), np.concatenate([det, det[sel]]),
            np.concatenate([phase, phase[sel]]), np.concatenate([code, add_code]))


#: how a cycle is judged and binned: the atspm package's rule (default) or UDOT ATSPM's
SPLIT_FAILURE_RULES = ("atspm", "udot")


def split_failure_cycles(log: EventLog, config: DetectorConfig, bin_min: int = 15, red_time_s: int = 5,
                         by_approach: bool = True):
    """Per complete cycle: green time, green occupancy and occupancy of the first seconds of red.

    Returns arrays (timestamp_us, device, detector, phase, green_time_s,
    green_occupancy, red_occupancy, begin_green_us) plus the number of cycles
    dropped as incomplete. `timestamp_us` is the end of the cycle's measured red
    (atspm's); occupancies are float32, as atspm computes them. A detector is
    off before its first event in the log (as UDOT ATSPM takes it; atspm drops
    those cycles); a phase whose detectors log nothing at all has no cycles. A
    cycle across a data gap or a controller interruption (`gaps`), or one a
    stuck-on detector of the phase overlaps (`detector_health`), is left out,
    and not counted in `dropped`.
    """
    return K.memo(log, ("split_failure_cycles", id(config), bin_min, red_time_s, by_approach),
                  lambda: _compute_split_failure_cycles(log, config, bin_min, red_time_s, by_approach), config)


def _compute_split_failure_cycles(log: EventLog, config: DetectorConfig, bin_min: int, red_time_s: int,
                                  by_approach: bool):
    bin_us = bin_min * 60 * US_PER_S
    di, dphase, dchan, _, _ = K.join_detectors(log, config, "Presence", (81, 82))
    t, dev, det, phase, code = _impute_detector_events(
        log.time_us[di], log.device[di].astype(np.int64), dchan, dphase.astype(np.int64),
        log.event[di].astype(np.int64))
    pi = K.phase_events(log, config, "Presence", (1, 8, 10))
    pt, pdev, pphase, pcode = (log.time_us[pi], log.device[pi].astype(np.int64), log.param[pi].astype(np.int64),
                               log.event[pi].astype(np.int64))
    if by_approach:
        # detector state of the approach = any detector on (running count of ONs minus OFFs)
        group = K.group_key(dev, phase)
        order = K.lexsort((t, group))
        t, dev, phase, code, group = t[order], dev[order], phase[order], code[order], group[order]
        value = np.where(code == 82, 1, -1)
        cs = np.cumsum(value)
        starts = np.flatnonzero(K.group_starts(group))
        cs = cs - np.repeat(cs[starts] - value[starts], np.diff(np.append(starts, len(cs)))) if len(cs) else cs
        cs = K.peer_last(cs, [group, t])
        code = np.where(cs > 0, 82, 81)
        det = np.zeros(len(t), np.int64)
        ph_t, ph_dev, ph_det, ph_phase, ph_code = pt, pdev, np.zeros(len(pt), np.int64), pphase, pcode
    else:
        # phase events copied to every detector of the phase that reported anything
        import pandas as pd

        dets = pd.DataFrame({"dev": dev, "det": det, "phase": phase}).drop_duplicates()
        ph = pd.DataFrame({"t": pt, "dev": pdev, "phase": pphase, "code": pcode}).merge(dets, on=["dev", "phase"])
        ph_t, ph_dev, ph_det = ph["t"].to_numpy(), ph["dev"].to_numpy(), ph["det"].to_numpy()
        ph_phase, ph_code = ph["phase"].to_numpy(), ph["code"].to_numpy()
    # red barrier: an event 11 `red_time_s` after each begin red, unless past the end of the data's last bin
    cutoff = K.bucket(log.time_us.max(), bin_us) + bin_us if len(log) else 0
    red = ph_code == 10
    bt = ph_t[red] + red_time_s * US_PER_S
    okb = bt < cutoff
    t = np.concatenate([t, ph_t, bt[okb]])
    dev = np.concatenate([dev, ph_dev, ph_dev[red][okb]])
    det = np.concatenate([det, ph_det, ph_det[red][okb]])
    phase = np.concatenate([phase, ph_phase, ph_phase[red][okb]])
    code = np.concatenate([code, ph_code, np.full(int(okb.sum()), 11)])
    group = K.group_key(dev, det, phase)
    order = K.lexsort((code, t, group))
    t, dev, det, phase, code, group = t[order], dev[order], det[order], phase[order], code[order], group[order]
    cycle, seg, state = K.label_cycles(group, code)
    is_det = code >= 81
    last_det = K.forward_fill_index(is_det, group)
    det_on = np.where(last_det >= 0, code[np.maximum(last_det, 0)] == 82, False)
    n = len(t)
    tms = K.ms(t)
    tdiff = np.zeros(n, np.int64)
    if n:
        tdiff[:-1] = tms[1:] - tms[:-1]
        tdiff[np.flatnonzero(K.group_starts(group))[1:] - 1] = 0
        tdiff[-1] = 0
    nseg = int(seg.max()) + 1 if n else 1
    c8 = np.bincount(seg, code == 8, nseg)
    c11 = np.bincount(seg, code == 11, nseg)
    # a detector is off before its first event (UDOT ATSPM's reading); a phase whose detectors log nothing
    # has no detector state at all
    heard = np.bincount(group, is_det, int(group.max(initial=0)) + 1) > 0
    seg_heard = np.zeros(nseg, bool)
    seg_heard[seg] = heard[group]
    has_cycle = np.zeros(nseg, bool)
    has_cycle[seg[cycle > 0]] = True
    valid = has_cycle & (c8 == 1) & (c11 == 1) & seg_heard
    dropped = int(np.count_nonzero(has_cycle & ~valid))
    green = state == 1
    counted = green | (state == 10) | (code == 11)
    green_on = np.bincount(seg, np.where(green & det_on, tdiff, 0), nseg)
    green_all = np.bincount(seg, np.where(green, tdiff, 0), nseg)
    red_on = np.bincount(seg, np.where((state == 10) & det_on, tdiff, 0), nseg)
    ts = np.full(nseg, np.iinfo(np.int64).min)
    np.maximum.at(ts, seg[counted], t[counted])
    first = np.zeros(nseg, np.int64)
    at = np.flatnonzero(K.group_starts(seg))  # seg never decreases: where each segment starts
    first[seg[at]] = at
    # a cycle across a data gap (begin green to the end of its measured red) is not measured
    cut = np.zeros(nseg, bool)
    cut[valid] = G.across_gap(log, dev[first[valid]], t[first[valid]], ts[valid])
    G.note_left_out(log, "split_failures", "cycles", dev[first[cut]], t[first[cut]])
    valid &= ~cut
    # nor is one a stuck-on stop-bar detector overlaps: it reads 100 % occupancy whatever the queue did
    f = first[valid]
    stuck = np.zeros(nseg, bool)
    stuck[valid] = overlaps_stuck(log, config, dev[f], phase[f], None if by_approach else det[f], t[f], ts[valid])
    valid &= ~stuck
    v = np.flatnonzero(valid)
    ga = green_all[v].round().astype(np.int64)
    go = green_on[v].round().astype(np.int64)
    ro = red_on[v].round().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        green_time = ga.astype(np.float32) / np.float32(1000)
        green_occ = go.astype(np.float32) / ga.astype(np.float32)
        red_occ = ro.astype(np.float32) / np.float32(red_time_s * 1000)
    f = first[v]
    return (ts[v], dev[f], det[f], phase[f], green_time, green_occ, red_occ, t[f]), dropped


def split_failure_flags(go: np.ndarray, ro: np.ndarray, rule: str = "atspm", red_occupancy_threshold: float = 0.80,
                        green_occupancy_threshold: float = 0.80) -> np.ndarray:
    """1 for a split-failure cycle, else 0, from its green and red occupancies: both >= the thresholds
    ("atspm"), or both > 79 % ("udot", the thresholds given are then ignored)."""
    if rule == "udot":
        return ((ro > np.float32(0.79)) & (go > np.float32(0.79))).astype(np.int64)
    return ((ro >= np.float32(red_occupancy_threshold)) & (go >= np.float32(green_occupancy_threshold))).astype(np.int64)


#: decimals the occupancies of `split_failures` and `split_failure_cycles` are given to (fractions, 0-1): a hundredth
#: of a percent, finer than a 0.1 s step in a 100 s green (0.001), without the float32 noise they are computed in
#: (0.14000000059604645 for 0.7 s of a 5 s red)
OCCUPANCY_DECIMALS = 4


def _occupancy(x) -> np.ndarray:
    """Occupancies (fractions, 0-1) as the tables give them: float64, to `OCCUPANCY_DECIMALS` decimals (whether a
    cycle failed is judged on the values before rounding, as the atspm package judges it)."""
    return np.round(np.asarray(x, np.float64), OCCUPANCY_DECIMALS)


def split_failures(log: EventLog, config: DetectorConfig, bin_min: int = 15, red_time_s: int = 5,
                   red_occupancy_threshold: float = 0.80, green_occupancy_threshold: float = 0.80,
                   by_approach: bool = True, by_cycle: bool = False, rule: str = "atspm"):
    """Split failures: cycles whose green occupancy and first-`red_time_s` red occupancy both reach the thresholds.

    `rule` "atspm" (the default, the atspm package's): both occupancies >= the thresholds (80 %), a cycle
    binned by the end of its measured red. "udot" (UDOT ATSPM's): both > 79 %, binned by the cycle's begin
    green (the thresholds given are then ignored).
    """
    import pandas as pd

    if rule not in SPLIT_FAILURE_RULES:
        raise ValueError(f"split-failure rule must be one of {', '.join(SPLIT_FAILURE_RULES)}, not {rule!r}")
    bin_us = bin_min * 60 * US_PER_S
    (ts, dev, det, phase, gt, go, ro, green_us), _ = split_failure_cycles(log, config, bin_min, red_time_s,
                                                                         by_approach)
    if rule == "udot":
        ts = green_us
    fail = split_failure_flags(go, ro, rule, red_occupancy_threshold, green_occupancy_threshold)
    if by_cycle:
        cols = dict(TimeStamp=ts, DeviceId=dev)
        if not by_approach:
            cols["Detector"] = det
        cols.update(Phase=phase, Green_Time=gt.astype(np.float64), Green_Occupancy=_occupancy(go),
                    Red_Occupancy=_occupancy(ro), Split_Failure=fail)
        return _frame(log, **cols).sort_values(["TimeStamp", "DeviceId", "Phase"], kind="stable").reset_index(drop=True)
    keys = {"TimeStamp": K.bucket(ts, bin_us), "DeviceId": dev}
    if not by_approach:
        keys["Detector"] = det
    keys["Phase"] = phase
    df = pd.DataFrame({**keys, "Green_Time": gt.astype(np.float64), "Green_Occupancy": go.astype(np.float64),
                       "Red_Occupancy": ro.astype(np.float64), "Split_Failure": fail, "Cycles": 1})
    agg = df.groupby(list(keys), sort=True).agg(
        Green_Time=("Green_Time", "mean"), Green_Occupancy=("Green_Occupancy", "mean"),
        Red_Occupancy=("Red_Occupancy", "mean"), Split_Failure=("Split_Failure", "sum"),
        Cycles=("Cycles", "sum")).reset_index()
    for c in ("Green_Occupancy", "Red_Occupancy"):  # the bin's mean over its cycles, rounded as theirs are
        agg[c] = _occupancy(agg[c])
    return _frame(log, **{c: agg[c].to_numpy() for c in agg.columns})


# ---------------------------------------------------------------------------
# Terminations, pedestrian services and actuations
# ---------------------------------------------------------------------------


def terminations(log: EventLog, bin_min: int = 15):
    """Gap-outs (4), max-outs (5) and force-offs (6) per bin and phase."""
    bin_us = bin_min * 60 * US_PER_S
    m = (log.event >= 4) & (log.event <= 6)
    g = _count({"TimeStamp": K.bucket(log.time_us[m], bin_us), "DeviceId": log.device[m],
                "Phase": log.param[m], "EventId": log.event[m]})
    names = np.array(["", "", "", "", "GapOut", "MaxOut", "ForceOff"], dtype=object)
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  PerformanceMeasure=names[g["EventId"].astype(np.int64)] if len(g["EventId"]) else np.array([], object),
                  Total=g["_n"])


def pedestrian(log: EventLog, bin_min: int = 15, config: DetectorConfig | None = None):
    """Pedestrian services (begin walk 21, plus 67) and actuations (ped detector on, 90, on the phase its
    channel calls: `K.ped_detector_events`) per bin and phase."""
    bin_us = bin_min * 60 * US_PER_S
    served = np.flatnonzero(np.isin(log.event, (21, 67)))
    pushed, pushed_phase = K.ped_detector_events(log, config, (90,))
    m = np.concatenate([served, pushed])
    phase = np.concatenate([log.param[served], pushed_phase])
    is_push = np.arange(len(m)) >= len(served)
    g = _count({"TimeStamp": K.bucket(log.time_us[m], bin_us), "DeviceId": log.device[m], "Phase": phase},
               {"PedServices": (~is_push).astype(np.int64), "PedActuation": is_push.astype(np.int64)})
    return _frame(log, TimeStamp=g["TimeStamp"], DeviceId=g["DeviceId"], Phase=g["Phase"],
                  PedServices=g["PedServices"], PedActuation=g["PedActuation"])
