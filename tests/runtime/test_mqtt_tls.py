"""The detector feed over MQTT with TLS, against a Mosquitto of each test's own with a TLS listener on a free
loopback port and a throwaway CA made by the `openssl` program (both skip with the reason when missing).

What a city's broker on 8883 needs: messages arrive over TLS; a broker whose certificate the client does not
trust, or that names another host, is refused with the reason logged and kept as `last_error`, the feed serving
no data meanwhile (so the shield's fallback serves); a broker that asks for a client certificate gets one; and a
CA file, certificate or key that cannot be used is one error line and exit 2 before the run starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import urllib.request
import uuid

import pytest
from support.cli import signalwise
from support.cli_checks import refused
from support.mqtt import MQTT_ENV, free_port, own_mosquitto, start_feed_live, throwaway_pki
from support.waiting import until, value_within

from signalwise.core.types import ObservationNeed
from signalwise.runtime.live.feeds import SOURCE
from signalwise.runtime.live.mqtt import PLAIN_PORT_HINT, TLS_PORT_HINT, MqttFeed, TlsSetupError, tls_context


@pytest.fixture
def pki(tmp_path):
    return throwaway_pki(tmp_path)


def _tls_listener(pki, port: int, *, client_certificate: bool = False) -> str:
    config = (f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {pki['ca.crt']}\n"
              f"certfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n")
    return config + ("require_certificate true\n" if client_certificate else "")


@pytest.fixture
def tls_broker(tmp_path, pki):
    """A broker speaking only TLS, its certificate signed by the test's CA for 127.0.0.1."""
    with own_mosquitto(tmp_path, _tls_listener(pki, free_port())) as port:
        yield port


@pytest.fixture
def client_cert_broker(tmp_path, pki):
    """The same, but it admits only clients with a certificate its CA signed."""
    with own_mosquitto(tmp_path, _tls_listener(pki, free_port(), client_certificate=True)) as port:
        yield port


