"""`GET /api/v1/atspm/{measure}`: ATSPM measures computed from the stored hi-res events.

Events come from the store's event table (`signalwise events import`, or a
run). Measures that need a detector configuration (arrivals on green,
platoon ratio, split failures, yellow/red actuations, PCD) read the chosen
run's own, stored with its events (`store.detector_configs`: the run's
`detectors.csv`), else the file named by `SIGNALWISE_DETECTOR_CONFIG` (imported
controller logs, and runs stored without one). The run's own wins: it names
the channels that run's events carry, written by the run from the network it
simulated, while the process-wide file describes field devices, whose ids a
simulated run may share with other channels behind them.

A live run logs a timing revision (a timing changed at run time) with a 131 too, naming the revision, not a
plan. The devices whose 131s may be revisions are those the chosen run's signal model lists timing revisions for
(the `signal_model.json` in the run directory its stored configuration names, `run_revision_devices`): there
`plans` (and the plan in force at a window's start) leaves the revisions out and `timing_revisions` lists them,
as `signalwise atspm` reads the run directory. Every 131 of imported controller logs, or of a run whose directory
this server cannot read, is a plan.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from signalwise.analytics.atspm.compute import MEASURES
from signalwise.core.names import MAX_INTERSECTION_ID_CHARS

from ..csv_answers import FormatQuery, atspm_csv, csv_response
from ..deps import time_range
from ..errors import field_error, refusal

router = APIRouter(prefix="/api/v1/atspm", tags=["atspm"])
#: how a query time is read (`on_log_clock`)
LOG_CLOCK = ("the log's local time, ISO 8601: without a zone as the events are logged (2025-01-06T07:00:00), or "
             "with one (Z, +01:00), converted to this server's local time")

NEEDS_DETECTORS = {"arrival_on_green", "platoon_ratio", "split_failures", "split_failure_cycles", "yellow_red",
                   "red_light_running", "pcd", "pcd_cycles", "approach_delay"}
MAX_ROWS = 10_000


def get_atspm_engine(request: Request):
    """The app's store engine (`signalwise.api.deps.engine`: the app settings' database URL)."""
    from signalwise.api.deps import engine

    return engine(request)


def get_detector_config(request: Request):
    """The detector configuration the settings name (`SIGNALWISE_DETECTOR_CONFIG`), or None: the fallback for a
    run with none of its own stored (`_run_detector_config`)."""
    path = request.app.state.settings.detector_config
    if not path:
        return None
    from signalwise.analytics.atspm.inputs import read_detectors, with_stopbar_yellow_red

    return with_stopbar_yellow_red(read_detectors(path))


def _run_detector_config(engine, run: str | None):
    """The detector configuration stored with this run (its `detectors.csv`), read as `signalwise atspm` reads
    the file (stop-bar Presence detectors count yellow/red actuations too); None when it has none."""
    if not run:  # '' = imported controller logs: no run, no configuration of their own
        return None
    from signalwise.store.detector_configs import COLUMNS, detector_config_rows

    rows = detector_config_rows(engine, run)
    if rows is None:
        return None
    import pandas as pd

    from signalwise.analytics.atspm.inputs import detectors_from_frame, with_stopbar_yellow_red

    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"DistanceToStopbar_m": float,
                                                               "ApproachSpeed_mps": float})
    return with_stopbar_yellow_red(detectors_from_frame(frame, source=f"the detector configuration of run {run!r}"))


def _no_detectors_message(measure: str, run: str | None) -> str:
    """Why a detector measure cannot be computed, and what to do: a stored run can be published again with
    its `detectors.csv`; imported logs need the setting."""
    if run:
        return (f"{measure} needs a detector configuration: run {run!r} was stored without one (from a directory "
                "without detectors.csv, or into a database before its migration 0014); publish it again "
                "(signalwise publish RUN_DIR) or set SIGNALWISE_DETECTOR_CONFIG")
    return f"{measure} needs a detector configuration: set SIGNALWISE_DETECTOR_CONFIG"


def on_log_clock(value: dt.datetime | None) -> dt.datetime | None:
    """A query time on the clock hi-res events are logged by: the local time of the signal's controller, written
    without a zone (docs/atspm.md), which is this server's local time (its `TZ`): a live run stamps its events
    with the wall clock of the machine it runs on, and a city's controllers log the city's time. A time without a
    zone is read on that clock as it is; one with a zone (`Z`, `+01:00`) is the same instant on that clock."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone().replace(tzinfo=None)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


