"""A pedestrian clearance is held to its crossing: the walking speed is a setting, a configured clearance shorter than
the longest crosswalk takes at it refuses the run, the audit grades each flashing don't walk against the crossing
(`crosswalks[].length_m` of signal_model.json) whatever the model's `ped_clearance_s` says, and a walk + clearance
below MUTCD 4E.06's guidance is a run warning. `single` has four 16.0 m crosswalks at signal C."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.cli import in_a_process

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import read_events
from signalwise.core.eventlog import write_events
from signalwise.core.timing import ped_clearance_s
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.signal_model import UnsafePedClearance


def _run(tmp_path: Path, name: str, timing: dict | None = None, duration_s: float = 60, **more):
    cfg = RunConfig(scenario="single", controller="fixed", duration_s=duration_s, emissions=False, record="lean",
                    timing=timing or {}, **more)
    return execute_run(cfg, tmp_path / name)


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("timing:\n  ped_walk_s: 4\n  ped_clearance_s: 0\n", "timing.ped_clearance_s 0 s"),
    ("timing:\n  per_intersection:\n    C:\n      ped_clearance_s: 2\n", "timing.per_intersection.C.ped_clearance_s 2 s"),
], ids=["default", "per-intersection"])
def test_a_clearance_shorter_than_the_crossing_refuses_the_run(tmp_path, yaml_text, key):
    config = tmp_path / "unsafe.yaml"
    config.write_text(yaml_text)
    done = in_a_process("run", "-s", "single", "-c", "max-pressure", "--duration", "60", "--config", str(config),
                        "--out", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stderr
    assert (f"error: {key} is shorter than signal 'C' needs: its crosswalk :C_c0 is 16.0 m, 14.6 s at the walking "
            "speed of 1.1 m/s (timing.ped_walking_speed_mps); give at least 14.6 s") in done.stderr, done.stderr


def test_a_clearance_the_crossing_allows_runs_and_a_slower_walker_needs_more(tmp_path):
    """14.6 s covers 16 m at 1.1 m/s; at 0.91 m/s the same value is refused, naming that speed."""
    assert _run(tmp_path, "ok", {"ped_clearance_s": 14.6}, duration_s=10)
    with pytest.raises(UnsafePedClearance, match=r"timing.ped_clearance_s 14.6 s is shorter than signal 'C' needs: "
                                                 r"its crosswalk :C_c0 is 16.0 m, 17.6 s at the walking speed of "
                                                 r"0.91 m/s \(timing.per_intersection.C.ped_walking_speed_mps\)"):
        _run(tmp_path, "slow", {"ped_clearance_s": 14.6, "per_intersection": {"C": {"ped_walking_speed_mps": 0.91}}},
             duration_s=10)


def test_the_walking_speed_sets_the_clearance_the_signal_model_derives(tmp_path):
    default = _run(tmp_path, "default", duration_s=10)
    slow = _run(tmp_path, "slow", {"ped_walking_speed_mps": 0.91}, duration_s=10)
    clearance = {name: json.loads((r.run_dir / "signal_model.json").read_text())[0]["timing"]["ped_clearance_s"]
                 for name, r in (("default", default), ("slow", slow))}
    # 16 m / 1.1 m/s = 14.55 s, rounded up (to the nearest was 14.5 s); 16 m / 0.91 m/s = 17.58 s
    assert clearance == {"default": 14.6, "slow": 17.6}


def test_a_walking_speed_above_4_ft_per_s_is_refused():
    with pytest.raises(ValueError, match=r"ped_walking_speed_mps \(1.3\) must be at most 1.22 m/s \(4 ft/s"):
        RunConfig(timing={"ped_walking_speed_mps": 1.3})
    with pytest.raises(ValueError, match=r"per_intersection.C: ped_walking_speed_mps \(1.25\) must be at most 1.22"):
        RunConfig(timing={"per_intersection": {"C": {"ped_walking_speed_mps": 1.25}}})
    assert RunConfig(timing={"ped_walking_speed_mps": 1.22}).timing.ped_walking_speed_mps == 1.22
    # the benchmark profile times no pedestrian intervals: its speed is not the safety profile's to bound
    assert RunConfig(timing={"profile": "benchmark", "ped_walking_speed_mps": 1.5}).timing.ped_walking_speed_mps == 1.5


def test_the_clearance_is_rounded_up_to_a_tenth():
    assert ped_clearance_s(16.0) == 14.6  # 14.545 s
    assert ped_clearance_s(16.0, 0.91) == 17.6  # 17.582 s
    assert ped_clearance_s(16.5) == 15.0  # 16.5 / 1.1 is 14.999999999999998 in floating point: not 15.1
    assert ped_clearance_s(16.06) == 14.6  # 14.6 s exactly


def _shorten_clearances(run_dir: Path, clearance_s: float) -> int:
    """Doctor a run's evidence as a signal told a short clearance would leave it: each flashing don't walk (22 -> 23)
    ends `clearance_s` after it began, and the model says `ped_clearance_s` and each crosswalk phase's clearance is
    that. The walks and the vehicle intervals, and so signal_states.csv, are unchanged. Returns how many clearances
    were cut."""
    path = run_dir / "events.csv"
    events, began, cut = [], {}, 0
    for e in read_events(path):
        key = (e.device_id, e.parameter)
        if e.event_code == 22:
            began[key] = e.time_s
        elif e.event_code == 23 and key in began:
            e = dataclasses.replace(e, time_s=began.pop(key) + clearance_s)
            cut += 1
        events.append(e)
    write_events(path, events)
    model_path = run_dir / "signal_model.json"
    model = json.loads(model_path.read_text())
    for device in model:
        device["timing"]["ped_clearance_s"] = clearance_s
        device["timing"]["phase_ped_clearance_s"] = [clearance_s if c else 0.0
                                                     for c in device["timing"]["phase_ped_clearance_s"]]
    model_path.write_text(json.dumps(model))
    return cut


def test_the_audit_grades_each_clearance_against_its_crossing_not_the_configured_value(tmp_path):
    run = _run(tmp_path, "run", duration_s=300)
    clean = audit_run(run.run_dir)
    assert clean.ok and clean.checked["ped"] > 0, clean.violations
    assert _shorten_clearances(run.run_dir, 5.0) > 0
    report = audit_run(run.run_dir)
    short = [v for v in report.violations if v.rule == "ped"]
    assert short and len(short) == len(report.violations), report.violations
    # 16 m at 1.22 m/s (4 ft/s, the fastest MUTCD allows: the model records no walking speed) = 13.1 s
    assert {(v.measured_s, v.required_s) for v in short} == {(5.0, round(16 / 1.22, 3))}
    assert "pedestrian clearance shorter than required (crosswalk :C_c" in short[0].detail
    assert "16 m at 1.22 m/s" in short[0].detail


def test_a_walk_and_clearance_below_mutcd_guidance_is_a_warning_not_a_refusal(tmp_path):
    """16 m from 1.83 m behind the curb at 0.914 m/s is 19.5 s: the defaults give 7 + 15 s, a 4 s walk 4 + 15 s."""
    default = _run(tmp_path, "default", duration_s=60)
    assert not [w for w in default.metrics.get("warnings", []) if "MUTCD" in w]
    short = _run(tmp_path, "short", {"ped_walk_s": 4}, duration_s=300)
    warned = [w for w in short.metrics.get("warnings", []) if "MUTCD" in w]
    assert warned == ["signal 'C': walk + pedestrian clearance as shown at 1 s steps is below MUTCD 4E.06's guidance "
                      "(the longest crosswalk a phase serves, crossed from 1.83 m behind the curb at 0.914 m/s): "
                      "phase 1 19 s (4 s + 15 s) < 19.5 s for crosswalk :C_c1 (16.0 m), phase 3 19 s (4 s + 15 s) "
                      "< 19.5 s for crosswalk :C_c0 (16.0 m); a longer ped_walk_s meets it"]
    assert audit_run(short.run_dir).ok


def test_a_live_timing_change_is_held_to_the_crossing_too(tmp_path):
    """An operator's change to a running signal is refused as a run's configuration is: a clearance shorter than the
    crossing needs, given to every signal or to one."""
    from signalwise.runtime.live import changes as ch
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="single", controller="fixed"),
                     LiveOptions(speed=None, duration_s=30, in_process=True), tmp_path / "live")
    rt.open()
    try:
        with pytest.raises(ch.ChangeRefused, match=r"ped_clearance_s 3 s is shorter than signal 'C' needs: its "
                                                   r"crosswalk :C_c0 is 16\.0 m, 14\.6 s"):
            rt.submit(ch.TimingChange(timing={"ped_clearance_s": 3}))
        with pytest.raises(ch.ChangeRefused, match=r"timing\.per_intersection\.C\.ped_clearance_s 10 s"):
            rt.submit(ch.SignalTimingChange(intersection_id="C", timing={"ped_clearance_s": 10}))
        rt.submit(ch.TimingChange(timing={"ped_clearance_s": 16}))  # longer than it needs: taken
    finally:
        rt.stop()
        rt.run()
