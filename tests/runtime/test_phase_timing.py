"""Per-phase minimum and maximum green (`timing.per_intersection.<signal>.phases.<number>`), as a timing sheet
sets them: real SUMO runs on `single` (signal C, phases 1 and 3 serve crosswalks) and `corridor`, the event log
and the independent audit holding each phase to its own values; refusals of what the form cannot mean.

Found in a trial: a corridor retiming could set min/max green only per run or per signal, so the arterial through
phases ran the left turns' 5 s minimum and the left turns the throughs' 60 s maximum."""

from __future__ import annotations

import json
import shutil

import pytest

from signalwise.analytics.safety_audit import audit_run
from signalwise.control.base import ControllerUnavailable
from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.runtime.run import execute_run

#: signal C of `single`: phase 1 (a crosswalk phase: its minimum is raised to walk + pedestrian clearance),
#: phase 2 (a left turn) with its own maximum, phase 4 with its own minimum and maximum; phase 3 keeps the run's
PHASES = {1: {"min_green_s": 10, "max_green_s": 40}, 2: {"max_green_s": 12}, 4: {"min_green_s": 9, "max_green_s": 15}}


def _greens_s(events, device: str) -> dict[int, list[float]]:
    """Each phase's greens (begin green 1 to begin yellow 8), s."""
    out: dict[int, list[float]] = {}
    opened: dict[int, float] = {}
    for e in events:
        if e.device_id != device:
            continue
        if e.event_code == EventCode.PHASE_BEGIN_GREEN:
            opened[e.parameter] = e.time_s
        elif e.event_code == EventCode.PHASE_BEGIN_YELLOW and e.parameter in opened:
            out.setdefault(e.parameter, []).append(e.time_s - opened.pop(e.parameter))
    return out


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory):
    cfg = RunConfig(scenario="single", controller="actuated", duration_s=600,
                    out_dir=tmp_path_factory.mktemp("phase_timing"),
                    timing={"per_intersection": {"C": {"phases": PHASES}}})
    return execute_run(cfg).run_dir


def test_each_phase_runs_its_own_minimum_and_maximum_green_and_the_audit_finds_no_violation(phase_run):
    model = json.loads((phase_run / "signal_model.json").read_text())[0]
    # phase 1's own 10 s is raised to its walk + pedestrian clearance (7 s + 15 s shown), as a signal's is
    assert model["timing"]["min_green_s"] == [22, 5, 22, 9]
    assert model["timing"]["max_green_s"] == [40.0, 12.0, 60.0, 15.0]
    greens = _greens_s(read_events(phase_run / "events.csv"), "C")
    assert min(greens[1]) >= 22.0 and max(greens[1]) <= 40.0, greens[1]
    assert max(greens[2]) <= 12.0, greens[2]
    assert min(greens[4]) >= 9.0 and max(greens[4]) <= 15.0, greens[4]
    assert max(greens[3]) > 40.0, greens[3]  # phase 3 keeps the run's 60 s: each phase has its own
    events = list(read_events(phase_run / "events.csv"))
    max_outs = {e.parameter for e in events if e.event_code == EventCode.PHASE_MAX_OUT}
    assert {2, 4} <= max_outs, max_outs  # the phases' own maximums end their greens
    report = audit_run(phase_run)
    assert report.ok and report.checked["min_green"] > 0 and report.checked["max_green"] > 0, [
        str(v) for v in report.violations[:3]]


def test_the_audit_holds_each_phase_to_its_own_values_in_signal_model_json(phase_run, tmp_path):
    """The audit reads each phase's own maximum from signal_model.json: the same run, its model saying phase 4's
    maximum is 12 s, has phase 4's 15 s greens found too long, and no other phase's."""
    copy = tmp_path / "run"
    shutil.copytree(phase_run, copy)
    model = json.loads((copy / "signal_model.json").read_text())
    model[0]["timing"]["max_green_s"][3] = 12.0
    (copy / "signal_model.json").write_text(json.dumps(model))
    report = audit_run(copy)
    too_long = [v for v in report.violations if v.rule == "max_green"]
    assert too_long and {v.phase for v in too_long} == {4}, [str(v) for v in report.violations[:3]]


