"""The model registry over HTTP: versions, status per intersection, deploy, rollback, history.

Every route calls the same registry functions as `signalwise models …` and
the live run (`store.model_registry`, through `api/registry_ops.py`). GETs
need `read`; deploy and rollback need `operate` (they change what runs);
removing a version needs `admin` (it deletes files nobody can bring back).
Times are UTC instants (ISO 8601).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from signalwise.core.names import MAX_INTERSECTION_ID_CHARS
from signalwise.store.model_registry import ModelVersion, RegistryError, copy_name

from .. import registry_ops as ops
from ..auth import who
from ..errors import field_error
from ..server_files import inside, outside

router = APIRouter(prefix="/api/v1/ml", tags=["ml"])

IdPath = Annotated[str, Path(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")]
VersionPath = Annotated[str, Path(min_length=1, max_length=16, description="a registered version, e.g. v3")]


class EvaluationOut(BaseModel):
    """The model's latest evaluation (`signalwise evaluate`) on held-out seeds, as recorded in it."""

    scenario: str | None = None
    seeds: list[int] = Field(default_factory=list, description="the held-out simulation seeds")
    baseline: str | None = Field(None, description="the controller it was compared with")
    avg_delay_s: float | None = Field(None, description="mean delay per vehicle with the model, s")
    baseline_avg_delay_s: float | None = Field(None, description="mean delay per vehicle with the baseline, s")
    change_pct: float | None = Field(None, description="change of the mean delay against the baseline, %")
    p_paired: float | None = Field(None, description="paired t-test p-value of the difference over the same seeds "
                                                     "(the one `evaluate` judges by)")
    p_welch: float | None = Field(None, description="Welch's t-test p-value of the difference")
    fallback_fraction: float | None = Field(None, description="share of decisions the fallback served, 0..1")
    violations: int | None = Field(None, description="shield violations the independent audit found")


class ModelOut(BaseModel):
    model_id: str = Field(description="the registry version (v1, v2, …): what deploy and `ql:@v3` name")
    scenario: str = Field(description="the network it was trained on")
    intersections: list[str] = Field(description="intersection ids it has a table for")
    layout_fingerprints: dict[str, str] = Field(description="per intersection, a hash of the layout it was "
                                                            "trained for (phases, lanes, state encoding)")
    episodes: int = Field(description="training episodes")
    registered_at: dt.datetime = Field(description="when it was registered (UTC)")
    registered_by: str = Field(description="the API key's name, `job:…`, `cli:<user>` or `import:<dir>`")
    source: str = Field(description="the directory (or training job) it was registered from")
    content_sha256: str = Field(description="SHA-256 of its file list (names and their SHA-256): changes when an "
                                            "evaluation is added to its meta.json")
    identity: str | None = Field(None, description=(
        "the model id `signalwise models show` prints and run.json records: SHA-256 of what decides its behaviour "
        "(its tables or policy and the options its controller reads), the same for the same weights however often "
        "trained, evaluated or registered; null only for a removed tabular version registered before ids were kept"))
    size_bytes: int = Field(description="its files' total size, bytes")
    active_at: list[str] = Field(description="intersections where it is the active version")
    last_evaluation: EvaluationOut | None = None
    removed_at: dt.datetime | None = Field(None, description="when its files were removed (UTC); null: it can run")
    removed_by: str | None = Field(None, description="who removed it")


def model_out(mv: ModelVersion, active: dict[str, str]) -> ModelOut:
    evaluations = mv.meta.get("evaluations") or []
    last = evaluations[-1] if evaluations else None
    return ModelOut(model_id=mv.version, scenario=mv.scenario, intersections=mv.intersections,
                    layout_fingerprints=mv.layouts, episodes=mv.episodes, registered_at=mv.registered_at,
                    registered_by=mv.registered_by, source=mv.source, content_sha256=mv.content_sha256,
                    identity=mv.model_id, size_bytes=mv.size_bytes, active_at=sorted(i for i, v in active.items() if v == mv.version),
                    last_evaluation=_evaluation_out(last) if last else None,
                    removed_at=mv.removed_at, removed_by=mv.removed_by)


def _evaluation_out(record: dict) -> EvaluationOut:
    """An evaluation as meta.json records it; one recorded before each p was named after its test keeps Welch's in
    `p_value` and the paired one in `p_value_paired`."""
    named = {"p_welch": record.get("p_welch", record.get("p_value")),
             "p_paired": record.get("p_paired", record.get("p_value_paired"))}
    return EvaluationOut.model_validate({**{k: v for k, v in record.items() if k in EvaluationOut.model_fields},
                                         **named})


