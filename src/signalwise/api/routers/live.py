"""The live runtime's windows: status, snapshot, profiler, alerts, and changes at run time.

Every route answers 503 when no live run is attached (`signalwise serve`
over stored runs). Changes are validated by the runtime before anything is
applied: a refused change gets 422 with its reason and is recorded as
refused. "Who" is the API key's name (`local` for an anonymous local caller).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.alerts import AlreadyAcknowledged

from ..auth import who
from ..errors import refusal
from ..times import utc_times

router = APIRouter(prefix="/api/v1/live", tags=["live"])


def _runtime(request: Request):
    rt = getattr(request.app.state, "live", None)
    if rt is None:
        raise HTTPException(503, "no live run is attached to this server (start one with `signalwise live`)")
    return rt


class ControllerFaultCounts(BaseModel):
    """What the controllers did wrong since the run began, as the snapshot counts it (`controller_faults`)."""

    decisions: int = Field(description="decisions the controllers were asked for")
    errors: int = Field(description="times their `decide` raised: the shield's Webster fallback served in their place")
    invalid_proposals: int = Field(description=(
        "proposals the shield could not follow as given: a phase the signal does not have (the current green was "
        "held) or a decision it cannot read (the Webster fallback served)"))


class CoordinationPlan(BaseModel):
    """A signal's coordinated plan, as a batch run's metrics.json `coordination` gives it (`control/coordinated.py`)."""

    cycle_s: float = Field(description="the common cycle")
    offset_s: float = Field(description="the signal's offset in the cycle")
    green_onset_s: list[float] = Field(description="per phase, where its green starts in the cycle")
    split_s: list[float] = Field(description="per phase, its split: green + yellow + all-red")
    clearance_s: list[float] = Field(description="per phase, its yellow + all-red as the shield serves them")
    green_s: list[float] = Field(description="per phase, its green")


class NotCoordinated(BaseModel):
    """A signal running the Free pattern (254), and why."""

    not_coordinated: str = Field(description=(
        "why: `coordinated` cannot coordinate the signal (its splits cannot hold the shield's minimums, ...: the "
        "batch run's reason), or its controller is no longer `coordinated` (`its controller 'fixed' runs no "
        "coordination pattern`)"))


class LiveStatus(BaseModel):
    running: bool
    status: str = Field(description="running | complete | stopped | failed: <reason>")
    scenario: str
    controller: str = Field(description="the run's controller spec (the baseline when toggled)")
    signal_controllers: dict[str, str] = Field(default_factory=dict, description=(
        "signals a change switched to another controller than the run's, with theirs"))
    pending_controllers: dict[str, str] = Field(default_factory=dict, description=(
        "signals whose controller switch (or return from an override) is applied but pending until the signal's "
        "next green, never mid-clearance, with the controller that takes over then; the snapshot's "
        "`controller_since_s` says when it did"))
    sim_time_s: float | None = Field(description="simulated seconds")
    speed: float | None = Field(description="simulated seconds per wall second; null = unpaced")
    step_length_s: float = Field(description="simulated seconds per loop tick (snapshots come at most once a tick)")
    sim_pid: int | None = Field(description="the process running SUMO (null without a simulator)")
    field: str
    sink: str
    restarts: int = Field(description="simulator crashes recovered")
    last_recovery_s: float | None = Field(description="wall seconds the last recovery took")
    run_dir: str
    overrides: dict[str, str] = Field(description="operator overrides in force, per intersection")
    coordination: dict[str, CoordinationPlan | NotCoordinated] = Field(default_factory=dict, description=(
        "per signal whose log names a coordination pattern (131): its plan (cycle, offset, splits), or why it runs "
        "Free (`not_coordinated`), as a batch run's metrics.json `coordination` and the run's run.json give it; "
        "a signal never coordinated is left out"))
    feeds: dict[str, dict] = Field(default_factory=dict, description=(
        "a --field none run's inputs: `detectors` (messages accepted, rejected, rejected_by_code, repeated_events, "
        "repeated_counts, corrected_counts, late_corrections, late_messages, and repeated_state: on/off events not "
        "logged because their detector was already in that state; faulty_detectors: each detector whose data are "
        "left out now, with device_id, channel and reason) and, with --mqtt, `mqtt` (broker, connected, "
        "connection_error, received: payloads as they arrive, messages_received: the messages in those handled, "
        "accepted, rejected, retained: retained messages refused, queued: received and not yet handled, dropped: "
        "payloads the full intake queue dropped); and in any live run `preempt`: the preemption input's calls "
        "(accepted, refused, placed, ended, lapsed, in_force, last_refused_reason, lapse_after_s, by_transport; "
        "docs/live-feeds.md, Preemption calls)"))
    alerts_webhook: dict | None = Field(None, description=(
        "with alerts.webhook_url: its deliveries (url, sent, failed, dropped, queued, last_error); null without one"))
    store: dict | None = Field(None, description=(
        "with --db: while the run goes, the store writer's figures (database, written, buffered_rows, "
        "buffered_on_disk, db_ok, unavailable_s, overflow_rows, last_error, buffer_dir); once ended, what was "
        "stored and what still waits; null without --db"))
    lasting_changes_file: str | None = Field(None, description=(
        "where the corridor's lasting changes (timing, shield, alert rules, controller) are kept: a later live run "
        "of it applies them again at start"))
    controller_faults: ControllerFaultCounts | None = Field(None, description=(
        "the controllers' errors and invalid proposals since the run began, as of the latest snapshot; "
        "controller_errors.csv in the run directory lists each kind; null before the run's first snapshot"))


@router.get("/status", response_model=LiveStatus, summary="Is the live run going, where, and how it has fared")
def status(request: Request) -> dict:
    rt = _runtime(request)
    answer = rt.status()
    if not answer["running"]:  # a page's last look (see live_command._end_streams)
        request.app.state.live_last_looks.add()
    lasting = getattr(rt, "site_changes_file", None)  # a page says a change outlives the run, and where it is kept
    # from the snapshot, not the loop's own counters: a reader never holds the loop's state while it changes
    return utc_times({**answer, "lasting_changes_file": str(lasting) if lasting is not None else None,
                      "controller_faults": rt.snapshot.controller_faults})


class Counter:
    """A count that threads add to (sync routes run in a thread pool); read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


