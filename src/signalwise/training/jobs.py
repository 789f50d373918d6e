"""Training jobs: started through the API (`POST /api/v1/ml/train`), each run by a worker process.

The API validates the request, stores a queued job (`store/jobs.py`) and
starts `python -m signalwise.training.jobs JOB_ID` (the database URL in its
environment) in a session of its own, so that the job, its episode worker
processes and nothing else can be stopped as one process group. The worker runs the same functions as
`signalwise train`: for the phase-score agent (the default, as on the command
line) the policy search (`policy_search.search` from `search_starts`' named
starts), for the tabular agent `train.train`, or `selection.train_selected`
with `guide_visits: "auto"`. It writes its episodes and model under the job's
directory, renews a heartbeat with the episodes done, and at the end
registers the model as a new version of the registry (unless asked not to,
or unless the independent audit found a shield violation, which fails the job
as it fails `signalwise train`).

Cancelling sets a flag the worker reads at its next heartbeat and, on the
worker's own host, sends it SIGTERM at once; either way the worker records
`cancelled` and stops its process group.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..store.jobs import (
    FINAL_STATES,
    HEARTBEAT_S,
    Job,
    beat,
    create_job,
    finish,
    get_job,
    mark_running,
    mark_spawned,
    process_runs,
    request_cancel,
    this_host,
)

#: the hyperparameters a job request may set, as `signalwise train`'s options of the same names
HYPER_KEYS = ("gamma", "epsilon_start", "epsilon_decay", "downstream_weight")
#: the request's fields only the tabular agent reads (those of `signalwise train`'s TABULAR_OPTIONS the API
#: takes): given without `agent`, they choose it; given with agent phase-score, they are refused
TABULAR_FIELDS = ("episodes", "batch", "shared", "guide_visits", "gamma", "epsilon_start", "epsilon_decay",
                  "downstream_weight")
#: the request's fields only the phase-score search reads; given with the tabular agent, they are refused
PHASE_SCORE_FIELDS = ("generations", "popsize", "seeds_per_generation", "restarts", "timing", "settings", "start",
                      "measure", "period", "add_feature", "zone_m", "shared_lanes", "demand_scale", "cycle_calls")
PHASE_SCORE = "phase-score"
TABULAR = "tabular"


def resolve_agent(agent: str | None, given) -> str:  # noqa: ANN001
    """The agent a request trains, as `signalwise train` chooses it: `agent`, else phase-score unless one of
    TABULAR_FIELDS is among the fields `given`. ValueError (one line, naming the fields) when a field of
    the other agent is given: refused rather than silently ignored."""
    tabular = [f for f in TABULAR_FIELDS if f in given]
    phase_score = [f for f in PHASE_SCORE_FIELDS if f in given]
    resolved = agent or (TABULAR if tabular else PHASE_SCORE)
    if resolved == PHASE_SCORE and tabular:
        raise ValueError(f"{', '.join(tabular)}: for agent tabular; a phase-score search takes "
                         f"{', '.join(PHASE_SCORE_FIELDS)}")
    if resolved == TABULAR and phase_score:
        why = "" if agent else f" ({', '.join(tabular)} given without agent chose tabular)"
        raise ValueError(f"{', '.join(phase_score)}: for agent phase-score{why}; a tabular job takes "
                         f"{', '.join(TABULAR_FIELDS)}")
    return resolved


def _agent(request: dict) -> str:
    """The agent a stored request trains (a job stored before the API took `agent` trained tabular)."""
    return request.get("agent") or TABULAR


def episodes_total(request: dict) -> int:
    """Training episodes the job will run (validation runs come after, and are not counted).

    Tabular: `episodes`, times the candidates with `guide_visits: auto` (each trains the full count).
    Phase-score, per search (`restarts` of them): with `start: auto`, first every named start on each
    validation seed (`policy_search.choose_start`), then every candidate of every generation on each of
    its training seeds (generations x popsize x seeds_per_generation). Not counted: each search's closing
    validation (its learned weights, and its start's unless `auto` ran them already) and, with restarts,
    the other searches' models on the first one's validation seeds: the model's meta.json counts those too
    (`training.episodes`), so the job result's `episodes` is the larger figure.
    """
    if _agent(request) == PHASE_SCORE:
        from .search_starts import AUTO_START, STARTS

        starts = len(STARTS) * int(request["validation_seeds"]) if request["start"] == AUTO_START else 0
        per_generation = int(request["popsize"]) * int(request["seeds_per_generation"])
        return int(request["restarts"]) * (starts + int(request["generations"]) * per_generation)
    from .selection import AUTO_CANDIDATES

    n = int(request["episodes"])
    return n * len(AUTO_CANDIDATES) if request.get("guide_visits") == "auto" else n


def start_job(engine, database_url: str, request: dict, jobs_dir: Path, who: str) -> Job:  # noqa: ANN001
    """Store the job and start its worker process; the job is failed at once if the process cannot start."""
    job = create_job(engine, request, episodes_total(request), jobs_dir, who)
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with open(out / "worker.log", "ab") as log:
            # the URL travels in the environment, not the command line (`ps` shows command lines to all)
            proc = subprocess.Popen([sys.executable, "-m", "signalwise.training.jobs", job.id],
                                    env={**os.environ, "SIGNALWISE_DATABASE_URL": database_url},
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
    except OSError as exc:
        finish(engine, job.id, "failed", error=f"the worker process could not start: {exc}")
        return get_job(engine, job.id)
    mark_spawned(engine, job.id, proc.pid, this_host())
    threading.Thread(target=proc.wait, name=f"job-{job.id}-reaper", daemon=True).start()  # no zombie left
    return get_job(engine, job.id)


def cancel_job(engine, job_id: str, wait_s: float = 10.0) -> Job | None:  # noqa: ANN001
    """Ask the job to stop; on this host, signal its worker and wait (up to `wait_s`) until it has stopped."""
    job = request_cancel(engine, job_id)
    if job is None or job.state in FINAL_STATES:
        return job
    if job.pid is None or job.host != this_host():
        return job  # another host's worker sees the flag at its next heartbeat
    if process_runs(job.pid, job.id):
        _signal_group(job.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        job = get_job(engine, job_id)
        if job.state in FINAL_STATES:
            return job
        if not process_runs(job.pid, job.id):
            break
        time.sleep(0.1)
    if process_runs(job.pid, job.id):
        _signal_group(job.pid, signal.SIGKILL)  # it did not stop on its own: the whole group goes
    finish(engine, job_id, "cancelled", error="cancelled")
    return get_job(engine, job_id)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the worker leads its own session: its episode processes go with it
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


# ---------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------


def run_job(job_id: str, database_url: str) -> int:
    """Run the job to its end; the exit status says whether it succeeded (0), failed (1) or was cancelled (2)."""
    from ..store.engine import get_engine

    engine = get_engine(database_url)
    job = get_job(engine, job_id)
    if job is None:
        print(f"error: no training job {job_id!r} in {database_url}", file=sys.stderr)
        return 1
    if not mark_running(engine, job_id, os.getpid(), this_host()):
        return 2  # cancelled (or taken) before it started
    done = [0]
    stopping = threading.Event()

    def stop(state: str, error: str) -> None:
        """Record how the job ended, then end this process and its episode workers."""
        if stopping.is_set():
            return
        stopping.set()
        finish(engine, job_id, state, error=error, episodes_done=done[0])
        _stop_process_group()

    def on_sigterm(_signum, _frame) -> None:  # noqa: ANN001
        cancelled = bool(get_job(engine, job_id).cancel_requested)
        stop("cancelled" if cancelled else "failed", "cancelled" if cancelled else "the worker was terminated")

    signal.signal(signal.SIGTERM, on_sigterm)

    def heartbeat() -> None:
        while not stopping.wait(HEARTBEAT_S):
            try:
                if beat(engine, job_id, done[0]):
                    stop("cancelled", "cancelled")
            except Exception as exc:  # noqa: BLE001 - a database hiccup: the next beat tries again
                print(f"heartbeat failed: {exc}", file=sys.stderr, flush=True)

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    try:
        model, version, already = _train(engine, job, done)
    except Exception as exc:  # noqa: BLE001 - whatever stops the training is the job's error, in one line
        if stopping.is_set():
            return 2
        stopping.set()
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        finish(engine, job_id, "failed", error=f"{type(exc).__name__}: {message}"[:2000], episodes_done=done[0])
        return 1
    stopping.set()
    t = model.meta["training"]
    # a phase-score model's meta.json: `episodes` counts its validation runs too, it has no last episode
    # (last_avg_delay_s: None), and `selection` holds its learned and starting weights' validation delays
    result = {"model_path": str(model.path), "model_version": version, "already_registered": already,
              "episodes": t["episodes"],
              "violations": t["violations"], "last_avg_delay_s": t.get("last_avg_delay_s"),
              "wall_s": t.get("wall_s"), "selection": model.meta.get("selection")}
    if t["violations"]:
        finish(engine, job_id, "failed", result=result, episodes_done=done[0],
               error=f"the independent audit found {t['violations']} shield violation(s) during training; "
                     "the model was not registered")
        return 1
    finish(engine, job_id, "succeeded", result=result, model_version=version, episodes_done=done[0])
    return 0


def _train(engine, job: Job, done: list[int]):  # noqa: ANN001, ANN202
    """The training `signalwise train` would run for this request; returns (model, registered version)."""
    from ..sim.scenario import load
    from ..store.model_registry import ModelRegistry
    from .executors import make_executor
    from .registry import register_once

    req = job.request
    load(req["scenario"])
    out = Path(job.out_dir)
    executor = make_executor(None, int(req["workers"]))
    try:
        if _agent(req) == PHASE_SCORE:
            model = _search(req, out, done, executor)
        else:
            model = _train_tabular(req, out, done, executor)
    finally:
        executor.close()
    version, already = None, False
    if req.get("register_version", True) and not model.meta["training"]["violations"]:
        # the same model registered already (the same model id: the same seed and options train the same weights)
        # is answered with its first version, as `signalwise models add` does, unless `register_again` (--again)
        registered = register_once(ModelRegistry(engine, out / "cache"), out / "model",
                                   again=bool(req.get("register_again")), who=job.created_by,
                                   source=f"training job {job.id} ({out / 'model'})")
        version, already = registered.version.version, registered.already
    return model, version, already


def _train_tabular(req: dict, out: Path, done: list[int], executor):  # noqa: ANN001, ANN202
    """`signalwise train --agent tabular`: Q-learning, with `guide_visits: auto` the better of its candidates."""
    from dataclasses import replace

    from ..control.learning.agent import Hyper
    from .selection import AUTO_CANDIDATES, train_selected
    from .train import TrainConfig, train

    hyper = Hyper(**{k: req[k] for k in HYPER_KEYS if req.get(k) is not None})
    auto = req.get("guide_visits") == "auto"
    hyper = replace(hyper, guide_visits=AUTO_CANDIDATES[-1] if auto else int(req.get("guide_visits", 30)))
    cfg = TrainConfig(scenario=req["scenario"], episodes=int(req["episodes"]), seed=int(req["seed"]),
                      workers=int(req["workers"]), batch=int(req["batch"]), out=out, duration_s=req.get("duration_s"),
                      shared=bool(req.get("shared", False)), hyper=hyper)

    def on_episode(_record) -> None:  # noqa: ANN001
        done[0] += 1

    if auto:
        return train_selected(cfg, AUTO_CANDIDATES, int(req.get("validation_seeds", 3)), on_episode=on_episode,
                              executor=executor)
    return train(cfg, on_episode=on_episode, executor=executor)


def _search(req: dict, out: Path, done: list[int], executor):  # noqa: ANN001, ANN202
    """`signalwise train --agent phase-score` with the options the API takes (a named start, no per-signal
    search); a request stored before a field was taken trains as the command does without its option.

    The search has no per-episode hook: `done` grows by a generation's episodes as each generation ends, and
    by the starts' episodes once `start: auto` has compared them (what `episodes_total` counts)."""
    from .policy_search import config_from_starts, search, starts_for
    from .run_settings import episode_settings
    from .search_starts import AUTO_START, STARTS

    if req["start"] not in STARTS and req["start"] != AUTO_START:  # never a path: the API names a start
        raise ValueError(f"start {req['start']!r}: choose from {', '.join(STARTS)} or {AUTO_START}")
    # as `signalwise train` builds it (the API checked the request as the command checks its options)
    starts = starts_for(req["start"], req.get("period"), req.get("add_feature") or ())
    run = episode_settings(req.get("settings") or {}, req.get("timing"), bool(req.get("cycle_calls")))
    cfg = config_from_starts(starts, scenario=req["scenario"], generations=int(req["generations"]),
                             popsize=int(req["popsize"]), seeds_per_generation=int(req["seeds_per_generation"]),
                             validation_seeds=int(req["validation_seeds"]), seed=int(req["seed"]),
                             workers=int(req["workers"]), out=out, duration_s=req.get("duration_s"), run=run,
                             measure=req["measure"], zone_m=req.get("zone_m"), shared_lanes=req.get("shared_lanes"),
                             restarts=int(req["restarts"]),
                             demand_scales=tuple(float(x) for x in req.get("demand_scale") or ()))

    def on_generation(record) -> None:  # noqa: ANN001
        done[0] += cfg.popsize * len(record.seeds)

    def on_start(choice: dict) -> None:
        done[0] += int(choice["episodes"])

    return search(cfg, on_generation, executor, starts=starts if len(starts) > 1 else None, on_start=on_start)


def _stop_process_group() -> None:
    """End this worker and its episode processes: its own process group when it leads one (as the API
    starts it), else its children, then itself."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
    os._exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signalwise.training.jobs",
                                     description="Run one training job of the API (started by POST /api/v1/ml/train).")
    parser.add_argument("job_id")
    parser.add_argument("--db", help="the database URL holding the job (default: SIGNALWISE_DATABASE_URL)")
    args = parser.parse_args(argv)
    from ..store.settings import Settings

    return run_job(args.job_id, args.db or Settings().database_url)


if __name__ == "__main__":
    sys.exit(main())
