"""Detector health: a chattering or a stuck-on detector channel, found and left out of the measures.

A detector that chatters (a loose loop lead, cross-talk, an amplifier set too sensitive) logs bursts
of on/off pulses that are no vehicles, and every measure counting actuations counts them: arrivals on
green, split-failure occupancy, phase calls. Its pulses are shorter than any vehicle's: a 4 m car over a
point loop at 70 km/h holds it 0.2 s, and longer in a zone, so an on-event whose off follows within
`CHATTER_PULSE_S` is no vehicle; more than `CHATTER_MAX_ON` of them on one channel within
`CHATTER_WINDOW_S` is a chattering burst (a busy channel, even one spanning several lanes, is not: its
pulses are vehicles long).
Such bursts of a channel closer than
`CHATTER_MERGE_S` apart are one chattering period; the period's on/off events (81/82) of that channel
are left out of every measure (`without_chatter`), and the input report names device, channel and period.
The events stay in the log as read (`signalwise events import` stores them).

A detector stuck on (a shorted loop lead, a failed amplifier holding its output, a video zone fixed on a
shadow) logs one on-event (82) and no off (81), and reads as a vehicle standing over it from then on: every
cycle of its phase fails its split at 100 % green and red occupancy. A queue moves in every green, and the
vehicles moving over a stop-bar zone leave gaps between them; even a queue that keeps a 40 ft zone occupied
through one saturated green does not do so through the reds and greens that follow. So a channel on without
a break through `STUCK_ON_GREENS` whole greens of a phase it is configured for (each from its begin green to
its begin yellow, and none that a preemption call or a controller interruption overlaps: chained preemption
cuts a cross street's greens to their minimum, and a queue then does stand over its stop-bar zone through
them), or for `STUCK_ON_S` whatever its phase did, is stuck on (`find_stuck_on`): a warning names
the device, channel and period, and the split-failure cycles of its phase that overlap the period are left
out (`overlaps_stuck`), as a chattering channel's events are.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .inputs import US_PER_S, EventLog, _fmt_us, _fmt_when

#: more short pulses than this within `CHATTER_WINDOW_S` on one channel: chatter, not vehicles
CHATTER_MAX_ON = 10
#: an on-event whose off follows within this long is a pulse no vehicle makes
CHATTER_PULSE_S = 0.15
CHATTER_WINDOW_S = 10.0
#: chattering bursts of a channel closer than this are one period
CHATTER_MERGE_S = 300.0
#: the period reaches this far past its last burst's last on-event (its pulse's off)
CHATTER_TAIL_S = 2.0
#: a channel on through this many whole greens of its phase is stuck on: a queue moves in every green
STUCK_ON_GREENS = 3
#: ... or on this long, whatever its phase did (no vehicle stands over a loop through a 15-minute bin)
STUCK_ON_S = 900.0


def _short_pulses(t: np.ndarray, device: np.ndarray, code: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Rows of the on-events (82) whose channel is off again (81) within `CHATTER_PULSE_S`: shorter than a
    vehicle over a loop (4 m at 70 km/h is 0.2 s; a zone holds it longer). A busy channel's vehicles, however
    many lanes it spans, are not chatter."""
    rows = np.flatnonzero((code == 82) | (code == 81))
    if not len(rows):
        return rows
    key = device[rows].astype(np.int64) * (1 << 32) + param[rows].astype(np.int64)
    order = np.lexsort((code[rows] == 82, t[rows], key))  # at one instant the off first, as the measures read
    rows, key = rows[order], key[order]
    is_on = code[rows] == 82
    followed = np.zeros(len(rows), bool)
    followed[:-1] = is_on[:-1] & (code[rows[1:]] == 81) & (key[1:] == key[:-1]) & \
        (t[rows[1:]] - t[rows[:-1]] < CHATTER_PULSE_S * US_PER_S)
    return rows[followed]


