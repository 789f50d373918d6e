"""Every scenario SUMO ships under tools/game that has traffic lights, with every classical controller, for
its whole window (capped): does each run complete with 0 safety violations, or is it refused with a reason?

    .venv/bin/python bench/user_networks.py [--max-duration 3600] [--controllers fixed,webster,actuated,max-pressure]

The test suite runs the same sweep for 90 simulated seconds (tests/runtime/test_user_networks.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import median  # noqa: F401  (puts tests/ on the path for the shared scenario list)
from runtime.test_user_networks import CLASSICAL, game_scenarios

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import SimulationError
from signalwise.sim.scenario import ScenarioError, from_sumocfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-duration", type=float, default=3600.0, help="cap on each scenario's window, s")
    ap.add_argument("--controllers", default=",".join(CLASSICAL))
    args = ap.parse_args()
    print("| scenario | controller | outcome | avg delay (s) | never inserted | audit violations | signals refused | wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for cfg_path in game_scenarios(one_per_network=False):
        window = from_sumocfg(cfg_path).duration_s
        for controller in args.controllers.split(","):
            t0 = time.perf_counter()
            cfg = RunConfig(sumocfg=cfg_path, controller=controller, duration_s=min(window, args.max_duration),
                            emissions=False)
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    m = execute_run(cfg, Path(tmp) / "run").metrics
                except (SimulationError, ScenarioError) as exc:
                    print(f"| {cfg_path.stem} | {controller} | refused: {exc} | | | | | "
                          f"{time.perf_counter() - t0:.0f} |", flush=True)
                    continue
            n = m["network"]
            refused = "; ".join(f"{r['id']}: {r['reason']}" for r in m["refused_signals"]) or "none"
            print(f"| {cfg_path.stem} | {controller} | completed | {n['avg_delay_s']:.1f} | {n['never_inserted']} | "
                  f"{m['safety']['violations']} | {refused} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
