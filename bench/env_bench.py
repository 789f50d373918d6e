"""Speed of the RL environment against the plain run loop, on the same scenario and simulated time.

For each scenario, in fresh processes, alternating (env, loop, env, loop, ...):
  env   SignalwiseParallelEnv, uniform random proposals every 5 s (decision_period_s)
        through the shield, reset -> truncation; no SUMO output files;
  loop  run_loop with the `fixed` controller as `signalwise run` configures it (SUMO's
        tripinfo, edgeData and emissions outputs on), without writing the run directory.
Prints medians over --repeat runs: env steps per second, simulated seconds per wall second
of each, their ratio (env / loop), and the share of wall time spent outside SUMO's own
simulation step (our Python: shield, observations, rewards) — the part the environment adds;
random proposals make different traffic than fixed time, which changes SUMO's cost.
Wall time includes starting SUMO (reset).

    .venv/bin/python bench/env_bench.py [--repeat 3] [--scenarios single,corridor] [--duration 3600]
"""

from __future__ import annotations

import argparse

from _common import median, run_child

ENV = r"""
import json, sys, time
import numpy as np
from signalwise.envs import SignalwiseParallelEnv
from signalwise.sim.sumo_home import import_libsumo
ls = import_libsumo(); _step = ls.simulationStep; sumo_s = [0.0]
def timed_step(*a):  # SUMO's own share of the wall time: the rest is Python around it
    t = time.perf_counter(); _step(*a); sumo_s[0] += time.perf_counter() - t
ls.simulationStep = timed_step
scenario, duration = sys.argv[1], float(sys.argv[2])
env = SignalwiseParallelEnv(scenario, duration_s=duration)
rng = np.random.default_rng(0)
t0 = time.perf_counter()
env.reset(seed=1)
steps = 0
while env.agents:
    env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
    steps += 1
wall = time.perf_counter() - t0
violations = len(env.audit().violations)
env.close()
print(json.dumps({"wall_s": wall, "sumo_s": sumo_s[0], "env_steps": steps, "sim_s": duration, "agents": len(env.possible_agents),
                  "violations": violations}))
"""

LOOP = r"""
import json, sys, tempfile, time
from pathlib import Path
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import run_loop
from signalwise.sim.sumo_home import import_libsumo
ls = import_libsumo(); _step = ls.simulationStep; sumo_s = [0.0]
def timed_step(*a):  # SUMO's own share of the wall time: the rest is Python around it
    t = time.perf_counter(); _step(*a); sumo_s[0] += time.perf_counter() - t
ls.simulationStep = timed_step
scenario, duration = sys.argv[1], float(sys.argv[2])
cfg = RunConfig(scenario=scenario, controller="fixed", duration_s=duration, seed=1)
t0 = time.perf_counter()
r = run_loop(cfg, Path(tempfile.mkdtemp()))
print(json.dumps({"wall_s": time.perf_counter() - t0, "sumo_s": sumo_s[0], "sim_s": r.end_s - r.begin_s, "steps": r.steps}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenarios", default="single,corridor")
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds per run")
    args = ap.parse_args()
    dur = f"{args.duration:g}"
    print(f"{'scenario':<10} {'agents':>6} {'env steps/s':>12} {'env sim-s/s':>12} {'loop sim-s/s':>13} "
          f"{'env/loop':>9} {'non-SUMO share env | loop':>26} {'audit violations':>17}")
    for scenario in args.scenarios.split(","):
        env_runs, loop_runs = [], []
        for _ in range(args.repeat):
            env_runs.append(run_child(ENV, scenario, dur)[1])
            loop_runs.append(run_child(LOOP, scenario, dur)[1])
        steps_per_s = median([r["env_steps"] / r["wall_s"] for r in env_runs])
        env_rt = median([r["sim_s"] / r["wall_s"] for r in env_runs])
        loop_rt = median([r["sim_s"] / r["wall_s"] for r in loop_runs])
        env_py = median([1 - r["sumo_s"] / r["wall_s"] for r in env_runs])
        loop_py = median([1 - r["sumo_s"] / r["wall_s"] for r in loop_runs])
        print(f"{scenario:<10} {env_runs[0]['agents']:>6} {steps_per_s:>12.0f} {env_rt:>12.0f} {loop_rt:>13.0f} "
              f"{env_rt / loop_rt:>8.2f}x {env_py:>15.0%} | {loop_py:>6.0%} "
              f"{sum(r['violations'] for r in env_runs):>17}")
    print(f"(medians of {args.repeat} fresh processes each; {args.duration:g} simulated s per run, 5 s per env step)")


if __name__ == "__main__":
    main()
