"""Live streams: what the live loop publishes, fanned out to WebSocket and SSE clients.

The loop calls `StreamHub.publish(topic, payload)` from its own thread. That
call must never block the loop nor raise into it: it stamps the message,
appends it to a bounded deque and wakes the server's asyncio loop with
`call_soon_threadsafe` (once per batch); everything else (filtering, JSON,
the sockets) happens in the server's loop.

Every client has its own bounded queue (`queue_max` messages, default 256).
A client too slow to drain it is disconnected at once with the reason (its
queue is dropped, nothing more is queued for it), so it never slows the loop
nor the other clients: WebSocket close 1008 with the reason, SSE a final
`event: error`.

Topics: `snapshot` and `alert` (pushed by the loop), `profiler` (pulled here
every `profiler_every_s` from the attached runtime), `change` (each new
entry of the runtime's change log, pulled likewise). A client asks for topics
and intersections; a snapshot is filtered to the asked signals, an alert or a
change about another intersection is not sent, network-wide ones always are.

Several API workers: with `redis_url`, the process that runs the loop also
publishes every message to the deployment's Redis channel (`channel_name`:
`signalwise:live:<db>:<store>` unless `stream_channel` names one; Redis
delivers a channel to subscribers of every database number, so the name
itself must keep deployments apart) from a thread of its own, bounded, so a
slow or absent Redis costs the loop nothing, and every hub subscribes to the
channel and delivers what other processes published. With a JWT secret set,
each message on the channel carries an HMAC-SHA256 of its text under a key
derived from that secret (`signing_key`), and a hub drops any message whose
HMAC does not match: whoever may PUBLISH on the Redis server, but does not
know the secret, cannot put alerts or snapshots on the operators' streams; a message older than
`message_max_age_s` (the setting `stream_message_max_age_s`, 10 s by default), or not after the last one of its
publishing process (`seq`), is a replay of a captured one and is dropped too (`take_from_redis`). Without Redis the hub is in-process. The end of the run goes
through Redis too: the loop's hub publishes an `end` message (its reason)
when it ends its own streams, and a hub that receives it, or the run's
last snapshot (`running: false`) with no `end` within END_WAIT_S, ends its
clients as the loop's hub does (WS close 1001, SSE `event: end`); a client
subscribing after that gets the last snapshot, then the same end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from .times import utc_times

log = logging.getLogger("signalwise.api.streams")

TOPICS = ("snapshot", "signal", "alert", "profiler", "change", "vision")
#: the prefix of every derived channel name (`channel_name`)
CHANNEL = "signalwise:live"
#: hex digits of an HMAC-SHA256 that start a signed message on the channel (`_to_wire`)
SIGNATURE_HEX = 64
#: the message (on the Redis channel only, never a client's topic) by which the loop's hub says the run ended
END_TOPIC = "end"
#: how long a hub that got a run's last snapshot over Redis waits for its `end` (which names why the run ended)
#: before it ends its clients itself
END_WAIT_S = 5.0
#: seconds a message on the Redis channel may be old (its `published_at`) and still be delivered, unless the
#: setting `stream_message_max_age_s` says otherwise: a few seconds of delivery (a publisher's queue waiting out a
#: slow Redis) plus the clocks of two hosts disagreeing; an older one, or one from further ahead than that, is a
#: copy re-sent (a replay), dropped and counted
MESSAGE_MAX_AGE_S = 10.0

#: WebSocket close codes (RFC 6455): policy violation (too slow, bad subscription, bad token),
#: try again later (no live run), going away (the run ended, the server stops)
CLOSE_POLICY, CLOSE_TRY_LATER, CLOSE_GOING_AWAY = 1008, 1013, 1001


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    seq: int  # the publishing hub's sequence number (gaps: messages for other topics or clients)
    published_at: float  # time.time() when the loop (or the hub's puller) published it
    data: dict
    origin: str  # the publishing hub's id (so a hub skips its own messages coming back from Redis)


class StreamClosed(Exception):
    """The hub ended this subscription; `code` and `reason` say why (for the close frame / SSE event).
    `retry_ms`: the SSE `retry:` the last event carries (how long an EventSource waits before it reconnects),
    None to leave the stream's own."""

    def __init__(self, code: int, reason: str, event: str, retry_ms: int | None = None):
        super().__init__(reason)
        self.code, self.reason, self.event, self.retry_ms = code, reason, event, retry_ms


