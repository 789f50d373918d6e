"""Camera violations in the store: written in batches with their hourly and daily counts, read as trends,
hotspots and summaries, evidence reads logged, old ones purged.

Every insert updates `violation_counts_hourly` and `violation_counts_daily`
in the same transaction (an upsert adding to the count), with `*` rows for
the totals over cameras and over approaches. Trend and hotspot questions read
those: a year of hourly totals is 8,760 rows whatever the number of
violations. Buckets are UTC hours and days; a range is read as whole days
from the daily table and the partial days at its ends from the hourly one.

A violation is stored once. Its identity is (`source`, `camera_id`, `kind`,
`track_id`, `frame`) (`tables.VIOLATION_IDENTITY`, a unique index): the
same video processed again gives the same rows, and those already stored are
not stored again, nor counted again (`insert_violations` returns how many it
stored). A row without a `source` has no identity and is always stored.

Rows stored before revision 0018 have no `source`, so the index cannot see them: a row with a source that a
row with none matches on camera, kind, track, approach, stop line (where both name one) and instant (within
`UNSOURCED_LAG_MS`: an earlier release stamped a red light up to 6 s later, a speeding call up to 6 s either
side) is taken as that violation, stored already, and not stored again; with
`replace_unsourced` the old row goes instead (off its counts) and the new one is stored (`insert_violations`).
Each old row stands for one new row at most, the nearest.

The evidence image's SHA-256 is taken when its row is stored (unless the
caller gives it); `evidence_of` serves the image only while its bytes still
have that digest.

A violation may say what it was judged with (`judged_with`, revision 0019):
the camera file and signal log as `{path, sha256}` (no signal log: null), the
`signalwise_version`, and `calibration_suspect`, the reasons the run's own
checks gave for a calibration it was judged with anyway (`[]` when they
passed). Checked for that shape when stored; rows stored before 0019 hold NULL.

The store does not know the vision package: a violation arrives as a mapping
(`VIOLATION_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import Engine, String, and_, bindparam, delete, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite

from .tables import (
    ALL,
    VIOLATION_IDENTITY,
    VIOLATION_KINDS,
    EvidenceAccess,
    ViolationCountsDaily,
    ViolationCountsHourly,
    ViolationRow,
)
from .timefmt import days_before, sqlite_text, to_utc, utc_text

#: days kept by `signalwise db purge` (merged with store/retention.py's kinds): the rows, their images, the log
#: of who read images. The counts stay: they hold no vehicle, only numbers.
VIOLATION_DAYS = {"violations": 365, "evidence": 90, "evidence_access": 730}
VIOLATION_FIELDS = ("occurred_at", "camera_id", "device_id", "approach", "kind", "track_id", "speed_mps",
                    "limit_mps", "stop_line", "signal_state", "evidence_path", "track", "source", "source_name",
                    "frame", "video_s", "signal_log_s", "red_for_s", "time_assumed", "evidence_sha256",
                    "judged_with")
#: the keys of a violation's `judged_with` (revision 0019), all of them there when it is given
JUDGED_WITH_KEYS = ("camera_file", "signals_file", "signalwise_version", "calibration_suspect")
#: the fields a record may leave NaN for "not known"
_FLOATS = ("speed_mps", "limit_mps", "video_s", "signal_log_s", "red_for_s")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: what the columns take (tables.py): a longer source is refused (it is an identity), a longer name cut
SOURCE_CHARS, SOURCE_NAME_CHARS = 128, 256
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
_MS, _EPOCH = dt.timedelta(milliseconds=1), dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
    for key in _FLOATS:
        x = row[key]
        row[key] = None if x is None or x != x else float(x)
    _provenance(i, row)
    if row["evidence_path"]:
        row["evidence_path"] = str(Path(row["evidence_path"]).resolve())
        if row["evidence_sha256"] is None:
            row["evidence_sha256"] = file_sha256(row["evidence_path"])
    return row


def _provenance(i: int, row: dict) -> None:
    """Where the violation came from, checked: a source is an identity (never cut), a name is cut to fit."""
    source = row["source"]
    if source is not None and not (isinstance(source, str) and 0 < len(source) <= SOURCE_CHARS):
        raise ViolationError(f"violation {i}: source must be text of 1-{SOURCE_CHARS} characters")
    if row["source_name"] is not None:
        row["source_name"] = str(row["source_name"])[:SOURCE_NAME_CHARS]
    if row["frame"] is not None:
        row["frame"] = int(row["frame"])
    if row["time_assumed"] is not None:
        row["time_assumed"] = bool(row["time_assumed"])
    digest = row["evidence_sha256"]
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise ViolationError(f"violation {i}: evidence_sha256 must be 64 lower-case hex digits")
    if row["judged_with"] is not None:
        row["judged_with"] = _judged_with(i, row["judged_with"])


def _judged_with(i: int, value) -> dict:
    """A violation's `judged_with`, checked for its shape and copied (`JUDGED_WITH_KEYS`)."""
    why = None
    if not isinstance(value, Mapping) or set(value) != set(JUDGED_WITH_KEYS):
        why = f"a mapping of exactly {', '.join(JUDGED_WITH_KEYS)}"
    elif not _file_identity(value["camera_file"]):
        why = "camera_file must be {path, sha256} (64 lower-case hex digits)"
    elif value["signals_file"] is not None and not _file_identity(value["signals_file"]):
        why = "signals_file must be {path, sha256} (64 lower-case hex digits) or null"
    elif not (isinstance(value["signalwise_version"], str) and value["signalwise_version"]):
        why = "signalwise_version must be non-empty text"
    elif not (isinstance(value["calibration_suspect"], list | tuple)
              and all(isinstance(r, str) for r in value["calibration_suspect"])):
        why = "calibration_suspect must be a list of reasons (text), [] when the checks passed"
    if why:
        raise ViolationError(f"violation {i}: judged_with: {why}")
    files = {k: None if value[k] is None else {"path": str(value[k]["path"]), "sha256": value[k]["sha256"]}
             for k in ("camera_file", "signals_file")}
    return {**files, "signalwise_version": value["signalwise_version"],
            "calibration_suspect": list(value["calibration_suspect"])}


