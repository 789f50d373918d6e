"""GET /api/v1/analytics/alerts and /changes: what live runs stored, read from the store.

`/api/v1/live/alerts` and `/live/changes` read the live runtime attached to this server, so they answer 503
under `signalwise serve` and say nothing of a run that has ended. These read the `alerts` and
`runtime_changes` rows a live run's writer stored (`store/live.py`), whether or not a run is going.

A stored alert never cleared means different things: the run still raises it, or the run ended (stopped,
complete, failed, or killed with SIGKILL, which leaves `cleared_at` NULL for good) with the alert open. Each
alert says which (`state`), from what this server knows: the live run attached to it and its active set,
else the run's own `run.json` (`outdirs.run_status`: a `running` run whose process is gone is `died`). The
stored row is never rewritten by a read.

Not cached: `state` reads the live runtime, which changes between two reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import Engine

from signalwise.outdirs import run_status
from signalwise.runtime.live.alerts import RUN_DIED_REASON, RUN_ENDED_REASON
from signalwise.store import live_history
from signalwise.store.tables import ALERT_LEVELS, CHANGE_RESULTS

from ..deps import EngineDep, Identifier, Moment, PageDep, paged, time_range

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

#: statuses of a run that goes on (or is about to): an alert of it not cleared is still open
GOING = ("starting", "running")
#: an alert acknowledged this close before it cleared was cleared by its acknowledgement (an
#: `until_acknowledged` rule clears in the same call; both instants are taken within milliseconds)
ACK_CLEARS_WITHIN_S = 1.0

SimulationQuery = Annotated[Identifier | None, Query(description="only this run")]
StartQuery = Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")]
EndQuery = Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")]


def _utc_range(start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) in UTC; an empty or reversed range is a 422, as the other analytics routes answer it."""
    time_range(start, end)
    return (start.astimezone(dt.UTC) if start else None, end.astimezone(dt.UTC) if end else None)


def live_here(request: Request) -> tuple[str, object] | None:
    """(simulation id, runtime) of the live run attached to this server process, if any. Its simulation id is
    its store writer's (`signalwise live` names it after the run directory, as it is without a store)."""
    rt = getattr(request.app.state, "live", None)
    if rt is None:
        return None
    store = getattr(rt, "store", None)
    return (getattr(store, "simulation_id", None) or rt.run_dir.name), rt


def run_statuses(request: Request, dirs: dict[str, str], simulation_ids: list[str]) -> dict[str, dict]:
    """For each run: `status` and `status_reason` as known here. The live run attached to this server says its
    own; any other run's `run.json` in its recorded run directory does (read once per run asked for: a page,
    never the whole table). Null when nothing here knows (no run directory recorded, or one on another
    machine); `running` for a run of another host that `run.json` says is running, since nothing here can
    tell that it died."""
    live = live_here(request)
    out = {}
    for simulation_id in dict.fromkeys(simulation_ids):
        if live is not None and live[0] == simulation_id:
            out[simulation_id] = {"status": live[1].status_text, "status_reason": None}
            continue
        shown = run_status(dirs[simulation_id]) if simulation_id in dirs else {}
        status = shown.get("status")
        out[simulation_id] = {"status": status if isinstance(status, str) else None,
                              "status_reason": shown.get("reason") if isinstance(shown.get("reason"), str) else None}
    return out


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc_text(text: str | None) -> str | None:
    moment = _instant(text)
    return None if moment is None else moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def cleared_because(alert: dict) -> str:
    """Why a cleared alert cleared: its run ended (cleared then, or by the next start after a kill: its
    `cleared_reason`), its rule was removed or changed (`PUT /api/v1/live/config/alerts` marks the message so), it
    was acknowledged (an `until_acknowledged` rule), or its figure came back within the rule."""
    message = alert.get("message") or ""
    if (alert.get("cleared_reason") or "").startswith((RUN_ENDED_REASON, RUN_DIED_REASON)):
        return "run_ended"
    if message.endswith("(rule removed)"):
        return "rule_removed"
    if message.endswith("(rule changed)"):
        return "rule_changed"
    acked, cleared = _instant(alert.get("acknowledged_at")), _instant(alert.get("cleared_at"))
    if acked is not None and cleared is not None and dt.timedelta(0) <= cleared - acked < dt.timedelta(
            seconds=ACK_CLEARS_WITHIN_S):
        return "acknowledged"
    return "recovered"


