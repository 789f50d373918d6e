"""The model API: registry routes (models, status, deploy, rollback, history), submitted figures and the
performance of the active model. Real models, real SUMO runs, SQLite always and PostgreSQL when it answers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.models import renamed, write_model

from signalwise.api import create_app
from signalwise.envs.episode import probe_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.model_registry import open_registry
from signalwise.training.registry import register_model

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _signals(scenario: str) -> dict:
    cfg = RunConfig(scenario=scenario)
    inters, _ = probe_network(cfg, resolve_scenario(cfg))
    return {i.id: i for i in inters}


@pytest.fixture(scope="module")
def signals():
    return {"single": _signals("single"), "corridor": _signals("corridor")}


def _settings(url: str, tmp_path: Path, **extra) -> Settings:
    return Settings(database_url=url, model_cache=tmp_path / "cache", model_registry=tmp_path / "no-registry",
                    ml_jobs_dir=tmp_path / "jobs", cache_ttl_s=0, **extra)


@pytest.fixture
def models(tmp_path, signals):
    """v1: made for single's C; v2: made for corridor's J2 (3 phases, other lanes) under the id C."""
    return (write_model(tmp_path / "fits", [signals["single"]["C"]]),
            write_model(tmp_path / "other", [renamed(signals["corridor"]["J2"], "C")], scenario="corridor"))


@pytest.mark.slow
def test_deploy_status_rollback_and_history_check_the_layout_and_refuse_by_name(db_url, tmp_path, models):
    settings = _settings(db_url, tmp_path)
    reg = open_registry(settings)
    for m in models:
        register_model(reg, m, who="trainer")
    app = create_app(settings)
    _, key = create_key(get_engine(db_url), "ops", ["operate", "read"])
    with TestClient(app, headers={"X-API-Key": key}) as c:
        listed = c.get("/api/v1/ml/models").json()
        assert [m["model_id"] for m in listed] == ["v1", "v2"] and listed[0]["registered_by"] == "trainer"
        assert listed[0]["size_bytes"] > 0 and listed[1]["scenario"] == "corridor"
        from signalwise.provenance import model_dir_id

        # the id a researcher cites (`models show`, run.json): the same as the directory's, and the two differ
        assert [m["identity"] for m in listed] == [model_dir_id(m) for m in models]
        assert listed[0]["identity"] != listed[1]["identity"]
        r = c.post("/api/v1/ml/deploy/v9", json={})
        assert r.status_code == 404 and "no model version 'v9'" in r.json()["message"]
        # another layout: refused by name, with what differs
        r = c.post("/api/v1/ml/deploy/v2", json={"scenario": "single"})
        assert r.status_code == 409 and "v2 fits none" in r.json()["message"]
        assert "another layout" in r.json()["message"] and "phases" in r.json()["message"]
        r = c.post("/api/v1/ml/deploy/v2", json={"scenario": "single", "intersections": ["C"]})
        assert r.status_code == 409 and "v2 does not fit: C:" in r.json()["message"]
        r = c.post("/api/v1/ml/deploy/v1", json={"scenario": "single", "intersections": ["Z"]})
        assert r.status_code == 404 and "unknown intersection(s) Z" in r.json()["message"]
        r = c.post("/api/v1/ml/deploy/v1", json={"scenario": "corridor"})  # no C there: it fits none
        assert r.status_code == 409 and "trained for C" in r.json()["message"]
        assert reg.active() == {}  # nothing refused left a trace
        r = c.post("/api/v1/ml/deploy/v1", json={"scenario": "single"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["active"] == {"C": "v1"} and body["checked_against"] == "scenario" and body["live"] is False
        # without a network to check against: the model's own tables (v2 does have one for C)
        r = c.post("/api/v1/ml/deploy/v2")
        assert r.status_code == 200 and r.json()["checked_against"] == "model"
        assert reg.active() == {"C": "v2"}  # the CLI's registry: the same functions
        c.post("/api/v1/ml/rollback/C")
        st = c.get("/api/v1/ml/status/C").json()
        assert (st["active_version"], st["by"], st["how"]) == ("v1", "ops", "rollback")
        assert st["model"]["model_id"] == "v1" and st["model"]["active_at"] == ["C"] and st["live"] is None
        assert [(h["model_id"], h["rolled_back_by"]) for h in st["history"]] == [("v1", None), ("v2", "ops")]
        r = c.post("/api/v1/ml/rollback/C")
        assert r.status_code == 200 and r.json() == {"intersection_id": "C", "active_version": None, "live": False,
                                                     "live_change": None}
        r = c.post("/api/v1/ml/rollback/C")
        assert r.status_code == 409 and "nothing deployed at C" in r.json()["message"]
        assert c.post("/api/v1/ml/rollback/NOPE").status_code == 404
        assert c.get("/api/v1/ml/status/NOPE").status_code == 404
        assert c.get("/api/v1/ml/status/C").json()["active_version"] is None
        assert len(c.get("/api/v1/ml/history/C").json()) == 2
        assert c.get("/api/v1/ml/history/NOPE").status_code == 404
        # bad input: 422 with the field path
        r = c.post("/api/v1/ml/deploy/v1", json={"intersections": 5})
        assert r.status_code == 422 and r.json()["message"].startswith("body.intersections: Input should be a valid list")
        r = c.post("/api/v1/ml/deploy/v1", json={"scenario": "single", "colour": "red"})
        assert r.status_code == 422 and "colour" in r.json()["message"]


def _interval(start: dt.datetime, **figures) -> dict:
    return {"interval_start": start.isoformat(), "interval_s": 900, **figures}


@pytest.mark.slow
def test_removing_a_version_needs_admin_and_is_refused_while_it_runs_or_could_return(db_url, tmp_path, models):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    settings = _settings(db_url, tmp_path)
    reg = open_registry(settings)
    for m in (models[0], models[0], models[1]):  # v1 and v2 the same files, v3 another layout
        register_model(reg, m, who="trainer")
    reg.deploy("v1", who="setup")
    engine = get_engine(db_url)
    _, ops_key = create_key(engine, "ops", ["operate", "read"])
    _, admin_key = create_key(engine, "root", ["admin"])
    # a live run that names v2 itself (`ql:@v2`): the registry has it deployed nowhere
    rt = LiveRuntime(RunConfig(scenario="single", controller=f"ql:{reg.materialize('v2')}"),
                     LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / "live")
    rt.open()
    app = create_app(settings)
    app.state.live = rt
    try:
        with TestClient(app) as c:
            r = c.delete("/api/v1/ml/models/v3", headers={"X-API-Key": ops_key})
            assert r.status_code == 403 and reg.get("v3")  # operate may deploy, not delete
            admin = {"X-API-Key": admin_key}
            r = c.delete("/api/v1/ml/models/v1", headers=admin)
            assert r.status_code == 409 and "v1 is active at C" in r.json()["message"]
            r = c.delete("/api/v1/ml/models/v2", headers=admin)
            assert r.status_code == 409 and "v2 runs in the live run at C" in r.json()["message"]
            r = c.delete("/api/v1/ml/models/v3", headers=admin)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["model_id"] == "v3" and out["removed_by"] == "root" and out["removed_at"]
            assert out["freed_bytes"] == out["size_bytes"] > 0  # it shared no file with v1 and v2
            assert [m["model_id"] for m in c.get("/api/v1/ml/models").json()] == ["v1", "v2"]
            listed = c.get("/api/v1/ml/models", params={"removed": "true"}).json()
            assert [(m["model_id"], m["removed_by"]) for m in listed] == [("v1", None), ("v2", None), ("v3", "root")]
            kept = c.get("/api/v1/ml/models/v3").json()
            assert kept["scenario"] == "corridor" and kept["size_bytes"] == 0 and kept["removed_by"] == "root"
            for r in (c.delete("/api/v1/ml/models/v3", headers=admin), c.post("/api/v1/ml/deploy/v3", headers=admin)):
                assert r.status_code == 404 and "'v3' was removed from the registry" in r.json()["message"]
    finally:
        rt.field.backend.close()


def test_submitted_figures_are_stored_replaced_filtered_and_need_the_ingest_scope(db_url, tmp_path):
    app = create_app(_settings(db_url, tmp_path, bind_host="0.0.0.0"))
    engine = get_engine(db_url)
    _, ingester = create_key(engine, "field-study", ["ingest"])
    _, operator = create_key(engine, "ops", ["operate", "read"])
    _, reader = create_key(engine, "dash", ["read"])
    t0 = dt.datetime(2025, 9, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    body = {"intersection_id": "C", "source": "study-1", "intervals": [
        _interval(t0 + dt.timedelta(minutes=15 * k), controller="ql", model_version="v1", delay_s_per_veh=20.0 + k,
                  queue_veh=3.0, throughput_veh_per_h=600.0) for k in range(4)]}
    with TestClient(app) as c:
        assert c.post("/api/v1/ml/metrics", json=body, headers={"X-API-Key": operator}).status_code == 403
        assert c.post("/api/v1/ml/metrics", json=body, headers={"X-API-Key": reader}).status_code == 403
        r = c.post("/api/v1/ml/metrics", json=body, headers={"X-API-Key": ingester})
        assert r.status_code == 201 and r.json() == {"intersection_id": "C", "source": "study-1", "stored": 4}
        # the same source sending an interval again replaces it
        again = {**body, "intervals": [_interval(t0, controller="fixed", delay_s_per_veh=40.0)]}
        assert c.post("/api/v1/ml/metrics", json=again, headers={"X-API-Key": ingester}).json()["stored"] == 1
        got = c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader}).json()
        assert got["total"] == 4 and got["items"][0]["controller"] == "fixed"
        assert got["items"][0]["delay_s_per_veh"] == 40.0 and got["items"][0]["queue_veh"] is None
        assert got["items"][0]["interval_start"] == "2025-09-01T05:00:00Z" and got["items"][1]["submitted_by"] == "field-study"
        ranged = c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader},
                       params={"start": "2025-09-01T05:15:00Z", "end": "2025-09-01T05:45:00Z"}).json()
        assert [i["delay_s_per_veh"] for i in ranged["items"]] == [21.0, 22.0] and ranged["total"] == 2
        assert c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader},
                     params={"source": "other"}).json()["total"] == 0
        assert c.get("/api/v1/ml/metrics/Z", headers={"X-API-Key": reader}).status_code == 404
        r = c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader},
                  params={"start": "2025-09-01T06:00:00Z", "end": "2025-09-01T05:00:00Z"})
        assert r.status_code == 422 and "must be after start" in r.json()["message"]
        # bad input: 422 naming the field, nothing stored
        for interval, where in (({"controller": "ql"}, "body.intervals[0]: Value error, give at least one of"),
                                ({"controller": "ql", "delay_s_per_veh": -1}, "body.intervals[0].delay_s_per_veh"),
                                ({"controller": "ql", "queue_veh": 1, "model_version": "latest"},
                                 "body.intervals[0].model_version")):
            bad = {"intersection_id": "C", "intervals": [_interval(t0 + dt.timedelta(days=1), **interval)]}
            r = c.post("/api/v1/ml/metrics", json=bad, headers={"X-API-Key": ingester})
            assert r.status_code == 422 and r.json()["message"].startswith(where), r.json()
        naive = {"intersection_id": "C", "intervals": [{"interval_start": "2025-09-02T07:00:00", "interval_s": 60,
                                                        "controller": "ql", "queue_veh": 1}]}
        r = c.post("/api/v1/ml/metrics", json=naive, headers={"X-API-Key": ingester})
        assert r.status_code == 422 and "interval_start" in r.json()["message"]
        assert c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader}).json()["total"] == 4
        # an interval given twice in one request is one interval, its last figures kept (PostgreSQL's upsert
        # refused the request whole)
        twice = {**body, "intervals": [_interval(t0, controller="ql", delay_s_per_veh=50.0),
                                       _interval(t0, controller="ql", delay_s_per_veh=51.0)]}
        r = c.post("/api/v1/ml/metrics", json=twice, headers={"X-API-Key": ingester})
        assert r.status_code == 201 and r.json()["stored"] == 1, r.text
        got = c.get("/api/v1/ml/metrics/C", headers={"X-API-Key": reader}).json()
        assert got["total"] == 4 and got["items"][0]["delay_s_per_veh"] == 51.0
        r = c.post("/api/v1/ml/metrics", json={**body, "source": "a\u0000b"}, headers={"X-API-Key": ingester})
        assert r.status_code == 422 and r.json()["message"].startswith("body.source")
        # reads, deploys and rollbacks keep their scopes
        assert c.post("/api/v1/ml/deploy/v1", headers={"X-API-Key": ingester}).status_code == 403
        assert c.post("/api/v1/ml/rollback/C", headers={"X-API-Key": reader}).status_code == 403
        assert c.get("/api/v1/ml/models", headers={"X-API-Key": ingester}).status_code == 403


def _cli(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.slow
def test_the_active_model_against_the_baseline_from_stored_runs_live_data_and_submitted_figures(tmp_path, models):
    """One flow on SQLite: stored runs through the CLI, a live run deployed to through the API, figures posted."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    url = f"sqlite:///{tmp_path / 'ml.db'}"
    settings = _settings(url, tmp_path)
    reg = open_registry(settings)
    register_model(reg, models[0])  # v1: fits single's C
    register_model(reg, models[1])  # v2: another layout
    reg.deploy("v1", who="setup")
    env = {"SIGNALWISE_DATABASE_URL": url, "SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache"),
           "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "no-registry")}
    # the model and the baseline, same scenario and seed, stored; the model's run twice: the latest stands for both
    for controller, name in (("ql:@active", "ql-a"), ("ql:@active", "ql-b"), ("fixed", "fixed")):
        r = _cli("run", "-s", "single", "-c", controller, "--seed", "4", "--duration", "300", "--no-emissions",
                 "--db", url, "--run-dir", str(tmp_path / name), env=env)
        assert r.returncode == 0, r.stderr
    # another version deployed and run on the same seed: a run of another model, which stands for none of v1's
    register_model(reg, write_model(tmp_path / "fits-too", [_signals("single")["C"]], episodes=7))  # v3
    reg.deploy("v3", who="setup")
    r = _cli("run", "-s", "single", "-c", "ql:@active", "--seed", "4", "--duration", "300", "--no-emissions",
             "--db", url, "--run-dir", str(tmp_path / "ql-v3"), env=env)
    assert r.returncode == 0, r.stderr
    reg.rollback(who="setup")  # back to v1
    reg.rollback(who="setup")

    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=600, in_process=True), tmp_path / "live")
    rt.open()
    app = create_app(settings)
    app.state.live = rt
    _, key = create_key(get_engine(url), "ops", ["operate", "read", "ingest"])
    try:
        with TestClient(app, headers={"X-API-Key": key}) as c:
            r = c.post("/api/v1/ml/deploy/v2")  # another layout than the live signal's: refused, nothing changes
            assert r.status_code == 409 and "another layout" in r.json()["message"]
            assert reg.active() == {} and rt.controller_spec == "max-pressure"
            r = c.post("/api/v1/ml/deploy/v1", json={"intersections": "all"})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["checked_against"] == "live" and out["live"] and out["live_change"]["result"] == "applied"
            # the live signal goes back with the registry; with no version left it runs the Webster plan
            r = c.post("/api/v1/ml/rollback/C")
            assert r.status_code == 200 and r.json()["active_version"] is None
            assert r.json()["live_change"]["payload"]["controller"] == "webster"
            r = c.post("/api/v1/ml/deploy/v1", json={"intersections": "all"})
            assert r.status_code == 200 and r.json()["live_change"]["result"] == "applied"
            rt.run()  # the loop takes v1 at the signal's next green, and runs it for 600 s
            st = c.get("/api/v1/ml/status/C").json()
            assert st["active_version"] == "v1" and st["by"] == "ops"
            live = st["live"]
            assert live["controller"] == "ql" and live["runs_active_version"] is True
            assert 0.0 <= live["fallback_share"] <= 1.0 and live["controller_since_s"] is not None
            t0 = dt.datetime(2025, 9, 1, 7, tzinfo=dt.UTC)
            intervals = [_interval(t0 + dt.timedelta(minutes=15 * k), controller="ql", model_version="v1",
                                   delay_s_per_veh=20.0 + k) for k in range(3)]
            intervals += [_interval(t0 + dt.timedelta(days=1, minutes=15 * k), controller="fixed",
                                    delay_s_per_veh=30.0 + k) for k in range(3)]
            assert c.post("/api/v1/ml/metrics", json={"intersection_id": "C", "intervals": intervals}).status_code == 201
            perf = c.get("/api/v1/ml/performance/C").json()
            assert perf["active_version"] == "v1" and perf["baseline_controller"] == "fixed"
            by = {s["source"]: s for s in perf["sources"]}
            stored = by["stored_runs"]
            assert stored["contributed"] and (stored["n_candidate"], stored["n_baseline"]) == (1, 1)
            wait = next(f for f in stored["figures"] if f["metric"] == "avg_wait_s")
            assert wait["unit"] == "s" and wait["candidate"]["mean"] > 0 and wait["baseline"]["mean"] > 0
            assert len(stored["ids"]) == 2
            submitted = by["submitted"]
            delay = submitted["figures"][0]
            assert (submitted["n_candidate"], submitted["n_baseline"]) == (3, 3) and delay["unit"] == "s/veh"
            assert delay["candidate"]["mean"] == 21.0 and delay["baseline"]["mean"] == 31.0
            assert round(delay["change_pct"], 2) == round((21 - 31) / 31 * 100, 2) and delay["p_value"] < 0.05
            live_src = by["live"]
            assert live_src["contributed"] and live_src["n_candidate"] >= 5 and live_src["n_baseline"] == 0
            assert "no baseline" in live_src["note"]
            # the run is over: the registry rolls back, and there is no live signal left to switch
            r = c.post("/api/v1/ml/rollback/C")
            assert r.status_code == 200 and r.json()["active_version"] is None and r.json()["live_change"] is None
            assert c.get("/api/v1/ml/performance/C").status_code == 404  # no active model to compare
            r = c.post("/api/v1/live/rollback", json={})  # the live routes need a running live run; this one ended
            assert r.status_code == 503 and "the live run has ended (complete)" in r.json()["message"]
    finally:
        rt.field.backend.close()