def _file_identity(value) -> bool:
    return (isinstance(value, Mapping) and set(value) == {"path", "sha256"} and isinstance(value["path"], str)
            and bool(value["path"]) and isinstance(value["sha256"], str) and bool(_SHA256.fullmatch(value["sha256"])))


def file_sha256(path: str | os.PathLike) -> str | None:
    """The SHA-256 of a file's bytes (hex), None when there is no such file."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _deltas(rows: list[dict]) -> tuple[Counter, Counter]:
    """Count increments per (camera, approach, kind, bucket), with the `*` totals; each row's hour and day
    are cut once (this runs for every violation written)."""
    hourly, daily = Counter(), Counter()
    for r in rows:
        at, cam, app, kind = r["occurred_at"], r["camera_id"], r["approach"], r["kind"]
        hour = at.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        hourly[(cam, app, kind, hour)] += 1
        hourly[(cam, ALL, kind, hour)] += 1
        hourly[(ALL, ALL, kind, hour)] += 1
        daily[(cam, app, kind, day)] += 1
        daily[(cam, ALL, kind, day)] += 1
        daily[(ALL, ALL, kind, day)] += 1
    return hourly, daily


def _upsert(conn, table, deltas: Counter) -> None:
    if not deltas:
        return
    values = [{"camera_id": c, "approach": a, "kind": k, "bucket": b, "count": n} for (c, a, k, b), n in deltas.items()]
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = ins.on_conflict_do_update(index_elements=["camera_id", "approach", "kind", "bucket"],
                                     set_={"count": table.c.count + ins.excluded.count})
    conn.execute(stmt, values)


_COLUMNS = ", ".join(VIOLATION_FIELDS)
#: how a value is written by the SQLite fast path (SQLAlchemy's DATETIME text, JSON text); the rest as given
_SQLITE_FORM = {"occurred_at": sqlite_text, "track": json.dumps,
               "judged_with": lambda x: None if x is None else json.dumps(x)}  # None: SQL NULL (tables.py)


def _identity(row: Mapping) -> tuple:
    return tuple(row[k] for k in VIOLATION_IDENTITY)


def _once(rows: list[dict]) -> list[dict]:
    """The batch with a repeated identity kept once (a row with no source has none: each is kept)."""
    seen, out = set(), []
    for r in rows:
        if r["source"] is not None:
            key = _identity(r)
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _sqlite_write_lock(conn) -> None:
    """Take SQLite's write lock now, so what `_not_stored` reads stays true until the commit (another writer
    storing the same source in between would break the unique index and fail the whole batch)."""
    dbapi = conn.connection.dbapi_connection
    if not dbapi.in_transaction:
        dbapi.cursor().execute("BEGIN IMMEDIATE")  # waited for up to the busy timeout


def _not_stored(conn, rows: list[dict]) -> list[dict]:
    """The rows whose identity is not in the store yet, looked up by source, camera and track."""
    tracks: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        if r["source"] is not None:
            tracks.setdefault((r["source"], r["camera_id"]), set()).add(r["track_id"])
    if not tracks:
        return rows
    c = ViolationRow.__table__.c
    stored = set()
    for (source, camera), ids in tracks.items():
        ids = sorted(ids)
        for k in range(0, len(ids), 500):  # under any database's limit on bound values
            stored.update(tuple(x) for x in conn.execute(
                select(*(c[name] for name in VIOLATION_IDENTITY))
                .where(c.source == source, c.camera_id == camera, c.track_id.in_(ids[k:k + 500]))))
    return [r for r in rows if r["source"] is None or _identity(r) not in stored]


def _insert_sqlite(conn, rows: list[dict], hourly: Counter, daily: Counter) -> None:
    """The batch through the DB-API's executemany with values already in their stored form (SQLAlchemy's
    DATETIME text, JSON text): SQLAlchemy's per-value type processing was most of the time of a write."""
    forms = [_SQLITE_FORM.get(name) for name in VIOLATION_FIELDS]
    conn.exec_driver_sql(
        f"INSERT INTO violations ({_COLUMNS}) VALUES ({', '.join('?' * len(VIOLATION_FIELDS))})",
        [tuple(r[name] if form is None else form(r[name]) for name, form in zip(VIOLATION_FIELDS, forms, strict=True))
         for r in rows])
    for table, deltas in (("violation_counts_hourly", hourly), ("violation_counts_daily", daily)):
        conn.exec_driver_sql(
            f"INSERT INTO {table} (camera_id, approach, kind, bucket, count) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (camera_id, approach, kind, bucket) DO UPDATE SET count = count + excluded.count",
            [(c, a, k, sqlite_text(b), n) for (c, a, k, b), n in deltas.items()])


