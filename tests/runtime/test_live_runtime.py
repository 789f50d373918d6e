"""The live runtime on real SUMO (in-process here, for speed): recovery, changes, snapshots, pacing.

The worker-process field and `signalwise live` end to end are tested in
`test_live_command.py`; here only what the runtime registers with a worker
(the lanes of zoned controllers).
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import threading
import time

import pytest
from support.crashes import crash_at

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def _runtime(tmp_path, name="live", scenario="corridor", controller="max-pressure", interval_s=60.0,
             **opts) -> LiveRuntime:
    defaults = {"speed": None, "duration_s": 600, "in_process": True, "state_every_s": 60}
    rt = LiveRuntime(RunConfig(scenario=scenario, controller=controller, interval_s=interval_s),
                     LiveOptions(**{**defaults, **opts}), tmp_path / name)
    rt.open()
    return rt


def test_a_simulator_crash_is_recovered_nothing_logged_is_lost_and_the_audit_passes(tmp_path):
    calm = _runtime(tmp_path, "calm", duration_s=300)  # compared up to the first crash (250 s) only
    calm.run()
    rt = _runtime(tmp_path, "crashing", duration_s=900)
    crash_at(rt, [250.0, 500.0, 700.0])
    rt.run()
    assert rt.restarts == 3 and rt.status()["status"] == "complete"
    assert [r["crashed_at_s"] for r in rt.recoveries] == [250.0, 500.0, 700.0]
    assert all(0 < r["rewound_s"] <= 60 for r in rt.recoveries)

    events = list(read_events(rt.run_dir / "events.csv"))
    markers = [i for i, e in enumerate(events) if e.event_code == EventCode.RUNTIME_RECOVERY]
    assert len({events[i].time_s for i in markers}) == 3
    # every event logged before the first crash is in the log, exactly as a run without a crash logged it
    before = events[:markers[0]]
    assert 240.0 < before[-1].time_s <= 250.0  # up to the last tick before the crash
    calm_events = list(read_events(calm.run_dir / "events.csv"))
    assert sorted(e for e in before if e.time_s < 250.0) == sorted(e for e in calm_events if e.time_s < 250.0)
    # what the crashed step saw (detector events stamped 250.0) is logged after the recovery, not lost
    at_crash = [e for e in calm_events if e.time_s == 250.0 and e not in before]
    assert all(e in events[markers[0]:] for e in at_crash)
    report = audit_run(rt.run_dir)
    assert report.ok, [str(v) for v in report.violations[:5]]
    (recovery,) = [w for w in report.warnings if w.rule == "recovery"]
    assert recovery.time_s == events[markers[0]].time_s > 0  # when the first crash's recovery came, not t=0


def test_a_worker_field_returns_the_zone_lanes_of_zoned_max_pressure_with_every_step(tmp_path):
    """ingolstadt7's short entries are measured with the lanes behind them (max-pressure's zones). The
    runtime registers those lanes with the worker, so a tick that decides is still one exchange, and the
    signals do what they do with SUMO in-process."""
    if importlib.util.find_spec("sumo_rl") is None:  # importing it would need SUMO_HOME; finding it does not
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")

    def run(name, in_process):
        """The first 30 steps one at a time (the field's exchanges for each), then the runtime's own loop."""
        rt = _runtime(tmp_path, name, scenario="resco:ingolstadt7", duration_s=120, in_process=in_process)
        st, field = rt.stepper, rt.field.backend
        assert all(getattr(c, "zone_lane_ids", ()) for c in st.controllers.values())  # every signal has a zone
        per_step = []
        for _ in range(30):
            before = getattr(field, "exchanges", 0)
            st.step()
            per_step.append(getattr(field, "exchanges", 0) - before)
        assert rt.profiler.figures()["decide"]["count"] >= len(st.controllers)  # every controller decided
        rt.run()
        return per_step, rt.run_dir

    _, here = run("here", in_process=True)
    per_step, there = run("there", in_process=False)
    assert per_step == [1] * 30
    for name in ("events.csv", "signal_states.csv"):
        assert (there / name).read_text() == (here / name).read_text()


def test_a_zoned_controller_deployed_at_run_time_reads_its_zones_from_the_per_step_exchange(tmp_path):
    """Fixed time reads no lanes; switched at run time to max-pressure, whose zones on ingolstadt7 reach the
    lanes behind its short entries. Once every signal has taken it over, a tick in which signals decide is
    still one exchange with the worker: the runtime registered the new zone lanes, so they come back with
    the step instead of in a request per decision. The runtime's own loop runs; no interval, state save or
    plan cycle falls in the run (each is a request of its own)."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    rt = _runtime(tmp_path, scenario="resco:ingolstadt7", controller="fixed", duration_s=120, in_process=False,
                  interval_s=3600.0, state_every_s=3600.0, plan_every_s=3600.0)
    st, field = rt.stepper, rt.field.backend
    assert not any(getattr(c, "zone_lane_ids", ()) for c in st.controllers.values())
    ticks = []  # at each step: the exchanges so far, the decisions so far, whether max-pressure runs everywhere
    step = field.step

    def counted_step():
        ticks.append((field.exchanges, rt.profiler.figures()["decide"]["count"],
                      all(c.name == "max-pressure" for c in st.controllers.values())))
        return step()
    field.step = counted_step
    rt.submit(ch.ControllerChange(controller="max-pressure"), who="ops")  # taken at each signal's next green
    rt.run()
    assert rt.status()["status"] == "complete"
    assert all(c.zone_lane_ids for c in st.controllers.values())  # every signal reads lanes besides its own
    after = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(ticks) if a[2]]  # (exchanges, decisions)
    assert len(after) > 60 and sum(decisions for _, decisions in after) >= len(st.controllers)
    assert [exchanges for exchanges, _ in after] == [1] * len(after)



