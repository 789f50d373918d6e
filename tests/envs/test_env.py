"""The Gymnasium / PettingZoo environments: their libraries' own API checkers, seeding, the shield, the audit.

Real SUMO on short windows (120-300 s). libsumo is one simulation per
process: every test closes its environment, and a fixture checks that no
simulation is left open for the next test in this worker.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from signalwise.envs import ENV_ID, SignalwiseEnv, SignalwiseParallelEnv
from signalwise.envs.seeds import TRAINING_SEEDS_FROM
from signalwise.sim.backend import SimulationError
from signalwise.sim.sumo_home import import_libsumo

libsumo = import_libsumo()


def random_episode(env: SignalwiseParallelEnv, seed: int):
    """(observations, rewards, infos) of every step under seeded uniform random proposals."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    record = []
    while env.agents:
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        record.append((obs, rewards, infos))
    return record


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scenario", ["single", "corridor"])
def test_pettingzoo_parallel_api(scenario):
    with SignalwiseParallelEnv(scenario, duration_s=300) as env:
        parallel_api_test(env, num_cycles=100)  # 300 s / 5 s = 60 steps: reaches truncation
        assert env.agents == []
    assert len(env.possible_agents) == (1 if scenario == "single" else 5)


@pytest.mark.filterwarnings("error")
def test_gymnasium_env_checker():
    env = gym.make(ENV_ID, scenario="single", duration_s=120)
    try:
        check_env(env.unwrapped)  # with a spec: also asserts seeded resets and steps are deterministic
    finally:
        env.close()


def test_single_agent_wrapper_refuses_networks_with_several_signals():
    with pytest.raises(ValueError, match="5 controllable signals"):
        SignalwiseEnv("corridor", duration_s=60)


def test_seeded_reset_reproduces_the_episode():
    with SignalwiseParallelEnv("corridor", duration_s=300) as env:
        first = random_episode(env, seed=7)
        again = random_episode(env, seed=7)
        other = random_episode(env, seed=8)
    assert len(first) == len(again) == 60
    for (o1, r1, i1), (o2, r2, i2) in zip(first, again, strict=True):
        assert r1 == r2 and i1 == i2
        assert all(np.array_equal(o1[a], o2[a]) for a in o1)
    assert [r for _o, r, _i in first] != [r for _o, r, _i in other]  # the seed changes the traffic


def test_observations_in_space_rewards_are_halting_costs_and_audit_is_clean():
    with SignalwiseParallelEnv("corridor", duration_s=300) as env:
        record = random_episode(env, seed=3)
        report = env.audit()
    overrides = 0
    for obs, rewards, infos in record:
        for a, o in obs.items():
            assert env.observation_space(a).contains(o)
            assert o[: env.action_space(a).n].sum() == 1.0  # phase one-hot
            assert rewards[a] <= 0.0
            overrides += infos[a]["shield_override"]
    assert sum(sum(r.values()) for _o, r, _i in record) < 0  # traffic did queue
    assert overrides > 0  # random proposals do hit the shield's rules
    assert report.violations == []
    assert report.checked["min_green"] > 0 and report.checked["link_yellow"] > 0
    assert sorted(report.devices) == sorted(env.possible_agents)


def test_reward_is_minus_halting_vehicles_on_the_approaches_each_second():
    with SignalwiseParallelEnv("single", duration_s=120, decision_period_s=1.0) as env:
        agent = env.possible_agents[0]
        lanes = env.intersections[agent].in_lanes
        env.reset(seed=2)
        costs = []
        while env.agents:
            _obs, rewards, *_ = env.step({agent: 0})
            halting_now = sum(libsumo.lane.getLastStepHaltingNumber(lane) for lane in lanes) \
                if libsumo.simulation.isLoaded() else None
            costs.append((rewards[agent], halting_now))
    assert len(costs) == 120
    assert all(r == -h for r, h in costs[:-1])  # the last step closed SUMO
    assert sum(h for _r, h in costs[:-1]) > 0
    idle = [r for r, h in costs[:-1] if h == 0]
    assert idle and all(math.copysign(1.0, r) == 1.0 for r in idle)  # 0.0, not -0.0, when nothing halted


