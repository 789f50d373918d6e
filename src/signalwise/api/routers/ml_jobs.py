"""Training through the API: start a job in a worker process, follow its progress, cancel it.

`POST /api/v1/ml/train` answers 202 with the job at once; the training runs
in a process of its own (`signalwise.training.jobs`), the same functions as
`signalwise train`, and registers its model as a new version when it
succeeds (the same model registered already: as that version, as
`signalwise models add` answers, unless `register_again`). Jobs are rows in the database, so they outlive the server; a job
whose worker is gone is marked failed when it is next read. Starting and
cancelling need `operate`; reading needs `read`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from signalwise.store import jobs as store_jobs

from ..auth import who
from ..deps import EngineDep
from ..errors import field_error, refusal

router = APIRouter(prefix="/api/v1/ml", tags=["ml"])

#: a job's id is hex digits (`store.jobs`); any other text is no job, answered 404 as an unknown id is (a shape check
#: answering 422 would tell "no such job" apart by how the id looks)
JobPath = Annotated[str, Path(min_length=1, max_length=128, description="the job's id (hex digits)")]
JOB_ID = re.compile(r"[0-9a-f]{1,32}")


def _no_job(job_id: str) -> HTTPException:
    return HTTPException(404, f"no training job {job_id!r}")


class TrainIn(BaseModel):
    """What to train: the options of `signalwise train` of the same names.

    Not taken, since a job names no server path: a start given as a model's directory, --per-signal with its
    options and --sigma (a refinement of such a model), your own network, --resume (a training directory) and
    --ray (a cluster's address: a job's episodes run in the server's own processes). Nor the tabular --guide,
    --guide-mode, --actions or --state.
    """

    model_config = ConfigDict(extra="forbid")
    scenario: str = Field("single", min_length=1, max_length=200, description="a built-in scenario or resco:NAME")
    agent: Literal["phase-score", "tabular"] | None = Field(None, description=(
        "phase-score: a few weights shared by every signal, learned by policy search (CMA-ES) on the average "
        "delay (generations to period) | tabular: Q-learning per signal (the fields marked tabular); default: "
        "phase-score, tabular when one of the tabular fields is given"))
    generations: int = Field(12, ge=1, le=1000, description="phase-score: CMA-ES generations")
    popsize: int = Field(8, ge=2, le=256, description="phase-score: candidate weight vectors per generation")
    seeds_per_generation: int = Field(1, ge=1, le=20, description="phase-score: training seeds every candidate of "
                                                                  "a generation runs (the same for all)")
    restarts: int = Field(1, ge=1, le=20, description="phase-score: independent searches, seeds seed, seed + 1, "
                                                      "...; the model is the one with the lowest delay on the "
                                                      "first one's validation seeds")
    timing: Literal["safety", "benchmark", "reference"] | None = Field(None, description=(
        "phase-score: timing profile of the training episodes (default: safety)"))
    settings: dict | None = Field(None, description=(
        "phase-score: run settings the episodes run under, as in a --config file: timing (its keys, e.g. "
        "{\"yellow_s\": 4.5, \"all_red_s\": 2}), shield, step_length_s, time_to_teleport_s, sumo_options; the "
        "model records them and evaluate runs under them. timing sets the profile beside its timing keys"))
    start: Literal["max-pressure", "actuated", "max-pressure-hold", "max-pressure-pays", "auto"] = Field(
        "max-pressure", description="phase-score: where the search starts, a named start of `signalwise train "
                                    "--start` (auto: run each on the validation seeds, search from the lowest delay)")
    measure: Literal["count", "density"] = Field("count", description="phase-score: count (vehicles) | density "
                                                                      "(vehicles per 100 m of lane)")
    period: float | None = Field(None, gt=0, le=3600, description="phase-score: seconds between decisions "
                                                                  "(default: the start's: 1 for actuated, else 5)")
    add_feature: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=32, description=(
            "phase-score: features the search weighs too, each from weight 0 (the names `signalwise train "
            "--add-feature` takes, e.g. hold_gap, switch_halt_red)"))
    zone_m: float | None = Field(None, description=(
        "phase-score: metres from the junction over which each movement is measured, 0 or more (0: each lane "
        "alone); default: max-pressure's under the timing profile (50, 0 under reference)"))
    shared_lanes: Literal["skip", "split"] | None = Field(None, description=(
        "phase-score: a lane that feeds several stop-line lanes (before a turn pocket): split (each pocket's "
        "zone counts its share of it) | skip (in no zone); default: max-pressure's under the timing profile "
        "(split)"))
    demand_scale: list[float] = Field(default_factory=list, max_length=20, description=(
        "phase-score: the training episodes' demand times each, above 0 and at most 10 (SUMO's --scale): the "
        "k-th seed of each generation runs the k-th scale; validation runs the routes as written"))
    cycle_calls: bool = Field(False, description=(
        "phase-score: the episodes' cycle bound runs from a call (timing key cycle_calls, set beside settings' "
        "timing), so a phase nobody waits for is not forced round"))
    episodes: int = Field(40, ge=1, le=10_000, description="tabular: training episodes (per candidate with "
                                                           "guide_visits auto)")
    seed: int = Field(1, ge=0, le=1_000_000, description="the same seed (and batch) reproduce the model exactly")
    workers: int = Field(1, ge=1, le=64, description="parallel episode processes (at most the server's cores)")
    batch: int = Field(2, ge=1, le=64, description="tabular: episodes per round, run in parallel from the same table")
    duration_s: float | None = Field(None, ge=1, le=86_400, description="simulated seconds per episode "
                                                                        "(default: the scenario's)")
    shared: bool = Field(False, description="tabular: one table shared by intersections of the same layout")
    guide_visits: int | Literal["auto"] = Field("auto", description=(
        "tabular: tries of each action before the table is trusted over max-pressure; auto: train with 10 and "
        "with 30 and keep the better on validation seeds"))
    validation_seeds: int = Field(3, ge=1, le=20, description="seeds the final choice is made on: phase-score, the "
                                                              "learned weights against the start (and the starts "
                                                              "with start auto, the searches with restarts); "
                                                              "tabular, the candidates of guide_visits auto")
    gamma: float | None = Field(None, gt=0, lt=1, description="tabular: discount per 5 s of elapsed time (0.95)")
    epsilon_start: float | None = Field(None, ge=0, le=1, description="tabular: exploration in the first episode "
                                                                      "(0.3)")
    epsilon_decay: float | None = Field(None, gt=0, le=1, description="tabular: exploration decay per episode (0.97)")
    downstream_weight: float | None = Field(None, ge=0, description="tabular: weight of halting vehicles on outgoing "
                                                                    "lanes (0)")
    register_version: bool = Field(True, description=(
        "register the model when it succeeds: as a new registry version, or, when the same model (the same model "
        "id: the same seed and options train the same weights) is registered already, as that version "
        "(result.already_registered), as `signalwise models add` does"))
    register_again: bool = Field(False, description=(
        "register it as a new version even when the same model is registered already (`models add --again`)"))


class JobResultOut(BaseModel):
    model_path: str = Field(description="the model directory the job wrote")
    model_version: str | None = Field(description="the registry version it was registered as (null: not registered)")
    already_registered: bool = Field(False, description=(
        "true: the same model (the same model id) was registered already, as model_version, and no version was "
        "added (register_again adds one)"))
    episodes: int = Field(description="episodes trained (phase-score: every episode the search ran, its "
                                      "validation runs included, as its meta.json's training.episodes)")
    violations: int = Field(description="shield violations the independent audit found in the episodes")
    last_avg_delay_s: float | None = Field(description="mean delay per vehicle in the last episode, s (null for "
                                                       "phase-score: a search has no last episode)")
    wall_s: float | None = Field(description="wall-clock seconds the training took")
    selection: dict | None = Field(None, description="tabular with guide_visits auto: the candidates' validation "
                                                     "delays; phase-score: the learned and the starting weights' "
                                                     "(and with start auto the starts', with restarts the "
                                                     "searches')")


class JobOut(BaseModel):
    job_id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    episodes_done: int = Field(description="training episodes finished so far")
    episodes_total: int = Field(description="training episodes the job runs in all (phase-score: generations x "
                                            "popsize x seeds_per_generation, plus the starts' runs with start "
                                            "auto, per restart)")
    progress: float = Field(description="episodes_done / episodes_total, 0..1 (validation runs come after)")
    request: dict = Field(description="what was asked (TrainIn), with the agent it resolved to")
    created_at: dt.datetime = Field(description="UTC")
    created_by: str = Field(description="the API key's name")
    started_at: dt.datetime | None = Field(description="when its worker took it (UTC)")
    finished_at: dt.datetime | None = Field(description="UTC")
    heartbeat_at: dt.datetime | None = Field(description="the worker's last sign of life (UTC), every 5 s")
    cancel_requested: bool
    out_dir: str = Field(description="where its episodes, model and worker.log are")
    model_version: str | None = Field(description="the registry version of its model, once registered")
    result: JobResultOut | None
    error: str | None = Field(description="why it failed or stopped, one line")


def job_out(job: store_jobs.Job) -> JobOut:
    total = max(1, job.episodes_total)
    return JobOut(job_id=job.id, state=job.state, episodes_done=job.episodes_done, episodes_total=job.episodes_total,
                  progress=round(min(1.0, job.episodes_done / total), 4), request=job.request,
                  created_at=job.created_at, created_by=job.created_by, started_at=job.started_at,
                  finished_at=job.finished_at, heartbeat_at=job.heartbeat_at, cancel_requested=job.cancel_requested,
                  out_dir=job.out_dir, model_version=job.model_version,
                  result=JobResultOut.model_validate(job.result) if job.result else None, error=job.error)


@router.post("/train", response_model=JobOut, status_code=202,
             summary="Start a training job in a worker process; answers at once with its id",
             responses={409: {"description": "as many jobs as allowed are running already"},
                        422: {"description": "invalid request (field path in the message)"}})
def train(request: Request, body: TrainIn, engine: EngineDep, response: Response) -> JobOut:
    from signalwise.sim.scenario import ScenarioError, load
    from signalwise.training.jobs import resolve_agent, start_job

    try:
        agent = resolve_agent(body.agent, body.model_fields_set)
    except ValueError as exc:  # a field of the other agent: named in the reason
        raise refusal(str(exc)) from None
    if body.settings is not None:
        _check_settings(body)
    if agent == "phase-score":
        _check_search(body)
    try:
        load(body.scenario, takes_own_network=False)  # a job names its network by name
    except ScenarioError as exc:
        raise field_error(("body", "scenario"), str(exc).strip().splitlines()[-1]) from None
    cores = os.cpu_count() or 1
    if body.workers > cores:  # episode processes beyond the cores only queue for them, beside the server
        raise field_error(("body", "workers"), f"at most this server's {cores} cores, not {body.workers}",
                          "less_than_equal")
    settings = request.app.state.settings
    store_jobs.reap(engine)
    running = store_jobs.list_jobs(engine, limit=100, states=store_jobs.ACTIVE_STATES)
    if len(running) >= settings.max_training_jobs:
        raise HTTPException(409, f"{len(running)} training job(s) running already ({', '.join(j.id for j in running)}; "
                                 f"max_training_jobs is {settings.max_training_jobs}): wait, or cancel one")
    job = start_job(engine, settings.database_url, {**body.model_dump(), "agent": agent}, settings.ml_jobs_dir, who(request))
    response.headers["Location"] = f"/api/v1/ml/jobs/{job.id}"
    return job_out(job)


def _check_settings(body: TrainIn) -> None:
    """422 for settings a training does not take or a run would refuse, named by their path (`body.settings.…`)."""
    from pydantic import ValidationError

    from signalwise.runtime.config import RunConfig
    from signalwise.training.run_settings import EPISODE_SETTINGS, episode_settings, unapplied

    left = unapplied(body.settings)
    if left:
        raise field_error(("body", "settings"), f"{', '.join(left)} not taken; a training takes "
                                                f"{', '.join(EPISODE_SETTINGS)} (the network is scenario, the "
                                                "episodes' controller, seeds and durations the job's)")
    try:
        RunConfig.model_validate({**episode_settings(body.settings, body.timing, body.cycle_calls),
                                  "scenario": body.scenario})
    except ValidationError as exc:
        errors = [{"loc": ("body", "settings", *err["loc"]), "msg": err["msg"], "type": err["type"]}
                  for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _check_search(body: TrainIn) -> None:
    """422 for a search option `signalwise train` refuses, by its path (`body.zone_m`), for the command's reason."""
    from signalwise.training.policy_search import option_errors, starts_for

    errors = [{"loc": ("body", *where), "msg": why, "type": "value_error"}
              for where, why in option_errors(body.zone_m, body.shared_lanes, body.demand_scale)]
    try:
        starts_for(body.start, body.period, body.add_feature)  # the start is a name the schema checked
    except ValueError as exc:
        errors.insert(0, {"loc": ("body", "add_feature"), "msg": str(exc), "type": "value_error"})
    if errors:
        raise RequestValidationError(errors)


@router.get("/jobs", response_model=list[JobOut], summary="Training jobs, newest first")
def jobs(engine: EngineDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
         state: Annotated[Literal["queued", "running", "succeeded", "failed", "cancelled"] | None,
                          Query(description="only jobs in this state")] = None) -> list[JobOut]:
    store_jobs.reap(engine)
    return [job_out(j) for j in store_jobs.list_jobs(engine, limit, (state,) if state else None)]


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A training job: state, episodes done of total, result")
def job(job_id: JobPath, engine: EngineDep) -> JobOut:
    if not JOB_ID.fullmatch(job_id):
        raise _no_job(job_id)
    store_jobs.reap(engine)
    found = store_jobs.get_job(engine, job_id)
    if found is None:
        raise _no_job(job_id)
    return job_out(found)


def _cancel(job_id: str, engine) -> JobOut:  # noqa: ANN001
    from signalwise.training.jobs import cancel_job

    found = cancel_job(engine, job_id) if JOB_ID.fullmatch(job_id) else None
    if found is None:
        raise _no_job(job_id)
    return job_out(found)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut,
             summary="Cancel a training job: its worker and episode processes stop (a finished job is left as it is)")
def cancel(job_id: JobPath, engine: EngineDep) -> JobOut:
    return _cancel(job_id, engine)


@router.delete("/jobs/{job_id}", response_model=JobOut, summary="Cancel a training job (as POST …/cancel)")
def delete(job_id: JobPath, engine: EngineDep) -> JobOut:
    return _cancel(job_id, engine)
