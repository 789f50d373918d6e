"""The independent safety checker: clean evidence passes, each broken rule is caught alone.

Evidence is built by hand: one device "A" with two phases and five links —
links 0, 1 (phase 1) and 2, 3 (phase 2) carry vehicles, link 4 is a crosswalk
served by phase 1. `build` turns a list of phase services into the event log
and the signal states a correct controller would leave; each test bends one
thing and expects exactly one rule to fire.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalwise.analytics.safety_audit import RULES, AuditInputError, audit, audit_run
from signalwise.core import SignalEvent, write_events

DEV = "A"
STEP = 1.0
Y, AR, WALK, CLEAR = 3.0, 2.0, 7.0, 8.0
MIN_GREEN = [15.0, 5.0]
MAX_GREEN = [40.0, 30.0]
CYCLE_MAX = 100.0
GREEN = {1: "GGrrG", 2: "rrGGr"}
ALL_RED = "rrrrr"
CROSSWALK = 4


def model(**timing) -> list[dict]:
    t = {"yellow_s": Y, "all_red_s": AR, "min_green_s": MIN_GREEN, "max_green_s": MAX_GREEN, "ped_walk_s": WALK,
         "ped_clearance_s": CLEAR, "cycle_min_s": 30.0, "cycle_max_s": CYCLE_MAX, **timing}
    return [{
        "id": DEV, "n_links": 5,
        "phases": [{"index": p - 1, "number": p, "green_state": s, "green_links": [i for i, c in enumerate(s) if c == "G"]}
                   for p, s in GREEN.items()],
        "links": [{"index": i, "in_lane": f"in{i}", "out_lane": f"out{i}", "crosswalk": i == CROSSWALK}
                  for i in range(5)],
        "crosswalks": [{"id": ":A_c0", "links": [CROSSWALK], "length_m": 8.0}],
        "timing": t,
    }]


@dataclasses.dataclass
class Service:
    """One green of `phase` and its clearance, as a correct controller would time it."""

    phase: int
    green_s: float
    walk: bool = False
    yellow_s: float = Y
    all_red_s: float = AR
    walk_s: float = WALK
    clear_s: float = CLEAR
    with_yellow: bool = True  # False: the log goes 1 -> 10 -> 11 (green ends without yellow)
    starts_early_s: float = 0.0  # the green begins this long before the previous red clearance ends


def build(services: list[Service], start_s: float = 0.0) -> tuple[list[SignalEvent], list[tuple[float, str, str]]]:
    events: list[tuple[float, int, int]] = []
    states: list[tuple[float, str, str]] = []
    t = start_s
    for s in services:
        t -= s.starts_early_s
        p, g = s.phase, GREEN[s.phase]
        events.append((t, 1, p))
        shown = g if s.walk else g[:CROSSWALK] + "r"
        states.append((t, DEV, shown))
        if s.walk:
            events += [(t, 21, p), (t + s.walk_s, 22, p), (t + s.walk_s + s.clear_s, 23, p)]
            states.append((t + s.walk_s, DEV, g[:CROSSWALK] + "r"))  # flashing don't walk shows as r
        end = t + s.green_s
        if s.with_yellow:
            events.append((end, 8, p))
            states.append((end, DEV, "".join("y" if c == "G" and i != CROSSWALK else "r" for i, c in enumerate(g))))
        events += [(end + s.yellow_s, 9, p)] if s.with_yellow else []
        events += [(end + s.yellow_s, 10, p), (end + s.yellow_s + s.all_red_s, 11, p)]
        states.append((end + s.yellow_s, DEV, ALL_RED))
        t = end + s.yellow_s + s.all_red_s
    # the order of a real file: by time, then device, then event code (not the logical order)
    return [SignalEvent(round(tt, 1), DEV, c, p) for tt, c, p in sorted(events)], states


CLEAN = [Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 20.0, walk=True), Service(2, 8.0),
         Service(1, 15.0)]


def fired(report) -> set[str]:
    return {v.rule for v in report.violations}


def run_audit(services=CLEAN, states_from=None, extra=(), drop=(), **timing):
    events, states = build(services)
    if states_from is not None:
        _, states = build(states_from)
    events = sorted([e for e in events if (e.event_code, e.parameter, e.time_s) not in drop] + list(extra),
                    key=lambda e: (e.time_s, e.event_code))
    return audit(events, model(**timing), states, STEP)


def ev(t: float, code: int, param: int) -> SignalEvent:
    return SignalEvent(t, DEV, code, param)


# ---------------------------------------------------------------------------
# Clean evidence
# ---------------------------------------------------------------------------


def test_clean_two_phase_cycle_passes_and_every_rule_was_exercised():
    report = run_audit()
    assert report.ok, [str(v) for v in report.violations]
    assert report.warnings == []
    for rule in RULES:
        # no preemption here, and every crosswalk is served by a phase (cycle_max holds it, not crosswalk_served:
        # tests/sim/test_pedestrian_phases.py has a crosswalk no phase serves)
        if rule not in ("preempt", "crosswalk_served", "protected_yellow"):
            assert report.checked[rule] > 0, rule
    assert report.checked["min_green"] == 5  # every completed green
    assert report.checked["yellow"] == 5 and report.checked["all_red"] == 5
    assert report.checked["ped"] == 2 and report.checked["crosswalk_green"] == 2
    assert report.as_dict()["ok"] is True and json.dumps(report.as_dict())


def test_clean_cycle_passes_whatever_the_row_order_inside_a_timestamp():
    events, states = build(CLEAN)
    for seed in range(20):
        rng = random.Random(seed)
        shuffled = sorted(events, key=lambda e: (e.time_s, rng.random()))
        report = audit(shuffled, model(), states, STEP)
        assert report.ok, (seed, [str(v) for v in report.violations])


def test_zero_all_red_lets_the_next_green_start_with_the_end_of_yellow():
    services = [dataclasses.replace(s, all_red_s=0.0) for s in CLEAN]
    report = run_audit(services, all_red_s=0.0)
    assert report.ok, [str(v) for v in report.violations]


# ---------------------------------------------------------------------------
# One broken rule at a time
# ---------------------------------------------------------------------------


def test_min_green():
    report = run_audit([Service(1, 15.0, walk=True), Service(2, 4.0), Service(1, 15.0)])
    assert fired(report) == {"min_green"}
    (v,) = report.violations
    assert (v.phase, v.time_s, v.measured_s, v.required_s) == (2, 20.0, 4.0, 5.0)


def test_max_green_allows_one_step_over_and_catches_more():
    assert run_audit([Service(1, 15.0), Service(2, 31.0), Service(1, 15.0)]).ok  # 30 s + one step
    report = run_audit([Service(1, 15.0), Service(2, 32.0), Service(1, 15.0)])
    assert fired(report) == {"max_green"}
    (v,) = report.violations
    assert (v.phase, v.measured_s, v.required_s) == (2, 32.0, 31.0)


def test_max_green_is_held_outside_a_preemption():
    # phase 2 green 20..65; the shield suspends max green during a preemption and restarts it after
    services = [Service(1, 15.0), Service(2, 45.0), Service(1, 15.0)]
    report = run_audit(services, extra=[ev(25.0, 102, 1), ev(60.0, 104, 1)])  # 5 s after it
    assert report.ok, [str(v) for v in report.violations]
    assert report.checked["max_green"] == 3 and report.checked["preempt"] == 1
    report = run_audit(services, extra=[ev(25.0, 102, 1), ev(30.0, 104, 1)])  # 35 s after it
    assert fired(report) == {"max_green"}
    (v,) = report.violations
    assert (v.phase, v.time_s, v.measured_s) == (2, 30.0, 35.0)
    # 35 s before it: a bound broken before the preemption came is not excused by it
    report = run_audit(services, extra=[ev(55.0, 102, 1), ev(56.0, 104, 1)])
    assert fired(report) == {"max_green"}
    assert [(v.phase, v.measured_s) for v in report.violations] == [(2, 35.0)]
    # a green preempted all the while it showed is exempt
    report = run_audit(services, extra=[ev(15.0, 102, 1), ev(70.0, 104, 1)])
    assert report.ok and report.exempted["max_green"] == 1
    # the same green without the preemption is a violation
    assert fired(run_audit(services)) == {"max_green"}


def test_yellow_short_in_the_log():
    # the log says phase 2's yellow lasted 2 s; SUMO showed a proper one (states from the clean timing)
    services = [Service(1, 15.0, walk=True), Service(2, 10.0, yellow_s=2.0), Service(1, 15.0)]
    report = run_audit(services, states_from=[Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 15.0)])
    assert fired(report) == {"yellow"}
    (v,) = report.violations
    assert (v.phase, v.time_s, v.measured_s, v.required_s) == (2, 30.0, 2.0, 3.0)


def test_all_red_short_in_the_log():
    events, states = build(CLEAN[:3])
    # phase 2's red clearance (10 at 33) logged as ending at 34 instead of 35
    events = [dataclasses.replace(e, time_s=34.0) if (e.event_code, e.parameter, e.time_s) == (11, 2, 35.0) else e
              for e in events]
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"all_red"}
    (v,) = report.violations
    assert (v.phase, v.measured_s, v.required_s) == (2, 1.0, 2.0)


def test_green_ending_without_yellow_breaks_the_sequence():
    # the log goes 1 -> 10 -> 11 for phase 2 (no 8, no 9); SUMO showed a proper yellow
    services = [Service(1, 15.0, walk=True), Service(2, 10.0, with_yellow=False), Service(1, 15.0)]
    report = run_audit(services, states_from=[Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 15.0)])
    assert fired(report) == {"sequence"}
    (v,) = report.violations
    assert v.phase == 2 and "without yellow" in v.detail


def test_green_restarted_without_yellow_breaks_the_sequence():
    report = run_audit(extra=[ev(25.0, 1, 2)])  # phase 2 green since 20 "begins" again
    assert fired(report) == {"sequence"}


def test_green_during_another_phases_red_clearance_conflicts():
    # the log starts phase 2 at 19, while phase 1 is in red clearance (10 at 18, 11 at 20)
    services = [Service(1, 15.0, walk=True), Service(2, 10.0, starts_early_s=1.0)]
    report = run_audit(services, states_from=[Service(1, 15.0, walk=True), Service(2, 10.0)])
    assert fired(report) == {"conflicting_green"}
    (v,) = report.violations
    assert v.phase == 2 and v.time_s == 19.0 and "phase 1 red clear" in v.detail


def test_ped_walk_too_short():
    report = run_audit([Service(1, 15.0, walk=True, walk_s=5.0), Service(2, 10.0)])
    assert fired(report) == {"ped"}
    (v,) = report.violations
    assert (v.measured_s, v.required_s) == (5.0, WALK)


def test_ped_clearance_too_short():
    report = run_audit([Service(1, 15.0, walk=True, clear_s=6.0), Service(2, 10.0)])
    assert fired(report) == {"ped"}
    (v,) = report.violations
    assert (v.measured_s, v.required_s) == (6.0, CLEAR)


def test_ped_clearance_still_running_at_yellow():
    report = run_audit([Service(1, 15.0, walk=True, clear_s=10.0), Service(2, 10.0)])
    assert fired(report) == {"ped"}
    (v,) = report.violations
    assert v.time_s == 15.0 and "still running" in v.detail


def test_ped_walk_while_the_phase_is_red():
    # phase 1 is red from 20 (its clearance ended) while phase 2 is green 20..30
    report = run_audit([Service(1, 15.0), Service(2, 30.0)], extra=[ev(22.0, 21, 1), ev(29.0, 22, 1), ev(37.0, 23, 1)])
    assert fired(report) == {"ped"}
    (v,) = report.violations
    assert v.time_s == 22.0 and "not green" in v.detail


LONG_CYCLE = [Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 40.0, walk=True), Service(2, 5.0)]


def test_cycle_max_between_greens():
    # phase 2 begins green at 20, next at 20 + 10 + 5 + 40 + 5 = 80: 60 s > 55 + one step;
    # phase 1 begins at 0 and 35 and is last seen at 90 (55 s): within the bound
    report = run_audit(LONG_CYCLE, cycle_max_s=55.0)
    assert fired(report) == {"cycle_max"}
    (v,) = report.violations
    assert (v.phase, v.time_s, v.measured_s, v.required_s) == (2, 80.0, 60.0, 56.0)
    assert run_audit(LONG_CYCLE, cycle_max_s=59.0).ok  # 60 s is within 59 s + one step


def test_cycle_max_phase_never_served():
    report = run_audit([Service(1, 40.0), Service(1, 40.0), Service(1, 40.0)])
    assert fired(report) == {"cycle_max"}
    assert {v.phase for v in report.violations} == {2}


def test_cycle_max_is_held_outside_a_preemption():
    # phase 2 begins green at 20 and 80: 60 s, over the 55 s bound, but a preemption 40..70 restarts it
    report = run_audit(LONG_CYCLE, extra=[ev(40.0, 102, 1), ev(70.0, 104, 1)], cycle_max_s=55.0)
    assert report.ok, [str(v) for v in report.violations]
    report = run_audit(LONG_CYCLE, extra=[ev(21.0, 102, 1), ev(22.0, 104, 1)], cycle_max_s=55.0)
    assert fired(report) == {"cycle_max"}  # 58 s from the preemption's end
    assert {(v.phase, v.measured_s) for v in report.violations} == {(2, 58.0)}
    report = run_audit(LONG_CYCLE, extra=[ev(78.0, 102, 1), ev(79.0, 104, 1)], cycle_max_s=55.0)
    assert fired(report) == {"cycle_max"}  # 58 s before it
    assert {(v.phase, v.measured_s) for v in report.violations} == {(2, 58.0)}
    # a window preempted from its start to its end is exempt
    report = run_audit(LONG_CYCLE, extra=[ev(15.0, 102, 1), ev(85.0, 104, 1)], cycle_max_s=55.0)
    assert report.ok and report.exempted["cycle_max"] >= 1


def test_unterminated_preempt_is_a_warning_not_a_violation():
    report = run_audit(extra=[ev(90.0, 102, 1), ev(90.0, 105, 1)])
    assert report.ok
    assert [w.rule for w in report.warnings] == ["preempt_unterminated"]


def test_preempt_call_off_without_call_on():
    report = run_audit(extra=[ev(50.0, 104, 1)])
    assert fired(report) == {"preempt"}


def test_link_yellow_short_on_the_street():
    services = [Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 15.0)]
    events, states = build(services)
    states = [(31.0, d, s) if (t, s) == (30.0, "rryyr") else (t, d, s) for t, d, s in states]  # yellow 31..33
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"link_yellow"}
    assert {(v.link, v.measured_s, v.required_s) for v in report.violations} == {(2, 2.0, Y), (3, 2.0, Y)}


def test_link_green_to_red_without_yellow():
    events, states = build(CLEAN[:3])
    states = [(t, d, s) for t, d, s in states if (t, s) != (30.0, "rryyr")]  # phase 2 links go G -> r at 33
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"link_yellow"}
    assert {(v.link, v.measured_s) for v in report.violations} == {(2, 0.0), (3, 0.0)}


def test_link_all_red_short_on_the_street():
    services = [Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 15.0)]
    events, states = build(services)
    # phase 2's yellow ends at 33; SUMO turned phase 1's links green at 34 (log: 35)
    states = [(34.0, d, s) if (t, s) == (35.0, GREEN[1][:4] + "r") else (t, d, s) for t, d, s in states]
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"link_all_red", "link_green"}  # the log's green begins at 35
    assert {(v.link, v.time_s, v.measured_s, v.required_s) for v in report.violations if v.rule == "link_all_red"} == {
        (0, 34.0, 1.0, AR), (1, 34.0, 1.0, AR)}


def test_link_green_while_another_still_shows_yellow():
    services = [Service(1, 15.0, walk=True), Service(2, 10.0), Service(1, 15.0)]
    events, states = build(services)
    # the log is honest; on the street phase 1's links turned green as phase 2's turned yellow (30), not at 35
    bent = {(30.0, "rryyr"): "GGyyr", (33.0, ALL_RED): "GGrrr"}
    states = [(t, d, bent.get((t, s), s)) for t, d, s in states]
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"link_all_red", "link_green"}  # the log's green begins at 35
    all_red = [v for v in report.violations if v.rule == "link_all_red"]
    assert {(v.link, v.time_s, v.measured_s, v.required_s) for v in all_red} == {(0, 30.0, 0.0, AR), (1, 30.0, 0.0, AR)}
    assert all("showed yellow" in v.detail for v in all_red)


def test_link_green_outside_every_phase_the_log_shows_green():
    # the log is honest; on the street phase 2's links showed green beside phase 1's from 10, then a proper yellow
    events, states = build(CLEAN[:2])
    states = sorted(states + [(10.0, DEV, "GGGGr"), (12.0, DEV, "GGyyr")])
    report = audit(events, model(), states, STEP)
    assert fired(report) == {"link_green"}
    assert {(v.link, v.time_s) for v in report.violations} == {(2, 10.0), (3, 10.0)}
    assert report.checked["link_green"] >= 4  # phase 1's and phase 2's own onsets are checked and pass


def test_crosswalk_green_without_walk():
    events, states = build(CLEAN[:2])
    states = [(10.0, d, s) if (t, s) == (WALK, GREEN[1][:4] + "r") else (t, d, s) for t, d, s in states]
    report = audit(events, model(), states, STEP)  # walk 0..7 in the log, crosswalk green 0..10
    assert fired(report) == {"crosswalk_green"}
    (v,) = report.violations
    assert (v.link, v.time_s, v.measured_s) == (CROSSWALK, WALK, 3.0)


# ---------------------------------------------------------------------------
# Run directories and the command
# ---------------------------------------------------------------------------


def write_run(path: Path, services=CLEAN, **timing) -> Path:
    events, states = build(services)
    path.mkdir(parents=True)
    write_events(path / "events.csv", events)
    (path / "signal_model.json").write_text(json.dumps(model(**timing)))
    (path / "signal_states.csv").write_text("time_s,device_id,state\n" + "".join(f"{t},{d},{s}\n" for t, d, s in states))
    (path / "run.json").write_text(json.dumps({"status": "complete", "step_length_s": STEP}))
    return path


def test_audit_run_reads_a_run_directory(tmp_path):
    report = audit_run(write_run(tmp_path / "clean"))
    assert report.ok and report.checked["min_green"] == 5
    bad = audit_run(write_run(tmp_path / "bad", [Service(1, 15.0), Service(2, 4.0), Service(1, 15.0)]))
    assert fired(bad) == {"min_green"}


def test_audit_run_says_what_is_missing(tmp_path):
    with pytest.raises(AuditInputError, match="no such run directory"):
        audit_run(tmp_path / "nope")
    run = write_run(tmp_path / "r")
    (run / "signal_states.csv").unlink()
    with pytest.raises(AuditInputError, match="missing signal_states.csv"):
        audit_run(run)
    run = write_run(tmp_path / "r2")
    (run / "run.json").write_text("{not json")
    with pytest.raises(AuditInputError, match="run.json"):
        audit_run(run)


def test_audit_command_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from signalwise.cli import app

    clean = write_run(tmp_path / "clean")
    bad = write_run(tmp_path / "bad", [Service(1, 15.0), Service(2, 4.0), Service(1, 15.0)])
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", str(clean)])
    assert ok.exit_code == 0, ok.output
    assert "min_green" in ok.output and "no violations" in ok.output
    found = runner.invoke(app, ["audit", str(clean), str(bad)])
    assert found.exit_code == 1
    assert "min_green: A t=20 phase 2 (4 s vs 5 s)" in found.output
    missing = runner.invoke(app, ["audit", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "no such run directory" in missing.output
    assert len([line for line in missing.output.splitlines() if "error" in line]) == 1


# ---------------------------------------------------------------------------
# A real simulation
# ---------------------------------------------------------------------------

SIGNALWISE = Path(sys.executable).with_name("signalwise")


def _how_to_run() -> str | None:
    if importlib.util.find_spec("signalwise.runtime.commands") is not None:
        return "cli"
    try:
        from signalwise.runtime.run import execute_run  # noqa: F401
    except ImportError:
        return None
    return "python"


def test_real_short_simulation_has_no_violations(tmp_path):
    how = _how_to_run()
    if how is None:
        pytest.skip("signalwise.runtime.run.execute_run does not exist yet: no real run to audit")
    out = tmp_path / "run"
    if how == "cli":
        cmd = [str(SIGNALWISE), "run", "--scenario", "single", "--controller", "max-pressure", "--duration", "600",
               "--out", str(out)]
    else:  # the run command has not landed yet; same run through the function it will call
        cmd = [sys.executable, "-c",
               "import sys; from pathlib import Path; from signalwise.runtime.run import execute_run;"
               "from signalwise.runtime.config import RunConfig;"
               "execute_run(RunConfig(scenario='single', controller='max-pressure', duration_s=600), Path(sys.argv[1]))",
               str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = out if (out / "events.csv").exists() else next(p.parent for p in out.rglob("events.csv"))
    report = audit_run(run_dir)
    assert report.ok, [str(v) for v in report.violations[:10]]
    model_ = json.loads((run_dir / "signal_model.json").read_text())
    applies = ["min_green", "max_green", "yellow", "all_red", "sequence", "conflicting_green", "cycle_max",
               "link_yellow", "link_all_red"]
    if any(d["crosswalks"] for d in model_):
        applies += ["ped", "crosswalk_green"]
    if ",102," in (run_dir / "events.csv").read_text():
        applies.append("preempt")
    for rule in applies:
        assert report.checked[rule] > 0, rule


def _states_as_dict_reader_reads_them(path: Path) -> list[tuple[float, str, str]]:
    """The reference reading of signal_states.csv: csv.DictReader, a dict per row."""
    import csv

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if {"time_s", "device_id", "state"} - set(reader.fieldnames or ()):
            raise AuditInputError("columns")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            try:
                rows.append((float(row["time_s"]), str(row["device_id"]), str(row["state"]).strip()))
            except (TypeError, ValueError):
                raise AuditInputError(f"{path}:{line_no}: bad signal state row {row!r}") from None
        return rows


@pytest.mark.parametrize("text", [
    "time_s,device_id,state\n1.0,A,GGrr\n2,B, rrGG \n",
    "state,time_s,device_id\nGG,3.5,Z\n",  # any column order
    "time_s,device_id,state\n\n1.0,A,GGrr\n\n2,B,rrGG\n",  # blank lines are no rows
    "time_s,device_id,state,state\n1.0,A,GG,rr\n",  # a name given twice: its last column
    "time_s,device_id,state\n1.0,A,GG,extra\n",  # an extra field is ignored
    "time_s,device_id,state\n1.0,A\n",  # a missing field reads as None
    "time_s,device_id,state\n1.0,A\nx,B,GG,more\n",  # a bad time: the row, as read, in the message
    "time_s,device_id,state\n1.0\n",
    "time_s,device_id,state\n\n1.0,A,GG\n\nx,B,GG\n",  # the row number in the message counts rows, not lines
])
def test_signal_states_are_read_as_csv_dict_reader_reads_them(tmp_path, text):
    from signalwise.analytics.safety_audit import read_signal_states

    path = tmp_path / "signal_states.csv"
    path.write_text(text)
    outcomes = []
    for read in (read_signal_states, _states_as_dict_reader_reads_them):
        try:
            outcomes.append(read(path))
        except AuditInputError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


# ---------------------------------------------------------------------------
# Each phase's own change interval
# ---------------------------------------------------------------------------

#: phase 1 ends with 3 s yellow and 2 s red clearance, phase 2 (a slower, longer crossing) with 4 s and 3 s
PER_PHASE = {"yellow_s": 4.0, "all_red_s": 3.0, "phase_yellow_s": [3.0, 4.0], "phase_all_red_s": [2.0, 3.0]}


def per_phase_services(**bend) -> list[Service]:
    """CLEAN with each phase ending with its own change interval; `bend` replaces fields of phase 2's services."""
    own = {1: (3.0, 2.0), 2: (4.0, 3.0)}
    return [dataclasses.replace(s, **{"yellow_s": own[s.phase][0], "all_red_s": own[s.phase][1],
                                      **(bend if s.phase == 2 else {})}) for s in CLEAN]