#: the measures that tell a timing revision's 131 from a plan's (`compute_all`'s `revision_devices`)
READS_REVISIONS = ("plans", "timing_revisions")


def run_revision_devices(engine, run: str | None) -> tuple[tuple[str, ...], str | None]:
    """The devices of stored run `run` whose 131s may name a timing revision (`coordination_patterns.
    revision_devices` of the `signal_model.json` in the run directory its stored configuration names), and a
    warning when the run names a directory whose model cannot be read (every 131 is then a plan). None for
    imported controller logs (`''`) and a run stored without a directory: a field controller logs patterns only."""
    if not run:
        return (), None
    from pathlib import Path

    from signalwise.analytics.coordination_patterns import read_revision_devices
    from signalwise.store.live_history import run_dirs

    run_dir = run_dirs(engine, [run]).get(run)
    if run_dir is None:
        return (), None
    path = Path(run_dir) / "signal_model.json"
    devices, unread = read_revision_devices(path)
    if unread is not None:
        return (), (f"run {run!r}: its signal model {path} cannot be read ({unread}): every 131 is read as a "
                    "coordination plan, a timing revision's too")
    return tuple(sorted(devices)), None


def _plans_in_force(engine, log, start: dt.datetime | None, run: str | None, revision_devices=()):
    """The plan each device of the window ran at `start` (its last 131 before it, from the store), with its cycle
    and offset (its last 132, 156 and 133, which a field controller logs with the 131): the window's log was cut
    there, so its first span would otherwise read unknown, without a cycle or an offset. None without a start.
    On `revision_devices` a timing revision's 131 is no plan: the plan is the last 131 before `start` that is a
    pattern's (`_last_patterns`)."""
    if start is None or not len(log) or run is None:
        return None
    import numpy as np

    from signalwise.analytics.atspm.plans import (
        CYCLE_EVENT,
        EXTRA_CYCLE_EVENT,
        OFFSET_EVENT,
        PLAN_EVENT,
        PlansInForce,
    )
    from signalwise.store.events import last_parameters

    revisions = set(revision_devices)
    revised = [d for d in log.devices if d in revisions]
    plans = last_parameters(engine, [d for d in log.devices if d not in revisions], PLAN_EVENT, start, run)
    plans.update(_last_patterns(engine, revised, start, run))
    held = [d for d in log.devices if d in plans]
    cycles, offsets = (last_parameters(engine, held, code, start, run) if held else {}
                       for code in (CYCLE_EVENT, OFFSET_EVENT))
    extra = last_parameters(engine, [d for d in held if cycles.get(d) == 255], EXTRA_CYCLE_EVENT, start, run) \
        if any(c == 255 for c in cycles.values()) else {}
    timings = {d: (None if d not in cycles else cycles[d] + extra.get(d, 0), offsets.get(d)) for d in held}
    return PlansInForce(int(np.datetime64(start, "us").astype(np.int64)), plans, timings)


def _last_patterns(engine, devices: list[str], start: dt.datetime, run: str) -> dict[str, int]:
    """Per device of `devices` (whose 131s may name a timing revision), the pattern of its last 131 before `start`
    that `coordination_patterns.last_pattern` reads as a pattern, not a revision; a device with none is left out.
    Reads the devices' 131s and 132s before `start` (a live run logs them at its start, at a controller switch and
    at each timing change: a few per signal)."""
    if not devices:
        return {}
    from signalwise.analytics.atspm.plans import CYCLE_EVENT, PLAN_EVENT
    from signalwise.analytics.coordination_patterns import last_pattern
    from signalwise.store import query_events

    by_device: dict[str, list[tuple[object, int, int]]] = {}
    for when, device, code, param, *_ in query_events(engine, device_id=devices, end=start,
                                                      codes=(PLAN_EVENT, CYCLE_EVENT), simulation_id=run):
        by_device.setdefault(str(device), []).append((when, int(code), int(param)))
    out: dict[str, int] = {}
    for device, events in by_device.items():
        events.sort(key=lambda e: e[0])  # in time order (an instant's order does not matter to the rule)
        k = last_pattern(events)
        if k is not None:
            out[device] = events[k][2]
    return out


@router.get("")
def list_measures() -> dict:
    """The measures this API computes."""
    return {"measures": [{"name": k, "description": v, "needs_detectors": k in NEEDS_DETECTORS}
                         for k, v in MEASURES.items()]}


@router.get("/{measure}", response_model=None, responses=csv_response("the page's rows as `signalwise atspm` writes <measure>.csv "
                                                 "(X-Total-Count: the rows before paging)"))