def test_state_is_every_agents_observation_in_agent_order():
    with SignalwiseParallelEnv("corridor", duration_s=60) as env:
        with pytest.raises(RuntimeError, match="reset"):
            env.state()
        obs, _ = env.reset(seed=4)
        assert env.state_space.contains(env.state())
        assert np.array_equal(env.state(), np.concatenate([obs[a] for a in env.possible_agents]))
        rng = np.random.default_rng(4)
        states = []
        while env.agents:
            obs, *_ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
            states.append(env.state())
        assert np.array_equal(states[-1], np.concatenate([obs[a] for a in env.possible_agents]))  # kept at the end
        assert len({s.tobytes() for s in states}) > 1  # it follows the traffic
        assert env.state_space.shape == (sum(env.observation_space(a).shape[0] for a in env.possible_agents),)


def test_shield_refuses_a_change_inside_minimum_green_and_says_so():
    with SignalwiseParallelEnv("single", duration_s=300) as env:
        agent = env.possible_agents[0]
        assert env.intersections[agent].timing.min_green_s[0] == 22  # serves a crosswalk: walk + ped clearance
        _obs, infos = env.reset(seed=3)  # seed 3: no emergency vehicle in the first minutes
        assert infos[agent]["phase"] == 0 and infos[agent]["interval"] == "green"
        steps = []
        while len(steps) < 6:
            _obs, _r, _t, _tr, info = env.step({agent: 1})  # "go to phase 1 now", from t = 0
            steps.append(info[agent])
        # t = 5 .. 20: inside phase 0's 22 s minimum green the proposal is refused, and reported at every step (the
        # shield records its min_green intervention once, in the first; the environment says what still holds)
        for info in steps[:4]:
            assert (info["phase"], info["interval"], info["shield_override"]) == (0, "green", True)
            assert info["shield_rules"] == ["min_green"]
        # t = 25: minimum green ended at 22 s; the shield is clearing towards the proposed phase
        assert steps[4]["interval"] in ("yellow", "all_red") and not steps[4]["shield_override"]
        assert (steps[5]["phase"], steps[5]["interval"], steps[5]["shield_override"]) == (1, "green", False)
        # holding phase 1 for ever: the shield ends it for a bound (max green or the cycle) and says which, then
        # that the change interval it started holds the proposal back
        forced = None
        while env.agents and forced is None:
            _obs, _r, _t, _tr, info = env.step({agent: 1})
            if info[agent]["shield_override"]:
                forced = info[agent]
        assert forced is not None and forced["shield_rules"][0] in {"max_green", "cycle_max"}
        assert forced["interval"] in ("yellow", "all_red") and forced["shield_rules"][1:] == ["clearance"]
    events = [(e.time_s, e.event_code, e.parameter) for e in env._last.events()]
    assert min(t for t, code, phase in events if code == 8 and phase == 1) == 22.0  # phase 0's first yellow
    assert env.audit().violations == []


def test_emergency_preemption_overrides_the_agent():
    with SignalwiseParallelEnv("single", duration_s=120) as env:
        agent = env.possible_agents[0]
        env.reset(seed=1)  # seed 1: an emergency vehicle reaches the signal at t = 22 s
        rules = []
        while env.agents:
            _obs, _r, _t, _tr, info = env.step({agent: 0})
            rules += info[agent]["shield_rules"]
            if "preempt" in info[agent]["shield_rules"]:
                assert info[agent]["shield_override"]
        assert "preempt" in rules
        report = env.audit()
    assert report.violations == [] and report.checked["preempt"] > 0


def test_one_open_environment_per_process_and_close_frees_it():
    first = SignalwiseParallelEnv("single", duration_s=60)
    second = SignalwiseParallelEnv("single", duration_s=60)
    try:
        first.reset(seed=1)
        with pytest.raises(SimulationError, match="one simulation per process"):
            second.reset(seed=1)
        first.step({first.possible_agents[0]: 0})  # the refused reset did not disturb the open one
        first.close()
        assert not libsumo.simulation.isLoaded()
        second.reset(seed=1)
        assert libsumo.simulation.isLoaded()
    finally:
        first.close()
        second.close()
    first.close()  # closing twice is fine


