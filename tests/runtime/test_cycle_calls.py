"""`timing.cycle_calls` on real SUMO runs: the bound runs from calls, and the independent audit still finds 0."""

from __future__ import annotations

import csv
import json

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


def _run(tmp_path, name, controller, cycle_calls, seconds=900):
    cfg = RunConfig(scenario="corridor", controller=controller, duration_s=seconds, record="lean", seed=2,
                    timing={"cycle_calls": cycle_calls})
    r = execute_run(cfg, tmp_path / name)
    assert r.status == "complete"
    with open(r.run_dir / "events.csv") as f:
        codes = [int(row["EventId"]) for row in csv.DictReader(f)]
    return r, codes


@pytest.mark.parametrize("controller", ["max-pressure", "actuated"])
@pytest.mark.slow
def test_calls_release_the_empty_phases_and_the_audit_holds_the_shield_to_its_calls(tmp_path, controller):
    every, every_codes = _run(tmp_path, "every", controller, False)
    calls, call_codes = _run(tmp_path, "calls", controller, True)
    assert every.metrics["safety"]["violations"] == 0 and calls.metrics["safety"]["violations"] == 0
    assert calls.metrics["safety"]["checked"]["cycle_max"] > 0  # the calls were checked, not skipped
    model = json.loads((calls.run_dir / "signal_model.json").read_text())
    assert all(i["timing"]["cycle_calls"] for i in model)
    assert 43 in call_codes and 43 not in every_codes
    # fewer forced services: a phase nobody waits for is no longer brought round
    forced = [r.metrics["shield_interventions"].get("cycle_max", 0) for r in (every, calls)]
    assert forced[1] < forced[0], forced


def test_a_controller_that_observes_no_lanes_runs_on_recall(tmp_path):
    """Fixed time reads no lanes: every phase is called at once and each still comes round within the bound."""
    r, codes = _run(tmp_path, "fixed", "fixed", True, seconds=600)
    assert r.metrics["safety"]["violations"] == 0
    assert codes.count(43) > 0 and r.metrics["safety"]["checked"]["cycle_max"] > 0
