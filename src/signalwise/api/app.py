"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import weakref
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from signalwise import logs
from signalwise.listening import is_loopback
from signalwise.store import Settings
from signalwise.store import ingest as store_ingest
from signalwise.store.keys import KeyMemory
from signalwise.store.settings import weak_secret_reason

from . import docs, errors, openapi
from .auth import authorize
from .cache import TTLCache
from .middleware import AccessLog, BodyLimit, HeadAsGet, RateLimitHeaders, SecurityHeaders
from .ratelimit import RateLimits, rate_limit
from .routers import (
    analytics,
    auth,
    cameras,
    dashboard,
    ingest,
    live,
    live_history,
    live_preempt,
    ml,
    ml_jobs,
    ml_metrics,
    ml_models,
    monitoring,
    pages,
    streams,
    system,
    violations,
)
from .streams import StreamHub, channel_name, signing_key
from .strict_query import reject_unknown_query

#: the largest request body a route takes unless it says otherwise (a change, a key, one record, one prediction)
BODY_LIMIT_BYTES = 1024 * 1024
#: routes whose bodies hold many items: up to 1,000 predictions of up to 1,000 lanes each, 10,000 intervals
#: (a batch of records: `ingest.batch_limit_bytes`, from the settings)
LARGER_BODIES = {"/api/v1/ml/predict/batch": 64 * 1024 * 1024, "/api/v1/ml/metrics": 16 * 1024 * 1024}
#: their limits for a caller without a credential (reads are open on loopback): a batch of predictions of 64 MiB
#: holds the server's one batch slot for seconds and takes several times its size in memory while it is cut into
#: items, so it is for callers with a key; 2 MiB still holds 1,000 observations of 30 lanes
ANONYMOUS_BODIES = {"/api/v1/ml/predict/batch": 2 * 1024 * 1024, "/api/v1/ml/predict": BODY_LIMIT_BYTES}
#: every other route's limit for a caller without a credential: only the predictions are open to one (reads on
#: loopback), and a route that declares its body as a parameter has it parsed before its caller is authorized
#: (a 16 MiB /ml/metrics body was read whole before its 401); a token exchange's body is empty
ANONYMOUS_BODY_BYTES = 64 * 1024

#: response headers a page on another origin (SIGNALWISE_CORS_ORIGINS) may read: none is CORS-safelisted
EXPOSED_HEADERS = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                   "X-Auth-Checked", "X-Chart-Figures"]

