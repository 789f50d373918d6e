"""Read and write the hi-res event log as ATSPM tools expect it.

CSV with columns `TimeStamp,DeviceId,EventId,Parameter`; naive local
timestamps at 0.1 s resolution (`2025-01-06 07:00:00.0`). Simulation time is
seconds since `start`, the wall-clock moment the run represents.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path

from .types import SignalEvent

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
    """Write events sorted by (time, device, code, parameter); returns the row count."""
    # sort on the very tenth that is written (round() and the formatter disagreed on halves: 0.15 -> 0.1 vs 0.2)
    keyed = sorted((int(round(e.time_s * 10)), e.device_id, e.event_code, e.parameter) for e in events)
    stamps: dict[int, str] = {}  # many events share a tenth: format each once
    rows = []
    for tenths, device, code, parameter in keyed:
        stamp = stamps.get(tenths)
        if stamp is None:
            stamp = stamps[tenths] = _format_tenths(tenths, start)
        rows.append((stamp, device, code, parameter))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return len(rows)


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
        times: dict[str, float] = {}  # many events share a timestamp: parse each once
        line_no = 1
        for row in r:
            if not row:
                continue  # blank lines carry no event (csv.DictReader skips them too)
            line_no += 1
            try:
                stamp, device, code, parameter = (row[k] for k in where)
                time_s = times.get(stamp)
                if time_s is None:
                    time_s = times[stamp] = parse_timestamp(stamp, start)
                yield SignalEvent(time_s, device, int(code), int(parameter))
            except (ValueError, TypeError, IndexError) as exc:
                as_read = dict(zip(header, row, strict=False))
                raise ValueError(f"{path}:{line_no}: bad event row {as_read!r}: {exc}") from None
