"""Health, system information and cache administration."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

import signalwise
from signalwise.store import database_kind, get_engine, queries
from signalwise.store.engine import current_revision

from ..deps import CacheDep, EngineDep, SettingsDep

router = APIRouter(tags=["system"])


# HEAD too: load balancers probe with it (a FastAPI GET route alone answers HEAD with 405); a route of its own,
# out of the schema, since one route of both methods gives both operations the same id
@router.head("/health", include_in_schema=False)
@router.get("/health", summary="200 when the database and the rate-limit store answer, 503 when one does not")
def health(request: Request) -> JSONResponse:
    started = time.perf_counter()
    limits = getattr(request.app.state, "rate_limits", None)
    store = "redis" if limits is not None and limits.redis_url else "memory"
    try:
        engine = get_engine(request.app.state.settings.database_url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return JSONResponse({"status": "unavailable", "database": "unreachable", "rate_limits": store,
                             "message": f"database unreachable: {first}"}, status_code=503)
    # with Redis, every rate-limited call (each mutation, each prediction) is refused while it is down
    problem = limits.store_problem() if limits is not None else None
    if problem is not None:
        return JSONResponse({"status": "unavailable", "database": database_kind(engine), "rate_limits": "unreachable",
                             "message": f"rate-limit store unreachable, rate-limited calls answer 503 "
                                        f"({limits.where}: {problem})"}, status_code=503)
    return JSONResponse({"status": "ok", "database": database_kind(engine), "rate_limits": store,
                         "latency_ms": round((time.perf_counter() - started) * 1000, 2)})


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
