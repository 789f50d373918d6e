"""Performance of the deployed models: figures measured elsewhere, and the active model against the baseline.

`POST /api/v1/ml/metrics` stores figures measured outside signalwise (a
field study, a detector analytics system) for an intersection, per interval,
with what ran there. It changes stored data and nothing that runs, like
sending interval records, so it needs the `ingest` scope. The GETs need `read`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from signalwise.analytics import model_performance as perf
from signalwise.core.names import MAX_INTERSECTION_ID_CHARS
from signalwise.store import ml_metrics

from .. import registry_ops as ops
from ..auth import who
from ..deps import EngineDep, Moment, time_range
from .ml_models import live_view, runs_version

router = APIRouter(prefix="/api/v1/ml", tags=["ml"])

IdPath = Annotated[str, Path(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")]
MAX_INTERVALS = 10_000


class IntervalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_start: Moment = Field(description="start of the interval (ISO 8601 with a time zone)")
    interval_s: float = Field(gt=0, le=86_400, description="length of the interval, s")
    controller: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$", description=(
        "what controlled the signal: fixed, webster, actuated, max-pressure, or ql when a model did"))
    model_version: str | None = Field(None, pattern=r"^v[0-9]{1,8}$", description=(
        "the registry version that ran, when a model did (what performance compares)"))
    delay_s_per_veh: float | None = Field(None, ge=0, le=86_400, description="mean control delay per vehicle, s/veh")
    queue_veh: float | None = Field(None, ge=0, le=100_000, description="mean queue over the interval, vehicles")
    throughput_veh_per_h: float | None = Field(None, ge=0, le=1_000_000, description="vehicles served per hour")

    @model_validator(mode="after")
    def _one_figure(self) -> IntervalIn:
        if self.delay_s_per_veh is None and self.queue_veh is None and self.throughput_veh_per_h is None:
            raise ValueError("give at least one of delay_s_per_veh, queue_veh, throughput_veh_per_h")
        return self


class MetricsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intersection_id: str = Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")
    source: str = Field("api", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$", description=(
        "who measured (a field study, an analytics system); the same source sending the same interval again "
        "replaces its figures"))
    intervals: list[IntervalIn] = Field(min_length=1, max_length=MAX_INTERVALS)


class MetricsStored(BaseModel):
    intersection_id: str
    source: str
    stored: int = Field(description="intervals written (new or replaced)")


@router.post("/metrics", response_model=MetricsStored, status_code=201,
             summary="Store performance figures measured elsewhere for an intersection (scope ingest)")
def put_metrics(request: Request, body: MetricsIn, engine: EngineDep) -> MetricsStored:
    intervals = [ml_metrics.Interval(iv.interval_start.astimezone(dt.UTC), iv.interval_s, iv.controller,
                                     iv.model_version, iv.delay_s_per_veh, iv.queue_veh, iv.throughput_veh_per_h)
                 for iv in body.intervals]
    n = ml_metrics.put_metrics(engine, body.intersection_id, body.source, intervals, who(request))
    return MetricsStored(intersection_id=body.intersection_id, source=body.source, stored=n)


class IntervalOut(BaseModel):
    interval_start: dt.datetime = Field(description="UTC")
    interval_s: float = Field(description="length of the interval, s")
    source: str
    controller: str
    model_version: str | None
    delay_s_per_veh: float | None = Field(description="mean control delay per vehicle, s/veh")
    queue_veh: float | None = Field(description="mean queue, vehicles")
    throughput_veh_per_h: float | None = Field(description="vehicles served per hour")
    submitted_at: dt.datetime = Field(description="UTC")
    submitted_by: str = Field(description="the API key's name")


class MetricsOut(BaseModel):
    intersection_id: str
    total: int = Field(description="intervals matching the filters")
    limit: int
    offset: int
    items: list[IntervalOut] = Field(description="in time order")


@router.get("/metrics/{intersection_id}", response_model=MetricsOut,
            summary="Submitted performance figures of an intersection, in time order")
def get_metrics(intersection_id: IdPath, engine: EngineDep,
                start: Annotated[Moment | None, Query(description="intervals starting at or after (ISO 8601 with zone)")] = None,
                end: Annotated[Moment | None, Query(description="intervals starting before (ISO 8601 with zone)")] = None,
                source: Annotated[str | None, Query(min_length=1, max_length=128, description="only this source")] = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                offset: Annotated[int, Query(ge=0)] = 0) -> MetricsOut:
    time_range(start, end)
    if not ml_metrics.known_intersection(engine, intersection_id):
        raise HTTPException(404, f"no figures submitted for intersection {intersection_id!r}")
    total, rows = ml_metrics.get_metrics(engine, intersection_id, start and start.astimezone(dt.UTC),
                                         end and end.astimezone(dt.UTC), source, limit, offset)
    items = [IntervalOut(**{k: getattr(r, k) for k in IntervalOut.model_fields}) for r in rows]
    return MetricsOut(intersection_id=intersection_id, total=total, limit=limit, offset=offset, items=items)


class StatOut(BaseModel):
    mean: float | None = Field(description="in the figure's unit")
    ci_low: float | None = Field(description="95 % confidence interval, low end")
    ci_high: float | None = Field(description="95 % confidence interval, high end")
    n: int = Field(description="runs or intervals")


class FigureOut(BaseModel):
    metric: str
    unit: str = Field(description="unit of mean and CI: s, s/veh, veh, veh/h, or 0..1 for a share")
    description: str
    candidate: StatOut = Field(description="with the active model")
    baseline: StatOut | None = Field(description="with the baseline controller; null when this source has none")
    change_pct: float | None = Field(description="(candidate - baseline) / baseline, %")
    p_value: float | None = Field(description="Welch's t-test, two-sided")
    p_value_paired: float | None = Field(description="paired t-test over seeds (stored runs only)")


class SourceOut(BaseModel):
    source: str = Field(description="stored_runs | submitted | live")
    contributed: bool = Field(description="this source had figures of the active model")
    n_candidate: int = Field(description="runs (stored_runs) or intervals with the active model")
    n_baseline: int = Field(description="runs or intervals with the baseline controller")
    note: str = Field(description="what was compared, or why nothing was")
    ids: list[str] = Field(description="the runs (simulation ids) or sources that contributed")
    figures: list[FigureOut]


class PerformanceOut(BaseModel):
    intersection_id: str
    active_version: str = Field(description="the model compared: the version active at the intersection")
    baseline_controller: str
    sources: list[SourceOut]


@router.get("/performance/{intersection_id}", response_model=PerformanceOut,
            summary="The active model against the baseline at an intersection: stored runs, live data, submitted figures")
def performance(request: Request, intersection_id: IdPath, engine: EngineDep,
                baseline: Annotated[str | None, Query(min_length=1, max_length=64, description=(
                    "the baseline controller (default: the server's baseline_controller setting)"))] = None
                ) -> PerformanceOut:
    reg = ops.registry(request)
    now = reg.active_at(intersection_id)
    if now is None:
        raise HTTPException(404, f"no model is active at intersection {intersection_id!r}")
    mv = reg.get(now.version)
    base = baseline or request.app.state.settings.baseline_controller
    sources = [perf.stored_runs(engine, lambda path: runs_version(path, mv), intersection_id, base),
               _live(request, intersection_id, mv),
               perf.submitted(engine, intersection_id, mv.version, base)]
    return PerformanceOut(intersection_id=intersection_id, active_version=mv.version, baseline_controller=base,
                          sources=[SourceOut(source=s.source, contributed=s.n_candidate > 0, n_candidate=s.n_candidate,
                                             n_baseline=s.n_baseline, note=s.note, ids=s.ids,
                                             figures=[FigureOut.model_validate(f) for f in s.figures])
                                   for s in sources])


def _live(request: Request, intersection_id: str, mv) -> perf.Source:  # noqa: ANN001
    """The live run's intervals at the intersection since the active model took over there."""
    rt = getattr(request.app.state, "live", None)
    view, _snap = live_view(request, intersection_id)
    if rt is None or view is None:
        return perf.Source("live", 0, 0, "no live run with this signal is attached", [], [])
    if not runs_version(view.model_path, mv):
        return perf.Source("live", 0, 0, f"the live run does not run {mv.version} here now ({view.controller})",
                           [], [])
    records = getattr(rt, "records", None)
    since = records.stamp_at(view.controller_since_s) if records is not None and view.controller_since_s else None
    rows = _tail_records(FilePath(rt.run_dir) / "records.jsonl")
    note = (f"intervals of the live run {FilePath(rt.run_dir).name} that began after {mv.version} took over "
            "(a live run serves one controller at a time: no baseline from it)")
    return perf.live_intervals(rows, intersection_id, since, note)


def _tail_records(path: FilePath, max_bytes: int = 8 << 20) -> list[dict]:
    """The records of the live run's file, the newest `max_bytes` of it (whole lines only)."""
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first is cut
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
