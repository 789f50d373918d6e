"""Errors for people: every 4xx/5xx body has a one-line `message` naming what and where."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from signalwise.store.engine import DatabaseURLError
from signalwise.store.schemas import field_path


def validation_body(errors: list[dict], status: int = 422) -> JSONResponse:
    return JSONResponse(_validation_content(errors), status_code=status)


def _validation_content(errors: list[dict]) -> dict:
    clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
             for e in errors]
    first = clean[0] if clean else {"loc": [], "msg": "invalid request"}
    where = field_path(tuple(first["loc"])) if first["loc"] else "request"
    message = f"{where}: {first['msg']}"
    if len(clean) > 1:
        message += f" (and {len(clean) - 1} more)"
    return {"message": message, "detail": clean}


log = logging.getLogger("signalwise.api.auth")


def _log_refusal(request: Request, status: int, detail: str) -> None:
    """A 401 or 403 at WARNING: route, client, what credential came (a key by its public id, never the key)."""
    from .auth import describe_credential

    client = request.client.host if request.client else "?"
    log.warning("refused %d %s %s from %s with %s: %s", status, request.scope.get("method", "WEBSOCKET"),
                request.url.path, client,
                describe_credential(request), detail.split("; keys are checked")[0])


#: live routes whose refusals come from the registry (an unknown version, nothing to roll back), not from the
#: runtime, which records the refusals it makes itself
REGISTRY_LIVE_ROUTES = ("/api/v1/live/deploy", "/api/v1/live/rollback")
#: the live routes that change the run (under /api/v1/live/): their refused requests are the change log's
CHANGE_ROUTES = ("changes", "override", "controller", "config/", "deploy", "rollback")


def _record_live_refusal(request: Request, payload, reason: str) -> None:
    """A change request to the live run refused before it reached the runtime: into its change log too, which
    holds every attempt (who, when, what, why refused)."""
    path = request.url.path
    rt = getattr(request.app.state, "live", None)
    route = path.removeprefix("/api/v1/live/")
    if rt is None or route == path or not route.startswith(CHANGE_ROUTES) or request.method == "GET":
        return
    from .auth import who

    rt.refuse_request(f"{request.method} {route}", payload, who(request), reason)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        content = _validation_content(list(exc.errors()))
        _record_live_refusal(request, getattr(exc, "body", None), content["message"])
        return JSONResponse(content, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, list):  # field errors a route raised itself: worded as validation errors are
            response = validation_body(exc.detail, exc.status_code)
            response.headers.update(getattr(exc, "headers", None) or {})
            return response
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code in (401, 403):
            _log_refusal(request, exc.status_code, detail)
        if request.url.path in REGISTRY_LIVE_ROUTES and 400 <= exc.status_code < 500:
            _record_live_refusal(request, None, detail)  # a deploy of a version the registry lacks, ...
        return JSONResponse({"message": detail, "detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug: the body every error has, naming the route and the exception's type but not its text (it may
        hold paths or data); Starlette re-raises after answering, so the traceback still reaches the log."""
        message = f"internal error in {request.method} {request.url.path}: {type(exc).__name__} (see the server's log)"
        return JSONResponse({"message": message, "detail": message}, status_code=500)

    @app.exception_handler(DatabaseURLError)
    async def _db_misnamed(_request: Request, exc: DatabaseURLError) -> JSONResponse:
        # the server's SIGNALWISE_DATABASE_URL names no database it can open: unavailable, as one it cannot reach
        return JSONResponse({"message": f"database unavailable: {exc}", "detail": str(exc)}, status_code=503)

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        first = (str(exc.orig).strip().splitlines() or ["unreachable"])[0]
        return JSONResponse({"message": f"database unavailable: {first}", "detail": first}, status_code=503)
