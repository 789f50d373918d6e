"""`SignalwiseEnv`: the parallel environment seen as a Gymnasium env, for single-signal scenarios.

Stable-Baselines3 and most single-agent libraries take a `gymnasium.Env`;
this is `SignalwiseParallelEnv` with its one agent unwrapped (same
observation, action, reward, infos, seeding and shield). A scenario with
several signals is refused: use the parallel environment (or PettingZoo's
and SuperSuit's wrappers) there. Its Gymnasium generator (`np_random`, the
`_np_random` Gymnasium's checker reads) is the parallel environment's, the
one that draws the SUMO seeds of unseeded resets: one generator, which never
seeded starts from a fixed seed rather than Gymnasium's fresh entropy, so a
script's episodes are the same on every run.
"""

from __future__ import annotations

import gymnasium as gym

from ..analytics.safety_audit import AuditReport
from .parallel import SignalwiseParallelEnv


class SignalwiseEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, scenario: str | None = None, render_mode: str | None = None, **kwargs):
        """`kwargs` as for `SignalwiseParallelEnv` (duration_s=, decision_period_s=, reward_scale=, RunConfig fields)."""
        self.parallel = SignalwiseParallelEnv(scenario, render_mode=render_mode, **kwargs)
        agents = self.parallel.possible_agents
        if len(agents) != 1:
            self.parallel.close()
            raise ValueError(f"{self.parallel.config.scenario_label!r} has {len(agents)} controllable signals; "
                             "SignalwiseEnv takes one: use SignalwiseParallelEnv")
        self.agent = agents[0]
        self.render_mode = None
        self.observation_space = self.parallel.observation_space(self.agent)
        self.action_space = self.parallel.action_space(self.agent)

    # Gymnasium's `np_random` and `np_random_seed` read and write these two: the parallel environment's
    @property
    def _np_random(self):
        return self.parallel.np_random

    @_np_random.setter
    def _np_random(self, value) -> None:
        self.parallel.np_random = value

    @property
    def _np_random_seed(self):
        return self.parallel.np_random_seed

    @_np_random_seed.setter
    def _np_random_seed(self, value) -> None:
        self.parallel.np_random_seed = value

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # no super().reset(seed=seed): the parallel environment seeds the one generator
        obs, infos = self.parallel.reset(seed=seed, options=options)
        return obs[self.agent], infos[self.agent]

    def step(self, action):
        obs, rewards, terminations, truncations, infos = self.parallel.step({self.agent: action})
        a = self.agent
        return obs[a], float(rewards[a]), terminations[a], truncations[a], infos[a]

    def audit(self) -> AuditReport:
        return self.parallel.audit()

    def metrics(self) -> dict[str, float | int]:
        return self.parallel.metrics()

    def close(self) -> None:
        self.parallel.close()
