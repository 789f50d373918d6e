"""A live run logs each signal's coordination pattern as a field controller does, as a batch `-c coordinated` run
logs it (test_coordinated_plan_events.py): a 131 (pattern 1; 254, Free, where `coordinated` cannot coordinate the
signal), a 132 (cycle) and a 133 (offset), whole seconds. A signal that starts on `coordinated` logs its pattern at
the run's start; a switch logs the pattern at the moment the new controller takes over (Free when it leaves
`coordinated`); an operator's override changes no pattern; a recovery logs again only a pattern changed since the
saved state, at the resume time. events.csv, live_events.csv and the store hold them, `signalwise atspm` and the
API's ATSPM name the plan, and the audit reads them as no timing revision.

Live runs in this process, unpaced (`LiveRuntime` as `signalwise live` builds it): on test_coordinated_runs.py's
arterial (80 s cycle, offsets 0, 25 and 55 s) and on the built-in `corridor` (90 s cycle, offsets 0)."""

from __future__ import annotations

import csv
import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from support.crashes import crash_at
from test_coordinated_runs import OFFSETS_S, _arterial

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

PLAN_CODES = (131, 132, 133, 156)
CORRIDOR = ("J1", "J2", "J3", "J4", "J5")
CORRIDOR_PLAN = (1, 90, 0)
FREE = (254, 0, 0)


#: the runs' own yellow where a timing change at run time shortens it: a revision above ITE's 3.3 s (shown 4 s in whole
#: steps; below it a change at run time is refused) that the run's own timing would find short
YELLOW_5S = {"yellow_s": 5.0}


def _live(run_dir: Path, controller: str, duration_s: float = 200, store=None, **config) -> LiveRuntime:
    config.setdefault("scenario", "corridor")
    rt = LiveRuntime(RunConfig(controller=controller, interval_s=600.0, **config),
                     LiveOptions(speed=None, duration_s=duration_s, in_process=True, state_every_s=600), run_dir,
                     store=store)
    rt.open()
    return rt


def _plans_logged(events) -> dict[str, list[tuple[float, int, int, int]]]:
    """Per device, the patterns its log names, in log order: (time s, pattern, cycle s, offset s), each read from a
    131 followed by its 132 and 133 (a 131 alone, a timing revision's, is not one)."""
    out: dict[str, list] = {}
    by_device: dict[str, list] = {}
    for e in events:
        by_device.setdefault(e.device_id, []).append(e)
    for dev, evs in by_device.items():
        for k, e in enumerate(evs):
            if e.event_code != 131 or k + 2 >= len(evs) or evs[k + 1].event_code != 132:
                continue
            cycle, offset = evs[k + 1], evs[k + 2]
            assert offset.event_code == 133 and cycle.time_s == offset.time_s == e.time_s, evs[k:k + 3]
            out.setdefault(dev, []).append((e.time_s, e.parameter, cycle.parameter, offset.parameter))
    return out


def _plan_rows(events) -> dict[str, list[tuple[float, int, int]]]:
    """Per device, every 131/132/133/156 of its log: (time s, code, parameter)."""
    out: dict[str, list] = {}
    for e in events:
        if e.event_code in PLAN_CODES:
            out.setdefault(e.device_id, []).append((e.time_s, e.event_code, e.parameter))
    return out


def _plans_csv(run_dir: Path) -> dict[str, list[tuple[str, str, str, str, str]]]:
    """Per device, its plan spans in `signalwise atspm`'s plans.csv: (start, plan, name, cycle, offset)."""
    from support.cli import signalwise

    out = run_dir / "atspm"
    p = signalwise("atspm", str(run_dir), "--out", str(out), "--no-charts")
    assert p.returncode == 0, p.stderr
    spans: dict[str, list] = {}
    with open(out / "plans.csv") as fh:
        for r in csv.DictReader(fh):
            span = (r["Start"], r["Plan"], r["PlanName"], r["Cycle_s"], r["Offset_s"])
            if span not in spans.setdefault(r["DeviceId"], []):
                spans[r["DeviceId"]].append(span)
    return spans


def _audit_clean(run_dir: Path):
    report = audit_run(run_dir)
    assert report.ok and report.violations == [], [str(v) for v in report.violations[:5]]
    assert not [w for w in report.warnings if w.rule == "unknown_timing_revision"], report.warnings
    return report