def find_chatter(t: np.ndarray, device: np.ndarray, code: np.ndarray, param: np.ndarray
                 ) -> list[tuple[int, int, int, int, int]]:
    """(device, channel, first µs, last µs, on-events) of each chattering period; rows in (device, time) order."""
    on = _short_pulses(t, device, code, param)
    if len(on) <= CHATTER_MAX_ON:
        return []
    key = device[on].astype(np.int64) * (1 << 32) + param[on].astype(np.int64)
    order = np.lexsort((t[on], key))
    ts, key = t[on][order], key[order]
    k = CHATTER_MAX_ON
    burst = (key[k:] == key[:-k]) & (ts[k:] - ts[:-k] < CHATTER_WINDOW_S * US_PER_S)
    starts = np.flatnonzero(burst)
    if not len(starts):
        return []
    out = []
    merge = CHATTER_MERGE_S * US_PER_S
    cur = None
    for i in starts.tolist():
        j = i + k
        if cur is not None and key[i] == cur[0] and ts[i] - cur[2] <= merge:
            cur[2] = max(cur[2], int(ts[j]))
            continue
        if cur is not None:
            out.append(cur)
        cur = [int(key[i]), int(ts[i]), int(ts[j])]
    out.append(cur)
    periods = []
    for kk, lo, hi in out:
        n = int(np.count_nonzero((key == kk) & (ts >= lo) & (ts <= hi)))
        periods.append((kk >> 32, kk & 0xFFFFFFFF, lo, hi, n))
    return periods


def chatter_warnings(chatter: list[tuple[str, int, str, str, int]]) -> list[str]:
    out = [f"device {dev} detector channel {ch}: {n:,} pulses shorter than {CHATTER_PULSE_S:g} s from {lo} to "
           f"{hi}, more than {CHATTER_MAX_ON} within {CHATTER_WINDOW_S:.0f} s (no vehicle is that short): a chattering "
           "detector; its on/off events in that period are left out of every measure (actuations, arrivals on "
           "green, split failures, phase wait), so its bins there count none of its vehicles"
           for dev, ch, lo, hi, n in chatter[:5]]
    if len(chatter) > 5:
        out.append(f"{len(chatter) - 5} more chattering detector periods, left out the same way")
    return out


def report_chatter(t, device, code, param, devices: list[str]):
    """The chattering periods as found (`find_chatter`) and as the input report lists them: (device, channel,
    from, to, on-events)."""
    periods = find_chatter(t, device, code, param)
    return periods, [(devices[d], ch, _fmt_us(lo), _fmt_us(hi), n) for d, ch, lo, hi, n in periods]


def without_chatter(log: EventLog) -> EventLog:
    """The log without the detector events (81/82) of its chattering periods (once per log); the log itself
    when it has none."""
    from . import _kernels as K

    return K.memo(log, ("without_chatter",), lambda: _without_chatter(log))


def _without_chatter(log: EventLog) -> EventLog:
    periods = log.report.chatter_us  # found as the log was read (`inputs.events_from_arrow`)
    if not periods:
        return log
    drop = np.zeros(len(log), bool)
    det = (log.event == 81) | (log.event == 82)
    for d, ch, lo, hi, _ in periods:
        drop |= det & (log.device == d) & (log.param == ch) & (log.time_us >= lo) & (
            log.time_us <= hi + CHATTER_TAIL_S * US_PER_S)
    keep = ~drop
    return replace(log, time_us=log.time_us[keep], device=log.device[keep], event=log.event[keep],
                   param=log.param[keep], memo={})


def stuck_on(log: EventLog, config) -> list[tuple[int, int, int, int, bool, int, int]]:
    """The stuck-on periods of the log's detector channels (`find_stuck_on`), once per log and configuration."""
    from . import _kernels as K

    return K.memo(log, ("stuck_on", id(config)), lambda: find_stuck_on(log, config), config)


