"""The detector feed over MQTT: `signalwise/<device_id>/detectors`, JSON payloads, into a `DetectorFeed`.

paho-mqtt runs the connection in its own thread (`loop_start`) and
reconnects by itself with a growing delay (`reconnect_delay_set`), so the
loop's thread never waits on the network. A payload is one message or a list
of them, the same `DetectorMessage` as the HTTP route takes; the topic's
device must be each message's `device_id`. A malformed payload is counted and
logged (at most once per `log_every_s` for each refusal code, so one kind of
garbage does not hide another), never raised into paho's thread: an
exception there would end the client.

The client id is stable (`session_client_id`: by default the host, the topic
prefix and the run's intersections; `signalwise live` gives one per corridor
lock, so per `--out`), and the broker keeps the session for SESSION_EXPIRY_S
after a drop: a run restarted after a crash resumes the session its
predecessor left and gets the QoS 1 messages published between. Two clients
with one id take the session from each other. When the broker says so
(`Session taken over`) the client logs why and stops reconnecting. A broker
that only ends the connection TAKEOVER_DROPS times in a row soon after it was
made (Mosquitto 2.0 does so on a takeover, but so may a broker that refuses a
subscription, or a proxy) is not taken for one: the client says what it may
be and reconnects at its longest delay until a connection lasts.

TLS (`tls_context`): the broker's certificate is verified against the
system's CA store or a CA file of the city's own, optionally with a client
certificate; the files are checked when the context is built, before a run
starts, and a broker that fails verification is logged with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .feeds import DetectorFeed

log = logging.getLogger("signalwise.live.mqtt")

#: a payload larger than this is refused unread (one intersection's interval counts are a few kB)
MAX_PAYLOAD_BYTES = 1_000_000
#: how long the broker keeps this client's session after its connection drops (MQTT 5 session expiry): the
#: subscription, and the QoS 1 messages published meanwhile, which it delivers on reconnecting. A clean stop
#: ends the session at once, so runs leave no sessions behind on the broker.
SESSION_EXPIRY_S = 600
#: MQTT 5's reason code for a connection the broker ended because another client connected with the same id
SESSION_TAKEN_OVER = 142
#: a broker that ends the connection this many times in a row, each within TAKEOVER_WITHIN_S of its connecting and
#: with no socket error, is handing the session to another client with the same id and back (Mosquitto 2.0 closes
#: the connection without saying SESSION_TAKEN_OVER)
TAKEOVER_DROPS = 3
TAKEOVER_WITHIN_S = 10.0
#: QoS 1 messages the broker may send before this client acknowledged them (MQTT 5's Receive Maximum, at its
#: largest): without it Mosquitto sends 20 (`max_inflight_messages`) and queues the rest, and drops what passes
#: its per-client queue (`max_queued_messages`, 1,000) when a burst comes faster than this client acknowledges
RECEIVE_MAXIMUM = 65535
#: payloads received and not yet handled (`MqttFeed`'s intake queue): at the feed's intake rate (docs/live-feeds.md)
#: a minute or more of single-message payloads; one that finds it full is dropped and counted (`dropped`)
MAX_QUEUED_PAYLOADS = 200_000
#: and their bytes: a queue of large payloads is bounded too
MAX_QUEUED_BYTES = 256 * 1024 * 1024
#: at most, how long `MqttFeed.stop` takes: the disconnect, paho's thread, and handing what was received to the feed;
#: what the intake has not handed over by then is discarded and counted (`discarded_at_stop`)
STOP_WAIT_S = 2.0
#: of which the last part is for the payload being handled when the intake stops taking more (a few ms each)
STOP_LAST_PAYLOAD_S = 0.25
#: the clock of the log windows and of the takeover guess (a name of this module, so a test can move it alone)
_monotonic = time.monotonic


def session_client_id(*identity: str) -> str:
    """A client id that is the same for every run of one identity (the topic prefix and the run's intersections,
    or what the caller names) on this host, so a restarted run resumes its predecessor's session on the broker:
    `signalwise-feed-<host>-<digest>`."""
    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:32] or "host"
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:12]
    return f"signalwise-feed-{host}-{digest}"


class TlsSetupError(ValueError):
    """A CA file, client certificate or key that cannot be used: one line naming the file and what is wrong."""


#: how the TLS inputs are named in errors; the command line names them by option or environment variable
TLS_LABELS = {"ca_file": "CA file", "cert_file": "client certificate file", "key_file": "client key file",
              "key_password": "key_password"}


class _NoKeyPassword(Exception):
    """The key is encrypted and no password was given (raised instead of OpenSSL asking on the terminal)."""


def tls_context(ca_file: str | os.PathLike | None = None, cert_file: str | os.PathLike | None = None,
                key_file: str | os.PathLike | None = None, key_password: str | None = None, *,
                labels: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The client's TLS context: the broker's certificate verified (and its name: the host given to connect
    to) against `ca_file`, or the system's CA store without one; a client certificate when `cert_file` is given
    (its key in `key_file`, or in the same file). There is no way here to skip verification.

    Built and checked once, at start, rather than by paho's `tls_set` on connecting: every problem is a
    `TlsSetupError` naming the file (paho's would be OpenSSL's "PEM lib"), and an encrypted key without a
    password is refused instead of OpenSSL asking for it on a terminal a service does not have. The same
    settings as `tls_set` (`ssl.create_default_context`: certificate and host name required, TLS 1.2 at least).
    """
    names = {**TLS_LABELS, **(labels or {})}
    if key_file is not None and cert_file is None:
        raise TlsSetupError(f"{names['key_file']} {key_file}: no client certificate is given for this key "
                            f"({names['cert_file']})")
    for which, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None:
            _readable(path, names[which])
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else os.fspath(ca_file))
    except ssl.SSLError:
        raise TlsSetupError(f"{names['ca_file']} {ca_file} holds no certificate in PEM form (a file of "
                            "\"-----BEGIN CERTIFICATE-----\" blocks)") from None
    if cert_file is None:
        return context
    asked = []

    def password() -> str:
        asked.append(True)
        if key_password is None:
            raise _NoKeyPassword
        return key_password

    try:
        context.load_cert_chain(os.fspath(cert_file), None if key_file is None else os.fspath(key_file), password)
    except _NoKeyPassword:
        raise TlsSetupError(f"{names['key_file'] if key_file is not None else names['cert_file']} "
                            f"{key_file or cert_file}: the key is encrypted; give its password in "
                            f"{names['key_password']}") from None
    except ssl.SSLError as exc:
        raise TlsSetupError(_cert_chain_problem(exc, cert_file, key_file, bool(asked), names)) from None
    return context


