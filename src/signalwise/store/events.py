"""The hi-res controller event log in the database.

Rows are (timestamp naive local, device id, event code, parameter), the
Indiana enumeration every ATSPM tool reads, optionally tagged with the
simulation run that produced them; the database stamps each with when it
was stored (`stored_at`, UTC), which retention dates an imported log by: its
own clock may be a simulated one. Exact duplicate rows are ignored (the
first stored keeps its `stored_at`), so importing the same log twice is
harmless.

Bulk paths go around the ORM on purpose: COPY into a temporary table on
PostgreSQL and a plain DB-API `executemany` on SQLite are an order of
magnitude faster than row-by-row inserts, and a day of one controller's log
is easily half a million rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import Engine, String, func, literal, select, union_all

from ..core.names import MAX_INTERSECTION_ID_CHARS
from .tables import HiresEvent
from .timefmt import sqlite_text

#: rows sent to the database per round trip
CHUNK_ROWS = 50_000

#: the parameter column's range (a 32-bit integer): checked here, as PostgreSQL would refuse a row outside
#: it mid-COPY where SQLite would store it
PARAMETER_MIN, PARAMETER_MAX = -(2**31), 2**31 - 1


class EventRow(NamedTuple):
    timestamp: dt.datetime
    device_id: str
    event_code: int
    parameter: int


def _checked(event: Sequence, position: int) -> tuple[dt.datetime, str, int, int]:
    try:
        timestamp, device_id, code, parameter = event
    except (TypeError, ValueError):
        raise ValueError(f"event {position}: expected (timestamp, device_id, event_code, parameter), "
                         f"got {event!r}") from None
    if not isinstance(timestamp, dt.datetime):
        raise ValueError(f"event {position}: timestamp {timestamp!r} is not a datetime")
    if timestamp.tzinfo is not None:
        raise ValueError(f"event {position}: timestamp {timestamp.isoformat()} has a time zone; "
                         "hi-res events are naive local time")
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 32767:
        raise ValueError(f"event {position}: event_code {code!r} is not an integer in 0..32767")
    if (not isinstance(parameter, int) or isinstance(parameter, bool)
            or not PARAMETER_MIN <= parameter <= PARAMETER_MAX):
        raise ValueError(f"event {position}: parameter {parameter!r} is not an integer in "
                         f"{PARAMETER_MIN}..{PARAMETER_MAX}")
    device = str(device_id)
    if not device or len(device) > MAX_INTERSECTION_ID_CHARS or "\x00" in device:  # PostgreSQL cannot hold NUL
        raise ValueError(f"event {position}: device_id {device_id[:20]!r}... must be 1..{MAX_INTERSECTION_ID_CHARS} "
                         "characters, none NUL")
    return timestamp, device, code, parameter


def bulk_insert_events(engine: Engine, events: Iterable[Sequence], simulation_id: str | None = None,
                       *, run_id: str | None = None) -> int:
    """Insert hi-res events; returns how many new rows were stored.

    `events` yields `(timestamp, device_id, event_code, parameter)` with naive
    local timestamps (a `SignalEvent` converted by the caller). Rows equal to
    a stored row are skipped. All-or-nothing: one bad row and nothing is
    written (ValueError naming the row).
    """
    tag = simulation_id if simulation_id is not None else (run_id or "")
    if len(tag) > 128 or "\x00" in tag:  # PostgreSQL would refuse it mid-COPY where SQLite would store it
        raise ValueError(f"simulation_id {tag[:20]!r}... must be at most 128 characters, none NUL")
    inserted = 0
    with engine.begin() as conn:
        iterator = iter(events)
        position = 0
        while True:
            chunk = []
            for event in itertools.islice(iterator, CHUNK_ROWS):
                chunk.append(_checked(event, position))
                position += 1
            if not chunk:
                break
            if conn.dialect.name == "postgresql":
                inserted += _copy_postgres(conn, chunk, tag)
            else:
                inserted += _insert_generic(conn, chunk, tag)
    return inserted


def _insert_generic(conn, chunk, tag: str) -> int:  # noqa: ANN001
    raw = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite":
        rows = [(d, sqlite_text(t), c, p, tag) for t, d, c, p in chunk]
        before = raw.total_changes
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO hires_events (device_id, timestamp, event_code, parameter, simulation_id) "
            "VALUES (?, ?, ?, ?, ?)", rows)
        return raw.total_changes - before
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {conn.dialect.name}")


def _copy_postgres(conn, chunk, tag: str) -> int:  # noqa: ANN001
    cur = conn.connection.dbapi_connection.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS _hires_events_in "
                "(device_id text, timestamp timestamp, event_code smallint, parameter integer, "
                "simulation_id text) ON COMMIT DELETE ROWS")
    cur.execute("TRUNCATE _hires_events_in")
    with cur.copy("COPY _hires_events_in (device_id, timestamp, event_code, parameter, simulation_id) "
                  "FROM STDIN") as copy:
        for t, d, c, p in chunk:
            copy.write_row((d, t, c, p, tag))
    cur.execute("INSERT INTO hires_events (device_id, timestamp, event_code, parameter, simulation_id) "
                "SELECT DISTINCT device_id, timestamp, event_code, parameter, simulation_id "
                "FROM _hires_events_in ON CONFLICT DO NOTHING")
    count = cur.rowcount
    cur.close()
    return count


def query_events(engine: Engine, device_id: str | Sequence[str] | None = None,
                 start: dt.datetime | None = None, end: dt.datetime | None = None,
                 codes: Iterable[int] | None = None, simulation_id: str | None = None) -> list[EventRow]:
    """Events sorted by (timestamp, device, code, parameter); `start` inclusive, `end` exclusive.

    `device_id` is one id or several; `codes` keeps only those event codes.
    Duplicates across simulation tags are reported once per tag.
    """
    t = HiresEvent.__table__
    q = select(t.c.timestamp, t.c.device_id, t.c.event_code, t.c.parameter)
    if device_id is not None:
        ids = [device_id] if isinstance(device_id, str) else list(device_id)
        q = q.where(t.c.device_id.in_(ids))
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is not None:
            raise ValueError(f"{name}={moment.isoformat()} has a time zone; hi-res events are naive local time")
    if start is not None:
        q = q.where(t.c.timestamp >= start)
    if end is not None:
        q = q.where(t.c.timestamp < end)
    if codes is not None:
        q = q.where(t.c.event_code.in_([int(c) for c in codes]))
    if simulation_id is not None:
        q = q.where(t.c.simulation_id == simulation_id)
    q = q.order_by(t.c.timestamp, t.c.device_id, t.c.event_code, t.c.parameter)
    with engine.connect() as conn:
        return [EventRow(*row) for row in conn.execute(q)]


#: devices per query of `last_parameters`: SQLite allows 500 terms in a compound SELECT
LAST_PARAMETER_DEVICES = 500


def last_parameters(engine: Engine, device_ids: Sequence[str], code: int, before: dt.datetime,
                    simulation_id: str = "") -> dict[str, int]:
    """Per device: the parameter of its last event `code` before `before` (of several at that instant,
    the highest); a device with none is left out.

    Per device, one seek down the primary key (device, timestamp, ...) from `before` back to the last such
    event (`ORDER BY timestamp DESC LIMIT 1`; a second sort key would make SQLite sort the device's whole
    history), then the highest parameter at that instant; all devices in one query, no rows but the answer
    sent back. The seek walks back through the device's other events to that last one: one without any
    such event walks its history before `before` (in the database; an index led by the event code would
    make it one step).
    """
    if before.tzinfo is not None:
        raise ValueError(f"before={before.isoformat()} has a time zone; hi-res events are naive local time")
    t = HiresEvent.__table__
    ids = list(dict.fromkeys(device_ids))
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for k in range(0, len(ids), LAST_PARAMETER_DEVICES):
            per_device = []
            for d in ids[k:k + LAST_PARAMETER_DEVICES]:
                mine = (t.c.device_id == d, t.c.event_code == code, t.c.simulation_id == simulation_id)
                latest = (select(t.c.timestamp).where(*mine, t.c.timestamp < before)
                          .order_by(t.c.timestamp.desc()).limit(1).scalar_subquery())
                per_device.append(select(literal(d, String).label("device_id"), func.max(t.c.parameter))
                                  .where(*mine, t.c.timestamp == latest))
            q = union_all(*per_device) if len(per_device) > 1 else per_device[0]
            out.update((str(d), int(p)) for d, p in conn.execute(q) if p is not None)
    return out


def runs_with_events(engine: Engine, device_id: str | None = None, start: dt.datetime | None = None,
                     end: dt.datetime | None = None) -> list[str]:
    """The simulation ids ('' = imported logs) that have events for `device_id` (any) in [start, end).

    Every simulated run is stamped on the same day, so a `DISTINCT` over the device's events in the window reads
    the events of every stored run. Instead: the stored simulation ids, one seek each down
    `ix_hires_events_run_device_time` (a recursive "skip scan": the next id after the last one), and for each a
    probe of that index for one event of the device in the window: a few index reads per stored run, whatever
    the number of events (migration 0024)."""
    t = HiresEvent.__table__
    later = t.alias("later")
    first = select(func.min(t.c.simulation_id).label("sim"))
    sims = first.cte("sims", recursive=True)
    following = (select(later.c.simulation_id).where(later.c.simulation_id > sims.c.sim)
                 .order_by(later.c.simulation_id).limit(1).scalar_subquery())
    sims = sims.union_all(select(following).where(sims.c.sim.is_not(None)))
    e = t.alias("e")
    probe = [e.c.simulation_id == sims.c.sim]
    if device_id is not None:
        probe.append(e.c.device_id == device_id)
    if start is not None:
        probe.append(e.c.timestamp >= start)
    if end is not None:
        probe.append(e.c.timestamp < end)
    q = select(sims.c.sim).where(sims.c.sim.is_not(None), select(e.c.simulation_id).where(*probe).exists())
    with engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(q))


def count_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(HiresEvent.__table__)).scalar_one())


def event_time_range(engine: Engine, device_id: str, simulation_id: str, start: dt.datetime,
                     end: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first and last stored event time of one device and tag within [start, end] (None, None: none)."""
    t = HiresEvent.__table__
    q = select(func.min(t.c.timestamp), func.max(t.c.timestamp)).where(
        t.c.device_id == device_id, t.c.simulation_id == simulation_id, t.c.timestamp >= start,
        t.c.timestamp <= end)
    with engine.connect() as conn:
        lo, hi = conn.execute(q).one()
    return _as_datetime(lo), _as_datetime(hi)


