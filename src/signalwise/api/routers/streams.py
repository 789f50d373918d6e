"""Live streams: `WS /api/v1/ws/live` and `GET /api/v1/sse/live` (see `signalwise.api.streams`).

Both carry the same JSON messages, `{"type", "seq", "published_at", "data"}`,
for the topics `snapshot`, `alert`, `profiler` and `change`, filtered to the
asked intersections. A stream needs the `read` scope (the app-wide `authorize`
dependency checks it; browsers, which cannot set headers on a WebSocket or an
EventSource, pass `?token=`); a WebSocket may instead send `{"token": "…"}` as
its first message.

A stream lasts no longer than its credential (`_end_with_credential`): it ends at its token's `exp`, and at the
first check (every `heartbeat_s`) that finds its key, or its token's key, revoked or expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from ..errors import field_error
from ..streams import CLOSE_POLICY, CLOSE_TRY_LATER, TOPICS, StreamClosed, StreamHub, Subscriber, parse_list

router = APIRouter(tags=["streams"])
log = logging.getLogger("signalwise.api.streams")

TopicsQ = Annotated[str | None, Query(description=f"comma-separated topics ({', '.join(TOPICS)}); default all")]
IntersectionsQ = Annotated[str | None, Query(description="comma-separated intersection ids; default all")]
TokenQ = Annotated[str | None, Query(description="a token from POST /api/v1/auth/token (browsers cannot set "
                                                 "headers on a WebSocket or an EventSource)")]

FIRST_MESSAGE_WAIT_S = 5.0
SSE_RETRY_MS = 3000  # how long a browser's EventSource waits before it reconnects
#: the `retry:` of the last event of an SSE stream its credential ended (token expired, key revoked or expired):
#: a day, so an EventSource left open does not come back every 3 s with the credential that just ended; the
#: client is to close it and open another with a new token
SSE_CREDENTIAL_ENDED_RETRY_MS = 86_400_000
#: how long after a token's `exp` its stream is checked: asyncio's timers may wake a little early
EXPIRY_MARGIN_S = 0.05


class Refused(Exception):
    """A stream refused: `status` for SSE (a 422 names the query parameter `loc`), `code` to close a WebSocket."""

    def __init__(self, status: int, code: int, reason: str, loc: tuple = ("query",)):
        super().__init__(reason)
        self.status, self.code, self.reason, self.loc = status, code, reason, loc


def _hub(conn: HTTPConnection) -> StreamHub:
    return conn.app.state.streams


def _check_room(conn: HTTPConnection) -> None:
    """Refused (SSE 503, WebSocket close 1013) when the hub holds as many clients as it takes (`StreamHub.admits`:
    SIGNALWISE_STREAM_CLIENTS_MAX for a client without a key or token, twice as many for one with)."""
    principal = getattr(conn.state, "principal", None)
    refused = _hub(conn).admits(principal is None or principal.via in ("local", "insecure"))
    if refused is not None:
        raise Refused(503, CLOSE_TRY_LATER, refused)


def _check_attached(conn: HTTPConnection):
    """The attached runtime (fed into the hub), or Refused when there is nothing to stream."""
    _check_room(conn)
    hub = _hub(conn)
    rt = getattr(conn.app.state, "live", None)
    if rt is not None:
        hub.attach(rt)
        status = getattr(rt, "status_text", "running")
        if status not in ("starting", "running"):
            raise Refused(503, CLOSE_TRY_LATER, f"the live run has ended ({status})")
    elif _has_cameras(conn):
        pass  # camera streams publish (topic vision, their alerts) without a live run
    elif not hub.redis_url:
        raise Refused(503, CLOSE_TRY_LATER, "no live run is attached to this server (start one with "
                                            "`signalwise live`)")
    return rt


CAMERA_TOPICS = ("alert", "vision")  # what a server with camera streams and no live run publishes


def _has_cameras(conn: HTTPConnection) -> bool:
    """Whether the server has a camera stream now (one made and then deleted publishes nothing)."""
    manager = getattr(conn.app.state, "vision", None)
    return manager is not None and bool(manager.list())


def _topics_served(conn: HTTPConnection, rt) -> tuple[str, ...]:
    """The topics that can come: a server with cameras but no live run (nor Redis to another worker's)
    never sends snapshots, signals, changes or profiles, so a client asking only for those is told."""
    if rt is None and _has_cameras(conn) and not _hub(conn).redis_url:
        return CAMERA_TOPICS
    return TOPICS


def _subscription(rt, topics, intersections, served: tuple[str, ...] = TOPICS
                  ) -> tuple[list[str] | None, list[str] | None]:
    """Validated (topics, intersections); Refused (422 / close 1008) names what is wrong."""
    wanted = _names(topics, "topics")
    unknown = sorted(set(wanted or ()) - set(TOPICS))
    if unknown:
        raise Refused(422, CLOSE_POLICY, f"unknown topic(s) {', '.join(unknown)}; topics: {', '.join(TOPICS)}",
                      ("query", "topics"))
    if served != TOPICS:
        if wanted is not None and not set(wanted) & set(served):
            raise Refused(422, CLOSE_POLICY, f"no live run is attached to this server, only camera streams: "
                                             f"topics {', '.join(served)} come, not {', '.join(wanted)}",
                          ("query", "topics"))
        wanted = sorted(set(wanted or served) & set(served))
    inters = _names(intersections, "intersections")
    stepper = getattr(rt, "stepper", None)
    if inters and stepper is not None:  # a worker fed through Redis alone cannot know the signals
        known = {i.id for i in stepper.intersections}
        missing = sorted(set(inters) - known)
        if missing:
            raise Refused(422, CLOSE_POLICY, f"unknown intersection(s) {', '.join(missing)}; "
                                             f"signals: {', '.join(sorted(known))}", ("query", "intersections"))
    return wanted, inters


def _names(value, what: str) -> list[str] | None:
    """A query's `"a,b"`, or a subscribe message's `["a", "b"]` or null; any other JSON a client sends is
    Refused with the reason (it would otherwise end the stream with no close frame)."""
    if value is None or isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return parse_list(value)
    raise Refused(422, CLOSE_POLICY, f"{what} takes a comma-separated string or a list of strings, "
                                     f"not {json.dumps(value)[:60]}", ("query", what))


def _described(hub: StreamHub, client: Subscriber) -> str:
    return json.dumps({"type": "subscribed", "client_id": client.id, "topics": sorted(client.topics),
                       "intersections": None if client.intersections is None else sorted(client.intersections),
                       "heartbeat_s": hub.heartbeat_s, "queue_max": client.queue_max})


def _principal_from_token(conn: HTTPConnection, token):
    """The caller a first-message token names; ValueError with the reason when it is not a valid one."""
    from ..auth import decode_token, jwt_secret  # auth owns tokens; imported where a first message needs it

    try:
        principal = decode_token(str(token), jwt_secret(conn.app.state.settings))
    except HTTPException as exc:
        raise ValueError(str(exc.detail)) from None
    if not principal.allows("read"):
        raise ValueError(f"{principal.name!r} lacks scope 'read' for the live stream")
    conn.state.stream_token = str(token)  # the stream's credential from now on (`_stream_credential`)
    return principal


# -- a stream's credential ----------------------------------------------------------------------------
def _stream_credential(conn: HTTPConnection) -> tuple[str, str] | None:
    """("token" | "key", value) a stream is served under: the last token a WebSocket sent as a message, else the
    handshake's (`X-API-Key`, `Authorization: Bearer` or `?token=`); None for an open read (loopback,
    `--insecure-no-auth`), which no credential ends."""
    from ..auth import _credentials  # the handshake's credential, as `authorize` read it

    sent = getattr(conn.state, "stream_token", None)
    return ("token", sent) if sent is not None else _credentials(conn)


def _token_exp_s(token: str) -> float | None:
    """The `exp` (epoch seconds) of a token that was verified as the stream began (or as it was sent)."""
    import jwt

    try:
        return float(jwt.decode(token, options={"verify_signature": False})["exp"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        return None


def _credential_refusal(conn: HTTPConnection, credential: tuple[str, str]) -> HTTPException | None:
    """What a request with this credential would now be refused with (401: the token expired, its key or the
    key is revoked or expired; 503: the key cannot be checked), or None. Reads the database: call it in a thread."""
    from ..auth import _check_token_key, check_key, decode_token, jwt_secret

    kind, value = credential
    try:
        if kind == "key":
            check_key(conn.app, value)
            return None
        principal = decode_token(value, jwt_secret(conn.app.state.settings))
        if principal.key_id is not None:  # every token POST /auth/token issues names its key (`kid`)
            _check_token_key(conn, principal)
    except HTTPException as exc:
        return exc
    return None


async def _end_with_credential(conn: HTTPConnection, client: Subscriber, hub: StreamHub) -> None:
    """Ends `client`'s stream when its credential ends: at a token's `exp`, and at the first check (one every
    `heartbeat_s`) that finds its key, or its token's key, revoked or expired (close 1008 / SSE `event: error`,
    with the reason). A key that cannot be checked (the database away past SIGNALWISE_KEY_CACHE_GRACE_S) ends an
    `X-API-Key` stream with 1013, as its requests get 503; a token's stream then goes on to its `exp`, as reads
    with that token do."""
    while client.closed is None:
        credential = _stream_credential(conn)
        if credential is None and conn.scope["type"] != "websocket":
            return  # an open read; only a WebSocket can send a token later
        wait_s = hub.heartbeat_s
        exp_s = _token_exp_s(credential[1]) if credential is not None and credential[0] == "token" else None
        if exp_s is not None:
            wait_s = min(wait_s, max(0.0, exp_s - time.time()) + EXPIRY_MARGIN_S)
        await asyncio.sleep(wait_s)
        credential = _stream_credential(conn)  # a WebSocket may have sent a (newer) token meanwhile
        if credential is None:
            continue
        try:
            refusal = await run_in_threadpool(_credential_refusal, conn, credential)
        except Exception:  # noqa: BLE001 - a check that broke is tried again; the stream is not cut for it
            log.warning("%s stream %s: its credential could not be checked", client.kind, client.id, exc_info=True)
            continue
        if refusal is None or (refusal.status_code != 401 and credential[0] == "token"):
            continue
        reason = str(refusal.detail)
        log.info("%s stream %s ended: %s", client.kind, client.id, reason)
        ended = refusal.status_code == 401  # the credential will not pass again; a 503 may, once the store answers
        client.end(CLOSE_POLICY if ended else CLOSE_TRY_LATER, reason, "error",
                   retry_ms=SSE_CREDENTIAL_ENDED_RETRY_MS if ended else None)
        return


def _reason(text: str) -> str:
    """A close reason fits a control frame: at most 123 bytes of UTF-8."""
    raw = text.encode()
    return text if len(raw) <= 123 else raw[:120].decode(errors="ignore") + "..."


# -- WebSocket ---------------------------------------------------------------------------------------
@router.websocket("/api/v1/ws/live", name="live_stream_ws")
async def ws_live(websocket: WebSocket, topics: TopicsQ = None, intersections: IntersectionsQ = None,
                  token: TokenQ = None) -> None:
    """Live messages over a WebSocket; `{"subscribe": {"topics": …, "intersections": …}}` changes what
    comes; a heartbeat `{"type": "heartbeat"}` when nothing was sent for `heartbeat_s`."""
    # accepted first: a browser sees a close code and reason, never a refused handshake's status
    await websocket.accept()
    try:
        refused = getattr(websocket.state, "query_refused", None)  # strict_query's verdict, said after accepting
        if refused:
            raise Refused(422, CLOSE_POLICY, refused)
        rt = _check_attached(websocket)
        served = _topics_served(websocket, rt)
        wanted, inters = _subscription(rt, topics, intersections, served)
    except Refused as exc:
        await websocket.close(exc.code, _reason(exc.reason))
        return
    first: dict | None = None
    if getattr(websocket.state, "principal", None) is None:  # no credentials came with the handshake
        first = await _first_message(websocket, rt)
        if first is None:
            return
        if isinstance(first.get("subscribe"), dict):
            try:
                wanted, inters = _subscription(rt, first["subscribe"].get("topics"),
                                               first["subscribe"].get("intersections"), served)
            except Refused as exc:
                await websocket.close(exc.code, _reason(exc.reason))
                return
    hub = _hub(websocket)
    await hub.start()
    client = hub.subscribe("ws", wanted, inters)
    try:  # whatever ends this handler (a client gone before its first message too), the client is finished
        await _ws_serve(websocket, client, hub, rt)
    finally:
        hub.unsubscribe(client)
        client.finished = True


async def _ws_serve(websocket: WebSocket, client, hub, rt) -> None:
    """One subscribed client: its messages out, its requests in, until either side ends; then the close."""
    await websocket.send_text(_described(hub, client))
    sender = asyncio.create_task(_ws_send(websocket, client))
    receiver = asyncio.create_task(_ws_receive(websocket, client, hub, rt))
    kicked = asyncio.create_task(client.kicked())
    guard = asyncio.create_task(_end_with_credential(websocket, client, hub))  # ends the client: `kicked` returns
    tasks = (sender, receiver, kicked)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*tasks, guard):
            task.cancel()
        await asyncio.gather(*tasks, guard, return_exceptions=True)
        closed = client.closed  # set by the hub (too slow, run ended) before we unsubscribe
        hub.unsubscribe(client)
    if closed is not None:
        # queued behind whatever the client has not read yet; a client that never reads again holds this
        # handler for close_timeout_s at most
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(closed.code, _reason(closed.reason)), hub.close_timeout_s)


async def _first_message(websocket: WebSocket, rt) -> dict | None:
    """`{"token": "…"}` (optionally with `"subscribe"`) within FIRST_MESSAGE_WAIT_S; None after closing."""
    try:
        message = await asyncio.wait_for(websocket.receive(), FIRST_MESSAGE_WAIT_S)
    except TimeoutError:
        await websocket.close(CLOSE_POLICY, _reason(f"authenticate: pass ?token= or send {{\"token\": \"...\"}} "
                                                    f"first (within {FIRST_MESSAGE_WAIT_S:g} s)"))
        return None
    if message["type"] == "websocket.disconnect":
        return None
    body = _json_object(message)
    if body is None or "token" not in body:
        await websocket.close(CLOSE_POLICY, "authenticate first: send {\"token\": \"...\"} or pass ?token=")
        return None
    try:
        websocket.state.principal = _principal_from_token(websocket, body["token"])
    except ValueError as exc:
        await websocket.close(CLOSE_POLICY, _reason(str(exc)))
        return None
    return body


def _json_object(message: dict) -> dict | None:
    raw = message.get("text")
    if raw is None:
        raw = (message.get("bytes") or b"").decode(errors="replace")
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _ws_send(websocket: WebSocket, client: Subscriber) -> None:
    send = websocket.send
    while True:
        try:
            _event, _seq, text = await client.next()
        except StreamClosed:
            return
        await send({"type": "websocket.send", "text": text})


async def _ws_receive(websocket: WebSocket, client: Subscriber, hub: StreamHub, rt) -> None:
    """A client's messages: `{"subscribe": {...}}` (answered with `subscribed`), `{"token": "..."}`."""
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect:
            return
        if message["type"] == "websocket.disconnect":
            return
        body = _json_object(message)
        if body is None:
            client.offer(("error", None, json.dumps({"type": "error", "error": "send a JSON object"})))
            continue
        if "token" in body:
            try:
                websocket.state.principal = _principal_from_token(websocket, body["token"])
            except ValueError as exc:
                client.end(CLOSE_POLICY, str(exc), "error")
                return
        if "subscribe" in body:
            sub = body["subscribe"]
            try:
                if not isinstance(sub, dict):
                    raise Refused(422, CLOSE_POLICY, "subscribe takes {\"topics\": ..., \"intersections\": ...}")
                wanted, inters = _subscription(rt, sub.get("topics"), sub.get("intersections"),
                                               _topics_served(websocket, rt))
            except Refused as exc:
                client.offer(("error", None, json.dumps({"type": "error", "error": exc.reason})))
                continue
            hub.resubscribe(client, wanted, inters)
            client.offer(("subscribed", None, _described(hub, client)))
        elif "token" not in body:
            client.offer(("error", None, json.dumps({
                "type": "error", "error": "unknown message; send {\"subscribe\": {\"topics\": ..., "
                                         "\"intersections\": ...}} or {\"token\": \"...\"}"})))


