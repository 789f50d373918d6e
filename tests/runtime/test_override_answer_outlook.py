"""The answer to an override says what the shield will do with it, from the shield's state when it was applied:
when the phase is green and what holds it back (the green in force's minimum green and clearance, a clearance
under way to another phase), what ends a hold's green (maximum green, the cycle bound), and which override it
replaced. Its times are checked against the run's own event log (real SUMO, in-process, corridor).

Found in a trial: every override was answered "applied" with an empty reason, a hold asked before the minimum
green as much as one the maximum green would cut each minute, so "applied" read as "done now"."""

from __future__ import annotations

import threading
import time

import pytest

from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def _events(rt, tls: str) -> list:
    return [e for e in read_events(rt.run_dir / "events.csv") if e.device_id == tls]


def _first(events, code: EventCode, phase: int, after_s: float) -> float | None:
    return next((e.time_s for e in events if e.event_code == code and e.parameter == phase and e.time_s >= after_s),
                None)


def _clearance(sh) -> str:
    t, c = sh.inter.timing, sh.phase
    return f"yellow {t.yellow_of(c):g} s and all-red {t.all_red_of(c):g} s"


def test_an_override_answer_says_when_its_phase_is_green_and_what_ends_it(tmp_path):
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=150, in_process=True, state_every_s=60), tmp_path / "run")
    rt.open()
    t0, shields = rt.stepper.t, rt.stepper.shields
    # every signal has just opened its first green: any other phase waits for its minimum green
    j2, j4 = shields["J2"], shields["J4"]
    in_force_j2, min_j2 = j2.phase + 1, j2.inter.timing.min_green_s[j2.phase]
    clearance_j2 = _clearance(j2)
    held_j4 = j4.phase + 1
    max_j4 = j4.inter.timing.max_green_s[j4.phase]

    deferred = rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=60),
                         who="ops")
    long_hold = rt.submit(ch.OverrideChange(intersection_id="J4", action="hold", phase_number=held_j4,
                                            duration_s=600), who="ops")
    first = rt.submit(ch.OverrideChange(intersection_id="J3", action="hold", phase_number=2, duration_s=30),
                      who="ops")
    replacing = rt.submit(ch.OverrideChange(intersection_id="J3", action="hold", phase_number=3, duration_s=60),
                          who="ops")
    call = rt.submit(ch.OverrideChange(intersection_id="J1", action="call", phase_number=3, duration_s=60),
                     who="ops")
    rt.run()

    for answer in (deferred, long_hold, first, replacing, call):
        assert answer["result"] == "applied" and answer["reason"], answer  # the fields clients read, kept

    # a hold asked before the minimum green: deferred, said with the shield's own figures and the green's time
    assert deferred["reason"].startswith(
        f"deferred: phase {in_force_j2} minimum green ends at t={t0 + min_j2:.1f} s, then {clearance_j2}"), deferred
    green_at = deferred["shield"]["green_at_s"]
    assert deferred["shield"]["waits_for"] == "minimum green" and deferred["shield"]["green_at_exact"]
    assert f"phase 2 green at t={green_at:.1f} s" in deferred["reason"]
    assert green_at == _first(_events(rt, "J2"), EventCode.PHASE_BEGIN_GREEN, 2, t0), deferred

    # a hold longer than the maximum green: green now, cut at each max-out, and back after the other phase
    ends = long_hold["shield"]["green_ends_at_s"]
    assert long_hold["reason"].startswith(f"phase {held_j4} is green now (since t={t0:.1f} s)"), long_hold
    assert f"max green {max_j4:g} s ends each hold (first at t={ends:.1f} s)" in long_hold["reason"]
    assert long_hold["shield"]["green_ended_by"] == "max_green" and ends == t0 + max_j4
    j4_events = _events(rt, "J4")
    assert _first(j4_events, EventCode.PHASE_MAX_OUT, held_j4, t0) == ends
    assert _first(j4_events, EventCode.PHASE_BEGIN_GREEN, held_j4, ends) is not None  # the hold resumed

    # a hold that replaces another says which, and when that one was set
    assert replacing["reason"].endswith(f"replaces the hold of phase 2 set at t={t0:.1f} s (until t={t0 + 30:.1f} s)")
    assert replacing["shield"]["replaces"] == f"hold phase 2 until t={t0 + 30:.0f} s"
    assert "replaces" not in first["reason"]
    assert replacing["shield"]["green_at_s"] == _first(_events(rt, "J3"), EventCode.PHASE_BEGIN_GREEN, 3, t0)

    # a call: ends once its phase has been green, which the answer says when
    assert call["reason"].endswith("a call ends once phase 3 has been green"), call
    assert call["shield"]["green_at_s"] == _first(_events(rt, "J1"), EventCode.PHASE_BEGIN_GREEN, 3, t0)


@pytest.mark.slow
def test_an_override_during_a_clearance_to_another_phase_says_that_phase_comes_first(tmp_path):
    """Mid-run, through the loop's inbox as the API's route sends it: while a signal clears towards one phase, a
    hold of a third waits for that phase's minimum green and clearance."""
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=10, duration_s=240, state_every_s=60, in_process=True), tmp_path / "run")
    rt.open()
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    answer = None
    deadline = time.monotonic() + 60
    while answer is None and time.monotonic() < deadline:
        for tls in ("J1", "J3", "J5"):  # four phases: one neither in force nor next exists
            sh = rt.stepper.shields[tls]
            if sh.interval == "yellow" and sh.next_phase is not None:
                other = next(p for p in range(len(sh.inter.phases)) if p not in (sh.phase, sh.next_phase))
                got = rt.submit(ch.OverrideChange(intersection_id=tls, action="hold", phase_number=other + 1,
                                                  duration_s=120), who="ops")
                if got["shield"]["waits_for"] == "clearance":  # the loop took it still clearing
                    answer, signal_id, phase, applied_s = got, tls, other + 1, got["sim_time_s"]
                    break
                rt.submit(ch.CancelOverrideChange(intersection_id=tls), who="ops")
        time.sleep(0.01)
    while answer is not None and rt.stepper.t < answer["shield"]["green_at_s"] + 2 and loop.is_alive():
        time.sleep(0.05)  # until the green it announced is in the log
    rt.stop()
    loop.join(60)
    assert answer is not None, "no override landed during a clearance"
    assert answer["reason"].startswith("deferred: phase "), answer
    assert "which runs its minimum green and clearance first" in answer["reason"]
    green_at = answer["shield"]["green_at_s"]
    assert f"phase {phase} green at about t={green_at:.1f} s" in answer["reason"]
    assert green_at == _first(_events(rt, signal_id), EventCode.PHASE_BEGIN_GREEN, phase, applied_s), answer
