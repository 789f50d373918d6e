"""Dependencies injected into the routers: settings, engine, cache, filters, pagination."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request
from pydantic import AwareDatetime, Field
from sqlalchemy import Engine

from signalwise.core.names import MAX_INTERSECTION_ID_CHARS
from signalwise.store import Settings, get_engine
from signalwise.store.queries import Filters

from .cache import TTLCache

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
#: a signal's id: as long as SUMO makes them
SignalId = Annotated[str, Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")]
Moment = Annotated[AwareDatetime, Field(gt=dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                                        lt=dt.datetime(2200, 1, 1, tzinfo=dt.UTC))]
DirectionParam = Literal["north", "south", "east", "west"]


def settings(request: Request) -> Settings:
    return request.app.state.settings


def engine(request: Request) -> Engine:
    try:
        return get_engine(request.app.state.settings.database_url)
    except Exception as exc:  # noqa: BLE001 - any failure to open or migrate = unavailable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HTTPException(503, f"database unavailable: {first}") from None


def cache(request: Request) -> TTLCache:
    return request.app.state.cache


def filters(
    simulation_id: Annotated[Identifier | None, Query(description="only this simulation run")] = None,
    intersection_id: Annotated[SignalId | None, Query(description="only this intersection")] = None,
    direction: Annotated[DirectionParam | None, Query(description="only this approach")] = None,
    start: Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")] = None,
    end: Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")] = None,
) -> Filters:
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    return Filters(simulation_id, intersection_id, direction,
                   start.astimezone(dt.UTC) if start else None, end.astimezone(dt.UTC) if end else None)


def run_filters(
    intersection_id: Annotated[SignalId | None, Query(description="only this intersection")] = None,
    direction: Annotated[DirectionParam | None, Query(description="only this approach")] = None,
    start: Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")] = None,
    end: Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")] = None,
) -> Filters:
    """Filters inside one run (the run comes from the path)."""
    return filters(None, intersection_id, direction, start, end)


class Page:
    def __init__(self, limit: int, offset: int):
        self.limit, self.offset = limit, offset


#: the most a `limit` query parameter takes whatever the settings; the schema declares the server's
#: max_page_size below it (`openapi.describe`), which is the one enforced
LIMIT_CEILING = 100_000


def page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=LIMIT_CEILING,
                                description="items per page (at most the server's max_page_size)")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")] = 0,
) -> Page:
    cap = request.app.state.settings.max_page_size
    if limit > cap:
        raise HTTPException(422, [{"loc": ["query", "limit"], "type": "less_than_equal",
                                   "msg": f"limit={limit} exceeds the maximum page size {cap}"}])
    return Page(limit, offset)


EngineDep = Annotated[Engine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
CacheDep = Annotated[TTLCache, Depends(cache)]
FiltersDep = Annotated[Filters, Depends(filters)]
RunFiltersDep = Annotated[Filters, Depends(run_filters)]
PageDep = Annotated[Page, Depends(page)]


def cache_key(request: Request) -> tuple:
    return (request.url.path, tuple(sorted(request.query_params.multi_items())))


def paged(total: int, items: list, p: Page, **extra) -> dict:
    return {"total": total, "limit": p.limit, "offset": p.offset, "items": items, **extra}
