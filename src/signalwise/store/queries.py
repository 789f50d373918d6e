"""The computations behind the analytics API, as plain functions over the store.

Each takes an engine and filters and returns JSON-ready dicts; the API adds
only HTTP concerns (parameters, pagination envelope, caching, errors).
Aggregation happens in SQL so a million stored records never travel to
Python; statistics across seeds use `analytics.stats`.

Questions without a time range read the roll-ups ingestion keeps per (run,
intersection) and (run, intersection, direction) — thousands of rows
instead of millions. A time range is cut into levels (`Filters.pieces`): its
whole UTC hours from the hourly roll-ups, whole quarter hours and then whole
5-minute buckets of its partial hours from the finer ones, and only the rest
(under 5 minutes at each end) from the interval rows, summed together in one
query, so the answer is the same as over the rows alone. A bucketed row holds
an intersection's approaches side by side, and so does an interval record
(its signal rows' wait and vehicles crossed), so a range groups one row per
intersection per piece, not one per approach, and its edges read no signal
rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Boolean, Engine, Float, case, cast, distinct, func, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from signalwise.store import rollups
from signalwise.store.schemas import DIRECTIONS
from signalwise.store.tables import (
    Base,
    DirectionRollup,
    HiresEvent,
    IntersectionRollup,
    Run,
    RunMetric,
    SignalRecord,
)
from signalwise.store.tables import IntersectionRecordRow as Rec

R, S, RUN, M = Rec.__table__, SignalRecord.__table__, Run.__table__, RunMetric.__table__
IR, DR = IntersectionRollup.__table__, DirectionRollup.__table__
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Level:
    """A bucketed roll-up level: its table (a row per run, bucket and intersection) and bucket width."""

    table: object  # Table
    width: dt.timedelta

    def floor(self, moment: dt.datetime) -> dt.datetime:
        return EPOCH + (moment - EPOCH) // self.width * self.width

    def ceil(self, moment: dt.datetime) -> dt.datetime:
        floor = self.floor(moment)
        return floor if floor == moment else floor + self.width


#: the bucketed levels, coarsest first (1 hour, 15 minutes, 5 minutes)
LEVELS = tuple(Level(Base.metadata.tables[lv.table], dt.timedelta(seconds=lv.width)) for lv in rollups.LEVELS)

#: per-run figures derived from interval records, usable wherever run metrics are. A figure a record did not
#: measure (NULL) is left out: AVG and SUM skip it, and a figure no record measured is NULL (JSON null), not 0
RECORD_METRICS = {
    "avg_wait_time": func.avg(R.c.avg_wait_time_all_sides),
    "avg_speed": func.avg(R.c.avg_speed),
    "throughput": func.avg(R.c.throughput),
    "total_vehicles_passed": func.sum(R.c.total_vehicles_passed),
    "fuel_saved": func.sum(R.c.fuel_saved),
    "co2_saved": func.sum(R.c.co2_saved),
    "emergency_overrides": func.sum(R.c.emergency_overrides),
}


#: the same figures from the per-(run, intersection) roll-ups (a mean over the records that measured it)
ROLLUP_METRICS = {
    "avg_wait_time": func.sum(IR.c.avg_wait_time_sum) / func.nullif(func.sum(IR.c.avg_wait_time_samples), 0),
    "avg_speed": func.sum(IR.c.avg_speed_sum) / func.nullif(func.sum(IR.c.avg_speed_samples), 0),
    "throughput": func.sum(IR.c.throughput_sum) / func.sum(IR.c.records),
    "total_vehicles_passed": func.sum(IR.c.total_vehicles_passed),
    "fuel_saved": func.sum(IR.c.fuel_saved),
    "co2_saved": func.sum(IR.c.co2_saved),
    "emergency_overrides": func.sum(IR.c.emergency_overrides),
}


@dataclass(frozen=True)
class Filters:
    simulation_id: str | None = None
    intersection_id: str | None = None
    direction: str | None = None
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive

    def record_conditions(self) -> list:
        cond = []
        if self.simulation_id is not None:
            cond.append(R.c.run_id == select(RUN.c.id).where(RUN.c.simulation_id == self.simulation_id)
                        .scalar_subquery())
        if self.intersection_id is not None:
            cond.append(R.c.intersection_id == self.intersection_id)
        if self.start is not None:
            cond.append(R.c.timestamp >= self.start)
        if self.end is not None:
            cond.append(R.c.timestamp < self.end)
        return cond

    @property
    def timed(self) -> bool:
        """A time range needs the interval rows; without one the roll-ups answer."""
        return self.start is not None or self.end is not None

    def pieces(self) -> list[tuple[Level | None, tuple]]:
        """The range as [(level, [first bucket, end of the last) of its whole buckets)] per level,
        coarsest first, then [(None, [start, end) of a piece to read from rows)].

        Each level takes the whole buckets of what the coarser ones left at
        the edges; an open end stays None (no bound) and is read whole from
        the coarsest level. One range per piece: an OR of two ranges would
        keep SQLite from using the index.
        """
        return _cut(self.start, self.end, LEVELS)

    def bucket_conditions(self, level: Level, span: tuple) -> list:
        """Conditions on a level's table for the buckets in `span` (its key starts (run, bucket): over
        every run, one range of the key per run, `_AnyRun`)."""
        lo, hi = span
        table = level.table
        cond = self.rollup_conditions(table)
        if self.simulation_id is None:
            cond.append(_AnyRun(table.c.run_id))
        if lo is not None:
            cond.append(table.c.bucket >= lo)
        if hi is not None:
            cond.append(table.c.bucket < hi)
        return cond

    def edge_conditions(self, edge: tuple) -> list:
        """Record conditions for the rows of one piece of the range."""
        a, b = edge
        return [*Filters(self.simulation_id, self.intersection_id, self.direction, a, b).record_conditions()]

    def rollup_conditions(self, table) -> list:  # noqa: ANN001 - IR or DR
        cond = []
        if self.simulation_id is not None:
            cond.append(table.c.run_id == select(RUN.c.id).where(RUN.c.simulation_id == self.simulation_id)
                        .scalar_subquery())
        if self.intersection_id is not None:
            cond.append(table.c.intersection_id == self.intersection_id)
        if self.direction is not None and "direction" in table.c:
            cond.append(table.c.direction == self.direction)
        return cond


def _cut(start: dt.datetime | None, end: dt.datetime | None, levels: tuple[Level, ...]) -> list[tuple]:
    """`Filters.pieces` of [start, end) with these levels."""
    if not levels:
        return [(None, (start, end))]
    level, finer = levels[0], levels[1:]
    lo = level.ceil(start) if start is not None else None
    hi = level.floor(end) if end is not None else None
    if lo is not None and hi is not None and lo >= hi:  # not one whole bucket of this level
        return _cut(start, end, finer)
    return ([(level, (lo, hi))] + (_cut(start, lo, finer) if start is not None and start < lo else [])
            + (_cut(hi, end, finer) if end is not None and hi < end else []))


def _timed_source(f: Filters, buckets, rows) -> object:  # noqa: ANN001 - select builders
    """The union of the range's whole buckets of every level and the rest's rows, as one subquery.

    `buckets(level, span)` and `rows(conditions)` give selects with the same
    columns (partial sums per group); the caller sums them again per group.
    """
    parts = [buckets(level, span) if level is not None else rows(f.edge_conditions(span))
             for level, span in f.pieces()]
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()


class _AnyRun(ColumnElement):
    """`column` is a stored run's id, written so that both databases read a (run, bucket, …) key one
    range per run: SQLite `IN (SELECT id FROM runs)`; PostgreSQL `= ANY(ARRAY(SELECT id FROM runs))`, as
    its planner turned an IN into parallel sequential scans of every bucket (wait-times 06:50-08:10 of
    50 runs: 151 ms against 34 ms, EXPLAIN ANALYZE)."""

    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is: SQLite is not to get "... = 1"
    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column):  # noqa: ANN001 - a run_id column
        self.column = column


@compiles(_AnyRun)
def _any_run(element: _AnyRun, compiler, **kw) -> str:  # noqa: ANN001
    return f"{compiler.process(element.column, **kw)} IN (SELECT id FROM runs)"


@compiles(_AnyRun, "postgresql")
def _any_run_postgresql(element: _AnyRun, compiler, **kw) -> str:  # noqa: ANN001
    return f"{compiler.process(element.column, **kw)} = ANY(ARRAY(SELECT id FROM runs))"


#: the per-approach totals a wait-time answer needs (`rollups.DIRECTION_TOTALS` without emergencies)
_WAIT_TOTALS = ("samples", "avg_wait_time_sum", "avg_wait_time_max", "vehicles_crossed")


def _combined(name: str):  # noqa: ANN202
    """How the pieces of a range combine a per-approach total: maxima by max, the rest by sum."""
    return func.max if name.endswith("_max") else func.sum


def _float(column):  # noqa: ANN001, ANN202
    """A total as a double: PostgreSQL sums bigints as numeric, several times slower to add up over the
    pieces of a range than doubles, which hold counts exactly up to 2^53."""
    return cast(column, Float)


def _simulation_id_of(grouped):  # noqa: ANN001, ANN202 - a subquery with run_id
    """The simulation id of each group's run, looked up per group.

    A join let PostgreSQL pick a nested loop that compared every group with
    every run (196,000 comparisons, 20 ms, for 4,000 groups of 50 runs).
    """
    return (select(RUN.c.simulation_id).where(RUN.c.id == grouped.c.run_id).correlate(grouped)
            .scalar_subquery().label("simulation_id"))


def _f(x) -> float | None:  # noqa: ANN001
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _iso(x) -> str | None:  # noqa: ANN001
    if x is None:
        return None
    if isinstance(x, str):  # SQLite aggregate over a datetime column gives text back
        x = dt.datetime.fromisoformat(x)
    if x.tzinfo is None:
        x = x.replace(tzinfo=dt.UTC)
    return x.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def run_info(engine: Engine, simulation_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(RUN).where(RUN.c.simulation_id == simulation_id)).mappings().first()
        if row is None:
            return None
        metrics = dict(conn.execute(select(M.c.name, M.c.value).where(M.c.run_id == row["id"])).all())
    return {"simulation_id": row["simulation_id"], "scenario": row["scenario"], "controller": row["controller"],
            "seed": row["seed"], "config": row["config"], "started_at": _iso(row["started_at"]),
            "run_metrics": metrics, "_id": row["id"]}


def _measured(column):  # noqa: ANN001, ANN202
    """1 where a record measured the figure (not NULL), else 0: summed, the count a mean divides by."""
    return case((column.is_not(None), 1), else_=0)


def _SUMMARY_SUMS(t) -> dict:  # noqa: ANN001, N802 - an intersection roll-up (its sums) or R (the columns to sum)
    if t is not R:
        return {"wait": t.c.avg_wait_time_sum, "wait_n": t.c.avg_wait_time_samples, "speed": t.c.avg_speed_sum,
                "speed_n": t.c.avg_speed_samples, "thr": t.c.throughput_sum,
                "passed": t.c.total_vehicles_passed, "fuel": t.c.fuel_saved, "co2": t.c.co2_saved,
                "overrides": t.c.emergency_overrides}
    return {"wait": R.c.avg_wait_time_all_sides, "wait_n": _measured(R.c.avg_wait_time_all_sides),
            "speed": R.c.avg_speed, "speed_n": _measured(R.c.avg_speed), "thr": R.c.throughput,
            "passed": R.c.total_vehicles_passed, "fuel": R.c.fuel_saved, "co2": R.c.co2_saved,
            "overrides": R.c.emergency_overrides}


def simulation_summary(engine: Engine, simulation_id: str, f: Filters) -> dict | None:
    run = run_info(engine, simulation_id)
    if run is None:
        return None
    run_id = run.pop("_id")
    inner = Filters(None, f.intersection_id, None, f.start, f.end)
    if inner.timed:
        def buckets(level: Level, span: tuple):  # noqa: ANN202
            t = level.table
            return (select(t.c.intersection_id, t.c.records, t.c.first_timestamp.label("first"),
                           t.c.last_timestamp.label("last"), *[c.label(k) for k, c in _SUMMARY_SUMS(t).items()])
                    .where(t.c.run_id == run_id, *inner.bucket_conditions(level, span)))

        def rows(cond: list):  # noqa: ANN202
            return (select(R.c.intersection_id, func.count().label("records"), func.min(R.c.timestamp).label("first"),
                           func.max(R.c.timestamp).label("last"),
                           *[func.sum(c).label(k) for k, c in _SUMMARY_SUMS(R).items()])
                    .where(R.c.run_id == run_id, *cond).group_by(R.c.intersection_id))
        u = _timed_source(inner, buckets, rows)
        n = func.sum(u.c.records)
        q = select(func.coalesce(n, 0), func.count(distinct(u.c.intersection_id)), func.min(u.c.first),
                   func.max(u.c.last), func.sum(u.c.wait) / func.nullif(func.sum(u.c.wait_n), 0),
                   func.sum(u.c.speed) / func.nullif(func.sum(u.c.speed_n), 0), func.sum(u.c.thr) / n,
                   *[func.sum(u.c[k]) for k in ("passed", "fuel", "co2", "overrides")])
    else:
        q = select(func.coalesce(func.sum(IR.c.records), 0), func.count(), func.min(IR.c.first_timestamp),
                   func.max(IR.c.last_timestamp), *[agg.label(k) for k, agg in ROLLUP_METRICS.items()]).where(
            IR.c.run_id == run_id, *inner.rollup_conditions(IR))
    with engine.connect() as conn:
        row = conn.execute(q).one()
    n, n_int, first, last, *aggs = row
    n = int(n)
    return {**run, "records": n, "intersections": n_int, "first_timestamp": _iso(first),
            "last_timestamp": _iso(last), "record_metrics": dict(zip(RECORD_METRICS, map(_f, aggs), strict=True))}


def _page(conn, q, limit: int, offset: int):  # noqa: ANN001, ANN202
    """(total, rows of the page): the total comes from a window over the same pass, not a second query."""
    rows = conn.execute(q.add_columns(func.count().over().label("_total")).limit(limit).offset(offset)).mappings().all()
    if not rows:  # an empty page says nothing about the total (offset past the end)
        return conn.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one(), []
    total = rows[0]["_total"]
    return total, [{k: v for k, v in r.items() if k != "_total"} for r in rows]


def wait_times(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    """Waiting time per (simulation, intersection, direction) from the signal records."""
    if not f.timed:
        return _wait_times_rolled_up(engine, f, limit, offset)
    dirs = sorted(DIRECTIONS) if f.direction is None else [f.direction]  # answered in name order
    names = [f"{d}_{c}" for d in dirs for c in _WAIT_TOTALS]

    def buckets(level: Level, span: tuple):  # noqa: ANN202
        t = level.table
        return select(t.c.run_id, t.c.intersection_id, *[_float(t.c[n]).label(n) for n in names]).where(
            *f.bucket_conditions(level, span))

    def rows(cond: list):  # noqa: ANN202 - an edge: its records' approach columns, without the signal rows
        per_record = {}
        for d in dirs:
            wait, crossed = R.c[f"{d}_avg_wait_time"], R.c[f"{d}_vehicles_crossed"]
            per_record.update({f"{d}_samples": func.count(wait), f"{d}_avg_wait_time_sum": func.sum(wait),
                               f"{d}_avg_wait_time_max": func.max(wait), f"{d}_vehicles_crossed": func.sum(crossed)})
        return (select(R.c.run_id, R.c.intersection_id, *[_float(c).label(n) for n, c in per_record.items()])
                .where(*cond).group_by(R.c.run_id, R.c.intersection_id))
    u = _timed_source(f, buckets, rows)
    grouped = (select(u.c.run_id, u.c.intersection_id, *[_combined(n)(u.c[n]).label(n) for n in names])
               .group_by(u.c.run_id, u.c.intersection_id)).subquery()
    sim = _simulation_id_of(grouped)
    q = (select(sim, grouped.c.intersection_id, *[grouped.c[n] for n in names])
         .order_by(sim, grouped.c.intersection_id))
    with engine.connect() as conn:
        found = conn.execute(q).all()
    # (row, direction, where its totals start in the row) per group with samples, in answer order;
    # plain tuples: dicts for every group cost more than the query on a 50-run range (measured)
    groups = [(g, d, 2 + 4 * k) for g in found for k, d in enumerate(dirs) if g[2 + 4 * k]]
    n = int(sum(g[o] for g, _, o in groups))  # int(): PostgreSQL sums are numeric
    overall = {"mean_wait_s": _f(sum(g[o + 1] for g, _, o in groups) / n) if n else None,
               "max_wait_s": _f(max(g[o + 2] for g, _, o in groups)) if groups else None, "samples": n}
    items = [{"simulation_id": g[0], "intersection_id": g[1], "direction": d, "mean_wait_s": _f(g[o + 1] / g[o]),
              "max_wait_s": _f(g[o + 2]), "samples": int(g[o]), "vehicles_crossed": int(g[o + 3] or 0)}
             for g, d, o in groups[offset:offset + limit]]
    return len(groups), items, overall


def _wait_times_rolled_up(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    cond = f.rollup_conditions(DR)
    base = (select(RUN.c.simulation_id, DR.c.intersection_id, DR.c.direction,
                   (DR.c.avg_wait_time_sum / func.nullif(DR.c.samples, 0)).label("mean_wait_s"),
                   DR.c.avg_wait_time_max.label("max_wait_s"), DR.c.samples,
                   DR.c.vehicles_crossed)
            .select_from(DR.join(RUN, RUN.c.id == DR.c.run_id)).where(*cond)
            .order_by(RUN.c.simulation_id, DR.c.intersection_id, DR.c.direction))
    overall_q = select(func.sum(DR.c.avg_wait_time_sum), func.max(DR.c.avg_wait_time_max),
                       func.coalesce(func.sum(DR.c.samples), 0)).where(*cond)
    with engine.connect() as conn:
        total, rows = _page(conn, base, limit, offset)
        total_wait, worst, n = conn.execute(overall_q).one()
    items = [{**r, "mean_wait_s": _f(r["mean_wait_s"]), "max_wait_s": _f(r["max_wait_s"]),
              "vehicles_crossed": int(r["vehicles_crossed"] or 0)} for r in rows]
    n = int(n)
    return total, items, {"mean_wait_s": _f(total_wait / n) if n else None, "max_wait_s": _f(worst), "samples": n}


def speeds(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    """Average speed per (simulation, intersection); speed is an intersection-level figure."""
    if not f.timed:
        return _speeds_rolled_up(engine, f, limit, offset)
    f = Filters(f.simulation_id, f.intersection_id, None, f.start, f.end)  # speed has no direction

    def buckets(level: Level, span: tuple):  # noqa: ANN202
        t = level.table
        return select(t.c.run_id, t.c.intersection_id, t.c.avg_speed_sum.label("speed_sum"),
                      t.c.avg_speed_min.label("min_speed"), t.c.avg_speed_max.label("max_speed"),
                      t.c.avg_speed_samples.label("samples")).where(*f.bucket_conditions(level, span))

    def rows(cond: list):  # noqa: ANN202 - the records that measured a speed (not NULL)
        return (select(R.c.run_id, R.c.intersection_id, func.sum(R.c.avg_speed).label("speed_sum"),
                       func.min(R.c.avg_speed).label("min_speed"), func.max(R.c.avg_speed).label("max_speed"),
                       func.count(R.c.avg_speed).label("samples"))
                .where(*cond).group_by(R.c.run_id, R.c.intersection_id))
    u = _timed_source(f, buckets, rows)
    grouped = (select(u.c.run_id, u.c.intersection_id, func.sum(u.c.speed_sum).label("speed_sum"),
                      func.min(u.c.min_speed).label("min_speed"), func.max(u.c.max_speed).label("max_speed"),
                      func.sum(u.c.samples).label("samples"))
               .group_by(u.c.run_id, u.c.intersection_id)).subquery()
    sim = _simulation_id_of(grouped)
    q = (select(sim, grouped.c.intersection_id, grouped.c.speed_sum, grouped.c.min_speed,
                grouped.c.max_speed, grouped.c.samples)
         .order_by(sim, grouped.c.intersection_id))
    with engine.connect() as conn:
        groups = [{**g, "samples": int(g["samples"])} for g in conn.execute(q).mappings()]  # PostgreSQL: numeric
    n = sum(g["samples"] for g in groups)
    items = [{"simulation_id": g["simulation_id"], "intersection_id": g["intersection_id"],
              "mean_speed": _f(g["speed_sum"] / g["samples"]) if g["samples"] else None,
              "min_speed": _f(g["min_speed"]), "max_speed": _f(g["max_speed"]), "samples": g["samples"]}
             for g in groups[offset:offset + limit]]
    return len(groups), items, {"mean_speed": _f(sum(g["speed_sum"] or 0.0 for g in groups) / n) if n else None,
                                "samples": n}


def _speeds_rolled_up(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    cond = Filters(f.simulation_id, f.intersection_id).rollup_conditions(IR)
    base = (select(RUN.c.simulation_id, IR.c.intersection_id,
                   (IR.c.avg_speed_sum / func.nullif(IR.c.avg_speed_samples, 0)).label("mean_speed"),
                   IR.c.avg_speed_min.label("min_speed"), IR.c.avg_speed_max.label("max_speed"),
                   IR.c.avg_speed_samples.label("samples"))
            .select_from(IR.join(RUN, RUN.c.id == IR.c.run_id)).where(*cond)
            .order_by(RUN.c.simulation_id, IR.c.intersection_id))
    with engine.connect() as conn:
        total, rows = _page(conn, base, limit, offset)
        speed_sum, n = conn.execute(select(func.sum(IR.c.avg_speed_sum),
                                           func.coalesce(func.sum(IR.c.avg_speed_samples), 0)).where(*cond)).one()
    items = [{**r, **{k: _f(r[k]) for k in ("mean_speed", "min_speed", "max_speed")}} for r in rows]
    n = int(n)
    return total, items, {"mean_speed": _f(speed_sum / n) if n else None, "samples": n}


def emergency_report(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    """Overrides granted and intervals with an emergency vehicle present, per (simulation, intersection)."""
    if not f.timed:
        return _emergency_rolled_up(engine, f, limit, offset)
    direction = f.direction
    f = Filters(f.simulation_id, f.intersection_id, None, f.start, f.end)  # the direction narrows `present` only
    present = (select(func.count()).select_from(S).where(S.c.record_id == R.c.id, S.c.emergency_vehicle_present)
               .correlate(R).scalar_subquery())
    if direction is not None:
        present = (select(func.count()).select_from(S).where(
            S.c.record_id == R.c.id, S.c.emergency_vehicle_present, S.c.direction == direction)
            .correlate(R).scalar_subquery())

    def buckets(level: Level, span: tuple):  # noqa: ANN202
        t = level.table
        bucket_present = t.c.intervals_with_emergency if direction is None else t.c[f"{direction}_emergency_present"]
        return select(t.c.run_id, t.c.intersection_id, t.c.emergency_overrides,
                      bucket_present.label("intervals_with_emergency_vehicle"),
                      t.c.records.label("intervals")).where(*f.bucket_conditions(level, span))

    def rows(cond: list):  # noqa: ANN202
        return (select(R.c.run_id, R.c.intersection_id,
                       func.sum(R.c.emergency_overrides).label("emergency_overrides"),
                       func.sum(case((present > 0, 1), else_=0)).label("intervals_with_emergency_vehicle"),
                       func.count().label("intervals"))
                .where(*cond).group_by(R.c.run_id, R.c.intersection_id))
    u = _timed_source(f, buckets, rows)
    grouped = (select(u.c.run_id, u.c.intersection_id,
                      func.sum(u.c.emergency_overrides).label("emergency_overrides"),
                      func.sum(u.c.intervals_with_emergency_vehicle).label("intervals_with_emergency_vehicle"),
                      func.sum(u.c.intervals).label("intervals"))
               .group_by(u.c.run_id, u.c.intersection_id)).subquery()
    sim = _simulation_id_of(grouped)
    q = (select(sim, grouped.c.intersection_id, grouped.c.emergency_overrides,
                grouped.c.intervals_with_emergency_vehicle, grouped.c.intervals)
         .order_by(sim, grouped.c.intersection_id))
    with engine.connect() as conn:
        groups = conn.execute(q).mappings().all()
    overrides = sum(int(g["emergency_overrides"] or 0) for g in groups)
    return _emergency_answer(engine, f, (len(groups), groups[offset:offset + limit]), overrides)


def _emergency_rolled_up(engine: Engine, f: Filters, limit: int, offset: int) -> tuple[int, list[dict], dict]:
    cond = Filters(f.simulation_id, f.intersection_id).rollup_conditions(IR)
    present = IR.c.intervals_with_emergency
    if f.direction is not None:
        present = func.coalesce(select(DR.c.emergency_present).where(
            DR.c.run_id == IR.c.run_id, DR.c.intersection_id == IR.c.intersection_id,
            DR.c.direction == f.direction).correlate(IR).scalar_subquery(), 0)
    base = (select(RUN.c.simulation_id, IR.c.intersection_id, IR.c.emergency_overrides,
                   present.label("intervals_with_emergency_vehicle"), IR.c.records.label("intervals"))
            .select_from(IR.join(RUN, RUN.c.id == IR.c.run_id)).where(*cond)
            .order_by(RUN.c.simulation_id, IR.c.intersection_id))
    with engine.connect() as conn:
        page = _page(conn, base, limit, offset)
        overrides = conn.execute(select(func.coalesce(func.sum(IR.c.emergency_overrides), 0)).where(*cond)).scalar()
    return _emergency_answer(engine, f, page, overrides)


def _emergency_answer(engine: Engine, f: Filters, page: tuple[int, list],
                      overrides: int) -> tuple[int, list[dict], dict]:
    """Add each run's emergency-vehicle delay (a run metric) to a page of per-intersection rows: on the rows of
    intersections an emergency vehicle reached (an override granted, or an interval with one present) alone; the
    others' is None, as the run's figure says nothing about an intersection none of its emergency vehicles met."""
    delay_q = (select(RUN.c.simulation_id, M.c.value).select_from(M.join(RUN, RUN.c.id == M.c.run_id))
               .where(M.c.name == "emergency_delay_s"))
    if f.simulation_id is not None:
        delay_q = delay_q.where(RUN.c.simulation_id == f.simulation_id)
    with engine.connect() as conn:
        delays = dict(conn.execute(delay_q).all())
    total, rows = page
    items = []
    for r in rows:
        granted, present = int(r["emergency_overrides"] or 0), int(r["intervals_with_emergency_vehicle"] or 0)
        reached = granted > 0 or present > 0
        items.append({**r, "emergency_overrides": granted, "intervals_with_emergency_vehicle": present,
                      "intervals": int(r["intervals"]),
                      "emergency_delay_s": _f(delays.get(r["simulation_id"])) if reached else None})
    return total, items, {"emergency_overrides": int(overrides),
                          "emergency_delay_s": {k: _f(v) for k, v in delays.items()}}


def interval_figures(engine: Engine, simulation_id: str, f: Filters, bucket_s: int | None,
                limit: int, offset: int) -> tuple[int, list[dict]] | None:
    """Per-interval figures of one run (all its intersections, or the one filtered), oldest first."""
    if run_info(engine, simulation_id) is None:
        return None
    cond = Filters(simulation_id, f.intersection_id, None, f.start, f.end).record_conditions()
    q = (select(R.c.timestamp, func.avg(R.c.avg_wait_time_all_sides).label("avg_wait_time"),
                func.avg(R.c.avg_speed).label("avg_speed"), func.avg(R.c.throughput).label("throughput"),
                func.sum(R.c.total_vehicles_passed).label("vehicles_passed"),
                func.sum(R.c.fuel_saved).label("fuel_saved"), func.sum(R.c.co2_saved).label("co2_saved"),
                func.sum(R.c.emergency_overrides).label("emergency_overrides"), func.count().label("records"),
                func.count(R.c.avg_wait_time_all_sides).label("avg_wait_time_n"),
                func.count(R.c.avg_speed).label("avg_speed_n"))
         .where(*cond).group_by(R.c.timestamp).order_by(R.c.timestamp))
    with engine.connect() as conn:
        if not bucket_s:
            total, rows = _page(conn, q, limit, offset)
            return total, [_point(r) for r in rows]
        rows = conn.execute(q).mappings().all()
    buckets: dict[int, list] = defaultdict(list)
    for r in rows:
        ts = r["timestamp"]
        ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts
        buckets[int(ts.timestamp()) // bucket_s * bucket_s].append(r)
    points = []
    for key in sorted(buckets):
        group = buckets[key]
        n = sum(g["records"] for g in group)

        def wmean(name: str, weight: str = "records", group=group) -> float | None:
            """The mean over the records that measured it (each timestamp's mean weighed by their number)."""
            m = sum(g[weight] for g in group if g[name] is not None)
            return _f(sum(float(g[name]) * g[weight] for g in group if g[name] is not None) / m) if m else None
        points.append({"timestamp": _iso(dt.datetime.fromtimestamp(key, dt.UTC)),
                       "avg_wait_time": wmean("avg_wait_time", "avg_wait_time_n"),
                       "avg_speed": wmean("avg_speed", "avg_speed_n"), "throughput": wmean("throughput"),
                       "vehicles_passed": int(sum(g["vehicles_passed"] or 0 for g in group)),
                       "fuel_saved": _known_sum(g["fuel_saved"] for g in group),
                       "co2_saved": _known_sum(g["co2_saved"] for g in group),
                       "emergency_overrides": int(sum(g["emergency_overrides"] or 0 for g in group)),
                       "records": n})
    return len(points), points[offset:offset + limit]


def _known_sum(values) -> float | None:  # noqa: ANN001
    """The sum of the values measured (not None); None when none was."""
    known = [float(v) for v in values if v is not None]
    return _f(sum(known)) if known else None


def _point(r) -> dict:  # noqa: ANN001
    return {"timestamp": _iso(r["timestamp"]), "avg_wait_time": _f(r["avg_wait_time"]),
            "avg_speed": _f(r["avg_speed"]), "throughput": _f(r["throughput"]),
            "vehicles_passed": int(r["vehicles_passed"] or 0), "fuel_saved": _f(r["fuel_saved"]),
            "co2_saved": _f(r["co2_saved"]), "emergency_overrides": int(r["emergency_overrides"] or 0),
            "records": r["records"]}


# ---------------------------------------------------------------------------
# across runs: baseline comparisons
# ---------------------------------------------------------------------------


#: the run configuration's keys that shape the traffic every controller of a comparison meets: runs that differ in
#: any of them (another duration, demand, timing profile or network file) are not paired with each other
CONDITION_KEYS = ("duration_s", "sumocfg", "net", "routes", "step_length_s", "demand_scale", "time_to_teleport_s",
                  "timing", "shield", "sumo_options", "sumocfg_options")


def run_conditions(config: dict | None) -> dict | None:
    """What a stored run's configuration says of its conditions (`CONDITION_KEYS` it holds); None without one
    (a run registered from Python without a configuration), which is then paired with runs as bare as itself."""
    if not config:
        return None
    return {k: config[k] for k in CONDITION_KEYS if k in config}


#: condition settings a release added after runs were stored without them, with the value those runs had in
#: effect: a configuration without the key reads as that value when runs are paired. `timing.protected_yellow`:
#: the shield before it showed no yellow to a protected green arrow going permitted, as false does (so a run
#: stored before it never pairs with a safety-profile run, which holds it true)
ADDED_CONDITIONS: dict[tuple[str, str], object] = {("timing", "protected_yellow"): False}


def as_compared(conditions: dict | None) -> dict | None:
    """`run_conditions` with the settings added since they were stored filled in (`ADDED_CONDITIONS`)."""
    if conditions is None:
        return None
    out = dict(conditions)
    for (section, key), then in ADDED_CONDITIONS.items():
        if isinstance(out.get(section), dict) and key not in out[section]:
            out[section] = {**out[section], key: then}
    return out


def conditions_differ(a: dict | None, b: dict | None) -> list[str]:
    """The condition keys two runs differ in (`as_compared`), a mapping's keys one level down (`timing.yellow_s`)."""
    a, b = as_compared(a) or {}, as_compared(b) or {}
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{k}" for k in sorted(set(x) | set(y)) if not _same(x, y, k)]
        elif not _same(a, b, key):
            out.append(key)
    return out


def _same(a: dict, b: dict, key: str) -> bool:
    """Whether both hold `key` with the same value, as `conditions_key` compares it."""
    return key in a and key in b and (json.dumps(a[key], sort_keys=True, default=str)
                                      == json.dumps(b[key], sort_keys=True, default=str))


def conditions_key(conditions: dict | None) -> str:
    """`run_conditions` as one comparable string (`as_compared`)."""
    return "" if conditions is None else json.dumps(as_compared(conditions), sort_keys=True, default=str)


def config_conditions_key(config: dict | None) -> str:
    """The conditions key of a run configuration (`conditions_key(run_conditions(config))`)."""
    return conditions_key(run_conditions(config))


def latest_runs(runs: list[dict], key) -> tuple[dict, dict[object, list[str]]]:  # noqa: ANN001 - key: dict -> key
    """The latest stored run (highest `id`) per `key(run)`, and per key the simulation ids of the runs it stands
    for: the one rule every comparison of stored runs applies to repeated runs of the same conditions."""
    latest: dict = {}
    superseded: dict[object, list[str]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: r["id"]):
        k = key(r)
        if k in latest:
            superseded[k].append(latest[k]["simulation_id"])
        latest[k] = r
    return latest, superseded


def run_table(engine: Engine, scenario: str | None = None, untagged: bool = False) -> list[dict]:
    """Every tagged run with its run metrics, record-derived figures (key `metrics`) and `conditions`.
    `untagged`: the simulations of ingested records alone too, which name no scenario nor controller (None)."""
    runs_q = select(RUN.c.id, RUN.c.simulation_id, RUN.c.scenario, RUN.c.controller, RUN.c.seed, RUN.c.config)
    if not untagged:
        runs_q = runs_q.where(RUN.c.scenario.is_not(None), RUN.c.controller.is_not(None))
    if scenario is not None:
        runs_q = runs_q.where(RUN.c.scenario == scenario)
    with engine.connect() as conn:
        runs = {}
        for r in conn.execute(runs_q).mappings():
            row = {k: v for k, v in r.items() if k != "config"}
            runs[r["id"]] = {**row, "conditions": run_conditions(r["config"]), "metrics": {}}
        if not runs:
            return []
        ids = list(runs)
        agg_q = (select(IR.c.run_id, *[a.label(k) for k, a in ROLLUP_METRICS.items()])
                 .where(IR.c.run_id.in_(ids)).group_by(IR.c.run_id))
        for row in conn.execute(agg_q).mappings():  # a figure none of its records measured is None (null)
            runs[row["run_id"]]["metrics"].update({k: _f(row[k]) for k in RECORD_METRICS})
        for run_id, name, value in conn.execute(select(M.c.run_id, M.c.name, M.c.value).where(M.c.run_id.in_(ids))):
            runs[run_id]["metrics"][name] = _f(value)
    return sorted(runs.values(), key=lambda r: (r["scenario"] is None, r["scenario"] or "", r["controller"] or "",
                                                r["seed"] or 0, r["id"]))


# ---------------------------------------------------------------------------
# dashboard and charts
# ---------------------------------------------------------------------------


def latest_simulation_id(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(RUN.c.simulation_id).order_by(RUN.c.id.desc()).limit(1)).scalar()


def simulation_exists(engine: Engine, simulation_id: str) -> bool:
    """Whether the store holds this simulation: a published run, or ingested records."""
    with engine.connect() as conn:
        return bool(conn.execute(select(RUN.c.id).where(RUN.c.simulation_id == simulation_id).limit(1)).first()
                    or conn.execute(select(R.c.id).where(*Filters(simulation_id).record_conditions()).limit(1))
                    .first())


def intersections_of(engine: Engine, simulation_id: str | None, limit: int = 21) -> list[str]:
    """The intersections the store holds figures of (of this simulation, or of any), in order, at most `limit`:
    read from the per-(run, intersection) roll-ups ingestion keeps, a row per run and intersection."""
    q = select(IR.c.intersection_id).distinct().order_by(IR.c.intersection_id).limit(limit)
    if simulation_id is not None:
        q = q.where(IR.c.run_id == select(RUN.c.id).where(RUN.c.simulation_id == simulation_id).scalar_subquery())
    with engine.connect() as conn:
        return list(conn.execute(q).scalars())


def intersection_exists(engine: Engine, simulation_id: str | None, intersection_id: str) -> bool:
    """Whether the store holds figures of this intersection (in this simulation, or in any)."""
    q = select(IR.c.run_id).where(IR.c.intersection_id == intersection_id).limit(1)
    if simulation_id is not None:
        q = q.where(IR.c.run_id == select(RUN.c.id).where(RUN.c.simulation_id == simulation_id).scalar_subquery())
    with engine.connect() as conn:
        return conn.execute(q).first() is not None


def metric_names(engine: Engine) -> list[str]:
    """Every metric name a run-level chart can plot: the record-derived figures and the stored runs' metrics."""
    with engine.connect() as conn:
        stored = conn.execute(select(M.c.name).distinct()).scalars().all()
    return sorted({*RECORD_METRICS, *stored})


def live_metrics(engine: Engine, simulation_id: str | None, intersection_id: str | None) -> dict | None:
    """The newest interval of a run (default: the latest run): one entry per intersection with its signals."""
    simulation_id = simulation_id or latest_simulation_id(engine)
    if simulation_id is None:
        return None
    f = Filters(simulation_id, intersection_id)
    cond = f.record_conditions()
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(R.c.timestamp)).where(*cond)).scalar()
        if latest is None:
            if not simulation_exists(engine, simulation_id):  # no such simulation, not one with no records yet
                return None
            return {"simulation_id": simulation_id, "timestamp": None, "intersections": []}
        recs = conn.execute(select(R).where(*cond, R.c.timestamp == latest).order_by(R.c.intersection_id)).mappings().all()
        sigs = conn.execute(select(S).where(S.c.record_id.in_([r["id"] for r in recs]))
                            .order_by(S.c.record_id, S.c.direction)).mappings().all()
    by_record = defaultdict(list)
    for s in sigs:
        by_record[s["record_id"]].append({k: v for k, v in s.items() if k != "record_id"})
    items = [{"intersection_id": r["intersection_id"], "total_vehicles_passed": r["total_vehicles_passed"],
              "avg_wait_time_all_sides": r["avg_wait_time_all_sides"], "throughput": r["throughput"],
              "avg_speed": r["avg_speed"], "emergency_overrides": r["emergency_overrides"],
              "signals": by_record[r["id"]]} for r in recs]
    waits = [i["avg_wait_time_all_sides"] for i in items if i["avg_wait_time_all_sides"] is not None]
    speeds_kmh = [i["avg_speed"] for i in items if i["avg_speed"] is not None]
    totals = {"vehicles_passed": sum(i["total_vehicles_passed"] for i in items),
              "avg_wait_time": _f(sum(waits) / len(waits)) if waits else None,
              "avg_speed": _f(sum(speeds_kmh) / len(speeds_kmh)) if speeds_kmh else None}
    return {"simulation_id": simulation_id, "timestamp": _iso(latest), "totals": totals, "intersections": items}


