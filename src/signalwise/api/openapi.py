"""The OpenAPI schema as the server behaves: who may call each operation, and the error bodies it answers.

FastAPI's generator knows nothing of the app-wide `authorize` dependency nor of `errors.install`: left alone,
its schema declares no credential (Swagger UI has no Authorize button, a generated client sends no key) and
describes errors as `{"detail": [...]}`. Here each operation gets its scope from `auth.scope_for` (so
`ROUTE_SCOPES` stays the one table), the security schemes that carry it, and the error body every 4xx/5xx has.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from pydantic import BaseModel, Field

from .auth import OPEN, scope_for
from .deps import LIMIT_CEILING

#: the security schemes, by the names operations list them under
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "an API key (`signalwise keys create` or POST /api/v1/keys), `sw_...`"},
    "BearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "a token from POST /api/v1/auth/token"},
}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
RATE_LIMIT_HEADERS = {
    "Retry-After": "seconds until the caller may call again",
    "X-RateLimit-Limit": "calls allowed per window for this route's bucket (a rate limit's 429 only; not on the "
                         "429 for too many refused credentials)",
    "X-RateLimit-Remaining": "calls left in the window (a rate limit's 429 only)",
    "X-RateLimit-Reset": "when the window resets, epoch s (a rate limit's 429 only)",
}
#: what every answer of these kinds can be, wherever the operation is (`_describe_operation`)
BODY_TOO_LARGE = "the request body is larger than the route takes (the limit is stated)"
NOT_JSON = "the request body did not come as JSON (Content-Type: application/json)"
KEYS_UNCHECKED = ("the database that holds the API keys does not answer and this server has not verified the key "
                  "lately (Retry-After)")
NO_LIVE_RUN = "no live run is attached to this server (`signalwise serve`)"
LOOP_BUSY = "the live loop did not take the change in time; nothing applied: send it again after Retry-After"
#: routes outside /api/v1/live/ that read the live run (503 without one)
LIVE_READS = frozenset({"/api/v1/monitoring/performance", "/api/v1/monitoring/alerts"})
#: the live routes that make a change the loop applies (503 with Retry-After when it does not take it in time)
LOOP_CHANGES = {("POST", "/api/v1/live/changes"), ("POST", "/api/v1/live/override"),
                ("DELETE", "/api/v1/live/override/{intersection_id}"), ("POST", "/api/v1/live/controller"),
                ("PUT", "/api/v1/live/config/timing"), ("PUT", "/api/v1/live/config/timing/intersections/{intersection_id}"),
                ("DELETE", "/api/v1/live/config/timing/intersections/{intersection_id}"),
                ("PUT", "/api/v1/live/config/shield"), ("PUT", "/api/v1/live/config/alerts")}


class FieldError(BaseModel):
    """One refused field (validation errors, and the field errors a route raises itself)."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then the field's path")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer (`errors.install`)."""

    message: str = Field(description="one line for people: what is wrong and where")
    detail: str | list[FieldError] = Field(
        description="a list of field errors on every 422 (FastAPI's validation and the route's own, one shape; a "
                    "detector feed's 404 too); else the message again as a string")


def install(app: FastAPI) -> None:
    """`app.openapi()` (hence /openapi.json, /docs, /redoc) with security and error bodies declared."""
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = describe(FastAPI.openapi(app), app.state.settings.max_page_size)
        return app.openapi_schema

    app.openapi = openapi


def describe(schema: dict, max_page_size: int = LIMIT_CEILING) -> dict:
    """`schema` (FastAPI's) with security schemes, each operation's security and scope, error bodies, and the
    paged routes' `limit` declared up to `max_page_size` (the server's; more is a 422)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if isinstance(op, dict) and "responses" in op:
                _declare_not_found(op)
                _describe_operation(method.upper(), path, op)
                _declare_server_answers(method.upper(), path, op)
                _declare_page_size(op, max_page_size)
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema["paths"]):
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's error model, replaced above
            schemas.pop(unused, None)
    return schema


def _declare_page_size(op: dict, max_page_size: int) -> None:
    for param in op.get("parameters", ()):
        bounds = param.get("schema", {})
        if param.get("in") == "query" and param.get("name") == "limit" and bounds.get("maximum") == LIMIT_CEILING:
            bounds["maximum"] = min(LIMIT_CEILING, max_page_size)


