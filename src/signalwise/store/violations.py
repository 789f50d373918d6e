"""Camera violations in the store: written in batches with their hourly and daily counts, read as trends,
hotspots and summaries, evidence reads logged, old ones purged.

Every insert updates `violation_counts_hourly` and `violation_counts_daily`
in the same transaction (an upsert adding to the count), with `*` rows for
the totals over cameras and over approaches. Trend and hotspot questions read
those: a year of hourly totals is 8,760 rows whatever the number of
violations. Buckets are UTC hours and days; a range is read as whole days
from the daily table and the partial days at its ends from the hourly one.

The store does not know the vision package: a violation arrives as a mapping
(`VIOLATION_FIELDS`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import Engine, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .tables import (
    ALL,
    VIOLATION_KINDS,
    EvidenceAccess,
    ViolationCountsDaily,
    ViolationCountsHourly,
    ViolationRow,
)
from .timefmt import to_utc

#: days kept by `signalwise db purge` (merged with store/retention.py's kinds): the rows, their images, the log
#: of who read images. The counts stay: they hold no vehicle, only numbers.
VIOLATION_DAYS = {"violations": 365, "evidence": 90, "evidence_access": 730}
VIOLATION_FIELDS = ("occurred_at", "camera_id", "device_id", "approach", "kind", "track_id", "speed_mps",
                    "limit_mps", "stop_line", "signal_state", "evidence_path", "track")
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


class ViolationError(ValueError):
    """A violation row that cannot be stored: which one and why."""


def _hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _row(i: int, v: Mapping) -> dict:
    unknown = set(v) - set(VIOLATION_FIELDS)
    if unknown:
        raise ViolationError(f"violation {i}: unknown field(s) {', '.join(sorted(unknown))}")
    kind = v.get("kind")
    if kind not in VIOLATION_KINDS:
        raise ViolationError(f"violation {i}: kind {kind!r} is not one of {', '.join(VIOLATION_KINDS)}")
    at = v.get("occurred_at")
    if not isinstance(at, dt.datetime) or at.tzinfo is None:
        raise ViolationError(f"violation {i}: occurred_at must be a zone-aware datetime")
    for key in ("camera_id", "device_id"):
        if not v.get(key):
            raise ViolationError(f"violation {i}: {key} is empty")
    row = {k: v.get(k) for k in VIOLATION_FIELDS}
    row["occurred_at"] = to_utc(at)
    row["approach"] = row["approach"] or ""
    for key in ("speed_mps", "limit_mps"):
        x = row[key]
        row[key] = None if x is None or x != x else float(x)
    if row["evidence_path"]:
        row["evidence_path"] = str(Path(row["evidence_path"]).resolve())
    return row


def _deltas(rows: list[dict]) -> tuple[Counter, Counter]:
    hourly, daily = Counter(), Counter()
    for r in rows:
        at, cam, app, kind = r["occurred_at"], r["camera_id"], r["approach"], r["kind"]
        for key in ((cam, app), (cam, ALL), (ALL, ALL)):
            hourly[(*key, kind, _hour(at))] += 1
            daily[(*key, kind, _day(at))] += 1
    return hourly, daily


def _upsert(conn, table, deltas: Counter) -> None:
    if not deltas:
        return
    values = [{"camera_id": c, "approach": a, "kind": k, "bucket": b, "count": n} for (c, a, k, b), n in deltas.items()]
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = ins.on_conflict_do_update(index_elements=["camera_id", "approach", "kind", "bucket"],
                                     set_={"count": table.c.count + ins.excluded.count})
    conn.execute(stmt, values)


def insert_violations(engine: Engine, violations: Iterable[Mapping]) -> int:
    """Store a batch (all or nothing) with its counts; returns how many rows."""
    rows = [_row(i, v) for i, v in enumerate(violations)]
    if not rows:
        return 0
    hourly, daily = _deltas(rows)
    with engine.begin() as conn:
        conn.execute(ViolationRow.__table__.insert(), rows)
        _upsert(conn, ViolationCountsHourly.__table__, hourly)
        _upsert(conn, ViolationCountsDaily.__table__, daily)
    return len(rows)


# -- reading ------------------------------------------------------------------------------------------------
def _split(start: dt.datetime | None, end: dt.datetime | None) -> list[tuple[object, dt.datetime | None,
                                                                              dt.datetime | None]]:
    """[start, end) as (table, from, to) pieces: whole days from the daily counts, the rest from the hourly.

    Both ends are taken to whole hours (the counts' resolution): start down, end up.
    """
    hourly, daily = ViolationCountsHourly.__table__, ViolationCountsDaily.__table__
    s = _hour(to_utc(start)) if start is not None else None
    e = to_utc(end) if end is not None else None
    if e is not None and e != _hour(e):
        e = _hour(e) + HOUR
    first_day = None if s is None else (s if s == _day(s) else _day(s) + DAY)
    last_day = None if e is None else _day(e)
    if first_day is not None and last_day is not None and first_day >= last_day:
        return [(hourly, s, e)]
    pieces = [(daily, first_day, last_day)]
    if s is not None and s < first_day:
        pieces.append((hourly, s, first_day))
    if e is not None and last_day < e:
        pieces.append((hourly, last_day, e))
    return pieces


def _where(table, lo, hi, camera_id: str | None, approach: str | None, kind: str | None, per_approach: bool):
    c = table.c
    cond = []
    if lo is not None:
        cond.append(c.bucket >= lo)
    if hi is not None:
        cond.append(c.bucket < hi)
    cond.append(c.camera_id == (camera_id if camera_id is not None else ALL) if not per_approach or camera_id
                else c.camera_id != ALL)
    if per_approach:
        cond.append(c.approach == approach if approach is not None else c.approach != ALL)
    else:
        cond.append(c.approach == (approach if approach is not None else ALL))
    if kind is not None:
        cond.append(c.kind == kind)
    return and_(*cond)


def trends(engine: Engine, bucket: str = "hour", start=None, end=None, camera_id: str | None = None,
           approach: str | None = None, kind: str | None = None) -> list[dict]:
    """Violations per hour or day (UTC) and kind: [{"bucket", "kind", "count"}] in time order."""
    if bucket not in ("hour", "day"):
        raise ValueError("bucket is 'hour' or 'day'")
    if approach is not None and camera_id is None:
        raise ValueError("approach needs camera_id (approaches are named per camera)")
    table = ViolationCountsDaily.__table__ if bucket == "day" else ViolationCountsHourly.__table__
    pieces = [(table, _hour(to_utc(start)) if start else None, to_utc(end) if end else None)]
    if bucket == "day":
        pieces = [(t, lo, hi) for t, lo, hi in _split(start, end)]
    totals: Counter = Counter()
    with engine.connect() as conn:
        for t, lo, hi in pieces:
            key = t.c.bucket if (bucket == "hour" or t is table) else None
            where = _where(t, lo, hi, camera_id, approach, kind, per_approach=False)
            if key is None:  # hourly edge pieces of a daily trend
                for b, k, n in conn.execute(select(t.c.bucket, t.c.kind, t.c.count).where(where)):
                    totals[(_day(_as_utc(b)), k)] += n
                continue
            for b, k, n in conn.execute(select(t.c.bucket, t.c.kind, func.sum(t.c.count)).where(where)
                                        .group_by(t.c.bucket, t.c.kind)):
                totals[(_as_utc(b), k)] += int(n)
    return [{"bucket": b.isoformat(), "kind": k, "count": n} for (b, k), n in sorted(totals.items())]


def _as_utc(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def hotspots(engine: Engine, start=None, end=None, kind: str | None = None, camera_id: str | None = None,
             limit: int = 20) -> list[dict]:
    """The camera-and-approach pairs with most violations in [start, end): [{"camera_id", "approach",
    "red_light", "speeding", "total"}], most first."""
    totals: dict[tuple[str, str], Counter] = {}
    with engine.connect() as conn:
        for t, lo, hi in _split(start, end):
            where = _where(t, lo, hi, camera_id, None, kind, per_approach=True)
            for cam, app, k, n in conn.execute(select(t.c.camera_id, t.c.approach, t.c.kind, func.sum(t.c.count))
                                               .where(where).group_by(t.c.camera_id, t.c.approach, t.c.kind)):
                totals.setdefault((cam, app), Counter())[k] += int(n)
    rows = [{"camera_id": cam, "approach": app, **{k: c.get(k, 0) for k in VIOLATION_KINDS},
             "total": sum(c.values())} for (cam, app), c in totals.items()]
    rows.sort(key=lambda r: (-r["total"], r["camera_id"], r["approach"]))
    return rows[:limit]


def summary(engine: Engine, start=None, end=None, camera_id: str | None = None) -> dict:
    """Totals per kind, the number of cameras with violations, and the first and last violation time."""
    per_kind: Counter = Counter()
    with engine.connect() as conn:
        for t, lo, hi in _split(start, end):
            where = _where(t, lo, hi, camera_id, None, None, per_approach=False)
            for k, n in conn.execute(select(t.c.kind, func.sum(t.c.count)).where(where).group_by(t.c.kind)):
                per_kind[k] += int(n)
        c = ViolationCountsDaily.__table__.c
        cams = conn.execute(select(func.count(func.distinct(c.camera_id))).where(
            c.camera_id != ALL, c.approach == ALL, *([c.camera_id == camera_id] if camera_id else []),
            *([c.bucket >= _day(to_utc(start))] if start else []),
            *([c.bucket < to_utc(end)] if end else []))).scalar_one()
        v = ViolationRow.__table__.c
        cond = [v.camera_id == camera_id] if camera_id else []
        if start is not None:
            cond.append(v.occurred_at >= to_utc(start))
        if end is not None:
            cond.append(v.occurred_at < to_utc(end))
        first, last = conn.execute(select(func.min(v.occurred_at), func.max(v.occurred_at)).where(*cond)).one()
    return {"total": sum(per_kind.values()), **{k: per_kind.get(k, 0) for k in VIOLATION_KINDS},
            "cameras": int(cams), "first": _iso(first), "last": _iso(last)}


def _iso(value) -> str | None:
    return None if value is None else _as_utc(value).isoformat()


def list_violations(engine: Engine, start=None, end=None, camera_id: str | None = None, kind: str | None = None,
                    limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    """(total, page of violations, newest first) without their evidence path: that is the evidence route's."""
    v = ViolationRow.__table__.c
    cond = []
    if camera_id:
        cond.append(v.camera_id == camera_id)
    if kind:
        cond.append(v.kind == kind)
    if start is not None:
        cond.append(v.occurred_at >= to_utc(start))
    if end is not None:
        cond.append(v.occurred_at < to_utc(end))
    cols = [v.id, v.occurred_at, v.camera_id, v.device_id, v.approach, v.kind, v.track_id, v.speed_mps, v.limit_mps,
            v.stop_line, v.signal_state, v.evidence_path]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ViolationRow.__table__).where(*cond)).scalar_one()
        rows = conn.execute(select(*cols).where(*cond).order_by(v.occurred_at.desc(), v.id.desc()).limit(limit)
                            .offset(offset)).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["occurred_at"] = _iso(d["occurred_at"])
        d["has_evidence"] = bool(d.pop("evidence_path"))
        out.append(d)
    return total, out


