"""Alert rules: raised once after `for_s`, cleared with hysteresis, per key, reloaded, acknowledged, posted."""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from signalwise.runtime.live.alerts import (
    BUILTIN_RULES,
    AlertConfigError,
    AlertEngine,
    AlertEvent,
    AlertRule,
    AlreadyAcknowledged,
    WebhookNotifier,
    engine_from_config,
    load_alert_config,
    process_figures,
    with_builtins,
)
from signalwise.runtime.live.changes import ChangeRefused

FALLBACK = {"name": "fallback", "metric": "fallback_share", "op": ">", "threshold": 0.5, "for_s": 10,
            "level": "warning", "clear_threshold": 0.2, "description": "controller not trusted"}


def run(engine, start, stop, step, metrics):
    """Evaluate every `step` seconds in [start, stop) with the same figures; all events returned."""
    out = []
    t = start
    while t < stop:
        out += engine.evaluate(t, metrics)
        t += step
    return out


def test_raised_once_after_for_s_and_never_again_while_it_holds():
    raised, cleared = [], []
    engine = AlertEngine([AlertRule(**FALLBACK)], on_raise=raised.append, on_clear=cleared.append)
    assert run(engine, 0, 10, 1, {"fallback_share": 0.9}) == []  # held 9 s of 10
    assert engine.active() == []
    events = engine.evaluate(10, {"fallback_share": 0.9})
    assert len(events) == 1 and raised == events
    alert = events[0]
    assert isinstance(alert, AlertEvent)
    assert (alert.rule, alert.level, alert.metric, alert.value, alert.threshold) == ("fallback", "warning",
                                                                                    "fallback_share", 0.9, 0.5)
    assert alert.raised_at_s == 10 and alert.cleared_at_s is None and alert.wall_time
    assert "fallback_share = 0.9 > 0.5" in alert.message and "controller not trusted" in alert.message
    assert run(engine, 11, 100, 1, {"fallback_share": 0.95}) == []  # stays active, no re-raise
    assert [a.id for a in engine.active()] == [alert.id] and len(raised) == 1 and cleared == []


def test_a_condition_that_breaks_starts_its_wait_over():
    engine = AlertEngine([AlertRule(**FALLBACK)])
    run(engine, 0, 8, 1, {"fallback_share": 0.9})
    engine.evaluate(8, {"fallback_share": 0.1})
    assert run(engine, 9, 18, 1, {"fallback_share": 0.9}) == []  # 9 s since it held again
    assert len(engine.evaluate(19, {"fallback_share": 0.9})) == 1


def test_clears_only_across_the_clear_threshold_then_can_be_raised_again():
    cleared = []
    engine = AlertEngine([AlertRule(**FALLBACK)], on_clear=cleared.append)
    first = run(engine, 0, 11, 1, {"fallback_share": 0.9})[0]
    # below the threshold but above the clear threshold: still active
    assert run(engine, 11, 30, 1, {"fallback_share": 0.3}) == []
    assert engine.active()[0].id == first.id
    # bouncing around the threshold does not raise a second alert
    assert run(engine, 30, 60, 1, {"fallback_share": 0.6}) == []
    events = engine.evaluate(60, {"fallback_share": 0.2})  # not > 0.2: cleared
    assert len(events) == 1 and cleared == events
    done = events[0]
    assert done.id == first.id and done.cleared_at_s == 60 and done.cleared_value == 0.2 and done.cleared_wall_time
    assert engine.active() == []
    again = run(engine, 61, 80, 1, {"fallback_share": 0.9})
    assert len(again) == 1 and again[0].id != first.id and again[0].raised_at_s == 71
    assert [a.id for a in engine.history(10)] == [again[0].id, first.id]
    assert engine.history(10)[1].cleared_at_s == 60


