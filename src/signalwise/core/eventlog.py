"""Read and write the hi-res event log as ATSPM tools expect it.

CSV with columns `TimeStamp,DeviceId,EventId,Parameter`; naive local
timestamps at 0.1 s resolution (`2025-01-06 07:00:00.0`). Simulation time is
seconds since `start`, the wall-clock moment the run represents.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import itertools
import logging
import operator
from collections.abc import Iterable, Iterator
from pathlib import Path

from .types import SignalEvent

log = logging.getLogger("signalwise.eventlog")

COLUMNS = ("TimeStamp", "DeviceId", "EventId", "Parameter")
DEFAULT_START = dt.datetime(2025, 1, 6, 0, 0, 0)  # a Monday; naive local time


def format_timestamp(time_s: float, start: dt.datetime = DEFAULT_START) -> str:
    """Simulation seconds -> naive local timestamp with one decimal (0.1 s)."""
    return _format_tenths(int(round(time_s * 10)), start)


def _format_tenths(tenths: int, start: dt.datetime) -> str:
    moment = start + dt.timedelta(seconds=tenths // 10)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{tenths % 10}"


def parse_timestamp(text: str, start: dt.datetime = DEFAULT_START) -> float:
    """Naive local timestamp -> simulation seconds since `start`."""
    moment = dt.datetime.fromisoformat(text.strip())
    return round((moment - start).total_seconds(), 1)


def write_events(path: Path, events: Iterable[SignalEvent], start: dt.datetime = DEFAULT_START) -> int:
    """Write events sorted by (time, device, code, parameter), a 110 before a 104 (`_row_order`); returns
    the row count."""
    return write_event_rows(path, [event_row(e.time_s, e.device_id, e.event_code, e.parameter) for e in events],
                            start)


def event_row(time_s: float, device_id: str, event_code: int, parameter: int) -> tuple[int, str, int, int]:
    """One event as `write_event_rows` takes it: its time in the very tenth of a second that is written.

    (round() and the formatter disagreed on halves: 0.15 -> 0.1 vs 0.2; sorting on the written tenth keeps
    the file in order.)
    """
    return int(round(time_s * 10)), device_id, event_code, parameter


#: within a tenth of a second rows go by code, but a max presence exceeded (110) goes before the call off (104) it
#: ends, as the shield logs them: a reader walking the log in order then finds the call the 110 belongs to
_BEFORE_CALL_OFF = 103.5


def _row_order(row: tuple[int, str, int, int]) -> tuple[int, str, float, int]:
    tenths, device, code, parameter = row
    return tenths, device, _BEFORE_CALL_OFF if code == 110 else code, parameter


def write_event_rows(path: Path, rows: list[tuple[int, str, int, int]], start: dt.datetime = DEFAULT_START) -> int:
    """`write_events` for rows made by `event_row`: a run's tens of thousands of detector events are written
    without building an event object for each only to take it apart again."""
    rows.sort(key=_row_order)
    stamps: dict[int, str] = {}  # many events share a tenth: format each once
    day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
    since_midnight = start.hour * 3600 + start.minute * 60 + start.second
    days: dict[int, str] = {}
    out = []
    for tenths, device, code, parameter in rows:
        stamp = stamps.get(tenths)
        if stamp is None:  # what `_format_tenths` writes, by arithmetic (a datetime per stamp was most of the time)
            day, second = divmod(since_midnight + tenths // 10, 86400)
            date = days.get(day)
            if date is None:
                date = days[day] = f"{day0 + dt.timedelta(days=day):%Y-%m-%d}"
            hour, second = divmod(second, 3600)
            minute, second = divmod(second, 60)
            stamp = stamps[tenths] = f"{date} {hour:02d}:{minute:02d}:{second:02d}.{tenths % 10}"
        out.append((stamp, device, code, parameter))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(out)
    return len(out)


def read_events(path: Path, start: dt.datetime = DEFAULT_START) -> Iterator[SignalEvent]:
    """Yield events from a CSV written by `write_events` (or any ATSPM tool)."""
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        header = next(r, None) or []
        missing = set(COLUMNS) - set(header)
        if missing:
            raise ValueError(f"{path}: event log lacks columns {sorted(missing)}")
        # a name given twice: the last such column, as csv.DictReader reads it
        where = [max(k for k, name in enumerate(header) if name == c) for c in COLUMNS]
        pick = operator.itemgetter(*where)
        times: dict[str, float] = {}  # many events share a timestamp: parse each once
        line_no = 1
        for row in r:
            if not row:
                continue  # blank lines carry no event (csv.DictReader skips them too)
            line_no += 1
            try:
                stamp, device, code, parameter = pick(row)
                time_s = times.get(stamp)
                if time_s is None:
                    time_s = times[stamp] = parse_timestamp(stamp, start)
                yield SignalEvent(time_s, device, int(code), int(parameter))
            except (ValueError, TypeError, IndexError) as exc:
                as_read = dict(zip(header, row, strict=False))
                why = (f"{len(row)} of its {len(header)} columns (the file cut short, or a broken row)"
                       if len(row) < len(header) else exc)
                raise ValueError(f"{path}:{line_no}: bad event row {as_read!r}: {why}") from None


class TimeOrderedEvents:
    """Events handed over out of time order, given back in time order once no earlier one is still expected.

    A live log is appended as the run goes, and its readers (ATSPM tools read the Indiana log in time order)
    expect time order; but a detector feed's event can arrive late (network, a broker's queue) or up to a few
    seconds ahead of the run's clock, after the run logged later events. `release` holds every event until the
    run's clock is `hold_s` past it (the lateness a feed's data may have and still drive decisions, the shield's
    `max_observation_age_s`), then gives it back, ordered by time (the tenth of a second written; events of
    one tenth in the order they came). One arriving later than that is given back at once, behind later
    events (`out_of_order` counts them; the first is logged). `hold_s` None holds nothing: what is held comes
    back in time order with the events handed over (the log is closing), or with nothing held, they come
    back as they were handed over.
    """

    def __init__(self) -> None:
        self._held: list[tuple[int, int, SignalEvent]] = []  # a heap of (tenth, arrival, event)
        self._arrival = itertools.count()
        self._last_tenth: int | None = None
        self.out_of_order = 0

    def __len__(self) -> int:
        return len(self._held)

    def release(self, events: Iterable[SignalEvent], now_s: float, hold_s: float | None) -> list[SignalEvent]:
        """The events (these and those held) at least `hold_s` older than `now_s` (all with `hold_s` None, when
        nothing is held), in time order; the rest stay held."""
        if hold_s is None and not self._held:
            return list(events)
        for e in events:
            heapq.heappush(self._held, (int(round(e.time_s * 10)), next(self._arrival), e))
        until = None if hold_s is None else int(round((now_s - hold_s) * 10))
        out = []
        while self._held and (until is None or self._held[0][0] <= until):
            tenth, _, e = heapq.heappop(self._held)
            if self._last_tenth is not None and tenth < self._last_tenth:
                self.out_of_order += 1
                if self.out_of_order == 1:
                    log.warning("event %s at %.1f s arrived more than %s s late: logged after later events "
                            "(said once; `out_of_order` counts them)", e.event_code, e.time_s, hold_s)
            else:
                self._last_tenth = tenth
            out.append(e)
        return out