@pytest.mark.postgres
def test_a_prediction_waiting_on_the_registry_leaves_the_server_answering(tmp_path, signals):
    """A prediction with ql:@active reads the registry's database and model files; while a deployment elsewhere
    holds the versions table locked it waits, off the event loop, and the health probe is answered meanwhile."""
    import threading
    import time

    import httpx
    from sqlalchemy import text
    from support.databases import postgres_unavailable_reason
    from support.loopback import serving
    from support.migrated_databases import migrated_database

    from signalwise.store.model_registry import V

    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with migrated_database("postgresql", tmp_path) as url:
        settings = _settings(url, tmp_path)
        reg = open_registry(settings)
        register_model(reg, write_model(tmp_path / "fits", [signals["single"]["C"]]))
        reg.deploy("v1", who="setup")
        app = create_app(settings)
        with serving(app) as base, httpx.Client(base_url=base, timeout=60) as c, get_engine(url).connect() as lock:
            lock.execute(text(f"LOCK TABLE {V.name} IN ACCESS EXCLUSIVE MODE"))  # held until the rollback below
            done: dict[str, int] = {}

            def predict():
                r = c.post("/api/v1/ml/predict", params={"scenario": "single"},
                           json={"intersection_id": "C", "phase_number": 1, "time_in_phase_s": 30.0,
                                 "time_s": 1000.0, "lanes": {}, "sources": [{"source": "lanes"}],
                                 "controller": "ql:@active"})
                done["status"] = r.status_code

            waiting = threading.Thread(target=predict)
            waiting.start()
            time.sleep(0.5)
            t0 = time.monotonic()
            assert c.get("/health", timeout=5).status_code == 200  # on the loop it would wait for the lock
            assert time.monotonic() - t0 < 2.0 and waiting.is_alive() and not done
            lock.rollback()
            waiting.join(30)
        assert done == {"status": 200}
