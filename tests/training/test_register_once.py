"""One rule for "the same model is registered already", kept by `training.registry.register_once` and said in one
sentence (`already_registered_message`): `signalwise models add`, `POST /api/v1/ml/models` and a training job all
call it (found in review: the rule was written out three times)."""

from __future__ import annotations

import pytest
from support.cli import signalwise
from support.migrated_databases import migrated_sqlite
from support.models import damaged_copy

from signalwise.provenance import model_dir_id
from signalwise.store import get_engine
from signalwise.store.model_registry import ModelRegistry
from signalwise.training.registry import already_registered_message, register_once


@pytest.mark.slow
def test_the_same_model_is_registered_once_unless_again(tmp_path):
    model = damaged_copy(tmp_path / "m", lambda meta: None)
    other_dir = damaged_copy(tmp_path / "copy", lambda meta: None)  # the same model in another directory
    url = migrated_sqlite(tmp_path / "r.db")
    reg = ModelRegistry(get_engine(url), tmp_path / "cache")
    first = register_once(reg, model, who="ops")
    assert (first.version.version, first.already, first.same_model_as) == ("v1", False, [])
    assert first.version.model_id == model_dir_id(model)
    known = register_once(reg, other_dir)
    assert (known.version.version, known.already, known.same_model_as) == ("v1", True, [])
    forced = register_once(reg, other_dir, again=True)
    assert (forced.version.version, forced.already, forced.same_model_as) == ("v2", False, ["v1"])
    assert register_once(reg, model).same_model_as == ["v2"]
    assert [v.version for v in reg.versions()] == ["v1", "v2"]
    said = already_registered_message(known.version, "--again")
    assert said == (f"already registered as v1 (model id {model_dir_id(model)}; registered "
                    f"{known.version.registered}): not added again (--again registers it as a new version)")
    # the command says the same sentence
    env = {"SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache"), "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}
    added = signalwise("models", "add", str(model), "--db", url, env=env)
    assert added.returncode == 0, added.stderr
    assert " ".join(added.stdout.split()) == said, added.stdout