def _exchanges_per_tick(rt) -> list[tuple[int, bool]]:
    """Wraps the worker field's step: for each tick, (its exchanges, whether every signal ran max-pressure
    itself, no override and no controller waiting to take over, when it began). Filled as the runtime runs."""
    field, st, ticks = rt.field.backend, rt.stepper, []
    step = field.step

    def counted_step():
        ticks.append((field.exchanges, not rt.overrides and not rt._pending_controllers
                      and all(c.name == "max-pressure" for c in st.controllers.values())))
        return step()
    field.step = counted_step
    return ticks


def test_a_redeployed_controller_reading_the_same_lanes_costs_no_extra_exchange(tmp_path):
    """Max-pressure deployed again over itself reads the same zone lanes: the runtime does not register them
    again (that resets the worker's per-step cache and costs an exchange), so every tick stays one."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    rt = _runtime(tmp_path, scenario="resco:ingolstadt7", controller="max-pressure", duration_s=90,
                  in_process=False, interval_s=3600.0, state_every_s=3600.0, plan_every_s=3600.0)
    ticks = _exchanges_per_tick(rt)
    before = rt.stepper.controllers.copy()
    rt.submit(ch.ControllerChange(controller="max-pressure"), who="ops")
    rt.run()
    assert rt.status()["status"] == "complete"
    assert all(rt.stepper.controllers[tls] is not c for tls, c in before.items())  # every signal took it over
    per_tick = [b[0] - a[0] for a, b in itertools.pairwise(ticks)]
    assert len(per_tick) > 60 and per_tick == [1] * len(per_tick)


def test_zoned_max_pressure_back_from_an_override_reads_its_zones_from_the_per_step_exchange(tmp_path):
    """An override reads no lanes; when it expires, max-pressure takes the signal back at its next green and
    its zone lanes are registered again, so a tick stays one exchange with the worker."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    rt = _runtime(tmp_path, scenario="resco:ingolstadt7", controller="max-pressure", duration_s=150,
                  in_process=False, interval_s=3600.0, state_every_s=3600.0, plan_every_s=3600.0)
    tls = next(t for t, c in rt.stepper.controllers.items() if c.zone_lane_ids)
    ticks = _exchanges_per_tick(rt)
    rt.submit(ch.OverrideChange(intersection_id=tls, action="hold", phase_number=1, duration_s=30), who="ops")
    rt.run()
    kinds = [c["kind"] for c in rt.changes]
    assert "override" in kinds and "override_expired" in kinds
    assert rt.stepper.controllers[tls].name == "max-pressure" and rt.stepper.controllers[tls].zone_lane_ids
    back = [b[0] - a[0] for a, b in itertools.pairwise(ticks) if a[1]]
    assert len(back) > 60 and back == [1] * len(back)

