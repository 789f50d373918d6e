"""Predictions: what a controller would do now, checked by a shield seeded with the signal's state.

`POST /api/v1/ml/predict` takes an observation as JSON plus the signal's
current phase and time in phase. The controller (the request's, else the
live run's, else max-pressure) decides; a fresh shield, seeded with that
phase and time, checks the decision exactly as the loop's shield would; the
answer says which phase the signal would serve, with what confidence,
whether the fallback served it, and why. Nothing here touches the live
runtime's state: every prediction builds its own controller and shield.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from signalwise.control.base import (
    ControlContext,
    ControllerUnavailable,
    UnknownController,
    check_usable,
    make,
)
from signalwise.control.shield import IntersectionShield
from signalwise.control.webster import fallback_plan
from signalwise.core.names import MAX_INTERSECTION_ID_CHARS
from signalwise.core.types import Intersection, LaneState, Observation, SourceHealth
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import checked, shield_config

from ..errors import field_error, one_line
from ..middleware import json_body

router = APIRouter(prefix="/api/v1/ml", tags=["ml"])

MAX_BATCH = 1000
#: the most lanes (and detectors) one prediction's observation may name
MAX_LANES = 1000


class LaneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue_veh: int = Field(ge=0, description="halting vehicles")
    count_veh: int = Field(ge=0, description="vehicles on the lane")
    occupancy: float = Field(0.0, ge=0, le=1, description="share of time the lane's detectors are occupied, 0..1")
    mean_speed_mps: float = Field(0.0, ge=0, description="mean speed, m/s")
    wait_s: float = Field(0.0, ge=0, description="accumulated waiting time of the lane's vehicles, s")


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=64)
    age_s: float = Field(0.0, ge=0, description="age of the source's newest data, s")
    healthy: bool = True
    reason: str = ""


class PredictIn(BaseModel):
    """One signal at one moment: its observation and where it stands."""

    model_config = ConfigDict(extra="forbid")
    intersection_id: str = Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS)
    time_s: float = Field(3600.0, ge=0, description="the observation's time, s (only differences matter)")
    phase_number: int = Field(ge=1, description="the green phase now (1-based, as in the event log)")
    time_in_phase_s: float = Field(ge=0, description="seconds this phase has been green")
    # bounded: a prediction runs on the server's event loop, and no signal has more lanes or detectors than this
    lanes: dict[str, LaneIn] = Field(default_factory=dict, max_length=MAX_LANES,
                                     description="incoming and outgoing lanes by SUMO lane id")
    detector_idle_s: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, max_length=MAX_LANES,
        description="seconds since each detector last saw a vehicle (0 while occupied)")
    sources: list[SourceIn] = Field(default_factory=list, max_length=64,
                                    description="age and health of each source of the data")
    controller: str | None = Field(None, max_length=500, description=(
        "a built-in controller or a registry model (ql:@active, ql:@v3), never a path on the server; default: "
        "the live run's, else max-pressure"))


class PredictOut(BaseModel):
    intersection_id: str
    controller: str
    action: Literal["hold", "change"] = Field(description="keep the phase now, or begin its clearance")
    phase_number: int = Field(description="the phase served next: the current one on hold, the next green on change")
    confidence: float = Field(description="the controller's confidence in [0, 1]")
    fallback: bool = Field(description="the shield's Webster fallback decided instead of the controller")
    reasons: list[str] = Field(description="the shield's interventions: rule and why")


def _intersections(request: Request, scenario: str | None) -> dict[str, Intersection]:
    rt = getattr(request.app.state, "live", None)
    if scenario is None and rt is not None and rt.stepper is not None:
        return rt.stepper.by_id
    if scenario is None:
        raise field_error(("query", "scenario"), "no live run is attached: name the network with ?scenario= (a "
                                                 "built-in or resco:NAME)", "missing")
    return probed_intersections(scenario)


@functools.lru_cache(maxsize=64)  # every built-in and RESCO network, and then some
def probed_intersections(scenario: str) -> dict[str, Intersection]:
    """The signals of a scenario's network; 404 for an unknown scenario.

    Read by SUMO loading the network in a process of its own: libsumo holds the interpreter's lock while it
    loads (0.5 s for a RESCO grid), which in the server's process would stall every other request, and it
    holds one simulation per process, which a live run attached to the server may be using.
    """
    from concurrent.futures import ProcessPoolExecutor

    from signalwise.sim.processes import fresh_process_context, in_callers_env

    with ProcessPoolExecutor(1, mp_context=fresh_process_context(), max_tasks_per_child=1) as pool:
        inters, error = pool.submit(in_callers_env(_read_signals), scenario).result()
    if error is not None:
        raise HTTPException(404, error)
    return {i.id: i for i in inters}


def _read_signals(scenario: str) -> tuple[list[Intersection], str | None]:
    """In a fresh process: the network's controllable signals, or why the scenario cannot be read."""
    from signalwise.envs.episode import probe_network
    from signalwise.runtime.loop import resolve_scenario
    from signalwise.sim.scenario import ScenarioError

    try:
        cfg = RunConfig(scenario=scenario)
        return probe_network(cfg, resolve_scenario(cfg))[0], None
    except (ScenarioError, ValueError) as exc:
        return [], str(exc).strip().splitlines()[-1]