def test_without_clear_threshold_it_clears_when_the_condition_stops():
    engine = AlertEngine([AlertRule(name="late", metric="pacing_lateness_p99_ms", op=">=", threshold=250)])
    assert len(engine.evaluate(0, {"pacing_lateness_p99_ms": 250})) == 1  # for_s 0: at once
    assert engine.evaluate(1, {"pacing_lateness_p99_ms": 249.9})[0].cleared_at_s == 1


@pytest.mark.parametrize(("op", "threshold", "clear", "raise_at", "hold_at", "clear_at"), [
    ("<", 10, 20, 5, 15, 20), ("<=", 10, 20, 10, 19, 21), ("==", 1, None, 1, 1, 0), ("!=", 0, None, 2, 3, 0),
])
def test_every_operator(op, threshold, clear, raise_at, hold_at, clear_at):
    engine = AlertEngine([AlertRule(name="r", metric="m", op=op, threshold=threshold, clear_threshold=clear)])
    assert len(engine.evaluate(0, {"m": raise_at})) == 1
    assert engine.evaluate(1, {"m": hold_at}) == []
    assert engine.evaluate(2, {"m": clear_at})[0].cleared_at_s == 2


def test_missing_or_nan_figures_say_nothing():
    engine = AlertEngine([AlertRule(**FALLBACK)])
    run(engine, 0, 11, 1, {"fallback_share": 0.9})
    assert engine.evaluate(11, {}) == [] and engine.evaluate(12, {"fallback_share": float("nan")}) == []
    assert len(engine.active()) == 1
    pending = AlertEngine([AlertRule(**FALLBACK)])
    run(pending, 0, 8, 1, {"fallback_share": 0.9})
    pending.evaluate(8, {})  # a gap in the data starts the wait over
    assert run(pending, 9, 18, 1, {"fallback_share": 0.9}) == []


def test_wildcard_rule_raises_and_clears_per_intersection():
    rule = AlertRule(name="spillback", metric="queue_spillback.*", op=">=", threshold=1, for_s=5)
    engine = AlertEngine([rule])
    figures = {"queue_spillback.J1": 1.0, "queue_spillback.J2": 0.0, "queue_spillback": 7.0, "fallback_share": 1}
    assert run(engine, 0, 5, 1, figures) == []
    raised = engine.evaluate(5, figures)
    assert [a.metric for a in raised] == ["queue_spillback.J1"]
    figures["queue_spillback.J2"] = 1.0
    assert run(engine, 6, 10, 1, figures) == []
    later = engine.evaluate(11, figures)
    assert [a.metric for a in later] == ["queue_spillback.J2"]
    assert {a.metric for a in engine.active()} == {"queue_spillback.J1", "queue_spillback.J2"}
    figures["queue_spillback.J1"] = 0.0
    cleared = engine.evaluate(12, figures)
    assert [(a.metric, a.cleared_at_s) for a in cleared] == [("queue_spillback.J1", 12)]
    assert [a.metric for a in engine.active()] == ["queue_spillback.J2"]


def test_rates_of_cumulative_counters_over_the_last_minute():
    engine = AlertEngine([AlertRule(name="shield", metric="shield_interventions_per_min", op=">", threshold=30,
                                    clear_threshold=10)])
    count = 0
    raised_at = None
    for t in range(0, 200):
        count += 1 if t < 100 else 0  # one a second: 60 a minute, then none
        for e in engine.evaluate(float(t), {"shield_interventions": count}):
            if e.cleared_at_s is None:
                raised_at = e.raised_at_s
            else:
                cleared_at = e.cleared_at_s
    assert raised_at == 31  # 31 interventions in the window
    assert cleared_at == 149  # (89, 149] holds the ten at 90..99: no longer more than 10


