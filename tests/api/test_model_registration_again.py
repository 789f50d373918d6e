"""Registering the same model again over the API answers the version it is registered as, as `signalwise models add`
does ("already registered as v1"), and `"again": true` registers it as a new version, as `--again` does. The same
model is the same model id (`identity`: its weights and the options that decide), whatever directory it comes from
and whatever its meta.json says since (an evaluation). A real server on 127.0.0.1; the slow test trains the same
model twice through training jobs."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
from support.loopback import serving
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.control.learning.shipped import shipped_model_path
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


@pytest.fixture
def server(tmp_path):
    url = migrated_sqlite(tmp_path / "store.db")
    models = tmp_path / "models"
    models.mkdir()
    settings = Settings(database_url=url, model_registry=tmp_path / "no-registry", model_cache=tmp_path / "cache",
                        ml_jobs_dir=tmp_path / "jobs", models_dir=models, cache_ttl_s=0)
    _info, key = create_key(get_engine(url), "ops", ["read", "operate"])
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as client:
        client.models = models
        client.spec = app.openapi()
        yield client


def _copy(models, name: str):
    return shutil.copytree(shipped_model_path("single"), models / name)


def _declared(client, method: str, path: str) -> set[str]:
    return set(client.spec["paths"][path][method]["responses"])


def test_the_same_model_registered_again_answers_its_version_unless_asked_again(server):
    c = server
    _copy(c.models, "c1")
    r = c.post("/api/v1/ml/models", json={"model_dir": "c1"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["model_id"] == "v1" and first["already_registered"] is False and first["same_model_as"] == []
    assert r.headers["location"] == "/api/v1/ml/models/v1"
    assert first["identity"] and first["registered_by"] == "ops"

    # the same directory again, the same files elsewhere, and the same weights with an evaluation added since
    _copy(c.models, "copy")
    evaluated = _copy(c.models, "evaluated")
    meta = json.loads((evaluated / "meta.json").read_text())
    meta["evaluations"] = [*meta.get("evaluations", []), {"scenario": "single", "seeds": [7], "avg_delay_s": 20.0}]
    (evaluated / "meta.json").write_text(json.dumps(meta))
    for name in ("c1", "copy", "evaluated"):
        r = c.post("/api/v1/ml/models", json={"model_dir": name})
        assert r.status_code == 200, (name, r.text)
        again = r.json()
        assert again["already_registered"] is True and again["model_id"] == "v1", (name, again)
        assert again["identity"] == first["identity"]
        assert again["message"].startswith("already registered as v1 (model id "), again["message"]
        assert '"again": true' in again["message"]
    assert [m["model_id"] for m in c.get("/api/v1/ml/models").json()] == ["v1"]  # nothing was added

    # "again": a new version, as --again; the next plain call still answers the first, naming the other
    r = c.post("/api/v1/ml/models", json={"model_dir": "evaluated", "again": True})
    assert r.status_code == 201, r.text
    assert r.json()["model_id"] == "v2" and r.json()["same_model_as"] == ["v1"]
    assert r.json()["identity"] == first["identity"]
    r = c.post("/api/v1/ml/models", json={"model_dir": "c1"})
    assert r.status_code == 200 and r.json()["model_id"] == "v1" and r.json()["same_model_as"] == ["v2"], r.text
    assert [m["model_id"] for m in c.get("/api/v1/ml/models").json()] == ["v1", "v2"]
    assert {"200", "201"} <= _declared(c, "post", "/api/v1/ml/models")


def test_a_registration_outside_the_models_directory_or_of_no_model_is_422_and_adds_nothing(server):
    c = server
    (c.models / "empty").mkdir()
    for body, said in ((({"model_dir": "../elsewhere"}), "only inside the directory SIGNALWISE_MODELS_DIR"),
                       ({"model_dir": "/etc"}, "only inside the directory SIGNALWISE_MODELS_DIR"),
                       ({"model_dir": "empty"}, "empty"),
                       ({"model_dir": "c1", "colour": "red"}, "not a field")):
        r = c.post("/api/v1/ml/models", json=body)
        assert r.status_code == 422, (body, r.text)
        assert said in r.json()["message"], (body, r.json()["message"])
        assert str(c.models) not in r.json()["message"]  # the server's own path is not told
        assert "422" in _declared(c, "post", "/api/v1/ml/models")
    assert c.get("/api/v1/ml/models").json() == []
    # registering needs operate, as training does
    assert httpx.post(str(c.base_url.join("/api/v1/ml/models")), json={"model_dir": "c1"}).status_code == 401


SEARCH = {"scenario": "single", "workers": 1, "duration_s": 120, "generations": 1, "popsize": 2,
          "validation_seeds": 1}


def _finished(c, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = c.get(f"/api/v1/ml/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.slow
def test_a_training_job_that_trains_a_registered_model_again_answers_its_version(server):
    """The same seed and options train the same weights: the second job's model is the first's, registered once."""
    c = server

    def train(**extra) -> dict:
        r = c.post("/api/v1/ml/train", json={**SEARCH, **extra})
        assert r.status_code == 202, r.text
        job = _finished(c, r.json()["job_id"])
        assert job["state"] == "succeeded", job
        return job

    first = train()["result"]
    assert first["model_version"] == "v1" and not first.get("already_registered")
    second = train()
    assert second["result"]["model_version"] == "v1" and second["result"]["already_registered"] is True, second
    assert second["model_version"] == "v1"
    assert [v["model_id"] for v in c.get("/api/v1/ml/models").json()] == ["v1"]  # nothing was added
    forced = train(register_again=True)["result"]
    assert forced["model_version"] == "v2" and forced["already_registered"] is False
    versions = c.get("/api/v1/ml/models").json()
    assert [v["model_id"] for v in versions] == ["v1", "v2"]
    assert versions[0]["identity"] == versions[1]["identity"]