# -- Server-sent events -------------------------------------------------------------------------------
def _sse_subscription(request: Request, topics: TopicsQ = None,
                      intersections: IntersectionsQ = None) -> tuple[list[str] | None, list[str] | None]:
    """Checked before the stream starts, so a refusal is a plain 503 / 422 with its reason."""
    try:
        rt = _check_attached(request)
        return _subscription(rt, topics, intersections, _topics_served(request, rt))
    except Refused as exc:
        if exc.status == 422:
            raise field_error(exc.loc, exc.reason) from None
        raise HTTPException(exc.status, exc.reason, headers={"Retry-After": "5"} if exc.status == 503 else None
                            ) from None


@router.get("/api/v1/sse/live", response_class=EventSourceResponse, include_in_schema=False,
            summary="Live messages as server-sent events")
async def sse_live(request: Request,
                   subscription: Annotated[tuple, Depends(_sse_subscription)],
                   token: TokenQ = None):
    """Each message is an event named after its topic (`event: snapshot`, `id:` its seq, `data:` the JSON); a
    client reconnecting with Last-Event-ID first gets the alert and change messages it missed;
    `: heartbeat` comments when nothing was sent for `heartbeat_s`; a client too slow to read gets a final
    `event: error` and the stream ends; `event: end` when the live run ends. The `event: error` of a credential
    that ended carries `retry: SSE_CREDENTIAL_ENDED_RETRY_MS` (a day), not inviting an EventSource to reconnect
    with it.

    Not in the OpenAPI schema: an endless stream cannot be described (nor fuzzed) as a response.
    """
    hub = _hub(request)
    await hub.start()
    last = request.headers.get("last-event-id", "").strip()  # an EventSource reconnecting says what it had
    client = hub.subscribe("sse", *subscription, after_seq=int(last) if last.isdigit() else None)
    guard = asyncio.create_task(_end_with_credential(request, client, hub))
    try:
        yield ServerSentEvent(event="subscribed", raw_data=_described(hub, client), retry=SSE_RETRY_MS)
        while True:
            try:
                event, seq, text = await client.next()
            except StreamClosed as closed:
                yield ServerSentEvent(event=closed.event, raw_data=json.dumps(
                    {"type": closed.event, "code": closed.code, "reason": closed.reason}), retry=closed.retry_ms)
                return
            if event == "heartbeat":
                yield ServerSentEvent(comment="heartbeat")
            else:
                yield ServerSentEvent(event=event, id=None if seq is None else str(seq), raw_data=text)
    finally:
        guard.cancel()
        hub.unsubscribe(client)
        client.finished = True
