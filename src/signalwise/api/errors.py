"""Errors for people: every 4xx/5xx body has a one-line `message` naming what and where."""

from __future__ import annotations

import difflib
import json
import logging
import re
import types
import typing
from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic_core import from_json
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from signalwise.store.engine import DatabaseURLError, current_revision
from signalwise.store.ingest import MAX_ERRORS as STORE_MAX_ERRORS
from signalwise.store.schemas import field_path


def validation_body(errors: list[dict], status: int = 422, message: str | None = None) -> JSONResponse:
    """The 422 (or `status`) body of field errors a route found itself. The store lists at most
    `STORE_MAX_ERRORS` problems of a batch (those of its first invalid chunk): a list that long may have been cut,
    and its message says "at least". `message`: the one line, where the route words it itself."""
    content = _validation_content(errors, cut=len(errors) >= STORE_MAX_ERRORS)
    if message is not None:
        content["message"] = message
    return JSONResponse(content, status_code=status)


class FieldErrors(HTTPException):
    """A request a route refuses itself, answered as FastAPI answers a validation error: `detail` a list of
    `{loc, msg, type}` (`field_error`, `refusal`). `message`: the answer's one line when the route words it
    (else "<where>: <msg>" of the first, as for a validation error)."""

    def __init__(self, errors: list[dict], status: int = 422, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e.get("type", "value_error")}
                                  for e in errors], headers)
        self.message = message


def one_line(exc: StarletteHTTPException) -> str:
    """What an HTTP error says in one line: its answer's `message` (an item of a batch, a log line)."""
    if isinstance(exc.detail, list):
        return getattr(exc, "message", None) or _validation_content(exc.detail)["message"]
    return str(exc.detail)


def field_error(loc: tuple | list, msg: str, type: str = "value_error", status: int = 422,  # noqa: A002
                message: str | None = None, headers: dict[str, str] | None = None) -> FieldErrors:
    """The one way a route refuses a field it checks itself: `loc` names it as pydantic does
    (`("body", "scopes")`, `("query", "end")`), `msg` says what is wrong with it; the body is a validation
    error's (`{"message": "body.scopes: <msg>", "detail": [{"loc", "msg", "type"}]}`). Raise it."""
    return FieldErrors([{"loc": loc, "msg": msg, "type": type}], status, message, headers)


#: a reason that starts with the path of its field, as pydantic's are written (`body.url: …`,
#: `body.camera.background_image: …`, `body[1].occupancy: …`, `query.start: …`)
_FIELD_FIRST = re.compile(r"^(body|query|path|header)((?:\.[A-Za-z_][\w-]*|\[\d+\])*): ")


def loc_of(path: str) -> list[str | int]:
    """`body.items[2].lanes` -> ["body", "items", 2, "lanes"] (the inverse of `field_path`)."""
    return [int(part[1:-1]) if part.startswith("[") else part
            for part in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def refusal(reason: str, where: tuple | list = ("body",), type: str = "value_error",  # noqa: A002
            status: int = 422) -> FieldErrors:
    """`field_error` of a one-line reason worded elsewhere (the vision package, the registry, the live run): one
    that starts with its field's path (`body.url: …`) has that as `loc` and the rest as `msg`; any other is the
    `msg` of `where` (the part of the request it is about), and stays the answer's `message` as it reads."""
    named = _FIELD_FIRST.match(reason)
    if named:
        return field_error(loc_of(reason[:named.end() - 2]), reason[named.end():], type, status)
    return field_error(where, reason, type, status, message=reason)


#: a field's error pydantic gives when a body holds a key its model does not have (`extra="forbid"`)
EXTRA_KEY = "extra_forbidden"
#: ... and when a body lacks a key its model needs
MISSING_KEY = "missing"

FieldsAt = Callable[[tuple], "list[str] | None"]


def _validation_content(errors: list[dict], fields_at: FieldsAt | None = None, cut: bool = False) -> dict:
    """The 422 body: `detail`, pydantic's errors (loc, msg, type); `message`, the first in one line, and how many
    more. A key the model does not have comes first, named, with the field it likely meant (`_name_extra_keys`):
    a misspelt `timnig` otherwise read "body.timing: Field required". `fields_at(parent loc)`: the fields of the
    model at that place of the request, where they can be known (`_route_fields`). `cut`: `errors` may be the
    first of more (the store's cut list): "at least" so many more, and how many `detail` lists."""
    clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
             for e in errors]
    clean, explained = _name_extra_keys(clean, fields_at)
    first = clean[0] if clean else {"loc": [], "msg": "invalid request"}
    where = field_path(tuple(first["loc"])) if first["loc"] else "request"
    message = f"{where}: {first['msg']}"
    more = len(clean) - 1 - explained
    if cut:
        message += f" (and at least {more} more; detail lists the first {len(clean)})"
    elif more > 0:
        message += f" (and {more} more)"
    return {"message": message, "detail": clean}


