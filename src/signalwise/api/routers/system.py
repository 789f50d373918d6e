"""Health, system information and cache administration."""

from __future__ import annotations

import functools
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import signalwise
from signalwise.store import database_kind, get_engine, queries
from signalwise.store.engine import StoreNotAtHead, current_revision, head_revision
from signalwise.store.timefmt import utc_text

from ..deps import CacheDep, EngineDep, SettingsDep

router = APIRouter(tags=["system"])

log = logging.getLogger("signalwise.api.health")


#: a health route's 503: its own body (status, checks, message), not the error body of the other routes
def _unavailable(why: str) -> dict:
    return {503: {"description": f"{why}; the body is this route's own (`status`, `message`)",
                  "content": {"application/json": {"schema": {"type": "object"}}}}}


# HEAD too, as every GET route (`middleware.HeadAsGet`): load balancers probe with it
@router.get("/health/live", responses=_unavailable("the live loop has stalled"),
            summary="Liveness: 200 while the process serves and a live run's loop ticks; never asks the database or "
                    "Redis")
def health_live(request: Request) -> JSONResponse:
    """For a container's HEALTHCHECK or a liveness probe: a restart here is a new live run from t=0, so only a
    stalled loop (no tick in `live_stall_s`) fails it, never a dependency that is down."""
    loop = loop_health(request.app)
    if loop is not None and loop["stalled"]:
        return JSONResponse({"status": "stalled", "live": loop,
                             "message": f"the live loop has not ticked for {loop['last_tick_age_s']} s "
                                        f"(limit {loop['stall_after_s']} s)"}, status_code=503)
    return JSONResponse({"status": "ok", "live": loop})


@router.get("/health/ready", responses=_unavailable("the database does not answer, or its schema is at an older "
                                                    "revision than this release's (or none)"),
            summary="Readiness: 200 when the database answers at this release's schema revision (rate limits in "
                    "Redis, or in memory while it does not; `degraded` at a newer revision), 503 when the database "
                    "does not answer or is at an older revision")
def health_ready(request: Request) -> JSONResponse:
    return _health(request, with_loop=False)


@router.get("/health", responses=_unavailable("the database does not answer or is at an older schema revision, "
                                              "or the live loop stalls"),
            summary="Readiness with every detail: database, rate-limit store, the live loop's last tick; 503 when "
                    "the database does not answer or is at an older schema revision, or the live loop stalls")
def health(request: Request) -> JSONResponse:
    return _health(request, with_loop=True)


