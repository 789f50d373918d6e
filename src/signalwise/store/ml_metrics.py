"""Performance figures measured elsewhere (`ml_metrics`): delay, queue and throughput per intersection and interval.

Sent through `POST /api/v1/ml/metrics` by whoever measures the corridor (a
field study, a detector analytics system), each interval saying what ran
there (a controller, and the registry version when it was a model), so the
figures can be set against the baseline's (`GET /api/v1/ml/performance/…`).
The same source sending the same interval again replaces its figures.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from .tables import SubmittedMetric

T = SubmittedMetric.__table__
FIGURES = ("delay_s_per_veh", "queue_veh", "throughput_veh_per_h")


@dataclass(frozen=True)
class Interval:
    interval_start: dt.datetime
    interval_s: float
    controller: str
    model_version: str | None
    delay_s_per_veh: float | None
    queue_veh: float | None
    throughput_veh_per_h: float | None


@dataclass(frozen=True)
class StoredInterval(Interval):
    intersection_id: str = ""
    source: str = ""
    submitted_at: dt.datetime | None = None
    submitted_by: str = ""


def put_metrics(engine: Engine, intersection_id: str, source: str, intervals: list[Interval], who: str) -> int:
    """Store (or replace) the intervals of one intersection from one source; returns how many were written.

    An interval given twice counts once, its last figures kept, as when sent again later (PostgreSQL's upsert
    refuses to touch one row twice in one statement)."""
    now = dt.datetime.now(dt.UTC)
    intervals = list({iv.interval_start: iv for iv in intervals}.values())
    rows = []
    for iv in intervals:
        for name in FIGURES:
            value = getattr(iv, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        rows.append({"intersection_id": intersection_id, "source": source, "submitted_at": now,
                     "submitted_by": who[:128], **{k: getattr(iv, k) for k in Interval.__dataclass_fields__}})
    if not rows:
        return 0
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(T)
        replace = {k: stmt.excluded[k] for k in ("interval_s", "controller", "model_version", *FIGURES,
                                                 "submitted_at", "submitted_by")}
        conn.execute(stmt.on_conflict_do_update(index_elements=["intersection_id", "interval_start", "source"],
                                                set_=replace), rows)
    return len(rows)


def get_metrics(engine: Engine, intersection_id: str, start: dt.datetime | None = None,
                end: dt.datetime | None = None, source: str | None = None, limit: int = 1000,
                offset: int = 0) -> tuple[int, list[StoredInterval]]:
    """(total matching, a page of intervals in time order): intervals starting in [start, end)."""
    cond = [T.c.intersection_id == intersection_id]
    if start is not None:
        cond.append(T.c.interval_start >= start)
    if end is not None:
        cond.append(T.c.interval_start < end)
    if source is not None:
        cond.append(T.c.source == source)
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(T).where(*cond)).scalar_one())
        rows = conn.execute(select(T).where(*cond).order_by(T.c.interval_start, T.c.source)
                            .limit(limit).offset(offset)).mappings().all()
    return total, [StoredInterval(**{k: r[k] for k in StoredInterval.__dataclass_fields__}) for r in rows]


def known_intersection(engine: Engine, intersection_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(T.c.id).where(T.c.intersection_id == intersection_id).limit(1)).first() is not None
