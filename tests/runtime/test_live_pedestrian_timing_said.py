"""Pedestrian timing a run does not refuse but an operator must hear of, said at run time as `signalwise run` says
it at start (real SUMO on the built-in `single`, whose four crosswalks are 16 m long; phases 1 and 3 serve them):

- walk + pedestrian clearance below MUTCD 4E.06's guidance (the crosswalk crossed from 6 ft behind the curb at
  3 ft/s: (16 + 1.83) / 0.914 = 19.5 s), as a `PUT /api/v1/live/config/timing` leaves it;
- a `max_green_s` shorter than a crosswalk phase's walk + clearance, which runs that minimum instead.

Found in a trial: `{"ped_walk_s": 4}` left 4 s + 15 s = 19 s on those crosswalks and was answered `applied` with an
empty reason, where a --config with the same value warned at start; `{"phases": {"1": {"max_green_s": 6}}}` ran
phase 1's 22 s minimum without a word, at start or at run time. And the refusal of a walking speed above 1.22 m/s
called 4 ft/s MUTCD's fastest, where MUTCD times a clearance at 3.5 ft/s and allows 4 ft/s only with an extended
pushbutton press (or passive detection) for slower pedestrians."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.core import EventCode, read_events
from signalwise.core.timing import ped_walk_and_clearance_guidance_s
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
#: the values the trial sent at run time, as a --config: walk 4 s, and phase 1's maximum green 6 s
CONFIG = "timing:\n  ped_walk_s: 4\n  per_intersection:\n    C:\n      phases:\n        1: {max_green_s: 6}\n"


@pytest.fixture(scope="module")
def run_says(tmp_path_factory) -> dict:
    """What `signalwise run --config` warns of those values at start: its stderr and its metrics.json warnings."""
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "p.yaml").write_text(CONFIG)
    done = subprocess.run([SIGNALWISE, "run", "-s", "single", "-c", "actuated", "--config", str(tmp / "p.yaml"),
                           "--duration", "30", "--out", str(tmp / "runs")], capture_output=True, text=True,
                          timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp / "runs").iterdir())
    warnings = json.loads((run_dir / "metrics.json").read_text())["warnings"]
    model = {d["id"]: d for d in json.loads((run_dir / "signal_model.json").read_text())}
    return {"stdout": " ".join((done.stdout + done.stderr).split()), "warnings": warnings, "model": model["C"]}


def _runtime(out: Path, cfg: RunConfig | None = None) -> LiveRuntime:
    return LiveRuntime(cfg or RunConfig(scenario="single", controller="max-pressure"),
                       LiveOptions(speed=None, duration_s=120, in_process=True, state_every_s=60), out / "run")


def test_a_max_green_below_walk_and_clearance_is_said_at_start(run_says):
    """The start: the maximum green asked for, the one that runs and why, a `warning:` line and in metrics.json."""
    timing = run_says["model"]["timing"]
    runs_s = timing["min_green_s"][0]
    assert timing["max_green_s"][0] == runs_s > 6  # raised: the shield holds phase 1 to its minimum
    said = [w for w in run_says["warnings"] if "max green raised" in w]
    assert said == [f"signal 'C': max green raised: phase 1 max_green_s 6 s runs {runs_s:g} s, its minimum green "
                    f"(walk 4 s + pedestrian clearance {timing['phase_ped_clearance_s'][0]:g} s): a maximum green "
                    "never ends a green before its minimum"], run_says["warnings"]
    assert f"warning: {said[0]}" in run_says["stdout"], run_says["stdout"]
    guidance = [w for w in run_says["warnings"] if "MUTCD 4E.06's guidance" in w]
    assert len(guidance) == 1 and f"< {ped_walk_and_clearance_guidance_s(16.0):.1f} s" in guidance[0], guidance


def test_a_run_time_change_below_the_guidance_or_under_the_minimum_is_said_as_run_says_it(run_says, tmp_path,
                                                                                          caplog):
    rt = _runtime(tmp_path)
    rt.open()
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        walk = rt.submit(ch.TimingChange(timing={"ped_walk_s": 4}), who="ops")
        phase = rt.submit(ch.SignalTimingChange(intersection_id="C", timing={"phases": {"1": {"max_green_s": 6}}}),
                          who="ops")
    rt.run()
    guidance = next(w for w in run_says["warnings"] if "MUTCD 4E.06's guidance" in w)
    raised = next(w for w in run_says["warnings"] if "max green raised" in w)
    assert walk["result"] == "applied" and walk["reason"] == guidance, walk
    assert phase["result"] == "applied" and phase["reason"] == f"{raised}; {guidance}", phase
    logged = [json.loads(line) for line in (rt.run_dir / "changes.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in logged] == [walk["reason"], phase["reason"]]
    said = [r.getMessage() for r in caplog.records if r.getMessage().endswith("a longer ped_walk_s meets it")]
    assert said == [f"timing change by ops: {walk['reason']}", f"signal_timing change by ops: {phase['reason']}"]
    # and the signal runs what was said: walks of 4 s, phase 1 never shorter than its minimum
    events = [e for e in read_events(rt.run_dir / "events.csv") if e.device_id == "C"]
    walks = [(e.time_s, e.parameter) for e in events if e.event_code == EventCode.PED_BEGIN_WALK]
    ends = {(e.time_s, e.parameter) for e in events if e.event_code == EventCode.PED_BEGIN_CLEARANCE}
    assert any((t + 4.0, p) in ends for t, p in walks[1:]), (walks, ends)


def test_a_walking_speed_past_the_profile_is_refused_with_mutcd_said_as_it_is(tmp_path):
    rt = _runtime(tmp_path)
    rt.open()
    with pytest.raises(ch.ChangeRefused) as refused:
        rt.submit(ch.TimingChange(timing={"ped_walking_speed_mps": 1.3}), who="ops")
    rt.run()
    text = str(refused.value)
    assert "must be at most 1.22 m/s (4 ft/s" in text, text
    assert "3.5 ft/s (1.07 m/s), the normal walking speed" in text and "extended pushbutton press" in text, text
    assert "the fastest MUTCD 4E.06 times a pedestrian clearance at" not in text, text


def test_a_live_run_started_with_those_values_says_them_on_stderr_as_run_does(run_says, tmp_path, caplog):
    cfg = RunConfig(scenario="single", controller="max-pressure",
                    timing={"ped_walk_s": 4, "per_intersection": {"C": {"phases": {1: {"max_green_s": 6}}}}})
    rt = _runtime(tmp_path, cfg)
    with caplog.at_level(logging.WARNING, logger="signalwise.live"):
        rt.open()
    rt.run()
    said = [r.getMessage() for r in caplog.records]
    expected = [w for w in run_says["warnings"] if "max green raised" in w or "MUTCD 4E.06's guidance" in w]
    assert len(expected) == 2 and all(w in said for w in expected), (expected, said)