def _health(request: Request, with_loop: bool) -> JSONResponse:
    started = time.perf_counter()
    limits = getattr(request.app.state, "rate_limits", None)
    rate_limits = _rate_limits(limits)
    answer: dict = {"status": "ok", "database": None, "rate_limits": rate_limits["state"],
                    "checks": {"database": None, "rate_limits": rate_limits}}
    problems: list[str] = []
    warnings: list[str] = [rate_limits["message"]] if rate_limits.get("message") else []
    try:
        # never migrating a store that holds a schema (`StoreNotAtHead`, a mismatch); a new, empty database is made
        # at this release's revision, as the first route would make it, so a server on it is ready
        engine = get_engine(request.app.state.settings.database_url, migrate=False, create_new=True)
        # the one-row read of alembic's table asks the database as `SELECT 1` did, and says which schema it holds:
        # a store downgraded under this server answers while routes reading what differs fail, so a load
        # balancer must stop sending here
        found = current_revision(engine)
        answer["database"] = database_kind(engine)
        answer["checks"]["database"] = {"state": "ok", "kind": answer["database"], "schema_revision": found}
    except StoreNotAtHead as exc:  # no engine yet, and the store is not at this release's revision: not opened
        answer["checks"]["database"] = {"state": "revision-mismatch", "release_revision": _release_revision(),
                                        "error": str(exc)}
        problems.append(str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure means the store cannot be used
        # the open route says what kind of failure, never the driver's text (host, port, user); that goes to the log
        reason = _logged_database_error(exc)
        answer["database"] = "unreachable"
        answer["checks"]["database"] = {"state": "unreachable", "error": reason}
        problems.append(f"database unreachable: {reason} (details in the server's log)")
    else:
        _last_logged["database"] = ""  # answered: the next failure is logged again
        mismatch = revision_mismatch(found)
        if mismatch is not None and found is not None and found > _release_revision():
            # a newer release migrated the store (the first new replica of a rolling deploy): this server, whose
            # engine is open, goes on serving (revisions mostly add columns it does not read), so it stays in the
            # pool, degraded, instead of every old replica leaving it at once
            newer = newer_store(found)
            answer["checks"]["database"].update(state="newer-schema", release_revision=_release_revision(),
                                                message=newer)
            warnings.append(newer)
        elif mismatch is not None:
            answer["checks"]["database"].update(state="revision-mismatch", release_revision=_release_revision(),
                                                error=mismatch)
            problems.append(mismatch)
    hub = getattr(request.app.state, "streams", None)
    if hub is not None:  # every process of a deployment must name one channel: a probe of each shows whether they do
        answer["checks"]["streams"] = streams = {"redis": bool(hub.redis_url),
                                                 "channel": hub.channel if hub.redis_url else None,
                                                 "signed": hub.signing_key is not None}
        down = hub.relay_down() if hub.redis_url and hasattr(hub, "relay_down") else None
        if down is None and hub.redis_url and rate_limits["state"] in ("unreachable", "memory-fallback") \
                and hub.redis_url == limits.redis_url:  # the same Redis: what the rate limits met, the relay meets
            down = (limits.down_since, rate_limits.get("error") or "")
        if hub.redis_url:
            streams["relay"] = "off" if down is not None else "on"
        if down is not None:  # a Redis down at start or since: this process's clients only
            streams.update(since=_iso(down[0]), error=failure_kind(down[1]))
            warnings.append(f"stream relay off: Redis does not answer ({streams['error']}): live streams reach this "
                            "process's clients only until it answers")
    if with_loop:
        loop = loop_health(request.app)
        answer["live"] = loop
        if loop is not None:
            if loop["stalled"]:
                problems.append(f"the live loop has not ticked for {loop['last_tick_age_s']} s")
            warnings.extend(loop["warnings"])
    if problems:
        answer["status"] = "unavailable"
    elif warnings:
        answer["status"] = "degraded"
    if problems or warnings:
        answer["message"] = "; ".join(problems + warnings)
    answer["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return JSONResponse(answer, status_code=503 if problems else 200)


#: what a failure to reach a dependency was, by words its driver uses (psycopg, SQLite, redis-py), in order
FAILURE_KINDS = (
    (("password authentication failed", "authentication failed", "invalid password", "no password supplied",
      "wrongpass", "noauth"), "authentication failed"),
    (("connection refused",), "connection refused"),
    (("timeout", "timed out"), "timeout"),
    (("could not translate host name", "name or service not known", "temporary failure in name resolution",
      "nodename nor servname"), "unknown host"),
    (("no route to host", "network is unreachable"), "host unreachable"),
    (("does not exist",), "database does not exist"),
    (("unable to open database file",), "cannot open the database file"),
    (("connection reset", "server closed the connection", "connection closed"), "connection lost"),
)

#: per dependency, the failure `_logged_failure` logged last ("" once it answered)
_last_logged: dict[str, str] = {}


def failure_kind(text: str) -> str:
    """The kind of a connection failure, without the host, port or user its text names ("connection refused",
    "timeout", "authentication failed", ...); "connection failed" when the words are not known. A kind is
    its own kind."""
    lowered = text.lower()
    if lowered in {kind for _words, kind in FAILURE_KINDS}:
        return lowered
    return next((kind for words, kind in FAILURE_KINDS if any(w in lowered for w in words)), "connection failed")


def _logged_failure(what: str, where: str, text: str) -> str:
    """The kind of a dependency's failure, for the open answer; its full first line goes to the server's log,
    once each time it changes (probes every few seconds would otherwise repeat it)."""
    first = (text.strip().splitlines() or ["no reason given"])[0]
    if first != _last_logged.get(what, ""):
        _last_logged[what] = first
        log.warning("health: the %s%s does not answer: %s", what, f" ({where})" if where else "", first)
    return failure_kind(text)


def _logged_database_error(exc: Exception) -> str:
    """The kind of the database's failure, for the open answer; its full first line goes to the server's log."""
    return _logged_failure("database", "", str(exc).strip() or type(exc).__name__)


@functools.cache
def _release_revision() -> str:
    """This release's schema revision (its newest migration): fixed for the process, read once."""
    return head_revision()


def revision_mismatch(found: str | None) -> str | None:
    """Why a store at revision `found` does not serve this release, in one line naming both revisions and what
    to do; None when it is at this release's."""
    head = _release_revision()
    if found == head:
        return None
    if found is None:
        return (f"the store holds no schema revision, this release needs {head}: its tables are gone or were never "
                f"made; run signalwise db upgrade on it, then restart this server")
    if found < head:
        return (f"the store is at schema revision {found}, this release's is {head} (downgraded since this server "
                f"opened it): routes reading what {head} has and {found} lacks fail; run signalwise db upgrade on it, "
                f"then restart this server, or serve it with the release whose revision is {found}")
    return (f"the store is at schema revision {found}, newer than this release's {head} (a newer release upgraded "
            f"it): serve it with that release, or take it back with that release's signalwise db downgrade {head} "
            "and restart this server")


def newer_store(found: str) -> str:
    """What readiness says of a store a newer release upgraded (`found` > this release's): a warning."""
    head = _release_revision()
    return (f"the store is at schema revision {found}, newer than this release's {head} (a newer release upgraded "
            f"it): this server goes on serving it, but a route reading what {found} changed may fail; replace this "
            f"server with that release's")


def _rate_limits(limits) -> dict:
    """Where calls are counted: Redis, memory (no Redis set), or memory while Redis does not answer. The open
    route names the store's kind and the kind of its failure, never Redis's host, port or the client's text:
    those go to the server's log (`_logged_failure`)."""
    if limits is None or not limits.redis_url:
        return {"state": "memory", "store": "memory"}
    if limits.recheck():  # still in fallback once Redis was asked again (at most every few seconds)
        reason = _logged_failure("rate-limit store", limits.where, limits.down_reason or "")
        return {"state": "memory-fallback", "store": "redis", "since": _iso(limits.down_since), "error": reason,
                "message": f"rate-limit store unreachable (Redis: {reason}; details in the server's log): limits "
                           "are counted in each process's memory until it answers"}
    problem = limits.store_problem()
    if problem is not None:  # no call has met it yet: the next limited one will count in memory
        reason = _logged_failure("rate-limit store", limits.where, problem)
        return {"state": "unreachable", "store": "redis", "error": reason,
                "message": f"rate-limit store unreachable (Redis: {reason}; details in the server's log): limits "
                           "are counted in each process's memory until it answers"}
    _last_logged["rate-limit store"] = ""  # answered: the next failure is logged again
    return {"state": "redis", "store": "redis"}


def _iso(epoch_s: float | None) -> str | None:
    import datetime as dt

    return None if epoch_s is None else utc_text(dt.datetime.fromtimestamp(epoch_s, dt.UTC).replace(microsecond=0))


class LoopWatch:
    """When the live loop was last seen to advance: the runtime's own `last_tick_monotonic`; for one that keeps
    none (a program embedding another loop), its simulated time, which moves on every tick, so a probe that
    finds it unchanged since the last probe knows the loop has not ticked since (the age counts from the first
    probe that saw the current value)."""

    def __init__(self) -> None:
        self.sim_time_s: float | None = None
        self.seen_at = time.monotonic()

    def age_s(self, rt) -> float:
        tick = getattr(rt, "last_tick_monotonic", None)  # a runtime that keeps its own tick time is believed
        if isinstance(tick, int | float):
            return max(0.0, time.monotonic() - tick)
        stepper = getattr(rt, "stepper", None)
        t = getattr(stepper, "t", None)
        now = time.monotonic()
        if t != self.sim_time_s:
            self.sim_time_s, self.seen_at = t, now
        return now - self.seen_at


def loop_health(app) -> dict | None:
    """The live loop's state, the age of its last tick and whether it stalled; None without a live run."""
    rt = getattr(app.state, "live", None)
    if rt is None:
        return None
    watch = getattr(app.state, "loop_watch", None)
    if watch is None:
        watch = app.state.loop_watch = LoopWatch()
    settings = app.state.settings
    age = watch.age_s(rt)
    running = bool(getattr(rt, "running", False))
    speed = getattr(getattr(rt, "opts", None), "speed", None)
    step_s = getattr(getattr(rt, "cfg", None), "step_length_s", None)
    # a slow run ticks seldom: at --speed 0.1 a 1 s step is a tick every 10 s of wall time
    stall_after = max(settings.live_stall_s, 3 * step_s / speed) if speed and step_s else settings.live_stall_s
    out = {"status": getattr(rt, "status_text", None), "running": running,
           "sim_time_s": getattr(getattr(rt, "stepper", None), "t", None), "last_tick_age_s": round(age, 1),
           "stall_after_s": round(stall_after, 1), "stalled": running and age > stall_after,
           "fallback_share": None, "stale_sources": None, "warnings": []}
    if not running:
        return out
    try:  # two cheap reads, not `rt.metrics()`: that reads the process's CPU, whose baseline the alerts keep
        snapshot = rt.snapshot
        out["fallback_share"] = snapshot.fallback_share
        stale = getattr(rt, "stale_signals", None)  # what the stale_data alert counts (a silent feed included)
        out["stale_sources"] = len(stale()) if stale is not None else sum(
            1 for sh in rt.stepper.shields.values() if sh.data_fault is not None)
    except Exception:  # noqa: BLE001 - a loop between states: this probe goes without the figures
        return out
    if out["fallback_share"] is not None and out["fallback_share"] >= 1.0:
        out["warnings"].append("every signal runs its fallback plan")
    if out["stale_sources"]:
        out["warnings"].append(f"{out['stale_sources']} signal(s) have stale or unhealthy data")
    return out


@router.get("/api/v1/system/info", summary="Version, database kind, schema revision and row counts")
def system_info(engine: EngineDep, settings: SettingsDep, cache: CacheDep) -> dict:
    return {"version": getattr(signalwise, "__version__", None) or _version(),
            "database": database_kind(engine), "schema_revision": current_revision(engine),
            "row_counts": queries.row_counts(engine), "max_batch_records": settings.max_batch_records,
            "cache": {"entries": len(cache), "ttl_s": cache.ttl_s, "hits": cache.hits, "misses": cache.misses}}


@router.post("/api/v1/admin/clear-cache", summary="Drop every cached analytics answer")
def clear_cache(cache: CacheDep) -> dict:
    return {"cleared": cache.clear()}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("signalwise")
    except PackageNotFoundError:
        return "unknown"