def _readable(path: str | os.PathLike, label: str) -> None:
    """A file this process can read, else why not."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise TlsSetupError(f"{label} {os.fspath(path)}: {(exc.strerror or str(exc)).lower()}") from None


def _cert_chain_problem(exc: ssl.SSLError, cert_file, key_file, decrypting: bool, names: Mapping[str, str]) -> str:
    """One line for what OpenSSL refused in a certificate and key (its own words are "PEM lib")."""
    key_label, key_at = (names["key_file"], key_file) if key_file is not None else (names["cert_file"], cert_file)
    if exc.reason == "KEY_VALUES_MISMATCH":
        return (f"{names['key_file']} {key_file} is not the key of the certificate in {names['cert_file']} "
                f"{cert_file}" if key_file is not None else
                f"{names['cert_file']} {cert_file}: its key is not the key of its certificate")
    try:  # does the certificate file hold a certificate at all?
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=os.fspath(cert_file))
    except ssl.SSLError:
        return f"{names['cert_file']} {cert_file} holds no certificate in PEM form"
    if decrypting:
        return f"{key_label} {key_at}: the key could not be decrypted with {names['key_password']}"
    if key_file is None:
        return (f"{names['cert_file']} {cert_file} holds no private key: give the key's file too "
                f"({names['key_file']})")
    return f"{names['key_file']} {key_file} holds no private key in PEM form"


#: said after a plain connection the broker ended before it answered: Mosquitto resets a connection whose first
#: bytes are not a TLS handshake on a TLS listener, and OpenSSL's words for it are only "Connection reset by peer"
TLS_PORT_HINT = ("a port that speaks only TLS ends a plain connection this way: add --mqtt-tls (or --mqtt-ca-file), "
                 "or give the broker's plain port (often 1883)")
#: said after a TLS handshake the broker ended: a plain listener resets a connection whose first bytes are a
#: TLS handshake
PLAIN_PORT_HINT = ("a plain MQTT port ends a TLS connection this way: give the broker's TLS port (often 8883), or "
                   "leave out --mqtt-tls and the TLS files for a plain one")


def _why(exc: BaseException | None) -> str | None:
    """A connection failure in a few words: a certificate's verification error as OpenSSL says it (`unable to get
    local issuer certificate`, `Hostname mismatch, …`), other TLS errors without their C source line, else the
    system's words (`Connection refused`)."""
    if exc is None:
        return None
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message
    if isinstance(exc, ssl.SSLError):
        return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class MqttFeed:
    """Subscribes to `<prefix>/+/detectors` on one broker and hands every payload to `feed.accept`; with
    `preempt` (the run's `preempt.PreemptCalls`), to `<prefix>/+/preempt` too, whose calls go to it at once.

    `prefix` is "signalwise" in a deployment (tests use their own). MQTT 5
    with a session the broker keeps for SESSION_EXPIRY_S after a drop, and
    QoS 1 by default: what was published to the topic while the connection
    was down comes when it is back (the broker queues it; Mosquitto keeps
    up to 1,000 messages per session by default, `max_queued_messages`).
    `client_id` (default `session_client_id(prefix, *the feed's intersections)`)
    names the session: a run restarted with the same id resumes it.
    `tls` (from `tls_context`) connects over TLS, the broker's certificate
    verified; a broker that fails verification is retried as an unreachable
    one is, its reason logged and kept as `last_error`.

    Bursts: the client's MQTT 5 Receive Maximum (RECEIVE_MAXIMUM) lets the
    broker send that many QoS 1 messages before their acknowledgements. With
    Mosquitto's own window (20, `max_inflight_messages`) the rest waited in its
    per-client queue (`max_queued_messages`, 1,000), and a burst of
    single-message payloads faster than this client's intake lost what passed
    it, unseen here. paho's thread only counts and queues each payload
    (`_on_message`), so it acknowledges at once, and a thread of this client's
    own handles them in order (`_handle`). The intake queue is bounded
    (MAX_QUEUED_PAYLOADS, MAX_QUEUED_BYTES); a payload that finds it full is
    dropped, counted and logged.

    A retained message (`message.retain`: the broker's stored copy of the
    last message published with the retain flag, delivered on every
    subscription whenever it was sent) is refused, counted (`retained`) and
    logged: it is old news, not an observation, and its time cannot show it
    (a `sim_time_s` is on a clock every run starts again at 0).
    """

    def __init__(self, feed: DetectorFeed, host: str = "127.0.0.1", port: int = 1883, *, prefix: str = "signalwise",
                 qos: int = 1, keepalive_s: int = 30, reconnect_min_s: float = 1.0, reconnect_max_s: float = 60.0,
                 username: str | None = None, password: str | None = None, client_id: str | None = None,
                 tls: ssl.SSLContext | None = None, log_every_s: float = 10.0, preempt=None):
        self.feed = feed
        feed.mqtt = self  # /metrics finds this client's figures through the store the live run holds
        self.host, self.port = host, port
        self.topic = f"{prefix}/+/detectors"
        #: the run's preemption input (`preempt.PreemptCalls`): calls on `<prefix>/<signal>/preempt` go to it
        self.preempt = preempt
        self.preempt_topic = f"{prefix}/+/preempt"
        self.qos = qos
        self.keepalive_s = keepalive_s
        self._log_every_s = log_every_s
        self._stats_lock = threading.Lock()
        self._received = self._accepted = self._rejected = 0
        self._retained = 0  # retained messages refused (the broker's stored copy, not news)
        self._dropped = 0  # payloads dropped: the intake queue was full
        self._handled = 0  # payloads handed to the feed (each of their messages accepted or rejected there)
        self._discarded = 0  # payloads received and not handed to the feed by the end of `stop` (STOP_WAIT_S)
        self._messages_received = 0  # detector messages in the payloads handled (a list counts its items)
        #: payloads paho's thread received, waiting for the handling thread: (topic, payload)
        self._intake: deque[tuple[str, bytes]] = deque()
        self._intake_bytes = 0
        self._intake_ready = threading.Condition(threading.Lock())
        self._handler: threading.Thread | None = None
        self._stopping = False
        self._stop_by: float | None = None  # when `stop` gives up handing payloads over (time.monotonic)
        self._closed = False  # the intake takes nothing more: a payload arriving now is discarded, counted
        self._last_error: str | None = None
        self._connection_error: str | None = None  # the last about the connection (not a payload's)
        self._connected = False
        self._lost = False  # a connection failure was reported: say so when the broker is back
        self._refused = False  # the broker refused the latest connection (its reason is the error to keep)
        self._subscribed = threading.Event()
        # one log budget for the connection and one per refusal code: a burst of garbage must not hide an outage,
        # nor one kind of garbage another
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self.client_id = client_id or session_client_id(prefix, *sorted(feed.devices))
        self._connected_at = 0.0  # when the latest connection was made (monotonic)
        self._short_drops = 0  # connections the broker ended soon after they were made, in a row
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=self.client_id)
        self._reconnect_s = (max(1, int(reconnect_min_s)), int(reconnect_max_s))
        self.client.reconnect_delay_set(min_delay=self._reconnect_s[0], max_delay=self._reconnect_s[1])
        if username is not None:
            self.client.username_pw_set(username, password)
        self.tls = tls is not None
        if tls is not None:
            self.client.tls_set_context(tls)
        self._socket_error: str | None = None  # what paho last said went wrong on the socket (its log)
        # paho's errors only: an `on_log` callback would have paho format a line for every packet it reads, most
        # of the time of a burst of small payloads (a logger below ERROR is asked, and declines, without formatting)
        self.client.enable_logger(_PahoErrors(self))
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; a broker that is down is retried with backoff, never waited on here."""
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = SESSION_EXPIRY_S
        session.ReceiveMaximum = RECEIVE_MAXIMUM
        # clean_start=False on every connect, reconnects included: the broker resumes the session it kept
        self.client.connect_async(self.host, self.port, self.keepalive_s, clean_start=False, properties=session)
        self._stopping = False
        self._handler = threading.Thread(target=self._handle_queued, name="signalwise-mqtt-intake", daemon=True)
        self._handler.start()
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect, ending the session on the broker (nothing more is queued for it), end paho's thread, and hand
        what was received to the feed, in STOP_WAIT_S at most whatever the broker or the feed do: a payload still
        queued then is discarded and counted (`discarded_at_stop`), so every payload received is counted once, as
        handled, retained, dropped or discarded. Once: a second call (the run's end stops the client, and so may
        its owner) does nothing."""
        with self._intake_ready:
            if self._stop_by is not None:
                return
            self._stop_by = time.monotonic() + STOP_WAIT_S
        ended = Properties(PacketTypes.DISCONNECT)
        ended.SessionExpiryInterval = 0
        try:
            self.client.disconnect(properties=ended)
        finally:
            self._end_paho_thread()
            with self._intake_ready:  # what was received is handed over before the thread ends, until _stop_by
                self._stopping = True
                self._intake_ready.notify()
            if self._handler is not None:
                self._handler.join(max(0.0, self._stop_by - time.monotonic()))
            with self._intake_ready:  # a handler still busy at the bound: the rest of the queue is not waited for
                self._close_intake_locked()
        with self._stats_lock:
            self._connected = False
            discarded, received = self._discarded, self._received
        self._subscribed.clear()
        if discarded:
            log.warning("detector feed over MQTT: %d of the %d payloads received were not handed to the feed by "
                        "the end of the %g s the stop waits, and were discarded", discarded, received, STOP_WAIT_S)

    def _end_paho_thread(self) -> None:
        """paho's `loop_stop`, waited for until `_stop_by` at most: it joins paho's thread without a timeout, and
        that thread may be in a connection attempt to a broker that does not answer. A thread left running is a
        daemon, and what it still receives finds the intake closed (counted as discarded)."""
        ender = threading.Thread(target=self.client.loop_stop, name="signalwise-mqtt-stop", daemon=True)
        ender.start()
        ender.join(max(0.0, self._stop_by - time.monotonic()))

    def _close_intake_locked(self) -> None:
        """Take nothing more (under `_intake_ready`): what is queued is discarded and counted, and so is whatever
        arrives later."""
        if self._closed:
            return
        self._closed = True
        left = len(self._intake)
        self._intake.clear()
        self._intake_bytes = 0
        with self._stats_lock:
            self._discarded += left

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Whether the subscription is in place within `timeout_s` (for tests and start-up messages)."""
        return self._subscribed.wait(timeout_s)

    @property
    def broker(self) -> str:
        """`host:port` as `--mqtt` takes it (`[::1]:1883` for an IPv6 address)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stats(self) -> dict:
        """received (payloads, as they arrive: compare with the payloads sent), messages_received (detector
        messages in the payloads handled), accepted and rejected (messages), retained (retained messages
        refused), queued (payloads received, not yet handled), dropped (payloads the full intake queue dropped),
        handled (payloads handed to the feed), discarded_at_stop (payloads received and not handed over by the end
        of `stop`), last_error (of either kind), connected, broker, and connection_error: the last error about the
        connection (a payload's error does not replace it). received = handled + retained + dropped +
        discarded_at_stop + queued, plus the payload being handled while the client runs (or, after `stop`, one a
        feed held past STOP_LAST_PAYLOAD_S, counted handled when the feed lets it go)."""
        with self._intake_ready:
            queued = len(self._intake)
        with self._stats_lock:
            return {"received": self._received, "messages_received": self._messages_received,
                    "accepted": self._accepted, "rejected": self._rejected, "retained": self._retained,
                    "queued": queued, "dropped": self._dropped, "handled": self._handled,
                    "discarded_at_stop": self._discarded,
                    "last_error": self._last_error, "connected": self._connected, "broker": self.broker,
                    "connection_error": self._connection_error}

    def figures(self) -> dict[str, float]:
        """What the live run's alerts read (`alerts.BUILTIN_RULES`, `mqtt_disconnected`): 1 while not connected
        to the broker (down, unreachable, refusing us, failing TLS, or not reached yet), else 0."""
        with self._stats_lock:
            return {"mqtt_disconnected": 0.0 if self._connected else 1.0}

    def figure_subjects(self) -> dict[str, dict[str, str]]:
        """For `mqtt_disconnected`'s alert to name: the broker, and why it is not connected (its last connection
        error, TLS and port hints included); nothing while connected."""
        with self._stats_lock:
            if self._connected:
                return {"mqtt_disconnected": {}}
            why = self._connection_error or "not connected yet"
        return {"mqtt_disconnected": {self.broker: why}}

    # -- paho's callbacks (its thread) ------------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            with self._stats_lock:
                self._refused = True  # the disconnect that follows says nothing more (paho: "Protocol error")
                self._lost = True  # and when the broker takes us after all, the log says so
            self._error(f"broker {self.host}:{self.port} refused the connection: {reason_code}", "connection")
            return
        with self._stats_lock:
            self._refused = False
            self._connected = True
            self._connected_at = _monotonic()
            lost, self._lost = self._lost, False
        if lost:  # the operator was told the broker was away: tell them it is back
            log.warning("detector feed over MQTT: connected to %s:%s again", self.host, self.port)
        topics = [(self.topic, self.qos)] + ([(self.preempt_topic, self.qos)] if self.preempt is not None else [])
        client.subscribe(topics)  # again after every reconnect: a session that expired forgot it

    def _on_connect_fail(self, _client, _userdata) -> None:
        """The broker cannot be reached (down at start, or while reconnecting), or its certificate failed
        verification: paho tries again with backoff. paho calls this while handling the connection's exception
        (`loop_forever`), so the reason is the exception being handled."""
        exc = sys.exc_info()[1]
        with self._stats_lock:
            self._lost = True
        retrying = f"retrying, the delay growing from {self._reconnect_s[0]} s to {self._reconnect_s[1]} s"
        if isinstance(exc, ssl.SSLCertVerificationError):
            text = (f"the broker at {self.host}:{self.port} failed TLS verification: {_why(exc)} ({retrying}; "
                    "give the CA that signed its certificate, and connect by a name the certificate holds)")
        elif isinstance(exc, ssl.SSLEOFError):  # a broker that closes on a handshake rather than resetting
            text = (f"TLS with the broker at {self.host}:{self.port} failed: {_why(exc)} ({retrying}): "
                    f"{PLAIN_PORT_HINT}")
        elif isinstance(exc, ssl.SSLError):
            text = f"TLS with the broker at {self.host}:{self.port} failed: {_why(exc)} ({retrying})"
        else:
            why = _why(exc)
            text = f"cannot connect to the broker at {self.host}:{self.port} ({why + '; ' if why else ''}{retrying})"
            if self.tls and isinstance(exc, ConnectionResetError):
                text += f": {PLAIN_PORT_HINT}"
        self._error(text, "connection")

    def _on_log(self, _client, _userdata, level: int, text: str) -> None:
        """Keep paho's own word on a socket that failed: the reason a connection was lost (a broker that ends
        the TLS session, e.g. `tlsv13 alert certificate required`) is said only there."""
        if level == mqtt.MQTT_LOG_ERR and text.startswith(("failed to receive on socket", "timeout on socket")):
            self._socket_error = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._error(f"broker refused the subscription to {self.topic}: {reason_codes}", "connection")
            return
        self._subscribed.set()

    def _on_disconnect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        with self._stats_lock:
            had_connack, self._connected = self._connected, False
        self._subscribed.clear()
        with self._stats_lock:
            refused = self._refused
        socket_error, self._socket_error = self._socket_error, None
        if had_connack and reason_code.is_failure and not refused:
            soon = socket_error is None and _monotonic() - self._connected_at < TAKEOVER_WITHIN_S
            self._short_drops = self._short_drops + 1 if soon else 0
        if had_connack and reason_code.is_failure and not refused and self._short_drops == 0:
            client.reconnect_delay_set(min_delay=self._reconnect_s[0], max_delay=self._reconnect_s[1])
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
            # another client connected with this id (a second run of the same corridor and host): reconnecting
            # would take the session back, and the two would take it from each other for ever
            with self._stats_lock:
                self._lost = True
            self._error(f"the broker at {self.host}:{self.port} gave this feed's session ({self.client_id}) to "
                        "another client with the same id: another run of this corridor on this host is reading the "
                        "feed; not reconnecting (stop the other run, or give each run its own client id)",
                        "takeover")
            client.loop_stop()  # from paho's own thread: it ends after this callback instead of reconnecting
            return
        if self._short_drops >= TAKEOVER_DROPS:
            # perhaps another client with this id, perhaps a broker that ends connections for another reason:
            # not given up for good, but no faster than the longest delay, which a lasting connection resets
            with self._stats_lock:
                self._lost = True
            client.reconnect_delay_set(min_delay=self._reconnect_s[1], max_delay=self._reconnect_s[1])
            self._error(f"the broker at {self.host}:{self.port} ended this feed's connection "
                        f"{self._short_drops} times in a row, each within {TAKEOVER_WITHIN_S:g} s of connecting: "
                        f"possibly another client with the same id ({self.client_id}) takes its session, or the "
                        f"broker refuses this client; reconnecting every {self._reconnect_s[1]} s", "takeover")
            return
        if reason_code.is_failure and not refused:
            with self._stats_lock:
                self._lost = True
            why = f" ({socket_error})" if socket_error else ""
            text = f"disconnected from {self.host}:{self.port}: {reason_code}{why} (reconnecting)"
            if not self.tls and not had_connack and "Connection reset" in (socket_error or ""):
                text += f": {TLS_PORT_HINT}"
            self._error(text, "connection")

    def _on_message(self, _client, _userdata, message) -> None:
        """paho's thread: count the payload and queue it for `_handle_queued`, at once (paho acknowledges a QoS 1
        message when this returns, and the broker sends more only then); a retained one is refused here."""
        try:
            topic, payload = message.topic, message.payload
            if self.preempt is not None and topic.endswith("/preempt"):  # a call waits behind no detector payload
                from .preempt import take_mqtt

                take_mqtt(self.preempt, topic, payload, bool(message.retain))
                return
            with self._stats_lock:
                self._received += 1
            if message.retain:
                with self._stats_lock:
                    self._retained += 1
                self._error(f"{topic}: a retained message (the broker's stored copy of an earlier message, "
                            "delivered because this client subscribed) refused: it is not news of the detectors; "
                            "publish detector messages without the retain flag", "retained")
                return
            with self._intake_ready:
                closed = self._closed
                full = not closed and (len(self._intake) >= MAX_QUEUED_PAYLOADS
                                       or self._intake_bytes + len(payload) > MAX_QUEUED_BYTES)
                if not closed and not full:
                    self._intake.append((topic, payload))
                    self._intake_bytes += len(payload)
                    self._intake_ready.notify()
            if closed:  # after `stop` gave up waiting: counted, as the payloads it left queued are
                with self._stats_lock:
                    self._discarded += 1
            elif full:
                with self._stats_lock:
                    self._dropped += 1
                self._error(f"{topic}: payload dropped: {MAX_QUEUED_PAYLOADS:,} payloads "
                            f"({MAX_QUEUED_BYTES // 2 ** 20} MiB) wait to be handled already (the sender sends "
                            "faster than the feed takes them: send lists)", "dropped")
        except Exception as exc:  # never into paho's thread: an exception there ends the client
            self._error(f"{message.topic}: {type(exc).__name__}: {exc}")

    def _handle_queued(self) -> None:
        """The intake thread: each queued payload to `_handle`, in the order received, until `stop` (what was
        received by then is handled first, until `_stop_by`; the rest is discarded, counted)."""
        while True:
            with self._intake_ready:
                while not self._intake and not self._stopping:
                    self._intake_ready.wait()
                if self._closed or (self._stopping and (not self._intake
                                                         or time.monotonic() >= self._stop_by - STOP_LAST_PAYLOAD_S)):
                    self._close_intake_locked()
                    return
                topic, payload = self._intake.popleft()
                self._intake_bytes -= len(payload)
            try:
                self._handle(topic, payload)
            except Exception as exc:  # a bug here must not end the intake
                self._error(f"{topic}: {type(exc).__name__}: {exc}")
            finally:
                with self._stats_lock:
                    self._handled += 1

    def _handle(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        device = parts[-2] if len(parts) >= 3 else None
        reason = None
        if len(payload) > MAX_PAYLOAD_BYTES:
            reason = f"payload of {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES}"
        else:
            try:
                data = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = f"payload is not JSON: {exc}"
            except RecursionError:  # `[[[[…]]]]` nested deeper than the parser goes: garbage, counted as such
                reason = "payload is not JSON a feed sends: nested too deeply"
            except ValueError as exc:  # a number of more than 4300 digits: Python will not read it, nor a feed send it
                reason = f"payload is not JSON a feed sends: {exc}"
            else:
                if isinstance(data, dict):
                    data = [data]
                if not isinstance(data, list):
                    reason = f"payload is a JSON {type(data).__name__}; send one message (an object) or a list"
                elif not data:  # as HTTP refuses it: a sender that means to send something has a bug
                    reason = "payload is an empty list: send at least one message"
        # the error before the count: whoever reads `stats()` and sees a rejection sees its reason too
        if reason is not None:
            rej = self.feed.reject(reason, device, transport="mqtt")
            self._error(f"{topic}: {reason}", f"code {rej.code}")
            self._count(0, 1)
            return
        with self._stats_lock:
            self._messages_received += len(data)
        result = self.feed.accept(data, expect_device=device, transport="mqtt")
        by_code: dict[str, list] = {}
        for rej in result.rejected:
            by_code.setdefault(rej.code, []).append(rej)
        for code, refused in by_code.items():  # each code's first, throttled by code
            first = refused[0]
            more = f" (and {len(refused) - 1} more in the payload)" if len(refused) > 1 else ""
            self._error(f"{topic}: message {first.index}: {first.reason}{more}", f"code {code}", len(refused))
        self._count(result.accepted, len(result.rejected))

    def _count(self, accepted: int, rejected: int) -> None:
        with self._stats_lock:
            self._accepted += accepted
            self._rejected += rejected

    def _error(self, text: str, kind: str = "payload", n: int = 1) -> None:
        """Remember the last error; log it unless one of its kind (`connection`, `code <refusal code>`, `payload`:
        an exception) was logged less than `log_every_s` ago. `n`: the refused messages it stands for; a line
        logged says how many of its kind were not since the last."""
        now = _monotonic()
        with self._stats_lock:
            self._last_error = text
            if kind in ("connection", "takeover"):
                self._connection_error = text
            if now - self._last_log.get(kind, -float("inf")) < self._log_every_s:
                self._unlogged[kind] = self._unlogged.get(kind, 0) + n
                return
            skipped, self._unlogged[kind], self._last_log[kind] = self._unlogged.get(kind, 0), 0, now
        if not skipped:
            suffix = ""
        elif kind.startswith("code "):
            suffix = f" ({skipped} more refused with {kind} since the last)"
        else:
            suffix = f" ({skipped} more of the kind since the last)"
        log.warning("detector feed over MQTT: %s%s", text, suffix)


class _PahoErrors(logging.Logger):
    """The logger paho writes to (`enable_logger`): its ERROR lines go to `MqttFeed._on_log`, nothing else is
    formatted (`isEnabledFor` declines the per-packet DEBUG lines first)."""

    def __init__(self, owner: MqttFeed):
        super().__init__(f"signalwise.live.mqtt.paho.{owner.client_id}", logging.ERROR)
        self.propagate = False
        self._owner = owner

    def handle(self, record: logging.LogRecord) -> None:
        self._owner._on_log(None, None, mqtt.MQTT_LOG_ERR, record.getMessage())