def _describe_operation(method: str, path: str, op: dict) -> None:
    scope = scope_for(method, path)
    responses = op["responses"]
    if scope is not OPEN:
        op["security"] = [{"ApiKey": []}, {"BearerToken": []}]
        op["x-scope"] = scope
        read_note = " (reads are open without one when the server listens on a loopback address)" \
            if scope == "read" else ""
        responses.setdefault("401", {"description": f"no API key or token, or a bad one{read_note}"})
        responses.setdefault("403", {"description": f"the key or token lacks the scope {scope!r}"})
    if scope is not OPEN or method in MUTATING:
        responses.setdefault("429", {
            "description": "rate limit reached (or too many refused credentials from this address)",
            "headers": {name: {"description": text, "schema": {"type": "integer"}, "required": name == "Retry-After"}
                        for name, text in RATE_LIMIT_HEADERS.items()}})
    for code, response in responses.items():
        if code[:1] in ("4", "5") and path not in OWN_ERROR_BODIES:
            response["content"] = {"application/json": {"schema": ERROR_REF}}


#: query parameters that name a thing the server looks up, each with what it names: wherever one is taken, an
#: unknown value is a 404 naming it (not an empty answer a typo would hide behind). `scenario`, `controller`,
#: `camera_id` and the like are filters: an unknown one answers an empty page
LOOKUP_QUERIES = {"simulation_id": "simulation", "intersection_id": "intersection", "device": "device"}


def _declare_not_found(op: dict) -> None:
    """The 404 of every operation that names a thing: by a path parameter (every one names a thing, answered 404
    when there is none: a run, a job, a model, a key, a stream, an alert, a measure) or by a query parameter of
    `LOOKUP_QUERIES`. One rule for all of them, from the parameters the operation declares, so a route added
    with a path id has its 404 declared; a route's own 404 (a thing its body names, a wording of its own) stays.
    `tests/api/test_openapi_not_found.py` asks every operation for made-up ids and checks both ways."""
    named = [f"`{p['name']}`" if p.get("in") == "path" else f"{LOOKUP_QUERIES[p['name']]} (`{p['name']}`)"
             for p in op.get("parameters", ())
             if p.get("in") == "path" or (p.get("in") == "query" and p.get("name") in LOOKUP_QUERIES)]
    if not named or "404" in op["responses"]:
        return
    op["responses"]["404"] = {"description": f"not found: no such {' or '.join(named)} (the message names it, and "
                                             "where it can, what there is)"}


#: routes whose 503 has their own body (the health checks: `status`, `checks`, `message`), not ErrorBody
OWN_ERROR_BODIES = frozenset({"/health", "/health/ready", "/health/live"})


def _declare_server_answers(method: str, path: str, op: dict) -> None:
    """The answers the app gives whatever the route: 413 and 415 for a body (`middleware.BodyLimit`,
    `errors`), 503 for a key the database cannot check (`auth.check_key`), for a live route without a live run,
    and for a change the loop did not take in time. Each with the error body."""
    responses = op["responses"]
    added: dict[str, str] = {}
    if "requestBody" in op:
        added["413"] = BODY_TOO_LARGE
        if not path.startswith("/api/v1/live/feeds/"):  # a feed's message is read by the route itself (422)
            added["415"] = NOT_JSON
    unavailable = []
    if scope_for(method, path) is not OPEN:
        unavailable.append(KEYS_UNCHECKED)
    if path.startswith("/api/v1/live/") or path in LIVE_READS:
        unavailable.append(NO_LIVE_RUN)
    if (method, path) in LOOP_CHANGES:
        unavailable.append(LOOP_BUSY)
    if unavailable:
        added["503"] = "; or ".join(unavailable)
    for code, text in added.items():
        if code in responses:  # the route's own words first, then the app's causes of a 503 (each its own)
            said = responses[code].get("description", "")
            if code == "503" and text not in said:
                responses[code]["description"] = f"{said}; or {text}" if said else text
            continue
        responses[code] = {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}
        if code == "503":
            responses[code]["headers"] = {"Retry-After": {"description": "seconds to wait before trying again "
                                                                         "(when the condition is a passing one)",
                                                          "schema": {"type": "integer"}}}

