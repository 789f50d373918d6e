"""Controller interruptions: a power failure, flash or restart, after which the log's signal states stop holding.

A controller that loses power (or goes to flash) stops showing its phases; when it runs again it starts a
new sequence with a begin green, and the green that was showing at the failure never logs its yellow. Read
as usual, that green lasts until the phase's next begin green, across the outage (a 10 s green reads as
90 s), and the red-to-red cycle around it as one 160 s cycle. So an interruption is handled like a data gap
(`gaps`): from the interruption event to the device's next begin green (1), no phase is read as green (a
green ends there: `clip_greens`), and a cycle, split or wait across it is left out of the cycle measures and
the bins it touches are not `Complete`. What marks one (Indiana Traffic Signal Hi Resolution Data Logger
Enumerations, Sturdevant et al. 2012, as UDOT ATSPM's `IndianaEnumerations.cs` lists them,
utahudot/udot-atspm Atspm/Data/Enums/IndianaEnumerations.cs):

- 182 Power Failure Detected (line voltage under 89 V AC for more than 100 ms): the interruption starts there;
- 184 Power Restored: after the device's last event before it, if no 182 was logged (a controller often
  loses power before it can log one);
- 173 Unit Flash Status Change, its parameter NTCIP 1202's unitFlashStatus (1 other, 2 notFlash,
  3 automatic, 4 localManual, 5 faultMonitor, 6 mmu, 7 startup, 8 preempt): any status but notFlash (2)
  starts a flash, in which no phase times;
- a phase whose begin green (1) is followed by another with no begin yellow (8) between them, in a log that
  logs its yellows: the controller restarted somewhere in that green, which the log does not otherwise say;
  the interruption covers that whole green.

180 (Stop Time Input) is not one: under stop time the controller holds its intervals, so a green stays green.
"""

from __future__ import annotations

import numpy as np

from .inputs import EventLog, _fmt_when

POWER_FAILURE = 182
POWER_RESTORED = 184
UNIT_FLASH_STATUS = 173
#: unitFlashStatus (NTCIP 1202) "notFlash": a 173 with it ends a flash rather than starting one
NOT_FLASH = 2
FLASH_STATUS = {1: "other", 3: "automatic", 4: "local manual", 5: "fault monitor", 6: "MMU", 7: "start-up",
                8: "preempt"}
#: at most this many interruptions named in the warnings
NAMED = 5