@router.get("/models", response_model=list[ModelOut], summary="Every registered model version, oldest first")
def models(request: Request, removed: Annotated[bool, Query(description="also the removed versions")] = False,
           ) -> list[ModelOut]:
    reg = ops.registry(request)
    active = reg.active()
    return [model_out(v, active) for v in reg.versions(include_removed=removed)]


@router.get("/models/{model_id}", response_model=ModelOut,
            summary="One registered model version (a removed one too: its metadata stays)")
def model(request: Request, model_id: VersionPath) -> ModelOut:
    reg = ops.registry(request)
    try:
        return model_out(reg.get(model_id, include_removed=True), reg.active())
    except RegistryError as exc:
        raise ops.http_error(exc) from None


class RegisterIn(BaseModel):
    """A model directory to register, as `signalwise models add PATH [--again] [--unfinished]`."""

    model_config = ConfigDict(extra="forbid")
    model_dir: str = Field(min_length=1, max_length=1024, json_schema_extra={"examples": ["c1/model"]},
                           description="the model directory, inside SIGNALWISE_MODELS_DIR: relative to it or a "
                                       "path in it")
    again: bool = Field(False, description=(
        "register it as a new version even when the same model (the same model id, `identity`: its weights and "
        "the options that decide) is registered already, as `models add --again`; false: the version it is "
        "registered as is answered (200), nothing added"))
    unfinished: bool = Field(False, description="register a checkpoint of an unfinished training, which is refused "
                                                "otherwise (`models add --unfinished`)")


class RegisteredOut(ModelOut):
    already_registered: bool = Field(description=(
        "true (status 200): the same model (the same `identity`) is registered already, as this version (its "
        "first), and nothing was added; false (status 201): registered now as this version"))
    same_model_as: list[str] = Field(description="the other versions of the same model (the same `identity`)")
    message: str = Field(description="what was done, in the words of `signalwise models add`")


ALREADY_REGISTERED = ("the same model (the same model id, `identity`) is registered already: the answer is its "
                      "first version, nothing was added (`\"again\": true` registers it as a new version)")


@router.post("/models", response_model=RegisteredOut, status_code=201,
             summary="Register a model directory as the next version, or answer the version the same model is "
                     "registered as (signalwise models add)",
             responses={200: {"model": RegisteredOut, "description": ALREADY_REGISTERED},
                        201: {"description": "registered as a new version (`Location`: /api/v1/ml/models/{version})"},
                        409: {"description": "the registry refused it (another writer took the version name)"},
                        422: {"description": "a directory outside SIGNALWISE_MODELS_DIR, no model there, or a "
                                             "checkpoint of an unfinished training without `unfinished`"}})
def register(request: Request, body: RegisterIn, response: Response) -> RegisteredOut:
    from signalwise.control.learning.qtable import ModelError
    from signalwise.training.registry import already_registered_message, register_once

    settings = request.app.state.settings
    path = inside(body.model_dir, settings.models_dir)
    if path is None:
        raise field_error(("body", "model_dir"), outside("body.model_dir", "model directory", settings.models_dir,
                                                         "SIGNALWISE_MODELS_DIR", "or register it with `signalwise "
                                                         "models add` on the server")[len("body.model_dir: "):])
    reg = ops.registry(request)
    try:  # a directory that is no model says so in its own words, before any look-up (as the CLI)
        done = register_once(reg, path, again=body.again, who=who(request), allow_unfinished=body.unfinished)
    except ModelError as exc:
        reason = str(exc).strip().splitlines()[-1].replace(str(path), body.model_dir)
        raise field_error(("body", "model_dir"), reason.replace("--unfinished", '"unfinished": true')) from None
    except RegistryError as exc:
        raise ops.http_error(exc) from None
    mv, same = done.version, done.same_model_as
    if done.already:
        response.status_code = 200
        return RegisteredOut(**model_out(mv, reg.active()).model_dump(), already_registered=True, same_model_as=same,
                             message=already_registered_message(mv, '"again": true'))
    response.headers["Location"] = f"/api/v1/ml/models/{mv.version}"
    return RegisteredOut(**model_out(mv, reg.active()).model_dump(), already_registered=False, same_model_as=same,
                         message=f"registered {mv.version} ({mv.scenario}; model id {mv.model_id}) from "
                                 f"{body.model_dir}" + (f"; the same model as {', '.join(same)}" if same else ""))