def find_stuck_on(log: EventLog, config) -> list[tuple[int, int, int, int, bool, int, int]]:
    """(device, channel, on µs, off µs, open, greens, phase) of each period a channel stayed on through
    `STUCK_ON_GREENS` whole greens (begin green to begin yellow) of a phase a vehicle row of the configuration
    gives it, or for `STUCK_ON_S`. A period runs from an on-event (82) to the channel's next event; `open`:
    none came, and it runs to the device's last event. `greens` and `phase`: the most greens of one phase
    inside it, and that phase (0 when none)."""
    from . import _kernels as K

    idx, group = K.events_by_stream(log, (81, 82))  # each channel's events, in log (time) order
    if not len(idx):
        return []
    on = np.flatnonzero(log.event[idx] == 82)
    nxt = on + 1
    has_next = nxt < len(idx)
    has_next[has_next] = group[nxt[has_next]] == group[on[has_next]]
    dev = log.device[idx[on]].astype(np.int64)
    # each device's last event: the log is in (device, time) order
    last_us = log.time_us[np.searchsorted(log.device, np.arange(len(log.devices)), "right") - 1]
    t_on = log.time_us[idx[on]]
    t_off = np.where(has_next, log.time_us[idx[np.minimum(nxt, len(idx) - 1)]], last_us[dev])
    chan = log.param[idx[on]].astype(np.int64)
    ckey = dev * K.KEY_SHIFT + chan  # ascending: the events are in (device, channel) order
    greens = np.zeros(len(on), np.int64)
    best_phase = np.zeros(len(on), np.int64)
    for (d, ch, ph), (g0, g8) in _configured_greens(log, config).items():
        rows = np.arange(*np.searchsorted(ckey, [d * K.KEY_SHIFT + ch, d * K.KEY_SHIFT + ch + 1]))
        if not len(rows):
            continue
        # whole greens inside [on, off]: begun at or after the on, their yellow at or before the off
        n = np.searchsorted(g8, t_off[rows], "right") - np.searchsorted(g0, t_on[rows], "left")
        better = n > greens[rows]
        greens[rows[better]], best_phase[rows[better]] = n[better], ph
    from .gaps import across_gap

    # what a detector did while its device logged nothing (a data gap, a power failure) is unknown
    long_on = t_off - t_on >= STUCK_ON_S * US_PER_S
    long_on[long_on] = ~across_gap(log, dev[long_on], t_on[long_on], t_off[long_on])
    stuck = (greens >= STUCK_ON_GREENS) | long_on
    return [(int(dev[k]), int(chan[k]), int(t_on[k]), int(t_off[k]), not bool(has_next[k]), int(greens[k]),
             int(best_phase[k])) for k in np.flatnonzero(stuck).tolist()]


def _configured_greens(log: EventLog, config) -> dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """{(device, channel, phase): (begin greens, their begin yellows)} for each vehicle row of the configuration
    (Presence, Advance, Yellow_Red) whose device is in the log; greens with no yellow are not whole, nor are
    greens that a preemption call or an interruption overlaps (`_cut_spans_us`)."""
    from . import _kernels as K

    if config is None:
        return {}
    rows = config.frame[config.frame["Function"] != "Pedestrian"]
    lookup = {name: i for i, name in enumerate(log.devices)}
    idx = K.event_indices(log, (1, 8))
    key = log.device[idx].astype(np.int64) * K.KEY_SHIFT + log.param[idx]
    cut = _cut_spans_us(log)
    out = {}
    for dev_name, ch, ph in rows[["DeviceId", "Parameter", "Phase"]].drop_duplicates().itertuples(index=False):
        d = lookup.get(str(dev_name))
        if d is None:
            continue
        ev = idx[key == d * K.KEY_SHIFT + int(ph)]  # time order
        code = log.event[ev]
        whole = np.flatnonzero((code[:-1] == 1) & (code[1:] == 8))
        g0, g8 = log.time_us[ev[whole]], log.time_us[ev[whole + 1]]
        if d in cut:  # a green a preemption call or an interruption overlaps was cut short, or was the preemption's
            p0, p1 = cut[d]
            # spans ending after the green's begin, and the first of them beginning before its yellow
            k = np.searchsorted(p1, g0, "right")
            hit = (k < len(p0)) & (p0[np.minimum(k, len(p0) - 1)] <= g8)  # a call at its yellow ended it
            g0, g8 = g0[~hit], g8[~hit]
        out[(d, int(ch), int(ph))] = (g0, g8)
    return out


