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
from signalwise.store.timefmt import utc_text

from .cache import TTLCache
from .errors import field_error

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


def time_range(start: dt.datetime | None, end: dt.datetime | None) -> None:
    """The 422 of an empty or reversed range [start, end), naming `query.end`, on every route that takes one."""
    if start is not None and end is not None and end <= start:
        said = utc_text if start.tzinfo is not None else dt.datetime.isoformat  # ATSPM's are the log's own clock
        raise field_error(("query", "end"), f"end ({said(end)}) must be after start ({said(start)})")


def filters(
    simulation_id: Annotated[Identifier | None, Query(description="only this simulation run")] = None,
    intersection_id: Annotated[SignalId | None, Query(description="only this intersection")] = None,
    direction: Annotated[DirectionParam | None, Query(description="only this approach")] = None,
    start: Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")] = None,
    end: Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")] = None,
) -> Filters:
    time_range(start, end)
    return Filters(simulation_id, intersection_id, direction,
                   start.astimezone(dt.UTC) if start else None, end.astimezone(dt.UTC) if end else None)


#: the most intersections a 404 for an unknown one names
NAMED_AT_MOST = 20


def intersection_known(engine: Engine, simulation_id: str | None, intersection_id: str | None) -> None:
    """404 for an `intersection_id` the store holds no figures of (in the run named, or in any), naming the ones
    it holds: a typo answered 200 with nothing would read as an intersection without traffic. As an unknown ATSPM
    device and an unknown live signal are answered. Call it when an answer came empty (one small query)."""
    from signalwise.store import queries

    if intersection_id is None or queries.intersection_exists(engine, simulation_id, intersection_id):
        return
    known = queries.intersections_of(engine, simulation_id, NAMED_AT_MOST + 1)
    shown = ", ".join(known[:NAMED_AT_MOST]) + (" …" if len(known) > NAMED_AT_MOST else "")
    where = f" in simulation {simulation_id!r}" if simulation_id is not None else " in any stored simulation"
    there = ("its intersections: " if simulation_id is not None else "intersections stored: ") + shown \
        if known else "none stored"
    raise HTTPException(404, f"unknown intersection {intersection_id!r}{where}; {there}")


#: the routes that answer one approach's figures; the others' figures are the intersection's
DIRECTION_ROUTES = ("/api/v1/analytics/wait-times", "/api/v1/analytics/emergency-report")
NO_DIRECTION = ("refused (422): this route's figures are the intersection's, not an approach's; "
                f"{' and '.join(DIRECTION_ROUTES)} answer per approach")


def refuse_direction(direction: str | None) -> None:
    """A 422 for `direction` on a route whose figures have none: answering the intersection's figures
    as if they were the approach's would be a wrong number shown as the asked one."""
    if direction is not None:
        raise field_error(("query", "direction"), f"direction={direction} is not a filter of this route (its "
                          f"figures are the intersection's); {' and '.join(DIRECTION_ROUTES)} filter by direction",
                          "not_applicable")


def run_filters(
    intersection_id: Annotated[SignalId | None, Query(description="only this intersection")] = None,
    direction: Annotated[DirectionParam | None, Query(description=NO_DIRECTION)] = None,
    start: Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")] = None,
    end: Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")] = None,
) -> Filters:
    """Filters inside one run (the run comes from the path); its routes answer no approach (`refuse_direction`)."""
    refuse_direction(direction)
    return filters(None, intersection_id, None, start, end)


def intersection_filters(
    simulation_id: Annotated[Identifier | None, Query(description="only this simulation run")] = None,
    intersection_id: Annotated[SignalId | None, Query(description="only this intersection")] = None,
    direction: Annotated[DirectionParam | None, Query(description=NO_DIRECTION)] = None,
    start: Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")] = None,
    end: Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")] = None,
) -> Filters:
    """`filters` of a route whose figures are the intersection's (`/speeds`): no approach (`refuse_direction`)."""
    refuse_direction(direction)
    return filters(simulation_id, intersection_id, None, start, end)


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
        raise field_error(("query", "limit"), f"limit={limit} exceeds the maximum page size {cap}",
                          "less_than_equal")
    return Page(limit, offset)


EngineDep = Annotated[Engine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
CacheDep = Annotated[TTLCache, Depends(cache)]
FiltersDep = Annotated[Filters, Depends(filters)]
RunFiltersDep = Annotated[Filters, Depends(run_filters)]
IntersectionFiltersDep = Annotated[Filters, Depends(intersection_filters)]
PageDep = Annotated[Page, Depends(page)]


def cache_key(request: Request) -> tuple:
    return (request.url.path, tuple(sorted(request.query_params.multi_items())))


def paged(total: int, items: list, p: Page, **extra) -> dict:
    return {"total": total, "limit": p.limit, "offset": p.offset, "items": items, **extra}
