"""Training jobs: what was asked, the worker running it, its progress and outcome (`training_jobs`).

A job is created `queued` by the API, taken `running` by its worker process
(`signalwise.training.jobs`), which renews `heartbeat_at` and the episodes
done, and ends `succeeded`, `failed` or `cancelled`. The rows outlive the
server: after a restart the jobs are still listed, and a queued or running
job whose worker is gone (its process ended on this host, or its heartbeat
stopped) is marked failed when it is next read (`reap`), never left running.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, update

from .tables import TrainingJob

T = TrainingJob.__table__
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("succeeded", "failed", "cancelled")
#: seconds between a worker's heartbeats, and after how many without one a worker counts as gone
HEARTBEAT_S = 5.0
STALE_S = 60.0


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    request: dict
    episodes_total: int
    episodes_done: int
    created_at: dt.datetime
    created_by: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    host: str | None
    pid: int | None
    cancel_requested: bool
    out_dir: str
    model_version: str | None
    result: dict | None
    error: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _job(r) -> Job:  # noqa: ANN001 - a row mapping
    return Job(**{k: r[k] for k in Job.__dataclass_fields__})


def create_job(engine: Engine, request: dict, episodes_total: int, jobs_dir: Path, who: str) -> Job:
    """A new queued job; its worker writes under `jobs_dir/<id>/`."""
    job_id = uuid.uuid4().hex[:16]
    row = {"id": job_id, "state": "queued", "request": request, "episodes_total": int(episodes_total),
           "episodes_done": 0, "created_at": _now(), "created_by": who[:128], "cancel_requested": False,
           "out_dir": str((Path(jobs_dir) / job_id).resolve())}
    with engine.begin() as conn:
        conn.execute(insert(T).values(**row))
    return get_job(engine, job_id)


def get_job(engine: Engine, job_id: str) -> Job | None:
    with engine.connect() as conn:
        r = conn.execute(select(T).where(T.c.id == job_id)).mappings().first()
    return _job(r) if r is not None else None


def list_jobs(engine: Engine, limit: int = 50, states: tuple[str, ...] | None = None) -> list[Job]:
    """The newest jobs first."""
    q = select(T).order_by(T.c.created_at.desc()).limit(limit)
    if states:
        q = q.where(T.c.state.in_(states))
    with engine.connect() as conn:
        return [_job(r) for r in conn.execute(q).mappings()]


def mark_running(engine: Engine, job_id: str, pid: int, host: str) -> bool:
    """The worker takes the job; False when it is no longer queued (cancelled before it started)."""
    now = _now()
    with engine.begin() as conn:
        n = conn.execute(update(T).where(T.c.id == job_id, T.c.state == "queued")
                         .values(state="running", pid=pid, host=host, started_at=now, heartbeat_at=now)).rowcount
    return n == 1


def mark_spawned(engine: Engine, job_id: str, pid: int, host: str) -> None:
    """The API started the worker process (it is still queued until the worker takes it)."""
    with engine.begin() as conn:
        conn.execute(update(T).where(T.c.id == job_id, T.c.pid.is_(None)).values(pid=pid, host=host))


def beat(engine: Engine, job_id: str, episodes_done: int | None = None) -> bool:
    """Renew the heartbeat (and the episodes done); returns whether a cancellation was asked for."""
    values: dict = {"heartbeat_at": _now()}
    if episodes_done is not None:
        values["episodes_done"] = int(episodes_done)
    with engine.begin() as conn:
        conn.execute(update(T).where(T.c.id == job_id, T.c.state == "running").values(**values))
        return bool(conn.execute(select(T.c.cancel_requested).where(T.c.id == job_id)).scalar())


def finish(engine: Engine, job_id: str, state: str, *, result: dict | None = None, error: str | None = None,
           model_version: str | None = None, episodes_done: int | None = None) -> bool:
    """End the job (once: a job already ended keeps its outcome); returns whether this call ended it."""
    if state not in FINAL_STATES:
        raise ValueError(f"a job ends {', '.join(FINAL_STATES)}, not {state!r}")
    values: dict = {"state": state, "finished_at": _now(), "result": result, "error": error,
                    "model_version": model_version}
    if episodes_done is not None:
        values["episodes_done"] = int(episodes_done)
    with engine.begin() as conn:
        n = conn.execute(update(T).where(T.c.id == job_id, T.c.state.in_(ACTIVE_STATES)).values(**values)).rowcount
    return n == 1


def request_cancel(engine: Engine, job_id: str) -> Job | None:
    """Ask for the job to stop (its worker sees it at its next heartbeat); None when there is no such job."""
    with engine.begin() as conn:
        conn.execute(update(T).where(T.c.id == job_id, T.c.state.in_(ACTIVE_STATES)).values(cancel_requested=True))
    return get_job(engine, job_id)


def active_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(T).where(T.c.state.in_(ACTIVE_STATES))).scalar_one())


def worker_alive(job: Job, now: dt.datetime | None = None) -> bool:
    """Whether the job's worker still lives: its process, when it runs on this host; else a recent heartbeat."""
    now = now or _now()
    if job.pid is not None and job.host == this_host():
        return process_runs(job.pid, job.id)
    seen = job.heartbeat_at or job.created_at
    return (now - seen).total_seconds() < STALE_S


def this_host() -> str:
    return socket.gethostname()


def process_runs(pid: int, marker: str) -> bool:
    """Whether process `pid` is alive and is the one started for `marker` (a reused pid is not)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return marker.encode() in cmdline.read_bytes()  # a zombie's cmdline is empty: gone
        except OSError:
            return False
    try:  # no /proc: the pid alone
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap(engine: Engine) -> list[str]:
    """Mark failed every queued or running job whose worker is gone; returns their ids."""
    gone = []
    now = _now()
    for job in list_jobs(engine, limit=1000, states=ACTIVE_STATES):
        if worker_alive(job, now):
            continue
        if job.cancel_requested:
            ended = finish(engine, job.id, "cancelled", error="cancelled; the worker stopped")
        else:
            ended = finish(engine, job.id, "failed",
                           error="the worker process ended without a result (killed, or the server restarted)")
        if ended:
            gone.append(job.id)
    return gone