def test_each_phase_ending_with_its_own_change_interval_passes():
    report = run_audit(per_phase_services(), **PER_PHASE)
    assert report.ok, [str(v) for v in report.violations]
    assert report.checked["yellow"] == 5 and report.checked["link_all_red"] > 0


def test_a_phase_is_held_to_its_own_change_interval_not_the_shortest():
    """Phase 2 ending with phase 1's 3 s + 2 s breaks phase 2's own 4 s + 3 s, in the log and on its links."""
    report = run_audit(per_phase_services(yellow_s=3.0, all_red_s=2.0), **PER_PHASE)
    assert fired(report) == {"yellow", "all_red", "link_yellow", "link_all_red"}
    assert {(v.rule, v.required_s) for v in report.violations if v.rule in ("yellow", "all_red")} == {
        ("yellow", 4.0), ("all_red", 3.0)}
    assert {v.link for v in report.violations if v.rule == "link_yellow"} == {2, 3}  # phase 2's links


def test_a_model_without_per_phase_values_holds_every_phase_to_the_scalars():
    """Run directories written before phases had their own interval keep auditing as they did."""
    assert run_audit(per_phase_services(), yellow_s=3.0, all_red_s=2.0).ok
    report = run_audit(per_phase_services(), yellow_s=4.0, all_red_s=3.0)
    assert fired(report) >= {"yellow", "all_red"}
    assert {v.phase for v in report.violations if v.rule == "yellow"} == {1}


