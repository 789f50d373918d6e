"""Training, evaluation and the model registry on real (short) SUMO runs of the built-in `single`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli import signalwise

from signalwise.control.learning.qtable import ModelError, load_model
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.training.train import TrainConfig, TrainingError, check_heldout, heldout_seeds, train

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SHORT_S = 300.0


def cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Two 300 s episodes, one round of two parallel workers, through the CLI (one threshold: no selection)."""
    out = tmp_path_factory.mktemp("train") / "t"
    r = cli("train", "--scenario", "single", "--episodes", "2", "--workers", "2", "--batch", "2", "--seed", "3",
            "--duration", str(SHORT_S), "--guide-visits", "30", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "shield violations 0" in r.stdout  # the result on stdout, the progress on stderr
    assert f"next: signalwise evaluate --model {out / 'model'} " in r.stdout
    return out


def test_training_leaves_a_model_with_its_evidence_and_no_violation(trained):
    m = load_model(trained / "model")
    t = m.meta["training"]
    assert t["episodes"] == 2 and t["violations"] == 0 and t["seeds"] == [1_300_000, 1_300_001]
    assert m.meta["scenario"] == "single" and m.table_of == {"C": "C"}
    assert m.tables["C"].visits.sum() > 20  # it really learned from decisions
    assert t["peak_worker_rss_mb"] < 1024
    for ep in ("ep-00000", "ep-00001"):
        episode = trained / "episodes" / ep
        metrics = json.loads((episode / "metrics.json").read_text())
        assert metrics["safety"]["violations"] == 0 and metrics["controller"] == "ql-train"
        # what training reads (the delay, the audit's events and states) and not the whole evidence set:
        # no detector passages, no per-edge intervals in the time series
        assert "record: lean" in (episode / "config.yaml").read_text()
        assert len((episode / "detector_passages.csv").read_text().splitlines()) == 1  # the header alone
        assert (episode / "events.csv").stat().st_size and (episode / "signal_states.csv").stat().st_size
    assert (trained / "checkpoints" / "ep-00002" / "meta.json").is_file()
    again = cli("train", "--episodes", "2", "--out", str(trained))
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.slow
def test_training_is_deterministic_whatever_the_workers_and_resume_continues_exactly(tmp_path, trained):
    # same seed and batch, 1 worker here vs 2 in the fixture: the same model
    one_worker = train(TrainConfig(episodes=2, batch=2, workers=1, seed=3, duration_s=SHORT_S, out=tmp_path / "w"))
    two_workers = load_model(trained / "model")
    np.testing.assert_array_equal(one_worker.tables["C"].q, two_workers.tables["C"].q)
    np.testing.assert_array_equal(one_worker.tables["C"].visits, two_workers.tables["C"].visits)
    # 1 episode, then --resume to 2 == 2 episodes in one go (rounds of one episode)
    train(TrainConfig(episodes=1, batch=1, workers=1, seed=3, duration_s=SHORT_S, out=tmp_path / "a"))
    with pytest.raises(TrainingError, match="--resume"):
        train(TrainConfig(episodes=2, batch=1, workers=1, seed=3, duration_s=SHORT_S, out=tmp_path / "a"))
    resumed = train(TrainConfig(episodes=2, batch=1, workers=1, seed=3, duration_s=SHORT_S, out=tmp_path / "a"),
                    resume=True)
    assert resumed.meta["training"]["episodes"] == 2
    straight = train(TrainConfig(episodes=2, batch=1, workers=1, seed=3, duration_s=SHORT_S, out=tmp_path / "b"))
    np.testing.assert_array_equal(resumed.tables["C"].q, straight.tables["C"].q)
    np.testing.assert_array_equal(resumed.tables["C"].visits, straight.tables["C"].visits)
    # sequential rounds see the first episode's learning; one round of two does not
    assert not np.array_equal(straight.tables["C"].q, one_worker.tables["C"].q)


def test_evaluation_uses_held_out_seeds_and_records_its_result(trained):
    model = load_model(trained / "model")
    seeds = heldout_seeds(model, 2)
    assert seeds == [1, 2]
    with pytest.raises(ModelError, match="used in training"):
        check_heldout(model, [1_300_001])
    r = cli("evaluate", "--model", str(trained / "model"), "--scenario", "single", "--seeds", "2",
            "--duration", "120", "--workers", "2", "--out", str(trained / "eval"))
    assert r.returncode == 0, r.stderr
    assert "max-pressure" in r.stdout and "Welch p " in r.stdout
    ev = json.loads((trained / "model" / "meta.json").read_text())["evaluations"][-1]
    assert ev["seeds"] == [1, 2] and ev["violations"] == 0 and 0.0 <= ev["fallback_fraction"] <= 1.0
    assert ev["avg_delay_s"] > 0 and ev["baseline_avg_delay_s"] > 0
    summary = json.loads((trained / "eval" / "summary.json").read_text())
    assert summary["seeds"] == [1, 2]


def test_evaluating_on_another_layout_fails_with_one_line(trained):
    r = cli("evaluate", "--model", str(trained / "model"), "--scenario", "grid", "--seeds", "1",
            "--duration", "60")
    assert r.returncode == 2
    assert "does not fit scenario 'grid'" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_model_is_refused_before_the_run(tmp_path):
    from signalwise.control.base import ControllerUnavailable

    cfg = RunConfig(scenario="single", controller=f"ql:{tmp_path / 'missing'}", seed=1, duration_s=SHORT_S,
                    emissions=False)
    with pytest.raises(ControllerUnavailable, match="no such model"):
        execute_run(cfg, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and "no such model" in info["reason"]
    assert not (tmp_path / "run" / "metrics.json").exists()


def _registry_env(tmp_path, name: str = "reg.db") -> dict:
    """The registry's database and its cache for a CLI call (nothing lands in the working directory)."""
    return {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / name}", "SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache"),
            "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "no-directory-registry")}


def test_model_registry_deploy_and_rollback_through_the_cli(trained, tmp_path):
    db = ("--db", f"sqlite:///{tmp_path / 'reg.db'}")
    env = _registry_env(tmp_path)
    for again in ((), ("--again",)):  # the same model: a second version only when asked
        r = signalwise("models", "add", str(trained / "model"), *again, *db, env=env)
        assert r.returncode == 0, r.stderr
    assert "registered v2" in r.stdout
    assert signalwise("models", "deploy", "v1", *db, env=env).returncode == 0
    assert "C: v2 active" in signalwise("models", "deploy", "v2", *db, env=env).stdout
    listing = signalwise("models", "list", *db, env=env)
    assert listing.returncode == 0 and "v2" in listing.stdout
    shown = json.loads(signalwise("models", "show", "v2", *db, env=env).stdout)
    assert shown["scenario"] == "single" and shown["training"]["episodes"] == 2 and shown["version"] == "v2"
    assert "C: v1 active" in signalwise("models", "rollback", *db, env=env).stdout
    assert "fallback plan" in signalwise("models", "rollback", *db, env=env).stdout
    history = signalwise("models", "history", "--intersection", "C", *db, env=env)
    assert history.returncode == 0 and history.stdout.count("cli:") >= 4  # two deploys, two rollbacks, by whom
    bad = signalwise("models", "deploy", "v9", *db, env=env)
    assert bad.returncode == 2 and "no model version 'v9'" in bad.stderr and "v1, v2" in bad.stderr
    elsewhere = signalwise("models", "deploy", "v1", "--intersection", "X", *db, env=env)
    assert elsewhere.returncode == 2 and "v1 has no table for X" in elsewhere.stderr
    broken = signalwise("models", "add", str(tmp_path), *db, env=env)  # not a model: refused, nothing registered
    assert broken.returncode == 2 and "not a model (no meta.json" in broken.stderr
    assert "v3" not in signalwise("models", "list", *db, env=env).stdout


def test_deploying_a_policy_to_a_signal_its_network_lacks_warns_and_names_it(tmp_path):
    """A phase-score policy runs at any signal, so a name its network does not have is deployed (it may be
    another city's signal) with a warning naming it: a typo would otherwise leave the real signal as it was."""
    from signalwise.control.learning.shipped import shipped_model_path

    db = ("--db", f"sqlite:///{tmp_path / 'reg.db'}")
    env = _registry_env(tmp_path)
    assert signalwise("models", "add", str(shipped_model_path("corridor")), *db, env=env).returncode == 0
    r = signalwise("models", "deploy", "v1", "--intersection", "J1", "--intersection", "J9", *db, env=env)
    assert r.returncode == 0, r.stderr
    assert "J1: v1 active" in r.stdout and "J9: v1 active" in r.stdout
    assert "warning: J9: no signal of corridor, the network v1 trained on" in r.stderr
    assert "J1" not in r.stderr.split("warning:")[1].split(":")[0]
    quiet = signalwise("models", "deploy", "v1", "--intersection", "J2", *db, env=env)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_deploying_a_policy_without_naming_where_suggests_its_networks_signals(tmp_path):
    """`models deploy v1` of a phase-score model (train's default) is refused: where it runs is named, never
    guessed; the refusal gives the command with the signals of the network it trained on."""
    from signalwise.control.learning.shipped import shipped_model_path

    db = ("--db", f"sqlite:///{tmp_path / 'reg.db'}")
    env = _registry_env(tmp_path)
    assert signalwise("models", "add", str(shipped_model_path("corridor")), *db, env=env).returncode == 0
    r = signalwise("models", "deploy", "v1", *db, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert ("e.g. signalwise models deploy v1 --intersection J1 --intersection J2 --intersection J3 "
            "--intersection J4 --intersection J5 (the signals of corridor, the network it trained on: J1, J2, J3, "
            "J4, J5)") in r.stderr, r.stderr
    assert signalwise("models", "history", *db, env=env).stdout.startswith("no deployment yet")


@pytest.mark.slow
def test_the_registry_database_comes_from_settings_and_reaches_ql_active_runs(trained, tmp_path):
    env = _registry_env(tmp_path)
    assert signalwise("models", "add", str(trained / "model"), env=env).returncode == 0
    assert "C: v1 active" in signalwise("models", "deploy", "v1", env=env).stdout
    assert "v1" in signalwise("models", "list", env=env).stdout
    r = cli("run", "-s", "single", "-c", "ql:@active", "--duration", "120", "--no-emissions",
            "--run-dir", str(tmp_path / "run"), env=env)
    assert r.returncode == 0, r.stderr
    assert "fallback plan" not in r.stderr  # the model was found and ran
    config = (tmp_path / "run" / "config.yaml").read_text()
    # the run's evidence names the registry and the exact files it ran (v1's copy in the cache)
    assert f"model_registry: sqlite:///{tmp_path / 'reg.db'}" in config
    ran = next(iter((tmp_path / "cache").iterdir()))
    assert ran.name.startswith("v1-") and f"C: {ran}" in config
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["network"]["fallback_fraction"] < 0.5
    empty = _registry_env(tmp_path, "empty.db")
    # refused as the run's configuration is read, before SUMO starts: in this process (as `db upgrade`)
    r = signalwise("run", "-s", "single", "-c", "ql:@active", "--duration", "60", "--no-emissions",
                   "--run-dir", str(tmp_path / "run2"), env=empty)
    # no registry database at all: said so, and none is made only to find it empty
    assert r.returncode == 2, r.stderr
    assert f"ql:@active: no model registry at {tmp_path / 'empty.db'}" in r.stderr
    assert not (tmp_path / "empty.db").exists()
    assert signalwise("db", "upgrade", env=empty).returncode == 0
    r = cli("run", "-s", "single", "-c", "ql:@active", "--duration", "60", "--no-emissions",
            "--run-dir", str(tmp_path / "run2"), env=empty)
    # an empty registry is an error before the run, naming the registry the settings gave
    assert r.returncode == 2, r.stderr
    assert "no model deployed at intersection 'C'" in r.stderr and str(tmp_path / "empty.db") in r.stderr


def test_live_deploy_and_rollback_use_the_registry_and_reach_the_running_loop(trained, tmp_path):
    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key
    from signalwise.store.model_registry import open_registry
    from signalwise.training.registry import register_model

    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = Settings(database_url=url, model_cache=tmp_path / "cache", model_registry=tmp_path / "none")
    reg = open_registry(settings)  # the registry the CLI opens for this database
    register_model(reg, trained / "model")
    register_model(reg, trained / "model")
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=120, in_process=True), tmp_path / "live")
    rt.open()
    app = create_app(settings)
    app.state.live = rt
    _, key = create_key(get_engine(url), "ops", ["operate", "read"])
    try:
        with TestClient(app, headers={"X-API-Key": key}) as c:
            r = c.post("/api/v1/live/deploy", json={"version": "v9"})
            assert r.status_code == 404 and "no model version 'v9'" in r.json()["message"]
            r = c.post("/api/v1/live/deploy", json={"version": "v1"})
            assert r.status_code == 200, r.text
            assert r.json()["who"] == "ops" and c.post("/api/v1/live/deploy", json={"version": "v2"}).status_code == 200
            assert reg.active() == {"C": "v2"}  # the CLI's registry, the same functions
            assert [d.deployed_by for d in reg.history("C")] == ["ops", "ops"]
            assert c.post("/api/v1/live/rollback", json={}).status_code == 200
            assert reg.active() == {"C": "v1"}
            assert reg.history("C")[-1].rolled_back_by == "ops"
            assert c.get("/api/v1/live/status").json()["controller"] == "ql:@active"
        rt.run()
        assert rt.stepper.controllers["C"].name == "ql"  # swapped in at a safe point, and it ran
        assert rt.stepper.controllers["C"].model_path.endswith(f"-{reg.get('v1').content_sha256[:12]}")
    finally:
        rt.field.backend.close()
