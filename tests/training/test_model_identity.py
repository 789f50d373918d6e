"""A model's id (`provenance.model_id`) is what decides its behaviour: the same weights trained twice, evaluated,
or registered again keep it, and the registry knows them by it. Its files' digest (`content_sha256`) covers
meta.json, whose times, paths and evaluations change. Real models: the shipped `single` policy, zero tables made
for `single`'s signal, and real tabular trainings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update
from support.cli import signalwise
from support.models import damaged_copy, write_model

from signalwise.envs.episode import probe_network
from signalwise.provenance import model_digest, model_dir_id
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario


@pytest.fixture(scope="module")
def single_signals():
    cfg = RunConfig(scenario="single")
    return probe_network(cfg, resolve_scenario(cfg))[0]


def _edit(model: Path, change) -> Path:  # noqa: ANN001
    meta = json.loads((model / "meta.json").read_text())
    change(meta)
    (model / "meta.json").write_text(json.dumps(meta, indent=1))
    return model


def _evaluated(meta: dict) -> None:
    """What a training's and an evaluation's records change: times, paths, wall time, evaluations."""
    meta["created"] = "2030-01-01T00:00:00"
    meta.setdefault("training", {})["wall_s"] = 1234.5
    meta["training"].setdefault("config", {})["out"] = "/somewhere/else"
    meta["evaluations"] = [*(meta.get("evaluations") or []), {"scenario": "single", "avg_delay_s": 40.0}]


def test_a_phase_score_models_id_is_its_policy(tmp_path):
    model = damaged_copy(tmp_path / "m", lambda meta: None)
    identity, digest = model_dir_id(model), model_digest(model)
    assert identity and len(identity) == 64
    _edit(model, _evaluated)
    assert model_digest(model) != digest and model_dir_id(model) == identity  # the files changed, not the model

    def spelled_out(meta: dict) -> None:  # the same policy written another way: options at the values it runs
        policy = meta["policy"]
        policy["weights"] = [int(w) if float(w).is_integer() else w for w in policy["weights"]]
        policy.setdefault("shared_lanes", "skip")

    assert model_dir_id(_edit(model, spelled_out)) == identity
    for change in (lambda m: m["policy"]["weights"].__setitem__(1, m["policy"]["weights"][1] + 1e-6),
                   lambda m: m["policy"].__setitem__("period_s", 10.0),
                   lambda m: m["policy"].__setitem__("shared_lanes", "split"),
                   lambda m: m["policy"].__setitem__("signal_weights", {"C": m["policy"]["weights"]})):
        other = damaged_copy(tmp_path / f"o{len(list(tmp_path.iterdir()))}", change)
        assert model_dir_id(other) != identity, change


def test_a_tabular_models_id_is_its_tables_and_the_options_its_controller_reads(tmp_path, single_signals):
    model = write_model(tmp_path / "m", single_signals)
    identity = model_dir_id(model)
    _edit(model, _evaluated)
    _edit(model, lambda m: m["hyperparameters"].update(gamma=0.99, epsilon_start=0.1))  # training-only options
    assert model_dir_id(model) == identity
    visits = np.load(model / "n-C.npy")
    visits[0, 0] = 1  # the visit counts set the confidence: another model
    np.save(model / "n-C.npy", visits)
    assert model_dir_id(model) != identity
    for change in (lambda m: m["hyperparameters"].update(guide_visits=10),
                   lambda m: m.update(deployment={"guide_visits": 2**31 - 1}),
                   lambda m: m["hyperparameters"].update(period_s=10.0)):
        other = _edit(write_model(tmp_path / f"o{len(list(tmp_path.iterdir()))}", single_signals), change)
        assert model_dir_id(other) != identity, change


def test_the_registry_knows_the_same_model_registered_again(tmp_path):
    model = damaged_copy(tmp_path / "m", lambda meta: None)
    identity = model_dir_id(model)
    db = ["--db", f"sqlite:///{tmp_path / 'r.db'}"]
    env = {"SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache"), "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}
    first = signalwise("models", "add", str(model), *db, env=env)
    assert first.returncode == 0 and "registered v1" in first.stdout and f"model id {identity}" in first.stdout
    _edit(model, _evaluated)  # evaluated since: other files, the same model
    again = signalwise("models", "add", str(model), *db, env=env)
    assert again.returncode == 0, again.stderr
    assert f"already registered as v1 (model id {identity};" in again.stdout and "not added again" in again.stdout
    forced = signalwise("models", "add", str(model), "--again", *db, env=env)
    assert forced.returncode == 0 and "registered v2" in forced.stdout and "the same model as v1" in forced.stdout
    listing = signalwise("models", "list", *db, env=env, unset=("COLUMNS",))
    assert listing.stdout.count(identity[:16]) == 2, listing.stdout
    for version in ("v1", "v2"):
        shown = json.loads(signalwise("models", "show", version, *db, env=env).stdout)
        assert shown["model_id"] == identity
    assert json.loads(signalwise("models", "show", str(model), *db, env=env).stdout)["model_id"] == identity


def test_versions_registered_before_ids_were_kept_are_listed_with_their_id(tmp_path, single_signals):
    from signalwise.store.engine import get_engine
    from signalwise.store.model_registry import ModelRegistry
    from signalwise.store.tables import ModelVersionRow

    engine = get_engine(f"sqlite:///{tmp_path / 'r.db'}")
    reg = ModelRegistry(engine, tmp_path / "cache")
    policy = damaged_copy(tmp_path / "p", lambda meta: None)
    table = write_model(tmp_path / "t", single_signals)
    reg.add(policy), reg.add(table)
    with engine.begin() as conn:  # as a registry upgraded from before migration 0021 holds them
        conn.execute(update(ModelVersionRow.__table__).values(model_id=None))
    assert [v.model_id for v in reg.versions()] == [model_dir_id(policy), model_dir_id(table)]
    assert [v.version for v in reg.versions_of(model_dir_id(table))] == ["v2"]
    reg.remove("v2")  # its files gone: a table's id cannot be worked out any more; a policy's is all in its row
    reg.remove("v1")
    assert [v.model_id for v in reg.versions(include_removed=True)] == [model_dir_id(policy), None]
    listing = signalwise("models", "list", "--removed", "--db", f"sqlite:///{tmp_path / 'r.db'}",
                         env={"SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}, unset=("COLUMNS",))
    assert listing.returncode == 0 and "v2" in listing.stdout and model_dir_id(policy)[:16] in listing.stdout


def test_the_same_training_twice_makes_the_same_model_id(tmp_path):
    from signalwise.control.learning.agent import Hyper
    from signalwise.training.train import TrainConfig, train

    for name in ("a", "b"):
        train(TrainConfig(scenario="single", episodes=1, seed=4, workers=1, batch=1, out=tmp_path / name,
                          duration_s=60, hyper=Hyper(guide_visits=10)))
    a, b = tmp_path / "a" / "model", tmp_path / "b" / "model"
    assert model_dir_id(a) == model_dir_id(b)
    # the files' digest names meta.json too: a note in one (as `evaluate` appends its figures) parts the digests,
    # not the ids (two trainings within one second may write the same meta.json, so that alone proves nothing)
    meta = json.loads((a / "meta.json").read_text())
    (a / "meta.json").write_text(json.dumps({**meta, "evaluations": [{"note": "held-out seeds 1-5"}]}))
    assert model_digest(a) != model_digest(b) and model_dir_id(a) == model_dir_id(b)
