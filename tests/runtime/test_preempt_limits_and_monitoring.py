"""Preemption's bounds and what an operator sees of it: the dwell and distance have a maximum (the configuration's,
and at run time through the API), a long or timed-out preemption raises a built-in alert, Prometheus has its
figures, and a live run ending during a preemption says so.

The emergency vehicle is the trial's stuck engine: it stops for ten minutes 116 m before `single`'s stop line,
inside the preemption distance, so its call never drops by itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.mqtt import free_port
from support.waiting import until

import signalwise
from signalwise.api.routers.live import change_limits
from signalwise.core import read_events
from signalwise.core.types import EventCode
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.alerts import engine_from_config, load_alert_config
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

NET = Path(signalwise.__file__).parent / "sim" / "scenarios" / "single" / "net.net.xml"
STUCK_ENGINE = """<routes>
    <vType id="car" vClass="passenger" length="4.5" accel="2.6" decel="4.5" sigma="0.5"/>
    <vType id="engine" vClass="emergency" length="6.5" accel="2.8" decel="5.0" sigma="0.3" speedFactor="1.3"/>
    <flow id="ns" type="car" begin="0" end="900" vehsPerHour="360" from="N_C" to="C_S"/>
    <flow id="ew" type="car" begin="0" end="900" vehsPerHour="360" from="E_C" to="C_W"/>
    <vehicle id="ev_stuck" type="engine" depart="5" departLane="1" departSpeed="max">
        <route edges="W_C C_E"/>
        <stop lane="W_C_1" endPos="120" duration="600"/>
    </vehicle>
</routes>
"""


def _routes(tmp_path: Path) -> Path:
    path = tmp_path / "stuck_engine.rou.xml"
    path.write_text(STUCK_ENGINE)
    return path


@pytest.mark.parametrize(("key", "too_far", "maximum", "said"), [
    ("preempt_max_dwell_s", 100000, 300, "at most 300 s"),
    ("preempt_distance_m", 1e9, 1000, "at most 1000 m"),
])
def test_a_preemption_dwell_or_distance_past_its_maximum_is_refused_with_value_limit_and_why(key, too_far, maximum,
                                                                                             said):
    with pytest.raises(ValidationError) as err:
        RunConfig(shield={key: too_far})
    assert f"{too_far:g} is too large: {said}" in str(err.value)
    assert getattr(RunConfig(shield={key: maximum}).shield, key) == maximum  # the maximum itself runs
    # a form offers no value the server refuses: the limits the API hands out carry the maximum
    assert change_limits("safety", {})["shield"][key]["max"] == maximum


@pytest.mark.slow
def test_a_preemption_held_to_its_max_dwell_counts_its_call_and_timeout_and_raises_the_timeout_alert(tmp_path):
    """Dwell 30 s: the stuck engine's preemption ends at its maximum presence (110, then 104). The figures the
    alert rules read count the log's own 102 and 110, and the built-in preempt_timeout alert names the signal."""
    run_dir = tmp_path / "run"
    alerts, _ = engine_from_config(load_alert_config({}))  # the built-in rules, as `signalwise live` runs them
    rt = LiveRuntime(RunConfig(net=NET, routes=[_routes(tmp_path)], controller="max-pressure",
                               shield={"preempt_max_dwell_s": 30}),
                     LiveOptions(speed=None, duration_s=150, in_process=True, alerts_hz=1000.0), run_dir,
                     alerts=alerts)
    rt.open()
    rt.run()
    events = list(read_events(run_dir / "events.csv"))
    calls = [e for e in events if e.event_code == EventCode.PREEMPT_CALL_ON]
    timeouts = [e for e in events if e.event_code == EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED]
    assert len(calls) >= 1 and len(timeouts) >= 1
    figures = rt.metrics()
    assert figures["preempt_calls"] == len(calls) and figures["preempt_timeouts"] == len(timeouts)
    assert figures["preempt_active"] == 0 and figures["preempt_active_s"] == 0  # the timeout ended it
    alerts = [json.loads(line) for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
    raised = [a for a in alerts if a["rule"] == "preempt_timeout"]
    assert raised and raised[0]["level"] == "warning"
    assert raised[0]["raised_at_s"] >= timeouts[0].time_s
    assert raised[0]["subjects"] == ["C"] and f"the last at t={timeouts[0].time_s:.0f} s" in raised[0]["message"]
    assert not (json.loads((run_dir / "run.json").read_text())).get("preemptions_in_force")


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _put(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _metric(base: str, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.split(" ")[1])
    return None


def _preempt_long(base: str) -> dict | None:
    alerts = _get(f"{base}/api/v1/live/alerts") or {}
    return next((a for a in alerts.get("active", []) if a["rule"] == "preempt_long"), None)


@pytest.mark.slow
def test_a_live_run_refuses_an_endless_dwell_alerts_on_a_long_preemption_and_says_it_ended_during_one(tmp_path):
    """A real `signalwise live` on 127.0.0.1, dwell 250 s: an operator's dwell of 100000 s is refused naming the
    value and the limit; the preemption active past 120 s raises preempt_long and shows in /metrics; stopped
    while it holds, the run says so on stderr and in run.json, and its log has the 102 without a 104."""
    config = tmp_path / "dwell.yaml"
    config.write_text("shield:\n  preempt_max_dwell_s: 250\n")
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "live", "--net", str(NET),
                             "--routes", str(_routes(tmp_path)), "-c", "max-pressure", "--config", str(config),
                             "--speed", "20", "--duration", "900", "--port", str(port), "--insecure-no-auth",
                             "--out", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert until(lambda: (_get(f"{base}/api/v1/live/status") or {}).get("running"), 60)
        code, answer = _put(f"{base}/api/v1/live/config/shield", {"shield": {"preempt_max_dwell_s": 100000}})
        assert code == 422, answer
        assert "preempt_max_dwell_s" in str(answer) and "100000" in str(answer) and "at most 300 s" in str(answer)
        limits = (_get(f"{base}/api/v1/live/config") or {})["limits"]["shield"]
        assert limits["preempt_max_dwell_s"] == {"min": 10.0, "max": 300.0}
        assert until(lambda: _preempt_long(base) is not None, 60)
        alert = _preempt_long(base)
        assert alert["level"] == "warning" and alert["subjects"] == ["C"] and "preempt 1 on since" in alert["message"]
        assert _metric(base, "signalwise_preempt_active") == 1.0
        assert _metric(base, "signalwise_preempt_active_seconds") > 120
        assert _metric(base, "signalwise_preempt_calls_total") >= 1
        assert _metric(base, "signalwise_preempt_timeouts_total") == 0  # 250 s of dwell have not run yet
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    run_dir = next((tmp_path / "runs").iterdir())
    events = list(read_events(run_dir / "events.csv"))
    on = [e for e in events if e.device_id == "C" and e.event_code == EventCode.PREEMPT_CALL_ON]
    assert on and not [e for e in events if e.event_code == EventCode.PREEMPT_CALL_OFF and e.time_s >= on[-1].time_s]
    said = [line for line in err.splitlines() if "when the run ended" in line]
    assert said and said[0].startswith("warning: C: preempt 1 on since") and f"t={on[-1].time_s:.0f} s" in said[0]
    in_force = json.loads((run_dir / "run.json").read_text())["preemptions_in_force"]
    assert len(in_force) == 1 and in_force[0].startswith(f"C: preempt 1 on since t={on[-1].time_s:.0f} s")