def _insert_new(conn, rows: list[dict]) -> list[dict]:
    """PostgreSQL: the batch with those already stored skipped by the unique index (ON CONFLICT DO NOTHING);
    the rows it stored, as it gives them back, for their counts."""
    table = ViolationRow.__table__
    stmt = (postgresql.insert(table).on_conflict_do_nothing(index_elements=list(VIOLATION_IDENTITY))
            .returning(table.c.occurred_at, table.c.camera_id, table.c.approach, table.c.kind))
    return [dict(r._mapping) for r in conn.execute(stmt, rows)]


@dataclasses.dataclass(frozen=True)
class Stored:
    """What storing a batch did: rows stored; of those not stored, how many a row with no source (stored before
    revision 0018) held already; rows with no source removed for this batch's (`replace_unsourced`)."""

    stored: int
    held_unsourced: int = 0
    replaced_unsourced: int = 0


def insert_violations(engine: Engine, violations: Iterable[Mapping], *, replace_unsourced: bool = False) -> int:
    """Store a batch (all or nothing) with its counts; returns how many rows it stored: a violation already
    stored (same identity, `VIOLATION_IDENTITY`, or a row with no source at its camera, kind, track, approach,
    stop line and instant) is neither stored nor counted again; with `replace_unsourced` such a row with no source
    is removed, off its counts, and the new one stored."""
    return store_violations(engine, violations, replace_unsourced=replace_unsourced).stored