# ---------------------------------------------------------------------------
# cycle_calls: the cycle bound and the max-green timer run from calls (43)
# ---------------------------------------------------------------------------

PHASE_1_ONLY = [Service(1, 40.0), Service(1, 40.0), Service(1, 40.0)]


def test_cycle_calls_a_phase_nobody_called_is_not_owed_a_green():
    assert fired(run_audit(PHASE_1_ONLY)) == {"cycle_max"}  # the default bound: phase 2 is owed one
    report = run_audit(PHASE_1_ONLY, cycle_calls=True)
    assert report.ok, [str(v) for v in report.violations]


def test_cycle_calls_a_call_left_unanswered_past_the_bound_is_caught():
    report = run_audit(PHASE_1_ONLY, extra=[ev(10.0, 43, 2)], cycle_calls=True, cycle_max_s=55.0)
    assert fired(report) == {"cycle_max"}
    # one per link of phase 2 (links 2 and 3), still waiting when the log ends
    assert len(report.violations) == 2
    assert all(v.phase == 2 and "called" in v.detail and v.measured_s > 56.0 for v in report.violations)
    # answered in time: phase 2 green 45 s after the call
    served = [Service(1, 40.0), Service(2, 10.0), Service(1, 40.0)]
    assert run_audit(served, extra=[ev(10.0, 43, 2)], cycle_calls=True, cycle_max_s=55.0).ok


