"""Training through the API: a real (small) job in a worker process, its progress and model, cancelling it,
and a job whose worker died while the server was down. SQLite: the worker shares the file with the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from typer.testing import CliRunner

from signalwise.api import create_app
from signalwise.api.routers.ml_jobs import TrainIn
from signalwise.cli import app
from signalwise.control.learning.phase_score import FEATURES
from signalwise.store import Settings, get_engine
from signalwise.store.jobs import get_job, process_runs
from signalwise.store.keys import create_key
from signalwise.store.model_registry import ModelRegistry
from signalwise.store.tables import TrainingJob
from signalwise.training.commands import PHASE_SCORE_OPTIONS, TABULAR_OPTIONS
from signalwise.training.jobs import PHASE_SCORE_FIELDS, TABULAR_FIELDS

SMALL = {"scenario": "single", "batch": 1, "workers": 1, "duration_s": 120, "guide_visits": 30}
#: no agent and no tabular field: the phase-score search, as `signalwise train` without --agent
SEARCH = {"scenario": "single", "workers": 1, "duration_s": 120, "generations": 1, "popsize": 2, "validation_seeds": 1}


def _server(folder: Path, **settings) -> TestClient:
    url = f"sqlite:///{folder / 'jobs.db'}"
    settings = Settings(database_url=url, model_cache=folder / "cache", model_registry=folder / "no-registry",
                        ml_jobs_dir=folder / "jobs", cache_ttl_s=0, **settings)
    _, key = create_key(get_engine(url), "ops", ["operate", "read"])
    return TestClient(create_app(settings), headers={"X-API-Key": key})


@pytest.fixture
def api(tmp_path):
    started = []
    with _server(tmp_path) as c:
        c.started = started
        yield c
        for job_id in started:  # never leave a worker behind, whatever the test did
            c.post(f"/api/v1/ml/jobs/{job_id}/cancel")


@pytest.fixture(scope="module")
def _refusing_server(tmp_path_factory):
    # a new database and app cost about 0.5 s of CPU, more than a refused request: one for all the refusals
    # (their POSTs are counted against the operate rate limit, kept well clear of it)
    with _server(tmp_path_factory.mktemp("refusals"), rate_limits={"operate": "10000/minute"}) as c:
        yield c


@pytest.fixture
def refusing(_refusing_server):
    """The server for requests that must be refused and start nothing: each test finds it without a job."""
    c = _refusing_server
    assert c.get("/api/v1/ml/jobs").json() == []
    yield c
    for job in c.get("/api/v1/ml/jobs").json():  # one wrongly taken: its worker goes, and its row, for the next
        c.post(f"/api/v1/ml/jobs/{job['job_id']}/cancel")
    with get_engine(c.app.state.settings.database_url).begin() as db:
        db.execute(delete(TrainingJob))


def _start(c, base: dict = SMALL, **request) -> dict:
    r = c.post("/api/v1/ml/train", json={**base, **request})
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


@pytest.mark.slow
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
    ({"scenario": "nowhere"}, "body.scenario: unknown scenario"),
    ({"guide_visits": "sometimes"}, "body.guide_visits"),
    ({"workers": 1, "colour": "red"}, "body.colour"),
    ({"duration_s": 0.5}, "body.duration_s"),
    ({"workers": (os.cpu_count() or 1) + 1}, "body.workers: at most this server's"),
])
def test_bad_training_requests_are_422_naming_the_field_and_start_nothing(refusing, request_body, where):
    r = refusing.post("/api/v1/ml/train", json={**SMALL, **request_body})
    assert r.status_code == 422 and r.json()["message"].startswith(where), r.json()
    assert refusing.get("/api/v1/ml/jobs").json() == []


@pytest.mark.slow
def test_a_phase_score_job_runs_the_search_counts_its_episodes_and_registers_its_model(api, tmp_path):
    # under a city's own clearances (a --config file's settings): the episodes run them, the model records them
    job = _start(api, SEARCH, start="auto", settings={"timing": {"yellow_s": 5, "all_red_s": 2}})
    # the 4 named starts on the validation seed, then 1 generation of 2 candidates on one training seed
    assert job["request"]["agent"] == "phase-score" and job["episodes_total"] == 4 + 2
    job = _wait(api, job["job_id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded", job
    assert job["episodes_done"] == job["episodes_total"] == 6 and job["progress"] == 1.0
    result = job["result"]
    # the model counts the learned weights' validation run too (the chosen start's ran already); no last episode
    assert result["episodes"] == 7 and result["violations"] == 0 and result["last_avg_delay_s"] is None
    selection = result["selection"]
    assert selection["chosen"] in ("learned", "start") and len(selection["starts"]["candidates"]) == 4
    assert result["wall_s"] > 0
    assert job["model_version"] == "v1" and result["model_version"] == "v1"
    registry = ModelRegistry(get_engine(f"sqlite:///{tmp_path / 'jobs.db'}"), tmp_path / "check-cache")
    version = registry.get("v1")
    assert version.meta["agent"] == "phase-score" and version.meta["training"]["generations"] == 1
    assert version.meta["training"]["run"] == {"timing": {"profile": "safety", "yellow_s": 5, "all_red_s": 2}}
    assert job["job_id"] in version.source
    r = api.post("/api/v1/ml/deploy/v1", json={"scenario": "single"})
    assert r.status_code == 200 and r.json()["active"] == {"C": "v1"}


def test_the_agent_is_phase_score_unless_a_tabular_field_is_given_and_the_stored_request_says_which(api):
    base = {"scenario": "single", "workers": 1, "register_version": False}

    def started(**request) -> dict:
        job = _start(api, base, **request)  # what it was resolved to is in the answer: no need to train
        assert api.post(f"/api/v1/ml/jobs/{job['job_id']}/cancel").json()["state"] == "cancelled"
        return job

    job = started()
    assert job["request"]["agent"] == "phase-score" and job["episodes_total"] == 12 * 8  # the CLI's defaults
    assert api.get(f"/api/v1/ml/jobs/{job['job_id']}").json()["request"]["agent"] == "phase-score"
    job = started(episodes=3)  # a tabular field without agent: the tabular agent, as on the command line
    assert job["request"]["agent"] == "tabular" and job["episodes_total"] == 3 * 2  # guide_visits auto: 2 candidates
    job = started(agent="tabular")
    assert job["request"]["agent"] == "tabular" and job["episodes_total"] == 40 * 2
    # start auto runs the 4 named starts on each validation seed first, in each of the restarts' searches
    job = started(start="auto", restarts=2, validation_seeds=2, generations=3, popsize=4, seeds_per_generation=2)
    assert job["request"]["agent"] == "phase-score" and job["episodes_total"] == 2 * (4 * 2 + 3 * 4 * 2)
    assert [j["request"]["agent"] for j in api.get("/api/v1/ml/jobs").json()] == \
        ["phase-score", "tabular", "tabular", "phase-score"]
    # the fields that choose tabular are the command line's tabular options the API takes
    assert set(TABULAR_FIELDS) <= set(TABULAR_OPTIONS)
    assert set(PHASE_SCORE_FIELDS) - {"settings"} <= set(PHASE_SCORE_OPTIONS)  # settings: --config's contents
    assert set(TABULAR_FIELDS) | set(PHASE_SCORE_FIELDS) <= set(TrainIn.model_fields)


@pytest.mark.parametrize("request_body,where", [
    ({"agent": "phase-score", "episodes": 5, "gamma": 0.9}, "episodes, gamma: for agent tabular"),
    ({"agent": "tabular", "generations": 2, "timing": "benchmark"}, "generations, timing: for agent phase-score"),
    ({"episodes": 5, "popsize": 4}, "popsize: for agent phase-score (episodes given without agent chose tabular)"),
    ({"agent": "q-learning"}, "body.agent: Input should be 'phase-score' or 'tabular'"),
    ({"start": "/tmp"}, "body.start: Input should be 'max-pressure'"),  # a named start, never a path
    ({"popsize": 1}, "body.popsize: Input should be greater than or equal to 2"),
    ({"period": 0}, "body.period: Input should be greater than 0"),
    ({"settings": {"scenario": "grid", "shield": {}}}, "body.settings: scenario not taken; a training takes timing"),
    ({"settings": {"timing": {"yellow_s": 1}}},
     "body.settings.timing.yellow_s: Value error, yellow_s (1) must be at least 3 under the safety profile"),
    ({"settings": {"sumo_options": {"seed": 3}}}, "body.settings.sumo_options: Value error, seed: set by the run"),
    # no option names a file on the server, whatever SUMO calls it
    ({"settings": {"sumo_options": {"netstate-dump": "/tmp/x.xml"}}},
     "body.settings.sumo_options: Value error, netstate-dump: the run writes its own outputs"),
    ({"settings": {"sumo_options": {"save-configuration": "/tmp/y.xml"}}},
     "body.settings.sumo_options: Value error, save-configuration: the run writes its own outputs"),
    ({"settings": {"sumo_options": {"weight-files": "/etc/passwd"}}},
     "body.settings.sumo_options: Value error, weight-files: names a file"),
    ({"agent": "tabular", "settings": {"shield": {}}}, "settings: for agent phase-score"),
    ({"agent": "tabular", "add_feature": ["hold_gap"]}, "add_feature: for agent phase-score; a tabular job takes"),
    ({"agent": "tabular", "zone_m": 30}, "zone_m: for agent phase-score"),
    ({"agent": "tabular", "shared_lanes": "skip"}, "shared_lanes: for agent phase-score"),
    ({"agent": "tabular", "demand_scale": [1.2]}, "demand_scale: for agent phase-score"),
    ({"agent": "tabular", "cycle_calls": True}, "cycle_calls: for agent phase-score"),
    ({"batch": 1, "cycle_calls": True}, "cycle_calls: for agent phase-score (batch given without agent chose"),
    ({"shared_lanes": "all"}, "body.shared_lanes: Input should be 'skip' or 'split'"),
])
def test_a_field_of_the_other_agent_or_a_bad_search_option_is_422_and_starts_nothing(refusing, request_body, where):
    r = refusing.post("/api/v1/ml/train", json={"scenario": "single", "workers": 1, **request_body})
    assert r.status_code == 422 and r.json()["message"].startswith(where), r.json()
    assert refusing.get("/api/v1/ml/jobs").json() == []


@pytest.mark.parametrize("args,request_body,where", [
    (["--add-feature", "hold_gap", "--add-feature", "waiting_s"], {"add_feature": ["hold_gap", "waiting_s"]},
     "body.add_feature"),
    (["--zone-m", "-1"], {"zone_m": -1}, "body.zone_m"),
    (["--demand-scale", "1", "--demand-scale", "0"], {"demand_scale": [1, 0]}, "body.demand_scale[1]"),
    (["--demand-scale", "11"], {"demand_scale": [11]}, "body.demand_scale[0]"),
])
def test_a_bad_search_option_is_422_at_its_path_for_the_reason_train_gives(refusing, tmp_path, args, request_body,
                                                                          where):
    said = CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path / "cli")])
    assert said.exit_code == 2, said.output
    reason = said.output.strip().removeprefix("error: ").removeprefix(f"{args[0]} ")  # --zone-m must be ...
    r = refusing.post("/api/v1/ml/train", json={**SEARCH, **request_body})
    assert r.status_code == 422 and r.json()["message"] == f"{where}: {reason}", (r.json(), said.output)
    assert refusing.get("/api/v1/ml/jobs").json() == []


@pytest.mark.slow
def test_a_phase_score_job_takes_the_search_options_of_train_and_its_model_records_them_alike(api, tmp_path):
    asked = {"add_feature": ["switch_halt_red"], "zone_m": 30, "shared_lanes": "skip", "demand_scale": [1.1],
             "cycle_calls": True}
    job = _start(api, SEARCH, **asked)
    assert {k: job["request"][k] for k in asked} == {**asked, "zone_m": 30.0}
    job = _wait(api, job["job_id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded" and job["result"]["violations"] == 0, job
    meta = ModelRegistry(get_engine(f"sqlite:///{tmp_path / 'jobs.db'}"), tmp_path / "check-cache").get("v1").meta
    config, policy = meta["training"]["config"], meta["policy"]
    # as `signalwise train --add-feature switch_halt_red --zone-m 30 --shared-lanes skip --demand-scale 1.1
    # --cycle-calls` records them: the feature searched from 0, the zone and the lanes the episodes measured
    # (split would be the safety profile's), the scale of the training seed, the cycle rule its episodes ran
    assert policy["features"] == config["features"] == [*FEATURES, "switch_halt_red"]
    assert config["start"][-1] == 0.0 and config["start_name"] == "max-pressure"
    assert policy["zone_m"] == config["zone_m"] == 30.0
    assert policy["shared_lanes"] == config["shared_lanes"] == "skip"
    assert config["demand_scales"] == [1.1]
    assert meta["training"]["run"] == {"timing": {"profile": "safety", "cycle_calls": True}}


@pytest.mark.slow
def test_a_phase_score_request_with_settings_is_stored_whole_in_either_database(db_url, tmp_path):
    """The request a worker reads back, nested settings included, from SQLite and from PostgreSQL."""
    settings = Settings(database_url=db_url, model_cache=tmp_path / "cache", model_registry=tmp_path / "no-registry",
                        ml_jobs_dir=tmp_path / "jobs", cache_ttl_s=0)
    _, key = create_key(get_engine(db_url), "ops", ["operate", "read"])
    asked = {"timing": {"yellow_s": 4.5, "all_red_s": 2, "per_intersection": {"C": {"max_green_s": 45}}},
             "shield": {"max_observation_age_s": 12}, "time_to_teleport_s": -1}
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        search = {"add_feature": ["hold_gap", "switch_red_min"], "zone_m": 25.5, "shared_lanes": "split",
                  "demand_scale": [1.0, 1.25], "cycle_calls": True}
        r = c.post("/api/v1/ml/train", json={**SEARCH, "register_version": False, "settings": asked, **search})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert c.post(f"/api/v1/ml/jobs/{job_id}/cancel").json()["state"] == "cancelled"
        stored = get_job(get_engine(db_url), job_id).request
        assert stored["settings"] == asked and stored["agent"] == "phase-score"
        assert {k: stored[k] for k in search} == search
        assert c.get(f"/api/v1/ml/jobs/{job_id}").json()["request"]["settings"] == asked
