"""Pure ASGI middlewares: they wrap `send` instead of buffering responses.

Starlette's `@app.middleware("http")` costs a task and a stream per request;
at hundreds of predictions a second that was a measurable share of each
call, so the two things every response needs are done here directly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.exceptions import HTTPException

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


#: the Content-Security-Policy of every answer: the dashboard loads its scripts, styles and data from this server
#: only (no inline script nor style attribute: `static/dashboard`), opens its stream here (`'self'` takes ws: and
#: wss: to this host), shows charts as data: and blob: images, and is framed by no site (clickjacking)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: the OpenAPI pages (FastAPI's Swagger UI and ReDoc, `docs.py`) start from an inline script and style, and ReDoc
#: runs a worker from a blob: URL; they take nothing from another site either
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
DOCS_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
#: what every answer carries besides its CSP (an answer that sets one of these keeps its own)
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"))


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` and a Content-Security-Policy (`CSP`, `DOCS_CSP` on the OpenAPI pages) to every
    HTTP answer, refusals included: no other site may frame the dashboard and its controls, no answer is
    sniffed as another type, no URL (a stream's ?token=) leaves in a Referer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = (DOCS_CSP if scope.get("path") in DOCS_PAGES else CSP).encode()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _v in headers}
                headers += [(k, v) for k, v in (*SECURITY_HEADERS, (b"content-security-policy", csp))
                            if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answers HEAD on every GET route: the route is served as a GET (its authorization, rate limit and headers
    with it) and the answer goes out without its body. Load balancers and uptime monitors probe with HEAD.

    Starlette's `Route` adds HEAD beside GET; FastAPI's `APIRoute` does not (fastapi/fastapi#1773, open), and
    adding HEAD to the routes' methods would list every GET twice in the OpenAPI schema under one operation id.
    The answer ends as soon as its headers are sent, and the GET is then told the client has gone: a streaming
    GET (the SSE stream) would otherwise run on unseen, holding a subscriber and its heartbeats. The request's own scope keeps HEAD, so the access log, the
    request metrics and the server (which sends no body for HEAD) see the method that was sent; the router's
    findings (`route`, `endpoint`) are copied back for them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})  # shared with the GET's scope: what auth and the limiter leave there
        # the GET is told the client has gone once its headers are sent, and by `receive` (ASGI spec 2.3's way,
        # which Starlette's streaming answers then listen on): from a server of spec 2.4 or later they would
        # wait for a send to fail instead, and these sends never do
        as_get = {**scope, "method": "GET", "asgi": {**scope.get("asgi", {}), "spec_version": "2.3"}}
        answered = False
        gone = asyncio.Event()

        async def receive_until_answered():
            if answered:
                return {"type": "http.disconnect"}
            asked = asyncio.ensure_future(receive())
            told = asyncio.ensure_future(gone.wait())
            done, _ = await asyncio.wait({asked, told}, return_when=asyncio.FIRST_COMPLETED)
            if asked in done:
                told.cancel()
                return asked.result()
            asked.cancel()
            return {"type": "http.disconnect"}

        async def headers_only(message):
            nonlocal answered
            if answered:
                return  # the body, or what a stream goes on sending until it hears the client is gone
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                answered = True
                gone.set()
            elif message["type"] != "http.response.body":
                await send(message)

        try:
            await self.app(as_get, receive_until_answered, headers_only)
        finally:
            for name in ("route", "endpoint", "path_params"):
                if name in as_get and name not in scope:
                    scope[name] = as_get[name]


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


class BodyTooLarge(HTTPException):
    """A request body past its route's limit (413): raised by the read that passes it, wherever the app reads
    (FastAPI's body parsing re-raises an HTTPException, a route's own `request.body()` lets it through), and
    answered by the app's error handler. The connection is closed after it, so the rest is never read."""

    def __init__(self, message: str):
        super().__init__(413, message, headers={"Connection": "close"})


