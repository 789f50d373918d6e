"""Rate limits: per API key (or per client address when anonymous), on a sliding window.

The `limits` library counts; its storage is Redis when `SIGNALWISE_REDIS_URL`
is set, so several API workers share the counts, and memory otherwise.
Limits are configured per kind of call (`Settings.rate_limits`, whose validator refuses an unknown kind or a limit
`limits` cannot read): a route counts against the limit of the scope it needs (`read`, `ingest`, `operate`, `admin`,
`evidence`: an admin-only GET counts as `admin`), but predictions (`predict`) and a live run's detector feeds
(`feed`); the open routes never count. By default 100 per minute for predictions and the `ingest`, `operate` and
`admin` routes, 6,000 for feeds; `read` and `evidence` are not limited by default; SIGNALWISE_RATE_LIMITS sets
the kinds it names over these defaults, kind by kind (`null` lifts one). A
refused call gets 429 with `Retry-After` and the `X-RateLimit-*` headers;
every limited call gets the headers too.

When the Redis it names does not answer, at start (`signalwise serve` and `signalwise live` say so once:
`store.redis_check.outage_warning`) or later, each process counts in its own memory until it answers again
(asked again every `REDIS_RETRY_S`, by a limited call or by `/health`): an emergency override or a switch to
fixed time must not wait for a rate-limit cache, and per process the limits still hold (several workers then
allow up to their number times each limit). The switch is logged once each way and shown on `/health` and in the
`signalwise_rate_limit_store_fallback` gauge.

Refused credentials count per client address (`auth_failure`, default 60 a minute; only `"auth_failure": null`
lifts it): past it the refusal is a 429 with `Retry-After` instead of
a 401 (and no longer logged one by one); a good key is never refused by it.
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
#: seconds between two tries of a Redis that stopped answering (calls in between count in memory at once)
REDIS_RETRY_S = 5.0

log = logging.getLogger("signalwise.api.ratelimit")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RateLimits:
    """The app's limiter; built once per app from its settings."""

    def __init__(self, per_scope: dict[str, str | None], redis_url: str | None):
        self.redis_url = redis_url or None
        memory = SlidingWindowCounterRateLimiter(storage_from_string("memory://"))
        if self.redis_url:
            # `limits` names a Redis socket `redis+unix://`; the Redis client (stream fan-out, the check at start)
            # `unix://`, the one SIGNALWISE_REDIS_URL takes
            scheme, sep, rest = self.redis_url.partition("://")
            url = f"redis+unix{sep}{rest}" if scheme.lower() == "unix" else self.redis_url
            # storage errors come out as `limits.errors.StorageError` (the Redis client's own beside it)
            self.storage = storage_from_string(url, wrap_exceptions=True,
                                               socket_connect_timeout=REDIS_TIMEOUT_S,
                                               socket_timeout=REDIS_TIMEOUT_S)
            # a sliding-window counter: O(1) per hit (a moving window keeps every hit of the window: O(n))
            self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        else:
            self.storage, self.limiter = memory.storage, memory
        self.memory = memory  # the counts while Redis does not answer
        # kinds and limit strings were checked with the settings (`Settings._rate_limits`); null: not limited
        self.per_scope = {kind: parse(text) for kind, text in per_scope.items() if text is not None}
        self.where = f"Redis at {display_url(self.redis_url)}" if self.redis_url else "memory"
        self.down_since: float | None = None  # epoch s Redis stopped answering (None while it answers)
        self.down_reason: str | None = None
        self._retry_at = 0.0  # monotonic s: Redis is asked again from then on
        self.retry_s = REDIS_RETRY_S

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

    def recheck(self) -> bool:
        """While in fallback: ask Redis again (at most once every `retry_s`, bounded by its socket timeout) and
        count there again if it answers, so that a process serving no limited call (reads are not limited by
        default) does not report the fallback long after Redis came back. Whether it is still in fallback."""
        if not self.in_fallback or time.monotonic() < self._retry_at:
            return self.in_fallback
        if self.store_problem() is None:
            self._came_back()
        else:
            self._retry_at = time.monotonic() + self.retry_s
        return self.in_fallback

    @property
    def in_fallback(self) -> bool:
        """True while calls are counted in this process's memory because Redis does not answer."""
        return self.down_since is not None

    def count(self, limit, bucket: str, who: str):
        """Hit `limit` for (bucket, who): (allowed, window stats), in Redis, or in memory while it is down."""
        if self.in_fallback and time.monotonic() < self._retry_at:
            return self._hit(self.memory, limit, bucket, who)
        try:
            answer = self._hit(self.limiter, limit, bucket, who)
        except StorageError as exc:  # Redis is down or does not answer: counted here, in this process
            self._went_down(exc)
            return self._hit(self.memory, limit, bucket, who)
        if self.in_fallback:
            self._came_back()
        return answer

    @staticmethod
    def _hit(limiter, limit, bucket: str, who: str):
        allowed = limiter.hit(limit, bucket, who)
        return allowed, limiter.get_window_stats(limit, bucket, who)

    def _went_down(self, exc: StorageError) -> None:
        self._retry_at = time.monotonic() + self.retry_s
        if self.down_since is None:
            self.down_since = time.time()
            self.down_reason = _first_line(exc.storage_error)
            log.warning("rate-limit store %s does not answer (%s): counting in this process's memory until it "
                        "answers (each process counts alone meanwhile)", self.where, self.down_reason)

    def _came_back(self) -> None:
        log.warning("rate-limit store %s answers again after %.0f s: counting there again", self.where,
                    time.time() - (self.down_since or time.time()))
        self.down_since = self.down_reason = None

    def auth_failure(self, address: str) -> int | None:
        """Count a refused credential from `address`: None while within `auth_failure`, else seconds to wait."""
        limit = self.per_scope.get("auth_failure")
        if limit is None:
            return None
        allowed, stats = self.count(limit, "auth_failure", f"addr:{address}")
        if allowed and stats.remaining == 0:
            log.warning("%s reached the limit of refused credentials (%s): further refusals answer 429 and are "
                        "not logged one by one", address, limit)
        if allowed:
            return None
        return max(1, int(reset_time(stats, limit) - time.time() + 0.999))

    def limit_for(self, method: str, path: str) -> tuple[str, object] | None:
        """(bucket, limit) that applies to this route, or None when it is not limited.

        A route counts against the limit of the scope it needs, reads included (`GET /api/v1/keys` is an
        `admin` call, an evidence image an `evidence` one), but predictions (`predict`) and detector feeds
        (`feed`). Open routes (`/health`, `/metrics`, the page, the docs, the token exchange) are never counted:
        a `read` limit must not turn a load balancer's health checks or Prometheus's scrapes into 429s, and a
        wrong key at the token exchange counts as `auth_failure`.
        """
        scope = scope_for(method, path)
        if scope is None:
            return None
        if path.startswith(FEED_PREFIX) and method in MUTATING:
            key = "feed"
        elif path.startswith("/api/v1/ml/predict"):
            key = "predict"
        else:
            key = scope
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
    allowed, stats = limits.count(limit, bucket, who)
    reset = reset_time(stats, limit)
    headers = {"X-RateLimit-Limit": str(limit.amount), "X-RateLimit-Remaining": str(max(0, stats.remaining)),
               "X-RateLimit-Reset": str(int(reset))}
    conn.state.rate_limit_headers = headers
    if not allowed:
        retry = max(1, int(reset - time.time() + 0.999))
        raise HTTPException(429, f"rate limit of {limit} for {bucket} calls reached by {who.split(':', 1)[0]} "
                                 f"{who.split(':', 1)[1]}; retry in {retry} s",
                            headers={**headers, "Retry-After": str(retry)})


def reset_time(stats, limit) -> float:
    """When the caller's window resets (epoch s). `limits` reckons it modulo the window from the key's time to
    live, which Redis sets to two windows at a window's first hit: the first call read "now"; it is a whole
    window from now then."""
    now = time.time()
    return stats.reset_time if stats.reset_time > now + 0.001 else now + limit.get_expiry()