def store_violations(engine: Engine, violations: Iterable[Mapping], *, replace_unsourced: bool = False) -> Stored:
    """`insert_violations`, saying how many rows with no source it met (`Stored`)."""
    rows = _once([_row(i, v) for i, v in enumerate(violations)])
    if not rows:
        return Stored(0)
    held = replaced = 0
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            _sqlite_write_lock(conn)
        twins = _unsourced_twins(conn, rows)
        if twins and replace_unsourced:
            replaced = _delete_counted(conn, sorted(twins.values()))
        elif twins:
            held, rows = len(twins), [r for k, r in enumerate(rows) if k not in twins]
        if conn.dialect.name == "sqlite":
            rows = _not_stored(conn, rows)
            if rows:
                _insert_sqlite(conn, rows, *_deltas(rows))
        elif rows:
            rows = _insert_new(conn, rows)
            hourly, daily = _deltas(rows)
            _upsert(conn, ViolationCountsHourly.__table__, hourly)
            _upsert(conn, ViolationCountsDaily.__table__, daily)
    if rows or replaced:
        from .ingest import notify_written

        notify_written()  # a served app's cached summaries, hotspots and trends would miss these rows for its TTL
    return Stored(len(rows), held, replaced)


def _ms(at) -> int:
    """An instant in whole milliseconds since the epoch (cut, not rounded)."""
    return (_as_utc(at) - _EPOCH) // _MS


#: how much later than a new row's instant a row stored with no source may be and still be that violation, ms
#: (earliest, latest): a red light is timed by the vehicle's front (`vision/redlight.py`), where a release before
#: schema 0018 timed it by the track's anchor, which reaches the line after the front (a vehicle length later:
#: 0.2-0.3 s at 13 m/s in tests/vision/test_violation_upgrade.py, 6 s for a 12 m bus at 2 m/s); a speeding call
#: comes at the end of the first second of positions that measures it over (`vision/violations.py`), where such a
#: release called once 1 s of per-frame speeds was over after a 1.5 s window: mostly later (0.3 s in that test),
#: but earlier for a vehicle whose measurement needs more than a second to clear the threshold. One call per track
#: and kind, so the track, camera and approach name it; the window only keeps two videos' calls apart.
UNSOURCED_LAG_MS = {"speeding": (-6000, 6000), "red_light": (0, 6000)}


def _unsourced_twins(conn, rows: list[dict]) -> dict[int, int]:
    """The rows of the batch (by position) that rows stored with no source hold already, with the id of the row
    that holds each: the same camera, kind, track and approach, the same stop line where both name one, and the
    same instant within `UNSOURCED_LAG_MS` of the kind. One old row holds one new row
    at most, the nearest (`_nearest_pairs`): a track's calls at two approaches are two violations. Looked up per
    camera over the batch's span of instants (the camera-and-instant index), so a store with none answers at once."""
    wanted: dict[tuple, list[int]] = defaultdict(list)  # (camera, kind, track, approach) -> positions
    spans: dict[str, list[dt.datetime]] = defaultdict(list)
    for k, r in enumerate(rows):
        if r["source"] is not None:
            wanted[(r["camera_id"], r["kind"], r["track_id"], r["approach"])].append(k)
            spans[r["camera_id"]].append(r["occurred_at"])
    c = ViolationRow.__table__.c
    early = dt.timedelta(milliseconds=-min(lo for lo, _hi in UNSOURCED_LAG_MS.values())) + _MS
    late = dt.timedelta(milliseconds=max(hi for _lo, hi in UNSOURCED_LAG_MS.values())) + _MS
    stored: dict[tuple, list] = defaultdict(list)  # the same key -> the rows with no source there
    for camera, instants in spans.items():
        for row in conn.execute(select(c.id, c.kind, c.track_id, c.approach, c.stop_line, c.occurred_at).where(
                c.camera_id == camera, c.occurred_at >= min(instants) - early, c.occurred_at <= max(instants) + late,
                c.source.is_(None)).order_by(c.id)):
            key = (camera, row.kind, row.track_id, row.approach or "")
            if key in wanted:
                stored[key].append(row)
    twins: dict[int, int] = {}
    for key, old in stored.items():
        twins.update(_nearest_pairs([(k, rows[k]) for k in wanted[key]], old))
    return twins