def _json_decode_errors(errors: list[dict], doc) -> list[dict]:  # noqa: ANN001 - the text FastAPI failed to decode
    """FastAPI's own error for a body it cannot decode as JSON (`loc` ("body", <character offset>), "JSON decode
    error"), worded as every other malformed body is: the routes that read their body themselves (a batch of
    records, a prediction) answer pydantic-core's reason, `body: Invalid JSON: <what> at line L column C`. An
    offset in `loc` read as item 14 (`body[14]`), as it means everywhere else."""
    out = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid" and len(loc) == 2 and loc[0] == "body" and isinstance(loc[1], int):
            e = {**e, "loc": ("body",), "msg": f"Invalid JSON: {_json_problem(doc, loc[1], e.get('ctx'))}"}
        out.append(e)
    return out


#: a time whose offset's `+` a query string turned into a space (`2025-01-06T01:05:00 01:00`): sent unencoded
_OFFSET_AS_SPACE = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}(:?\d{2})?$")
PLUS_HINT = "a + in a query reads as a space: send the time with Z, or encode + as %2B"


def _plus_read_as_space(errors: list[dict]) -> list[dict]:
    """A query time refused because its offset's `+` came unencoded (a URL's query reads `+` as a space, so
    `+01:00` arrives as ` 01:00`): its message says so and what to send, the commonest mistake of a script."""
    out = []
    for e in errors:
        value = e.get("input")
        if tuple(e.get("loc", ()))[:1] == ("query",) and isinstance(value, str) and _OFFSET_AS_SPACE.search(value):
            e = {**e, "msg": f"{e.get('msg', 'invalid')} ({value!r}: {PLUS_HINT})"}
        out.append(e)
    return out


def _json_problem(doc, pos: int, ctx: dict | None) -> str:  # noqa: ANN001 - str or bytes
    """What is wrong with the JSON text `doc` and where, as pydantic-core's parser says it; Python's reason placed
    at its line and column where pydantic-core takes the text (a rare difference of the two parsers)."""
    try:
        from_json(doc)
    except ValueError as exc:
        return str(exc)
    text = doc.decode("utf-8", errors="replace") if isinstance(doc, bytes | bytearray) else str(doc or "")
    line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    return f"{(ctx or {}).get('error', 'malformed')} at line {line} column {column}"