def performance_comparison(engine: Engine, scenario: str | None, metrics: list[str]) -> dict:
    """Mean of each metric per controller: chart-ready labels and one dataset per metric."""
    runs = run_table(engine, scenario)
    controllers = sorted({r["controller"] for r in runs})
    datasets = []
    for name in metrics:
        data = []
        for c in controllers:
            vals = [r["metrics"][name] for r in runs if r["controller"] == c and r["metrics"].get(name) is not None]
            data.append(_f(sum(vals) / len(vals)) if vals else None)
        datasets.append({"label": name, "data": data})
    return {"scenario": scenario, "labels": controllers, "datasets": datasets,
            "runs": {c: sum(1 for r in runs if r["controller"] == c) for c in controllers}}


def wait_time_trend(engine: Engine, simulation_ids: list[str], f: Filters, bucket_s: int | None) -> dict:
    """Average wait over time, one series per run, on a shared time axis."""
    series, labels = [], set()
    for sim in simulation_ids:
        result = interval_figures(engine, sim, f, bucket_s, limit=100_000, offset=0)
        points = result[1] if result else []
        series.append({"name": sim, "points": {p["timestamp"]: p["avg_wait_time"] for p in points}})
        labels.update(p["timestamp"] for p in points)
    axis = sorted(labels)
    return {"labels": axis, "series": [{"name": s["name"], "data": [s["points"].get(t) for t in axis]}
                                       for s in series]}


def performance_scatter(engine: Engine, scenario: str | None, x: str, y: str) -> dict:
    """One point per run: x and y metric, labelled with controller and seed."""
    points = [{"simulation_id": r["simulation_id"], "scenario": r["scenario"], "controller": r["controller"],
               "seed": r["seed"], "x": r["metrics"].get(x), "y": r["metrics"].get(y)}
              for r in run_table(engine, scenario)]
    return {"x": x, "y": y, "points": [p for p in points if p["x"] is not None and p["y"] is not None]}


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (RUN, R, S, M, HiresEvent.__table__, IR, DR, *[lv.table for lv in LEVELS])}