def _swaps(rt: LiveRuntime) -> list[tuple[float, str, str, str]]:
    """Records (time, signal, controller name, interval) of every controller the loop puts in place; the loop's
    own `replace_controller` does the work."""
    seen: list[tuple[float, str, str, str]] = []
    st = rt.stepper
    replace = st.replace_controller

    def recorded(tls, controller):
        seen.append((st.t, tls, controller.name, st.shields[tls].interval))
        return replace(tls, controller)
    st.replace_controller = recorded
    return seen


def _operator(rt: LiveRuntime, steps: list[tuple[float, object]]) -> threading.Thread:
    """Submits each change once the run's clock reaches its time, as an operator over the API does."""
    def run():
        for at_s, change in steps:
            while rt.stepper.t < at_s and not rt.ended:
                time.sleep(0.001)
            rt.submit(change, who="ops")
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_live_coordinated_run_logs_each_plan_at_its_start_into_the_log_the_store_and_atspm(db_url, tmp_path):
    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.store import Settings, query_events
    from signalwise.store.engine import create_store_engine
    from signalwise.store.live import LiveStoreWriter

    net, routes = _arterial(tmp_path)
    run_dir = tmp_path / "live"
    store = LiveStoreWriter(db_url, run_dir.name, run_dir / "store-buffer", 10_000, retry_initial_s=0.05)
    rt = _live(run_dir, "coordinated", store=store, scenario=None, net=net, routes=[routes], step_length_s=1.0)
    rt.run()
    assert rt.store_summary["waiting_rows"] == 0
    want = {tls: (1, 80, int(offset)) for tls, offset in OFFSETS_S.items()}

    events = list(read_events(run_dir / "events.csv"))
    assert _plans_logged(events) == {tls: [(0.0, *plan)] for tls, plan in want.items()}
    assert _plan_rows(events) == {tls: [(0.0, 131, p), (0.0, 132, c), (0.0, 133, o)] for tls, (p, c, o) in want.items()}
    for tls in want:  # logged before the signal's first green (the run's first events of the signal)
        codes = [e.event_code for e in events if e.device_id == tls]
        assert codes[:4] == [131, 132, 133, 1], (tls, codes[:6])

    with open(run_dir / "live_events.csv") as fh:  # on the run's wall clock, as the store has them
        live = [r for r in csv.DictReader(fh) if int(r["EventId"]) in PLAN_CODES]
    assert sorted((r["DeviceId"], int(r["EventId"]), int(r["Parameter"]), float(r["sim_time_s"])) for r in live) == \
        sorted((tls, code, param, 0.0) for tls, rows in _plan_rows(events).items() for _t, code, param in rows)
    engine = create_store_engine(db_url)
    stored = query_events(engine, codes=PLAN_CODES, simulation_id=run_dir.name)
    greens = query_events(engine, codes=[1], simulation_id=run_dir.name)
    engine.dispose()
    assert sorted((r[1], r[2], r[3]) for r in stored) == sorted((r["DeviceId"], int(r["EventId"]), int(r["Parameter"]))
                                                                for r in live)
    started = {r[0] for r in stored}
    assert len(started) == 1 and started == {min(r[0] for r in greens)}  # the run's start, on its wall clock

    assert _plans_csv(run_dir) == {tls: [("2025-01-06 00:00:00", "1", "Plan 1", str(c), str(o))]
                                   for tls, (_p, c, o) in want.items()}
    _audit_clean(run_dir)

    # the API's window of the stored log starts in the plan logged before it
    start = next(iter(started)) + dt.timedelta(seconds=60)
    client = TestClient(create_app(Settings(database_url=db_url, cache_ttl_s=0)))
    r = client.get("/api/v1/atspm/plans", params={"simulation_id": run_dir.name, "start": start.isoformat(),
                                                  "end": (start + dt.timedelta(seconds=120)).isoformat()})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert {row["DeviceId"] for row in rows} == set(want) and {row["PlanName"] for row in rows} == {"Plan 1"}, rows


