"""A daylight-saving fall-back split across two imported files (`signalwise events import`).

Within one file the fall-back is a step back of the clock between two rows, undone as
`inputs._undo_fall_back` describes: the daylight hours move back one hour, so the log reads in standard
time. Split at the step into two files, neither has a step: the first ends at 01:59:58 (daylight
time), the second starts at 01:00:00 (standard time), and stored one after the other the repeated
hour's rows would be de-duplicated against each other, silently. Here each device's new rows are set
beside what the store holds of the same device and tag, and the same rule as within a file decides:

- the file starts where the stored log ends, an hour back (the stored log's last row at a time of day
  when daylight time ends, 3300-3660 s after the file's first row, and nothing stored after it): the
  stored rows from the start of that daylight period (after their latest spring-forward gap, at most
  `DST_PERIOD_MAX_DAYS` back) up to the step are moved back one hour (`store.events.shift_events`);
- the file ends where the stored log starts, an hour on (the file was the daylight part, imported
  second, nothing stored in the hour before the stored log's first row): the file's own rows of that
  period are moved back before they are stored.

As within a file, rows of the repeated hour that are mostly (90 %) exact copies of the stored ones are
an overlapping export, de-duplicated as usual.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from .inputs import (
    DATA_GAP_S,
    DST_FALL_BACK_CLOCK_S,
    DST_OVERLAP_SHARE,
    DST_PERIOD_MAX_DAYS,
    DST_STEP_RANGE_S,
    DST_STEP_S,
    US_PER_S,
    EventLog,
)

HOUR = dt.timedelta(seconds=DST_STEP_S)


def _dt(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))


def _us(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _is_step(before_us: int, after_us: int) -> bool:
    """A clock reading `before_us` followed by `after_us`: a fall-back step, by the in-file rule."""
    lo, hi = DST_STEP_RANGE_S
    tod = (before_us % (86_400 * US_PER_S)) / US_PER_S
    return lo <= (before_us - after_us) / US_PER_S <= hi and DST_FALL_BACK_CLOCK_S[0] <= tod <= DST_FALL_BACK_CLOCK_S[1]


def _mostly_copies(engine, device: str, tag: str, t, code, param, lo_us: int, hi_us: int) -> bool:
    """Whether the new rows in [lo, hi] are mostly exact copies of the stored ones there (an overlapping export)."""
    from signalwise.store.events import query_events

    m = (t >= lo_us) & (t <= hi_us)
    if not m.any():
        return False
    stored = {(_us(r.timestamp), r.event_code, r.parameter)
              for r in query_events(engine, device, _dt(lo_us), _dt(hi_us + 1), simulation_id=tag)}
    copies = sum((x, c, p) in stored for x, c, p in zip(t[m].tolist(), code[m].tolist(), param[m].tolist(),
                                                         strict=True))
    return copies >= DST_OVERLAP_SHARE * int(m.sum())


def _period_start_us(times_us: np.ndarray, step_us: int) -> int:
    """The first time of the daylight period ending at the step: after the latest spring-forward gap of
    `times_us` (sorted, up to the step), no more than `DST_PERIOD_MAX_DAYS` before it."""
    floor = step_us - DST_PERIOD_MAX_DAYS * 86_400 * US_PER_S
    t = times_us[times_us >= floor]
    if len(t) < 2:
        return int(t[0]) if len(t) else step_us
    gap = t[1:] - t[:-1]
    tod = t[:-1] % (86_400 * US_PER_S)
    w_lo, w_hi = (int(x * US_PER_S) for x in DST_FALL_BACK_CLOCK_S)
    spring = np.flatnonzero((gap >= DST_STEP_S * US_PER_S) & (gap <= (DST_STEP_S + DATA_GAP_S) * US_PER_S)
                            & (tod >= w_lo - 300 * US_PER_S) & (tod <= w_hi))
    return int(t[spring[-1] + 1]) if len(spring) else int(t[0])


def continue_fall_back(engine, log: EventLog, tag: str) -> list[str]:
    """Line up each device's new rows with the stored ones across a fall-back split between files: move
    the stored daylight rows back (store) or the file's own (in `log.time_us`, before it is stored).
    Returns one message per device, saying what was moved."""
    from signalwise.store.events import event_time_range, query_events, shift_events

    stepped = {dev for dev, *_ in log.report.clock_steps}  # fall-backs inside the file: already undone
    lo_s, hi_s = DST_STEP_RANGE_S
    span = dt.timedelta(seconds=hi_s)
    out = []
    for d, name in enumerate(log.devices):
        if name in stepped:
            continue
        rows = np.flatnonzero(log.device == d)
        if not len(rows):
            continue
        t, code, param = log.time_us[rows], log.event[rows], log.param[rows]
        first, last = int(t.min()), int(t.max())
        # the file starts in the repeated hour: does the stored log end an hour after its start, at the step?
        _, stored_last = event_time_range(engine, name, tag, _dt(first), _dt(first) + span)
        if stored_last is not None and _is_step(_us(stored_last), first):
            after, _ = event_time_range(engine, name, tag, stored_last + dt.timedelta(microseconds=1),
                                        dt.datetime.max)
            if after is None and not _mostly_copies(engine, name, tag, t, code, param, first, _us(stored_last)):
                floor = stored_last - dt.timedelta(days=DST_PERIOD_MAX_DAYS)
                stored = np.array([_us(r.timestamp) for r in query_events(engine, name, floor, stored_last
                                                                          + dt.timedelta(microseconds=1),
                                                                          simulation_id=tag)], np.int64)
                start = _dt(_period_start_us(np.unique(stored), _us(stored_last)))
                moved = shift_events(engine, name, tag, start, stored_last, -HOUR)
                out.append(f"device {name}: the stored events end at {stored_last} and this file starts at "
                           f"{_dt(first)}, {(_us(stored_last) - first) / US_PER_S:.0f} s earlier: the daylight-"
                           f"saving fall-back, split across two files; the {moved:,} stored events from {start} "
                           f"to {stored_last} were moved back one hour (standard time), as one file's import "
                           "reads them, so the repeated hour is kept twice")
                continue
        # the file ends in the repeated hour: does the stored log start an hour before its end, after the step?
        stored_first, _ = event_time_range(engine, name, tag, _dt(last) - span, _dt(last))
        if stored_first is None or not _is_step(last, _us(stored_first)):
            continue
        before, _ = event_time_range(engine, name, tag, stored_first - HOUR, stored_first
                                     - dt.timedelta(microseconds=1))
        if before is not None or _mostly_copies(engine, name, tag, t, code, param, _us(stored_first), last):
            continue
        start = _period_start_us(np.sort(t), last)
        move = (t >= start) & (t <= last)
        log.time_us[rows[move]] -= DST_STEP_S * US_PER_S
        out.append(f"device {name}: this file ends at {_dt(last)} and the stored events start at {stored_first}, "
                   f"{(last - _us(stored_first)) / US_PER_S:.0f} s earlier: the daylight-saving fall-back, split "
                   f"across two files; the file's {int(move.sum()):,} events from {_dt(start)} on were moved back "
                   "one hour (standard time) before storing, as one file's import reads them")
    return out
