"""The Mosquitto the MQTT tests use, on 127.0.0.1:1883: the reason to skip when it does not answer."""

from __future__ import annotations

import socket

BROKER = ("127.0.0.1", 1883)


def broker_unavailable_reason() -> str | None:
    """None when the broker accepts a connection, else why the MQTT tests skip."""
    try:
        with socket.create_connection(BROKER, timeout=1.0):
            return None
    except OSError as exc:
        return f"no MQTT broker on {BROKER[0]}:{BROKER[1]} ({exc}); start Mosquitto to run the MQTT tests"