def _as_datetime(value) -> dt.datetime | None:  # noqa: ANN001
    """An aggregate's timestamp: SQLite returns MIN/MAX of a DATETIME column as its text."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def shift_events(engine: Engine, device_id: str, simulation_id: str, start: dt.datetime, end: dt.datetime,
                 by: dt.timedelta) -> int:
    """Move one device's stored events (of one tag) in [start, end] by `by`, in one transaction; returns
    how many were moved. Rows are taken out and written back moved (an UPDATE in place would collide
    with rows of the same range not yet moved); a moved row equal to one already stored outside the
    range is kept once. Used to put a daylight-saving fall-back's daylight hours on standard time when
    its second hour comes in another file (`signalwise events import`)."""
    t = HiresEvent.__table__
    where = (t.c.device_id == device_id, t.c.simulation_id == simulation_id, t.c.timestamp >= start,
             t.c.timestamp <= end)
    with engine.begin() as conn:
        rows = [(ts + by, d, c, p) for ts, d, c, p in conn.execute(
            select(t.c.timestamp, t.c.device_id, t.c.event_code, t.c.parameter).where(*where))]
        conn.execute(t.delete().where(*where))
        for k in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[k:k + CHUNK_ROWS]
            if conn.dialect.name == "postgresql":
                _copy_postgres(conn, chunk, simulation_id)
            else:
                _insert_generic(conn, chunk, simulation_id)
    return len(rows)


def devices_with_events(engine: Engine, simulation_id: str | None = None, limit: int = 20) -> list[str]:
    """Up to `limit` device ids (sorted) with stored events, of one run ('' = imported logs) or any."""
    t = HiresEvent.__table__
    q = select(t.c.device_id).distinct()
    if simulation_id is not None:
        q = q.where(t.c.simulation_id == simulation_id)
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(q.order_by(t.c.device_id).limit(limit))]