def _publisher(port: int, pki, *, with_client_certificate: bool = False):
    """A publishing client over TLS that trusts the test's CA (a field device); `publish(topic, payload)` waits
    for the broker to take each message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    cert = (str(pki["client.crt"]), str(pki["client.key"])) if with_client_certificate else (None, None)
    pub.tls_set(ca_certs=str(pki["ca.crt"]), certfile=cert[0], keyfile=cert[1])
    pub.connect("127.0.0.1", port)
    pub.loop_start()

    def publish(topic: str, payload: dict) -> None:
        pub.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5.0)

    return pub, publish


def _stop(*clients) -> None:
    for client in clients:
        if isinstance(client, MqttFeed):
            client.stop()
        else:
            client.loop_stop()
            client.disconnect()


def _stopbar(corridor, tls="J1"):
    inter = next(i for i in corridor if i.id == tls)
    return inter, next(d for d in inter.detectors if d.kind == "stopbar")


def _count(dev, ch, n, t):
    return {"device_id": dev, "channel": ch, "count_veh": n, "occupancy": 0.1, "interval_s": 60.0, "sim_time_s": t}


# ---------------------------------------------------------------------------
# Over TLS
# ---------------------------------------------------------------------------


def test_messages_arrive_over_tls_from_a_broker_the_ca_file_vouches_for(feed, corridor, pki, tls_broker):
    inter, sb = _stopbar(corridor)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, "127.0.0.1", tls_broker, prefix=prefix, tls=tls_context(pki["ca.crt"]))
    pub, publish = _publisher(tls_broker, pki)
    try:
        sub.start()
        assert sub.wait_subscribed(5.0), sub.stats()
        publish(f"{prefix}/J1/detectors", _count("J1", sb.channel, 4, 5.0))
        need = ObservationNeed(detector_count_ids=(sb.id,))
        assert until(lambda: feed.observe(inter, 6.0, need).detector_counts_veh.get(sb.id) == 4, 5.0), sub.stats()
        stats = sub.stats()
        assert stats["connected"] and stats["last_error"] is None and (stats["accepted"], stats["rejected"]) == (1, 0)
    finally:
        _stop(sub, pub)


def test_a_broker_signed_by_another_ca_is_refused_with_the_reason_logged_and_no_data_taken(
        feed, corridor, pki, tls_broker, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.live.mqtt")
    inter, sb = _stopbar(corridor)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, "127.0.0.1", tls_broker, prefix=prefix, tls=tls_context(pki["other-ca.crt"]))
    pub, publish = _publisher(tls_broker, pki)  # a device that trusts the broker: its messages are there to take
    try:
        sub.start()
        error = value_within(lambda: sub.stats()["last_error"], 5.0)
        assert error, sub.stats()
        # OpenSSL's own reason after the broker's address (its words differ between OpenSSL versions)
        said = re.match(rf"the broker at 127\.0\.0\.1:{tls_broker} failed TLS verification: ([^(]+) \(retrying", error)
        assert said and said.group(1).strip(), error
        assert any(error in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
        publish(f"{prefix}/J1/detectors", _count("J1", sb.channel, 4, 5.0))
        assert not sub.wait_subscribed(1.5) and not sub.stats()["connected"]
        # the feed has nothing for the intersection: its source is unhealthy, and the shield serves its fallback
        health = next(s for s in feed.observe(inter, 6.0, ObservationNeed(detector_count_ids=(sb.id,))).sources
                      if s.source == SOURCE)
        assert not health.healthy and sub.stats()["received"] == 0
    finally:
        _stop(sub, pub)


def test_a_broker_whose_certificate_names_another_host_is_refused(feed, pki, tls_broker):
    """Its certificate is for 127.0.0.1: reached as `localhost`, the name does not match, and it is not trusted
    though its CA is."""
    sub = MqttFeed(feed, "localhost", tls_broker, tls=tls_context(pki["ca.crt"]))
    try:
        sub.start()
        assert until(lambda: "failed TLS verification" in (sub.stats()["last_error"] or ""), 5.0), sub.stats()
        assert "localhost" in sub.stats()["last_error"] and not sub.stats()["connected"]
    finally:
        sub.stop()


def _first_error(feed, port: int, tls=None) -> str | None:
    """The first error a feed connecting to 127.0.0.1:`port` keeps, within 5 s."""
    sub = MqttFeed(feed, "127.0.0.1", port, tls=tls)
    try:
        sub.start()
        return value_within(lambda: sub.stats()["last_error"], 5.0)
    finally:
        sub.stop()


def test_a_plain_client_on_a_tls_port_is_told_to_add_tls(feed, tls_broker):
    """Mosquitto resets a plain connection on its TLS listener, and the system says only "Connection reset by
    peer": the error names the likely cause and both ways out."""
    error = _first_error(feed, tls_broker)
    assert error and error.startswith(f"disconnected from 127.0.0.1:{tls_broker}: "), error
    assert "Connection reset by peer" in error and error.endswith(
        "a port that speaks only TLS ends a plain connection this way: add --mqtt-tls (or --mqtt-ca-file), "
        "or give the broker's plain port (often 1883)"), error


def test_a_tls_client_on_a_plain_port_is_told_to_give_the_tls_port(feed, pki, tmp_path):
    with own_mosquitto(tmp_path, f"listener {free_port()} 127.0.0.1\nallow_anonymous true\n") as plain_port:
        error = _first_error(feed, plain_port, tls_context(pki["ca.crt"]))
    assert error and error.startswith(f"cannot connect to the broker at 127.0.0.1:{plain_port} ("), error
    assert error.endswith("a plain MQTT port ends a TLS connection this way: give the broker's TLS port (often "
                          "8883), or leave out --mqtt-tls and the TLS files for a plain one"), error