def test_cycle_calls_a_call_while_the_link_is_served_is_answered_by_that_green():
    # phase 1's links are green at 0..40; a 43 of phase 1 at 0 (the green's own start) owes nothing more
    assert run_audit(PHASE_1_ONLY, extra=[ev(0.0, 43, 1)], cycle_calls=True, cycle_max_s=55.0).ok


def test_cycle_calls_max_green_runs_from_the_first_conflicting_call():
    long_green = [Service(1, 60.0)]  # 20 s past phase 1's 40 s maximum
    assert fired(run_audit(long_green)) == {"max_green"}
    assert run_audit(long_green, cycle_calls=True).ok  # nobody else called: the green rests
    assert run_audit(long_green, extra=[ev(25.0, 43, 2)], cycle_calls=True).ok  # 35 s from the call
    report = run_audit(long_green, extra=[ev(10.0, 43, 2)], cycle_calls=True)
    assert fired(report) == {"max_green"}
    (v,) = report.violations
    assert (v.time_s, v.measured_s) == (10.0, 50.0)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(-5, 30) | st.just(10**6)), max_size=12),
       st.integers(-5, 100))
def test_a_links_greens_cover_an_instant_exactly_when_one_of_them_does(spans, t):
    """The audit asks, at each green onset, whether any green of a phase serving the link holds it: by a search
    over the greens merged, which must answer as asking each green in turn does."""
    from signalwise.analytics.safety_audit import _Cover

    intervals = sorted((float(a), float(a + length)) for a, length in spans)
    assert _Cover(intervals).covers(float(t)) == any(a <= t < b for a, b in intervals)
