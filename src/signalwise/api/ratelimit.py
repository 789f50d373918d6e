"""Rate limits: per API key (or per client address when anonymous), on a sliding window.

The `limits` library counts; its storage is Redis when `SIGNALWISE_REDIS_URL`
is set, so several API workers share the counts, and memory otherwise.
Limits are configured per scope (`Settings.rate_limits`, default 100 per
minute for predictions and mutations; reads are not limited by default). A
refused call gets 429 with `Retry-After` and the `X-RateLimit-*` headers;
every limited call gets the headers too.
"""

from __future__ import annotations

import time

from fastapi import HTTPException
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import HTTPConnection

from .auth import scope_for

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RateLimits:
    """The app's limiter; built once per app from its settings."""

    def __init__(self, per_scope: dict[str, str], redis_url: str | None):
        self.storage = storage_from_string(redis_url if redis_url else "memory://")
        # a sliding-window counter: O(1) per hit (a moving window keeps every hit of the window: O(n))
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.per_scope = {scope: parse(text) for scope, text in per_scope.items()}

    def limit_for(self, method: str, path: str) -> tuple[str, object] | None:
        """(bucket, limit) that applies to this route, or None when it is not limited."""
        scope = scope_for(method, path) or "open"
        if method in MUTATING or path.startswith("/api/v1/ml/predict"):
            key = "predict" if path.startswith("/api/v1/ml/predict") else scope
        else:
            key = "read"
        limit = self.per_scope.get(key)
        return (key, limit) if limit is not None else None


def _caller(conn: HTTPConnection) -> str:
    principal = getattr(conn.state, "principal", None)
    if principal is not None and principal.key_id:
        return f"key:{principal.key_id}"
    if principal is not None and principal.via == "token":
        return f"name:{principal.name}"
    return f"addr:{conn.client.host if conn.client else '?'}"


async def rate_limit(conn: HTTPConnection) -> None:
    """App-wide, after `authorize`: count this call against its caller's window."""
    limits: RateLimits | None = getattr(conn.app.state, "rate_limits", None)
    if limits is None or conn.scope.get("type") != "http":
        return
    route = conn.scope.get("route")
    path = getattr(route, "path", conn.url.path)
    found = limits.limit_for(conn.scope.get("method", "GET"), path)
    if found is None:
        return
    bucket, limit = found
    who = _caller(conn)
    allowed = limits.limiter.hit(limit, bucket, who)
    stats = limits.limiter.get_window_stats(limit, bucket, who)
    headers = {"X-RateLimit-Limit": str(limit.amount), "X-RateLimit-Remaining": str(max(0, stats.remaining)),
               "X-RateLimit-Reset": str(int(stats.reset_time))}
    conn.state.rate_limit_headers = headers
    if not allowed:
        retry = max(1, int(stats.reset_time - time.time() + 0.999))
        raise HTTPException(429, f"rate limit of {limit} for {bucket} calls reached by {who.split(':', 1)[0]} "
                                 f"{who.split(':', 1)[1]}; retry in {retry} s",
                            headers={**headers, "Retry-After": str(retry)})