def test_a_phase_the_signal_does_not_have_refuses_the_run_listing_its_phases(tmp_path):
    from signalwise.sim.signal_model import UnknownPhaseTiming

    cfg = RunConfig(scenario="single", controller="fixed", duration_s=60, out_dir=tmp_path,
                    timing={"per_intersection": {"C": {"phases": {5: {"max_green_s": 30}}}}})
    with pytest.raises(UnknownPhaseTiming, match=r"timing\.per_intersection\.C\.phases names phase 5, which signal "
                                                 r"'C' does not have: it has phases 1\.\.4 \(1: from .*; 4: from "):
        execute_run(cfg)


def test_a_passage_for_a_phase_the_signal_does_not_have_refuses_the_run(tmp_path):
    cfg = RunConfig(scenario="single", controller="actuated", duration_s=60, out_dir=tmp_path,
                    controller_options={"passage_s": {"C": {2: 2.0, 6: 4.0}}})
    with pytest.raises(ControllerUnavailable, match=r"passage_s\.C names phase 6, which signal 'C' does not have"):
        execute_run(cfg)


def test_a_passage_for_a_signal_the_network_does_not_have_refuses_the_run(tmp_path):
    """Each controller sees its own signal only, so a mistyped signal in the mapping went unsaid: its phases ran
    the default passage."""
    from signalwise.sim.backend import SimulationError

    cfg = RunConfig(scenario="single", controller="actuated", duration_s=60, out_dir=tmp_path,
                    controller_options={"passage_s": {"default": 3.0, "c": 5.0}})
    with pytest.raises(SimulationError, match=r"controller_options\.passage_s names c, not a traffic light of this "
                                              r"network \(its traffic lights: C\)"):
        execute_run(cfg)


@pytest.mark.parametrize(("phases", "said"), [
    ({2: {"passage_s": 4}}, "invalid timing.per_intersection.J1.phases.2: unknown phase timing key(s) passage_s "
                            "(a phase takes min_green_s, max_green_s; the signal's other keys are set beside its "
                            "phases); the actuated controller's passage is controller_options.passage_s"),
    ({2: {"yellow_s": 4}}, "invalid timing.per_intersection.J1.phases.2: unknown phase timing key(s) yellow_s"),
    ({"left": {"max_green_s": 20}}, "invalid timing.per_intersection.J1.phases.left: 'left' is not a phase number: "
                                    "a phase is named by its number, 1 for the first"),
    ({0: {"max_green_s": 20}}, "invalid timing.per_intersection.J1.phases.0: 0 is not a phase number"),
    ({2: {"max_green_s": "long"}}, "invalid timing.per_intersection.J1.phases.2.max_green_s: Input should be a "
                                   "valid number"),
    ({2: {"max_green_s": 400}}, "invalid timing: per_intersection.J1.phases.2: max_green_s (400) must be at most 300 "
                                "under the safety profile"),
    ({2: {"min_green_s": 30, "max_green_s": 20}}, "invalid timing: per_intersection.J1.phases.2: min_green_s (30) "
                                                  "exceeds max_green_s (20)"),
    ({2: {"min_green_s": 1}}, "invalid timing: per_intersection.J1.phases.2.min_green_s: Input should be greater "
                              "than or equal to 2"),
])
def test_a_phase_form_the_configuration_cannot_mean_is_refused_where_it_is(phases, said):
    from pydantic import ValidationError

    from signalwise.runtime.commands import config_problem

    with pytest.raises(ValidationError) as exc:
        RunConfig(timing={"per_intersection": {"J1": {"max_green_s": 50, "phases": phases}}})
    assert config_problem(exc.value).startswith(said), config_problem(exc.value)


def test_a_phase_min_green_above_the_signals_max_green_is_refused_and_its_own_max_allows_it():
    with pytest.raises(ValueError, match=r"per_intersection\.J1\.phases\.1: min_green_s \(55\) exceeds max_green_s "
                                         r"\(50\)"):
        RunConfig(timing={"per_intersection": {"J1": {"max_green_s": 50, "phases": {1: {"min_green_s": 55}}}}})
    cfg = RunConfig(timing={"per_intersection": {"J1": {"max_green_s": 50,
                                                        "phases": {1: {"min_green_s": 55, "max_green_s": 70}}}}})
    # written into a run directory as JSON (phase numbers as text) and read back the same
    assert RunConfig.model_validate_json(cfg.model_dump_json()).timing == cfg.timing
    assert cfg.timing.per_intersection["J1"]["phases"] == {1: {"min_green_s": 55.0, "max_green_s": 70.0}}


