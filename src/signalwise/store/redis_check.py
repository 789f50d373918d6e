"""Whether the Redis a deployment names answers: `serve` and `live` refuse to start without it.

With `SIGNALWISE_REDIS_URL` set, the API's workers count rate limits there (`api.ratelimit`): a Redis that does
not answer at start is a misconfiguration, said with the reason before anything starts (one that goes away
later is an outage: each process then counts in its own memory until it answers). It lives in the store package
because the `serve` command does (`store.commands`), which must not import the API it starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: seconds to connect to Redis or have it answer (it answers in well under a millisecond)
REDIS_TIMEOUT_S = 1.0


def display_url(url: str) -> str:
    """The URL without its password, to print and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def startup_problem(redis_url: str | None) -> str | None:
    """None when there is no Redis to check or it answers PING, else the one line a command prints before it
    refuses to start."""
    if not redis_url:
        return None
    try:
        import redis
    except ImportError:
        return (f"SIGNALWISE_REDIS_URL names Redis at {display_url(redis_url)}, but the redis package is not "
                "installed (pip install 'signalwise[redis]')")
    try:
        answered = redis.Redis.from_url(redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                        socket_timeout=REDIS_TIMEOUT_S).ping()
        problem = None if answered else "PING was not answered"
    except Exception as exc:  # noqa: BLE001 - any failure to reach or talk to Redis: it does not answer
        problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if problem is None:
        return None
    return f"the rate-limit store, Redis at {display_url(redis_url)} (SIGNALWISE_REDIS_URL), does not answer: {problem}"
