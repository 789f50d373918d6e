"""Training jobs as rows: their states, heartbeats, cancellation, and jobs whose worker is gone.
SQLite always, PostgreSQL when it answers (the API's job routes run the real worker: tests/api/test_ml_jobs.py)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from sqlalchemy import update

from signalwise.store import jobs
from signalwise.store.tables import TrainingJob


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_job_goes_queued_running_and_ends_once(engine, tmp_path):
    job = jobs.create_job(engine, {"scenario": "single", "episodes": 2}, 2, tmp_path, "ops")
    assert (job.state, job.episodes_done, job.cancel_requested) == ("queued", 0, False)
    assert job.out_dir == str((tmp_path / job.id).resolve())
    assert jobs.mark_running(engine, job.id, os.getpid(), jobs.this_host())
    assert not jobs.mark_running(engine, job.id, os.getpid(), jobs.this_host())  # taken once
    assert jobs.beat(engine, job.id, 1) is False
    assert jobs.get_job(engine, job.id).episodes_done == 1
    assert jobs.finish(engine, job.id, "succeeded", result={"episodes": 2}, model_version="v1", episodes_done=2)
    assert not jobs.finish(engine, job.id, "failed", error="late")  # an ended job keeps its outcome
    done = jobs.get_job(engine, job.id)
    assert (done.state, done.result, done.model_version, done.error) == ("succeeded", {"episodes": 2}, "v1", None)
    assert jobs.request_cancel(engine, job.id).cancel_requested is False  # nothing to cancel any more
    assert jobs.request_cancel(engine, "nope") is None


def test_a_cancelled_queued_job_is_not_taken_and_the_flag_reaches_the_heartbeat(engine, tmp_path):
    queued = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    running = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    jobs.mark_running(engine, running.id, os.getpid(), jobs.this_host())
    jobs.request_cancel(engine, queued.id)
    jobs.finish(engine, queued.id, "cancelled", error="cancelled")
    assert not jobs.mark_running(engine, queued.id, os.getpid(), jobs.this_host())
    jobs.request_cancel(engine, running.id)
    assert jobs.beat(engine, running.id) is True


def test_jobs_whose_worker_is_gone_are_marked_failed_and_live_ones_are_left(engine, tmp_path):
    mine = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    jobs.mark_running(engine, mine.id, _dead_pid(), jobs.this_host())  # its process ended on this host
    reused = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    # its pid now belongs to another process (this one, whose command line does not name the job): gone too
    jobs.mark_running(engine, reused.id, os.getpid(), jobs.this_host())
    elsewhere = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    jobs.mark_running(engine, elsewhere.id, 1, "another-host")
    quiet = jobs.create_job(engine, {}, 1, tmp_path, "ops")
    jobs.mark_running(engine, quiet.id, 1, "another-host")
    with engine.begin() as conn:  # no heartbeat for two minutes
        conn.execute(update(TrainingJob.__table__).where(TrainingJob.__table__.c.id == quiet.id)
                     .values(heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)))
    fresh = jobs.create_job(engine, {}, 1, tmp_path, "ops")  # queued a moment ago, its worker not up yet
    gone = set(jobs.reap(engine))
    assert gone == {mine.id, reused.id, quiet.id}
    assert jobs.get_job(engine, elsewhere.id).state == "running" and jobs.get_job(engine, fresh.id).state == "queued"
    failed = jobs.get_job(engine, mine.id)
    assert failed.state == "failed" and "worker process ended without a result" in failed.error
    assert jobs.active_count(engine) == 2
