"""Redis at the start of `serve` and `live`: the package a URL needs, and whether the server answers.

With `SIGNALWISE_REDIS_URL` set, the API counts rate limits there and relays the live streams through it
(`api.ratelimit`, `api.streams`). A URL set without the redis package installed is a configuration error: the
command refuses to start (`missing_package`). A Redis that does not answer at start is an outage, met as one
met mid-run is: signal control must not wait for a rate-limit cache, so the command says so once (`outage_warning`)
and starts with rate limits counted in each process's memory and the stream relay off, asking Redis again every
few seconds until it answers. It lives in the store package because the `serve` command does
(`store.commands`), which must not import the API it starts.
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


#: environment variables whose value needs an optional extra: variable -> (module imported, extra installing it).
#: The refusal below is written from it, and tests/test_deploy_extras.py checks the Dockerfile installs the
#: extra of every variable compose.yaml gives a service
EXTRA_FOR_VARIABLE: dict[str, tuple[str, str]] = {"SIGNALWISE_REDIS_URL": ("redis", "redis")}


def missing_package(redis_url: str | None) -> str | None:
    """None when no Redis is named or the redis package is installed, else the one line a command prints before it
    refuses to start: a URL without the client to use it is a configuration error, not an outage."""
    if not redis_url:
        return None
    module, extra = EXTRA_FOR_VARIABLE["SIGNALWISE_REDIS_URL"]
    try:
        __import__(module)
    except ImportError:
        return (f"SIGNALWISE_REDIS_URL names Redis at {display_url(redis_url)}, but the {module} package is not "
                f"installed (pip install 'signalwise[{extra}]')")
    return None


def unanswered(redis_url: str | None) -> str | None:
    """None when there is no Redis to ask or it answers PING within REDIS_TIMEOUT_S, else why not, in one line."""
    if not redis_url:
        return None
    import redis

    try:
        answered = redis.Redis.from_url(redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                        socket_timeout=REDIS_TIMEOUT_S).ping()
        return None if answered else "PING was not answered"
    except Exception as exc:  # noqa: BLE001 - any failure to reach or talk to Redis: it does not answer
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def outage_warning(redis_url: str | None) -> str | None:
    """None when Redis answers (or none is named), else the one warning line `serve` and `live` print as they start
    without it (after `missing_package` found the package)."""
    problem = unanswered(redis_url)
    if problem is None:
        return None
    return (f"Redis at {display_url(redis_url)} (SIGNALWISE_REDIS_URL) does not answer: {problem.rstrip('.')}; starting "
            "without it: rate limits are counted in each process's memory and the live streams are not relayed "
            "between processes until it answers (asked again every few seconds; /health says degraded meanwhile)")