def channel_name(settings) -> str:  # noqa: ANN001 - store.Settings
    """The deployment's Redis channel: `stream_channel` when set, else `signalwise:live:<the Redis URL's database
    number>:<12 hex digits of the SHA-256 of the store the database URL names (`_store_identity`)>`. Every process
    of a deployment names the same store (it checks keys there), so they share the channel; two deployments on
    one Redis, or on two of its database numbers, do not."""
    if settings.stream_channel:
        return settings.stream_channel
    store = hashlib.sha256(_store_identity(str(settings.database_url)).encode()).hexdigest()[:12]
    return f"{CHANNEL}:{_redis_db(settings.redis_url)}:{store}"


#: the port a back-end's server listens on when a URL names none (`_store_identity`: `h/db` is `h:5432/db`)
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
#: the query options of a database URL that choose which store it names (a server, a database, a schema); the
#: others (`connect_timeout`, `sslmode`, `application_name`, ...) only change how the connection is made
STORE_OPTIONS = frozenset({"host", "hostaddr", "port", "dbname", "service", "options"})


def _store_identity(url: str) -> str:
    """The store a database URL names, however it is written: its back-end (`postgresql://` and
    `postgresql+psycopg://` alike), user, host, port (the back-end's default when it names none), database and the
    query options that choose a store (`STORE_OPTIONS`; of `options`, only its `search_path`: a schema of its own),
    a SQLite file by its absolute path; never its password nor an option that only changes the connection."""
    import os

    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a URL no store opens: the server refuses it elsewhere; keep it apart
        return "unparsed:" + hashlib.sha256(url.encode()).hexdigest()
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        name = parsed.database or ""
        return "sqlite:" + (name if name in ("", ":memory:") or name.startswith("file:") else os.path.abspath(name))
    kept = {}
    for key, value in parsed.query.items():
        if key not in STORE_OPTIONS:
            continue
        values = value if isinstance(value, tuple) else (value,)
        if key == "options":  # `-c search_path=x -c statement_timeout=...`: only the schema chooses the store
            values = tuple(p for v in values for p in _search_paths(v))
        if values:
            kept[key] = ",".join(values)
    port = parsed.port or DEFAULT_PORTS.get(backend, "")
    query = "&".join(f"{k}={v}" for k, v in sorted(kept.items()))
    return f"{backend}://{parsed.username or ''}@{(parsed.host or '').lower()}:{port}/{parsed.database or ''}?{query}"


def _search_paths(options: str) -> list[str]:
    """The `search_path` settings of a libpq `options` text (`-c search_path=a,b`, `-csearch_path=a`,
    `--search_path=a`; a space escaped as libpq escapes it, `\\ `)."""
    import re

    return ["search_path=" + m.group(1).replace("\\ ", "")
            for m in re.finditer(r"(?:-c\s*|--)search_path=((?:\\.|\S)+)", options)]


def _redis_db(url: str | None) -> int:
    """The database number a Redis URL names (`redis://host:6379/5`, `?db=5`), 0 when none."""
    if not url:
        return 0
    parts = urlsplit(url)
    number = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
    if not number.isdigit():
        number = (parse_qs(parts.query).get("db") or ["0"])[0]
    return int(number) if number.isdigit() else 0


def signing_key(jwt_secret: str | None) -> bytes | None:
    """The key the channel's messages are signed with: derived from the JWT secret (never that secret itself,
    which signs tokens), None without one (the processes then share no secret to sign with)."""
    if not jwt_secret:
        return None
    return hmac.new(jwt_secret.encode(), b"signalwise stream channel v1", hashlib.sha256).digest()