def _lag_ms(new: dict, old) -> int | None:
    """How much later than `new` the row with no source `old` is, ms; None when it cannot be that violation (too
    early, too late for its kind, or at another stop line)."""
    if new["stop_line"] is not None and old.stop_line is not None and new["stop_line"] != old.stop_line:
        return None
    lag_ms = _ms(old.occurred_at) - _ms(new["occurred_at"])
    earliest, latest = UNSOURCED_LAG_MS.get(old.kind, (0, 0))
    return lag_ms if earliest <= lag_ms <= latest else None


def _nearest_pairs(new: list[tuple[int, dict]], old: list) -> dict[int, int]:
    """{position: old row's id}, one to one: as many pairs as can be made, and of those the pairing with the
    least total lag, early or late (scipy's assignment solver: a pair that cannot be costs more than all that can
    together)."""
    lags = [[None if (x := _lag_ms(r, o)) is None else abs(x) for o in old] for _, r in new]
    if not any(x is not None for row in lags for x in row):
        return {}
    from scipy.optimize import linear_sum_assignment

    never = 1 + sum(x for row in lags for x in row if x is not None)
    picked = linear_sum_assignment([[never if x is None else x for x in row] for row in lags])
    return {new[i][0]: old[j].id for i, j in zip(*picked, strict=True) if lags[i][j] is not None}


def stored_from(engine: Engine, camera_id: str, source: str) -> int:
    """How many violations of `camera_id` the store holds from `source` (a video run asks before it runs). Rows
    stored with no source are found as the run's violations come (`insert_violations`), not here."""
    c = ViolationRow.__table__.c
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(c.source == source, c.camera_id == camera_id)).scalar_one()


def evidence_paths_from(engine: Engine, camera_id: str, source: str) -> list[str]:
    """The evidence image paths of the violations of `camera_id` from `source` (a run that replaces them finds
    the run directories, and so the camera files, they were judged with)."""
    c = ViolationRow.__table__.c
    with engine.connect() as conn:
        return [p for p in conn.execute(select(c.evidence_path).where(
            c.source == source, c.camera_id == camera_id, c.evidence_path.is_not(None))).scalars() if p]


def remove_source(engine: Engine, camera_id: str, source: str) -> int:
    """Remove the violations of `camera_id` from `source`, and take them off their hourly and daily counts, in
    one transaction (a video stored again in their place). Their evidence images and access log stay."""
    c = ViolationRow.__table__.c
    with engine.begin() as conn:
        ids = conn.execute(select(c.id).where(c.source == source, c.camera_id == camera_id)).scalars().all()
        removed = _delete_counted(conn, ids)
    if removed:
        from .ingest import notify_written

        notify_written()
    return removed


def _delete_counted(conn, ids: list[int]) -> int:
    """Delete these violations and take them off their hourly and daily counts; returns how many went."""
    v = ViolationRow.__table__
    gone = []
    for k in range(0, len(ids), 500):  # under any database's limit on bound values
        gone += [dict(r._mapping) for r in conn.execute(delete(v).where(v.c.id.in_(ids[k:k + 500])).returning(
            v.c.occurred_at, v.c.camera_id, v.c.approach, v.c.kind))]
    if gone:
        hourly, daily = _deltas([{**r, "occurred_at": _as_utc(r["occurred_at"])} for r in gone])
        _subtract(conn, ViolationCountsHourly.__table__, hourly)
        _subtract(conn, ViolationCountsDaily.__table__, daily)
    return len(gone)


def _subtract(conn, table, deltas: Counter) -> None:
    """Take `deltas` off the counts; a count that reaches 0 goes (a camera with none is no camera with some)."""
    key = and_(table.c.camera_id == bindparam("b_camera"), table.c.approach == bindparam("b_approach"),
               table.c.kind == bindparam("b_kind"), table.c.bucket == bindparam("b_bucket", type_=table.c.bucket.type))
    values = [{"b_camera": c, "b_approach": a, "b_kind": k, "b_bucket": b, "b_n": n} for (c, a, k, b), n in deltas.items()]
    conn.execute(update(table).where(key).values(count=table.c.count - bindparam("b_n")), values)
    conn.execute(delete(table).where(key, table.c.count <= 0), [{k: x for k, x in d.items() if k != "b_n"}
                                                                for d in values])


