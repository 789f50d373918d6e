"""The ingestion record: one intersection over one interval, exactly as issue 4 defines it.

Strict on purpose: unknown fields, directions or signal statuses, negative
counts, numbers sent as strings and timestamps without a zone are rejected
with the path of the offending field, so bad feeds fail loudly instead of
skewing averages. These are the API schemas too; the tables live apart in
`tables.py`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, NotRequired, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from ..core.names import MAX_INTERSECTION_ID_CHARS

Direction = Literal["north", "south", "east", "west"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
SignalStatus = Literal["GREEN", "YELLOW", "RED"]

Count = Annotated[int, Field(ge=0, le=2_000_000_000, strict=True)]
NonNegative = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)]
Signed = Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False, strict=True)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$"),
                       Field(strict=True)]
#: a simulation's id: no "/", since the API names a simulation in its paths (/analytics/time-series/{id}), where a
#: "/" (even sent as %2F) would split it
SimulationId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f/]+$"),
                         Field(strict=True)]
#: a signal's id: as long as SUMO makes them (`core.names.MAX_INTERSECTION_ID_CHARS`)
SignalId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS,
                                            pattern=r"^[^\x00-\x1f]+$"), Field(strict=True)]
Timestamp = Annotated[AwareDatetime, Field(gt=dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                                           lt=dt.datetime(2200, 1, 1, tzinfo=dt.UTC),
                                           description="ISO 8601 with a zone, e.g. 2025-09-10T23:20:00Z")]

# The nested parts are TypedDicts, not models: validating a 10,000-record
# batch into plain dicts is about twice as fast as building ten model objects
# per record, and the batch endpoint must sustain 20,000 records/s.


@with_config(ConfigDict(extra="forbid"))
class VehicleCounts(TypedDict):
    """Vehicles counted on one approach during the interval, by class (missing = 0)."""

    car: NotRequired[Count]
    bus: NotRequired[Count]
    truck: NotRequired[Count]
    bike: NotRequired[Count]
    rickshaw: NotRequired[Count]


@with_config(ConfigDict(extra="forbid"))
class SignalRecordIn(TypedDict):
    """One approach direction of an intersection during the interval (times in seconds).

    `null` is "not measured" (a detector feed sees no vehicle classes, waits or emergency vehicles, and an
    approach whose detectors were silent no vehicles): stored as NULL and left out of every average and sum,
    never read as 0. The field must still be there: a missing one is an error."""

    direction: Direction
    vehicle_counts: VehicleCounts | None
    emergency_vehicle_present: Annotated[bool, Field(strict=True)] | None
    signal_status: SignalStatus
    signal_timer: NonNegative
    vehicles_crossed: Count | None
    avg_wait_time: NonNegative | None
    green_time_allocated: NonNegative


@with_config(ConfigDict(extra="forbid"))
class IntersectionMetricsIn(TypedDict):
    """Intersection-wide figures for the interval; fuel/CO2 saved may be negative (more used). Waits, speed,
    fuel and CO2 may be `null`: not measured (as `SignalRecordIn`)."""

    total_vehicles_passed: Count
    avg_wait_time_all_sides: NonNegative | None
    throughput: NonNegative
    avg_speed: NonNegative | None
    fuel_saved: Signed | None
    co2_saved: Signed | None
    emergency_overrides: Count


class IntersectionRecord(BaseModel):
    """One intersection over one interval. Key: (simulation_id, timestamp, intersection_id)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "simulation_id": "SIM_20250910_001", "timestamp": "2025-09-10T23:20:00Z",
            "intersection_id": "INT_001",
            "signals": [{"direction": "north",
                         "vehicle_counts": {"car": 78, "bus": 0, "truck": 0, "bike": 0, "rickshaw": 0},
                         "emergency_vehicle_present": False, "signal_status": "GREEN", "signal_timer": 18,
                         "vehicles_crossed": 35, "avg_wait_time": 12.5, "green_time_allocated": 20}],
            "metrics": {"total_vehicles_passed": 104, "avg_wait_time_all_sides": 20.6, "throughput": 0.87,
                        "avg_speed": 28.3, "fuel_saved": 1.2, "co2_saved": 3.8, "emergency_overrides": 0},
        }]},
    )

    simulation_id: SimulationId
    timestamp: Timestamp
    intersection_id: SignalId
    signals: list[SignalRecordIn] = Field(min_length=1, max_length=4)
    metrics: IntersectionMetricsIn

    @field_validator("signals")
    @classmethod
    def _one_per_direction(cls, signals: list[SignalRecordIn]) -> list[SignalRecordIn]:
        if len({s["direction"] for s in signals}) != len(signals):
            seen: set[str] = set()
            for s in signals:
                if s["direction"] in seen:
                    raise ValueError(f"direction {s['direction']!r} appears more than once")
                seen.add(s["direction"])
        return signals


RecordList = TypeAdapter(list[IntersectionRecord])


def field_path(loc: tuple) -> str:
    """('signals', 0, 'direction') -> 'signals[0].direction'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "record"


def first_error(exc) -> tuple[str, str]:  # noqa: ANN001 - pydantic.ValidationError
    """(field path, reason) of the first problem pydantic found."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err.get("loc", ()))
    reason = err.get("msg", "invalid")
    if err.get("type") == "json_invalid":
        return "record", f"malformed JSON: {err.get('ctx', {}).get('error', reason)}"
    return field_path(loc), reason
