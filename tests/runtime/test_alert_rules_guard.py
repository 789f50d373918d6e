"""An operator's alert rules cannot switch off the run's own, and what alerts and overrides say is readable.

Real live runs of `corridor` in-process (SUMO, or `--field none` with no feed: every signal stale), with the
alert engine `signalwise live` builds (the built-in rules):

- an empty rule set from an operator leaves every built-in rule in force, the `stale_data` alert raised before it
  stays raised, and so after a restart that replays the change; the restart banner says what the change was
  (it printed `alerts {}`);
- a misspelt metric is refused naming the known ones; a camera's figure, which can appear later, is not;
- a safety alert can be tightened, not loosened past its limits; a built-in keeps its metric;
- the stale-data alert names the signals and why, and is stamped with the run's simulated seconds;
- an operator rule dropped clears its alert with the reason;
- a call override whose phase was served is logged `override_served` with why, not `override_expired`;
- an unknown signal in an override is the `UnknownIntersection` the API answers 404.
"""

from __future__ import annotations

import threading

import pytest
from support.waiting import until

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live import changes as ch
from signalwise.runtime.live.alerts import (
    BUILTIN_RULES,
    AlertConfigError,
    AlertEngine,
    AlertRule,
    engine_from_config,
    load_alert_config,
    metric_problem,
)
from signalwise.runtime.live.lasting import replay_lines
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

SAFETY = ("stale_data", "fallback_share", "simulator_crash_loop", "store_buffer_overflow")


def _runtime(tmp_path, name: str, published: list | None = None, **opts) -> LiveRuntime:
    defaults = {"speed": 20.0, "duration_s": 3600, "field": "none", "sink": "shadow", "alerts_hz": 20.0}
    engine, _notifier = engine_from_config(load_alert_config(None))  # as `signalwise live` builds it
    rt = None

    def publish(topic: str, row: dict) -> None:
        if topic == "alert" and published is not None:
            published.append((row, rt.stepper.t))  # the loop's thread: the simulated second it evaluated at

    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(**{**defaults, **opts}), tmp_path / name,
                     alerts=engine, publish=publish)
    rt.open()
    return rt


def _run_in_thread(rt: LiveRuntime) -> threading.Thread:
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    assert until(lambda: rt.running, 20)
    return th


def _active(rt: LiveRuntime, rule: str):
    return next((a for a in rt.alerts.active() if a.rule == rule), None)


def test_an_empty_rule_set_keeps_the_built_in_alerts_and_the_raised_stale_data_alert(tmp_path):
    published: list = []
    rt = _runtime(tmp_path, "first", published)
    th = _run_in_thread(rt)
    try:
        # tightened (raised at once) through the API: allowed, and the fields left out stay the built-in's
        rt.submit(ch.AlertRulesChange(rules=[{"name": "stale_data", "for_s": 0}]), who="ops")
        assert until(lambda: _active(rt, "stale_data") is not None, 20)
        # the loop publishes an alert just after the engine raised it: the row read below is waited for too
        assert until(lambda: any(r["rule"] == "stale_data" for r, _t in published), 20)
        stale = _active(rt, "stale_data")
        # named: which signals, and why (no feed has sent anything for them)
        assert stale.subjects == ("J1", "J2", "J3", "J4", "J5")
        assert "at J1, J2, J3 (" in stale.message and "and 2 more" in stale.message, stale.message
        assert "no message yet" in stale.message and "shield is on the fallback plan" in stale.message
        # stamped with the run's simulated seconds (the loop's `t` when it raised), not time.monotonic()
        (row, t), *_ = [(r, t) for r, t in published if r["rule"] == "stale_data"]
        assert row["raised_at_s"] == t == stale.raised_at_s and row["wall_time"]

        entry = rt.submit(ch.AlertRulesChange(rules=[]), who="ops")
        assert entry["result"] == "applied"
        names = {r.name for r in rt.alerts.rules}
        assert {r.name for r in BUILTIN_RULES} <= names
        still = _active(rt, "stale_data")
        assert still is not None and still.id == stale.id  # not cleared while every signal is still stale
        assert next(r for r in rt.alerts.rules if r.name == "stale_data").for_s == 10  # back to the built-in's
    finally:
        rt.stop()
        th.join(30)

    again = _runtime(tmp_path, "second")
    try:
        assert {r.name for r in BUILTIN_RULES} <= {r.name for r in again.alerts.rules}
        lines = "\n".join(replay_lines(again))  # the banner says what the stored changes were, not `alerts {}`
        assert "alerts {}" not in lines
        assert "alerts no operator rules (the run's own and built-in rules are in force) by ops" in lines, lines
        assert "stale_data (adjusted: for_s 0)" in lines, lines
        in_force = {r["name"]: r for r in again.alerts.rules_in_force()}
        assert all(in_force[n]["origin"] == "built-in" and not in_force[n]["removable"] for n in SAFETY)
    finally:
        again.stop()
        again.run()


