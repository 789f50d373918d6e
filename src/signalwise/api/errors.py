"""Errors for people: every 4xx/5xx body has a one-line `message` naming what and where."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from signalwise.store.schemas import field_path


def validation_body(errors: list[dict], status: int = 422) -> JSONResponse:
    clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
             for e in errors]
    first = clean[0] if clean else {"loc": [], "msg": "invalid request"}
    where = field_path(tuple(first["loc"])) if first["loc"] else "request"
    message = f"{where}: {first['msg']}"
    if len(clean) > 1:
        message += f" (and {len(clean) - 1} more)"
    return JSONResponse({"message": message, "detail": clean}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_body(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, list):  # field errors a route raised itself: worded as validation errors are
            response = validation_body(exc.detail, exc.status_code)
            response.headers.update(getattr(exc, "headers", None) or {})
            return response
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"message": detail, "detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug: the body every error has, naming the route and the exception's type but not its text (it may
        hold paths or data); Starlette re-raises after answering, so the traceback still reaches the log."""
        message = f"internal error in {request.method} {request.url.path}: {type(exc).__name__} (see the server's log)"
        return JSONResponse({"message": message, "detail": message}, status_code=500)

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        first = (str(exc.orig).strip().splitlines() or ["unreachable"])[0]
        return JSONResponse({"message": f"database unavailable: {first}", "detail": first}, status_code=503)
