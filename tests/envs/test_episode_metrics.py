"""An episode's summary is `signalwise run`'s metrics.json figures: the same delay for the same driving.

The env's agent is made to decide as a controller does, and `execute_run` runs that controller on the same
seed and window; the figures must be equal, not close. Real SUMO runs (single under the benchmark profile).
"""

import xml.etree.ElementTree as ET

import gymnasium as gym
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics

from signalwise.core.types import Decision
from signalwise.envs import ENV_ID, SignalwiseParallelEnv
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

DURATION_S = 900
SEED = 5
#: metrics.json's `network` key for each of the summary's
RUN_KEYS = {"avg_delay_s": "avg_delay_s", "avg_wait_s": "avg_wait_s", "vehicles_total_veh": "vehicles_total",
            "throughput_veh": "throughput_veh", "running_at_end_veh": "running_at_end",
            "never_inserted_veh": "never_inserted"}


def _episode(make_policy) -> tuple[dict, list[dict]]:
    """(env.metrics(), every step's info) of single under the benchmark profile at 1 s decisions, the agent's
    actions from `make_policy(env, agent)(info)`."""
    with SignalwiseParallelEnv("single", timing="benchmark", duration_s=DURATION_S, decision_period_s=1) as env:
        agent = env.possible_agents[0]
        policy = make_policy(env, agent)
        _obs, infos = env.reset(seed=SEED)
        seen = [infos[agent]]
        while env.agents:
            seen.append(env.step(policy(seen[-1]))[4][agent])
        return env.metrics(), seen


class _FixedPlan:
    """The `fixed` controller (control/fixed.py) as an agent: it asks for the next phase once the green has run
    its planned time, else holds. The controller decides at time t before the shield's tick at t; the agent
    proposes after the step to t - 1 for the tick at t, so it looks one step ahead. During a change interval it
    proposes nothing (the controller is not asked then either)."""

    def __init__(self, env, agent):
        inter = env.intersections[agent]
        self.agent = agent
        self.greens = [max(g, m) for g, m in zip(inter.program_green_s, inter.timing.min_green_s, strict=True)]
        self.green_start_s = None

    def __call__(self, info) -> dict:
        if info["interval"] != "green":
            self.green_start_s = None
            return {}
        if self.green_start_s is None:  # 1 s steps: a green first seen at t began at t
            self.green_start_s = info["time_s"]
        phase = info["phase"]
        if info["time_s"] + 1 - self.green_start_s + 1e-6 >= self.greens[phase]:
            return {self.agent: (phase + 1) % len(self.greens)}
        return {self.agent: phase}


def _run(tmp_path, **options) -> dict:
    cfg = RunConfig(scenario="single", timing="benchmark", duration_s=DURATION_S, seed=SEED, record="lean",
                    evidence="inline", **options.pop("config", {}))
    return execute_run(cfg, tmp_path / "run", **options).metrics["network"]


def test_the_summary_is_signalwise_runs_figures_for_the_same_driving(tmp_path):
    summary, seen = _episode(_FixedPlan)
    network = _run(tmp_path, config={"controller": "fixed"})
    assert {k: network[v] for k, v in RUN_KEYS.items()} == summary
    assert summary["vehicles_total_veh"] > 400 and summary["avg_delay_s"] > 0
    assert seen[-1]["episode_metrics"] == summary and all("episode_metrics" not in i for i in seen[:-1])


class _AlwaysPhase0:
    name, period_s, observation, wants_detectors = "phase-0", 1.0, "none", False

    def __init__(self, inter, _ctx):
        self.id = inter.id

    def decide(self, _obs) -> Decision:
        return Decision(self.id, 0, self.name)


@pytest.mark.slow
def test_vehicles_never_inserted_are_counted_and_their_wait_is_in_the_delay(tmp_path):
    """Phase 0 for ever (no maximum green under the benchmark profile): the other approaches back up to their
    entries, and vehicles due there never enter. RESCO's delay counts them from their scheduled departure to the
    end; checked against SUMO's own tripinfo of the same driving, read here with ElementTree."""
    summary, _seen = _episode(lambda env, agent: lambda info: {agent: 0})
    network = _run(tmp_path, controllers=_AlwaysPhase0)
    rows = [r for r in ET.parse(tmp_path / "run" / "sumo" / "tripinfo.xml").getroot() if r.tag == "tripinfo"]
    never = [r for r in rows if float(r.get("depart")) < 0]
    delay = sum(float(r.get("timeLoss")) + float(r.get("departDelay")) for r in rows) / len(rows)
    assert len(never) > 100 and sum(float(r.get("departDelay")) > 0 for r in never) > 100
    assert summary["never_inserted_veh"] == network["never_inserted"] == len(never)
    assert summary["vehicles_total_veh"] == len(rows)
    assert summary["avg_delay_s"] == network["avg_delay_s"] == pytest.approx(delay, abs=5e-4)  # rounded to 3 places


def test_every_agent_gets_the_summary_and_metrics_is_there_only_after_the_end():
    with SignalwiseParallelEnv("corridor", duration_s=60) as env:
        with pytest.raises(RuntimeError, match="no episode has ended"):
            env.metrics()
        env.reset(seed=1)
        infos = env.step({})[4]
        assert all("episode_metrics" not in i for i in infos.values())
        with pytest.raises(RuntimeError, match="no episode has ended"):
            env.metrics()
        while env.agents:
            infos = env.step({})[4]
        assert sorted(infos) == env.possible_agents
        assert all(i["episode_metrics"] == env.metrics() for i in infos.values())
        assert set(env.metrics()) == set(RUN_KEYS)
        env.reset(seed=2)
        with pytest.raises(RuntimeError, match="no episode has ended"):
            env.metrics()  # the new episode's, not the last one's


def test_gymnasiums_episode_statistics_wrapper_and_the_summary_live_side_by_side():
    """RecordEpisodeStatistics asserts that the env wrote no "episode" key of its own (Stable-Baselines3's Monitor
    overwrites it): the summary has a key of its own."""
    env = RecordEpisodeStatistics(gym.make(ENV_ID, scenario="single", duration_s=30))
    try:
        env.reset(seed=1)
        truncated = False
        while not truncated:
            _obs, _r, _term, truncated, info = env.step(0)
        assert info["episode"]["l"] == 6
        assert info["episode_metrics"] == env.unwrapped.metrics()
        assert info["episode_metrics"]["vehicles_total_veh"] > 0
    finally:
        env.close()
