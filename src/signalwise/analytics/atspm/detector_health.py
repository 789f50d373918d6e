"""Detector health: a chattering detector channel, found and left out of the measures.

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
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .inputs import US_PER_S, EventLog, _fmt_us

#: more short pulses than this within `CHATTER_WINDOW_S` on one channel: chatter, not vehicles
CHATTER_MAX_ON = 10
#: an on-event whose off follows within this long is a pulse no vehicle makes
CHATTER_PULSE_S = 0.15
CHATTER_WINDOW_S = 10.0
#: chattering bursts of a channel closer than this are one period
CHATTER_MERGE_S = 300.0
#: the period reaches this far past its last burst's last on-event (its pulse's off)
CHATTER_TAIL_S = 2.0


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
