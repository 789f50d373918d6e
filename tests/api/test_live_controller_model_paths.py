"""A live controller switch over the API names a model directory only inside the models directory
(`SIGNALWISE_MODELS_DIR`): any other path, as `ql:PATH` or as the `model` option, gets one answer whether it holds
a model, something else or nothing; a registry's resolved directories are not taken from a request; the run's
own `ql:PATH`, chosen by its operator, stays allowed. A real live run of corridor (SUMO in-process, not looping:
changes are applied at once) behind a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from support.loopback import serving_port

import signalwise.control.learning as learning
from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

SHIPPED = Path(learning.__file__).parent / "shipped" / "corridor"


@pytest.fixture
def live(tmp_path, request):
    """(client, models directory, a folder beside it): corridor runs the shipped model, named by its path (outside
    the models directory); each folder holds a copy of it as `c1`, and something that is no model. Parametrised
    False: the server has no models directory (the folder is still made)."""
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    for folder in (models, elsewhere):
        shutil.copytree(SHIPPED, folder / "c1")
        (folder / "notes").mkdir()
        (folder / "notes" / "meta.json").write_text("{}")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db, models_dir=models if getattr(request, "param", True) else None,
                              model_cache=tmp_path / "cache",
                              model_registry=tmp_path / "no-registry"))
    _info, key = create_key(get_engine(db), "ops", ["read", "operate"])
    rt = LiveRuntime(RunConfig(scenario="corridor", controller=f"ql:{SHIPPED}"),
                     LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / "live")
    rt.open()
    app.state.live = rt
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                                                timeout=20) as client:
            yield client, models, elsewhere
    finally:
        rt.field.backend.close()


def test_a_model_path_outside_the_models_directory_gets_one_answer_whatever_is_there(live):
    client, models, elsewhere = live
    # a model, no model, a directory without meta.json, nothing, out by `..`, the server's own directories
    paths = [elsewhere / "c1", elsewhere / "notes", elsewhere, elsewhere / "none", "../elsewhere/c1",
             f"{models}/../elsewhere/c1", "/root/.ssh", "/nonexistent", f"{elsewhere / 'c1'}?guide_visits=3"]
    for field, body in (("controller", lambda p: {"controller": f"ql:{p}"}),
                        ("controller_options.model", lambda p: {"controller": "ql", "controller_options": {"model": str(p)}})):
        answers = {}
        for path in paths:
            for route, extra in (("/api/v1/live/controller", {}), ("/api/v1/live/changes", {"kind": "controller"})):
                r = client.post(route, json={**body(path), **extra, "intersections": ["J1"]})
                answers[(str(path), route)] = (r.status_code, r.json()["message"])
        assert len(set(answers.values())) == 1, (field, answers)
        status, message = next(iter(answers.values()))
        assert status == 422 and message.startswith(f"change refused: {field}: a request names a model directory only "
                                                    "inside the directory SIGNALWISE_MODELS_DIR gives"), message
    r = client.post("/api/v1/live/controller", json={"controller": "ql:@active", "controller_options": {
        "registry_models": {"active": {"*": str(elsewhere / "c1")}}}})
    assert r.status_code == 422 and "controller_options.registry_models: the server resolves" in r.json()["message"]
    status = client.get("/api/v1/live/status").json()
    assert status["controller"] == f"ql:{SHIPPED}" and status["signal_controllers"] == {}


def test_a_model_in_the_models_directory_and_the_runs_own_are_switched_to(live):
    client, models, _elsewhere = live
    r = client.post("/api/v1/live/controller", json={"controller": "ql:c1", "intersections": ["J1"]})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    assert r.json()["payload"]["controller"] == f"ql:{models / 'c1'}"  # the path it runs, not the name given
    r = client.post("/api/v1/live/controller", json={"controller": "fixed", "controller_options": {
        "model": f"{models / 'c1'}"}, "intersections": ["J2"]})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    r = client.post("/api/v1/live/controller", json={"controller": f"ql:{models}/./c1?guide_visits=3",
                                                     "intersections": ["J3"]})
    # normalised, its option kept, then judged as a model (a phase-score one has no guide), not as a path
    assert r.status_code == 422 and r.json()["message"].startswith(
        f"change refused: controller 'ql:{models / 'c1'}?guide_visits=3' cannot run here: J3: {models / 'c1'}: "
        "guide_visits is a tabular model's option"), r.text
    # inside the directory, what is wrong is said (the directory is its owner's to show)
    r = client.post("/api/v1/live/controller", json={"controller": "ql:none", "intersections": ["J4"]})
    assert r.status_code == 422 and f"{models / 'none'}: no such model" in r.json()["message"], r.text
    # the run's own controller, a path outside, chosen by its operator: back to it
    r = client.post("/api/v1/live/controller", json={"controller": f"ql:{SHIPPED}"})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    assert client.get("/api/v1/live/status").json()["controller"] == f"ql:{SHIPPED}"


@pytest.mark.parametrize("live", [False], indirect=True)
def test_without_a_models_directory_only_registry_models_are_named(live):
    client, models, _elsewhere = live
    answers = set()
    for spec in (f"ql:{models / 'c1'}", "ql:c1", f"ql:{models / 'none'}"):
        r = client.post("/api/v1/live/controller", json={"controller": spec, "intersections": ["J1"]})
        answers.add((r.status_code, r.json()["message"]))
    assert answers == {(422, "change refused: controller: this server takes no model directory named over the API "
                             "(SIGNALWISE_MODELS_DIR is unset); or switch to a registry model (ql:@active, ql:@v3)")}
    for spec in ("fixed", f"ql:{SHIPPED}"):  # a built-in, the run's own
        r = client.post("/api/v1/live/controller", json={"controller": spec, "intersections": ["J1"]})
        assert r.status_code == 200 and r.json()["result"] == "applied", r.text
