"""Cycle-level measures: split monitor, Purdue Coordination Diagram, phase wait,
pedestrian delay and preemption details.

These have no counterpart in the atspm package that we must match (its
timeline/phase_wait/ped_delay need MAXTIME-specific events), so they follow
the UDOT ATSPM definitions, stated on each function.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from . import gaps as G
from .inputs import US_PER_S, DetectorConfig, EventLog
from .measures import _aog_rows, _frame, approach_codes


def _phase_table(log: EventLog, codes: tuple[int, ...]):
    import pandas as pd

    m = np.isin(log.event, codes)
    return pd.DataFrame({"t": log.time_us[m], "dev": log.device[m].astype(np.int64),
                         "phase": log.param[m].astype(np.int64), "code": log.event[m].astype(np.int64)})


def split_monitor(log: EventLog):
    """One row per phase cycle (begin green to next begin green).

    Green = 1->8, Yellow = 8->9 (8->10 without 9), Red clearance = 10->11,
    Red = rest of the cycle; Split = green + yellow + red clearance (s);
    Termination from a 4/5/6 in the cycle. Incomplete cycles (the last one,
    or one missing its yellow) keep NaN where the interval is unknown; a cycle
    across a data gap is left out (`gaps`), its intervals unmeasured.
    """

    df = _phase_table(log, (1, 4, 5, 6, 8, 9, 10, 11)).sort_values(["dev", "phase", "t", "code"], kind="stable")
    df["cycle"] = (df["code"] == 1).groupby([df["dev"], df["phase"]]).cumsum()
    df = df[df["cycle"] > 0]
    first = df.groupby(["dev", "phase", "cycle", "code"], sort=True)["t"].min().unstack("code")
    for c in (1, 4, 5, 6, 8, 9, 10, 11):
        if c not in first:
            first[c] = np.nan
    first = first.reset_index().sort_values(["dev", "phase", "cycle"])
    nxt = first.groupby(["dev", "phase"])[1].shift(-1)
    # a cycle across a data gap is not measured (a 20-minute outage would read as a 1202 s red clearance)
    last_known = first[[1, 4, 5, 6, 8, 9, 10, 11]].max(axis=1)
    cut = G.across_gap(log, first["dev"].to_numpy(), first[1].to_numpy(np.float64),
                       nxt.fillna(last_known).to_numpy(np.float64))
    G.note_left_out(log, "split_monitor", "phase cycles", first["dev"].to_numpy()[cut],
                    first[1].to_numpy(np.int64)[cut])
    first, nxt = first[~cut], nxt[~cut]
    s = 1.0 / US_PER_S
    green = (first[8] - first[1]) * s
    end_yellow = first[9].fillna(first[10])
    yellow = (end_yellow - first[8]) * s
    red_clear = (first[11] - first[10]) * s
    red_start = first[11].fillna(first[10]).fillna(first[9])
    red = (nxt - red_start) * s
    term = np.select([first[4].notna(), first[5].notna(), first[6].notna()], ["GapOut", "MaxOut", "ForceOff"],
                     "Unknown")
    out = _frame(log, TimeStamp=first[1].to_numpy(np.int64), DeviceId=first["dev"].to_numpy(),
                 Phase=first["phase"].to_numpy())
    out["Green_s"] = green.to_numpy()
    out["Yellow_s"] = yellow.to_numpy()
    out["RedClearance_s"] = red_clear.to_numpy()
    out["Red_s"] = red.to_numpy()
    out["Split_s"] = (green + yellow + red_clear.fillna(0)).to_numpy()
    out["Cycle_s"] = ((nxt - first[1]) * s).to_numpy()
    out["Termination"] = term
    return out.sort_values(["TimeStamp", "DeviceId", "Phase"], kind="stable").reset_index(drop=True)


def split_monitor_binned(splits, bin_min: int = 15):
    """Per bin and phase: cycles, mean green / yellow / red clearance / split, terminations by type."""
    if splits.empty:
        import pandas as pd

        return pd.DataFrame(columns=["TimeStamp", "DeviceId", "Phase", "Cycles", "Green_s", "Yellow_s",
                                     "RedClearance_s", "Split_s", "GapOut", "MaxOut", "ForceOff"])
    df = splits.copy()
    df["TimeStamp"] = df["TimeStamp"].dt.floor(f"{bin_min}min")
    for name in ("GapOut", "MaxOut", "ForceOff"):
        df[name] = (df["Termination"] == name).astype(int)
    g = df.groupby(["TimeStamp", "DeviceId", "Phase"], sort=True)
    out = g.agg(Cycles=("Phase", "size"), Green_s=("Green_s", "mean"), Yellow_s=("Yellow_s", "mean"),
                RedClearance_s=("RedClearance_s", "mean"), Split_s=("Split_s", "mean"),
                GapOut=("GapOut", "sum"), MaxOut=("MaxOut", "sum"), ForceOff=("ForceOff", "sum"))
    return out.reset_index()


def pcd(log: EventLog, config: DetectorConfig, latency_s: float = 0.0, project: bool = True):
    """Purdue Coordination Diagram tables (arrivals, cycles), computed once per log and options: the PCD
    table and the per-plan table (`plans`) read the same rows. Read-only: the same frames each time."""
    return K.memo(log, ("pcd", id(config), latency_s, project),
                  lambda: _compute_pcd(log, config, latency_s, project), config)


def _compute_pcd(log: EventLog, config: DetectorConfig, latency_s: float = 0.0, project: bool = True):
    """Purdue Coordination Diagram data: each advance-detector arrival's time in its cycle.

    Cycles run from begin red (10; 9 when 10 is missing) to the next begin
    red, as UDOT ATSPM draws them; `Cycles` gives green and yellow start
    within each cycle for the lines of the diagram. Only complete cycles are
    kept, as UDOT keeps them: arrivals before the phase's first begin red and
    after its last (the open cycle at the end of the log) are left out, and so
    is a cycle across a data gap, with its arrivals. With
    `project`, arrivals are projected to the stop bar by the detector's
    distance / approach speed.
    """
    import pandas as pd

    t, dev, phase, chan, state, _ = _aog_rows(log, config, latency_s, project)
    pi = K.phase_events(log, config, "Advance", (1, 8, 9, 10))
    pt, pdev, pphase, pcode = log.time_us[pi], log.device[pi].astype(np.int64), log.param[pi].astype(np.int64), \
        log.event[pi].astype(np.int64)
    width = int(max(pphase.max(initial=0), phase.max(initial=0))) + 1
    pgroup = pdev * width + pphase
    order = K.group_order(pgroup)  # phase events come in log order: (time, code) within each phase
    pt, pdev, pphase, pcode, pgroup = pt[order], pdev[order], pphase[order], pcode[order], pgroup[order]
    # cycle starts: begin red clearance (10), or end of yellow (9) for phases that never log a 10
    with10 = np.zeros(int(pgroup.max(initial=0)) + 1, bool)
    with10[pgroup[pcode == 10]] = True
    is_start = (pcode == 10) | ((pcode == 9) & ~with10[pgroup])
    si = np.flatnonzero(is_start)
    if len(si):
        dup = np.zeros(len(si), bool)
        dup[1:] = (pgroup[si[1:]] == pgroup[si[:-1]]) & (pt[si[1:]] == pt[si[:-1]])
        si = si[~dup]
    start, sgroup, sdev, sphase = pt[si], pgroup[si], pdev[si], pphase[si]
    end = np.full(len(si), np.nan)
    if len(si) > 1:
        same = sgroup[1:] == sgroup[:-1]
        end[:-1] = np.where(same, start[1:], np.nan)
    # which cycle each event falls in: the last start at or before it, in its own phase
    t0 = int(min(pt.min(initial=0), t.min(initial=0), start.min(initial=0)))
    span = int(max(pt.max(initial=0), t.max(initial=0), start.max(initial=0))) - t0 + 1

    def cycle_of(group, when):
        k = np.searchsorted(sgroup * span + (start - t0), group * span + (when - t0), "right") - 1
        ok = k >= 0
        ok[ok] = sgroup[k[ok]] == group[ok]
        return np.where(ok, k, -1)

    s = 1.0 / US_PER_S
    cycles = _frame(log, TimeStamp=start, DeviceId=sdev, Phase=sphase)
    for code, name in ((1, "GreenStart_s"), (8, "YellowStart_s")):
        m = np.flatnonzero(pcode == code)
        k = cycle_of(pgroup[m], pt[m])
        m, k = m[k >= 0], k[k >= 0]
        first = np.flatnonzero(K.group_starts(k))  # events are in time order: the first in each cycle
        at = np.full(len(si), np.nan)
        at[k[first]] = (pt[m[first]] - start[k[first]]) * s
        cycles[name] = at
    cycles["Cycle_s"] = (end - start) * s
    closed = ~np.isnan(end)
    cut = closed & G.across_gap(log, sdev, start, end)  # a cycle across a data gap: its arrivals' signal unknown
    G.note_left_out(log, "pcd", "cycles", sdev[cut], start[cut])
    closed &= ~cut
    agroup = dev * width + phase
    k = cycle_of(agroup, t)
    keep = k >= 0
    keep[keep] = closed[k[keep]]
    t, dev, phase, chan, state, k = t[keep], dev[keep], phase[keep], chan[keep], state[keep], k[keep]
    names = np.array(["red", "green", "yellow"], dtype=object)
    arrivals = _frame(log, TimeStamp=t, DeviceId=dev, Phase=phase, Detector=chan)
    arrivals["CycleStart"] = pd.to_datetime(start[k], unit="us")
    arrivals["TimeInCycle_s"] = (t - start[k]) * s
    arrivals["Signal"] = names[np.where(state == 1, 1, np.where(state == 8, 2, 0))] if len(state) else \
        np.array([], object)
    # the approach of each arrival's detector and its direction of travel ("" where the configuration names
    # none), after the older columns: a PCD per approach (`charts`, `--pcd-by approach`)
    code, approaches, directions = approach_codes(log, config, dev, chan)
    arrivals["Approach"] = np.array([*approaches, ""], dtype=object)[code] if len(code) else np.array([], object)
    arrivals["Direction"] = np.array([*directions, ""], dtype=object)[code] if len(code) else np.array([], object)
    return arrivals, cycles[closed].reset_index(drop=True)


def _waits(log: EventLog, serve_code: int, end_code: int, call_t, call_dev, call_phase):
    """For each service (serve_code) the wait since the first call after the previous end_code."""
    m = np.isin(log.event, (serve_code, end_code))
    t = np.concatenate([log.time_us[m], call_t])
    dev = np.concatenate([log.device[m], call_dev]).astype(np.int64)
    phase = np.concatenate([log.param[m], call_phase]).astype(np.int64)
    code = np.concatenate([log.event[m], np.full(len(call_t), -1)]).astype(np.int64)
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))
    t, dev, phase, code, group = t[order], dev[order], phase[order], code[order], group[order]
    is_phase = code >= 0
    last_phase = K.forward_fill_index(is_phase, group)
    is_call = code == -1
    # a call counts when the phase is not being served (last phase event is the end, or none yet)
    waiting = is_call & ((last_phase < 0) | (code[np.maximum(last_phase, 0)] == end_code))
    last_call = K.forward_fill_index(is_call, group)
    prev_call = np.full(len(t), -1)
    if len(t):
        prev_call[1:] = last_call[:-1]
        prev_call[K.group_starts(group)] = -1
    first_call = waiting & (prev_call <= last_phase)
    # the service that answers: the next serve_code in the group
    serve = code == serve_code
    nxt = np.where(serve, np.arange(len(t)), len(t))
    nxt = np.minimum.accumulate(nxt[::-1])[::-1] if len(t) else nxt
    fc = np.flatnonzero(first_call)
    ans = nxt[fc]
    ok = ans < len(t)
    fc, ans = fc[ok], ans[ok]
    ok = group[ans] == group[fc]
    fc, ans = fc[ok], ans[ok]
    return t[ans], dev[ans], phase[ans], (t[ans] - t[fc]) / US_PER_S


def _without_gap_waits(log: EventLog, measure: str, t, dev, phase, wait):
    """The waits (served at t, lasting `wait` s) that no data gap of their device cuts: one across a gap
    is not measured (the call may have been served in the gap)."""
    start = t - np.round(np.asarray(wait, np.float64) * US_PER_S).astype(np.int64)
    cut = G.across_gap(log, dev, start, t)
    G.note_left_out(log, measure, "waits", dev[cut], start[cut])
    keep = ~cut
    return t[keep], dev[keep], phase[keep], np.asarray(wait)[keep]


def phase_wait(log: EventLog, config: DetectorConfig | None = None):
    """Wait from a phase's first call to its next begin green, per served call.

    The call is the controller's phase call (43) when the log has them; else
    the first actuation (82) of a detector assigned to the phase while the
    phase is not green (after its yellow), which is what a call is.
    """
    calls = log.event == 43
    if calls.any():
        ct, cd, cp = log.time_us[calls], log.device[calls], log.param[calls]
    elif config is not None:
        di, dphase, _, _, _ = K.join_detectors(log, config, "Presence", (82,))
        if len(di) == 0:
            di, dphase, _, _, _ = K.join_detectors(log, config, "Advance", (82,))
        ct, cd, cp = log.time_us[di], log.device[di], dphase
    else:
        ct = cd = cp = np.empty(0, np.int64)
    t, dev, phase, wait = _waits(log, 1, 8, ct, cd, cp)
    t, dev, phase, wait = _without_gap_waits(log, "phase_wait", t, dev, phase, wait)
    out = _frame(log, TimeStamp=t, DeviceId=dev, Phase=phase)
    out["Wait_s"] = wait
    return out.sort_values(["TimeStamp", "DeviceId", "Phase"], kind="stable").reset_index(drop=True)


def ped_delay(log: EventLog, config: DetectorConfig | None = None):
    """Pedestrian delays (`_compute_ped_delay`), computed once per log and configuration: the binned table
    and the per-plan table (`plans`) read the same rows. Read-only: the same frame each time."""
    return K.memo(log, ("ped_delay", id(config)), lambda: _compute_ped_delay(log, config), config)


def _compute_ped_delay(log: EventLog, config: DetectorConfig | None = None):
    """Pedestrian delay per pedestrian served, measured from push-buttons where the log has them, else estimated.

    Phases whose log has pedestrian calls (`Method` "call"), as UDOT ATSPM's PedPhase measures them:
    the calls are the push-button events (90, on the phase its channel calls: `K.ped_detector_events`;
    the registered call 45 only for a phase that logs no 90), a run of calls with no begin walk (21)
    or begin clearance (22) between them is one pedestrian (pushes on two channels of one phase
    included), at its first push, and 23 plays no part. A push during the walk (a 21 before it, a
    22 next) is served at once: 0 s. A push after a 22 (flashing or steady don't-walk), or after a
    21 whose 22 is not logged before the next 21, waits for the next 21. A push before the log's
    first 21 or 22 counts when a 21 follows it; one with a 22 before it and a 22 next (a walk missing
    from the log), or none after it, is left out. `TimeStamp` is when the pedestrian may walk.

    Phases that show the walk without any call logged (pedestrian recall, which is how signalwise
    runs serve every crosswalk): no call says when anyone arrived, so each walk gets the mean delay
    of pedestrians arriving at random over the pedestrian cycle before it, (C - W)^2 / (2 C), with C
    from the previous begin walk to this one and W that walk's length (21 to 22) — the HCM's
    pedestrian delay (`Method` "recall", `Cycle_s` = C).
    """
    import pandas as pd

    t, dev, phase, wait = _without_gap_waits(log, "ped_delay", *_ped_call_delays(log, config))
    calls = _frame(log, TimeStamp=t, DeviceId=dev, Phase=phase)
    calls["PedDelay_s"] = wait
    calls["Method"] = "call"
    calls["Cycle_s"] = np.nan
    m = log.event == 45
    pushed, pushed_phase = K.ped_detector_events(log, config, (90,))
    called = np.unique(np.concatenate([log.device[m].astype(np.int64) * K.KEY_SHIFT + log.param[m],
                                       log.device[pushed].astype(np.int64) * K.KEY_SHIFT + pushed_phase]))
    recall = _recall_ped_delay(log, called)
    unsure = [dev for dev, _channels, _n in K.unmapped_ped_channels(log, config)]
    if unsure and len(recall):
        # a device whose pushes were left out (channels with no Pedestrian row): a phase without mapped calls
        # may have push-buttons on those channels, so its walks are not estimated as recall either
        recall = recall[~recall["DeviceId"].isin(unsure)]
    out = pd.concat([calls, recall], ignore_index=True) if len(recall) else calls
    return out.sort_values(["TimeStamp", "DeviceId", "Phase"], kind="stable").reset_index(drop=True)


def _ped_call_delays(log: EventLog, config: DetectorConfig | None = None):
    """(served time, device, phase, delay s) of each pedestrian whose push-button call the log holds."""
    # the few pedestrian events first: the log's other million rows take no part
    walks = np.flatnonzero(np.isin(log.event, (21, 22, 45)))
    pushed, pushed_phase = K.ped_detector_events(log, config, (90,))  # the push-button's channel -> its phase
    m = np.concatenate([walks, pushed])
    event = log.event[m].astype(np.int64)
    t, dev = log.time_us[m], log.device[m].astype(np.int64)
    phase = np.concatenate([log.param[walks], pushed_phase]).astype(np.int64)
    key = dev * K.KEY_SHIFT + phase
    with90 = np.unique(key[event == 90])
    push = (event == 90) | ((event == 45) & ~np.isin(key, with90))
    keep = push | (event == 21) | (event == 22)
    t, dev, phase, event, push = t[keep], dev[keep], phase[keep], event[keep], push[keep]
    code = np.where(push, 90, event)
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))  # at one instant: 21, 22, then the push
    t, dev, phase, code, group = t[order], dev[order], phase[order], code[order], group[order]
    n = len(t)
    is_push = code == 90
    new = K.group_starts(group)
    prev_code = np.zeros(n, np.int64)
    if n:
        prev_code[1:] = code[:-1]
    prev_code[new] = 0
    first = is_push & (prev_code != 90)  # a run of pushes is one pedestrian
    # the walk events around each push: the last before it, the next after it (same phase)
    is_walk = ~is_push
    last_walk = K.forward_fill_index(is_walk, group)
    nxt = np.where(is_walk, np.arange(n), n)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1] if n else nxt
    p = np.flatnonzero(first)
    after = nxt[p]
    ok = after < n
    p, after = p[ok], after[ok]
    ok = group[after] == group[p]
    p, after = p[ok], after[ok]
    before = last_walk[p]
    before_code = np.where(before >= 0, code[np.maximum(before, 0)], 0)
    next_code = code[after]
    during_walk = (before_code == 21) & (next_code == 22)
    waits = next_code == 21
    keep = during_walk | waits
    p, after, during_walk = p[keep], after[keep], during_walk[keep]
    served = np.where(during_walk, t[p], t[after])
    return served, dev[p], phase[p], (served - t[p]) / US_PER_S


def _recall_ped_delay(log: EventLog, called: np.ndarray):
    """Walks of phases with no pedestrian call logged: the uniform-arrival delay of the cycle before each."""
    m = np.isin(log.event, (21, 22))
    t, dev, phase, code = log.time_us[m], log.device[m].astype(np.int64), log.param[m].astype(np.int64), log.event[m]
    keep = ~np.isin(dev * K.KEY_SHIFT + phase, called)
    t, dev, phase, code = t[keep], dev[keep], phase[keep], code[keep]
    group = K.group_key(dev, phase)
    order = K.lexsort((code, t, group))
    t, dev, phase, code, group = t[order], dev[order], phase[order], code[order], group[order]
    walk = np.flatnonzero(code == 21)
    prev, cur = walk[:-1], walk[1:]
    # the walk's end: the begin clearance (22) right after the previous begin walk, in the same group
    nxt = np.minimum(prev + 1, max(len(t) - 1, 0))
    ok = (group[prev] == group[cur]) & (code[nxt] == 22) & (group[nxt] == group[prev]) & (t[nxt] <= t[cur])
    prev, cur, nxt = prev[ok], cur[ok], nxt[ok]
    cut = G.across_gap(log, dev[cur], t[prev], t[cur])  # a pedestrian cycle across a data gap: not measured
    G.note_left_out(log, "ped_delay (recall)", "pedestrian cycles", dev[cur][cut], t[prev][cut])
    prev, cur, nxt = prev[~cut], cur[~cut], nxt[~cut]
    cycle = (t[cur] - t[prev]) / US_PER_S
    walk_s = (t[nxt] - t[prev]) / US_PER_S
    out = _frame(log, TimeStamp=t[cur], DeviceId=dev[cur], Phase=phase[cur])
    out["PedDelay_s"] = (cycle - walk_s) ** 2 / (2 * cycle)
    out["Method"] = "recall"
    out["Cycle_s"] = cycle
    return out


def binned_waits(waits, value: str, bin_min: int = 15):
    """Per bin and phase: count, mean and max of a wait column.

    Pedestrian delay keeps its `Method` apart, and the mean of estimated
    (recall) delays weights each cycle by its length `Cycle_s`: pedestrians
    arriving at random fall in long cycles more often.
    """
    import pandas as pd

    keys = ["TimeStamp", "DeviceId", "Phase"] + (["Method"] if "Method" in waits else [])
    if waits.empty:
        return pd.DataFrame(columns=keys + ["Count", f"Mean_{value}", f"Max_{value}"])
    df = waits[[c for c in (*keys, value, "Cycle_s") if c in waits]].copy()
    df["TimeStamp"] = df["TimeStamp"].dt.floor(f"{bin_min}min")
    return aggregate_waits(df, keys, value)


def aggregate_waits(waits, keys: list[str], value: str):
    """Count, mean and max of a wait column per `keys` (bins, or plan spans): the mean of estimated
    (recall) delays weighted by their cycle length `Cycle_s`, as `binned_waits` takes it."""
    df = waits[keys + [value]].copy()
    df["_w"] = waits["Cycle_s"].fillna(1.0) if "Cycle_s" in waits else 1.0
    df["_wx"] = df["_w"] * df[value]
    out = df.groupby(keys, sort=True).agg(Count=(value, "size"), _wx=("_wx", "sum"), _w=("_w", "sum"),
                                          Max=(value, "max"))
    out[f"Mean_{value}"] = out["_wx"] / out["_w"]
    out = out.rename(columns={"Max": f"Max_{value}"})[["Count", f"Mean_{value}", f"Max_{value}"]]
    return out.reset_index()


def preemption(log: EventLog):
    """Each preemption: call on (102) to call off (104) per channel, as UDOT ATSPM's Preempt Details times it.

    EntryDelay_s = entry started (105) - call on; TimeToService_s = call on to the service of the preemption,
    the begin of track clearance (106) or, without one, of dwell (107): the emergency vehicle's green; Dwell_s =
    begin dwell to exit (111) or, without one, to call off; MaxPresence: the call ran past its maximum presence
    (110, a dwell timed out with the vehicle still calling). A value the log does not hold is NaN.
    """
    import pandas as pd

    codes = (102, 104, 105, 106, 107, 110, 111)
    df = _phase_table(log, codes).sort_values(["dev", "phase", "t", "code"], kind="stable")
    df["n"] = (df["code"] == 102).groupby([df["dev"], df["phase"]]).cumsum()
    df = df[df["n"] > 0]
    first = df.groupby(["dev", "phase", "n", "code"])["t"].min().unstack("code")
    for c in codes:
        if c not in first:
            first[c] = np.nan
    first = first.reset_index()
    s = 1.0 / US_PER_S
    out = _frame(log, TimeStamp=first[102].to_numpy(np.int64), DeviceId=first["dev"].to_numpy(),
                 Channel=first["phase"].to_numpy())
    out["CallOff"] = pd.to_datetime(first[104], unit="us")
    out["Duration_s"] = ((first[104] - first[102]) * s).to_numpy()
    out["EntryDelay_s"] = ((first[105] - first[102]) * s).to_numpy()
    service = first[106].fillna(first[107])
    out["TimeToService_s"] = ((service - first[102]) * s).to_numpy()
    out["Dwell_s"] = ((first[111].fillna(first[104]) - first[107]) * s).to_numpy()
    out["MaxPresence"] = first[110].notna().to_numpy()
    return out.sort_values(["TimeStamp", "DeviceId", "Channel"], kind="stable").reset_index(drop=True)
