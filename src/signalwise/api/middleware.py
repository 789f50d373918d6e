"""Pure ASGI middlewares: they wrap `send` instead of buffering responses.

Starlette's `@app.middleware("http")` costs a task and a stream per request;
at hundreds of predictions a second that was a measurable share of each
call, so the two things every response needs are done here directly.
"""

from __future__ import annotations

import time


class RateLimitHeaders:
    """Adds the X-RateLimit-* headers the limiter left in the request's state (if not there already)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = (scope.get("state") or {}).get("rate_limit_headers")
                if extra:
                    headers = list(message.get("headers", []))
                    present = {k.lower() for k, _v in headers}
                    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                                if k.lower().encode() not in present]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestTiming:
    """Observes each request's time to answer into a histogram labelled by method, route and status."""

    def __init__(self, app, histogram):
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_timed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = scope.get("route")
            self.histogram.labels(scope.get("method", ""), getattr(route, "path", "unmatched"), str(status)).observe(
                time.perf_counter() - started)