def test_stepping_after_the_episode_asks_for_reset():
    with SignalwiseParallelEnv("single", duration_s=10) as env:
        env.reset(seed=1)
        agent = env.possible_agents[0]
        _o, _r, _t, truncs = env.step({agent: 0})[:4]
        assert not truncs[agent]
        _o, _r, terms, truncs, _i = env.step({agent: 0})
        assert truncs[agent] and not terms[agent] and env.agents == []
        with pytest.raises(RuntimeError, match="reset"):
            env.step({agent: 0})
        with pytest.raises(ValueError, match="not a phase index"):
            env.reset(seed=1)
            env.step({agent: 9})


def test_any_gymnasium_seed_runs_and_reproduces_and_a_negative_one_is_refused():
    """SUMO's --seed is a 32-bit signed integer; Gymnasium seeds are any int >= 0 (Stable-Baselines3's
    `VecEnv.seed()` draws up to 2**32 - 1)."""
    env = gym.make(ENV_ID, scenario="single", duration_s=30).unwrapped
    try:
        big = 2**32 - 1
        obs, info = env.reset(seed=big)
        assert info["sumo_seed"] == big % 2**31
        first = [env.step(0)[1] for _ in range(6)]
        env.reset(seed=big)
        assert [env.step(0)[1] for _ in range(6)] == first
        _obs, info = env.reset()  # drawn from the generator the seed started, among the training seeds
        drawn = info["sumo_seed"]
        assert TRAINING_SEEDS_FROM <= drawn < 2**31 and env.np_random_seed == big
        env.reset(seed=big)
        assert env.reset()[1]["sumo_seed"] == drawn
        with pytest.raises(ValueError, match="seed"):
            env.parallel.reset(seed=-1)
    finally:
        env.close()


def test_a_second_environment_on_the_same_network_gets_its_own_signals():
    """Agents and spaces are probed once per network; a partition (or other settings) must not reuse another
    environment's probe."""
    whole = SignalwiseParallelEnv("corridor", duration_s=30)
    part = SignalwiseParallelEnv("corridor", duration_s=30, partition=["J1", "J2"])
    assert whole.possible_agents == ["J1", "J2", "J3", "J4", "J5"]
    assert part.possible_agents == ["J1", "J2"]
    with part:
        obs, _ = part.reset(seed=1)
        assert sorted(obs) == ["J1", "J2"]


def test_a_signal_program_edited_in_an_additional_file_is_probed_again(tmp_path):
    """The probe is remembered per network and settings, and a .sumocfg names its additional files, not their
    contents: a program edited in place (two green phases, then four) must give the new environment four actions,
    as its episode has, not the two remembered from before the edit."""
    from signalwise.sim.scenario import load

    single = load("single")
    programs = tmp_path / "plan.add.xml"
    sumocfg = tmp_path / "city.sumocfg"
    sumocfg.write_text(f"""<configuration><input>
  <net-file value="{single.net_file}"/><route-files value="{single.route_files[0]}"/>
  <additional-files value="{programs.name}"/></input>
  <time><begin value="0"/><end value="600"/></time></configuration>""")

    def write(phases):
        rows = "\n".join(f'    <phase duration="{d}" state="{s}"/>' for s, d in phases)
        programs.write_text('<additional>\n  <tlLogic id="C" type="static" programID="plan" offset="0">\n'
                            f"{rows}\n  </tlLogic>\n</additional>\n")

    write([("gGGrrrrrgGGrrrrrrGrG", 30), ("yyyrrrrryyyrrrrrrrrr", 3),
           ("rrrrgGGrrrrrgGGrGrGr", 30), ("rrrryyyrrrrryyyrrrrr", 3)])
    assert SignalwiseParallelEnv(sumocfg=sumocfg, duration_s=30).action_space("C").n == 2
    write([("gGGrrrrrgGGrrrrrrGrG", 30), ("rrrGrrrrrrrGrrrrrrrr", 10),
           ("rrrrgGGrrrrrgGGrGrGr", 30), ("rrrrrrrGrrrrrrrGrrrr", 10)])
    env = SignalwiseParallelEnv(sumocfg=sumocfg, duration_s=30)
    with env:
        env.reset(seed=1)
        assert env.action_space("C").n == len(env.intersections["C"].phases) == 4
        assert len(env._episode.intersections[0].phases) == 4  # what the simulation runs