@pytest.mark.slow  # a `signalwise live` process, its API served
def test_signalwise_live_c_coordinated_logs_the_plans_that_atspm_names_and_the_audit_passes(tmp_path):
    """The command an operator types, with its store: `signalwise live -s corridor -c coordinated`."""
    import subprocess
    import sys

    from signalwise.store import query_events
    from signalwise.store.engine import create_store_engine

    db = tmp_path / "store.db"
    p = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "live", "--scenario", "corridor", "-c",
                        "coordinated", "--speed", "max", "--duration", "120", "--port", "0", "--out",
                        str(tmp_path / "out"), "--db", f"sqlite:///{db}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").glob("*-live-corridor-coordinated")
    events = list(read_events(run_dir / "events.csv"))
    assert _plans_logged(events) == {tls: [(0.0, *CORRIDOR_PLAN)] for tls in CORRIDOR}
    with open(run_dir / "live_events.csv") as fh:
        live = sorted((r["DeviceId"], int(r["EventId"]), int(r["Parameter"]), r["sim_time_s"]) for r in csv.DictReader(fh)
                      if int(r["EventId"]) in PLAN_CODES)
    want = sorted((tls, code, param, "0.0") for tls in CORRIDOR for code, param in zip((131, 132, 133), CORRIDOR_PLAN, strict=True))
    assert live == want
    engine = create_store_engine(f"sqlite:///{db}")
    stored = query_events(engine, codes=PLAN_CODES, simulation_id=run_dir.name)
    engine.dispose()
    assert sorted((r[1], r[2], r[3]) for r in stored) == [w[:3] for w in want]
    assert _plans_csv(run_dir) == {tls: [("2025-01-06 00:00:00", "1", "Plan 1", "90", "0")] for tls in CORRIDOR}
    _audit_clean(run_dir)


def test_a_signal_coordinated_cannot_hold_logs_the_free_pattern_at_a_live_runs_start(tmp_path):
    # 37 s + 3 s splits leave 34 s of green after the safety profile's 6 s change: below a 36 s minimum green
    net, routes = _arterial(tmp_path)
    rt = _live(tmp_path / "live", "coordinated", scenario=None, net=net, routes=[routes], step_length_s=1.0,
               timing={"min_green_s": 36, "max_green_s": 60})
    rt.run()
    events = list(read_events(rt.run_dir / "events.csv"))
    assert _plans_logged(events) == {tls: [(0.0, *FREE)] for tls in OFFSETS_S}
    assert _plans_csv(rt.run_dir) == {tls: [("2025-01-06 00:00:00", "254", "Free", "0", "0")] for tls in OFFSETS_S}
    _audit_clean(rt.run_dir)


def test_a_switch_logs_the_plan_when_coordinated_takes_over_and_free_when_it_hands_over(tmp_path):
    rt = _live(tmp_path / "live", "fixed", duration_s=360)
    swaps = _swaps(rt)
    thread = _operator(rt, [(60.0, ch.ControllerChange(controller="coordinated")),
                            (180.0, ch.ControllerChange(controller="fixed"))])
    rt.run()
    thread.join(timeout=30)
    applied = [c["sim_time_s"] for c in rt.changes if c["kind"] == "controller" and c["result"] == "applied"]
    assert len(applied) == 2
    taken = {}  # per signal, when coordinated took over and when fixed took over from it
    for t, tls, name, interval in swaps:
        assert interval == "green"  # a swap waits for a green
        taken.setdefault(tls, []).append((t, name))
    assert all([name for _t, name in taken[tls]] == ["coordinated", "fixed"] for tls in CORRIDOR), taken
    assert all(applied[0] <= taken[tls][0][0] < applied[1] <= taken[tls][1][0] for tls in CORRIDOR), taken
    events = list(read_events(rt.run_dir / "events.csv"))
    assert _plans_logged(events) == {tls: [(taken[tls][0][0], *CORRIDOR_PLAN), (taken[tls][1][0], *FREE)]
                                     for tls in CORRIDOR}
    assert all(len(rows) == 6 for rows in _plan_rows(events).values())  # nothing else
    _audit_clean(rt.run_dir)
    stamp = dt.datetime(2025, 1, 6)
    for tls, spans in _plans_csv(rt.run_dir).items():
        (on, _), (off, _) = taken[tls]
        assert [s[1:] for s in spans] == [("", "unknown", "", ""), ("1", "Plan 1", "90", "0"),
                                          ("254", "Free", "0", "0")], (tls, spans)
        assert [s[0] for s in spans][1:] == [f"{stamp + dt.timedelta(seconds=on):%Y-%m-%d %H:%M:%S}",
                                             f"{stamp + dt.timedelta(seconds=off):%Y-%m-%d %H:%M:%S}"], spans