class RemovedOut(ModelOut):
    freed_bytes: int = Field(description="bytes of files deleted (less than size_bytes where another version "
                                         "shares a file)")


@router.delete("/models/{model_id}", response_model=RemovedOut,
               summary="Remove a version's files; its metadata and name stay for the history",
               responses={404: {"description": "unknown or already removed version"},
                          409: {"description": "active somewhere, or a rollback would return to it"}})
def remove_model(request: Request, model_id: VersionPath) -> RemovedOut:
    reg = ops.registry(request)
    try:
        mv = reg.get(model_id)
        rt = ops.live_runtime(request)
        running = sorted(i for i, paths in (rt.model_paths() if rt is not None else {}).items()
                         if any(os.path.basename(p.rstrip("/")) == copy_name(mv) for p in paths))
        if running:  # named as `ql:@v3` by the live run, not deployed: the registry alone would not know
            raise HTTPException(409, f"{model_id} runs in the live run at {', '.join(running)}: switch those "
                                     "signals to another controller or version before removing it")
        done = reg.remove(model_id, who=who(request))
    except RegistryError as exc:
        raise ops.http_error(exc) from None
    out = model_out(done.version, reg.active()).model_dump()
    return RemovedOut(**{**out, "size_bytes": mv.size_bytes}, freed_bytes=done.freed_bytes)  # as it was


class LiveModelOut(BaseModel):
    """The live run's signal, from its latest snapshot."""

    controller: str = Field(description="the controller deciding at the signal now (ql = a model)")
    runs_active_version: bool = Field(description="the controller runs the registry's active version here")
    model_path: str | None = Field(description="the model directory the controller runs, if a model")
    fallback_now: bool = Field(description="the shield's Webster fallback is serving right now")
    fallback_share: float = Field(description="share of the signal's ticks the fallback served since the run "
                                              "began, 0..1")
    controller_since_s: float | None = Field(description="simulated time the current controller took over, s "
                                                         "(null: since the run began)")
    sim_time_s: float = Field(description="the snapshot's simulated time, s")


class HistoryOut(BaseModel):
    intersection_id: str
    model_id: str = Field(description="the version deployed")
    deployed_at: dt.datetime = Field(description="UTC")
    deployed_by: str
    rolled_back_at: dt.datetime | None = Field(description="UTC; null while it was not rolled back")
    rolled_back_by: str | None


class StatusOut(BaseModel):
    intersection_id: str
    active_version: str | None = Field(description="the version active here; null: no model (the signal runs its "
                                                   "fallback plan, or whatever controller its run was given)")
    since: dt.datetime | None = Field(description="when it became active (UTC): its deployment, or the rollback "
                                                  "that made it active again")
    by: str | None = Field(description="who deployed it (or rolled back to it)")
    how: Literal["deploy", "rollback"] | None
    model: ModelOut | None = Field(description="the active version's metadata")
    live: LiveModelOut | None = Field(description="null when no live run is attached or it has no such signal")
    history: list[HistoryOut] = Field(description="the last 20 deployments here, oldest first")


def live_view(request: Request, intersection_id: str):  # noqa: ANN201
    """The live snapshot's view of one signal, or None."""
    rt = getattr(request.app.state, "live", None)
    if rt is None:
        return None, None
    snap = rt.snapshot
    return next((s for s in snap.signals if s.intersection_id == intersection_id), None), snap


def runs_version(model_path: str | None, mv: ModelVersion | None) -> bool:
    """A model directory holds `mv` when it is the registry's copy of its files (named `<version>-<hash>`)."""
    return bool(model_path and mv and model_path.rstrip("/").endswith(f"-{mv.content_sha256[:12]}"))


@router.get("/status/{intersection_id}", response_model=StatusOut,
            summary="The active model at an intersection: since when, by whom, its metadata, and the live run's use")
