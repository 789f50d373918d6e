"""Training through the API: a real (small) job in a worker process, its progress and model, cancelling it,
and a job whose worker died while the server was down. SQLite: the worker shares the file with the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.jobs import get_job, process_runs
from signalwise.store.keys import create_key

SMALL = {"scenario": "single", "batch": 1, "workers": 1, "duration_s": 120, "guide_visits": 30}


@pytest.fixture
def api(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    settings = Settings(database_url=url, model_cache=tmp_path / "cache", model_registry=tmp_path / "no-registry",
                        ml_jobs_dir=tmp_path / "jobs", cache_ttl_s=0)
    _, key = create_key(get_engine(url), "ops", ["operate", "read"])
    started = []
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        c.started = started
        yield c
        for job_id in started:  # never leave a worker behind, whatever the test did
            c.post(f"/api/v1/ml/jobs/{job_id}/cancel")


def _start(c, **request) -> dict:
    r = c.post("/api/v1/ml/train", json={**SMALL, **request})
    assert r.status_code == 202, r.text
    c.started.append(r.json()["job_id"])
    assert r.headers["location"] == f"/api/v1/ml/jobs/{r.json()['job_id']}"
    return r.json()


def _wait(c, job_id: str, until, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = c.get(f"/api/v1/ml/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not get there in {timeout_s} s: {job}")


def _group(pid: int) -> list[int]:
    """Live processes of the process group `pid` leads (the job's worker and its episode processes)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[2] == str(pid) and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def test_a_training_job_runs_in_a_worker_reports_progress_and_registers_its_model(api):
    job = _start(api, episodes=2)
    assert job["state"] == "queued" and job["episodes_total"] == 2 and job["created_by"] == "ops"
    busy = api.post("/api/v1/ml/train", json=SMALL)  # one job at a time by default
    assert busy.status_code == 409 and job["job_id"] in busy.json()["message"]
    seen = set()

    def done(j):
        seen.add((j["state"], j["episodes_done"]))
        return j["state"] in ("succeeded", "failed", "cancelled")

    job = _wait(api, job["job_id"], done)
    assert job["state"] == "succeeded", job
    assert ("running", 0) in seen or ("running", 1) in seen  # it was seen at work before it ended
    assert job["episodes_done"] == 2 and job["progress"] == 1.0 and job["error"] is None
    assert job["model_version"] == "v1" and job["result"]["violations"] == 0 and job["result"]["episodes"] == 2
    assert Path(job["result"]["model_path"], "meta.json").is_file() and (Path(job["out_dir"]) / "worker.log").is_file()
    model = api.get("/api/v1/ml/models/v1").json()
    assert model["episodes"] == 2 and model["registered_by"] == "ops" and job["job_id"] in model["source"]
    # the trained model fits the network it was trained on, and deploys
    r = api.post("/api/v1/ml/deploy/v1", json={"scenario": "single"})
    assert r.status_code == 200 and r.json()["active"] == {"C": "v1"}
    assert [j["job_id"] for j in api.get("/api/v1/ml/jobs").json()] == [job["job_id"]]
    assert api.get("/api/v1/ml/jobs", params={"state": "failed"}).json() == []


def test_a_running_job_is_cancelled_with_its_processes(api, tmp_path):
    job = _start(api, episodes=50, duration_s=3600)
    job = _wait(api, job["job_id"], lambda j: j["state"] == "running" and j["heartbeat_at"] is not None)
    pid = get_job(get_engine(f"sqlite:///{tmp_path / 'jobs.db'}"), job["job_id"]).pid
    deadline = time.monotonic() + 30
    while len(_group(pid)) < 2 and time.monotonic() < deadline:  # its episode process is up
        time.sleep(0.1)
    assert len(_group(pid)) >= 2
    r = api.post(f"/api/v1/ml/jobs/{job['job_id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["cancel_requested"]
    deadline = time.monotonic() + 10
    while _group(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(pid) == []  # the worker and every episode process are gone
    assert api.get(f"/api/v1/ml/jobs/{job['job_id']}").json()["state"] == "cancelled"
    # cancelling again, or with DELETE, leaves it as it is; an unknown job is 404
    assert api.delete(f"/api/v1/ml/jobs/{job['job_id']}").json()["state"] == "cancelled"
    assert api.post("/api/v1/ml/jobs/0123456789abcdef/cancel").status_code == 404
    assert api.get("/api/v1/ml/jobs/0123456789abcdef").status_code == 404
    # with the job gone, another may start
    assert api.post("/api/v1/ml/train", json={**SMALL, "episodes": 1, "scenario": "nowhere"}).status_code == 422


def test_a_job_whose_worker_died_is_marked_failed_when_the_server_starts_again(api, tmp_path):
    job = _start(api, episodes=50, duration_s=3600)
    job = _wait(api, job["job_id"], lambda j: j["state"] == "running")
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    pid = get_job(get_engine(url), job["job_id"]).pid
    os.killpg(pid, signal.SIGKILL)  # the worker dies without a word (as it would with its machine)
    deadline = time.monotonic() + 10
    while process_runs(pid, job["job_id"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    settings = Settings(database_url=url, ml_jobs_dir=tmp_path / "jobs", cache_ttl_s=0)
    with TestClient(create_app(settings), headers=api.headers) as restarted:
        again = restarted.get(f"/api/v1/ml/jobs/{job['job_id']}").json()
    assert again["state"] == "failed" and "worker process ended without a result" in again["error"]
    assert again["finished_at"] is not None


@pytest.mark.parametrize("request_body,where", [
    ({"episodes": 0}, "body.episodes"),
    ({"scenario": "nowhere"}, "scenario:"),
    ({"guide_visits": "sometimes"}, "body.guide_visits"),
    ({"workers": 1, "colour": "red"}, "body.colour"),
    ({"duration_s": 0.5}, "body.duration_s"),
    ({"workers": (os.cpu_count() or 1) + 1}, "workers: at most this server's"),
])
def test_bad_training_requests_are_422_naming_the_field_and_start_nothing(api, request_body, where):
    r = api.post("/api/v1/ml/train", json={**SMALL, **request_body})
    assert r.status_code == 422 and r.json()["message"].startswith(where), r.json()
    assert api.get("/api/v1/ml/jobs").json() == []
