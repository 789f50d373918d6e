"""The environments as docs/learning.md shows them: its example runs as written and prints what the page says;
step lengths, actions and a refused step behave as the page describes. Real SUMO runs."""

import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from signalwise.envs import ENV_ID, SignalwiseParallelEnv

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "learning.md"


def _environment_section() -> str:
    text = PAGE.read_text()
    return text[text.index("## Gymnasium / PettingZoo environments"):]


@pytest.mark.slow
def test_the_docs_example_runs_as_written_and_prints_what_the_page_says(tmp_path):
    section = _environment_section()
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    printed = re.search(r"prints `([^`]*)`", section).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == printed


@pytest.mark.parametrize("period", [2.5, 0.3])
def test_a_decision_period_sumo_cannot_step_exactly_is_refused(period):
    with pytest.raises(ValueError, match="whole number of simulation steps"):
        SignalwiseParallelEnv("single", duration_s=30, decision_period_s=period)


@pytest.mark.parametrize(("option", "value"), [("decision_period_s", float("inf")), ("decision_period_s", 0.0),
                                               ("reward_scale", float("nan")), ("reward_scale", float("inf"))])
def test_a_period_or_reward_scale_that_is_no_finite_number_is_refused(option, value):
    with pytest.raises(ValueError, match=option):
        SignalwiseParallelEnv("single", duration_s=30, **{option: value})


def test_a_step_lasts_exactly_the_decision_period():
    with SignalwiseParallelEnv("single", duration_s=12, decision_period_s=3) as env:
        env.reset(seed=1)
        agent = env.possible_agents[0]
        times = []
        while env.agents:
            times.append(env.step({agent: 0})[4][agent]["time_s"])
    assert times == [3.0, 6.0, 9.0, 12.0]


@pytest.mark.parametrize("action", [1.5, "1", True, None, [1, 2]])
def test_an_action_that_is_not_a_whole_phase_index_is_refused(action):
    with SignalwiseParallelEnv("single", duration_s=30) as env:
        env.reset(seed=1)
        with pytest.raises(ValueError, match="not a phase index"):
            env.step({env.possible_agents[0]: action})
        info = env.step({env.possible_agents[0]: np.int64(2)})[4][env.possible_agents[0]]
        assert info["proposed_phase"] == 2  # numpy integers are phase indices


def _phases(env: SignalwiseParallelEnv, first: dict | None) -> list[tuple]:
    env.reset(seed=2)
    agent = env.possible_agents[0]
    if first is not None:
        with pytest.raises((KeyError, ValueError)):
            env.step(first)
    seen = []
    while env.agents:
        info = env.step({})[4][agent]
        seen.append((info["time_s"], info["phase"], info["interval"]))
    return seen


@pytest.mark.parametrize("bad", [{"nobody": 0}, {"J2": 99}])
def test_a_refused_step_takes_none_of_its_proposals(bad):
    with SignalwiseParallelEnv("corridor", duration_s=120) as env:
        untouched = _phases(env, None)
        # J1's proposal comes first in the dict; the refused entry after it must not let it through
        refused = _phases(env, {"J1": 1, **bad})
    assert refused == untouched


SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"


def test_both_environments_take_your_own_network_as_the_page_says():
    for make in (lambda: SignalwiseParallelEnv(sumocfg=str(SINGLE / "scenario.sumocfg"), duration_s=30),
                 lambda: gym.make(ENV_ID, net=str(SINGLE / "net.net.xml"), routes=[str(SINGLE / "demand.rou.xml")],
                                  duration_s=30).unwrapped):
        env = make()
        try:
            env.reset(seed=1)
            assert getattr(env, "parallel", env).config.scenario is None  # the files, not a built-in scenario
        finally:
            env.close()
    with SignalwiseParallelEnv(duration_s=30) as env:  # no network given: the built-in single
        assert env.config.scenario == "single" and env.possible_agents == ["C"]


def test_gymnasium_make_as_the_docs_write_it_works_in_a_fresh_process():
    """Registration happens on `import signalwise.envs`; the documented id must bring that import along, or a
    user's first `gymnasium.make` fails with NamespaceNotFound."""
    env_id = re.search(r'gymnasium\.make\("([^"]+)", scenario="single"\)', _environment_section()).group(1)
    code = ("import gymnasium\n"
            f"env = gymnasium.make({env_id!r}, scenario='single', duration_s=10)\n"
            "obs, info = env.reset(seed=1)\n"
            "print(type(env.unwrapped).__name__, env.action_space.n)\n"
            "env.close()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "SignalwiseEnv" and int(r.stdout.split()[1]) >= 2


def test_the_vector_example_runs_as_written_and_prints_what_the_page_says(tmp_path):
    section = _environment_section()
    block = next(m for m in re.finditer(r"```python\n(.*?)```", section, re.DOTALL) if "AsyncVectorEnv" in m.group(1))
    printed = re.search(r"prints `([^`]*)`", section[block.end():]).group(1)
    script = tmp_path / "vector.py"
    script.write_text(block.group(1))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == printed


def test_copies_in_one_process_are_refused_as_the_page_says():
    from signalwise.sim.backend import SimulationError

    message = re.search(r"second copy's reset with `([^`]*)`", " ".join(_environment_section().split())).group(1)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, scenario="single", duration_s=30)] * 2)
    try:
        with pytest.raises(SimulationError, match=re.escape(message)):
            envs.reset(seed=1)
    finally:
        envs.close()


def test_the_readme_snippet_on_a_resco_network_runs_resco_rules():
    """RESCO users copy it: RESCO's 10 s steps, 3 s yellow and no all-red, not the safety profile's."""
    readme = (ROOT / "README.md").read_text()
    code = next(m.group(1) for m in re.finditer(r"```python\n(.*?)```", readme, re.DOTALL)
                if "SignalwiseParallelEnv" in m.group(1))
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the README's own snippet
    env = scope["env"]
    try:
        timing = env.intersections[env.possible_agents[0]].timing
        assert env.config.timing.profile == "benchmark" and env.decision_period_s == 10.0
        assert (timing.yellow_s, timing.all_red_s) == (3.0, 0.0)
        assert scope["infos"][env.possible_agents[0]]["sumo_seed"] == 1
    finally:
        env.close()


def test_the_tests_the_page_names_exist():
    """The page says where determinism and the rest are tested: those tests must be there under those names."""
    named = set(re.findall(r"`(test_\w+)`", _environment_section()))
    found = {name for f in (ROOT / "tests" / "envs").glob("test_*.py")
             for name in re.findall(r"^def (test_\w+)", f.read_text(), re.MULTILINE)}
    assert named and named <= found, named - found
