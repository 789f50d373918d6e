"""Rate limits: per API key (or per client address when anonymous), on a sliding window.

The `limits` library counts; its storage is Redis when `SIGNALWISE_REDIS_URL`
is set, so several API workers share the counts, and memory otherwise.
Limits are configured per scope (`Settings.rate_limits`, default 100 per
minute for predictions and mutations, 6,000 for a live run's detector feeds;
reads are not limited by default). A
refused call gets 429 with `Retry-After` and the `X-RateLimit-*` headers;
every limited call gets the headers too.

A Redis store is required, not best effort: `signalwise serve` (and `signalwise live`) refuse to start
when it does not answer (`store.redis_check.startup_problem`), and while it is down a limited call is refused with 503 and
the reason (`limits` raises `StorageError`, `wrap_exceptions=True`), never let through uncounted (each
worker counting alone would multiply the limit by the number of workers) and never a 500. `/health`
reports the store (`store_problem`).
"""

from __future__ import annotations

import logging
import time

from fastapi import HTTPException
from limits import parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import HTTPConnection

from ..store.redis_check import REDIS_TIMEOUT_S, display_url
from .auth import scope_for

#: a live run's detector gateways post here every few seconds per signal: their own kind of call (`feed`), so a
#: corridor's feed is not held to the 100 a minute of a person's ingest
FEED_PREFIX = "/api/v1/live/feeds/"

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: what a 503 from a store that is down tells the client to wait before retrying
RETRY_AFTER_S = 5

log = logging.getLogger("signalwise.api.ratelimit")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RateLimits:
    """The app's limiter; built once per app from its settings."""

    def __init__(self, per_scope: dict[str, str], redis_url: str | None):
        self.redis_url = redis_url or None
        if self.redis_url:
            # storage errors come out as `limits.errors.StorageError` (the Redis client's own beside it)
            self.storage = storage_from_string(self.redis_url, wrap_exceptions=True,
                                               socket_connect_timeout=REDIS_TIMEOUT_S,
                                               socket_timeout=REDIS_TIMEOUT_S)
        else:
            self.storage = storage_from_string("memory://")
        # a sliding-window counter: O(1) per hit (a moving window keeps every hit of the window: O(n))
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.per_scope = {scope: parse(text) for scope, text in per_scope.items()}
        self.where = f"Redis at {display_url(self.redis_url)}" if self.redis_url else "memory"
        self._down = False  # the store failed the last call (logged once, then once when it is back)

    def store_problem(self) -> str | None:
        """None when the counts' store answers (memory always does), else why not, in one line."""
        if not self.redis_url:
            return None
        try:
            if self.storage.get_connection().ping():
                return None
            return "PING was not answered"
        except Exception as exc:  # noqa: BLE001 - any failure to reach or talk to Redis: the store is down
            return _first_line(exc)

    def failed(self, exc: StorageError) -> HTTPException:
        """The 503 for a call that could not be counted (logged when the store goes down, not for every call)."""
        reason = _first_line(exc.storage_error)
        if not self._down:
            self._down = True
            log.warning("rate-limit store %s does not answer (%s): rate-limited calls answer 503 until it does",
                        self.where, reason)
        return HTTPException(503, f"rate limits cannot be counted: the rate-limit store ({self.where}) does not "
                                  f"answer ({reason}); nothing was done, retry later",
                             headers={"Retry-After": str(RETRY_AFTER_S)})

    def answered(self) -> None:
        if self._down:
            self._down = False
            log.warning("rate-limit store %s answers again", self.where)

    def limit_for(self, method: str, path: str) -> tuple[str, object] | None:
        """(bucket, limit) that applies to this route, or None when it is not limited.

        Open reads (`/health`, `/metrics`, the page, the docs) are never counted: a `read` limit must not
        turn a load balancer's health checks or Prometheus's scrapes into 429s (nor 503s while Redis is down).
        """
        scope = scope_for(method, path)
        if path.startswith(FEED_PREFIX) and method in MUTATING:
            key = "feed"
        elif method in MUTATING or path.startswith("/api/v1/ml/predict"):
            key = "predict" if path.startswith("/api/v1/ml/predict") else scope or "open"
        elif scope is None:
            return None
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
    try:
        allowed = limits.limiter.hit(limit, bucket, who)
        stats = limits.limiter.get_window_stats(limit, bucket, who)
    except StorageError as exc:  # Redis is down or does not answer: refused, with the reason, not a 500
        raise limits.failed(exc) from None
    limits.answered()
    headers = {"X-RateLimit-Limit": str(limit.amount), "X-RateLimit-Remaining": str(max(0, stats.remaining)),
               "X-RateLimit-Reset": str(int(stats.reset_time))}
    conn.state.rate_limit_headers = headers
    if not allowed:
        retry = max(1, int(stats.reset_time - time.time() + 0.999))
        raise HTTPException(429, f"rate limit of {limit} for {bucket} calls reached by {who.split(':', 1)[0]} "
                                 f"{who.split(':', 1)[1]}; retry in {retry} s",
                            headers={**headers, "Retry-After": str(retry)})