def test_a_misspelt_metric_a_loosened_safety_alert_and_a_moved_built_in_are_refused(tmp_path):
    rt = _runtime(tmp_path, "live")
    try:
        before = list(rt.alerts.rules)
        with pytest.raises(AlertConfigError, match=r"unknown metric 'stale_source'; known: fallback_share, "
                                                   r"stale_sources, .*queue_spillback\.<signal>"):
            rt.submit(ch.AlertRulesChange(rules=[{"name": "stale", "metric": "stale_source", "threshold": 0}]))
        with pytest.raises(AlertConfigError, match=r"no signal 'J9' reports queue_spillback"):
            rt.submit(ch.AlertRulesChange(rules=[{"name": "q9", "metric": "queue_spillback.J9", "threshold": 0}]))
        with pytest.raises(AlertConfigError, match=r"stale_data\) is a built-in safety alert: threshold 3 is above "
                                                   r"its limit 0"):
            rt.submit(ch.AlertRulesChange(rules=[{"name": "stale_data", "threshold": 3}]))
        with pytest.raises(AlertConfigError, match=r"fallback_share\) is a built-in safety alert: level 'info'"):
            rt.submit(ch.AlertRulesChange(rules=[{"name": "fallback_share", "level": "info"}]))
        for name in SAFETY:  # acknowledged once, it would stay silent while its figure stays up
            with pytest.raises(AlertConfigError, match=rf"{name}\) is a built-in safety alert: until_acknowledged"):
                rt.submit(ch.AlertRulesChange(rules=[{"name": name, "until_acknowledged": True}]))
        with pytest.raises(AlertConfigError, match=r"keeps its metric and operator \(simulator_restarts >=\)"):
            rt.submit(ch.AlertRulesChange(rules=[{"name": "simulator_crash_loop", "metric": "process_cpu_pct"}]))
        assert rt.alerts.rules == before  # nothing of them applied
        refused = [c for c in rt.changes if c["kind"] == "alerts"]
        assert refused == []  # refused before they became changes (the API records them refused)

        # a camera's figure appears when the stream is added: a rule on it waits for it, and says so
        entry = rt.submit(ch.AlertRulesChange(rules=[
            {"name": "cam9_down", "metric": "vision_stream_down.cam9", "op": ">=", "threshold": 1},
            {"name": "spill_j3", "metric": "queue_spillback.J3", "op": ">=", "threshold": 1},
            {"name": "interventions", "metric": "shield_interventions_per_min", "threshold": 5}]), who="ops")
        assert entry["result"] == "applied" and "vision_stream_down.cam9" in entry["reason"]
        assert "cam9_down" in {r.name for r in rt.alerts.rules}
    finally:
        rt.stop()
        rt.run()


def test_every_figure_the_run_reports_is_a_metric_a_rule_may_name(tmp_path):
    rt = _runtime(tmp_path, "live", field="sumo", sink="sumo", in_process=True, speed=None, duration_s=5)
    try:
        rt.run()
        figures = rt.metrics()
        assert "stale_sources" in figures and any(k.startswith("queue_spillback.") for k in figures)
        assert {k: metric_problem(k) for k in figures if not k.startswith("queue_spillback.")} == \
            dict.fromkeys([k for k in figures if not k.startswith("queue_spillback.")])
        assert all(metric_problem(k, figures) is None for k in figures)
    finally:
        rt.stop()


