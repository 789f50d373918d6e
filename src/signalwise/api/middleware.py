"""Pure ASGI middlewares: they wrap `send` instead of buffering responses.

Starlette's `@app.middleware("http")` costs a task and a stream per request;
at hundreds of predictions a second that was a measurable share of each
call, so the two things every response needs are done here directly.
"""

from __future__ import annotations

import logging
import time

#: the request state's keys whose headers every answer carries: the limiter's X-RateLimit-*, and
#: X-Auth-Checked when a key was checked from memory (`auth.MEMORY_HEADER`)
STATE_HEADERS = ("rate_limit_headers", "auth_headers")


class RateLimitHeaders:
    """Adds the headers the limiter and the key check left in the request's state (if not there already)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                extra = {k: v for name in STATE_HEADERS for k, v in (state.get(name) or {}).items()}
                if extra:
                    headers = list(message.get("headers", []))
                    present = {k.lower() for k, _v in headers}
                    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                                if k.lower().encode() not in present]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Answered:
    """Hands each HTTP request's status and seconds to answer to `done`, once it is answered (500 when the app
    failed before it started its answer). The two middlewares below differ only in what they do then."""

    def __init__(self, app):
        self.app = app

    def wanted(self, scope) -> bool:
        return scope["type"] == "http"

    def done(self, scope, status: int, seconds: float) -> None:
        raise NotImplementedError

    async def __call__(self, scope, receive, send):
        if not self.wanted(scope):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_noted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noted)
        finally:
            self.done(scope, status, time.perf_counter() - started)


class RequestTiming(_Answered):
    """Observes each request's time to answer into a histogram labelled by method, route and status."""

    def __init__(self, app, histogram):
        super().__init__(app)
        self.histogram = histogram

    def done(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        self.histogram.labels(scope.get("method", ""), getattr(route, "path", "unmatched"), str(status)).observe(
            seconds)


class AccessLog(_Answered):
    """One INFO line per HTTP request on `signalwise.access`: client, method, path (never the query: streams
    carry `?token=`), status, milliseconds, and the caller's key name. Nothing is formatted unless the logger
    is enabled (`signalwise.logs`: SIGNALWISE_ACCESS_LOG)."""

    def __init__(self, app):
        super().__init__(app)
        self.log = logging.getLogger("signalwise.access")

    def wanted(self, scope) -> bool:
        return scope["type"] == "http" and self.log.isEnabledFor(logging.INFO)

    def done(self, scope, status: int, seconds: float) -> None:
        ms = seconds * 1000
        client = scope.get("client")
        principal = (scope.get("state") or {}).get("principal")
        caller = principal.name if principal is not None else "-"
        # the path as sent, control characters escaped: a decoded %0A would start a forged line in a text log
        path = scope.get("path", "").encode("unicode_escape").decode("ascii")
        fields = {"client": client[0] if client else "-", "method": scope.get("method", ""),
                  "path": path, "status": status, "duration_ms": round(ms, 1), "caller": caller}
        self.log.info("%s %s %s %d %.1f ms %s", fields["client"], fields["method"], fields["path"], status, ms,
                      caller, extra={"http": fields})


class BodyLimit:
    """Refuses a request body over its route's limit with 413, before the app reads it.

    FastAPI parses a JSON body whole before any route's own bound is checked (an observation's lanes, a batch's
    items), so a body of hundreds of megabytes would be read and parsed first. A declared Content-Length over
    the limit is refused at once; a chunked body is read up to the limit and refused when it passes it. The
    routes that bound their own bodies while reading (ingest, detector feeds) are left to do so.
    """

    def __init__(self, app, limit_bytes: int = 1024 * 1024, larger: dict[str, int] | None = None,
                 own: tuple[str, ...] = ()):
        self.app = app
        self.limit_bytes = limit_bytes
        self.larger = dict(larger or {})  # exact path -> its limit
        self.own = own  # path prefixes that bound their bodies themselves

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith(self.own):
            return await self.app(scope, receive, send)
        limit = self.larger.get(path, self.limit_bytes)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                return await _too_large(send, limit)
            return await self.app(scope, receive, send)
        chunks, size = [], 0  # chunked: read it here, up to the limit, and hand it on
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)  # the client went away
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                return await _too_large(send, limit)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, receive), send)


def _replay(messages: list[dict], then=None):
    """A `receive` that gives `messages` first, then whatever `then` gives (a disconnect, later)."""
    pending = list(messages)

    async def receive():
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _too_large(send, limit: int) -> None:
    import json

    body = json.dumps({"message": f"the body is larger than {limit} bytes, this route's limit",
                       "detail": f"larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