def _name_extra_keys(clean: list[dict], fields_at: FieldsAt | None) -> tuple[list[dict], int]:
    """Each extra key's error says it is no field, and which field it likely meant (difflib, among the fields
    missing beside it and the model's own there), or which fields there are; extra keys first. Returns the errors
    and how many of them a suggestion explains: a field `missing` that an extra key is the likely misspelling of
    is the same mistake, not one more."""
    extras = [e for e in clean if e["type"] == EXTRA_KEY and e["loc"]]
    if not extras:
        return clean, 0
    explained: set[tuple] = set()
    for e in extras:
        parent, key = tuple(e["loc"][:-1]), str(e["loc"][-1])
        missing = [str(m["loc"][-1]) for m in clean
                   if m["type"] == MISSING_KEY and m["loc"] and tuple(m["loc"][:-1]) == parent]
        own = fields_at(parent) if fields_at is not None else None
        near = difflib.get_close_matches(key, list(dict.fromkeys([*missing, *(own or [])])), n=1, cutoff=0.6)
        if near:
            e["msg"] = f"not a field; did you mean {near[0]}?"
            if near[0] in missing:
                explained.add((*parent, near[0]))
        elif own:
            e["msg"] = f"not a field; the fields here: {', '.join(own)}"
        else:
            e["msg"] = "not a field (extra inputs are not permitted)"
    ordered = extras + [e for e in clean if e not in extras]
    return ordered, sum(1 for e in clean if e["type"] == MISSING_KEY and tuple(e["loc"]) in explained)


def _route_fields(request: Request) -> FieldsAt:
    """The fields of the body's model at a place in the request (a loc's parent, `("body", ...)`), read from the
    route's body parameter: through nested models, list items and a discriminated union's member (pydantic names
    it by its tag, `("body", "override", ...)`); None where no single model is there (a mapping's key, a union
    not told apart)."""
    body = getattr(request.scope.get("route"), "body_field", None)

    def fields_at(parent: tuple) -> list[str] | None:
        if body is None or parent[:1] != ("body",):
            return None
        model = _model_at(body.field_info.annotation, parent[1:])
        return None if model is None else [f.alias or name for name, f in model.model_fields.items()]

    return fields_at


def _model_at(annotation, path: tuple) -> type[BaseModel] | None:
    tp = annotation
    for part in path:
        models = _models(tp)
        tagged = [m for m in models if part in _tags(m)]
        if len(models) > 1 and len(tagged) == 1:
            tp = tagged[0]  # a union's member, named by its tag: the fields come after
        elif len(models) == 1 and isinstance(part, str) and part in _by_name(models[0]):
            tp = _by_name(models[0])[part].annotation
        elif isinstance(part, int) and typing.get_origin(_plain(tp)) in (list, tuple):
            tp = typing.get_args(_plain(tp))[0]
        else:
            return None
    models = _models(tp)
    return models[0] if len(models) == 1 else None


def _plain(tp):
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _models(tp) -> list[type[BaseModel]]:
    """The models a type is: itself, or a union's (optional's) members."""
    tp = _plain(tp)
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return [m for m in map(_plain, members) if isinstance(m, type) and issubclass(m, BaseModel)]


def _tags(model: type[BaseModel]) -> set:
    return {f.default for f in model.model_fields.values()
            if typing.get_origin(f.annotation) is typing.Literal and isinstance(f.default, str)}