def test_a_tls_client_on_a_port_that_closes_cleanly_is_told_to_give_the_tls_port(feed, pki):
    """A listener that reads the handshake and closes (FIN, not Mosquitto's reset): OpenSSL says "EOF occurred in
    violation of protocol", the same mismatch in other words."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def close_after_reading():
        server.settimeout(10)
        try:
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(4096)
        except OSError:
            return  # closed at the test's end

    threading.Thread(target=close_after_reading, daemon=True).start()
    try:
        error = _first_error(feed, port, tls_context(pki["ca.crt"]))
    finally:
        server.close()
    assert error and error.startswith(f"TLS with the broker at 127.0.0.1:{port} failed: "), error
    assert error.endswith(PLAIN_PORT_HINT), error


def test_a_broker_that_is_down_gets_no_port_hint(feed, pki):
    for tls in (None, tls_context(pki["ca.crt"])):
        error = _first_error(feed, free_port(), tls)
        assert error and "Connection refused" in error, error
        assert TLS_PORT_HINT not in error and PLAIN_PORT_HINT not in error, error


def test_a_broker_that_asks_for_a_client_certificate_gets_one_and_refuses_a_client_without(
        feed, corridor, pki, client_cert_broker):
    inter, sb = _stopbar(corridor)
    without = MqttFeed(feed, "127.0.0.1", client_cert_broker, tls=tls_context(pki["ca.crt"]))
    try:
        without.start()
        assert until(lambda: "certificate" in (without.stats()["last_error"] or ""), 5.0), without.stats()
        assert not without.stats()["connected"]
    finally:
        without.stop()
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    # the key encrypted, its password given as SIGNALWISE_MQTT_KEY_PASSWORD gives it
    context = tls_context(pki["ca.crt"], pki["client.crt"], pki["client-encrypted.key"], "pw")
    sub = MqttFeed(feed, "127.0.0.1", client_cert_broker, prefix=prefix, tls=context)
    pub, publish = _publisher(client_cert_broker, pki, with_client_certificate=True)
    try:
        sub.start()
        assert sub.wait_subscribed(5.0), sub.stats()
        publish(f"{prefix}/J1/detectors", _count("J1", sb.channel, 6, 5.0))
        need = ObservationNeed(detector_count_ids=(sb.id,))
        assert until(lambda: feed.observe(inter, 6.0, need).detector_counts_veh.get(sb.id) == 6, 5.0), sub.stats()
    finally:
        _stop(sub, pub)


# ---------------------------------------------------------------------------
# Files that cannot be used: refused when the context is made, naming the file
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("files", "says"), [
    ({"ca_file": "missing.crt"}, "CA file {dir}/missing.crt: no such file or directory"),
    ({"ca_file": "certs"}, "CA file {dir}/certs: is a directory"),
    ({"ca_file": "server.key"}, "CA file {dir}/server.key holds no certificate"),
    ({"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "server.key"},
     "client key file {dir}/server.key is not the key of the certificate in client certificate file "
     "{dir}/client.crt"),
    ({"ca_file": "ca.crt", "cert_file": "client.crt"}, "client certificate file {dir}/client.crt holds no private key"),
    ({"ca_file": "ca.crt", "cert_file": "server.ext", "key_file": "client.key"},
     "client certificate file {dir}/server.ext holds no certificate"),
    ({"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "missing.key"},
     "client key file {dir}/missing.key: no such file or directory"),
    ({"ca_file": "ca.crt", "key_file": "client.key"}, "no client certificate is given for this key"),
    ({"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client-encrypted.key"},
     "the key is encrypted; give its password"),
    ({"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client-encrypted.key", "key_password": "nope"},
     "the key could not be decrypted"),
])
def test_a_file_that_cannot_be_used_is_refused_naming_it(tmp_path, pki, files, says):
    (tmp_path / "certs").mkdir()
    paths = {k: (v if k == "key_password" else tmp_path / v) for k, v in files.items()}
    with pytest.raises(TlsSetupError) as refused_here:
        tls_context(**paths)
    assert says.format(dir=tmp_path) in str(refused_here.value)


def test_an_unreadable_file_is_refused(tmp_path, pki):
    if os.geteuid() == 0:
        pytest.skip("root reads any file: there is no unreadable file to show")
    pki["ca.crt"].chmod(0)
    with pytest.raises(TlsSetupError, match="permission denied"):
        tls_context(pki["ca.crt"])


def test_the_system_ca_store_verifies_without_a_ca_file():
    """`--mqtt-tls` alone: the broker's certificate must chain to a CA the system trusts, its name checked."""
    import ssl

    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats() == ssl.create_default_context().cert_store_stats()  # the system's CAs


