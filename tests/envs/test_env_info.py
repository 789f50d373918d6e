"""What a step's infos say about the proposal the shield holds and the clearance under way, and how an episode
ends: the last step's length, a duration past the scenario's window. Real SUMO runs on `single`.
"""

import warnings

import pytest

from signalwise.envs import SignalwiseParallelEnv
from signalwise.sim.scenario import load

KEYS = ("time_s", "phase", "interval", "next_phase", "proposed_phase", "shield_override", "shield_rules")


def _info(env: SignalwiseParallelEnv, action: dict) -> dict:
    """C's info after one step on `action`, the keys this file reads."""
    info = env.step(action)[4]["C"]
    return {k: info[k] for k in KEYS}


def test_a_proposal_sent_once_is_reported_while_the_shield_holds_it_as_when_sent_every_step():
    """Phase 2 asked for at t = 0, inside phase 0's 22 s minimum green: an agent that sends it once and one that
    repeats it see the same holds, overrides and reasons, step by step, until the signal serves it."""
    with SignalwiseParallelEnv("single", duration_s=40, decision_period_s=1) as env:
        env.reset(seed=3)
        once = [_info(env, {"C": 2} if k == 0 else {}) for k in range(40)]
        env.reset(seed=3)
        every = [_info(env, {"C": 2}) for k in range(40)]
    served = next(k for k, i in enumerate(once) if (i["phase"], i["interval"]) == (2, "green"))
    assert once[:served + 1] == every[:served + 1]  # the step that starts the green included
    held = once[:21]  # t = 1 .. 21: inside the minimum green
    assert all((i["proposed_phase"], i["shield_override"], i["interval"]) == (2, True, "green") for i in held)
    assert all(i["shield_rules"] == ["min_green"] for i in held)
    assert once[served + 1]["proposed_phase"] is None and not once[served + 1]["shield_override"]  # served: none stands
    assert every[served + 1]["proposed_phase"] == 2 and not every[served + 1]["shield_override"]


def test_next_phase_is_the_phase_a_clearance_leads_to_and_none_in_green():
    with SignalwiseParallelEnv("single", duration_s=40, decision_period_s=1) as env:
        env.reset(seed=3)
        seen = [_info(env, {"C": 2} if k == 0 else {}) for k in range(40)]
    clearing = [i for i in seen if i["interval"] != "green"]
    assert clearing and {i["interval"] for i in clearing} >= {"yellow"}
    assert all(i["phase"] == 0 and i["next_phase"] == 2 for i in clearing)
    assert all(i["next_phase"] is None for i in seen if i["interval"] == "green")
    assert seen[-1]["phase"] == 2


def test_the_last_step_ends_at_the_duration_and_its_reward_covers_only_that_time():
    """32 s at 5 s steps: 5, 10, ..., 30, 32 s; the last reward is the halting of its 2 s (those of 1 s steps 31 and
    32 on the same traffic)."""
    with SignalwiseParallelEnv("single", duration_s=32, decision_period_s=5) as env:
        env.reset(seed=3)
        coarse = []
        while env.agents:
            _obs, rewards, _t, _tr, infos = env.step({})
            coarse.append((infos["C"]["time_s"], rewards["C"]))
    with SignalwiseParallelEnv("single", duration_s=32, decision_period_s=1) as env:
        env.reset(seed=3)
        fine = []
        while env.agents:
            fine.append(env.step({})[1]["C"])
    assert [t for t, _r in coarse] == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 32.0]
    assert coarse[-1][1] == pytest.approx(sum(fine[30:])) and coarse[-1][1] < 0
    assert coarse[-2][1] == pytest.approx(sum(fine[25:30]))


def test_a_duration_past_a_scenarios_window_is_warned_about():
    window_s = load("single").duration_s
    with pytest.warns(UserWarning, match=r"duration_s 3700 runs past single's window \(0-3600 s, 3600 s\).*last "
                                         r"100 s only drain"):
        SignalwiseParallelEnv("single", duration_s=window_s + 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SignalwiseParallelEnv("single", duration_s=window_s)
        single = load("single")  # a user's network has no window of its own (an hour is assumed): no warning
        SignalwiseParallelEnv(net=str(single.net_file), routes=[str(single.route_files[0])], duration_s=window_s + 100)