@router.get("/snapshot", responses={404: {"description": "an intersection_id the run does not have (named)"}},
            summary="The latest immutable snapshot: every signal's phase, interval, timers, queues")
def snapshot(request: Request,
             intersection_id: Annotated[list[str] | None, Query(description="only these intersections")] = None) -> dict:
    snap = _runtime(request).snapshot.as_dict()
    if intersection_id:
        unknown = set(intersection_id) - {s["intersection_id"] for s in snap["signals"]}
        if unknown:
            raise HTTPException(404, f"unknown intersection(s): {', '.join(sorted(unknown))}")
        snap["signals"] = [s for s in snap["signals"] if s["intersection_id"] in intersection_id]
    return utc_times(snap)


@router.get("/profiler", summary="Per-stage timing over a sliding window (ms: p50, p95, p99, max)")
def profiler(request: Request) -> dict:
    return _runtime(request).profiler.figures()


@router.get("/alerts", summary="Active alerts and the most recent history")
def alerts(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    engine = _runtime(request).alerts
    if engine is None:
        return {"active": [], "history": []}
    return {"active": [_plain(a) for a in engine.active()], "history": [_plain(a) for a in engine.history(limit)]}


@router.post("/alerts/{alert_id}/ack", responses={
    404: {"description": "no such alert (or no alert engine in this run)"},
    409: {"description": "acknowledged already (by whom and when)"}}, summary="Acknowledge an alert")
def acknowledge(request: Request, alert_id: str) -> dict:
    runtime = _runtime(request)
    if runtime.alerts is None:
        raise HTTPException(404, "this run has no alert engine")
    try:
        return _plain(runtime.acknowledge_alert(alert_id, who(request)))
    except KeyError:
        raise HTTPException(404, f"no alert {alert_id!r}") from None
    except AlreadyAcknowledged as exc:  # the first acknowledgement is the record
        raise HTTPException(409, str(exc)) from None


@router.get("/changes", summary="Every change made to this live run: who, when, what, applied or refused")
def changes(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    return utc_times(_runtime(request).changes[-limit:])


#: seconds a client is told to wait (Retry-After) before it sends again a change the loop did not take in time
BUSY_RETRY_AFTER_S = 5


def _submit(request: Request, change) -> dict:
    """The runtime's answer; a refusal recorded and answered 422, or 404 for a signal the run lacks, or 409 for a
    change made from a timing revision no longer in force (with the one in force, `timing_revision`), or 503 with
    Retry-After for a valid change the loop did not take in time (nothing applied: the same request may be sent
    again; 422 is kept for a request wrong in itself, which a client must not repeat)."""
    rt = _runtime(request)
    try:
        return utc_times(rt.submit(change, who(request)))
    except ch.ChangeRefused as exc:
        rt.refuse(change, who(request), str(exc))
        message = f"change refused: {exc}"
        if isinstance(exc, ch.StaleTimingRevision):  # the error body every route has, and the revision to read
            return JSONResponse({"message": message, "detail": message, "timing_revision": exc.revision}, 409)
        if isinstance(exc, ch.LoopBusy):
            raise HTTPException(503, message, headers={"Retry-After": str(BUSY_RETRY_AFTER_S)}) from None
        if isinstance(exc, ch.UnknownIntersection):
            raise HTTPException(404, message) from None
        raise refusal(message) from None


#: what the changes a writer may send made from a timing revision can answer besides 422
STALE = {409: {"description": "made from a timing revision no longer in force (`timing_revision`: the one in force); "
                              "nothing applied"}}


@router.post("/changes", responses={**STALE, 404: {"description": "a signal_timing change names no signal of the run"}},
             summary="Apply one change (timing, signal_timing, shield, alerts, controller, override, cancel_override)")
def apply_change(request: Request, change: Annotated[ch.Change, Body()]) -> dict:
    if isinstance(change, ch.ControllerChange):
        return controller(request, change)  # the same change as the named route: `ql:@…` resolved there
    return _submit(request, change)


#: an unknown signal is 404 wherever it is named, in the path or in the body (`intersection_id`), as the timing routes
#: and `POST /changes` answer it: the thing asked for does not exist; 422 is for a request that is wrong in itself
UNKNOWN_SIGNAL = {404: {"description": "no such signal in the run (named, with the run's signals)"}}


@router.post("/override", responses=UNKNOWN_SIGNAL,
             summary="Hold a phase or place a call for it, for a stated duration (the shield still rules)")
def override(request: Request, change: ch.OverrideChange) -> dict:
    return _submit(request, change)


@router.delete("/override/{intersection_id}", responses=UNKNOWN_SIGNAL, summary="End an operator's override early")
def cancel_override(request: Request, intersection_id: Annotated[str, Path(
        min_length=1, max_length=ch.MAX_INTERSECTION_ID_CHARS)]) -> dict:
    return _submit(request, ch.CancelOverrideChange(intersection_id=intersection_id))


@router.post("/controller", responses={404: {"description": "`intersections` names a signal the run does not have"}},
             summary="Switch the controller: adaptive <-> baseline, or a deployed model")
def controller(request: Request, change: ch.ControllerChange) -> dict:
    """A `py:` controller loads a module the request names, which is running code on the server: refused (and
    recorded) unless it is the one the operator started the run with. An installed plugin is chosen by name. A
    model directory only inside the models directory, one answer for any other (`controller_models`)."""
    from ..controller_models import over_the_network

    rt = _runtime(request)
    change, why = over_the_network(change, rt.cfg.controller, request.app.state.settings.models_dir)
    if why:
        rt.refuse(change, who(request), why)
        raise refusal(f"change refused: {why}")
    if change.controller_options is None and change.controller.partition(":")[2].startswith("@"):
        from ..registry_ops import registry_controller_options  # ql:@active: what the registry says now

        change = change.model_copy(update={"controller_options": registry_controller_options(request, change.controller)})
    return _submit(request, change)


class LiveConfig(BaseModel):
    timing: dict = Field(description=(
        "the run configuration's `timing` in force: the last change's values (taken by each signal at its next "
        "green), or the run's own; null yellow_s / all_red_s / ped_clearance_s: each phase derives its own"))
    shield: dict = Field(description="the run configuration's `shield` in force (taken at once)")
    timing_revision: int = Field(description=(
        "timing changes applied in this run (signal_model.json's `timing_revisions`); 0: the timing it started with. "
        "Send it back as `based_on_revision` with a timing change to have it refused (409) if another came since"))
    signal_timing_revisions: dict[str, int] = Field(description=(
        "the revision each signal runs now; one below `timing_revision` takes the newest at its next green"))
    limits: dict[str, dict[str, dict[str, float]]] = Field(description=(
        "what a change may set, per section (`timing`, `shield`) and key: `min` / `max` (inclusive), `above` "
        "(exclusive lower bound): the run configuration's bounds, narrowed by the timing profile's (safety: "
        "maximum green at most 300 s, cycle maximum at most 600 s, yellow at least 3 s)"))
    derived: dict[str, dict[str, list[float]]] = Field(description=(
        "per signal, what each phase runs now (lists indexed like the phases, phase number 1 first): its clearances "
        "(`yellow_s`, `all_red_s`), numbers where the timing says null (derived per phase), and its `min_green_s` "
        "and `max_green_s` (its own, else the signal's; a phase serving a crosswalk at least walk + pedestrian "
        "clearance)"))
    passage_s: dict[str, list[float]] = Field(default_factory=dict, description=(
        "per signal whose controller in force times a passage (`actuated`), each phase's passage (gap) time, s "
        "(`controller_options.passage_s`, indexed like the phases); it changes with the controller"))


@router.get("/config", response_model=LiveConfig,
            summary="The timing and shield settings in force, and which timing revision each signal runs")
def config(request: Request) -> dict:
    """What `PUT /config/timing` and `PUT /config/shield` change, as it stands: read from the runtime's
    configuration (replaced whole by each change), the timing and its revision as one pair, so a writer that
    sends the revision back has it checked against the timing it read."""
    rt = _runtime(request)
    revision, timing = rt.timing_in_force()
    shields = list(rt.stepper.shields.items()) if rt.stepper is not None else []
    shields.sort(key=lambda kv: kv[0])
    return {"timing": timing.model_dump(mode="json"), "shield": rt.cfg.shield.model_dump(mode="json"),
            "timing_revision": revision,
            "signal_timing_revisions": {tls: sh.timing_revision for tls, sh in shields},
            "limits": change_limits(timing.profile, rt.shield_floors()),
            "derived": {tls: _phase_timing(sh.inter.timing, len(sh.inter.phases)) for tls, sh in shields},
            "passage_s": _passages(rt)}


def _phase_timing(t, phases: int) -> dict[str, list[float]]:
    return {"yellow_s": [t.yellow_of(i) for i in range(phases)], "all_red_s": [t.all_red_of(i) for i in range(phases)],
            "min_green_s": list(t.min_green_s), "max_green_s": list(t.max_green_s)}


def _passages(rt) -> dict[str, list[float]]:
    """Each phase's passage where the controller in force times one (an override's, the controller under it), so
    an operator sees it beside the phase's greens; read from a copy of the map, as the shields are."""
    controllers = list(rt.stepper.controllers.items()) if rt.stepper is not None else []
    out = {}
    for tls, ctrl in sorted(controllers, key=lambda kv: kv[0]):
        passages = getattr(getattr(ctrl, "inner", ctrl), "phase_passage_s", None)
        if passages:
            out[tls] = [float(p) for p in passages]
    return out


def change_limits(profile: str, shield_floors: dict[str, float] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """The bounds the server checks a timing or shield change against, read from the run configuration's own
    fields (and the safety profile's limits, and `shield_floors`: a live run's, `LiveRuntime.shield_floors`), so a
    form offers no value the server refuses."""
    from signalwise.runtime.config import ShieldSettings, TimingConfig
    from signalwise.runtime.profiles import SAFETY, SAFETY_LIMITS

    out: dict[str, dict[str, dict[str, float]]] = {"timing": {}, "shield": {}}
    for section, model in (("timing", TimingConfig), ("shield", ShieldSettings)):
        for name, info in model.model_fields.items():
            bounds: dict[str, float] = {}
            for m in info.metadata:
                for attr, key in (("ge", "min"), ("gt", "above"), ("le", "max")):
                    if getattr(m, attr, None) is not None:
                        bounds[key] = float(getattr(m, attr))
            if section == "timing" and profile == SAFETY and name in SAFETY_LIMITS:
                low, high = SAFETY_LIMITS[name]
                if low is not None:
                    bounds["min"] = max(bounds.get("min", low), low)
                if high is not None:
                    bounds["max"] = min(bounds.get("max", high), high)
            if section == "shield" and name in (shield_floors or {}):
                bounds["min"] = max(bounds.get("min", shield_floors[name]), shield_floors[name])
            if bounds:
                out[section][name] = bounds
    return out


@router.put("/config/timing", responses=STALE, summary="New safety timing, taken by each signal at its next green")
def timing(request: Request, change: ch.TimingChange) -> dict:
    """The keys sent replace those in force; a `per_intersection` replaces every signal's own values (one
    signal's: `PUT /config/timing/intersections/{id}`, which keeps the others')."""
    return _submit(request, change)


class SignalTimingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    timing: ch.FiniteMap = Field(description=(
        "the signal's own values (keys of the run configuration's `timing`, seconds; null yellow_s / all_red_s / "
        "ped_clearance_s: derived per phase), replacing the ones it had; keys left out follow the defaults"))
    based_on_revision: ch.Revision | None = Field(None, description=(
        "the `timing_revision` read (GET /config): refused with 409, nothing applied, when this signal's own "
        "values have changed since; left out: applied over whatever is in force"))


IntersectionId = Annotated[str, Path(min_length=1, max_length=ch.MAX_INTERSECTION_ID_CHARS)]


def _revision_digits(value: object) -> object:
    """A revision in a query string is text: decimal digits only, as `timing_revision` is written. Lax parsing
    would read `1.0` and `+1` as 1 and `1_0` as 10, a revision the client never read."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("a timing revision is decimal digits only, as GET /config gives timing_revision")
    return value


@router.put("/config/timing/intersections/{intersection_id:path}", responses={**STALE, **UNKNOWN_SIGNAL},
            summary="One signal's own safety timing, the other signals' kept; taken at its next green")
def signal_timing(request: Request, intersection_id: IntersectionId, body: SignalTimingIn) -> dict:
    """Merged into the map in force by the loop when it applies the change, so operators changing different
    signals at once both keep theirs (resending the whole map would drop the one made meanwhile)."""
    return _submit(request, ch.SignalTimingChange(intersection_id=intersection_id, timing=body.timing,
                                                  based_on_revision=body.based_on_revision))


@router.delete("/config/timing/intersections/{intersection_id:path}", responses={**STALE, **UNKNOWN_SIGNAL},
               summary="Remove one signal's own safety timing: it runs the defaults again, from its next green")
def signal_timing_removed(request: Request, intersection_id: IntersectionId, based_on_revision: Annotated[
        int | None, Query(ge=0, description="as for PUT: refused with 409 when this signal's own values have "
                                            "changed since that revision; decimal digits only (422 otherwise)"),
        BeforeValidator(_revision_digits)] = None) -> dict:
    return _submit(request, ch.SignalTimingChange(intersection_id=intersection_id, timing=None,
                                                  based_on_revision=based_on_revision))


@router.put("/config/shield", summary="New shield thresholds (confidence, data age, preemption)")
def shield(request: Request, change: ch.ShieldChange) -> dict:
    return _submit(request, change)


@router.put("/config/alerts", summary="The operator's alert rules, beside the run's own (which stay), without a restart")
def alert_rules(request: Request, change: ch.AlertRulesChange) -> dict:
    """Replaces the previous operator change's rules. The run's own (built-in and `--config`) stay: a rule of the
    same name adjusts one (422 for a built-in's other metric or operator, or a safety alert loosened past its
    limits); an unknown metric is 422 with the known ones."""
    return _submit(request, change)


class AlertRuleInForce(BaseModel):
    model_config = ConfigDict(extra="allow")  # the rule's own fields (AlertRule) beside these
    name: str
    metric: str
    origin: str = Field(description="built-in | configuration (the run's --config) | operator (a PUT added it)")
    adjusted: bool = Field(description="a rule the run started with, adjusted by an operator's change")
    removable: bool = Field(description="an operator's change can drop it (only the operator's own rules)")
    limits: dict | None = Field(description=(
        "a built-in safety alert: how far it may be adjusted (max_threshold, max_for_s, min_level)"))


class AlertRulesInForce(BaseModel):
    rules: list[AlertRuleInForce]
    metrics: list[str] = Field(description="what a rule may name (`family.<key>`: one figure per signal or camera)")


@router.get("/config/alerts", response_model=AlertRulesInForce, summary="The alert rules in force, and where each comes from")
def alert_rules_in_force(request: Request) -> dict:
    from signalwise.runtime.live.alerts import known_metrics

    engine = _runtime(request).alerts
    return {"rules": engine.rules_in_force() if engine is not None else [], "metrics": known_metrics()}


def _plain(obj) -> dict:
    import dataclasses

    return utc_times(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj))


# an empty `intersections` is refused (422), as a controller change refuses it: it is not "every signal", which
# is leaving it out, and a deploy or a rollback of every signal by mistake is the costliest reading of it
class DeployIn(BaseModel):
    version: str = Field(min_length=1, max_length=32, description="a registered version, e.g. v3")
    intersections: list[str] | None = Field(None, min_length=1,
                                            description="default: every signal of the run the version fits")


class RollbackIn(BaseModel):
    intersections: list[str] | None = Field(None, min_length=1, description="default: every signal with a deployment")


#: what the registry's refusals of a deploy or rollback answer
REGISTRY_REFUSALS = {404: {"description": "no such version in the registry, or a signal the run does not have"},
                     409: {"description": "the version does not fit, nothing is deployed there to roll back, or the "
                                          "live run refused the change (the registry is unchanged)"}}


@router.post("/deploy", responses=REGISTRY_REFUSALS, summary="Deploy a registered model version; the live run takes it at a safe point")
def deploy(request: Request, body: DeployIn) -> dict:
    """The registry's own deploy (as `signalwise models deploy` and POST /api/v1/ml/deploy/{model_id}), after the
    version was tried on each signal's layout; then `ql:@active` where it is active. Answers the change record."""
    from ..registry_ops import deploy as deploy_version

    return utc_times(deploy_version(request, body.version, body.intersections, require_live=True).live_change)


@router.post("/rollback", responses=REGISTRY_REFUSALS, summary="Roll back to the previously active version; the live run follows")
def rollback(request: Request, body: RollbackIn) -> dict:
    """The registry's own rollback (as `signalwise models rollback`); signals left with no model run the
    Webster plan. Answers the first change record (the signals that run a model again, if any)."""
    from ..registry_ops import rollback as rollback_versions

    out = rollback_versions(request, body.intersections, require_live=True)
    if out.live_changes:
        return utc_times(out.live_changes[0])
    return {"kind": "registry", "who": who(request), "result": "applied", "reason": "no signal of the live run is "
            "among them", "payload": {"active": out.active}}