def status(request: Request, intersection_id: IdPath) -> StatusOut:
    reg = ops.registry(request)
    now = reg.active_at(intersection_id)
    history = reg.history(intersection_id)
    view, snap = live_view(request, intersection_id)
    versions = reg.versions()
    if now is None and not history and view is None and not any(intersection_id in v.intersections for v in versions):
        raise HTTPException(404, f"unknown intersection {intersection_id!r}: no model was trained for it or "
                                 "deployed there, and no live run has it")
    active = reg.active()
    mv = next((v for v in versions if now and v.version == now.version), None)
    live = None
    if view is not None:
        live = LiveModelOut(controller=view.controller, runs_active_version=runs_version(view.model_path, mv),
                            model_path=view.model_path, fallback_now=view.fallback, fallback_share=view.fallback_share,
                            controller_since_s=view.controller_since_s, sim_time_s=snap.sim_time_s)
    return StatusOut(intersection_id=intersection_id, active_version=now.version if now else None,
                     since=now.since if now else None, by=now.by if now else None, how=now.how if now else None,
                     model=model_out(mv, active) if mv else None, live=live,
                     history=[_history(d) for d in history[-20:]])


def _history(d) -> HistoryOut:  # noqa: ANN001
    return HistoryOut(intersection_id=d.intersection_id, model_id=d.version, deployed_at=d.deployed_at,
                      deployed_by=d.deployed_by, rolled_back_at=d.rolled_back_at, rolled_back_by=d.rolled_back_by)


@router.get("/history/{intersection_id}", response_model=list[HistoryOut],
            summary="Every deployment at an intersection and its rollback: who and when, oldest first")
def history(request: Request, intersection_id: IdPath) -> list[HistoryOut]:
    rows = ops.registry(request).history(intersection_id)
    if not rows:
        raise HTTPException(404, f"no deployment at intersection {intersection_id!r}")
    return [_history(d) for d in rows]


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intersections: list[Annotated[str, Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS)]] | None = Field(
        None, min_length=1, json_schema_extra={"examples": [["C"], "all"]},
        description='the intersections to deploy at; "all" or null: every one the model fits (of the live run, '
                    'else of `scenario`, else those it was trained for)')

    @field_validator("intersections", mode="before")
    @classmethod
    def _all(cls, v):  # noqa: ANN001, ANN206 - "all" reads better in a request than null
        return None if v == "all" else v
    scenario: str | None = Field(None, min_length=1, max_length=200, description=(
        "with no live run attached: check the layouts against this network (a built-in or resco:NAME); "
        "without it only the model's own tables are checked"))


class DeployOut(BaseModel):
    model_id: str
    active: dict[str, str] = Field(description="intersection -> the version now active there (this one)")
    not_fitting: dict[str, str] = Field(description='with "all": intersections left out, and why the model does '
                                                    "not fit them")
    checked_against: Literal["live", "scenario", "model"] = Field(
        description="where the layouts came from: the live run, the scenario's network, or only the model's tables")
    live: bool = Field(description="the live run was told; each signal takes the model at its next green")
    live_change: dict | None = Field(description="the live run's change record (who, when, applied or refused)")


@router.post("/deploy/{model_id}", response_model=DeployOut,
             summary="Deploy a registered model at intersections (or all it fits) and to the live run at a safe point",
             responses={404: {"description": "unknown model or intersection"},
                        409: {"description": "the model does not fit (another layout, or no table there)"}})
def deploy(request: Request, model_id: VersionPath,
           body: Annotated[DeployIn | None, Body()] = None) -> DeployOut:
    body = body or DeployIn()
    out = ops.deploy(request, model_id, body.intersections, body.scenario)
    return DeployOut(model_id=out.version, active=out.active, not_fitting=out.not_fitting,
                     checked_against=out.checked_against, live=out.live_change is not None,
                     live_change=out.live_change)


class RollbackOut(BaseModel):
    intersection_id: str
    active_version: str | None = Field(description="the version active after the rollback; null: none left (a live "
                                                   "signal then runs the Webster plan)")
    live: bool = Field(description="the live run was told; the signal switches at its next green")
    live_change: dict | None = Field(description="the live run's change record")


@router.post("/rollback/{intersection_id}", response_model=RollbackOut,
             summary="Return an intersection to the version active before; the live run follows at a safe point",
             responses={404: {"description": "unknown intersection"},
                        409: {"description": "nothing deployed there to roll back"}})
def rollback(request: Request, intersection_id: IdPath) -> RollbackOut:
    reg = ops.registry(request)
    view, _snap = live_view(request, intersection_id)
    if not reg.history(intersection_id) and view is None:
        raise HTTPException(404, f"unknown intersection {intersection_id!r}: nothing was ever deployed there")
    out = ops.rollback(request, [intersection_id])
    return RollbackOut(intersection_id=intersection_id, active_version=out.active.get(intersection_id),
                       live=bool(out.live_changes), live_change=out.live_changes[0] if out.live_changes else None)