def get_measure(
    measure: str,
    engine: Annotated[Any, Depends(get_atspm_engine)],
    detectors: Annotated[Any, Depends(get_detector_config)],
    device: Annotated[str | None, Query(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS,
                                        description="device (signal) id")] = None,
    simulation_id: Annotated[str | None, Query(max_length=128, description="the run whose events to use "
                                               "('' = imported controller logs); required when the device's "
                                               "events come from more than one run")] = None,
    phase: Annotated[int | None, Query(ge=1, le=255, description="phase number")] = None,
    detector: Annotated[int | None, Query(ge=0, le=65535, description="detector channel")] = None,
    start: Annotated[dt.datetime | None, Query(description=f"from (inclusive): {LOG_CLOCK}")] = None,
    end: Annotated[dt.datetime | None, Query(description=f"to (exclusive): {LOG_CLOCK}")] = None,
    bin: Annotated[int, Query(ge=1, le=60, description="bin size in minutes; divides 60")] = 15,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: FormatQuery = "json",  # noqa: A002 - the name a URL says it with
) -> dict | Response:
    """One measure, binned, with device, phase, detector and time-range filters."""
    if measure not in MEASURES:
        raise HTTPException(404, detail=f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")
    start, end = on_log_clock(start), on_log_clock(end)
    time_range(start, end)
    if 60 % bin:
        raise field_error(("query", "bin"), "bin must divide 60 minutes")
    from signalwise.analytics.atspm.compute import compute_all
    from signalwise.analytics.atspm.inputs import events_from_rows
    from signalwise.store import query_events
    from signalwise.store.events import runs_with_events

    runs = runs_with_events(engine, device, start, end)
    if device is not None and not runs and not runs_with_events(engine, device):
        from signalwise.store.events import devices_with_events

        known = devices_with_events(engine, simulation_id, limit=21)
        shown = ", ".join(repr(d) for d in known[:20]) + (" …" if len(known) > 20 else "")
        raise HTTPException(404, detail=f"no events of device {device!r}"
                                        + (f" in run {simulation_id!r}" if simulation_id is not None else "")
                                        + (f"; devices with events: {shown}" if known else "; no events stored"))
    if simulation_id is None and len(runs) > 1:
        shown = ", ".join(repr(r) for r in runs[:20]) + (f" and {len(runs) - 20} more" if len(runs) > 20 else "")
        raise field_error(("query", "simulation_id"), f"the events of "
                          f"{'device ' + repr(device) if device else 'these devices'} come from {len(runs)} runs "
                          f"({shown}); choose one with ?simulation_id= (measures are per run)", "missing")
    if simulation_id is not None and simulation_id not in runs:
        raise HTTPException(404, detail=f"no events of run {simulation_id!r}"
                                        + (f" for device {device!r}" if device else "") + " in this range")
    run = simulation_id if simulation_id is not None else (runs[0] if runs else None)
    own = _run_detector_config(engine, run)  # pedestrian measures read its Pedestrian rows too, as the CLI does
    detector_source = "run" if own is not None else ("setting" if detectors is not None else None)
    detectors = own if own is not None else detectors
    if measure in NEEDS_DETECTORS and detectors is None:
        raise refusal(_no_detectors_message(measure, run), ("path", "measure"))
    rows = query_events(engine, device_id=device, start=start, end=end, simulation_id=run)
    log = events_from_rows(((r[0], r[1], r[2], r[3]) for r in rows), source="store")
    revised, unread = run_revision_devices(engine, run) if measure in READS_REVISIONS else ((), None)
    results = compute_all(log, detectors, bin_min=bin, only=(measure,), revision_devices=revised,
                          plans_in_force=_plans_in_force(engine, log, start, run, revised) if measure == "plans"
                          else None)
    if unread:
        results.warnings.append(unread)
    table = results.tables.get(measure)
    if table is None:
        records, total, page = [], 0, None
    else:
        if phase is not None and "Phase" in table:
            table = table[table["Phase"] == phase]
        if detector is not None and "Detector" in table:
            table = table[table["Detector"] == detector]
        total = len(table)
        page = table.iloc[offset:offset + limit]
        if format == "csv":
            return atspm_csv(measure, page, total)
        records = [{k: _clean(v) for k, v in rec.items()} for rec in page.to_dict("records")]
    if format == "csv":
        return atspm_csv(measure, page, total)
    return {"measure": measure, "simulation_id": simulation_id if simulation_id is not None else
            (runs[0] if runs else None), "detector_config": detector_source, "bin_min": bin, "total": total, "offset": offset, "limit": limit,
            "rows": records, "warnings": results.warnings}
