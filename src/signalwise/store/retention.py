"""Retention: what is kept how long, and `signalwise db purge` to remove what is older.

A run goes whole (its records, roll-ups, metrics, hi-res events and detector
configuration with it: the foreign keys and triggers cascade) once it is older than `records`
days. A run's time is its newest record, or its start when later: a
simulated run's records carry the simulated clock (`core.eventlog.DEFAULT_START`,
a fixed day), not the day it ran. A live run goes by its status in its
directory's run.json: running, it is a feed and never goes whole; ended
(stopped, complete, died), its time is its end (at `--speed` above 1 its
records run ahead of the wall clock). A run that stays and whose records are on
the wall clock (a running live run; no start, or a newest record not before it: a feed, a live
run) loses its records older than `records` days one by one, and the
roll-ups of what it lost are rebuilt from the rows left
(`rollups.recompute`, as a re-send does), so a `simulation_id` fed day after
day is aged out too; its hi-res events go `events` days after they were
stored. Hi-res events of no stored run (imported controller logs, tagged or
not) go `events` days after they were stored (`stored_at`), not by their
own timestamps, which may be a simulated clock; alerts, runtime changes and
submitted performance figures go by their own time.
Defaults are in `DEFAULT_DAYS` and documented in docs/store.md; the API's
settings can override them
(`SIGNALWISE_RETENTION_DAYS='{"events": 30}'`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from .cli_engine import DB_HELP

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: days each kind of data is kept
DEFAULT_DAYS = {"records": 365, "events": 180, "alerts": 365, "changes": 730, "ml_metrics": 365}


def purge(engine: Engine, days: dict[str, float], now: dt.datetime | None = None, dry_run: bool = False,
          removed: list[dict] | None = None) -> dict:
    """Remove what is older than its retention; returns how many of each went (or would go).

    `removed`, if given, receives one entry per run that loses records: its `simulation_id`, the `records`
    that go and whether the run goes `whole`."""
    # imported here: registering `db purge` must not load SQLAlchemy for `signalwise --help`
    from sqlalchemy import delete, func, select

    from .tables import Alert, HiresEvent, IntersectionRecordRow, Run, RuntimeChange, SubmittedMetric
    from .timefmt import days_before
    from .violations import VIOLATION_DAYS  # purged by purge_violations

    now = now or dt.datetime.now(dt.UTC)
    days = {k: v for k, v in days.items() if k not in VIOLATION_DAYS}
    unknown = sorted(set(days) - set(DEFAULT_DAYS))
    if unknown:
        raise ValueError(f"unknown retention kind(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_DAYS)}")
    days = {**DEFAULT_DAYS, **days}
    cut = {k: days_before(now, v, k) for k, v in days.items()}
    runs_t, rec_t, ev_t = Run.__table__, IntersectionRecordRow.__table__, HiresEvent.__table__
    al_t, ch_t, mm_t = Alert.__table__, RuntimeChange.__table__, SubmittedMetric.__table__
    span = (select(rec_t.c.run_id, func.max(rec_t.c.timestamp).label("newest"), func.count().label("records"),
                   func.count().filter(rec_t.c.timestamp < cut["records"]).label("old"))
            .group_by(rec_t.c.run_id).subquery())
    every_run = (select(runs_t.c.id, runs_t.c.simulation_id, span.c.newest, span.c.records, span.c.old,
                        runs_t.c.started_at, runs_t.c.created_at, runs_t.c.config)
                 .outerjoin(span, span.c.run_id == runs_t.c.id).order_by(runs_t.c.simulation_id))
    out = {}
    with engine.begin() as conn:
        every = conn.execute(every_run).all()
        live = {r.id: _live_state(r, now) for r in every}
        runs = [r for r in every if not live[r.id].running and (live[r.id].ended or _run_time(r)) < cut["records"]]
        gone = {r.id for r in runs}
        fed = [r for r in every if r.id not in gone and (live[r.id].running or _on_the_wall_clock(r))]
        trimmed = [r for r in fed if r.old]
        if removed is not None:
            removed.extend([{"simulation_id": r.simulation_id, "records": int(r.records or 0), "whole": True}
                            for r in runs] + [{"simulation_id": r.simulation_id, "records": int(r.old),
                                               "whole": False} for r in trimmed])
        sims = [r.simulation_id for r in runs]
        old = ev_t.c.stored_at < cut["events"]
        # events of no stored run (imported logs) and of a fed run go `events` days after they were stored
        events_where = (ev_t.c.simulation_id.not_in(select(runs_t.c.simulation_id))
                        | ev_t.c.simulation_id.in_([r.simulation_id for r in fed])) & old
        if sims:
            events_where = events_where | ev_t.c.simulation_id.in_(sims)
        counts = {
            "runs": len(runs),
            "events": conn.execute(select(func.count()).select_from(ev_t).where(events_where)).scalar_one(),
            "alerts": conn.execute(select(func.count()).select_from(al_t).where(al_t.c.raised_at < cut["alerts"]))
            .scalar_one(),
            "changes": conn.execute(select(func.count()).select_from(ch_t).where(ch_t.c.at < cut["changes"]))
            .scalar_one(),
            "ml_metrics": conn.execute(select(func.count()).select_from(mm_t)
                                       .where(mm_t.c.interval_start < cut["ml_metrics"])).scalar_one(),
        }
        out.update(counts)
        if dry_run:
            return out
        if runs:
            conn.execute(delete(runs_t).where(runs_t.c.id.in_([r.id for r in runs])))
        if trimmed:
            _trim_records(conn, [r.id for r in trimmed], cut["records"])
        conn.execute(delete(ev_t).where(events_where))
        conn.execute(delete(al_t).where(al_t.c.raised_at < cut["alerts"]))
        conn.execute(delete(ch_t).where(ch_t.c.at < cut["changes"]))
        conn.execute(delete(mm_t).where(mm_t.c.interval_start < cut["ml_metrics"]))
    if runs or trimmed:
        from .ingest import notify_written

        notify_written()
    return out


class _LiveState(NamedTuple):
    running: bool = False  #: a live run still running: a feed, never removed whole
    ended: dt.datetime | None = None  #: when a live run that ended did (stopped, complete, died)


def _live_state(run, now: dt.datetime) -> _LiveState:  # noqa: ANN001 - a row of `purge`'s runs
    """A live run's state from its run directory's `run.json` (the `run_dir` its stored configuration names):
    running, or when it ended. Its records cannot tell: at `--speed S` a record is stamped at the run's wall
    start + S times the wall seconds since, hours ahead of the wall clock at S > 1. Any other run, and a live run
    whose directory cannot be read here, is judged by its times (`_LiveState()`)."""
    from ..outdirs import run_status
    from .live import still_running

    config = run.config if isinstance(run.config, dict) else {}
    if not config.get("live") or not isinstance(config.get("run_dir"), str):
        return _LiveState()
    run_dir = Path(config["run_dir"])
    shown = run_status(run_dir)  # a run whose process has certainly ended shows `died`
    if not shown:
        return _LiveState()
    if still_running(shown, run_dir) is not None:
        return _LiveState(running=True)
    ends = [_aware(shown.get(k)) for k in ("finished", "died_at", "found_dead_at")]
    # a run found dead names no end: it ended by its newest record, or now when that is ahead of the wall clock
    return _LiveState(ended=next((t for t in ends if t is not None), min(_run_time(run), now)))


def _aware(text: object) -> dt.datetime | None:
    """An ISO time with its offset from a run.json, None when absent or unreadable."""
    try:
        t = dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return t if t is not None and t.tzinfo is not None else None


def _on_the_wall_clock(run) -> bool:  # noqa: ANN001 - a row of `purge`'s runs
    """Whether a run's records are dated by the wall clock (a feed, a live run), so each can age on its own:
    no start, or a newest record not before it. A simulated run's records are dated before its start (the
    simulated clock's fixed day): it goes whole."""
    return run.newest is not None and (run.started_at is None or run.newest >= run.started_at)