def evidence_of(engine: Engine, violation_id: int, who: str, key_id: str | None = None,
                client: str | None = None) -> tuple[str, Path | None]:
    """The image of one violation, with the read logged whatever the outcome: ("served", path),
    ("gone", None) when retention removed it or the file is missing, ("unknown", None) for no such violation."""
    v = ViolationRow.__table__.c
    with engine.begin() as conn:
        row = conn.execute(select(v.evidence_path).where(v.id == violation_id)).first()
        if row is None:
            result, path = "unknown", None
        elif not row.evidence_path or not os.path.isfile(row.evidence_path):
            result, path = "gone", None
        else:
            result, path = "served", Path(row.evidence_path)
        conn.execute(EvidenceAccess.__table__.insert().values(
            at=dt.datetime.now(dt.UTC), who=who[:128], key_id=key_id, violation_id=violation_id,
            client=(client or "")[:64] or None, result=result))
    return result, path


def evidence_access_log(engine: Engine, violation_id: int | None = None, limit: int = 100,
                        offset: int = 0) -> tuple[int, list[dict]]:
    a = EvidenceAccess.__table__.c
    cond = [a.violation_id == violation_id] if violation_id is not None else []
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(EvidenceAccess.__table__).where(*cond)).scalar_one()
        rows = conn.execute(select(a.at, a.who, a.key_id, a.violation_id, a.client, a.result).where(*cond)
                            .order_by(a.at.desc(), a.id.desc()).limit(limit).offset(offset)).all()
    return total, [{**dict(r._mapping), "at": _iso(r.at)} for r in rows]