def with_state(alert: dict, run: dict, live: tuple[str, object] | None) -> dict:
    """The alert with `state`, `cleared_because` and its run's `run_status`; see `docs/api.md`."""
    state = "open"
    if alert["cleared_at"] is None and live is not None and live[0] == alert["simulation_id"] \
            and live[1].status_text in GOING and getattr(live[1], "alerts", None) is not None:
        engine = live[1].alerts
        if any(a.id == alert["id"] for a in engine.active()):
            state = "active"
        else:  # cleared by the run a moment ago, its row not rewritten yet
            try:
                now = engine.get(alert["id"])
            except KeyError:
                now = None
            if now is not None and now.cleared_at_s is not None:
                alert = {**alert, "cleared_at": _utc_text(now.cleared_wall_time), "cleared_at_s": now.cleared_at_s,
                         "acknowledged_by": now.acknowledged_by, "acknowledged_at": _utc_text(now.acknowledged_at),
                         "cleared_reason": now.cleared_reason}
    if alert["cleared_at"] is not None:
        state = "cleared"
    elif state == "open" and run["status"] is not None and run["status"] not in GOING:
        state = "open_at_run_end"
    return {**alert, "state": state, "cleared_because": cleared_because(alert) if state == "cleared" else None,
            "run_status": run["status"], "run_status_reason": run["status_reason"]}


def _known(engine: Engine, request: Request, simulation_id: str | None, total: int) -> None:
    """A 404 for a `simulation_id` nothing knows (a typo answered 200 with nothing, as a run without alerts)."""
    if simulation_id is None or total:
        return
    live = live_here(request)
    if (live is None or live[0] != simulation_id) and not live_history.live_run_known(engine, simulation_id):
        raise HTTPException(404, f"simulation {simulation_id!r} not found")


@router.get("/alerts", responses={404: {"description": "no stored run of that simulation_id"}},
            summary="Stored alerts of live runs, newest raised first, each with its state: cleared "
                               "(when, why), active, or open at the run's end (the run stopped or died)")
def stored_alerts(request: Request, engine: EngineDep, p: PageDep, simulation_id: SimulationQuery = None,
                  level: Annotated[Literal[ALERT_LEVELS] | None, Query(description="only this level")] = None,
                  rule: Annotated[Identifier | None, Query(description="only this rule's alerts")] = None,
                  cleared: Annotated[bool | None, Query(description="true: only cleared; false: only never "
                                                                    "cleared (active or open at the run's end)")] = None,
                  start: StartQuery = None, end: EndQuery = None) -> dict:
    start, end = _utc_range(start, end)
    f = live_history.AlertFilters(simulation_id, level, rule, cleared, start, end)
    total, items = live_history.stored_alerts(engine, f, p.limit, p.offset)
    _known(engine, request, simulation_id, total)
    sims = [a["simulation_id"] for a in items]
    runs = run_statuses(request, live_history.run_dirs(engine, sims), sims)
    live = live_here(request)
    return paged(total, [with_state(a, runs[a["simulation_id"]], live) for a in items], p)


@router.get("/changes", responses={404: {"description": "no stored run of that simulation_id"}}, summary="Stored changes made to live runs, newest first: who, when, what, applied or "
                                "refused and why")
def stored_changes(request: Request, engine: EngineDep, p: PageDep, simulation_id: SimulationQuery = None,
                   kind: Annotated[Identifier | None, Query(description="only this kind (timing, shield, "
                                                                         "controller, override, ...)")] = None,
                   made_by: Annotated[Identifier | None, Query(description="only changes made by this key's "
                                                                            "name (`restart` for replays)")] = None,
                   result: Annotated[Literal[CHANGE_RESULTS] | None, Query(description="applied or refused")] = None,
                   start: StartQuery = None, end: EndQuery = None) -> dict:
    start, end = _utc_range(start, end)
    f = live_history.ChangeFilters(simulation_id, kind, made_by, result, start, end)
    total, items = live_history.stored_changes(engine, f, p.limit, p.offset)
    _known(engine, request, simulation_id, total)
    return paged(total, items, p)