def test_the_audit_still_catches_a_violation_after_a_recovery(tmp_path):
    rt = _runtime(tmp_path, duration_s=600)
    crash_at(rt, [250.0])
    rt.run()
    rows = list(csv.reader(open(rt.run_dir / "signal_states.csv")))
    # tamper after the marker: one signal shows all green at once, from one of its changes until its next
    last_marker = max(i for i, r in enumerate(rows) if r[2] == "RECOVERY")
    j1 = [i for i in range(last_marker + 1, len(rows)) if rows[i][1] == "J1"]
    at = next(i for i, nxt in itertools.pairwise(j1) if float(rows[nxt][0]) > float(rows[i][0]) + 1.0)
    tampered = rows[:at + 1] + [[rows[at][0], "J1", "G" * len(rows[at][2])]] + rows[at + 1:]
    with open(rt.run_dir / "signal_states.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(tampered)
    assert not audit_run(rt.run_dir).ok


def test_an_override_holds_through_the_shield_then_expires(tmp_path):
    rt = _runtime(tmp_path, duration_s=400)
    phases = len(rt.stepper.by_id["J2"].phases)
    with pytest.raises(ch.ChangeRefused, match="unknown intersection 'Jx'"):
        rt.submit(ch.OverrideChange(intersection_id="Jx", action="hold", phase_number=1, duration_s=30))
    with pytest.raises(ch.ChangeRefused, match=f"has phases 1..{phases}, not 9"):
        rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=9, duration_s=30))
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=200), who="ops")
    rt.run()
    events = [e for e in read_events(rt.run_dir / "events.csv") if e.device_id == "J2"]
    greens = [(e.time_s, e.parameter) for e in events if e.event_code == EventCode.PHASE_BEGIN_GREEN]
    held = [g for g in greens if 0 < g[0] < 200]
    assert held and held[0][1] == 2  # phase 2 taken once the shield allowed it
    # the shield still maxes the hold out: phase 2 never green longer than its maximum
    timing = rt.stepper.by_id["J2"].timing
    for e in events:
        if e.event_code == EventCode.PHASE_BEGIN_YELLOW and e.parameter == 2:
            start = max(t for t, p in greens if p == 2 and t <= e.time_s)
            assert e.time_s - start <= timing.max_green_s[1] + 1
    kinds = [(c["who"], c["kind"]) for c in rt.changes]
    assert ("ops", "override") in kinds and ("runtime", "override_expired") in kinds
    assert audit_run(rt.run_dir).ok


def test_pacing_holds_the_wall_clock(tmp_path):
    rt = _runtime(tmp_path, speed=20.0, duration_s=40)
    t0 = time.monotonic()
    rt.run()
    wall = time.monotonic() - t0
    assert wall >= 40 / 20 * 0.95
    assert rt.profiler.figures()["lateness"]["count"] == 40


def test_a_timing_change_is_validated_and_taken_at_the_next_green(tmp_path):
    rt = _runtime(tmp_path, duration_s=300)
    with pytest.raises(ch.ChangeRefused, match="min_green_s"):
        rt.submit(ch.TimingChange(timing={"min_green_s": 30, "max_green_s": 20}))
    rt.submit(ch.TimingChange(timing={"min_green_s": 12}))
    rt.run()
    assert all(min(sh.inter.timing.min_green_s) >= 12 for sh in rt.stepper.shields.values())
    assert audit_run(rt.run_dir).ok


def test_live_records_are_valid_store_records_and_feed_live_metrics(tmp_path):
    import json

    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine, ingest_records
    from signalwise.store.schemas import RecordList

    rt = _runtime(tmp_path, duration_s=300)
    rt.run()
    rows = [json.loads(line) for line in open(rt.run_dir / "records.jsonl")]
    assert len(rows) == 5 * 5  # 5 signals x 5 one-minute intervals
    RecordList.validate_python(rows)  # the ingestion format, exactly
    crossed = sum(s["vehicles_crossed"] for r in rows for s in r["signals"])
    events = list(read_events(rt.run_dir / "events.csv"))
    stopbar = {(i.id, d.channel) for i in rt.stepper.intersections for d in i.detectors if d.kind == "stopbar"}
    offs = sum(1 for e in events if e.event_code == EventCode.DETECTOR_OFF and (e.device_id, e.parameter) in stopbar)
    # every stop-bar off event ends at least one vehicle's passage (a zone's queue goes off once, after its last)
    assert crossed > 50 and 0 < offs <= crossed
    assert all(sum(s["green_time_allocated"] > 0 for s in r["signals"]) for r in rows)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    ingest_records(get_engine(url), rows)
    client = TestClient(create_app(Settings(database_url=url, cache_ttl_s=0)))
    body = client.get("/api/v1/dashboard/live-metrics", params={"simulation_id": rt.run_dir.name}).json()
    assert body["simulation_id"] == rt.run_dir.name


