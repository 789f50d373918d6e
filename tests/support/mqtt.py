"""The Mosquitto the MQTT tests use, on 127.0.0.1:1883: the reason to skip when it does not answer."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid

BROKER = ("127.0.0.1", 1883)


def broker_unavailable_reason() -> str | None:
    """None when the broker accepts a connection, else why the MQTT tests skip."""
    try:
        with socket.create_connection(BROKER, timeout=1.0):
            return None
    except OSError as exc:
        return f"no MQTT broker on {BROKER[0]}:{BROKER[1]} ({exc}); start Mosquitto to run the MQTT tests"


@contextlib.contextmanager
def subscribed_feed(feed):
    """An `MqttFeed` into `feed`, subscribed under a topic tree of its own (the broker is shared), and a
    `publish(device, payload)` that waits for the broker to take each message (QoS 1). Skips without a broker."""
    import paho.mqtt.client as mqtt
    import pytest
    from paho.mqtt.enums import CallbackAPIVersion

    from signalwise.runtime.live.mqtt import MqttFeed

    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, *BROKER, prefix=prefix)  # as `signalwise live --field none --mqtt` builds it
    sub.start()
    assert sub.wait_subscribed(5.0), f"no subscription within 5 s: {sub.stats()}"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()

    def publish(device, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        pub.publish(f"{prefix}/{device}/detectors", data, qos=1).wait_for_publish(2.0)

    try:
        yield sub, publish
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.stop()


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_missing_reason() -> str | None:
    """None when a Mosquitto program can be started for a test's own broker, else why such tests skip."""
    import os
    import shutil

    if shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"):
        return None
    return "mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients)"


@contextlib.contextmanager
def own_mosquitto(directory, config: str):
    """A Mosquitto of the test's own, started with `config` (a `listener PORT 127.0.0.1` line and what goes with
    it) written into `directory`; stopped at the end. Skips without the program."""
    import os
    import shutil
    import subprocess

    import pytest

    from .waiting import until

    reason = mosquitto_missing_reason()
    if reason:
        pytest.skip(reason)
    port = int(config.split("listener", 1)[1].split()[0])
    conf = directory / "mosquitto.conf"
    # run as root, mosquitto would become user `mosquitto`, which cannot read pytest's private directory
    conf.write_text(("user root\n" if os.geteuid() == 0 else "") + config)
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        assert until(listening, 10.0), "mosquitto did not start"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def throwaway_pki(directory) -> dict:
    """A CA, a broker certificate it signed for 127.0.0.1 (and no host name), a client certificate it signed, the
    client key encrypted with password `pw`, and a second CA that signed nothing here: PEM files made by the
    `openssl` program into `directory`, by name (`ca.crt`, `server.crt`, `server.key`, `client.crt`,
    `client.key`, `client-encrypted.key`, `other-ca.crt`). Skips without openssl."""
    import os
    import shutil
    import subprocess

    import pytest

    openssl = shutil.which("openssl") or ("/usr/bin/openssl" if os.path.exists("/usr/bin/openssl") else None)
    if openssl is None:
        pytest.skip("the openssl program is not installed (Debian: apt-get install openssl)")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=signalwise test CA")
    run("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj",
        "/CN=another CA")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, ext in (("server", "/CN=127.0.0.1", ("-extfile", "server.ext")), ("client", "/CN=field", ())):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", *ext)
    run("pkey", "-in", "client.key", "-aes256", "-passout", "pass:pw", "-out", "client-encrypted.key")
    names = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "client-encrypted.key", "other-ca.crt")
    return {name: directory / name for name in names}


#: the settings a broker's credentials and TLS files come from: a test's own `signalwise live` sets none of them
MQTT_ENV = ("SIGNALWISE_MQTT_USERNAME", "SIGNALWISE_MQTT_PASSWORD", "SIGNALWISE_MQTT_CA_FILE",
            "SIGNALWISE_MQTT_CERT_FILE", "SIGNALWISE_MQTT_KEY_FILE", "SIGNALWISE_MQTT_KEY_PASSWORD")


def start_feed_live(tmp_path, broker_port: int, *args: str, duration_s: float = 600):
    """A `signalwise live` on `corridor` fed by detectors over MQTT from 127.0.0.1:`broker_port` (`--field none`,
    its API open on a free port, its own SQLite store); (process, the API's base URL). `args`: more options."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    api = free_port()
    env = {k: v for k, v in os.environ.items() if k not in MQTT_ENV}
    env["SIGNALWISE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env.pop("SIGNALWISE_REDIS_URL", None)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "live", "--scenario", "corridor",
                             "--field", "none", "--duration", f"{duration_s:g}", "--out", str(tmp_path / "runs"),
                             "--port", str(api), "--insecure-no-auth", "--mqtt", f"127.0.0.1:{broker_port}", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{api}"


def live_status(base: str) -> dict | None:
    """A live run's `/api/v1/live/status`, or None while its API does not answer yet (or no longer)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/api/v1/live/status", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def started_publisher():
    """A paho client connected to the test broker with its network loop running; `loop_stop` and `disconnect` it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()
    return pub


@contextlib.contextmanager
def feed_live_on_own_prefix(tmp_path, *args: str, levels: str = ""):
    """A `start_feed_live` run under a topic prefix of its own (`mqtt_topic_prefix` in its `--config`; `levels`, such
    as "/corridor-a", adds topic levels to it), connected to the broker and past its first 2 simulated seconds,
    with a connected publisher: (process, base URL, prefix, publisher). Stopped with SIGINT (killed if it will not stop) and the publisher disconnected on the way out."""
    import signal

    import yaml

    from .waiting import until

    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}{levels}"
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"mqtt_topic_prefix": prefix}))
    proc, base = start_feed_live(tmp_path, BROKER[1], "--config", str(config), *args)
    pub = started_publisher()
    try:
        assert until(lambda: (s := live_status(base)) is not None and s["feeds"]["mqtt"]["connected"], 90), \
            proc.stderr.read() if proc.poll() is not None else "no status"
        assert until(lambda: live_status(base)["sim_time_s"] > 2, 30)
        yield proc, base, prefix, pub
    finally:
        pub.loop_stop()
        pub.disconnect()
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except Exception:  # noqa: BLE001 - a run that will not stop is killed
            proc.kill()
            proc.communicate()