OPTIONAL_ROUTERS = ("signalwise.api.routers.atspm", "signalwise.api.routers.live_feeds")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; `settings` default to the environment (`SIGNALWISE_*`)."""
    settings = settings or Settings()
    logs.ensure_for_server()  # a `serve --workers N` worker: its own process, configured by uvicorn alone
    app = FastAPI(title="signalwise", version=_version(), lifespan=_lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(authorize), Depends(rate_limit), Depends(reject_unknown_query)],
                  description="Ingestion and analytics of adaptive traffic signal control runs.")
    app.state.settings = settings
    app.state.rate_limits = RateLimits(settings.rate_limits, settings.redis_url)
    app.state.key_memory = KeyMemory()  # keys verified here: usable while the database does not answer
    app.add_middleware(HeadAsGet)  # innermost: every GET route answers HEAD, checked and counted as its GET
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           expose_headers=EXPOSED_HEADERS)

    app.add_middleware(RateLimitHeaders)
    # bodies bounded while they are read, FastAPI's parsing included; detector feeds bound theirs themselves
    app.add_middleware(BodyLimit, limit_bytes=BODY_LIMIT_BYTES,
                       larger={**LARGER_BODIES, "/api/v1/ingest/batch": ingest.batch_limit_bytes(settings)},
                       anonymous={} if settings.insecure_no_auth else ANONYMOUS_BODIES, own=("/api/v1/live/feeds/",),
                       anonymous_default=None if settings.insecure_no_auth else ANONYMOUS_BODY_BYTES)
    app.state.cache = TTLCache(settings.cache_ttl_s)
    _clear_on_write(app.state.cache)
    errors.install(app)
    app.state.live = None  # a LiveRuntime when `signalwise live` serves this app
    app.state.live_feed = None
    app.state.live_last_looks = live.Counter()  # status reads answered after a live run ended
    # WS/SSE fan-out, fed by the live loop; across processes through the deployment's own Redis channel, signed
    app.state.streams = StreamHub(redis_url=settings.redis_url, channel=channel_name(settings),
                                  signing_key=signing_key(settings.jwt_secret),
                                  clients_max=settings.stream_clients_max,
                                  message_max_age_s=settings.stream_message_max_age_s)
    app.state.vision = None  # the camera StreamManager, made by the first POST /api/v1/streams
    _quiet_refused_handshakes()
    if settings.insecure_no_auth:
        logging.getLogger("signalwise.api").warning(
            "--insecure-no-auth: every route is open, mutations included; never expose this server")
    elif not settings.jwt_secret and not is_loopback(settings.bind_host):
        logging.getLogger("signalwise.api").warning(
            "listening on %s without SIGNALWISE_JWT_SECRET: tokens are signed with a secret this process made at "
            "start, so they stop working when it restarts and no other server takes them; set "
            "SIGNALWISE_JWT_SECRET to 32 or more random characters (openssl rand -hex 32)", settings.bind_host)
    _warn_of_secrets(settings)
    monitoring.install(app)
    docs.install(app)  # Swagger UI and ReDoc from the package, not a CDN
    openapi.install(app)  # the schema declares each route's scope, its credentials and the error body
    pages.install(app)  # the live dashboard (/, /dashboard, /static) and the read routes it needs
    for router in (system.router, auth.router, ingest.router, analytics.router, dashboard.router, live.router,
                   monitoring.router, streams.router, ml.router, ml_models.router, ml_jobs.router, ml_metrics.router,
                   cameras.router, violations.router, live_history.router, live_preempt.router):
        app.include_router(router)
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has not landed yet
            raise
        app.include_router(module.router)
    app.add_middleware(SecurityHeaders)  # on every answer, the refusals of the middlewares inside included
    app.add_middleware(AccessLog)  # outermost: it sees every answer, the refusals of the others included
    return app


def _warn_of_secrets(settings: Settings) -> None:
    """A JWT secret that can be guessed (tokens can then be forged, with any scopes their key holds), and a Redis
    stream channel whose messages are not signed (no JWT secret to sign with), said once at start."""
    log = logging.getLogger("signalwise.api")
    weak = weak_secret_reason(settings.jwt_secret) if settings.jwt_secret else None
    if weak is not None:
        log.warning("SIGNALWISE_JWT_SECRET is guessable (%s): whoever guesses it can sign tokens this server takes; "
                    "set one of random characters (openssl rand -hex 32)", weak)
    if settings.redis_url and not settings.jwt_secret and not settings.insecure_no_auth:
        log.warning("stream messages on Redis (channel %s) are not signed without SIGNALWISE_JWT_SECRET: whoever "
                    "can publish on that Redis can put alerts and snapshots on the live streams; set "
                    "SIGNALWISE_JWT_SECRET in every process of the deployment (docs/deployment.md#redis)",
                    channel_name(settings))


class _RefusedHandshakeFilter(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing handshake." at
    ERROR after every WebSocket it refuses with an HTTP status (a missing or bad token answers 401 or 403),
    though the client got that status (Kludex/uvicorn PR #3138, open). Log alerting on ERROR would fire on
    every bad token. Every stream route here accepts before anything else, so the only handshakes left
    incomplete are those refusals, logged already at INFO with their status."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def _quiet_refused_handshakes() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RefusedHandshakeFilter) for f in logger.filters):
        logger.addFilter(_RefusedHandshakeFilter())


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """On start, move everything loaded so far (modules, routes, schemas: ~100,000 objects) out of the
    garbage collector's reach. A full collection walked them all, a 40-60 ms pause every ~20 range
    queries, which was the whole p95 of the range endpoints (`bench/api_bench.py`). The young
    generations' garbage is collected first, not the whole heap's: a full collection at every start walked
    all of a test process's objects, which starts many apps (a quarter of the suite's CPU in its workers,
    by py-spy); what old garbage a server has at start is a few cycles, kept until shutdown, when the
    objects go back."""
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        cameras.close(app)  # camera streams stop, their violations are flushed to the store
        gc.unfreeze()


def _clear_on_write(cache: TTLCache) -> None:
    """Any write through the store drops this app's cached answers (weakly held: apps come and go)."""
    ref = weakref.ref(cache)

    def hook() -> None:
        live = ref()
        if live is None:
            store_ingest.after_write_hooks.remove(hook)
        else:
            live.clear()
    store_ingest.after_write_hooks.append(hook)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("signalwise")
    except PackageNotFoundError:
        return "0"
