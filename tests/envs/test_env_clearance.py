"""What the observation says of a yellow and all-red, with and without `clearance_features`, and each rule once in
`shield_rules`. Real SUMO runs on `single` and `corridor`."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from signalwise.envs import SignalwiseEnv, SignalwiseParallelEnv


def _trace(env: SignalwiseParallelEnv, actions: list[int]) -> list[tuple[np.ndarray, dict]]:
    """C's observation and info after each step of `actions` (1 s steps)."""
    out = []
    for a in actions:
        obs, _, _, _, infos = env.step({"C": a})
        out.append((obs["C"], infos["C"]))
    return out


def test_the_default_observation_is_unchanged_and_the_clearance_features_follow_it():
    """The default vector keeps its 3n + 2 values; with clearance_features the same values come first, then the
    next phase, the yellow flag and the clearance time left, which counts down to the green it leads to."""
    actions = [2] * 60  # phase 2 asked for from the start: one change, its yellow and all-red inside the minute
    with SignalwiseParallelEnv("single", duration_s=60, decision_period_s=1) as env:
        env.reset(seed=3)
        n = env.action_space("C").n
        assert env.observation_space("C").shape == (3 * n + 2,)
        plain = _trace(env, actions)
    with SignalwiseParallelEnv("single", duration_s=60, decision_period_s=1, clearance_features=True) as env:
        env.reset(seed=3)
        assert env.observation_space("C").shape == (4 * n + 4,)
        full = _trace(env, actions)
    for (a, _), (b, _) in zip(plain, full, strict=True):
        np.testing.assert_array_equal(a, b[:3 * n + 2])
    clearing = [k for k, (_, info) in enumerate(full) if info["interval"] != "green"]
    assert clearing, "the change ran no clearance in the minute"
    green_at = max(clearing) + 1  # the step after the last clearance step shows the new green
    assert full[green_at][1]["interval"] == "green"
    scale = env._observers["C"].clearance_scale_s
    for k, (obs, info) in enumerate(full):
        nxt, yellow, left = obs[3 * n + 2:4 * n + 2], obs[4 * n + 2], obs[4 * n + 3]
        if info["interval"] == "green":
            assert not nxt.any() and yellow == 0 and left == 0
            continue
        assert nxt.argmax() == info["next_phase"] == 2 and nxt.sum() == 1  # where the clearance leads
        assert yellow == (1.0 if info["interval"] == "yellow" else 0.0)  # yellow and all-red told apart
        # the seconds left are the steps until the green starts
        assert left * scale == pytest.approx(green_at - k, abs=1e-4), (k, info)
    # yellow and all-red share the clearing flag, and the time in interval restarts between them: the default
    # vector alone cannot tell the first all-red step from the first yellow step
    first_yellow = next(k for k in clearing if full[k][1]["interval"] == "yellow")
    first_red = next(k for k in clearing if full[k][1]["interval"] == "all_red")
    assert plain[first_yellow][0][n] == plain[first_red][0][n] == 1.0
    assert plain[first_yellow][0][n + 1] == plain[first_red][0][n + 1]
    assert full[first_yellow][0][4 * n + 2] != full[first_red][0][4 * n + 2]


def test_the_clearance_features_pass_gymnasiums_checker():
    env = SignalwiseEnv("single", duration_s=60, clearance_features=True)
    try:
        check_env(env, skip_render_check=True)
        obs, _ = env.reset(seed=1)
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_clearance_features_is_a_flag():
    with pytest.raises(ValueError, match="clearance_features must be True or False"):
        SignalwiseParallelEnv("single", clearance_features="no")


@pytest.mark.slow
def test_shield_rules_name_each_rule_once():
    """Random proposals on corridor under the benchmark profile: a 10 s step can hold two greens (a preemption's
    among them), each noting its minimum green, and the list said ['min_green', 'min_green', 'preempt'] (J2 at
    2,990 s and J3 at 3,040 s, seed 1, every action space seeded 0)."""
    with SignalwiseParallelEnv("corridor", timing="benchmark", duration_s=3600) as env:
        env.reset(seed=1)
        for agent in env.possible_agents:
            env.action_space(agent).seed(0)
        steps = 0
        while env.agents:
            _, _, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
            for agent, info in infos.items():
                rules = info["shield_rules"]
                assert len(rules) == len(set(rules)), (info["time_s"], agent, rules)
            steps += 1
    assert steps == 360