def test_an_operator_rule_dropped_clears_its_alert_saying_why(tmp_path):
    published: list = []
    rt = _runtime(tmp_path, "live", published)
    th = _run_in_thread(rt)
    try:
        rt.submit(ch.AlertRulesChange(rules=[{"name": "all_stale", "metric": "stale_sources", "op": ">=",
                                              "threshold": 1}]), who="ops")
        assert until(lambda: _active(rt, "all_stale") is not None, 20)
        rt.submit(ch.AlertRulesChange(rules=[]), who="night-shift")
        cleared = next(a for a in rt.alerts.history() if a.rule == "all_stale")
        assert cleared.cleared_at_s is not None and cleared.cleared_value == 5
        assert cleared.cleared_reason == "its rule was removed (alert rules changed by night-shift)"
        assert abs(cleared.cleared_at_s - rt.stepper.t) < 30  # the run's simulated seconds
        # the clear reaches the stream (and the store, by the same path): a console or the database kept it active
        ends = [row for row, _t in published if row["rule"] == "all_stale" and row.get("cleared_at_s") is not None]
        assert ends and ends[-1]["cleared_reason"] == cleared.cleared_reason
    finally:
        rt.stop()
        th.join(30)


def test_alerts_are_stamped_with_the_run_clock_and_held_on_the_wall_clock():
    engine = AlertEngine([AlertRule(name="r", metric="m", threshold=0, for_s=10)])
    assert engine.evaluate(1000.0, {"m": 1}, run_time_s=50.0) == []
    (raised,) = engine.evaluate(1010.0, {"m": 1}, run_time_s=150.0)  # 10 wall seconds, 100 simulated
    assert raised.raised_at_s == 150.0
    (cleared,) = engine.evaluate(1011.0, {"m": 0}, run_time_s=160.0)
    assert cleared.cleared_at_s == 160.0 and cleared.cleared_reason == "m = 0, no longer > 0"


def test_an_unknown_signal_in_an_override_is_the_refusal_the_api_answers_404(tmp_path):
    rt = _runtime(tmp_path, "live")
    try:
        with pytest.raises(ch.UnknownIntersection, match="unknown intersection 'J9'; signals: J1, J2"):
            rt.submit(ch.OverrideChange(intersection_id="J9", action="call", phase_number=1, duration_s=30))
        with pytest.raises(ch.UnknownIntersection, match="unknown intersection 'J9'"):
            rt.submit(ch.CancelOverrideChange(intersection_id="J9"))
    finally:
        rt.stop()
        rt.run()


def test_an_empty_rule_set_from_an_operator_removes_no_rule_of_the_run_nor_after_a_restart(tmp_path):
    first = _runtime(tmp_path, "first")
    try:
        assert first.submit(ch.AlertRulesChange(rules=[]), who="ops")["result"] == "applied"
        assert [r.name for r in first.alerts.rules] == [r.name for r in BUILTIN_RULES]
    finally:
        first.stop()
        first.run()
    again = _runtime(tmp_path, "second")  # the change is lasting: replayed at start
    try:
        assert [c["kind"] for c in again.changes if c.get("replayed")] == ["alerts"]
        assert [r.name for r in again.alerts.rules] == [r.name for r in BUILTIN_RULES]
    finally:
        again.stop()
        again.run()


def test_a_served_call_is_logged_as_served_with_why(tmp_path):
    rt = _runtime(tmp_path, "live", field="sumo", sink="sumo", in_process=True, speed=None, duration_s=300)
    try:
        phases = len(rt.stepper.by_id["J2"].phases)
        rt.submit(ch.OverrideChange(intersection_id="J2", action="call", phase_number=phases, duration_s=250),
                  who="ops")
        rt.run()
    finally:
        rt.stop()
    ended = [c for c in rt.changes if c["kind"].startswith("override_")]
    assert [c["kind"] for c in ended] == ["override_served"], ended
    (served,) = ended
    assert served["sim_time_s"] < 250  # before its time was up
    assert served["reason"].startswith(f"phase {phases} was served (green) at t=")
    assert served["reason"].endswith(": the call is done")
