"""A live run's run.json says what made it, as a batch run's does (docs/networks.md, the run directory): the software,
the command line and its directory under `provenance`, and under `models` each learned controller that ran with the
model directory it ran and its digest (here one switched to during the run). Real SUMO on `corridor`, in-process."""

from __future__ import annotations

import json

from signalwise.control.learning.shipped import shipped_model_path
from signalwise.provenance import model_digest, model_dir_id, provenance
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_live_run_json_records_its_provenance_and_the_models_it_switched_to(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=5, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    started = json.loads((rt.run_dir / "run.json").read_text())
    assert started["status"] == "running" and started["provenance"] == provenance()
    assert "models" not in started  # max-pressure runs no model
    answer = rt.submit(ch.ControllerChange(controller="ql"), who="ops")  # the model shipped for the corridor
    rt.run()
    assert answer["result"] == "applied", answer
    ended = json.loads((rt.run_dir / "run.json").read_text())
    assert ended["provenance"] == provenance()
    model = shipped_model_path("corridor").resolve()
    assert ended["models"] == {"ql": [{"path": str(model), "model_id": model_dir_id(model),
                                       "sha256": model_digest(model)}]}
