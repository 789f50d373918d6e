"""Reading back what live runs stored: their alerts and runtime changes, and where their run directories are.

Read-only: a live run's writer (`store/live.py`) owns these rows. An alert left uncleared by a run that was
killed stays so here; what that means is said by the reader (`api/routers/live_history.py`), which knows
whether the run still goes, never by rewriting the row.

Pages come as the other analytics queries give them: (total, rows of the page), newest first, times as
UTC instants (`...Z`), so the pages of one query line up whatever the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import Engine, select

from .queries import _iso, _page
from .tables import Alert, Run, RuntimeChange

A = Alert.__table__
C = RuntimeChange.__table__
RUN = Run.__table__


@dataclasses.dataclass(frozen=True)
class AlertFilters:
    """Which stored alerts: of one run, a level, a rule, cleared or not, raised in [start, end) (UTC)."""

    simulation_id: str | None = None
    level: str | None = None
    rule: str | None = None
    cleared: bool | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def conditions(self) -> list:
        cond = []
        if self.simulation_id is not None:
            cond.append(A.c.simulation_id == self.simulation_id)
        if self.level is not None:
            cond.append(A.c.level == self.level)
        if self.rule is not None:
            cond.append(A.c.rule == self.rule)
        if self.cleared is True:
            cond.append(A.c.cleared_at.is_not(None))
        elif self.cleared is False:
            cond.append(A.c.cleared_at.is_(None))
        if self.start is not None:
            cond.append(A.c.raised_at >= self.start)
        if self.end is not None:
            cond.append(A.c.raised_at < self.end)
        return cond


@dataclasses.dataclass(frozen=True)
class ChangeFilters:
    """Which stored changes: of one run, a kind, made by someone, applied or refused, made in [start, end)."""

    simulation_id: str | None = None
    kind: str | None = None
    made_by: str | None = None
    result: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def conditions(self) -> list:
        cond = []
        for column, value in ((C.c.simulation_id, self.simulation_id), (C.c.kind, self.kind),
                              (C.c.who, self.made_by), (C.c.result, self.result)):
            if value is not None:
                cond.append(column == value)
        if self.start is not None:
            cond.append(C.c.at >= self.start)
        if self.end is not None:
            cond.append(C.c.at < self.end)
        return cond


def stored_alerts(engine: Engine, f: AlertFilters, limit: int, offset: int) -> tuple[int, list[dict]]:
    """(total, one page of alerts), newest raised first (ties by id, so pages never overlap)."""
    q = select(A).where(*f.conditions()).order_by(A.c.raised_at.desc(), A.c.id.desc())
    with engine.connect() as conn:
        total, rows = _page(conn, q, limit, offset)
    return total, [_alert(r) for r in rows]


def _alert(r) -> dict:  # noqa: ANN001 - a row mapping of `alerts`
    return {"id": r["id"], "simulation_id": r["simulation_id"], "rule": r["rule"], "level": r["level"],
            "metric": r["metric"], "value": r["value"], "threshold": r["threshold"], "message": r["message"],
            "raised_at": _iso(r["raised_at"]), "raised_at_s": r["raised_at_s"],
            "cleared_at": _iso(r["cleared_at"]), "cleared_at_s": r["cleared_at_s"],
            "acknowledged_by": r["acknowledged_by"], "acknowledged_at": _iso(r["acknowledged_at"]),
            "subjects": r["subjects"], "cleared_reason": r["cleared_reason"]}


def stored_changes(engine: Engine, f: ChangeFilters, limit: int, offset: int) -> tuple[int, list[dict]]:
    """(total, one page of changes), newest first; `payload` parsed back into what was sent."""
    q = select(C).where(*f.conditions()).order_by(C.c.at.desc(), C.c.id.desc())
    with engine.connect() as conn:
        total, rows = _page(conn, q, limit, offset)
    return total, [_change(r) for r in rows]


def _change(r) -> dict:  # noqa: ANN001 - a row mapping of `runtime_changes`
    try:
        payload = json.loads(r["payload"])
    except ValueError:  # written by hand or by an older writer: shown as stored
        payload = r["payload"]
    return {"id": r["id"], "simulation_id": r["simulation_id"], "at": _iso(r["at"]), "sim_time_s": r["sim_time_s"],
            "made_by": r["who"], "kind": r["kind"], "payload": payload, "result": r["result"],
            "reason": r["reason"]}


def live_run_known(engine: Engine, simulation_id: str) -> bool:
    """Whether the store knows this run at all: its own row, or an alert or change stored under its id (a
    run's writer stores those whether or not the run was registered)."""
    with engine.connect() as conn:
        return any(conn.execute(q.limit(1)).first() for q in (
            select(RUN.c.id).where(RUN.c.simulation_id == simulation_id),
            select(A.c.id).where(A.c.simulation_id == simulation_id),
            select(C.c.id).where(C.c.simulation_id == simulation_id)))


def run_dirs(engine: Engine, simulation_ids: list[str]) -> dict[str, str]:
    """The run directory each of these runs recorded (`config.run_dir`, as `run --db`, `publish` and a live
    run's writer store it); runs without one are left out. One query for a page's runs, not the whole table."""
    if not simulation_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(RUN.c.simulation_id, RUN.c.config)
                            .where(RUN.c.simulation_id.in_(sorted(set(simulation_ids))))).all()
    found = {}
    for simulation_id, config in rows:
        if isinstance(config, str):  # JSON stored as text by an older writer
            try:
                config = json.loads(config)
            except ValueError:
                config = None
        run_dir = config.get("run_dir") if isinstance(config, dict) else None
        if isinstance(run_dir, str) and run_dir:
            found[simulation_id] = run_dir
    return found