_FALLBACKS: dict[tuple, object] = {}


def _fallback(inter: Intersection, ctx: ControlContext):
    """The Webster fallback of an intersection, planned once: it only reads the signal status (shared safely)."""
    key = (id(inter), inter.id, ctx.step_length_s)
    plan = _FALLBACKS.get(key)
    if plan is None:
        if len(_FALLBACKS) > 10_000:
            _FALLBACKS.clear()
        plan = _FALLBACKS[key] = fallback_plan(inter, ctx)
    return plan


def predict_one(body: PredictIn, inters: dict[str, Intersection], default_controller: str, cfg: RunConfig,
                signal_controllers: dict[str, str] | None = None) -> PredictOut:
    """`default_controller` decides unless the body names one, or `signal_controllers` (a live run's signals
    switched to another controller than the run's) names the signal's own."""
    default_controller = (signal_controllers or {}).get(body.intersection_id, default_controller)
    inter = inters.get(body.intersection_id)
    if inter is None:
        raise HTTPException(404, f"unknown intersection {body.intersection_id!r}; known: {', '.join(sorted(inters))}")
    if body.phase_number > len(inter.phases):
        raise field_error(("body", "phase_number"), f"{inter.id} has phases 1..{len(inter.phases)}, not "
                                                    f"{body.phase_number}")
    spec = body.controller or default_controller
    if spec != default_controller:
        _refuse_server_paths(spec)
    ctx = ControlContext(cfg.step_length_s, {}, cfg.seed, dict(cfg.controller_options))
    try:
        ctrl = make(spec, inter, ctx)
        check_usable(ctrl, f"controller {spec!r} cannot run at signal {inter.id!r}")
    except (UnknownController, ControllerUnavailable) as exc:
        raise field_error(("body", "controller"), str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a model that cannot load for this intersection
        raise field_error(("body", "controller"), f"controller {spec!r} cannot run at signal {inter.id!r}: "
                                                  f"{str(exc).strip().splitlines()[-1]}") from None
    start = body.time_s - body.time_in_phase_s
    shield = IntersectionShield(inter, _fallback(inter, ctx), shield_config(cfg), start_s=start,
                                initial_phase=body.phase_number - 1)
    shield.seed_green(body.phase_number - 1, start, body.time_s)
    obs = checked(Observation(
        body.time_s, inter.id, {k: LaneState(v.queue_veh, v.count_veh, v.occupancy, v.mean_speed_mps, v.wait_s)
                                for k, v in body.lanes.items()},
        dict(body.detector_idle_s), signal=shield.status(body.time_s),
        sources=tuple(SourceHealth(s.source, s.age_s, s.healthy, s.reason) for s in body.sources)))
    try:
        decision = ctrl.decide(obs)
        shield.propose(decision, obs)
        confidence = float(decision.confidence)
    except Exception:  # noqa: BLE001 - a broken controller: the shield's fallback answers, as in the loop
        shield.propose(None, obs, failed=True)
        confidence = 0.0
    shield.tick(body.time_s)
    changing = shield.interval != "green"
    phase = (shield.next_phase if changing else shield.phase) + 1
    return PredictOut(intersection_id=inter.id, controller=spec, action="change" if changing else "hold",
                      phase_number=phase, confidence=round(confidence, 4), fallback=shield.in_fallback,
                      reasons=[f"{iv.rule}: {iv.detail}" for iv in shield.interventions])


def _refuse_server_paths(spec: str) -> None:
    """A request's controller names no file on the server: a built-in controller, or a registry model
    (`ql:@active`, `ql:@v3`). A model directory (`ql:/srv/models/x`) would load whatever the path holds, and
    the different refusals of paths that exist and paths that do not would tell a caller which ones do. The
    live run's own controller, chosen by the server's operator, is not the request's and stays allowed."""
    from signalwise.control.plugins import network_refusal

    why = network_refusal(spec)  # py:MODULE:FACTORY would run a module the request names
    if why:
        raise field_error(("body", "controller"), why)
    kind, _, arg = spec.partition(":")
    if arg and not arg.startswith("@"):
        raise field_error(("body", "controller"), f"controller {spec!r}: a request names no file on the server; "
                                                  f"use a built-in controller or a registry model ({kind}:@active, "
                                                  f"{kind}:@v3)")


def _defaults(request: Request) -> tuple[str, RunConfig]:
    rt = getattr(request.app.state, "live", None)
    if rt is not None:
        return rt.controller_spec, rt.cfg
    return "max-pressure", RunConfig()


def _signal_controllers(request: Request) -> dict[str, str]:
    """A live run's signals switched to another controller than the run's (a copy: the loop changes it)."""
    rt = getattr(request.app.state, "live", None)
    return dict(getattr(rt, "signal_specs", None) or {})


def _with_registry(request: Request, specs: set[str], cfg: RunConfig) -> RunConfig:
    """`cfg` with the registry's models for the `ql:@…` among `specs` that it lacks (resolved now)."""
    have = cfg.controller_options.get("registry_models") or {}
    missing = [s for s in specs if s.partition(":")[2].startswith("@")
               and s.partition(":")[2][1:].partition("?")[0] not in have]
    if not missing:
        return cfg
    from signalwise.runtime.commands import registry_options

    from ..registry_ops import registry

    try:
        extra = registry_options(missing, registry=registry(request))
    except ControllerUnavailable as exc:
        raise field_error(("body", "controller"), str(exc)) from None
    options = {**cfg.controller_options, **extra, "registry_models": {**extra["registry_models"], **have}}
    return cfg.model_copy(update={"controller_options": options})


#: the lookups of a prediction (the body's signal, the query's network)
PREDICT_NOT_FOUND = {404: {"description": "the body's intersection_id is not a signal of the network, or ?scenario= "
                                          "names no network this server can read"}}


@router.post("/predict", response_model=PredictOut, responses=PREDICT_NOT_FOUND,
             summary="What the controller would do now, as the shield allows")
async def predict(request: Request, body: PredictIn,  # ~40 µs of CPU: cheaper on the loop than a thread hop
            scenario: Annotated[str | None, Query(description="the network, when no live run is attached")] = None
            ) -> PredictOut:
    controller, cfg = _defaults(request)
    own = _signal_controllers(request)
    spec = body.controller or own.get(body.intersection_id, controller)
    if "@" in spec:  # the registry's database and model files: off the loop, which a slow database would stall
        cfg = await run_in_threadpool(_with_registry, request, {spec}, cfg)
    if scenario is None:
        inters = _intersections(request, None)
    else:  # the first prediction on a network starts SUMO to read its signals: off the event loop all requests share
        inters = await run_in_threadpool(_intersections, request, scenario)
    return predict_one(body, inters, controller, cfg, own)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[PredictIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemOut(BaseModel):
    ok: bool
    result: PredictOut | None = None
    error: str | None = Field(None, description="why this item has no prediction (the others still do)")


#: batches predicted at once (more wait, see `BATCH_WAIT_S`): a batch's work shares the interpreter's lock with the
#: event loop and a live run's loop, so two at once would take the same time in all and slow every other request
MAX_CONCURRENT_BATCHES = 1
#: how long a batch waits for its turn before it is refused with 503 and Retry-After: a little more than the 3 s a
#: 63 MB batch (1,000 items of 850 lanes) took on a 2-core machine
BATCH_WAIT_S = 5
_BATCH_SCHEMA = BatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
_BATCH_SCHEMA.pop("$defs")  # PredictIn and the models it holds: among the components, for POST /predict's body
_BATCH_OUT = TypeAdapter(list[BatchItemOut])


@router.post(
    "/predict/batch", response_model=list[BatchItemOut],
    summary=f"Up to {MAX_BATCH} independent predictions (historical analysis); each fails alone",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
    responses={404: {"description": "?scenario= names no network this server can read (an item naming a signal "
                                    "the network lacks fails alone, in its `error`)"},
               413: {"description": "a body larger than 64 MiB, or 2 MiB without a credential"},
               503: {"description": f"another batch is being predicted and did not end within {BATCH_WAIT_S} s "
                                    "(Retry-After)"}},
)
async def predict_batch(request: Request,
                        scenario: Annotated[str | None, Query(description="the network, when no live run is attached")
                                            ] = None) -> Response:
    """The body is read once the caller is authorized (a body parameter would be read, and parsed whole, before),
    then predicted one batch at a time in a worker thread, an item at a time (`_predict_all`)."""
    body = await json_body(request)  # bounded by `BodyLimit`: 64 MiB with a credential, 2 MiB without
    slots = _batch_slots(request.app)
    try:
        async with asyncio.timeout(BATCH_WAIT_S):
            await slots.acquire()
    except TimeoutError:
        raise HTTPException(503, f"another batch of predictions is running and did not end within {BATCH_WAIT_S} s; "
                                 f"this server predicts {MAX_CONCURRENT_BATCHES} at a time: retry later",
                            headers={"Retry-After": str(BATCH_WAIT_S)}) from None
    try:
        answer = await run_in_threadpool(_predict_all, request, body, scenario)
    finally:
        slots.release()
    return Response(answer, media_type="application/json")


def _batch_slots(app) -> asyncio.Semaphore:  # noqa: ANN001 - a FastAPI app
    """The app's count of batches being predicted (made in the loop that serves it: tests serve many apps)."""
    slots = getattr(app.state, "predict_batch_slots", None)
    if slots is None:
        slots = app.state.predict_batch_slots = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)
    return slots


def _predict_all(request: Request, body: bytes, scenario: str | None) -> bytes:
    """The answer to a batch, as JSON. Each item is validated and predicted in turn, then dropped: validated
    whole, a 63 MB batch takes about 600 MB more and holds the interpreter's lock for the 2 s of its parse, which
    stalls the event loop even from a worker thread."""
    controller, cfg = _defaults(request)
    own = _signal_controllers(request)
    inters = _intersections(request, scenario)
    out = []
    for item in _batch_items(body):
        spec = item.controller or own.get(item.intersection_id, controller)
        if "@" in spec:  # the registry's model, resolved once: cfg then holds it
            cfg = _with_registry(request, {spec}, cfg)
        try:
            out.append(BatchItemOut(ok=True, result=predict_one(item, inters, controller, cfg, own)))
        except HTTPException as exc:
            out.append(BatchItemOut(ok=False, error=one_line(exc)))
    return _BATCH_OUT.dump_json(out)


_ITEMS_START = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"items"[ \t\n\r]*:[ \t\n\r]*(?=\[)')  # JSON's whitespace only
_BODY_END = re.compile(rb"\][ \t\n\r]*\}[ \t\n\r]*\Z")


def _batch_items(body: bytes) -> Iterator[PredictIn]:
    """The batch's items, each validated from its own JSON text when it comes (`BatchIn`'s rules).

    The items array is cut into its elements by the store's `split_array` (the cut a batch of records gets): a
    wrong cut can only fail to validate, never pass. A body it cannot cut (not `{"items": [...]}`), or a piece
    that fails, is validated whole by `BatchIn` instead, which names every problem as a body parameter's
    validation would (422), within the body's bound."""
    from signalwise.store.pipeline import split_array

    head = _ITEMS_START.match(body)
    tail = _BODY_END.search(body, max(0, len(body) - 4096)) if head else None
    bounds = split_array(body[head.end():tail.start() + 1]) if head and tail else None
    if bounds is not None and len(bounds) > MAX_BATCH:
        raise RequestValidationError([{"loc": ("body", "items"), "type": "too_long", "msg": (
            f"List should have at most {MAX_BATCH} items after validation, not {len(bounds)}")}])
    given = 0
    if bounds is not None:
        offset = head.end()
        for a, b in bounds:
            try:
                item = PredictIn.model_validate_json(body[offset + a:offset + b])
            except ValidationError:
                break
            given += 1
            yield item
        else:
            return
    try:
        batch = BatchIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None
    yield from batch.items[given:]  # valid whole though a piece failed: a wrong cut (none is known)
