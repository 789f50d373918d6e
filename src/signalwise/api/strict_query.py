"""An unknown query parameter is an error (422), on every route.

FastAPI ignores query parameters a route does not declare, so a typo
(`?simulaton_id=`) silently returns the unfiltered answer: a wrong answer that
looks right. This app-wide dependency compares the request's query names with
those the matched route declares (through all its dependencies).
"""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection

_DECLARED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias or p.name for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: HTTPConnection) -> None:
    # HTTPConnection, not Request: FastAPI passes a Request-typed parameter to HTTP routes only, and this
    # dependency is app-wide, WebSocket routes included
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared = _DECLARED.get(id(route))
    if declared is None:
        declared = _DECLARED[id(route)] = frozenset(_query_names(dependant))
    unknown = sorted(set(request.query_params) - declared)
    if not unknown:
        return
    errors = [{"loc": ("query", name), "type": "value_error",
               "msg": f"unknown query parameter {name!r}; this route takes {', '.join(sorted(declared)) or 'none'}"}
              for name in unknown]
    if request.scope["type"] == "websocket":
        # a refused handshake shows a browser no reason: the stream accepts, then closes 1008 with it
        request.state.query_refused = errors[0]["msg"]
        return
    raise RequestValidationError(errors)