def interruption_spans_us(log: EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(device, start µs, end µs, why) of each interruption, merged where they overlap, in (device, time)
    order (once per log). The end is the device's next begin green after the start, or its last event."""
    from . import _kernels as K

    return K.memo(log, ("interruption_spans",), lambda: _interruption_spans_us(log))


def _interruption_spans_us(log: EventLog):
    t, dev, code, param = log.time_us, log.device, log.event, log.param
    green = np.flatnonzero(code == 1)  # log order: (device, time, code)
    starts = np.flatnonzero((code == POWER_FAILURE) | ((code == UNIT_FLASH_STATUS) & (param != NOT_FLASH)))
    spans: list[tuple[int, int, int, str]] = []
    for i in starts.tolist():
        what = ("power failure (182)" if code[i] == POWER_FAILURE else
                f"flash (173, unit flash status {int(param[i])}: {FLASH_STATUS.get(int(param[i]), 'unknown')})")
        spans.append((int(dev[i]), int(t[i]), _next_green_us(log, green, i), f"{what} at {_fmt_when(t[i])}"))
    failed = np.flatnonzero(code == POWER_FAILURE)
    for i in np.flatnonzero(code == POWER_RESTORED).tolist():
        d = int(dev[i])
        lo = int(np.searchsorted(dev, d, "left"))
        before = int(np.searchsorted(t[lo:i], t[i], "left")) + lo  # the device's events at earlier instants
        start = int(t[before - 1]) if before > lo else int(t[i])
        # a 182 since the device's last begin green logged the failure: the restore only ends it
        k = int(np.searchsorted(green, i, "left")) - 1
        since = green[k] if k >= 0 and dev[green[k]] == d else lo
        logged = np.any((failed >= since) & (failed < i))
        why = f"power restored (184) at {_fmt_when(t[i])}"
        if not logged:
            why += f" with no power failure logged (the power lost after {_fmt_when(start)})"
        spans.append((d, start, _next_green_us(log, green, i), why))
    # a restart seen only as two begin greens: unless an interruption event between them says when it came,
    # or a data gap between them lost the yellow (`gaps` leaves out what a gap cuts)
    from .gaps import gap_spans_us

    gdev, g0, g1 = gap_spans_us(log)
    known = [(d, s, s) for d, s, _e, _w in spans] + list(zip(gdev.tolist(), g0.tolist(), g1.tolist(), strict=True))
    spans += [r for r in _restarts(log) if not any(d == r[0] and r[1] <= a and b <= r[2] for d, a, b in known)]
    return _merged(spans)


def _next_green_us(log: EventLog, green: np.ndarray, i: int) -> int:
    """The time of the device's first begin green after event `i` (in log order), else of its last event."""
    d = log.device[i]
    k = int(np.searchsorted(green, i, "right"))
    if k < len(green) and log.device[green[k]] == d:
        return int(log.time_us[green[k]])
    hi = int(np.searchsorted(log.device, d, "right"))
    return int(log.time_us[hi - 1])


def _restarts(log: EventLog) -> list[tuple[int, int, int, str]]:
    """A begin green followed by another of its phase with no begin yellow between: (device, first green,
    second green, why); only for phases that log a yellow somewhere (a log without 8s says nothing here)."""
    from . import _kernels as K

    idx, group = K.events_by_stream(log, (1, 8))  # each phase's events, in log (time) order
    if not len(idx):
        return []
    code = log.event[idx]
    yellows = np.unique(group[code == 8])
    pair = np.flatnonzero((group[1:] == group[:-1]) & (code[1:] == 1) & (code[:-1] == 1)
                          & np.isin(group[:-1], yellows))
    out = []
    for p in pair.tolist():
        a, b = idx[p], idx[p + 1]
        out.append((int(log.device[a]), int(log.time_us[a]), int(log.time_us[b]),
                    f"phase {int(log.param[a])} began green (1) at {_fmt_when(log.time_us[a])} and again at "
                    f"{_fmt_when(log.time_us[b])} with no yellow (8) between: a restart the log does not otherwise show"))
    return out


def _merged(spans: list[tuple[int, int, int, str]]):
    """Overlapping (or touching) spans of a device as one, their reasons joined."""
    out: list[list] = []
    for d, s, e, why in sorted(spans, key=lambda x: (x[0], x[1])):
        e = max(e, s)
        if out and out[-1][0] == d and s <= out[-1][2]:
            out[-1][2] = max(out[-1][2], e)
            out[-1][3].append(why)
            continue
        out.append([d, s, e, [why]])
    return (np.array([o[0] for o in out], np.int64), np.array([o[1] for o in out], np.int64),
            np.array([o[2] for o in out], np.int64), ["; ".join(o[3]) for o in out])


def clip_greens(log: EventLog, dev: np.ndarray, start_us: np.ndarray, end_us: np.ndarray):
    """Greens (device, start, end) with the interruptions taken out: a green showing when one starts ends
    there, and none is read inside one (a green that would begin inside starts at its end). (start, end);
    end <= start for a green wholly inside an interruption."""
    idev, i0, i1, _ = interruption_spans_us(log)
    start, end = np.asarray(start_us, np.int64).copy(), np.asarray(end_us, np.int64).copy()
    dev = np.asarray(dev, np.int64)
    for d in np.unique(idev).tolist():
        rows = np.flatnonzero(dev == d)
        if not len(rows):
            continue
        s0, s1 = i0[idev == d], i1[idev == d]
        k = np.searchsorted(s1, start[rows], "right")  # the first interruption ending after the green starts
        inside = (k < len(s0)) & (s0[np.minimum(k, len(s0) - 1)] <= start[rows])
        start[rows] = np.where(inside, s1[np.minimum(k, len(s0) - 1)], start[rows])
        k = np.searchsorted(s1, start[rows], "right")
        later = k < len(s0)
        end[rows] = np.where(later, np.minimum(end[rows], s0[np.minimum(k, len(s0) - 1)]), end[rows])
    return start, end


def interruption_warnings(log: EventLog) -> list[str]:
    """One warning per interruption (the first `NAMED`): the device, when, why, and what it does to the measures."""
    dev, _start, end, why = interruption_spans_us(log)
    green = log.event == 1
    out = []
    for d, e, w in list(zip(dev.tolist(), end.tolist(), why, strict=True))[:NAMED]:
        resumed = np.any(green & (log.device == d) & (log.time_us == e))
        until = (f"it ran its phases again from {_fmt_when(e)} (its next begin green)" if resumed
                 else f"the log ends in it (the device's last event at {_fmt_when(e)})")
        out.append(f"device {log.devices[d]}: controller interrupted: {w}; {until}: no phase is read as green in "
                   "between (a green showing then ends there), and cycles, splits and waits across it are left "
                   "out of the cycle measures; binned tables mark the bins it touches (Complete false)")
    if len(dev) > NAMED:
        out.append(f"{len(dev) - NAMED} more controller interruptions (power failure, flash or restart), "
                   "handled the same way")
    return out