def test_every_signal_change_is_published_and_snapshots_thin_out_under_pressure(tmp_path):
    sent = []
    rt = _runtime(tmp_path, duration_s=300)
    rt.publish = lambda topic, payload: sent.append((topic, payload))
    rt.run()
    signals = [(p["sim_time_s"], p["intersection_id"], p["state"]) for t, p in sent if t == "signal"]
    rows = [(float(r[0]), r[1], r[2]) for r in list(csv.reader(open(rt.run_dir / "signal_states.csv")))[1:]]
    assert signals == [r for r in rows if r[0] > rows[0][0]]  # every change after the first states, in order
    # pressure: ticks starting late (lateness above half a slot) double the snapshot interval, up to 4 s
    rt.opts.speed, rt.opts.snapshot_hz = 1.0, 4.0
    for _ in range(3):
        rt.profiler.add("lateness", 0.9)
        slow = rt._snapshot_every_s()
    assert slow == 2.0
    rt.profiler.add("lateness", 0.0)
    assert rt._snapshot_every_s() == 1.0 and rt._snapshot_every_s() == 0.5 and rt._snapshot_every_s() == 0.25


@pytest.mark.slow
def test_snapshots_of_100_signals_at_full_speed_are_never_torn(tmp_path):
    # a simulated minute: every one of the 100 signals goes from green through yellow in it (so measured), while
    # two readers take snapshot after snapshot
    rt = _runtime(tmp_path, scenario="grid10x10", duration_s=60)
    rt.opts.snapshot_hz = 1e9
    problems, seen, yellow_seen = [], set(), set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            snap = rt.snapshot
            yellow_seen.update(s.intersection_id for s in snap.signals if s.interval == "yellow")
            for s in snap.signals:  # a phase and its timers come from the same tick
                phase = rt.stepper.by_id[s.intersection_id].phases[s.phase_number - 1]
                if s.interval == "green" and not {i for i, c in enumerate(s.state) if c in "Gg"} <= phase.green_links:
                    problems.append(("green state of another phase", snap.seq, s.intersection_id))
                if s.interval == "yellow" and "y" not in s.state:
                    problems.append(("yellow without yellow links", snap.seq, s.intersection_id))
                if s.elapsed_s < 0 or (s.interval == "green") != (s.next_phase_number is None):
                    problems.append(("timers disagree with the interval", snap.seq, s.intersection_id))
            seen.add(snap.seq)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    rt.run()
    stop.set()
    for th in threads:
        th.join()
    assert len(rt.snapshot.signals) == 100 and not problems and len(seen) > 20
    # the yellow check above checked something: the readers saw signals in their yellow
    assert len(yellow_seen) >= 10, len(yellow_seen)


def test_lasting_changes_survive_a_restart_and_overrides_do_not(tmp_path):
    first = _runtime(tmp_path, "first", duration_s=60)
    first.submit(ch.TimingChange(timing={"min_green_s": 12}), who="ops")
    first.submit(ch.ControllerChange(controller="fixed"), who="ops")
    first.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=600), who="ops")
    first.run()
    second = _runtime(tmp_path, "second", duration_s=60)  # a new runtime of the same corridor
    assert second.cfg.timing.min_green_s == 12 and second.controller_spec == "fixed"
    assert not second.overrides
    replayed = [c for c in second.changes if c.get("replayed")]
    # applied by this runtime at start; made by ops, at the time ops made it (not now, as if ops had acted again)
    made = {c["kind"]: c["at"] for c in first.changes if c["result"] == "applied"}
    assert [(c["kind"], c["who"], c["made_by"]) for c in replayed] == [("timing", "restart", "ops"),
                                                                     ("controller", "restart", "ops")]
    assert [c["made_at"] for c in replayed] == [made["timing"], made["controller"]]
    from signalwise.api.live_command import _replayed_lines

    said = _replayed_lines(second)  # what `signalwise live` prints after its banner
    assert "2 lasting change(s) of earlier runs" in said[0] and str(second.site_changes_file) in said[0]
    assert 'timing {"timing": {"min_green_s": 12}} by ops' in said[1] and said[-1] == "  controller now: fixed"
    second.run()
    assert all(c.name == "fixed" for c in second.stepper.controllers.values())