def parse_list(text: str | Iterable[str] | None) -> list[str] | None:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]`; None or empty -> None (= everything)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    out = [t.strip() for t in items if t and t.strip()]
    return out or None


@dataclass(eq=False)
class Subscriber:
    """One connected client: what it asked for and its bounded queue of serialized messages.

    Lives in the server's loop (offer, end and next are called there only). Waiting is one bare future per
    idle period, no timer per message: the hub's heartbeat task offers a heartbeat to clients that have
    had nothing for `heartbeat_s` (a timeout per wait, with 1,000 clients, put the broadcast p99 at 240 ms
    instead of 155 ms and the loop's lateness p99 at 81 ms instead of 7 ms: bench/streams_bench.py).
    """

    kind: str  # ws | sse
    topics: frozenset[str]
    intersections: frozenset[str] | None  # None = every intersection
    queue_max: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    connected_at: float = field(default_factory=time.time)
    sent: int = 0
    last_offer: float = field(default_factory=time.monotonic)
    _buf: collections.deque = field(default_factory=collections.deque)
    _waiter: asyncio.Future | None = None
    _kicked: asyncio.Event = field(default_factory=asyncio.Event)
    closed: StreamClosed | None = None
    #: its handler is done: the close (WS) or the last event (SSE) went out, or the client was gone; set from
    #: the server's loop, read from any thread (a shutdown waits on it)
    finished: bool = False

    def wants(self, topic: str) -> bool:
        return self.closed is None and topic in self.topics

    def offer(self, item: tuple[str, int | None, str], now: float | None = None) -> bool:
        """Queue (event, seq, text); False when the queue is full (the hub then disconnects the client)."""
        if len(self._buf) >= self.queue_max:
            return False
        self._buf.append(item)
        self.last_offer = time.monotonic() if now is None else now
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, code: int, reason: str, event: str, *, drop_queue: bool = True,
            retry_ms: int | None = None) -> None:
        """No more messages for this client. `drop_queue`: what is queued goes too (its memory goes now, not
        when the socket does) and `kicked()` returns; else what is queued is still sent first. `retry_ms`: see
        `StreamClosed`."""
        if self.closed is None:
            self.closed = StreamClosed(code, reason, event, retry_ms)
            if drop_queue:
                self._buf.clear()
                self._kicked.set()
            self._wake()

    async def kicked(self) -> StreamClosed:
        """Wait until the hub drops this client (wakes a handler whose send is stuck on it)."""
        await self._kicked.wait()
        return self.closed

    @property
    def queued(self) -> int:
        return len(self._buf)

    async def next(self) -> tuple[str, int | None, str]:
        """The next (event, seq, text) to send (event `heartbeat`: nothing came for `heartbeat_s`).

        Raises StreamClosed once the hub has ended the subscription.
        """
        while not self._buf and self.closed is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if not self._buf:
            raise self.closed
        self.sent += 1
        return self._buf.popleft()


#: the topics an SSE client reconnecting with Last-Event-ID gets again (what an operator must not miss; the next
#: snapshot says the rest), and how many of their latest messages the hub keeps for it
REPLAYED_TOPICS = frozenset({"alert", "change"})
REPLAY_MAX = 500


class StreamHub:
    """Fan-out of the live loop's messages to stream clients (see the module's docstring)."""

    def __init__(self, *, queue_max: int = 256, heartbeat_s: float = 10.0, profiler_every_s: float = 1.0,
                 redis_url: str | None = None, channel: str = CHANNEL, max_pending: int = 10_000,
                 close_timeout_s: float = 10.0, signing_key: bytes | None = None, clients_max: int = 128,
                 message_max_age_s: float = MESSAGE_MAX_AGE_S):
        self.id = uuid.uuid4().hex
        #: how old a message from the channel may be (`MESSAGE_MAX_AGE_S`)
        self.message_max_age_s = message_max_age_s
        #: per publishing process (origin): the last seq delivered from the channel, and when (time.time()); a
        #: message must come with a higher seq than its origin's last one
        self._origin_seq: dict[str, tuple[int, float]] = {}
        self.queue_max = queue_max
        #: the key of the channel's messages' HMAC (`signing_key`); None: unsigned
        self.signing_key = signing_key
        #: clients held before one without a credential is refused (`admits`)
        self.clients_max = clients_max
        self.heartbeat_s = heartbeat_s
        self.profiler_every_s = profiler_every_s
        self.close_timeout_s = close_timeout_s
        self.redis_url = redis_url
        self.channel = channel
        self.runtime = None
        self._seq = itertools.count(1)
        #: held while a message is numbered and queued for Redis (a receiver drops a seq lower than the last one)
        self._numbering = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Subscriber] = set()
        self._inbox: collections.deque[Message] = collections.deque()
        self._max_pending = max_pending
        self._wake_scheduled = False
        self._last_snapshot: dict[str, Message] = {}  # per origin: sent to a client as it subscribes
        self._recent: collections.deque[Message] = collections.deque(maxlen=REPLAY_MAX)  # this hub's, to replay
        self._puller: threading.Thread | None = None
        self._stop = threading.Event()
        self._redis_out: _RedisPublisher | None = None
        self._redis_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self.redis_subscribed = False
        #: while the channel's subscription fails: since when (epoch s) and why (None while subscribed or trying)
        self.redis_down_since: float | None = None
        self.redis_down_reason: str | None = None
        self.ended: str | None = None  # why the attached run's streams ended
        self.ended_clients: tuple[Subscriber, ...] = ()  # the clients that end closed (their pages look once more)
        self._end_published = False  # the attached run's end went to Redis
        self._ended_origins: dict[str, str] = {}  # other processes' runs that ended, with why (from Redis)
        self.counts = collections.Counter()  # published, delivered, dropped_pending, slow_disconnects, errors...

    # -- the loop's side (any thread) -------------------------------------------------------------
    def publish(self, topic: str, payload: dict) -> None:
        """Hand one message to the hub. Never blocks, never raises (called from the live loop's thread)."""
        try:
            with self._numbering:  # the loop's thread and the puller's: seqs reach Redis in their order
                msg = Message(topic, next(self._seq), time.time(), payload, self.id)
                if self.redis_url:
                    self._redis_publisher().offer(msg)
            self.counts["published"] += 1
            self._enqueue(msg)
        except Exception:  # noqa: BLE001 - a stream problem must never reach the loop
            self.counts["errors"] += 1
            log.debug("publish failed", exc_info=True)

    def _enqueue(self, msg: Message) -> None:
        loop = self._loop
        if loop is None:
            if msg.topic == "snapshot":
                self._last_snapshot[msg.origin] = msg
            return  # no client has ever connected: nothing to deliver to
        if len(self._inbox) >= self._max_pending:
            self.counts["dropped_pending"] += 1  # the server's loop is stalled; drop rather than grow
            return
        self._inbox.append(msg)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            try:
                loop.call_soon_threadsafe(self._drain_inbox)
            except RuntimeError:  # that loop is closed (the server stopped)
                self._wake_scheduled = False
                self._inbox.clear()

    def attach(self, runtime) -> None:
        """Feed this hub from a live runtime: its `publish` comes here, and its profiler and change log
        are read every `profiler_every_s` by a thread of the hub's own."""
        if self.runtime is runtime:
            return
        self.runtime = runtime
        self.ended = None
        self.ended_clients = ()
        self._end_published = False
        if self.redis_url:
            self._redis_publisher()  # its thread starts here, not in the loop's first publish
        previous = getattr(runtime, "publish", None)
        runtime.publish = self.publish if previous is None or previous == self.publish \
            else chain(previous, self.publish)
        self._stop.set()  # the puller of a runtime attached before stops
        self._stop = threading.Event()
        self._puller = threading.Thread(target=self._pull, args=(runtime, self._stop),
                                        name="signalwise-streams-pull", daemon=True)
        self._puller.start()

    def _pull(self, runtime, stop: threading.Event) -> None:
        """Profiler figures and new change-log entries, every `profiler_every_s`; the end of the run."""
        seen = len(getattr(runtime, "changes", ()))
        ending = False
        while not stop.wait(self.profiler_every_s):
            try:
                changes = runtime.changes
                for entry in changes[seen:]:
                    self.publish("change", entry)
                seen = len(changes)
                if self.redis_url or any(c.wants("profiler") for c in list(self._clients)):
                    self.publish("profiler", runtime.profiler.figures())
                if ending:  # one period after the run said it ended: its last snapshot is out too
                    self.end_all(f"the live run ended ({runtime.status_text})")
                    return
                ending = getattr(runtime, "status_text", "running") not in ("starting", "running")
            except Exception:  # noqa: BLE001 - keep pulling; the loop's health is not ours to break
                self.counts["errors"] += 1
                log.debug("pull failed", exc_info=True)

    def end_all(self, reason: str, *, run_ended: bool = True) -> None:
        """End every stream (WS close 1001, SSE `event: end`) with the reason; thread-safe. `run_ended`: the
        attached run ended, which the other workers' hubs are told through Redis (once per run)."""
        self.ended = reason
        if run_ended and self.redis_url and self.runtime is not None and not self._end_published:
            self._end_published = True
            with contextlib.suppress(Exception):  # never raises into the loop's thread
                with self._numbering:
                    self._redis_publisher().offer(Message(END_TOPIC, next(self._seq), time.time(),
                                                          {"reason": reason}, self.id))
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._end_clients, CLOSE_GOING_AWAY, reason, "end")

    def close(self) -> None:
        """Stop the hub's threads and tasks (the app is going away)."""
        self._stop.set()
        self.end_all("the server is stopping", run_ended=False)
        if self._redis_out is not None:
            self._redis_out.stop()
            self._redis_out = None
        for task in (self._redis_task, self._heartbeat_task):
            if task is not None and self._loop is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(task.cancel)

    # -- the server's side (its asyncio loop) ----------------------------------------------------
    async def start(self) -> None:
        """Bind to the running loop (the server's) and start the Redis subscription; idempotent."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._inbox.clear()
            self._wake_scheduled = False
            self._redis_task = None
            self._heartbeat_task = None
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = loop.create_task(self._heartbeats(), name="signalwise-streams-heartbeats")
        if self.redis_url and (self._redis_task is None or self._redis_task.done()):
            self._redis_task = loop.create_task(self._redis_listen(), name="signalwise-streams-redis")

    async def _heartbeats(self) -> None:
        """Every heartbeat_s / 4: a heartbeat to each client that was offered nothing for heartbeat_s."""
        while True:
            await asyncio.sleep(self.heartbeat_s / 4)
            now = time.monotonic()
            text = None
            for client in list(self._clients):
                if now - client.last_offer >= self.heartbeat_s and client.closed is None:
                    text = text or json.dumps({"type": "heartbeat", "at": time.time()})
                    self._offer(client, ("heartbeat", None, text), now)

    def subscribe(self, kind: str, topics: Iterable[str] | None, intersections: Iterable[str] | None,
                  after_seq: int | None = None) -> Subscriber:
        """A new client. `after_seq` (an SSE client's Last-Event-ID): the alert and change messages this hub
        published after it, which a reconnecting client missed, come first (the latest REPLAY_MAX kept)."""
        client = Subscriber(kind, frozenset(topics or TOPICS),
                            None if intersections is None else frozenset(intersections), self.queue_max)
        self._clients.add(client)
        self.counts[f"{kind}_connected"] += 1
        if after_seq is not None:  # at most half the client's queue: the live stream still has room behind it
            missed = [m for m in list(self._recent) if m.seq > after_seq and client.wants(m.topic)]
            for msg in missed[-(self.queue_max // 2):]:
                text = self._render(msg, client, {})  # the cache is per message
                if text is not None and client.offer((msg.topic, msg.seq, text)):
                    self.counts["replayed"] += 1
        self._send_last_snapshot(client)
        if self._last_snapshot and all(o in self._ended_origins for o in self._last_snapshot):
            # every run this hub heard of over Redis has ended: its last snapshot (queued above), then the end
            client.end(CLOSE_GOING_AWAY, self._ended_origins[next(reversed(self._last_snapshot))], "end",
                       drop_queue=False)
            self._clients.discard(client)
        return client

    def admits(self, anonymous: bool) -> str | None:
        """None when a new client may subscribe, else why not: past `clients_max` clients for one without a key or
        token, past twice as many for one with (an anonymous flood never shuts an operator out)."""
        held = len(self._clients)
        limit = self.clients_max if anonymous else 2 * self.clients_max
        if held < limit:
            return None
        self.counts["refused_too_many"] += 1
        if anonymous:
            return (f"too many stream clients ({held}, SIGNALWISE_STREAM_CLIENTS_MAX={self.clients_max}): "
                    "try again later, or connect with a key or token")
        return f"too many stream clients ({held}, twice SIGNALWISE_STREAM_CLIENTS_MAX): try again later"

    def resubscribe(self, client: Subscriber, topics: Iterable[str] | None,
                    intersections: Iterable[str] | None) -> None:
        client.topics = frozenset(topics or TOPICS)
        client.intersections = None if intersections is None else frozenset(intersections)
        self._send_last_snapshot(client)

    def _send_last_snapshot(self, client: Subscriber) -> None:
        """The state now, rather than at the next snapshot (a quarter of a second later, or more)."""
        if client.wants("snapshot"):
            for msg in list(self._last_snapshot.values()):
                client.offer(("snapshot", msg.seq, self._render(msg, client, {})))

    def unsubscribe(self, client: Subscriber) -> None:
        self._clients.discard(client)
        client.end(CLOSE_GOING_AWAY, "disconnected", "end")

    @property
    def clients(self) -> tuple[Subscriber, ...]:
        """The clients connected now (a copy: safe to read from any thread, e.g. a metrics scrape)."""
        return tuple(self._clients)

    def stats(self) -> dict:
        return {"clients": len(self._clients), "clients_max": self.clients_max, "queue_max": self.queue_max,
                "heartbeat_s": self.heartbeat_s,
                "redis": {"url_set": bool(self.redis_url), "subscribed": self.redis_subscribed,
                          "down_since": self.redis_down_since, "down_reason": self.redis_down_reason,
                          "signed": self.signing_key is not None, "channel": self.channel,
                          "message_max_age_s": self.message_max_age_s,
                          "dropped": self._redis_out.dropped if self._redis_out else 0},
                **dict(self.counts)}

    def _drain_inbox(self) -> None:
        self._wake_scheduled = False  # first: anything appended from now on schedules another drain
        while self._inbox:
            self.deliver(self._inbox.popleft())

    def deliver(self, msg: Message) -> None:
        """To every client that asked for it, filtered; a client whose queue is full is disconnected."""
        if msg.topic == END_TOPIC:
            self._other_run_ended(msg.origin, str(msg.data.get("reason") or "the live run ended"))
            return
        if msg.topic == "snapshot":
            self._last_snapshot[msg.origin] = msg
            if msg.origin != self.id:
                self._other_run_snapshot(msg)
        elif msg.topic in REPLAYED_TOPICS and msg.origin == self.id:  # another server's seq is not ours to compare
            self._recent.append(msg)
        rendered: dict = {}
        now = time.monotonic()
        for client in list(self._clients):
            if not client.wants(msg.topic):
                continue
            text = self._render(msg, client, rendered)
            if text is None:
                continue
            self._offer(client, (msg.topic, msg.seq, text), now)

    def _offer(self, client: Subscriber, item: tuple, now: float) -> None:
        if client.offer(item, now):
            self.counts["delivered"] += 1
        else:
            self._clients.discard(client)
            self.counts["slow_disconnects"] += 1
            client.end(CLOSE_POLICY, f"too slow: {client.queue_max} messages waiting for this client; "
                                     "reconnect, and ask for fewer topics or intersections", "error")

    def _render(self, msg: Message, client: Subscriber, cache: dict) -> str | None:
        """The message as this client gets it (JSON), or None when none of it is for the client.

        Serialized once per distinct filter, not once per client.
        """
        wanted = client.intersections
        if wanted is None:
            key = None
        elif msg.topic == "snapshot":
            key = wanted
        else:
            about = _intersections_of(msg.topic, msg.data)
            if about and not (about & wanted):
                return None
            key = None
        if key in cache:
            return cache[key]
        data = utc_times(msg.data)  # the live run's local wall-clock times, in UTC as every answer has them
        if key is not None:
            data = {**data, "signals": [s for s in data.get("signals", ()) if s.get("intersection_id") in key]}
        cache[key] = text = json.dumps({"type": msg.topic, "seq": msg.seq, "published_at": msg.published_at,
                                        "data": data}, separators=(",", ":"), default=str)
        return text

    def _other_run_snapshot(self, msg: Message) -> None:
        """A snapshot of another process's run (from Redis): a running one (re)opens its streams here and
        retires the last snapshots of runs that ended; the last one (`running: false`) ends them after END_WAIT_S
        unless that run's `end` comes first."""
        if msg.data.get("running") is False:
            if msg.origin not in self._ended_origins and self._loop is not None:
                self._loop.call_later(END_WAIT_S, self._other_run_ended, msg.origin, "the live run ended", msg)
            return
        self._ended_origins.pop(msg.origin, None)
        for origin in list(self._ended_origins):
            self._last_snapshot.pop(origin, None)
            del self._ended_origins[origin]

    def _other_run_ended(self, origin: str, reason: str, last: Message | None = None) -> None:
        """Another process's run ended: its clients here are ended as its own hub ends them. `last`: called on a
        timer after that run's last snapshot, which must still be the latest (else the run went on, or ended
        already)."""
        if last is not None and (self._last_snapshot.get(origin) is not last or origin in self._ended_origins):
            return
        self._ended_origins[origin] = reason
        self.counts["runs_ended_elsewhere"] += 1
        if any(o not in self._ended_origins and m.data.get("running") is not False
               for o, m in self._last_snapshot.items()):
            return  # another run still goes on this channel: its clients stay
        for client in list(self._clients):
            self._clients.discard(client)
            client.end(CLOSE_GOING_AWAY, reason, "end", drop_queue=False)  # what was queued is sent, then the close

    def _end_clients(self, code: int, reason: str, event: str) -> None:
        ended = list(self._clients)
        for client in ended:
            self._clients.discard(client)
            client.end(code, reason, event, drop_queue=False)  # what was queued is sent, then the close
        if code == CLOSE_GOING_AWAY:
            self.ended_clients = (*self.ended_clients, *ended)

    # -- Redis ---------------------------------------------------------------------------------
    def relay_down(self) -> tuple[float, str] | None:
        """(since when, why) while the Redis relay fails, publishing or subscribing; None while it works or is
        not set up."""
        down = [(since, why or "") for since, why in
                ((self.redis_down_since, self.redis_down_reason),
                 (getattr(self._redis_out, "down_since", None), getattr(self._redis_out, "down_reason", None)))
                if since is not None]
        return min(down) if down else None

    def _redis_publisher(self) -> _RedisPublisher:
        if self._redis_out is None:
            self._redis_out = _RedisPublisher(self.redis_url, self.channel, self.signing_key)
        return self._redis_out

    def _refused_from_redis(self) -> None:
        """A message on the channel that is not one this deployment's processes published (malformed, unsigned
        or signed with another key): dropped, counted, and logged at the first and every 100th."""
        self.counts["refused_from_redis"] += 1
        n = self.counts["refused_from_redis"]
        if n == 1 or n % 100 == 0:
            log.warning("streams: dropped %d message(s) on the Redis channel %s that this deployment did not "
                        "publish (%s); whoever publishes them can reach the Redis server", n, self.channel,
                        "unsigned or signed with another key" if self.signing_key else "malformed")

    def take_from_redis(self, msg: Message, now: float | None = None) -> bool:
        """Deliver a message another process published on the channel (its HMAC checked), unless it is a replay: older
        than `message_max_age_s` (or as far ahead: another host's clock), or not after the last one delivered from
        its process (`seq` grows with each message a process publishes). A replay is dropped, counted
        (`replayed_from_redis`) and logged as a message this deployment did not publish is. True when delivered."""
        now = time.time() if now is None else now
        age = now - msg.published_at
        last = self._origin_seq.get(msg.origin)
        if abs(age) > self.message_max_age_s:
            why = f"published {age:.1f} s ago" if age > 0 else f"published {-age:.1f} s ahead of this host's clock"
        elif last is not None and msg.seq <= last[0]:
            why = f"seq {msg.seq} of its process after {last[0]}"
        else:
            self._origin_seq[msg.origin] = (msg.seq, now)
            if len(self._origin_seq) > 64:  # a process silent past the age limit cannot be replayed any more
                for origin, (_seq, seen) in list(self._origin_seq.items()):
                    if now - seen > 2 * self.message_max_age_s:
                        del self._origin_seq[origin]
            self.counts["from_redis"] += 1
            self.deliver(msg)
            return True
        self.counts["replayed_from_redis"] += 1
        n = self.counts["replayed_from_redis"]
        if n == 1 or n % 100 == 0:
            log.warning("streams: dropped %d message(s) on the Redis channel %s as replays (the latest: %s %s, "
                        "limit %g s); whoever re-sends them can reach the Redis server", n, self.channel, msg.topic,
                        why, self.message_max_age_s)
        return False

    async def _redis_listen(self) -> None:
        """Deliver what other processes published on the channel; reconnect with backoff."""
        import redis.asyncio as aioredis

        backoff = 0.5
        while True:
            client = aioredis.from_url(self.redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.redis_subscribed = True
                if self.redis_down_since is not None:
                    log.warning("streams: Redis answers again after %.0f s; subscribed to %s",
                                time.time() - self.redis_down_since, self.channel)
                self.redis_down_since = self.redis_down_reason = None
                backoff = 0.5
                while True:
                    item = await pubsub.get_message(timeout=None)
                    if item is None or item.get("type") != "message":
                        continue
                    msg = _from_wire(item["data"], self.signing_key)
                    if msg is None:
                        self._refused_from_redis()
                    elif msg.origin != self.id:
                        self.take_from_redis(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis went away: retry, streams go on in-process
                # said once an outage (a Redis down at start would otherwise log a line every 10 s for hours)
                first = self.redis_down_since is None
                (log.warning if first else log.debug)(
                    "streams: Redis subscription to %s failed (%s); streams go on in this process only, asked "
                    "again every 10 s at most until it answers", self.channel, exc)
                if first:
                    self.redis_down_since = time.time()
                self.redis_down_reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.redis_subscribed = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.redis_subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()


def _intersections_of(topic: str, data: dict) -> frozenset[str]:
    """The intersections an alert or a change is about (empty: network-wide)."""
    if topic == "alert":
        _metric, _, suffix = str(data.get("metric", "")).partition(".")
        return frozenset({suffix}) if suffix else frozenset()
    if topic in ("signal", "vision"):
        one = data.get("intersection_id") or data.get("device_id")
        return frozenset([one]) if one else frozenset()
    if topic == "change":
        payload = data.get("payload") or {}
        if not isinstance(payload, dict):
            return frozenset()
        ids = payload.get("intersections") or ()
        one = payload.get("intersection_id")
        if "intersection_id" in payload and not one and not ids:
            return NO_SIGNAL_READ  # a refused request about one signal, which it did not name readably
        return frozenset([*([one] if one else []), *ids])
    return frozenset()


#: what a refused request about one signal is about when its signal could not be read (`errors.ONE_SIGNAL_KINDS`):
#: no signal a client can ask for, so only a client that asked for every signal gets it, not one filtered by them
NO_SIGNAL_READ = frozenset({""})


def _to_wire(msg: Message, key: bytes | None = None) -> str:
    """The message's JSON, after the hex HMAC-SHA256 of that JSON under `key` when there is one."""
    text = json.dumps({"topic": msg.topic, "seq": msg.seq, "published_at": msg.published_at,
                       "origin": msg.origin, "data": msg.data}, separators=(",", ":"), default=str)
    return text if key is None else hmac.new(key, text.encode(), hashlib.sha256).hexdigest() + text


def _from_wire(raw: bytes | str, key: bytes | None = None) -> Message | None:
    """The message, or None for one that is malformed or, with `key`, not signed with it."""
    data = raw.encode() if isinstance(raw, str) else raw
    if key is not None:
        signature, data = data[:SIGNATURE_HEX], data[SIGNATURE_HEX:]
        expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(signature, expected):
            return None
    elif data[SIGNATURE_HEX:SIGNATURE_HEX + 1] == b"{" and not data.startswith(b"{"):
        data = data[SIGNATURE_HEX:]  # signed by a process that has a secret this one lacks: nothing to check with
    try:
        d = json.loads(data)
        return Message(str(d["topic"]), int(d["seq"]), float(d["published_at"]), d["data"], str(d["origin"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


class _RedisPublisher:
    """The publishing side in the loop's process: a bounded queue and a thread that PUBLISHes.

    `offer` never blocks: when Redis is slow or down the queue fills and further messages are
    dropped (counted); the thread reconnects by itself.
    """

    def __init__(self, url: str, channel: str, key: bytes | None = None, max_pending: int = 1024):
        self.url, self.channel, self.key = url, channel, key
        self.dropped = 0
        #: while publishing fails: since when (epoch s) and why (None while Redis takes them)
        self.down_since: float | None = None
        self.down_reason: str | None = None
        self._q: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="signalwise-streams-redis-pub", daemon=True)
        self._thread.start()

    def offer(self, msg: Message) -> None:
        try:
            self._q.put_nowait(msg)
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(None)

    def _run(self) -> None:
        import redis

        client: redis.Redis | None = None
        while True:
            msg = self._q.get()
            if msg is None:
                break
            try:
                if client is None:
                    client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
                client.publish(self.channel, _to_wire(msg, self.key))
                if self.down_since is not None:
                    log.warning("streams: Redis answers again; publishing")
                    self.down_since = self.down_reason = None
            except Exception as exc:  # noqa: BLE001 - Redis down: drop, say so once, reconnect next time
                self.dropped += 1
                if self.down_since is None:
                    log.warning("streams: publishing to Redis failed (%s); dropping until it answers", exc)
                    self.down_since = time.time()
                self.down_reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                with contextlib.suppress(Exception):
                    client.close()
                client = None
                time.sleep(0.5)
        if client is not None:
            client.close()


def redis_unavailable_reason(url: str = "redis://127.0.0.1:6379/0") -> str | None:
    """None when Redis answers PING at `url`, else why not (tests skip with it)."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install 'signalwise[redis]')"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001
        return f"no Redis at {url}: {exc}"
    return None


def chain(*callbacks: Callable[[str, dict], None]) -> Callable[[str, dict], None]:
    """One publish callback calling several (a runtime feeding two hubs)."""
    def publish(topic: str, payload: dict) -> None:
        for cb in callbacks:
            cb(topic, payload)
    return publish