def test_an_override_changes_no_pattern_and_a_switch_made_under_it_is_logged_when_it_takes_over(tmp_path):
    """J2 and J3 run coordinated and an operator holds a phase at each for 60 s; during J2's hold, J2 is switched
    to fixed time. The holds log no pattern (a field controller's pattern stays in force under a hold); J3 goes
    back to its plan, logging nothing; J2's fixed time takes over when its hold ends, and only then is the Free
    pattern logged."""
    rt = _live(tmp_path / "live", "coordinated", duration_s=200)
    for tls in ("J2", "J3"):
        rt.submit(ch.OverrideChange(intersection_id=tls, action="hold", phase_number=2, duration_s=60), who="ops")
    rt.submit(ch.ControllerChange(controller="fixed", intersections=["J2"]), who="ops")  # under the hold
    swaps = _swaps(rt)
    rt.run()
    assert {c["payload"]["intersection_id"] for c in rt.changes if c["kind"] == "override_expired"} == {"J2", "J3"}
    back = {tls: (t, name) for t, tls, name, _interval in swaps}
    assert set(back) == {"J2", "J3"} and back["J2"][1] == "fixed" and back["J3"][1] == "coordinated"
    assert back["J2"][0] >= 60
    events = list(read_events(rt.run_dir / "events.csv"))
    assert _plans_logged(events) == {**{tls: [(0.0, *CORRIDOR_PLAN)] for tls in CORRIDOR},
                                     "J2": [(0.0, *CORRIDOR_PLAN), (back["J2"][0], *FREE)]}
    _audit_clean(rt.run_dir)


def test_a_recovery_logs_again_only_the_pattern_changed_since_the_saved_state(tmp_path):
    """Saved at t=0 with every signal on its plan; J1 switched to fixed time at its first green (Free logged there);
    the simulator dies at t=120 and the run resumes from t=0, J1 on fixed time again from there. After the
    recovery marker J1's Free pattern is logged at t=0, once; the other signals' plans, logged at t=0 before the
    state was saved, are not logged again. `signalwise atspm`, reading the replay as the run's one timeline, has J1
    Free from the start and the others on their plan."""
    rt = _live(tmp_path / "live", "coordinated", duration_s=200)
    rt.submit(ch.ControllerChange(controller="fixed", intersections=["J1"]), who="ops")
    swaps = _swaps(rt)
    crash_at(rt, [120.0])
    rt.run()
    assert rt.restarts == 1 and rt.recoveries[0]["resumed_at_s"] == 0.0
    (switched, _tls, _name, _interval), *_again = swaps  # then the recovery puts it in place again at t=0
    events = list(read_events(rt.run_dir / "events.csv"))
    marker = next(i for i, e in enumerate(events) if e.event_code == EventCode.RUNTIME_RECOVERY)
    before, after = _plans_logged(events[:marker]), _plans_logged(events[marker:])
    assert before == {**{tls: [(0.0, *CORRIDOR_PLAN)] for tls in CORRIDOR},
                      "J1": [(0.0, *CORRIDOR_PLAN), (switched, *FREE)]}
    assert after == {"J1": [(0.0, *FREE)]}
    assert sum(len(rows) for rows in _plan_rows(events).values()) == 3 * (len(CORRIDOR) + 2)  # none twice
    _audit_clean(rt.run_dir)
    spans = _plans_csv(rt.run_dir)
    assert {tls: [s[1:] for s in spans[tls]] for tls in CORRIDOR} == {
        **{tls: [("1", "Plan 1", "90", "0")] for tls in CORRIDOR}, "J1": [("254", "Free", "0", "0")]}


def test_a_revisions_131_at_the_instant_of_a_pattern_still_names_its_revision(tmp_path):
    """An earlier run of the corridor changed its timing (yellow 4 s, the runs' own 5 s): a coordinated run starts
    on that revision, its 131 at t=0 with the plan's 131, 132 and 133. The audit holds the yellows to the revision's
    4 s (the 131 followed by the green's 1), not to the run's own timing, which would find each one short."""
    first = _live(tmp_path / "first", "fixed", duration_s=10, timing=YELLOW_5S)
    first.submit(ch.TimingChange(timing={"yellow_s": 4.0}), who="ops")
    first.run()
    rt = _live(tmp_path / "second", "coordinated", duration_s=300, timing=YELLOW_5S)
    rt.run()
    events = list(read_events(rt.run_dir / "events.csv"))
    assert _plans_logged(events) == {tls: [(0.0, *CORRIDOR_PLAN)] for tls in CORRIDOR}
    for tls in CORRIDOR:  # the plan, then the revision's 131 before the first green
        assert [(e.time_s, e.event_code, e.parameter) for e in events if e.device_id == tls][:5] == [
            (0.0, 131, 1), (0.0, 132, 90), (0.0, 133, 0), (0.0, 131, 1), (0.0, 1, 1)]
    yellows = [e for e in events if e.event_code == EventCode.PHASE_BEGIN_YELLOW]
    assert yellows
    report = _audit_clean(rt.run_dir)
    assert report.checked["yellow"] >= len(yellows)


