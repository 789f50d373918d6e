"""Row tuples of validated records: what the writers write and the validation workers build.

Light on purpose (pydantic models in, tuples out, no SQLAlchemy): a worker
process imports only this, the schemas and the roll-up arithmetic, so it
costs tens of MB, not the whole store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from .schemas import DIRECTIONS, IntersectionRecord

UTC = dt.UTC
_APPROACH_SLOT = {d: 2 * n for n, d in enumerate(DIRECTIONS)}  # (wait, crossed) per approach
_APPROACH_VALUES = 2 * len(DIRECTIONS)
_UNMEASURED_CLASSES = (None,) * 5  # vehicle_counts null: no class was measured (NULL), not none counted (0)


def utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC)


def sqlite_utc_text(moment: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME writes (as `timefmt.sqlite_text`), in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def latest_per_key(chunk: list[IntersectionRecord]) -> list[IntersectionRecord]:
    """Last record wins when a chunk repeats a key (as a replay of the same record would)."""
    latest: dict[tuple, IntersectionRecord] = {}
    for r in chunk:
        latest[(r.simulation_id, r.intersection_id, r.timestamp)] = r
    return list(latest.values()) if len(latest) != len(chunk) else chunk


def record_rows(chunk: list[IntersectionRecord], stamp: Callable[[dt.datetime], object]) -> tuple[list, list]:
    """(record rows, signal rows per record) of validated records, the record rows starting with the
    simulation_id where the table has run_id (`with_run_ids` swaps it) and ending with each approach's
    wait and vehicles crossed (`writers.RECORD_APPROACH_COLUMNS`, None where it has no signal or did not
    measure them; a figure the record says was not measured is None throughout). Plain
    tuples: cheap to pickle, so a validation process can build them (`pipeline.py`). Last record wins
    when a key repeats."""
    records, signals = [], []
    stamps: dict[dt.datetime, object] = {}  # intersections of one interval share their timestamp
    for r in latest_per_key(chunk):
        ts = stamps.get(r.timestamp)
        if ts is None:
            ts = stamps[r.timestamp] = stamp(r.timestamp)
        sig = []
        approaches = [None] * _APPROACH_VALUES
        for s in r.signals:
            v, d, wait, crossed = s["vehicle_counts"], s["direction"], s["avg_wait_time"], s["vehicles_crossed"]
            classes = _UNMEASURED_CLASSES if v is None else (v.get("car", 0), v.get("bus", 0), v.get("truck", 0),
                                                            v.get("bike", 0), v.get("rickshaw", 0))
            sig.append((d, *classes, s["emergency_vehicle_present"], s["signal_status"],
                        s["signal_timer"], crossed, wait, s["green_time_allocated"]))
            slot = _APPROACH_SLOT[d]
            approaches[slot] = wait
            approaches[slot + 1] = crossed
        sig.sort()  # by direction: rows then append to the (record_id, direction) key in order
        signals.append(sig)
        m = r.metrics
        records.append((r.simulation_id, r.intersection_id, ts, m["total_vehicles_passed"],
                        m["avg_wait_time_all_sides"], m["throughput"], m["avg_speed"], m["fuel_saved"],
                        m["co2_saved"], m["emergency_overrides"], *approaches))
    return records, signals