# -- reading ------------------------------------------------------------------------------------------------
def counted_range(start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) in UTC taken to whole hours, the counts' resolution (start down, end up): the range the counts
    answer for; None: unbounded."""
    s = _hour(to_utc(start)) if start is not None else None
    e = to_utc(end) if end is not None else None
    if e is not None and e != _hour(e):
        e = _hour(e) + HOUR
    return s, e


def _split(start: dt.datetime | None, end: dt.datetime | None) -> list[tuple[object, dt.datetime | None,
                                                                              dt.datetime | None]]:
    """[start, end) as (table, from, to) pieces: whole days from the daily counts, the rest from the hourly.

    Both ends are taken to whole hours (the counts' resolution): start down, end up.
    """
    hourly, daily = ViolationCountsHourly.__table__, ViolationCountsDaily.__table__
    s, e = counted_range(start, end)
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
    # with a camera and an approach given (`*` included), the primary key (camera, approach, kind, bucket) finds
    # the rows; SQLite without statistics would take the bucket index and walk every camera's rows instead, so
    # the bucket is compared through coalesce() there, which no index serves
    bucket = func.coalesce(c.bucket, c.bucket) if not per_approach else c.bucket
    if lo is not None:
        cond.append(bucket >= lo)
    if hi is not None:
        cond.append(bucket < hi)
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
            where = _where(t, lo, hi, camera_id, approach, kind, per_approach=False)
            # camera and approach are fixed (`*` for all): one row per (bucket, kind), nothing to sum; the bucket
            # is read as the database gives it and turned to ISO text once per row (the UTC type's conversion
            # of 4,000 rows cost more than the query)
            daily_edge = bucket == "day" and t is not table
            for b, k, n in conn.execute(select(type_coerce(t.c.bucket, String), t.c.kind, t.c.count).where(where)):
                b = _iso_bucket(b)
                totals[(b[:10] + "T00:00:00Z" if daily_edge else b, k)] += int(n)
    return [{"bucket": b, "kind": k, "count": n} for (b, k), n in sorted(totals.items())]


def _iso_bucket(value) -> str:
    """A stored bucket as ISO text in UTC: SQLite gives 'YYYY-MM-DD HH:MM:SS[.ffffff]' (naive UTC), PostgreSQL
    a datetime."""
    if isinstance(value, str):
        return value[:19].replace(" ", "T") + "Z"
    return utc_text(_as_utc(value))


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
        # two index seeks (min/max with a range scan every row of it in SQLite)
        first = conn.execute(select(v.occurred_at).where(*cond).order_by(v.occurred_at).limit(1)).scalar()
        last = conn.execute(select(v.occurred_at).where(*cond).order_by(v.occurred_at.desc()).limit(1)).scalar()
    return {"total": sum(per_kind.values()), **{k: per_kind.get(k, 0) for k in VIOLATION_KINDS},
            "cameras": int(cams), "first": _iso(first), "last": _iso(last)}


def _iso(value) -> str | None:
    return None if value is None else utc_text(_as_utc(value))


def list_violations(engine: Engine, start=None, end=None, camera_id: str | None = None, kind: str | None = None,
                    limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    """(total, page of violations, newest first) without their evidence path: that is the evidence route's; with
    what each was judged with (`judged_with`, None for a row stored before revision 0019)."""
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
            v.stop_line, v.signal_state, v.evidence_path, v.evidence_sha256, v.source, v.source_name, v.frame,
            v.video_s, v.signal_log_s, v.red_for_s, v.time_assumed, v.judged_with]
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
                client: str | None = None) -> tuple[str, bytes | None, str | None]:
    """The image of one violation as (result, its bytes, the SHA-256 stored with it), the read logged whatever
    the outcome. Results: `served` (its digest is the stored one), `unverified` (served: a row stored before
    revision 0018 has no digest), `tampered` (not served: the file's bytes are not those stored), `gone`
    (retention removed it, or the file is missing), `unknown` (no such violation). The bytes are read once,
    and what is served is what was checked."""
    v = ViolationRow.__table__.c
    with engine.begin() as conn:
        row = conn.execute(select(v.evidence_path, v.evidence_sha256).where(v.id == violation_id)).first()
        data, digest = _read_image(row.evidence_path if row is not None else None), None
        if row is None:
            result = "unknown"
        elif data is None:
            result = "gone"
        else:
            digest = row.evidence_sha256
            result = ("unverified" if digest is None else
                      "served" if hashlib.sha256(data).hexdigest() == digest else "tampered")
        conn.execute(EvidenceAccess.__table__.insert().values(
            at=dt.datetime.now(dt.UTC), who=who[:128], key_id=key_id, violation_id=violation_id,
            client=(client or "")[:64] or None, result=result))
    return result, data if result in ("served", "unverified") else None, digest


def log_refused_read(engine: Engine, violation_id: int, who: str, key_id: str | None = None,
                     client: str | None = None) -> None:
    """Log a read of a violation's image refused before it was looked at (a caller without `evidence`: 403) as
    `refused`, with who, when, which and from where, as `evidence_of` logs the reads it answers."""
    with engine.begin() as conn:
        conn.execute(EvidenceAccess.__table__.insert().values(
            at=dt.datetime.now(dt.UTC), who=who[:128], key_id=key_id, violation_id=violation_id,
            client=(client or "")[:64] or None, result="refused"))


def _read_image(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


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
    cut = {k: days_before(now, float(v), k) for k, v in days.items()}
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


class ViolationWriter:
    """Violations from live cameras into the store in batches, from a thread of its own.

    `put(records)` never blocks: records wait in a bounded queue (dropped and counted when it is full, e.g.
    the database is away longer than the queue lasts); the thread writes whatever has come every `flush_s`
    or every `batch` records, one transaction per batch. `flush()` and `close()` write what waits at once.
    `replace_unsourced`: rows stored with no source that its records match are replaced (`insert_violations`).
    """

    _FLUSH, _STOP = object(), object()  # markers in the queue: write now; write now and end

    def __init__(self, engine: Engine, *, flush_s: float = 1.0, batch: int = 1000, max_pending: int = 100_000,
                 replace_unsourced: bool = False):
        import queue
        import threading

        self.engine, self.flush_s, self.batch = engine, flush_s, batch
        self.written = self.dropped = self.failed_batches = 0
        self.already_stored = 0  # put, but stored before (the same identity): not stored again
        self.replace_unsourced = replace_unsourced
        self.held_unsourced = 0  # of those, held by a row stored with no source (before revision 0018)
        self.replaced_unsourced = 0  # rows stored with no source removed for records put
        self.last_error: str | None = None
        self._q: queue.Queue = queue.Queue(maxsize=max_pending)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="signalwise-violations-writer", daemon=True)
        self._thread.start()

    def put(self, records: Iterable[Mapping]) -> None:
        import queue

        for r in records:
            try:
                self._q.put_nowait(r)
            except queue.Full:
                self.dropped += 1

    def _run(self) -> None:
        import queue
        import time

        stop = False
        while not stop:
            batch: list = []
            markers = 0
            deadline = time.monotonic() + self.flush_s
            while len(batch) < self.batch:
                try:
                    item = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is self._FLUSH or item is self._STOP:
                    markers += 1
                    stop = item is self._STOP
                    break
                batch.append(item)
            try:
                if batch:
                    done = store_violations(self.engine, batch, replace_unsourced=self.replace_unsourced)
                    self.written += done.stored
                    self.already_stored += len(batch) - done.stored
                    self.held_unsourced += done.held_unsourced
                    self.replaced_unsourced += done.replaced_unsourced
            except Exception as exc:  # noqa: BLE001 - keep the thread; the count says it
                self.failed_batches += 1
                self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            finally:
                for _ in range(len(batch) + markers):
                    self._q.task_done()

    def flush(self) -> None:
        """Write everything put so far, now; returns once it is written (or has failed)."""
        if self._thread.is_alive():
            self._q.put(self._FLUSH)
            self._q.join()

    def close(self, timeout_s: float = 10.0) -> None:
        if not self._closed and self._thread.is_alive():
            self._closed = True
            self._q.put(self._STOP)
        self._thread.join(timeout_s)

    def stats(self) -> dict:
        return {"written": self.written, "already_stored": self.already_stored, "held_unsourced": self.held_unsourced,
                "replaced_unsourced": self.replaced_unsourced, "dropped": self.dropped,
                "queued": self._q.qsize(),
                "failed_batches": self.failed_batches, "last_error": self.last_error}