def _trim_records(conn, run_ids: list[int], cut: dt.datetime) -> None:  # noqa: ANN001 - a Connection
    """Delete these runs' records older than `cut` (their signal rows follow by trigger) and rebuild the
    roll-ups of every (run, intersection) that lost some: its whole-run totals and the buckets its lost span
    touched, from the rows left (`rollups.recompute`, as a re-send does)."""
    from . import rollups
    from .timefmt import sqlite_text

    dialect = conn.dialect.name
    mark = "?" if dialect == "sqlite" else "%s"
    bound = sqlite_text(cut.astimezone(dt.UTC)) if dialect == "sqlite" else cut
    cur = conn.connection.dbapi_connection.cursor()
    spans: dict[tuple, list] = {}
    for run_id in run_ids:
        cur.execute(f"SELECT intersection_id, min(timestamp), max(timestamp) FROM intersection_records "
                    f"WHERE run_id = {mark} AND timestamp < {mark} GROUP BY intersection_id", (run_id, bound))
        spans.update({(run_id, inter): [first, last] for inter, first, last in cur.fetchall()})
        cur.execute(f"DELETE FROM intersection_records WHERE run_id = {mark} AND timestamp < {mark}", (run_id, bound))
    rollups.recompute(cur, spans, dialect)
    cur.close()


