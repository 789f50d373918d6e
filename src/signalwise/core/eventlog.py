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
    tenths = int(round(time_s * 10))
    moment = start + dt.timedelta(seconds=tenths // 10)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{tenths % 10}"


def parse_timestamp(text: str, start: dt.datetime = DEFAULT_START) -> float:
    """Naive local timestamp -> simulation seconds since `start`."""
    moment = dt.datetime.fromisoformat(text.strip())
    return round((moment - start).total_seconds(), 1)


def write_events(path: Path, events: Iterable[SignalEvent], start: dt.datetime = DEFAULT_START) -> int:
    """Write events sorted by (time, device, code, parameter); returns the row count."""
    # sort on the very tenth that is written (round() and the formatter disagreed on halves: 0.15 -> 0.1 vs 0.2)
    rows = sorted(events, key=lambda e: (int(round(e.time_s * 10)), e.device_id, e.event_code, e.parameter))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for e in rows:
            w.writerow((format_timestamp(e.time_s, start), e.device_id, e.event_code, e.parameter))
    return len(rows)


def read_events(path: Path, start: dt.datetime = DEFAULT_START) -> Iterator[SignalEvent]:
    """Yield events from a CSV written by `write_events` (or any ATSPM tool)."""
    with open(path, newline="") as fh:
        r = csv.DictReader(fh)
        missing = set(COLUMNS) - set(r.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: event log lacks columns {sorted(missing)}")
        for line_no, row in enumerate(r, start=2):
            try:
                yield SignalEvent(parse_timestamp(row["TimeStamp"], start), row["DeviceId"],
                                  int(row["EventId"]), int(row["Parameter"]))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{line_no}: bad event row {row!r}: {exc}") from None
