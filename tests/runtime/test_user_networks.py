"""Any network a user brings: every scenario SUMO ships under tools/game with traffic lights, every classical
controller. Each run completes with 0 safety violations (the independent audit) or is refused with a
one-line reason; signals we cannot control are named with theirs.

Short runs (90 simulated seconds), one config per network, keep this inside the suite's time;
`bench/user_networks.py` runs every config for its whole window (up to an hour).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError
from signalwise.sim.scenario import ScenarioError, from_sumocfg
from signalwise.sim.sumo_home import sumo_home

CLASSICAL = ("fixed", "webster", "actuated", "max-pressure")
#: these must complete: pedestrians and bicycles with h:m:s times, OSM imports, plain grids
MUST_COMPLETE = {"fokr_bs_demo", "A10KW", "DRT", "cross", "grid6", "corridor", "fkk_in"}


def game_scenarios(one_per_network: bool = True) -> list[Path]:
    """tools/game configs whose network has a traffic light; by default one per network (DRT, DRT2 and
    DRT_demo differ only in their taxi demand, cross and cross_demo only in their end time)."""
    game = sumo_home() / "tools" / "game"
    seen, found = set(), []
    for cfg in sorted(game.glob("*.sumocfg")):
        scenario = from_sumocfg(cfg)
        key = scenario.net_file if one_per_network else (scenario.net_file, scenario.route_files)
        if key in seen or not _has_traffic_light(scenario.net_file):
            continue
        seen.add(key)
        found.append(cfg)
    return found


def _has_traffic_light(net: Path) -> bool:
    opener = gzip.open if net.suffix == ".gz" else open
    with opener(net, "rt") as fh:
        return any("<tlLogic" in line for line in fh)


@pytest.mark.parametrize("sumocfg", game_scenarios(), ids=lambda p: p.stem)
def test_every_classical_controller_runs_or_is_refused_with_a_reason(sumocfg, tmp_path):
    for controller in CLASSICAL:
        cfg = RunConfig(sumocfg=sumocfg, controller=controller, duration_s=90, emissions=False)
        try:
            result = execute_run(cfg, tmp_path / controller)
        except (SimulationError, ScenarioError) as exc:
            message = str(exc)
            assert sumocfg.stem not in MUST_COMPLETE, f"{sumocfg.stem} with {controller}: {message}"
            assert message.strip() and "\n" not in message.strip() and "Traceback" not in message
            continue
        metrics = result.metrics
        assert metrics["safety"]["violations"] == 0, (sumocfg.stem, controller, metrics["safety"])
        assert metrics["safety"]["checked"]
        for refused in metrics["refused_signals"]:
            assert refused["reason"].strip(), refused
        network = metrics["network"]
        assert network["vehicles_total"] >= network["never_inserted"] >= 0


def test_the_sweep_covers_bicycles_pedestrians_and_osm_imports():
    names = {p.stem for p in game_scenarios()}
    assert MUST_COMPLETE <= names