def test_replace_rules_keeps_state_of_rules_that_remain_and_clears_removed_ones():
    cleared = []
    spill = AlertRule(name="spillback", metric="queue_spillback.*", op=">=", threshold=1, for_s=5)
    engine = AlertEngine([AlertRule(**FALLBACK), spill], on_clear=cleared.append)
    figures = {"fallback_share": 0.9, "queue_spillback.J1": 1}
    run(engine, 0, 11, 1, figures)
    fallback_alert = next(a for a in engine.active() if a.rule == "fallback")
    # keep "fallback" (threshold changed), drop "spillback", add a new one that is pending
    new_fallback = {**FALLBACK, "threshold": 0.8}
    removed = engine.replace_rules([new_fallback, {"name": "cpu", "metric": "process_cpu_pct", "threshold": 90,
                                                   "for_s": 3}])
    assert [a.rule for a in removed] == ["spillback"] and cleared == removed
    assert removed[0].cleared_at_s == 10 and "rule removed" in removed[0].message
    assert [a.id for a in engine.active()] == [fallback_alert.id]  # kept, not raised again
    assert engine.evaluate(11, {"fallback_share": 0.9, "queue_spillback.J1": 1}) == []
    assert {r.name for r in engine.rules} == {"fallback", "cpu"}
    # a pending condition of a kept rule keeps its start too
    pending = AlertEngine([AlertRule(**FALLBACK)])
    run(pending, 0, 8, 1, {"fallback_share": 0.9})
    pending.replace_rules([AlertRule(**FALLBACK)])
    assert len(pending.evaluate(10, {"fallback_share": 0.9})) == 1


@pytest.mark.parametrize(("rules", "reason"), [
    ([{**FALLBACK, "op": "=>"}], "rules[0] (fallback): op"),
    ([{**FALLBACK, "thresold": 1}], "thresold: Extra inputs are not permitted"),
    ([{**FALLBACK, "level": "panic"}], "level"),
    ([{**FALLBACK, "for_s": -1}], "for_s"),
    ([{**FALLBACK, "clear_threshold": 0.7}], "clear_threshold 0.7 must not be above threshold 0.5"),
    ([{**FALLBACK, "metric": "queue_*.x"}], "metric"),
    ([FALLBACK, {**FALLBACK, "threshold": 0.6}], "rule name 'fallback' appears more than once"),
    ([{"name": "x", "metric": "m"}], "threshold: Field required"),
])
def test_invalid_rules_are_refused_with_the_reason_and_nothing_applied(rules, reason):
    engine = AlertEngine([AlertRule(**FALLBACK)])
    run(engine, 0, 11, 1, {"fallback_share": 0.9})
    with pytest.raises(AlertConfigError, match=re.escape(reason)) as exc:
        engine.replace_rules(rules)
    assert isinstance(exc.value, ChangeRefused)  # the live loop refuses it like any other change
    assert [r.name for r in engine.rules] == ["fallback"] and len(engine.active()) == 1
    with pytest.raises(AlertConfigError):
        AlertEngine(rules)


