"""What the alert webhook is told, and how its deliveries show.

Found in a trial: (1) a camera ended while `stale_data` was already raised for other signals; J1 joined the active
alert and the webhook got no POST; (2) alerts active at a run's end (completed, or killed and found by the next run)
were never cleared at the webhook, so an incident system kept them open; (3) a webhook whose receiver is down was
seen only in the log. A real receiver on 127.0.0.1 takes the POSTs; the runs are real live runs without a simulator.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.waiting import until

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.alerts import engine_from_config, load_alert_config


@pytest.fixture
def receiver():
    """An HTTP receiver on 127.0.0.1: (its URL, the JSON bodies it got, in order)."""
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _engine(url: str, *rules: dict):
    return engine_from_config(load_alert_config({"alerts": {"webhook_url": url, "rules": list(rules)}}))


def test_a_signal_joining_an_active_alert_is_posted_as_an_update(receiver):
    url, got = receiver
    engine, notifier = _engine(url, {"name": "stale_data", "for_s": 0})
    try:
        engine.evaluate(0.0, {"stale_sources": 4}, subjects={"stale_sources": {
            s: "feed:detectors: no message yet" for s in ("J2", "J3", "J4", "J5")}})
        engine.evaluate(1.0, {"stale_sources": 5}, subjects={"stale_sources": {
            **{s: "feed:detectors: no message yet" for s in ("J2", "J3", "J4", "J5")},
            "J1": "camera:cam-n unhealthy: stream cam-n ended"}})
        assert until(lambda: len(got) == 2, 10), got
    finally:
        notifier.close()
    raised, updated = got
    assert (raised["event"], raised["state"], updated["event"], updated["state"]) == (
        "raised", "active", "updated", "active")
    assert updated["id"] == raised["id"] and "J1" in updated["now_subjects"] and "J1" not in raised["now_subjects"]
    assert "stream cam-n ended" in updated["now_message"]


def _live(run_dir: Path, engine, duration_s: float = 60.0):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=None, duration_s=duration_s, field="none",
                                                                 sink="shadow"), run_dir, alerts=engine)
    rt.open()
    rt.run()
    return rt


def _alert_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "alerts.jsonl").read_text().splitlines()]


def test_alerts_active_at_the_end_of_a_run_are_cleared_and_posted(receiver, tmp_path):
    url, got = receiver
    engine, notifier = _engine(url, {"name": "stale_data", "for_s": 0})
    run_dir = tmp_path / "20261129-000000-live-corridor-actuated"
    try:
        rt = _live(run_dir, engine)
        assert until(lambda: any(b["event"] == "cleared" for b in got), 10), got
        # the receiver holds a POST before it answers, and the notifier counts it sent once answered
        until(lambda: rt.status()["alerts_webhook"]["sent"] >= 2, 10)
        status = rt.status()["alerts_webhook"]
    finally:
        notifier.close()
    stale = [b for b in got if b["rule"] == "stale_data"]
    assert [b["event"] for b in stale][0] == "raised" and stale[-1]["event"] == "cleared", stale
    assert stale[-1]["cleared_reason"].startswith("the run ended"), stale[-1]
    last = {r["id"]: r for r in _alert_rows(run_dir)}
    assert all(r["cleared_at_s"] is not None for r in last.values()), last
    assert engine.active() == []
    assert status["sent"] >= 2 and status["failed"] == 0 and status["url"] == url, status


def test_alerts_a_killed_run_left_open_are_cleared_by_the_next_run(receiver, tmp_path):
    url, got = receiver
    first = tmp_path / "20261129-000000-live-corridor-actuated"
    engine, notifier = _engine(url, {"name": "stale_data", "for_s": 0})
    try:
        _live(first, engine)
    finally:
        notifier.close()
    # as SIGKILL leaves it: run.json `running` with a process that is gone, alerts.jsonl without the clears
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = json.loads((first / "run.json").read_text())
    run = {k: v for k, v in run.items() if k not in ("finished", "sim_time_s", "profiler")}
    run.update(status="running", process={"pid": gone.pid, "host": socket.gethostname()})
    (first / "run.json").write_text(json.dumps(run))
    rows = [r for r in _alert_rows(first) if r["cleared_at_s"] is None]
    (first / "alerts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    left_open = {r["id"] for r in rows}
    assert left_open
    got.clear()

    second = tmp_path / "20261129-000100-live-corridor-actuated"
    engine, notifier = _engine(url)
    try:
        _live(second, engine, duration_s=5.0)
        assert until(lambda: left_open <= {b["id"] for b in got if b["event"] == "cleared"}, 10), got
    finally:
        notifier.close()
    cleared = [b for b in got if b["id"] in left_open]
    assert all(b["simulation_id"] == first.name and "its run died" in b["cleared_reason"] for b in cleared), cleared
    assert all(r["cleared_at_s"] is not None for r in {r["id"]: r for r in _alert_rows(first)}.values())


def test_failed_deliveries_show_in_the_status(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    engine, notifier = _engine(dead, {"name": "stale_data", "for_s": 0})
    try:
        rt = _live(tmp_path / "20261129-000000-live-corridor-actuated", engine)
        assert until(lambda: rt.status()["alerts_webhook"]["failed"] >= 2, 10), rt.status()["alerts_webhook"]
        status = rt.status()["alerts_webhook"]
    finally:
        notifier.close()
    assert status["sent"] == 0 and "Connection refused" in status["last_error"], status


def test_a_second_shield_change_before_the_first_is_acknowledged_is_posted_and_stays_until_seen(receiver):
    """`shield_changed` waits for a person: a second change by another operator before the first was
    acknowledged was silent (the alert named the first alone), and acknowledging the first cleared both. Nor does
    the run's end clear it: nothing but a person ends it."""
    url, got = receiver
    engine, notifier = _engine(url)
    try:
        engine.evaluate(0.0, {"shield_changes": 1},
                        subjects={"shield_changes": {"alice": "confidence_threshold 0.5 -> 0.7 at t=0 s"}})
        engine.evaluate(1.0, {"shield_changes": 2},
                        subjects={"shield_changes": {"bob": "confidence_threshold 0.7 -> 0.6 at t=1 s"}})
        engine.evaluate(2.0, {"shield_changes": 2},
                        subjects={"shield_changes": {"bob": "confidence_threshold 0.7 -> 0.6 at t=1 s"}})
        assert until(lambda: len(got) == 2, 10), got
        (active,) = engine.active()
        assert active.now_subjects == ("bob",) and active.now_value == 2
        assert engine.end_run("the run ended: its figures are no longer watched") == []
        assert [a.id for a in engine.active()] == [active.id]
    finally:
        notifier.close()
    assert [(b["event"], b["rule"]) for b in got] == [("raised", "shield_changed"), ("updated", "shield_changed")]
    assert "bob" in got[1]["now_message"] and "0.7 -> 0.6" in got[1]["now_message"]