def _store_sorted(run_dir: Path) -> None:
    """Rewrites the run's events.csv in the order the store returns events (`store.events.query_events`: time,
    device, code, parameter): the order within an instant as logged is lost."""
    from signalwise.core import write_events
    events = sorted(read_events(run_dir / "events.csv"),
                    key=lambda e: (e.time_s, e.device_id, e.event_code, e.parameter))
    write_events(run_dir / "events.csv", events)


def _start_on_two_revisions(tmp_path: Path) -> LiveRuntime:
    """An earlier run of the corridor changed its timing twice: yellow 6 s (revision 1), then 4 s (revision 2; the
    runs' own 5 s): a coordinated run starts on revision 2, its 131 at t=0 with the plan's 131, 132 and 133."""
    first = _live(tmp_path / "first", "fixed", duration_s=10, timing=YELLOW_5S)
    first.submit(ch.TimingChange(timing={"yellow_s": 6.0}), who="ops")
    first.submit(ch.TimingChange(timing={"yellow_s": 4.0}), who="ops")
    first.run()
    rt = _live(tmp_path / "second", "coordinated", duration_s=300, timing=YELLOW_5S)
    rt.run()
    return rt


def test_a_revision_2s_131_at_the_instant_of_a_pattern_names_revision_2_in_any_order(tmp_path):
    """Revision 2's 131 at the instant of the plan's 131 (pattern 1), 132 and 133: the audit holds the yellows to
    revision 2's 4 s whether the log keeps the order they were logged in or the store's (131/1, 131/2, 132, 133),
    where the 131 right before the 132 is the revision's. Held to revision 1's 6 s, each yellow would be short."""
    rt = _start_on_two_revisions(tmp_path)
    events = list(read_events(rt.run_dir / "events.csv"))
    for tls in CORRIDOR:
        assert [(e.time_s, e.event_code, e.parameter) for e in events if e.device_id == tls][:5] == [
            (0.0, 131, 1), (0.0, 132, 90), (0.0, 133, 0), (0.0, 131, 2), (0.0, 1, 1)]
    yellows = [e for e in events if e.event_code == EventCode.PHASE_BEGIN_YELLOW]
    assert yellows
    assert _audit_clean(rt.run_dir).checked["yellow"] >= len(yellows)
    _store_sorted(rt.run_dir)
    for tls in CORRIDOR:
        assert [(e.event_code, e.parameter) for e in read_events(rt.run_dir / "events.csv")
                if e.device_id == tls and e.event_code in PLAN_CODES][:4] == [(131, 1), (131, 2), (132, 90), (133, 0)]
    assert _audit_clean(rt.run_dir).checked["yellow"] >= len(yellows)


def test_a_pattern_1_and_revision_1_at_one_instant_are_one_pattern_and_one_revision_in_the_stores_order(tmp_path):
    """Pattern 1 and revision 1 at one instant are two 131s of parameter 1: in the store's order (131/1, 131/1,
    132, 133) one is the pattern and the other names revision 1, whose 4 s yellows the audit holds the run to (its own
    are 5 s)."""
    first = _live(tmp_path / "first", "fixed", duration_s=10, timing=YELLOW_5S)
    first.submit(ch.TimingChange(timing={"yellow_s": 4.0}), who="ops")
    first.run()
    rt = _live(tmp_path / "second", "coordinated", duration_s=300, timing=YELLOW_5S)
    rt.run()
    _store_sorted(rt.run_dir)
    events = list(read_events(rt.run_dir / "events.csv"))
    for tls in CORRIDOR:
        assert [(e.event_code, e.parameter) for e in events if e.device_id == tls and e.event_code in PLAN_CODES][:4] \
            == [(131, 1), (131, 1), (132, 90), (133, 0)]
    assert _audit_clean(rt.run_dir).checked["yellow"] >= len(
        [e for e in events if e.event_code == EventCode.PHASE_BEGIN_YELLOW])