def test_one_signals_timing_changes_survive_a_restart_in_order_whatever_revision_they_were_made_from(tmp_path):
    """One signal's change is lasting as a whole change is: a new runtime of the corridor applies each again, in
    order (J1's own values removed after J2's were set: J2's alone remain). The revision a change was made from is
    checked when it is made, not at a replay, whose revisions count from the new runtime's start."""
    first = _runtime(tmp_path, "first", duration_s=60)
    first.submit(ch.SignalTimingChange(intersection_id="J1", timing={"all_red_s": 3}, based_on_revision=0), who="a")
    first.submit(ch.SignalTimingChange(intersection_id="J2", timing={"min_green_s": 8}, based_on_revision=0), who="b")
    with pytest.raises(ch.StaleTimingRevision, match="J1's own timing was changed at revision 1") as stale:
        first.submit(ch.SignalTimingChange(intersection_id="J1", timing={"all_red_s": 4}, based_on_revision=0))
    assert stale.value.revision == 2
    first.submit(ch.SignalTimingChange(intersection_id="J1", timing=None, based_on_revision=2), who="a")
    assert first.timing_in_force()[0] == 3
    assert first.cfg.timing.per_intersection == {"J2": {"min_green_s": 8.0}}
    first.run()
    second = _runtime(tmp_path, "second", duration_s=60)
    assert second.cfg.timing.per_intersection == {"J2": {"min_green_s": 8.0}}
    assert [(c["kind"], c["made_by"]) for c in second.changes if c.get("replayed")] == [
        ("signal_timing", "a"), ("signal_timing", "b"), ("signal_timing", "a")]
    assert second.timing_in_force()[0] == 3
    second.run()
    assert audit_run(second.run_dir).ok


def test_snapshots_keep_their_rate_on_coarse_ticks():
    from signalwise.runtime.live.runtime import next_snapshot_due

    def published(tick_s: float, every_s: float, seconds: float) -> int:
        due, n = 0.0, 0
        for k in range(round(seconds / tick_s)):
            wall = k * tick_s
            if wall >= due - 1e-9:
                n += 1
                due = next_snapshot_due(due, wall, every_s)
        return n

    assert published(0.2, 0.5, 30.0) == 60  # 2 Hz on ticks 0.2 s apart (--speed 5): 2 Hz, not 1.7 Hz
    assert published(0.1, 0.25, 10.0) == 40
    # a loop a whole gap late does not catch up in a burst: the next one is a full gap later
    assert next_snapshot_due(1.0, 3.0, 0.5) == 3.5


def test_alert_rules_on_a_figure_the_run_does_not_report_are_applied_and_named(tmp_path):
    """A typo in a rule's figure would wait silently for ever: it is refused, naming the figures there are; a rule on
    a figure that comes later (a camera not added yet) is applied, and the change log says which rules read
    nothing yet."""
    from signalwise.runtime.live.alerts import AlertConfigError, AlertEngine

    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=30, in_process=True, state_every_s=60), tmp_path / "r",
                     alerts=AlertEngine())
    rt.open()

    def rule(name, metric):
        return {"name": name, "metric": metric, "op": ">", "threshold": 1, "for_s": 5, "level": "warning"}

    with pytest.raises(AlertConfigError, match=r"rules\[0\] \(typo\): unknown metric 'fallbak_share'; known: "
                                               r"fallback_share, "):
        rt.submit(ch.AlertRulesChange(rules=[rule("typo", "fallbak_share"), rule("ok", "fallback_share")]), who="ops")
    assert rt.alerts.rules == []
    entry = rt.submit(ch.AlertRulesChange(rules=[rule("later", "vision_stream_down.cam1"), rule("ok", "fallback_share"),
                                                 rule("rate", "shield_interventions_per_min"),
                                                 rule("any", "queue_spillback.*")]), who="ops")
    assert entry["result"] == "applied"
    assert entry["reason"].startswith("applied; no figure named vision_stream_down.cam1 is reported now")
    assert [r.name for r in rt.alerts.rules] == ["later", "ok", "rate", "any"]
    entry = rt.submit(ch.AlertRulesChange(rules=[rule("ok", "fallback_share")]), who="ops")
    assert entry["reason"] == ""
    rt.run()