def _by_name(model: type[BaseModel]) -> dict:
    return {f.alias or name: f for name, f in model.model_fields.items()}


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
        errors = _plus_read_as_space(_json_decode_errors(list(exc.errors()), getattr(exc, "body", None)))
        content = _validation_content(errors, _route_fields(request))
        _record_live_refusal(request, getattr(exc, "body", None), content["message"])
        return JSONResponse(content, status_code=422)

    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, list):  # field errors a route raised itself: worded as validation errors are
            response = validation_body(exc.detail, exc.status_code, getattr(exc, "message", None))
            response.headers.update(getattr(exc, "headers", None) or {})
            detail = json.loads(response.body)["message"]
        else:
            if exc.status_code == 400:
                refused = await _caller_first(request)
                if refused is not None:
                    return refused
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            response = JSONResponse({"message": detail, "detail": detail}, status_code=exc.status_code,
                                    headers=getattr(exc, "headers", None))
        if exc.status_code in (401, 403):
            _log_refusal(request, exc.status_code, detail)
        if request.url.path in REGISTRY_LIVE_ROUTES and 400 <= exc.status_code < 500 and \
                exc.status_code not in (401, 403, 429) and getattr(request.state, "authorized", False):
            _record_live_refusal(request, None, detail)  # a deploy of a version the registry lacks, ...
        return response

    app.add_exception_handler(StarletteHTTPException, _http)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug: the body every error has, naming the route and the exception's type but not its text (it may
        hold paths or data); Starlette re-raises after answering, so the traceback still reaches the log. A
        database error of a store at another schema revision than this release's (PostgreSQL's UndefinedColumn
        after `db downgrade` under this server) is no bug: a 503 naming both revisions (`_store_mismatch`)."""
        if may_be_schema(exc) and (mismatch := await run_in_threadpool(schema_mismatch, request.app, exc)):
            return _store_mismatch(request, mismatch)
        message = f"internal error in {request.method} {request.url.path}: {type(exc).__name__} (see the server's log)"
        return JSONResponse({"message": message, "detail": message}, status_code=500)

    @app.exception_handler(DatabaseURLError)
    async def _db_misnamed(_request: Request, exc: DatabaseURLError) -> JSONResponse:
        # the server's SIGNALWISE_DATABASE_URL names no database it can open: unavailable, as one it cannot reach
        return JSONResponse({"message": f"database unavailable: {exc}", "detail": str(exc)}, status_code=503)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        if may_be_schema(exc) and (mismatch := await run_in_threadpool(schema_mismatch, request.app, exc)):
            return _store_mismatch(request, mismatch)  # SQLite's "no such column" of a store downgraded
        first = (str(exc.orig).strip().splitlines() or ["unreachable"])[0]
        return JSONResponse({"message": f"database unavailable: {first}", "detail": first}, status_code=503)


def _store_mismatch(request: Request, mismatch: str) -> JSONResponse:
    """The 503 of a request that failed on a store at another schema revision: the route, then `mismatch`."""
    message = f"{request.method} {request.url.path}: {mismatch}"
    return JSONResponse({"message": message, "detail": message}, status_code=503)


#: what SQLite says of a column or table its schema lacks: an OperationalError, as a database that cannot be
#: opened is, told apart by its text
SQLITE_SCHEMA_MISSES = ("no such column", "no such table", "has no column named")


def may_be_schema(exc: BaseException) -> bool:
    """A database error a store at another schema revision may cause: one the database answered with, a
    PostgreSQL one other than OperationalError and InterfaceError (ProgrammingError: UndefinedColumn,
    UndefinedTable; IntegrityError), SQLite's `SQLITE_SCHEMA_MISSES`. Not a database that does not answer, nor a
    connection that broke: asking it again for its revision would wait out another connect timeout."""
    if isinstance(exc, OperationalError):
        return any(m in str(exc.orig) for m in SQLITE_SCHEMA_MISSES)
    return isinstance(exc, DBAPIError) and not isinstance(exc, InterfaceError) and not exc.connection_invalidated


def schema_mismatch(app, exc: BaseException) -> str | None:  # noqa: ANN001 - a FastAPI app
    """Why the store cannot serve this release (`routers.system.revision_mismatch`: both revisions, what to do),
    when `exc` `may_be_schema` and the store's revision, read now (one small query), is not this release's; else
    None. Blocks on the database: call it in a worker thread."""
    if not may_be_schema(exc):
        return None
    settings = getattr(app.state, "settings", None)
    if settings is None:
        return None
    from signalwise.store import get_engine

    from .routers.system import revision_mismatch  # (routers import this module's helpers)

    try:  # the server's engine (migrate=False: one this process has not opened is not upgraded here)
        return revision_mismatch(current_revision(get_engine(settings.database_url, migrate=False)))
    except Exception:  # noqa: BLE001 - the revision cannot be read: the error is answered as it was
        return None
