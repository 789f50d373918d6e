"""A live run and the model registry: a deploy it replays after a restart runs what the registry says then."""

from __future__ import annotations

from support.models import write_model

from signalwise.runtime.commands import registry_options
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import get_engine
from signalwise.store.model_registry import ModelRegistry


def _runtime(tmp_path, reg: ModelRegistry) -> LiveRuntime:
    return LiveRuntime(RunConfig(scenario="single", controller="max-pressure", out_dir=tmp_path / "runs"),
                       LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / "runs" / "live-1",
                       resolve_options=lambda specs: registry_options(specs, registry=reg))


def test_a_replayed_deploy_runs_the_version_active_at_the_restart(tmp_path):
    reg = ModelRegistry(get_engine(f"sqlite:///{tmp_path / 'reg.db'}"), tmp_path / "cache")
    first = _runtime(tmp_path, reg)
    first.open()
    try:
        inter = first.stepper.by_id["C"]
        for n in (1, 2):
            reg.add(write_model(tmp_path / f"m{n}", [inter], episodes=n))
        reg.deploy("v1")
        first.submit(ch.ControllerChange(controller="ql:@active", controller_options=registry_options(
            ["ql:@active"], registry=reg)), "ops")
        first.run()
        assert first.stepper.controllers["C"].model_path == reg.resolve("active")["C"]
    finally:
        first.field.backend.close()
    assert first.site_changes_file.is_file()
    reg.deploy("v2")  # while the run was down
    second = LiveRuntime(first.cfg, first.opts, tmp_path / "runs" / "live-2",
                         resolve_options=lambda specs: registry_options(specs, registry=reg))
    second.open()
    try:
        replayed = [c for c in second.changes if c.get("replayed")]
        assert replayed and replayed[-1]["kind"] == "controller"
        second.run()
        assert second.stepper.controllers["C"].model_path == reg.resolve("v2")["*"]  # not v1's, as recorded
    finally:
        second.field.backend.close()