@pytest.mark.parametrize(("scenario", "timing", "period_s"), [
    ("single", "benchmark", 10.0), ("resco:arterial4x4", "benchmark", 5.0), ("single", "reference", 5.0),
    ("single", "safety", 5.0)])
def test_the_default_decision_period_is_the_one_signalwise_run_decides_at(scenario, timing, period_s):
    """The profiles' decision steps (runtime/profiles.py: RESCO's 10 s, 5 s on arterial4x4; the reference's 5 s);
    under safety, the default controller's (max-pressure, 5 s)."""
    env = SignalwiseParallelEnv(scenario, timing=timing, duration_s=20)
    assert env.decision_period_s == period_s
    if scenario == "single":
        with env:
            env.reset(seed=1)
            assert env.step({})[4]["C"]["time_s"] == period_s


def test_an_explicit_decision_period_wins_over_the_profiles():
    with SignalwiseParallelEnv("single", timing="benchmark", duration_s=20, decision_period_s=4) as env:
        env.reset(seed=1)
        assert env.decision_period_s == 4.0 and env.step({})[4]["C"]["time_s"] == 4.0
    assert SignalwiseParallelEnv("single", timing="benchmark", duration_s=20,
                                 controller_options={"period_s": 7}).decision_period_s == 7.0


@pytest.mark.parametrize("timing", ["benchmark", "safety"])
def test_time_in_interval_reads_against_max_green_or_120_s_without_one(timing):
    """The benchmark profile has no maximum green (86,400 s): the feature reads the green's time / 120 s."""
    with SignalwiseParallelEnv("single", timing=timing, duration_s=50, decision_period_s=10) as env:
        agent = env.possible_agents[0]
        n = env.action_space(agent).n
        max_green_s = env.intersections[agent].timing.max_green_s[0]
        scale_s = 120.0 if timing == "benchmark" else max_green_s
        assert (max_green_s == 86400.0) == (timing == "benchmark") and max_green_s > 50
        env.reset(seed=3)  # seed 3: no emergency vehicle in the first minutes
        read = []
        while env.agents:
            obs, _r, _t, _tr, infos = env.step({agent: 0})
            assert (infos[agent]["phase"], infos[agent]["interval"]) == (0, "green")  # held since t = 0
            read.append((infos[agent]["time_s"] / scale_s, float(obs[agent][n + 1])))
    assert [want for want, _got in read] == pytest.approx([got for _want, got in read])
    assert read[-1][1] == pytest.approx(50 / scale_s) and read[-1][1] > 0.4


@pytest.mark.parametrize(("scenario", "timing", "period_s"), [("corridor", "safety", 5), ("single", "safety", 5),
                                                              ("single", "benchmark", 1)])
def test_every_override_says_what_holds_the_proposal_back(scenario, timing, period_s):
    """Random proposals: each step the signal does not serve the proposal, shield_rules names why, and the name
    is true of the shield at the step's end (its minimum green checked here from the timing, pedestrian walk and
    clearance included)."""
    from signalwise.control.shield import PED_CLEAR, PED_WALK
    from signalwise.core.timing import ceil_to_step

    rng = np.random.default_rng(11)
    held = {"min_green": 0, "clearance": 0}
    with SignalwiseParallelEnv(scenario, timing=timing, duration_s=600, decision_period_s=period_s) as env:
        env.reset(seed=11)
        while env.agents:
            infos = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})[4]
            for a, info in infos.items():
                if not info["shield_override"]:
                    continue
                assert info["shield_rules"]
                sh = env._last.shields[a]
                if sh.preempt_active:
                    assert "preempt" in info["shield_rules"]
                elif sh.interval != "green":
                    assert "clearance" in info["shield_rules"]
                    held["clearance"] += 1
                else:
                    min_green_s = ceil_to_step(sh.inter.timing.min_green_s[sh.phase], env.config.step_length_s)
                    assert info["time_s"] - sh.green_start_s < min_green_s or sh.ped in (PED_WALK, PED_CLEAR)
                    assert "min_green" in info["shield_rules"]
                    held["min_green"] += 1
    # (at the benchmark profile's own 10 s steps, a change's 3 s yellow and 7 s minimum green fill the step it
    # starts in: 1 s steps, to see both)
    assert held["min_green"] > 0 and held["clearance"] > 0