# -- retention ----------------------------------------------------------------------------------------------
def purge_violations(engine: Engine, days: Mapping[str, float], now: dt.datetime | None = None,
                     dry_run: bool = False) -> dict:
    """Evidence images older than `evidence` days are deleted from disk (the row keeps no path); rows older
    than `violations` days go; access-log entries older than `evidence_access` days go. The counts stay."""
    now = now or dt.datetime.now(dt.UTC)
    days = {**VIOLATION_DAYS, **{k: v for k, v in days.items() if k in VIOLATION_DAYS}}
    cut = {k: now - dt.timedelta(days=float(v)) for k, v in days.items()}
    v, a = ViolationRow.__table__, EvidenceAccess.__table__
    old_images = and_(v.c.evidence_path.is_not(None), v.c.occurred_at < cut["evidence"])
    with engine.begin() as conn:
        paths = [p for (p,) in conn.execute(select(v.c.evidence_path).where(old_images))]
        out = {
            "violations": conn.execute(select(func.count()).select_from(v).where(v.c.occurred_at < cut["violations"]))
            .scalar_one(),
            "evidence_images": len(paths),
            "evidence_access": conn.execute(select(func.count()).select_from(a).where(a.c.at < cut["evidence_access"]))
            .scalar_one(),
        }
        if dry_run:
            return out
        conn.execute(update(v).where(old_images).values(evidence_path=None))
        conn.execute(delete(v).where(v.c.occurred_at < cut["violations"]))
        conn.execute(delete(a).where(a.c.at < cut["evidence_access"]))
    for p in paths:  # after the commit: a failed transaction never leaves rows pointing at deleted files
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
    return out
