"""How often the shield overrides uniform random proposals in the environment, and why, per scenario.

    .venv/bin/python bench/env_overrides.py [--scenarios single,resco:cologne1,corridor] [--timing benchmark]
                                            [--seed 1]

One episode per scenario (`SignalwiseParallelEnv`, the scenario's window, the timing profile's own decision
period), every agent proposing a phase drawn uniformly at each step (`numpy.random.default_rng(seed)`); prints the
agent-steps, the steps whose `shield_override` is True, and how often each `shield_rules` value was named in them.
Under RESCO's rules (10 s steps: a change fills its step with yellow and minimum green) only preemption should hold
a proposal back.
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="single,resco:cologne1,corridor")
    ap.add_argument("--timing", default="benchmark")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import numpy as np

    from signalwise.envs import SignalwiseParallelEnv

    for scenario in args.scenarios.split(","):
        rng = np.random.default_rng(args.seed)
        steps = overrides = 0
        rules: collections.Counter[str] = collections.Counter()
        with SignalwiseParallelEnv(scenario, timing=args.timing) as env:
            env.reset(seed=args.seed)
            while env.agents:
                actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
                _obs, _rewards, _terms, _truncs, infos = env.step(actions)
                for info in infos.values():
                    steps += 1
                    if info["shield_override"]:
                        overrides += 1
                        rules.update(info["shield_rules"])
        named = ", ".join(f"{rule} {n}" for rule, n in rules.most_common()) or "none"
        print(f"{scenario}: {steps} agent-steps, {overrides} overridden; rules named: {named}")


if __name__ == "__main__":
    main()
