"""GET /api/v1/analytics/*: what engineers ask of the stored runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from signalwise.analytics import comparisons
from signalwise.store import live_history, queries

from ..csv_answers import FormatQuery, comparison_csv, csv_response
from ..deps import (
    CacheDep,
    EngineDep,
    FiltersDep,
    Identifier,
    IntersectionFiltersDep,
    PageDep,
    RunFiltersDep,
    SettingsDep,
    cache_key,
    intersection_known,
    paged,
)
from .live_history import run_statuses

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

SimulationPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
Baseline = Annotated[Identifier | None, Query(description="controller of the baseline runs (default: fixed)")]


#: the fields of `/speeds` entries (and `overall`), with their units, as `/environmental-impact` gives its own
SPEED_FIELDS = {
    "mean_speed": "km/h: mean of the interval records' avg_speed (those that measured one)",
    "min_speed": "km/h: the lowest interval record's avg_speed",
    "max_speed": "km/h: the highest interval record's avg_speed",
    "samples": "count: interval records that measured a speed",
}


def _metric_fields(items: list[dict]) -> dict[str, str]:
    """`metrics` names of these runs, each with "unit: what it is" (`comparisons.METRIC_INFO`)."""
    names = sorted({name for item in items for name in item["metrics"]})
    return {name: f"{unit}: {text}" for name in names
            for unit, text in [comparisons.METRIC_INFO.get(name, ("?", "not described by this version"))]}


@router.get("/simulation/{simulation_id}/summary", summary="One run: tags, span and averages")
def summary(simulation_id: SimulationPath, f: RunFiltersDep, engine: EngineDep, cache: CacheDep,
            request: Request) -> dict:
    result = cache.get_or_compute(cache_key(request),
                                  lambda: queries.simulation_summary(engine, simulation_id, f))
    if result is None:
        raise HTTPException(404, f"simulation {simulation_id!r} not found")
    if not result["intersections"]:
        intersection_known(engine, simulation_id, f.intersection_id)
    config = result.get("config") if isinstance(result.get("config"), dict) else {}
    dirs = {simulation_id: config["run_dir"]} if isinstance(config.get("run_dir"), str) else {}
    return {**result, **run_statuses(request, dirs, [simulation_id])[simulation_id]}  # fresh, not cached


def _named_simulation_known(engine, f, result: dict) -> dict:  # noqa: ANN001
    """`result`, or a 404 when it is empty because the `simulation_id` or `intersection_id` it names is not in the
    store (a typo answered 200 with nothing, as a run without data would)."""
    if result["total"]:
        return result
    if f.simulation_id is not None and not queries.simulation_exists(engine, f.simulation_id):
        raise HTTPException(404, f"simulation {f.simulation_id!r} not found")
    intersection_known(engine, f.simulation_id, f.intersection_id)
    return result


@router.get("/wait-times", summary="Waiting time per simulation, intersection and direction")
def wait_times(f: FiltersDep, p: PageDep, engine: EngineDep, cache: CacheDep, request: Request) -> dict:
    def compute() -> dict:
        total, items, overall = queries.wait_times(engine, f, p.limit, p.offset)
        return paged(total, items, p, overall=overall)
    return _named_simulation_known(engine, f, cache.get_or_compute(cache_key(request), compute))


@router.get("/speeds", summary="Average speed per simulation and intersection")
def speeds(f: IntersectionFiltersDep, p: PageDep, engine: EngineDep, cache: CacheDep, request: Request) -> dict:
    def compute() -> dict:
        total, items, overall = queries.speeds(engine, f, p.limit, p.offset)
        return paged(total, items, p, overall=overall, fields=SPEED_FIELDS)
    return _named_simulation_known(engine, f, cache.get_or_compute(cache_key(request), compute))


@router.get("/environmental-impact",
            summary="Fuel and CO2 against the baseline run of the same scenario, seed and conditions: totals over "
                    "the counted window and per vehicle-km (g/veh-km, l/100 veh-km), units in `fields`")
def environmental_impact(engine: EngineDep, cache: CacheDep, settings: SettingsDep, request: Request, p: PageDep,
                         simulation_id: Annotated[Identifier | None, Query()] = None,
                         scenario: Annotated[Identifier | None, Query()] = None,
                         baseline_controller: Baseline = None) -> dict:
    baseline = baseline_controller or settings.baseline_controller

    def compute() -> dict:
        items = comparisons.environmental_impact(engine, baseline, simulation_id, scenario)
        return paged(len(items), items[p.offset:p.offset + p.limit], p, baseline_controller=baseline,
                     fields=comparisons.ENVIRONMENTAL_FIELDS)  # units and scopes: two sources, two scopes
    result = cache.get_or_compute(cache_key(request), compute)
    if simulation_id is not None and result["total"] == 0:
        raise HTTPException(404, f"simulation {simulation_id!r} not found or has no scenario/controller tags")
    return result


@router.get("/simulations", summary="Every stored run that names its scenario and controller (a published run): "
                                    "scenario, controller, seed, its run metrics and its status where known; "
                                    "with untagged=true the simulations of ingested records alone too")
def simulations(engine: EngineDep, cache: CacheDep, request: Request, p: PageDep,
                scenario: Annotated[Identifier | None, Query(description="only this scenario")] = None,
                controller: Annotated[Identifier | None, Query(description="only this controller")] = None,
                untagged: Annotated[bool, Query(description=(
                    "also the simulations of records ingested alone (POST /ingest/...), which name no scenario, "
                    "controller nor seed (null), after the published runs"))] = False) -> dict:
    def compute() -> dict:
        runs = [r for r in queries.run_table(engine, scenario, untagged)
                if controller is None or r["controller"] == controller]
        items = [{"simulation_id": r["simulation_id"], "scenario": r["scenario"], "controller": r["controller"],
                  "seed": r["seed"], "metrics": r["metrics"]} for r in runs]
        page_items = items[p.offset:p.offset + p.limit]
        return paged(len(items), page_items, p, fields=_metric_fields(page_items))
    result = cache.get_or_compute(cache_key(request), compute)
    # the status outside the cache (a run dies between two reads), read for the page's runs only
    ids = [r["simulation_id"] for r in result["items"]]
    status = run_statuses(request, live_history.run_dirs(engine, ids), ids)
    return {**result, "items": [{**r, **status[r["simulation_id"]]} for r in result["items"]]}


@router.get("/comparison/baseline-vs-ai", response_model=None,
            summary="Mean, 95% CI, Welch and paired p-values (p_welch, p_paired; also p_value, p_value_paired) "
                    "across seeds, per controller and metric (with its unit and description), against the "
                    "baseline, and the verdict signalwise compare gives (better, worse; else verdict_note); "
                    "?format=csv: as signalwise compare's summary.csv",
            responses=csv_response("the page's comparisons as `signalwise compare`'s summary.csv (a row per "
                                   "figure and controller, the baseline's included; X-Total-Count: the "
                                   "comparisons before paging)"))
def baseline_vs_ai(engine: EngineDep, cache: CacheDep, settings: SettingsDep, request: Request, p: PageDep,
                   scenario: Annotated[Identifier | None, Query()] = None,
                   controller: Annotated[Identifier | None, Query(description="only this controller")] = None,
                   metric: Annotated[list[Identifier] | None, Query(description="only these metrics")] = None,
                   baseline_controller: Baseline = None, format: FormatQuery = "json") -> dict | Response:  # noqa: A002
    baseline = baseline_controller or settings.baseline_controller

    def compute() -> dict:
        items = comparisons.baseline_vs_ai(engine, baseline, scenario, controller, metric)
        return paged(len(items), items[p.offset:p.offset + p.limit], p, baseline_controller=baseline)
    # one cached answer for both formats: the CSV is written from the JSON's page
    key = (request.url.path, tuple(sorted(i for i in request.query_params.multi_items() if i[0] != "format")))
    result = cache.get_or_compute(key, compute)
    return comparison_csv(result) if format == "csv" else result


@router.get("/emergency-report", summary="Emergency overrides, vehicles present and emergency-vehicle delay")
def emergency_report(f: FiltersDep, p: PageDep, engine: EngineDep, cache: CacheDep, request: Request) -> dict:
    def compute() -> dict:
        total, items, overall = queries.emergency_report(engine, f, p.limit, p.offset)
        return paged(total, items, p, overall=overall)
    return _named_simulation_known(engine, f, cache.get_or_compute(cache_key(request), compute))


@router.get("/time-series/{simulation_id}", summary="Per-interval figures of one run, oldest first")
def time_series(simulation_id: SimulationPath, f: RunFiltersDep, p: PageDep, engine: EngineDep, cache: CacheDep,
                request: Request,
                bucket_s: Annotated[int | None, Query(ge=1, le=31 * 86400,
                                                      description="merge intervals into buckets of this size")] = None
                ) -> dict:
    def compute() -> dict | None:
        result = queries.interval_figures(engine, simulation_id, f, bucket_s, p.limit, p.offset)
        return None if result is None else paged(result[0], result[1], p, simulation_id=simulation_id)
    result = cache.get_or_compute(cache_key(request), compute)
    if result is None:
        raise HTTPException(404, f"simulation {simulation_id!r} not found")
    if not result["total"]:
        intersection_known(engine, simulation_id, f.intersection_id)
    return result
