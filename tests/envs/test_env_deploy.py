"""docs/learning.md's recipe for running an environment-trained policy as a `py:` controller: it runs in a real
`signalwise run`, and the observation it builds from a controller's inputs is the environment's on the same traffic.

The run's controller decisions are replayed into the environment at 1 s steps, one step ahead (a controller decides
at t before the shield's tick at t; an agent proposes after the step to t - 1), so both drive the same signal and
SUMO the same traffic; the vectors are compared at each second the controller was asked.
"""

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.envs import SignalwiseParallelEnv

PAGE = Path(__file__).resolve().parents[2] / "docs" / "learning.md"
SEED, DURATION_S = 3, 120

#: appended to the recipe: its controller, with each call's time, vector and proposal written to a file
RECORDER = '''

def make_recorded(inter, ctx):
    import json, os

    ctl = make(inter, ctx)
    decide = ctl.decide

    def recorded(obs):
        decision = decide(obs)
        with open(os.environ["ENV_POLICY_LOG"], "a") as f:
            f.write(json.dumps([obs.time_s, ctl.encode(obs).tolist(), decision.phase_index, ctl.period_s]) + "\\n")
        return decision

    ctl.decide = recorded
    return ctl
'''


def _recipe() -> str:
    section = PAGE.read_text()[PAGE.read_text().index("## Gymnasium / PettingZoo environments"):]
    return next(m.group(1) for m in re.finditer(r"```python\n(.*?)```", section, re.DOTALL)
                if "PhaseQueueObservation" in m.group(1))


def test_the_recipes_controller_runs_and_builds_the_environments_observation(tmp_path, monkeypatch):
    ctl = tmp_path / "env_policy.py"
    ctl.write_text(_recipe() + RECORDER)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("ENV_POLICY_LOG", str(log))
    r = CliRunner().invoke(app, ["run", "-s", "single", "--timing", "benchmark", "--duration", str(DURATION_S),
                                 "--seed", str(SEED), "-c", f"py:{ctl}:make_recorded", "--record", "lean",
                                 "--out", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    (metrics,) = (tmp_path / "runs").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["safety"]["violations"] == 0
    calls = {round(t): (np.array(vec, dtype=np.float32), phase) for t, vec, phase, _p in map(json.loads, log.open())}
    assert {p for *_c, p in map(json.loads, log.open())} == {10.0}  # the benchmark profile's period_s, as the env's

    same, clearing = 0, 0
    with SignalwiseParallelEnv("single", timing="benchmark", duration_s=DURATION_S, decision_period_s=1) as env:
        n = env.action_space("C").n
        env.reset(seed=SEED)
        t = 0
        while env.agents:
            action = {"C": calls[t + 1][1]} if t + 1 in calls else {}
            obs, _r, _t, _tr, infos = env.step(action)
            t = round(infos["C"]["time_s"])
            if t not in calls:
                continue
            vec, phase = calls[t]
            assert np.array_equal(obs["C"][n + 2:], vec[n + 2:])  # queues and counts: the same traffic
            if infos["C"]["interval"] == "green":
                assert np.array_equal(obs["C"], vec)
                same += 1
            else:  # the controller's proposal started a change at t: the agent already sees its yellow
                assert phase != int(vec[:n].argmax()) and obs["C"][n] == 1.0 and vec[n] == 0.0
                clearing += 1
    assert len(calls) == 12 and same >= 3 and clearing >= 3