def test_an_override_that_expired_after_the_last_saved_state_does_not_come_back_with_a_recovery(tmp_path):
    """The state saved at t=30 holds the override (until t=40); it expires, J2's controller takes over, and the
    simulator dies at t=58. The restored loop must not run the saved override again: nothing would ever expire
    it (the runtime's record says it ended), so it would hold phase 2 for the rest of the run."""
    rt = _runtime(tmp_path, duration_s=300, state_every_s=30)
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=40), who="ops")
    crash_at(rt, [58.0])
    rt.run()
    assert rt.restarts == 1 and rt.recoveries[0]["resumed_at_s"] == 30.0
    assert rt.status()["overrides"] == {}
    j2 = next(s for s in rt.snapshot.signals if s.intersection_id == "J2")
    assert j2.controller == "max-pressure" and j2.override is None
    assert rt.stepper.controllers["J2"].name == "max-pressure"
    assert audit_run(rt.run_dir).ok


def test_changes_made_since_the_last_saved_state_hold_after_a_recovery(tmp_path):
    """Timing, shield settings and a controller switch applied after the state was saved (at t=0): a crash
    at t=90 rewinds the simulator to t=0, not the changes the runtime answered 'applied' for."""
    rt = _runtime(tmp_path, duration_s=300, state_every_s=600, interval_s=300)
    rt.submit(ch.TimingChange(timing={"min_green_s": 20}), who="ops")
    rt.submit(ch.ShieldChange(shield={"confidence_threshold": 0.9}), who="ops")
    rt.submit(ch.ControllerChange(controller="fixed"), who="ops")
    crash_at(rt, [90.0])
    rt.run()
    assert rt.restarts == 1 and rt.recoveries[0]["resumed_at_s"] == 0.0
    assert all(min(sh.inter.timing.min_green_s) == 20 for sh in rt.stepper.shields.values())
    assert all(sh.cfg.confidence_threshold == 0.9 for sh in rt.stepper.shields.values())
    assert all(c.name == "fixed" for c in rt.stepper.controllers.values())
    assert audit_run(rt.run_dir).ok


def test_a_shield_change_of_the_preemption_distance_is_taken_as_a_configured_one(tmp_path):
    """seed 1 sends an emergency vehicle toward `single`'s signal in the first seconds: from 600 m its call
    comes sooner than from the default 150 m, whether the distance was configured or changed at run time."""
    def first_call(name, configured=None, changed=None):
        shield = {"preempt_distance_m": configured} if configured else {}
        rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure", shield=shield),
                         LiveOptions(speed=None, duration_s=60, in_process=True), tmp_path / name / "run")
        rt.open()
        if changed:
            rt.submit(ch.ShieldChange(shield={"preempt_distance_m": changed}), who="ops")
        rt.run()
        return min(e.time_s for e in read_events(rt.run_dir / "events.csv")
                   if e.event_code == EventCode.PREEMPT_CALL_ON)

    default, configured, changed = first_call("default"), first_call("configured", 600), first_call("changed",
                                                                                                      changed=600)
    assert configured < default
    assert changed == configured


def test_the_seconds_a_recovery_replays_are_counted_once_in_the_records(tmp_path):
    """Saved at t=30, crashed at t=58: the interval 0-60 counts the vehicles over the stop bars up to t=30 and
    from there the replay's, as a run that never crashed counts them (the replay from the saved state drives
    the same traffic); not the 28 seconds lost to the crash as well (they were counted twice)."""
    import json

    def first_interval(run_dir) -> list[dict]:
        rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
        return [r for r in rows if r["timestamp"] == rows[0]["timestamp"]]

    rt = _runtime(tmp_path / "crashed", duration_s=120, state_every_s=30)
    crash_at(rt, [58.0])
    rt.run()
    assert rt.recoveries[0]["resumed_at_s"] == 30.0
    clean = _runtime(tmp_path / "clean", duration_s=120, state_every_s=30)
    clean.run()
    first = first_interval(rt.run_dir)
    assert len(first) == len(rt.stepper.intersections)  # the interval 0-60 is stored once
    expected = sum(r["metrics"]["total_vehicles_passed"] for r in first_interval(clean.run_dir))
    counted = sum(r["metrics"]["total_vehicles_passed"] for r in first)
    # the 28 lost seconds counted twice would be about 16 vehicles over; the replay's count can differ from the
    # run that never crashed by a vehicle or two either way (seen on a loaded machine: 33 and 36 against 35;
    # the cause is not traced), so the bound is a band, well inside a double count
    assert expected > 0 and abs(counted - expected) <= 4, (counted, expected)