def _cut_spans_us(log: EventLog) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{device: (starts, ends)} of the times its phases did not time as they would for their queues, merged and in
    time order: each preemption call, from its call on (102) to its channel's call off (104, else the device's
    last event), and each controller interruption (`interruptions`). A green that overlaps one ended when the
    preemption (or the interruption) took the controller, or was the preemption's own, so it says nothing about
    whether a queue would have cleared the detector."""
    from . import _kernels as K
    from .interruptions import interruption_spans_us

    spans: dict[int, list[tuple[int, int]]] = {}
    idx, group = K.events_by_stream(log, (102, 104))  # each preemption channel's events, in time order
    last_us = log.time_us[np.searchsorted(log.device, np.arange(len(log.devices)), "right") - 1]
    ons = np.flatnonzero(log.event[idx] == 102)
    offs = np.flatnonzero(log.event[idx] == 104)
    # each call on's next call off in the stream's order (a channel whose input chatters repeats 102 many times
    # before its 104: found by one search, not by a walk from each call on)
    k = np.searchsorted(offs, ons, "right")
    j = offs[np.minimum(k, max(len(offs) - 1, 0))] if len(offs) else ons
    closed = (k < len(offs)) & (group[j] == group[ons])
    for i, jj, shut in zip(ons.tolist(), j.tolist(), closed.tolist(), strict=True):
        d = int(log.device[idx[i]])
        end = int(log.time_us[idx[jj]]) if shut else int(last_us[d])
        spans.setdefault(d, []).append((int(log.time_us[idx[i]]), end))
    idev, i0, i1, _ = interruption_spans_us(log)
    for d, a, b in zip(idev.tolist(), i0.tolist(), i1.tolist(), strict=True):
        spans.setdefault(d, []).append((a, b))
    out = {}
    for d, found in spans.items():
        merged: list[list[int]] = []
        for a, b in sorted(found):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[d] = (np.array([m[0] for m in merged], np.int64), np.array([m[1] for m in merged], np.int64))
    return out


def overlaps_stuck(log: EventLog, config, dev: np.ndarray, phase: np.ndarray, channel: np.ndarray | None,
                   start_us: np.ndarray, end_us: np.ndarray) -> np.ndarray:
    """For cycles (device, phase, start, end): whether a stuck-on period of a Presence channel of the phase
    overlaps it; with `channel`, only a period of that channel (a cycle measured per detector)."""
    periods = stuck_on(log, config)
    out = np.zeros(len(dev), bool)
    if not periods or not len(dev):
        return out
    phases_of = _presence_phases(log, config)
    for d, ch, lo, hi, _open, _greens, _phase in periods:
        for ph in phases_of.get((d, ch), ()):
            hit = (dev == d) & (phase == ph) & (start_us < hi) & (end_us > lo)
            if channel is not None:
                hit &= channel == ch
            out |= hit
    return out


def _presence_phases(log: EventLog, config) -> dict[tuple[int, int], set[int]]:
    """{(device index, channel): the phases its Presence rows give it}."""
    lookup = {name: i for i, name in enumerate(log.devices)}
    out: dict[tuple[int, int], set[int]] = {}
    for dev_name, ch, ph in config.rows("Presence")[["DeviceId", "Parameter", "Phase"]].itertuples(index=False):
        if str(dev_name) in lookup:
            out.setdefault((lookup[str(dev_name)], int(ch)), set()).add(int(ph))
    return out


def stuck_on_warnings(log: EventLog, config) -> list[str]:
    """One warning per stuck-on period (the first five): device, channel, period, and what is left out."""
    periods = stuck_on(log, config)
    presence = _presence_phases(log, config) if periods else {}
    out = []
    for d, ch, lo, hi, is_open, greens, ph in periods[:5]:
        until = f"the log's end ({_fmt_when(hi)})" if is_open else _fmt_when(hi)
        through = (f"through {greens} whole greens of phase {ph}" if greens >= STUCK_ON_GREENS
                   else f"for {(hi - lo) / US_PER_S:.0f} s")
        phases = sorted(presence.get((d, ch), ()))
        effect = (f"the split-failure cycles of phase {', '.join(map(str, phases))} that overlap the period are "
                  "left out (they would read 100 % occupancy)" if phases else
                  "it is no stop-bar (Presence) detector, so no split failure reads it; its one on-event counts "
                  "as one actuation")
        out.append(f"device {log.devices[d]} detector channel {ch}: on from {_fmt_when(lo)} to {until} with no off, "
                   f"{through}: a stuck-on detector (no queue holds a detector through {STUCK_ON_GREENS} greens, "
                   f"nor a vehicle for {STUCK_ON_S / 60:.0f} minutes); {effect}")
    if len(periods) > 5:
        out.append(f"{len(periods) - 5} more stuck-on detector periods, left out the same way")
    return out