class BodyLimit:
    """Bounds every request body by its route's limit (413), counting the bytes as the app reads them.

    FastAPI parses a JSON body whole before any route's own bound is checked (an observation's lanes, a batch's
    items), so a body of hundreds of megabytes would be read and parsed first. A declared Content-Length over
    the limit is refused unread: at once from a caller with a credential; from one without, at the app's first
    read, so a route that authorizes before it reads answers such a caller 401 whatever the body's size (as it
    does a smaller body) and one that reads answers 413, nothing read either way. A chunked body is bounded
    while it streams: the read that passes the limit fails with `BodyTooLarge`, so no more than the limit is
    ever held. Nothing is read here: a route that
    takes `Request` rather than a body parameter authorizes its caller (the app's dependencies) before it reads,
    so a caller without a credential costs no more than its headers.

    `anonymous` gives some routes a smaller limit for a request without a credential (no `X-API-Key`, no
    `Authorization: Bearer`: what `auth._credentials` reads): a request with one gets the larger limit only once
    the route has authorized it (a bad one is a 401), if the route reads after authorizing. An answer given before the body was read to
    its end closes the connection: uvicorn would otherwise receive and discard the rest, of any length.

    Starlette 1.x's `RequestBodyLimitMiddleware` (FastAPI's `max_body_size`) counts the same way, but is newer
    than the FastAPI this package supports, answers in plain text and has one limit per route, whoever calls.
    """

    def __init__(self, app, limit_bytes: int = 1024 * 1024, larger: dict[str, int] | None = None,
                 anonymous: dict[str, int] | None = None, own: tuple[str, ...] = (),
                 anonymous_default: int | None = None):
        self.app = app
        self.limit_bytes = limit_bytes
        self.larger = dict(larger or {})  # exact path -> its limit
        self.anonymous = dict(anonymous or {})  # exact path -> its limit for a request without a credential
        #: every other path's limit without a credential: a route that takes a body parameter has it parsed
        #: before the caller is authorized, so the 401 comes after this many bytes at most
        self.anonymous_default = anonymous_default
        self.own = own  # path prefixes that bound their bodies themselves

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith(self.own):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        limit, why = self.limit_for(path, headers)
        declared = headers.get(b"content-length")
        over = None  # the refusal of a declared Content-Length over the limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            over = _refusal(f"{int(declared)} bytes (Content-Length), ", limit, why)
            if _credential(headers):
                return await _too_large(send, over)
        unread = over is not None or b"transfer-encoding" in headers or (
            declared is not None and declared.isdigit() and int(declared) > DRAINED_BYTES)
        received = 0

        async def counted():
            nonlocal received, unread
            if over is not None:
                # without a credential the app answers first: a route that needs a scope authorizes the caller
                # before it reads (401, whatever the body), one that reads (a route open to the caller, or one
                # parsing a declared body before authorizing) gets the 413 at its first read, nothing read
                raise BodyTooLarge(over)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_refusal("", limit, why))
                if not message.get("more_body", False):
                    unread = False
            return message

        async def closing(message):
            if message["type"] == "http.response.start" and unread:
                present = {k.lower() for k, _v in message.get("headers", [])}
                if b"connection" not in present:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, closing)

    def limit_for(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str]:
        """(the limit of a request to `path` with these headers, what to add when it is refused)."""
        limit = self.larger.get(path, self.limit_bytes)
        smaller = self.anonymous.get(path, self.anonymous_default)
        if smaller is not None and smaller >= limit:
            smaller = None
        if smaller is None or _credential(headers):
            return limit, ""
        return smaller, (f" without a credential; with an API key or token (X-API-Key, Authorization: Bearer) "
                         f"it takes {limit} bytes")


def _credential(headers: dict[bytes, bytes]) -> bool:
    """Whether a request carries a credential (`X-API-Key`, `Authorization: Bearer`: what `auth._credentials`
    reads), good or bad: the route's authorization then says which."""
    bearer = headers.get(b"authorization", b"")[:7].lower() == b"bearer "
    return bearer or bool(headers.get(b"x-api-key", b"").strip())


#: an unread body of at most this many bytes (declared) is left for uvicorn to drain: the connection stays open
DRAINED_BYTES = 64 * 1024


def _refusal(size: str, limit: int, why: str) -> str:
    return f"the body is {size}larger than {limit} bytes, this route's limit{why}"


async def _too_large(send, message: str) -> None:
    import json

    body = json.dumps({"message": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def json_body(request) -> bytes:  # noqa: ANN001 - a starlette Request
    """The body of a route that reads it itself, after the app's dependencies authorized the caller (a body
    parameter is read before them), bounded by `BodyLimit` while it streams. A Content-Type that is not JSON is
    a 422, as FastAPI answers it for a body parameter (a page on another site may send text/plain unasked)."""
    from email.message import Message

    from fastapi.exceptions import RequestValidationError

    given = request.headers.get("content-type")
    if given:
        parsed = Message()
        parsed["content-type"] = given
        subtype = parsed.get_content_subtype()
        if parsed.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            raise RequestValidationError([{"loc": ("body",), "type": "content_type",
                                           "msg": f"Content-Type {given!r} is not JSON: send application/json"}])
    return await request.body()