# ---------------------------------------------------------------------------
# `signalwise live`: refused at start, one line, exit 2, no run
# ---------------------------------------------------------------------------


def _live_refused(tmp_path, *args, env=None):
    done = signalwise("live", "--scenario", "single", "--field", "none", "--speed", "max", "--duration", "5",
                      "--out", str(tmp_path / "runs"), "--port", "0", *args, env=env, unset=MQTT_ENV)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing ran
    return done


@pytest.mark.parametrize(("args", "env", "says"), [
    (("--mqtt-ca-file", "{dir}/missing.crt"), {}, ["--mqtt-ca-file {dir}/missing.crt: no such file"]),
    ((), {"SIGNALWISE_MQTT_CA_FILE": "{dir}/missing.crt"}, ["SIGNALWISE_MQTT_CA_FILE {dir}/missing.crt: no such"]),
    (("--mqtt-ca-file", "{dir}/server.key"), {}, ["--mqtt-ca-file {dir}/server.key holds no certificate"]),
    (("--mqtt-cert-file", "{dir}/client.crt", "--mqtt-key-file", "{dir}/server.key"), {},
     ["--mqtt-key-file {dir}/server.key is not the key of the certificate in --mqtt-cert-file {dir}/client.crt"]),
    (("--mqtt-cert-file", "{dir}/client.crt", "--mqtt-key-file", "{dir}/client-encrypted.key"), {},
     ["the key is encrypted; give its password in SIGNALWISE_MQTT_KEY_PASSWORD"]),
    (("--mqtt-tls",), {"SIGNALWISE_MQTT_KEY_PASSWORD": "pw"}, ["SIGNALWISE_MQTT_KEY_PASSWORD is set without a client"]),
])
def test_live_refuses_tls_files_that_cannot_be_used_before_it_starts(tmp_path, pki, args, env, says):
    args = [a.format(dir=tmp_path) for a in args]
    env = {k: v.format(dir=tmp_path) for k, v in env.items()}
    refused(_live_refused(tmp_path, "--mqtt", "127.0.0.1:8883", *args, env=env), *[s.format(dir=tmp_path)
                                                                                    for s in says])


def test_live_refuses_tls_options_without_a_broker(tmp_path, pki):
    refused(_live_refused(tmp_path, "--mqtt-tls", "--mqtt-ca-file", str(pki["ca.crt"])),
            "--mqtt-ca-file, --mqtt-tls", "give --mqtt HOST:PORT")


@pytest.mark.slow
def test_live_takes_detector_messages_over_tls(tmp_path, pki, tls_broker):
    """The command end to end: `--mqtt-ca-file` reaches the feed's client, which connects and takes a message
    (counted on /metrics under mqtt)."""
    proc, base = start_feed_live(tmp_path, tls_broker, "--mqtt-ca-file", str(pki["ca.crt"]), duration_s=60)
    pub = None

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    try:
        assert until(lambda: "signalwise_feed_mqtt_connected 1.0" in metrics(), 60.0), metrics()
        pub, publish = _publisher(tls_broker, pki)
        now = dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
        publish("signalwise/J1/detectors", {"device_id": "J1", "channel": 1, "event": "on", "time": now})
        assert until(lambda: re.search(r'signalwise_feed_messages_accepted_total\{feed="mqtt"\} 1\.0', metrics()),
                     10.0), metrics()
    finally:
        if pub is not None:
            _stop(pub)
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