def test_config_loads_from_yaml_and_refuses_a_bad_rule_by_name(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text("timing: {}\nalerts:\n  webhook_url: http://127.0.0.1:9/hook\n  rules:\n"
                    "    - {name: fallback_share, metric: fallback_share, op: '>', threshold: 0.9, for_s: 5}\n"
                    "    - {name: j1, metric: queue_spillback.J1, threshold: 0}\n")
    cfg = load_alert_config(path)
    assert cfg.webhook_url == "http://127.0.0.1:9/hook"
    names = [r.name for r in cfg.all_rules()]
    assert names.count("fallback_share") == 1 and "j1" in names and "stale_data" in names
    assert next(r for r in cfg.all_rules() if r.name == "fallback_share").threshold == 0.9  # the config's wins
    assert load_alert_config({"rules": [], "builtin": False}).all_rules() == []
    assert load_alert_config(None).all_rules() == list(BUILTIN_RULES)
    with pytest.raises(AlertConfigError, match=r"alerts: rules\.1\.op"):
        load_alert_config("alerts:\n  rules:\n    - {name: a, metric: m, threshold: 1}\n"
                          "    - {name: b, metric: m, op: '~', threshold: 1}\n")
    with pytest.raises(AlertConfigError, match="webhook_url 'ftp://x' must start with http"):
        load_alert_config({"alerts": {"webhook_url": "ftp://x"}})
    with pytest.raises(AlertConfigError, match="appears more than once"):
        load_alert_config([{"name": "a", "metric": "m", "threshold": 1}] * 2)


def test_builtins_cover_what_the_issue_names_and_each_says_why():
    metrics = {r.metric for r in BUILTIN_RULES}
    assert {"fallback_share", "stale_sources", "queue_spillback.*", "decision_latency_p99_ms",
            "pacing_lateness_p99_ms", "process_cpu_pct", "process_rss_mb", "shield_interventions_per_min",
            "simulator_restarts", "store_buffer_overflow"} <= metrics
    assert all(len(r.description) > 20 for r in BUILTIN_RULES)
    assert len({r.name for r in BUILTIN_RULES}) == len(BUILTIN_RULES)
    engine = AlertEngine(with_builtins([]))
    quiet = {"fallback_share": 0.0, "stale_sources": 0.0, "queue_spillback.J1": 0.0, "decision_latency_p99_ms": 2.0,
             "pacing_lateness_p99_ms": 1.0, "simulator_restarts": 0.0, "shield_interventions": 3.0,
             "store_buffer_overflow": 0.0, "process_cpu_pct": 20.0, "process_rss_mb": 300.0}
    assert run(engine, 0, 300, 1, quiet) == []


def test_acknowledge_marks_who_and_survives_clearing():
    acks = []
    engine = AlertEngine([AlertRule(**FALLBACK)], on_acknowledge=acks.append)
    alert = run(engine, 0, 11, 1, {"fallback_share": 0.9})[0]
    acked = engine.acknowledge(alert.id, "operator-1")
    assert acked.acknowledged_by == "operator-1" and acked.acknowledged_at and acks == [acked]
    assert engine.active()[0].acknowledged_by == "operator-1"
    cleared = engine.evaluate(20, {"fallback_share": 0.0})[0]
    assert cleared.acknowledged_by == "operator-1"
    assert engine.history(1)[0].acknowledged_by == "operator-1"
    with pytest.raises(KeyError):
        engine.acknowledge("nope", "operator-1")


def test_a_second_acknowledgement_never_replaces_the_first():
    engine = AlertEngine([AlertRule(**FALLBACK)])
    alert = run(engine, 0, 11, 1, {"fallback_share": 0.9})[0]
    engine.acknowledge(alert.id, "ops")
    with pytest.raises(AlreadyAcknowledged, match="acknowledged by 'ops'"):
        engine.acknowledge(alert.id, "ops2")
    assert engine.get(alert.id).acknowledged_by == "ops"


def test_a_crash_after_an_acknowledged_one_raises_a_new_alert():
    """The restart count only grows: its alert used to stay raised (and acknowledged) for the rest of the run, so
    a second crash told nobody. Acknowledging clears it; the count passing what was acknowledged raises anew."""
    raised, cleared = [], []
    rule = next(r for r in BUILTIN_RULES if r.name == "simulator_restarted")
    engine = AlertEngine([rule], on_raise=raised.append, on_clear=cleared.append)
    run(engine, 0, 5, 1, {"simulator_restarts": 0})
    first = run(engine, 5, 10, 1, {"simulator_restarts": 1})
    assert [a.value for a in first] == [1.0] and len(engine.active()) == 1
    run(engine, 10, 20, 1, {"simulator_restarts": 1})  # no figure clears it: it waits for someone to see it
    assert len(engine.active()) == 1 and not cleared
    acked = engine.acknowledge(first[0].id, "ops")
    assert acked.acknowledged_by == "ops" and acked.cleared_at_s is not None and engine.active() == []
    assert run(engine, 20, 30, 1, {"simulator_restarts": 1}) == []  # what was acknowledged: nothing new
    second = run(engine, 30, 35, 1, {"simulator_restarts": 2})
    assert [a.value for a in second] == [2.0] and second[0].id != first[0].id and len(raised) == 2


def test_a_failing_callback_does_not_reach_the_loop():
    def boom(_):
        raise RuntimeError("notifier down")

    engine = AlertEngine([AlertRule(**FALLBACK)], on_raise=boom)
    assert len(run(engine, 0, 11, 1, {"fallback_share": 0.9})) == 1


def test_process_figures():
    figures = process_figures()
    assert set(figures) == {"process_cpu_pct", "process_rss_mb"}
    assert figures["process_rss_mb"] > 10 and figures["process_cpu_pct"] >= 0


# -- webhook ---------------------------------------------------------------------------------------------------


class _Hook:
    """A local HTTP server that records JSON bodies; `gate` holds every request until set."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        self.received = threading.Semaphore(0)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.gate.wait(10)
                hook.bodies.append({"content_type": self.headers["Content-Type"], **json.loads(body)})
                self.send_response(204)
                self.end_headers()
                hook.received.release()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=10):
        for _ in range(n):
            assert self.received.acquire(timeout=timeout), "the webhook was not called"

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = _Hook()
    yield h
    h.close()


def test_webhook_posts_raised_and_cleared_alerts_as_json(hook):
    cfg = load_alert_config({"alerts": {"builtin": False, "webhook_url": hook.url, "rules": [FALLBACK]}})
    engine, notifier = engine_from_config(cfg)
    try:
        alert = run(engine, 0, 11, 1, {"fallback_share": 0.9})[0]
        engine.evaluate(11, {"fallback_share": 0.0})
        hook.wait(2)
    finally:
        notifier.close()
    assert [b["state"] for b in hook.bodies] == ["active", "cleared"]
    assert all(b["content_type"] == "application/json" for b in hook.bodies)
    assert hook.bodies[0]["id"] == alert.id and hook.bodies[0]["rule"] == "fallback"
    assert hook.bodies[0]["value"] == 0.9 and hook.bodies[1]["cleared_at_s"] == 11
    assert notifier.stats() == {"queued": 0, "sent": 2, "failed": 0, "dropped": 0, "last_error": None}


def test_webhook_queue_full_drops_and_counts_and_never_blocks(hook):
    hook.gate.clear()  # the endpoint hangs
    # the endpoint would hold a blocked caller for the whole 20 s timeout, at least once: an evaluate well under
    # that never waited on it, whatever else the (shared, maybe loaded) machine is doing
    notifier = WebhookNotifier(hook.url, timeout_s=20, max_queue=3)
    engine = AlertEngine([AlertRule(name="spill", metric="q.*", threshold=0)], on_raise=notifier.notify)
    figures = {f"q.J{i}": 1.0 for i in range(50)}
    began = time.perf_counter()
    raised = engine.evaluate(0, figures)
    took = time.perf_counter() - began
    assert len(raised) == 50
    assert took < 5, f"evaluate blocked for {took:.2f} s on a hanging webhook"
    stats = notifier.stats()
    # one in flight (held by the server), three queued, the rest dropped and counted
    assert stats["dropped"] >= 50 - 4 and stats["dropped"] + stats["queued"] <= 50
    hook.gate.set()
    hook.wait(50 - stats["dropped"])
    notifier.close()
    assert notifier.sent == 50 - stats["dropped"]


def test_webhook_failure_is_counted_not_raised():
    notifier = WebhookNotifier("http://127.0.0.1:9/nothing-listens", timeout_s=1)
    notifier.notify({"id": "x", "rule": "r"})
    notifier.close()
    assert notifier.failed == 1 and notifier.last_error
    with pytest.raises(ValueError, match="must start with http"):
        WebhookNotifier("file:///etc/passwd")
