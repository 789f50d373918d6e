"""Retention: what is kept how long, and `signalwise db purge` to remove what is older.

Runs go whole (their records, roll-ups, metrics, hi-res events and detector
configuration with them: the foreign keys and triggers cascade), once they are older than `records`
days, so no run is ever left half there and no roll-up disagrees with its
rows. A run's time is its newest record, or its start when later: a
simulated run's records carry the simulated clock (`core.eventlog.DEFAULT_START`,
a fixed day), not the day it ran. Hi-res events of no stored run (imported
controller logs, tagged or not), alerts, runtime changes and submitted
performance figures go by their own time.
Defaults are in `DEFAULT_DAYS` and documented in docs/store.md; the API's
settings can override them
(`SIGNALWISE_RETENTION_DAYS='{"events": 30}'`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from .cli_engine import DB_HELP

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: days each kind of data is kept
DEFAULT_DAYS = {"records": 365, "events": 180, "alerts": 365, "changes": 730, "ml_metrics": 365}


def purge(engine: Engine, days: dict[str, float], now: dt.datetime | None = None, dry_run: bool = False) -> dict:
    """Remove what is older than its retention; returns how many of each went (or would go)."""
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
    newest = (select(rec_t.c.run_id, func.max(rec_t.c.timestamp).label("newest")).group_by(rec_t.c.run_id)
              .subquery())
    every_run = select(runs_t.c.id, runs_t.c.simulation_id, newest.c.newest, runs_t.c.started_at,
                       runs_t.c.created_at).outerjoin(newest, newest.c.run_id == runs_t.c.id)
    out = {}
    with engine.begin() as conn:
        runs = [r for r in conn.execute(every_run) if _run_time(r) < cut["records"]]
        sims = [r.simulation_id for r in runs]
        # hi-res timestamps are naive local time; events of no stored run (imported logs) go by their own age
        naive_cut = cut["events"].astimezone().replace(tzinfo=None)
        events_of_runs = ev_t.c.simulation_id.in_(sims) if sims else None
        old_events = ev_t.c.simulation_id.not_in(select(runs_t.c.simulation_id)) & (ev_t.c.timestamp < naive_cut)
        events_where = old_events if events_of_runs is None else (old_events | events_of_runs)
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
        conn.execute(delete(ev_t).where(events_where))
        conn.execute(delete(al_t).where(al_t.c.raised_at < cut["alerts"]))
        conn.execute(delete(ch_t).where(ch_t.c.at < cut["changes"]))
        conn.execute(delete(mm_t).where(mm_t.c.interval_start < cut["ml_metrics"]))
    return out


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
    engine = engine_or_exit(db or settings.database_url, existing=True)
    try:
        with writes_or_exit(engine, "cannot purge"):
            counts = purge(engine, days, dry_run=dry_run)
            seen = purge_violations(engine, days, dry_run=dry_run)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb}: {counts['runs']} run(s) with their records and events, {counts['events']} hi-res events, "
               f"{counts['alerts']} alerts, {counts['changes']} runtime changes, {counts['ml_metrics']} submitted "
               f"performance intervals, {seen['violations']} camera violations, {seen['evidence_images']} evidence "
               f"images, {seen['evidence_access']} evidence-access log entries")


def register(app: typer.Typer) -> None:
    from .commands import db_app

    db_app.command("purge")(purge_command)
