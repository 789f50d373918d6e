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
#: the live routes that change the run, by (method, route path), with the `kind` their refused requests are logged
#: under: the kind of the change the route makes, so a request refused before it became a change is found with
#: the ones the runtime refused (`?kind=override`), and it fits the store's `kind` column. POST /changes takes
#: its kind from the body (`REQUEST_KIND` when the body names none it knows)
CHANGE_ROUTES = {
    ("POST", "/api/v1/live/changes"): None,
    ("POST", "/api/v1/live/override"): "override",
    ("DELETE", "/api/v1/live/override/{intersection_id}"): "cancel_override",
    ("POST", "/api/v1/live/controller"): "controller",
    ("PUT", "/api/v1/live/config/timing"): "timing",
    ("PUT", "/api/v1/live/config/timing/intersections/{intersection_id:path}"): "signal_timing",
    ("DELETE", "/api/v1/live/config/timing/intersections/{intersection_id:path}"): "signal_timing",
    ("PUT", "/api/v1/live/config/shield"): "shield",
    ("PUT", "/api/v1/live/config/alerts"): "alerts",
    ("POST", "/api/v1/live/deploy"): "deploy",
    ("POST", "/api/v1/live/rollback"): "rollback",
}
#: the kind of a refused POST /changes whose body names no kind of change
REQUEST_KIND = "change"
#: kinds about one signal: a refused request of these whose signal cannot be read names none (`intersection_id`
#: null), so a stream filtered by signals does not take it for a network-wide change
ONE_SIGNAL_KINDS = frozenset({"override", "cancel_override", "signal_timing", REQUEST_KIND})


def _record_live_refusal(request: Request, body, reason: str) -> None:
    """A change request to the live run refused before it reached the runtime: into its change log too, which
    holds every attempt (who, when, what, why refused). Its `kind` is the route's change; its payload says the
    request (`request`: method and path), the body as sent (`body`), and the signal it names where one can be read
    (from the path, else the body's `intersection_id` / `intersections`)."""
    rt = getattr(request.app.state, "live", None)
    route = getattr(request.scope.get("route"), "path", None)
    if rt is None or (request.method, route) not in CHANGE_ROUTES:
        return
    from signalwise.runtime.live.changes import KINDS

    from .auth import who

    kind = CHANGE_ROUTES[(request.method, route)]
    if kind is None:
        named = body.get("kind") if isinstance(body, dict) else None
        kind = named if isinstance(named, str) and named in KINDS else REQUEST_KIND
    if isinstance(body, bytes | bytearray):  # a body not sent as JSON: logged as the text it holds
        body = bytes(body).decode("utf-8", errors="replace")
    payload: dict = {"request": f"{request.method} {request.url.path.removeprefix('/api/v1/live/')}", "body": body}
    one = request.path_params.get("intersection_id") or (body.get("intersection_id") if isinstance(body, dict)
                                                         else None)
    many = body.get("intersections") if isinstance(body, dict) else None
    if isinstance(one, str) and one:
        payload["intersection_id"] = one
    elif isinstance(many, list) and many and all(isinstance(i, str) and i for i in many):
        payload["intersections"] = many
    elif kind in ONE_SIGNAL_KINDS:
        payload["intersection_id"] = None  # about one signal, which the request does not say readably
    rt.refuse_request(kind, payload, who(request), reason)


def _not_json(request: Request, exc: RequestValidationError) -> str | None:
    """Why a body was not read: it came with a Content-Type other than JSON (FastAPI then hands it over as
    bytes, which fails every JSON model), or None."""
    body = getattr(exc, "body", None)
    if not isinstance(body, bytes | bytearray) or not any(
            tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors()):
        return None
    sent = request.headers.get("content-type")
    return (f"body: not read as JSON: it came with Content-Type {sent!r}; send it with "
            "Content-Type: application/json" if sent else
            "body: not read as JSON: it came without a Content-Type; send it with Content-Type: application/json")


def install(app: FastAPI) -> None:
    async def _caller_first(request: Request) -> JSONResponse | None:
        """FastAPI reads a body before the app's dependencies run: a body it cannot read (JSON it cannot decode, a
        400 for bytes that are no UTF-8) is refused before its caller was authorized. The caller first (no key:
        401, whatever the body), so nobody without the route's scope learns how the body is checked, nor writes
        into the change log. None: the caller may go on to hear about the body."""
        if getattr(request.state, "authorized", False) or not hasattr(request.app.state, "settings"):
            return None  # (an app without the key layer: a router mounted alone authorizes nobody)
        from .auth import authorize
        from .ratelimit import rate_limit

        try:
            await authorize(request)
            await rate_limit(request)
        except StarletteHTTPException as refused:
            return await _http(request, refused)
        return None

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        refused = await _caller_first(request)
        if refused is not None:
            return refused
        not_json = _not_json(request, exc)
        if not_json is not None:
            _record_live_refusal(request, getattr(exc, "body", None), not_json)
            return JSONResponse({"message": not_json, "detail": not_json}, status_code=415)
        content = _validation_content(list(exc.errors()))
        _record_live_refusal(request, getattr(exc, "body", None), content["message"])
        return JSONResponse(content, status_code=422)

    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, list):  # field errors a route raised itself: worded as validation errors are
            response = validation_body(exc.detail, exc.status_code)
            response.headers.update(getattr(exc, "headers", None) or {})
            return response
        if exc.status_code == 400:
            refused = await _caller_first(request)
            if refused is not None:
                return refused
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code in (401, 403):
            _log_refusal(request, exc.status_code, detail)
        if request.url.path in REGISTRY_LIVE_ROUTES and 400 <= exc.status_code < 500 and \
                exc.status_code not in (401, 403, 429) and getattr(request.state, "authorized", False):
            _record_live_refusal(request, None, detail)  # a deploy of a version the registry lacks, ...
        return JSONResponse({"message": detail, "detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    app.add_exception_handler(StarletteHTTPException, _http)

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