def _run_time(run) -> dt.datetime:  # noqa: ANN001 - a row of `purge`'s runs
    """When a run happened: its newest record, or its start when later; with neither, when it was stored."""
    times = [t for t in (run.newest, run.started_at) if t is not None]
    return max(times) if times else run.created_at


def purge_command(
    older_than_days: Annotated[float | None, typer.Option(help="one retention for everything (default: each kind's own)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, remove nothing")] = False,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Remove runs, events, alerts, changes, submitted figures and camera violations older than their retention
    (docs/store.md)."""
    from .cli_engine import engine_or_exit, settings_or_exit, writes_or_exit
    from .timefmt import days_before
    from .violations import VIOLATION_DAYS, purge_violations

    settings = settings_or_exit()
    days = dict(settings.retention_days)
    if older_than_days is not None:
        if older_than_days < 0:
            typer.secho("error: --older-than-days must not be negative", fg="red", err=True)
            raise typer.Exit(2)
        days = dict.fromkeys((*DEFAULT_DAYS, *VIOLATION_DAYS), older_than_days)
    unknown = sorted(set(days) - set(DEFAULT_DAYS) - set(VIOLATION_DAYS))
    if unknown:
        typer.secho(f"error: unknown retention kind(s) {', '.join(unknown)}; known: "
                    f"{', '.join((*DEFAULT_DAYS, *VIOLATION_DAYS))}", fg="red", err=True)
        raise typer.Exit(2)
    try:  # every period checked before anything goes: the two purges below are two transactions
        for kind, period in days.items():
            days_before(dt.datetime.now(dt.UTC), period, kind)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    engine = engine_or_exit(db or settings.database_url, existing=True, migrate=not dry_run)
    removed: list[dict] = []
    try:
        with writes_or_exit(engine, "cannot purge"):
            counts = purge(engine, days, dry_run=dry_run, removed=removed)
            seen = purge_violations(engine, days, dry_run=dry_run)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    verb = "would remove" if dry_run else "removed"
    trimmed = [r for r in removed if not r["whole"]]
    typer.echo(f"{verb}: {counts['runs']} run(s) with their records and events, "
               f"{sum(r['records'] for r in trimmed)} older records of {len(trimmed)} run(s) that stay, "
               f"{counts['events']} hi-res events, "
               f"{counts['alerts']} alerts, {counts['changes']} runtime changes, {counts['ml_metrics']} submitted "
               f"performance intervals, {seen['violations']} camera violations, {seen['evidence_images']} evidence "
               f"images, {seen['evidence_access']} evidence-access log entries")
    for r in removed:
        what = "the whole run" if r["whole"] else "older records (the run stays)"
        typer.echo(f"  {r['simulation_id']}: {what}, {r['records']} records")
    if not dry_run and (any(counts.values()) or removed or any(seen.values())):
        _served_from_cache_note()
    if not dry_run:
        _space_note(engine)


def _space_note(engine: Engine) -> None:
    """SQLite: checkpoint the WAL (the removal's writes leave it as large as what went) and say how much a
    `db vacuum` would give back to the disk: a removal frees pages inside the file, not on the disk."""
    from .maintenance import checkpoint, megabytes, reclaimable_bytes

    free = reclaimable_bytes(engine)
    if free is None:  # PostgreSQL: autovacuum makes the space reusable; `db vacuum` runs it now
        return
    checkpoint(engine)
    if free:
        typer.echo(f"{megabytes(free)} of the database file is free pages: signalwise db vacuum gives it back "
                   "to the disk (docs/store.md#disk-space)")


def vacuum_command(db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None) -> None:
    """Give the space of removed rows back: SQLite checkpoints its WAL and rewrites the file without its free
    pages; PostgreSQL runs VACUUM (ANALYZE) on the store's tables (docs/store.md#disk-space)."""
    from .cli_engine import engine_or_exit, writes_or_exit
    from .maintenance import megabytes, vacuum

    engine = engine_or_exit(db, existing=True)
    with writes_or_exit(engine, "cannot vacuum"):
        done = vacuum(engine)
    from .engine import shown_url

    if done.tables:
        typer.echo(f"vacuumed {len(done.tables)} tables of {shown_url(engine)} (VACUUM (ANALYZE)): "
                   f"{megabytes(done.before_bytes)} -> {megabytes(done.after_bytes)} with their indexes; the space "
                   "of removed rows is reused by later writes (VACUUM FULL gives it to the disk, locking each table)")
    else:
        typer.echo(f"vacuumed {shown_url(engine)}: {megabytes(done.before_bytes)} -> "
                   f"{megabytes(done.after_bytes)} on disk (the file with its -wal)")


def run_contents(engine: Engine, simulation_id: str) -> dict:
    """What `ingest.forget_run` would remove for this id: whether a run is stored, and its records, run
    metrics, detector configuration rows, and the hi-res events tagged with the id (a stored run's, or an
    imported log's `--simulation-id`)."""
    from sqlalchemy import func, select

    from .tables import DetectorConfigRow, HiresEvent, IntersectionRecordRow, Run, RunMetric

    runs, ev = Run.__table__, HiresEvent.__table__
    with engine.connect() as conn:
        run_id = conn.execute(select(runs.c.id).where(runs.c.simulation_id == simulation_id)).scalar()
        events = conn.execute(select(func.count()).select_from(ev).where(ev.c.simulation_id == simulation_id)
                              ).scalar_one()
        out = {"run": run_id is not None, "records": 0, "run_metrics": 0, "detectors": 0, "events": int(events)}
        if run_id is not None:
            for key, table in (("records", IntersectionRecordRow), ("run_metrics", RunMetric),
                               ("detectors", DetectorConfigRow)):
                t = table.__table__
                out[key] = int(conn.execute(select(func.count()).select_from(t).where(t.c.run_id == run_id))
                               .scalar_one())
    return out


def forget_command(
    simulation_id: Annotated[str, typer.Argument(help="the run's simulation id (or an imported log's --simulation-id)")],
    yes: Annotated[bool, typer.Option("--yes", help="remove without asking (required unless --dry-run)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, remove nothing")] = False,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Remove one run whole: its records, roll-ups, run metrics, detector configuration and the hi-res events
    tagged with its id (docs/store.md)."""
    from .cli_engine import engine_or_exit, writes_or_exit
    from .ingest import forget_run

    engine = engine_or_exit(db, existing=True, migrate=not dry_run)
    found = run_contents(engine, simulation_id)
    what = (f"run {simulation_id}: {found['records']} records, {found['run_metrics']} run metrics, "
            f"{found['detectors']} detector rows, {found['events']} hi-res events")
    if not found["run"] and not found["events"]:
        typer.secho(f"error: no run nor hi-res events named {simulation_id!r} in the store", fg="red", err=True)
        raise typer.Exit(1)
    if dry_run:
        typer.echo(f"would remove {what}")
        return
    if not yes:
        typer.secho(f"error: would remove {what}; add --yes to remove it (--dry-run to only count)",
                    fg="red", err=True)
        raise typer.Exit(2)
    with writes_or_exit(engine, "cannot forget"):
        forget_run(engine, simulation_id)
    typer.echo(f"removed {what}")
    _served_from_cache_note()
    _space_note(engine)


def _served_from_cache_note() -> None:
    """Say, on stderr, that a server running on the store may go on answering what was just removed: each API
    process caches analytics answers for SIGNALWISE_CACHE_TTL_S (`api/cache.py`) and learns nothing of another
    process's deletes, so until then some routes answer from the cache and others (uncached) 404."""
    from .settings import Settings

    try:  # the TTL of this environment, most likely the server's; the command has done its work either way
        ttl = f"{Settings().cache_ttl_s:g} s here"
    except Exception:  # noqa: BLE001 - a bad SIGNALWISE_* variable the command itself did not need
        ttl = "default 30 s"
    typer.echo(f"note: a signalwise server running on this store may still answer what was removed from its "
               f"cache for up to SIGNALWISE_CACHE_TTL_S ({ttl}); POST /api/v1/admin/clear-cache (an admin key) "
               "drops it at once (on a server of several --workers, the cache of the worker that takes the call)",
               err=True)


def register(app: typer.Typer) -> None:
    from .commands import db_app

    db_app.command("purge")(purge_command)
    db_app.command("forget")(forget_command)
    db_app.command("vacuum")(vacuum_command)
