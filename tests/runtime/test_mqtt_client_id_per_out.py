"""`signalwise live --mqtt`'s MQTT session is the corridor lock's (feeds engineer's trial): a run restarted in the
same `--out` resumes its predecessor's session, while a run of the same network from another `--out` (which the
corridor lock lets run beside it) gets one of its own instead of taking that one from it, which would leave
both stopping their feeds (`mqtt.py`: a session taken over is not reconnected)."""

from __future__ import annotations

import os

from signalwise.api.live_command import mqtt_client_id


def test_two_out_directories_get_two_sessions_and_a_restart_keeps_its_own(tmp_path, monkeypatch):
    first, second = tmp_path / "site-a", tmp_path / "site-b"
    assert mqtt_client_id(first, "corridor") != mqtt_client_id(second, "corridor")
    assert mqtt_client_id(first, "corridor") == mqtt_client_id(first, "corridor")
    # the same directory named another way (relative, through a link) is the same corridor lock, the same session
    monkeypatch.chdir(tmp_path)
    os.symlink(first, tmp_path / "link")
    assert mqtt_client_id(first, "corridor") == mqtt_client_id(os.path.relpath(first), "corridor") \
        == mqtt_client_id(tmp_path / "link", "corridor")
    # another network in the same --out has its own lock, and its own session
    assert mqtt_client_id(first, "corridor") != mqtt_client_id(first, "grid")
    assert mqtt_client_id(first, "corridor").startswith("signalwise-feed-")


def test_signalwise_live_connects_under_its_corridor_locks_id(tmp_path):
    """`signalwise live --field none --mqtt` against a Mosquitto of the test's own, which logs each client's id."""
    import signal
    import subprocess
    import urllib.request

    from support.mqtt import free_port, own_mosquitto, start_feed_live
    from support.waiting import until

    def connected(base: str) -> bool:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
                return "signalwise_feed_mqtt_connected 1.0" in r.read().decode()
        except OSError:
            return False

    port, log = free_port(), tmp_path / "mosquitto.log"
    site = tmp_path / "site"
    site.mkdir()
    with own_mosquitto(tmp_path, f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {log}\n"
                                 "log_type notice\n"):
        proc, base = start_feed_live(site, port)  # its --out: site/runs
        try:
            assert until(lambda: connected(base), 30.0), "the run never connected to the broker"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    said = log.read_text()
    assert f" as {mqtt_client_id(site / 'runs', 'corridor')} " in said, said