def test_a_recovery_never_stores_an_interval_twice(tmp_path):
    """States saved every 45 s, intervals closed every 60 s, a crash at t=70: the interval 0-60 was stored at
    t=60, so the run resumes from there, not from t=45 (whose replay closed and stored 0-60 a second time)."""
    import json

    rt = _runtime(tmp_path, duration_s=180, state_every_s=45)
    crash_at(rt, [70.0])
    rt.run()
    assert rt.recoveries[0]["resumed_at_s"] == 60.0
    rows = [json.loads(line) for line in (rt.run_dir / "records.jsonl").read_text().splitlines()]
    stored = [(r["timestamp"], r["intersection_id"]) for r in rows]
    assert len(stored) == len(set(stored)) == 3 * len(rt.stepper.intersections)


def test_an_override_reaches_a_signal_whose_id_is_long(tmp_path):
    """SUMO names a joined signal after its junctions: one of ingolstadt7's ids has 166 characters. The
    override routes validate their body with these models, which refused that id (at most 128 characters),
    so the operator could neither hold that signal nor end a hold there."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    rt = _runtime(tmp_path, scenario="resco:ingolstadt7", duration_s=60)
    long_id = max(rt.stepper.by_id, key=len)
    assert len(long_id) > 128
    hold = ch.OverrideChange.model_validate({"intersection_id": long_id, "action": "hold", "phase_number": 1,
                                             "duration_s": 30})
    assert rt.submit(hold, who="ops")["result"] == "applied"
    assert long_id in rt.status()["overrides"]
    assert rt.submit(ch.CancelOverrideChange.model_validate({"intersection_id": long_id}))["result"] == "applied"
    assert rt.status()["overrides"] == {}
    rt.run()


def test_a_bare_ql_switched_to_at_run_time_runs_the_model_shipped_for_the_scenario(tmp_path):
    """`--controller ql` on corridor runs the model shipped for it; switching to `ql` at run time (after a
    baseline, say) was refused with 'no model given ... a plain ql runs the model shipped for a built-in
    scenario: single, corridor, grid'. On a network of one's own a bare `ql` stays refused."""
    rt = _runtime(tmp_path, duration_s=60)
    assert rt.submit(ch.ControllerChange(controller="ql"), who="ops")["result"] == "applied"
    rt.run()
    assert {c.name for c in rt.stepper.controllers.values()} == {"ql"}  # the shipped phase-score policy runs
    assert rt.status()["controller"] == "ql"
    own = LiveRuntime(RunConfig(net=rt.scenario.net_file, routes=list(rt.scenario.route_files),
                                controller="max-pressure"),
                      LiveOptions(speed=None, duration_s=10, in_process=True), tmp_path / "own" / "run")
    own.open()
    with pytest.raises(ch.ChangeRefused, match="no model given"):
        own.submit(ch.ControllerChange(controller="ql"))
    own.run()


def _loosened_mid_run(tmp_path, name: str, change_at_s: float, **opts) -> LiveRuntime:
    """corridor under min green 15 s and all-red 4 s until `change_at_s`, then an operator's 5 s and 3 s (ITE's
    red clearances there are 1.5 to 2.4 s: below them a change at run time is refused)."""
    defaults = {"speed": None, "duration_s": 420, "in_process": True, "state_every_s": 60}
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure",
                               timing={"min_green_s": 15, "all_red_s": 4}),
                     LiveOptions(**{**defaults, **opts}), tmp_path / name)
    rt.open()

    def operator():
        while rt.stepper.t < change_at_s and not rt.ended:
            time.sleep(0.002)
        rt.submit(ch.TimingChange(timing={"min_green_s": 5, "all_red_s": 3}), who="ops")
    thread = threading.Thread(target=operator)
    thread.start()
    return rt, thread


def _greens_s(events, device: str) -> list[tuple[float, float]]:
    """(start, length) of each completed green of `device`."""
    out, start = [], {}
    for e in events:
        if e.device_id != device:
            continue
        if e.event_code == EventCode.PHASE_BEGIN_GREEN:
            start[e.parameter] = e.time_s
        elif e.event_code == EventCode.PHASE_BEGIN_YELLOW and e.parameter in start:
            began = start.pop(e.parameter)
            out.append((began, e.time_s - began))
    return out


def test_a_timing_change_at_run_time_is_audited_against_the_timing_each_green_ran_under(tmp_path):
    """Loosened mid-run (min green 15 -> 5 s, all-red 4 -> 3 s): each signal logs a 131 at the green that takes
    the new timing, signal_model.json holds it as revision 1, and the audit holds every green to the timing it
    ran under: 0 violations, with greens shorter than the first rules allow. Without the revisions the same
    evidence breaks those rules, so the audit does read them."""
    import json

    rt, thread = _loosened_mid_run(tmp_path, "loosened", change_at_s=150)
    rt.run()
    thread.join(timeout=30)
    events = list(read_events(rt.run_dir / "events.csv"))
    taken = {e.device_id: e.time_s for e in events if e.event_code == EventCode.TIMING_PLAN_CHANGE}
    assert set(taken) == set(rt.stepper.shields) and all(150 <= t <= 300 for t in taken.values()) and \
        all(e.parameter == 1 for e in events if e.event_code == EventCode.TIMING_PLAN_CHANGE)
    model_path = rt.run_dir / "signal_model.json"
    model = json.loads(model_path.read_text())
    assert all(d["timing"]["min_green_s"][0] == 15 and d["timing_revisions"][0]["min_green_s"][0] == 5
               and d["timing_revisions"][0]["all_red_s"] == 3 for d in model)
    short = [(s, g) for dev in taken for s, g in _greens_s(events, dev) if g < 15]
    assert short and all(s >= taken[dev] for dev in taken for s, g in _greens_s(events, dev) if g < 15)
    report = audit_run(rt.run_dir)
    assert report.ok and report.checked["min_green"] > 0, report.violations[:3]

    for d in model:
        del d["timing_revisions"]
    model_path.write_text(json.dumps(model))
    without = audit_run(rt.run_dir)
    assert {v.rule for v in without.violations} >= {"min_green", "all_red"}
    assert any(w.rule == "unknown_timing_revision" for w in without.warnings)


def test_a_recovery_after_the_new_timing_was_taken_keeps_auditing_against_it(tmp_path):
    """The state saved at 240 s already runs revision 1: the log after the recovery marker re-states the green in
    force with its 131, so the part after the crash is held to the new timing too."""
    rt, thread = _loosened_mid_run(tmp_path, "recovered", change_at_s=100)
    crash_at(rt, [290.0])
    rt.run()
    thread.join(timeout=30)
    assert rt.restarts == 1 and rt.recoveries[0]["resumed_at_s"] >= 240
    report = audit_run(rt.run_dir)
    assert report.ok, report.violations[:3]


def test_a_controller_switched_at_some_signals_is_theirs_and_the_runs_stays(tmp_path):
    """Switching J1 alone to fixed time used to relabel the whole run (status, run.json, the dashboard's toggle)
    as fixed while four signals stayed adaptive; a switch at every signal still changes the run's controller."""
    rt = _runtime(tmp_path, duration_s=60)
    assert rt.submit(ch.ControllerChange(controller="fixed", intersections=["J1"]), who="ops")["result"] == "applied"
    assert rt.status()["controller"] == "max-pressure" and rt.status()["signal_controllers"] == {"J1": "fixed"}
    assert rt.controller_at("J1") == "fixed" and rt.controller_at("J2") == "max-pressure"
    rt.submit(ch.ControllerChange(controller="fixed", intersections=["J2", "J3", "J4", "J5"]), who="ops")
    assert rt.status()["controller"] == "fixed" and rt.status()["signal_controllers"] == {}  # now every signal's
    rt.submit(ch.ControllerChange(controller="max-pressure"), who="ops")
    assert rt.status()["controller"] == "max-pressure" and rt.status()["signal_controllers"] == {}
    rt.submit(ch.ControllerChange(controller="actuated", intersections=["J5"]), who="ops")
    rt.run()
    import json

    run = json.loads((rt.run_dir / "run.json").read_text())
    assert run["controller"] == "max-pressure" and run["signal_controllers"] == {"J5": "actuated"}


def test_an_override_runs_for_its_seconds_of_signal_operation_across_a_recovery(tmp_path):
    """A 100 s hold from t=0; the simulator dies at t=58 and resumes from the state saved at t=30. The hold's end
    stayed at t=100 of the rewound clock, so it governed the signal 28 s longer than asked."""
    rt = _runtime(tmp_path, duration_s=300, state_every_s=30)
    rt.submit(ch.OverrideChange(intersection_id="J2", action="hold", phase_number=2, duration_s=100), who="ops")
    crash_at(rt, [58.0])
    rt.run()
    assert rt.restarts == 1 and rt.recoveries[0]["resumed_at_s"] == 30.0
    rewound = rt.recoveries[0]["rewound_s"]
    (expired,) = [c for c in rt.changes if c["kind"] == "override_expired"]
    assert abs(expired["sim_time_s"] - (100.0 - rewound)) <= 1.0, (expired, rewound)
    assert audit_run(rt.run_dir).ok
