"""An MQTT broker the live run cannot reach is named in an alert, and the shield's data age has a ceiling.

- `signalwise live --field none --mqtt 127.0.0.1:PORT` against a Mosquitto of the test's own: the broker stopped,
  the built-in `mqtt_disconnected` alert is raised after its hold, naming the broker and the last connection
  error; a broker on the same port again clears it. A run started against a port where nothing listens raises it
  too, with the system's reason (`Connection refused`); the two runs go side by side, waiting out the hold once.
  The runs shorten the rule's 10 s hold to HOLD_S by name in `--config` (a shorter wait, and the client's growing
  reconnection delay is shorter when the broker comes back); the built-in's own 10 s is checked below.
  The broker's part skips with the reason when mosquitto is not installed.
- `shield.max_observation_age_s` above 300 s (the stale-data fallback switched off) is refused in a run
  configuration (exit 2, one line) and as a live change (422), each naming the bound.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml
from support.cli import signalwise
from support.cli_checks import refused
from support.mqtt import free_port, mosquitto_missing_reason, own_mosquitto, start_feed_live
from support.waiting import until, value_within

from signalwise.runtime.live.alerts import BUILTIN_RULES, SAFETY_LIMITS

#: the built-in rule's hold is 10 wall seconds, shortened to this for the runs here (`_hold_config`); the client
#: retries with a delay growing 1, 2, 4, 8 s …, so a refused reconnection is in the alert's message
HOLD_S = 6.0


def _hold_config(tmp_path) -> tuple[str, str]:
    """`--config FILE`: the built-in `mqtt_disconnected` adjusted by name, its hold HOLD_S wall seconds."""
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"rules": [{"name": "mqtt_disconnected", "for_s": HOLD_S}]}}))
    return "--config", str(config)


def _plain_listener(port: int) -> str:
    return f"listener {port} 127.0.0.1\nallow_anonymous true\n"


def _stop_live(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _running(base: str) -> bool:
    status = _get(f"{base}/api/v1/live/status")
    return bool(status and status.get("running"))


def _mqtt_alert(base: str, *, active: bool = True) -> dict | None:
    """The `mqtt_disconnected` alert, active (or, `active=False`, the latest cleared one)."""
    alerts = _get(f"{base}/api/v1/live/alerts")
    if alerts is None:
        return None
    if active:
        return next((a for a in alerts["active"] if a["rule"] == "mqtt_disconnected"), None)
    return next((a for a in alerts["history"] if a["rule"] == "mqtt_disconnected" and a["cleared_at_s"] is not None),
                None)


def _connected(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            return "signalwise_feed_mqtt_connected 1.0" in r.read().decode()
    except OSError:
        return False


def _a_run_never_connected_raises_it_and_refuses_a_data_age_past_the_bound(base: str, port: int) -> None:
    """The run started against `port`, where nothing listens: the alert after the hold, the status, and the
    shield's data age refused past its bound as a live change."""
    assert until(lambda: _running(base), 90.0), "signalwise live (nothing listening at its broker) did not start"
    alert = value_within(lambda: _mqtt_alert(base), 40.0, every_s=0.2)
    assert alert is not None, _get(f"{base}/api/v1/live/alerts")
    assert alert["subjects"] == [f"127.0.0.1:{port}"], alert
    assert f"at 127.0.0.1:{port} (cannot connect to the broker at 127.0.0.1:{port} (Connection refused" in \
        alert["message"], alert["message"]
    # the status says it too, for an operator who reads the run's state rather than its alerts
    mqtt = _get(f"{base}/api/v1/live/status")["feeds"]["mqtt"]
    assert mqtt["broker"] == f"127.0.0.1:{port}" and mqtt["connected"] is False, mqtt
    assert "Connection refused" in mqtt["connection_error"], mqtt
    # the shield's data age: a live change past the bound is refused naming it, and nothing is applied
    before = _get(f"{base}/api/v1/live/config")["shield"]["max_observation_age_s"]
    req = urllib.request.Request(f"{base}/api/v1/live/config/shield", method="PUT",
                                 data=json.dumps({"shield": {"max_observation_age_s": 100000}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(req, timeout=5)
    assert refusal.value.code == 422
    message = json.loads(refusal.value.read())["message"]
    assert message.startswith("change refused: shield.max_observation_age_s: ") and "300" in message, message
    assert _get(f"{base}/api/v1/live/config")["shield"]["max_observation_age_s"] == before
    ok = urllib.request.Request(f"{base}/api/v1/live/config/shield", method="PUT",
                                data=json.dumps({"shield": {"max_observation_age_s": 300}}).encode(),
                                headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(ok, timeout=5) as r:
        assert json.loads(r.read())["result"] == "applied"


@pytest.mark.slow
def test_a_stopped_broker_and_one_never_reached_raise_mqtt_disconnected_naming_them(tmp_path):
    """Two runs side by side, so that the rule's 10 s hold is waited out once for both: one connected to a
    Mosquitto that is stopped (the alert, naming the broker) and started again (it clears), one started against
    a port where nothing listens (the alert, with the system's reason)."""
    unreached_dir, lost_dir = tmp_path / "unreached", tmp_path / "lost"
    unreached_dir.mkdir()
    lost_dir.mkdir()
    nobody = free_port()  # nobody listens there
    unreached, unreached_base = start_feed_live(unreached_dir, nobody, *_hold_config(unreached_dir))
    lost = None
    try:
        missing = mosquitto_missing_reason()
        if missing is None:
            port = free_port()
            with own_mosquitto(lost_dir, _plain_listener(port)):
                lost, base = start_feed_live(lost_dir, port, *_hold_config(lost_dir))
                assert until(lambda: _running(base), 90.0), "signalwise live did not start"
                assert until(lambda: _connected(base), 30.0), "the run never connected to the broker"
                assert _mqtt_alert(base) is None
            # the broker is stopped: not at once (the hold; meanwhile the other run's alert is checked)
            assert _mqtt_alert(base) is None
        _a_run_never_connected_raises_it_and_refuses_a_data_age_past_the_bound(unreached_base, nobody)
        if missing is not None:
            pytest.skip(f"the broker stopped and started again: {missing}")
        # then the alert names the broker and why
        alert = value_within(lambda: _mqtt_alert(base), 30.0, every_s=0.2)
        assert alert is not None, _get(f"{base}/api/v1/live/alerts")
        broker = f"127.0.0.1:{port}"
        assert alert["level"] == "warning" and alert["metric"] == "mqtt_disconnected", alert
        assert alert["subjects"] == [broker], alert
        assert alert["message"].startswith(
            f"mqtt_disconnected: mqtt_disconnected = 1 >= 1 for {HOLD_S:g} s at {broker} ("), \
            alert["message"]
        # the last connection error, in the client's words: the reconnection refused by the port nobody serves now
        assert f"cannot connect to the broker at {broker} (Connection refused" in alert["message"], alert["message"]
        # a broker on the same port again: the client reconnects (its delay grows 1, 2, 4, 8 s … while the test waits) and it clears
        with own_mosquitto(lost_dir, _plain_listener(port)):
            cleared = value_within(lambda: _mqtt_alert(base, active=False), 60.0, every_s=0.2)
            assert cleared is not None, _get(f"{base}/api/v1/live/alerts")
            assert cleared["id"] == alert["id"] and cleared["cleared_value"] == 0, cleared
            assert _mqtt_alert(base) is None
            assert _running(base)
    finally:
        ended = [(proc, _stop_live(proc)) for proc in (unreached, lost) if proc is not None]  # both, then judged
        for proc, err in ended:
            assert proc.returncode == 0, err[-2000:]


def test_mqtt_disconnected_is_built_in_but_not_a_safety_alert():
    """stale_data (a safety alert) covers what a lost broker does to the signals; this one says why."""
    rule = next(r for r in BUILTIN_RULES if r.name == "mqtt_disconnected")
    assert (rule.metric, rule.op, rule.threshold, rule.for_s, rule.level) == (
        "mqtt_disconnected", ">=", 1, 10, "warning")
    assert "mqtt_disconnected" not in SAFETY_LIMITS and "stale_data" in SAFETY_LIMITS


def test_a_run_configuration_with_a_data_age_past_the_bound_is_refused_naming_it(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"shield": {"max_observation_age_s": 100000}}))
    r = signalwise("live", "--scenario", "single", "--field", "none", "--speed", "max", "--duration", "5",
                   "--config", str(config), "--out", str(tmp_path / "runs"), "--port", str(free_port()),
                   "--insecure-no-auth")
    refused(r, "max_observation_age_s", "300")