def test_a_live_change_of_a_phases_own_maximum_is_taken_and_a_phase_it_lacks_is_refused(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=360, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    with pytest.raises(ch.ChangeRefused, match=r"timing\.per_intersection\.J1\.phases names phase 7, which signal "
                                               r"'J1' does not have: it has phases 1\.\.4"):
        rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"phases": {7: {"max_green_s": 20}}}), who="ops")
    with pytest.raises(ch.ChangeRefused, match=r"per_intersection\.J1\.phases\.1: max_green_s \(400\) must be at "
                                               r"most 300 under the safety profile: 300 s is the safety profile's"):
        rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"phases": {1: {"max_green_s": 400}}}), who="ops")
    with pytest.raises(ch.ChangeRefused, match=r"passage_s\.J2 names phase 9, which signal 'J2' does not have"):
        rt.submit(ch.ControllerChange(controller="actuated", controller_options={"passage_s": {"J2": {9: 2.0}}}),
                  who="ops")
    answer = rt.submit(ch.SignalTimingChange(intersection_id="J1", timing={"phases": {"1": {"max_green_s": 15},
                                                                                        "2": {"min_green_s": 8}}}),
                       who="ops")
    assert answer["result"] == "applied", answer
    rt.run()
    model = {d["id"]: d for d in json.loads((rt.run_dir / "signal_model.json").read_text())}
    revision = model["J1"]["timing_revisions"][-1]
    assert revision["max_green_s"][0] == 15.0 and revision["min_green_s"][1] == 8
    events = list(read_events(rt.run_dir / "events.csv"))
    taken_s = next(e.time_s for e in events if e.device_id == "J1" and e.event_code == EventCode.TIMING_PLAN_CHANGE)
    after = [e for e in events if e.time_s >= taken_s]
    greens = _greens_s(after, "J1")
    assert greens[1] and max(greens[1]) <= 15.0 and greens[2] and min(greens[2]) >= 8.0, greens
    report = audit_run(rt.run_dir)
    assert report.ok, [str(v) for v in report.violations[:3]]


def test_a_phases_own_passage_holds_its_green_that_long_after_its_advance_loop_and_the_others_keep_theirs(
        tmp_path):
    """`controller_options.passage_s: {J1: {1: 5}}` on `corridor`: every gap-out (4) of J1's phase 1 comes at least
    5 s after a vehicle last left one of its advance loops (81 on its `Advance` channels in detectors.csv), while
    J1's phase 3 keeps the 3 s default and gaps out sooner after its own."""
    import csv

    cfg = RunConfig(scenario="corridor", controller="actuated", duration_s=900, out_dir=tmp_path,
                    controller_options={"passage_s": {"J1": {1: 5.0}}})
    run_dir = execute_run(cfg).run_dir
    with open(run_dir / "detectors.csv", newline="") as fh:
        advance = {int(r["Parameter"]): int(r["Phase"]) for r in csv.DictReader(fh)
                   if r["DeviceId"] == "J1" and r["Function"] == "Advance"}
    last_off: dict[int, float] = {}
    after_s: dict[int, list[float]] = {}
    for e in read_events(run_dir / "events.csv"):
        if e.device_id != "J1":
            continue
        if e.event_code == EventCode.DETECTOR_OFF and e.parameter in advance:
            last_off[advance[e.parameter]] = e.time_s
        elif e.event_code == EventCode.PHASE_GAP_OUT and e.parameter in last_off:
            after_s.setdefault(e.parameter, []).append(e.time_s - last_off[e.parameter])
    assert len(after_s[1]) >= 5 and min(after_s[1]) >= 5.0 - 1e-6, after_s[1]
    assert min(after_s[3]) < 5.0, after_s[3]
    assert audit_run(run_dir).ok
