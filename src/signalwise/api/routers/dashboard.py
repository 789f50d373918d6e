"""Chart-ready endpoints: labels and series a dashboard plots as they come."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from signalwise.store import queries

from ..deps import (
    CacheDep,
    EngineDep,
    Identifier,
    IntersectionFiltersDep,
    SignalId,
    cache_key,
    intersection_known,
)
from ..errors import field_error

router = APIRouter(tags=["dashboard"])

DEFAULT_METRICS = ["avg_wait_time", "avg_speed", "throughput", "co2_saved"]


@router.get("/api/v1/dashboard/live-metrics", summary="Newest interval of a run (default: the latest run)",
            responses={404: {"description": "no simulation is stored yet, or the simulation or intersection named "
                                            "is unknown"}})
def live_metrics(engine: EngineDep, cache: CacheDep, request: Request,
                 simulation_id: Annotated[Identifier | None, Query()] = None,
                 intersection_id: Annotated[SignalId | None, Query()] = None) -> dict:
    result = cache.get_or_compute(cache_key(request),
                                  lambda: queries.live_metrics(engine, simulation_id, intersection_id))
    if result is None:
        raise HTTPException(404, "no simulation stored yet" if simulation_id is None
                            else f"simulation {simulation_id!r} not found")
    if not result["intersections"]:
        intersection_known(engine, result["simulation_id"], intersection_id)
    return result


@router.get("/api/v1/dashboard/performance-comparison", summary="Mean of each metric per controller (bar chart)")
def performance_comparison(engine: EngineDep, cache: CacheDep, request: Request,
                           scenario: Annotated[Identifier | None, Query()] = None,
                           metric: Annotated[list[Identifier] | None, Query()] = None) -> dict:
    if metric:
        _known_metrics(engine, metric)
    return cache.get_or_compute(cache_key(request), lambda: queries.performance_comparison(
        engine, scenario, metric or DEFAULT_METRICS))


def _known_metrics(engine, names: list[str], parameter: str = "metric") -> None:
    """422 naming a metric no stored run has (a typo would chart as no data), in query parameter `parameter`."""
    known = queries.metric_names(engine)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise field_error(("query", parameter), f"unknown metric(s) {', '.join(unknown)}; the stored runs have "
                                                f"{', '.join(known)}")


def _known_simulations(engine, simulation_ids: list[str]) -> None:
    """404 naming a simulation the store does not hold (it would chart as an empty series)."""
    missing = [s for s in simulation_ids if not queries.simulation_exists(engine, s)]
    if missing:
        raise HTTPException(404, f"simulation(s) {', '.join(repr(s) for s in missing)} not found "
                                 "(GET /api/v1/analytics/simulations lists the published runs)")


@router.get("/api/v1/charts/wait-time-trend", summary="Average wait over time, one series per run (line chart)")
def wait_time_trend(engine: EngineDep, cache: CacheDep, request: Request, f: IntersectionFiltersDep,
                    simulation: Annotated[list[Identifier] | None, Query(
                        max_length=20, description="runs to plot (default: the filter's simulation_id or the latest)")] = None,
                    bucket_s: Annotated[int | None, Query(ge=1, le=31 * 86400)] = None) -> dict:
    sims = simulation or ([f.simulation_id] if f.simulation_id else [])
    _known_simulations(engine, sims)
    if not sims:
        latest = queries.latest_simulation_id(engine)
        sims = [latest] if latest else []
    result = cache.get_or_compute(cache_key(request), lambda: queries.wait_time_trend(engine, sims, f, bucket_s))
    if not result["labels"]:
        for sim in sims or [None]:
            intersection_known(engine, sim, f.intersection_id)
    return result


@router.get("/api/v1/charts/performance-scatter", summary="One point per run: metric x against metric y")
def performance_scatter(engine: EngineDep, cache: CacheDep, request: Request,
                        scenario: Annotated[Identifier | None, Query()] = None,
                        x: Annotated[Identifier, Query()] = "avg_wait_time",
                        y: Annotated[Identifier, Query()] = "throughput") -> dict:
    _known_metrics(engine, [x], "x")
    _known_metrics(engine, [y], "y")
    return cache.get_or_compute(cache_key(request), lambda: queries.performance_scatter(engine, scenario, x, y))
