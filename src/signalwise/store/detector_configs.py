"""A stored run's ATSPM detector configuration: the rows of its `detectors.csv`, kept beside its events.

The detector measures (arrivals on green, split failures, PCD, ...) need to know which phase each detector
channel calls. A run writes that as `detectors.csv`; storing it with the run's hi-res events lets the API
compute those measures for any stored run, each with its own channels, instead of one process-wide file
(`SIGNALWISE_DETECTOR_CONFIG`, which stays for imported controller logs). Rows go in and come out in the
file's columns (`COLUMNS`); reading them as a configuration (aliases, checks, the stop-bar Yellow_Red rows) is
the analytics' job, done exactly as for the file. The rows are keyed to the run (`tables.DetectorConfigRow`),
so forgetting or purging the run removes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: the columns of a row, as `detectors.csv` names them (its `Lane`, for people only, is not stored)
COLUMNS = ("DeviceId", "Phase", "Parameter", "Function", "DistanceToStopbar_m", "ApproachSpeed_mps")


def optional_float(value: object) -> float | None:
    """A distance or speed, None when not given (an empty cell, or the NaN a file's empty cell reads as)."""
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _values(run_id: int, row: Sequence) -> dict:
    device, phase, parameter, function, distance_m, speed_mps = row
    return {"run_id": run_id, "device_id": str(device), "phase": int(phase), "parameter": int(parameter),
            "function": str(function), "distance_to_stopbar_m": optional_float(distance_m),
            "approach_speed_mps": optional_float(speed_mps)}


def store_detector_config(engine: Engine, simulation_id: str, rows: Iterable[Sequence], *,
                          replace: bool = True) -> int:
    """Replace the stored run's detector configuration with `rows` (in `COLUMNS` order), in one transaction;
    returns how many rows were given, repeats counted once. Repeated rows (same device, phase, channel and
    function) are stored once, as reading the file keeps them once. The run must be stored (`register_run`):
    a configuration belongs to a run, and goes with it (ValueError otherwise).

    `replace=False` adds the rows to what is stored, keeping a row already there: a live run's writer writes
    again what it may have written before a lost acknowledgement, and writes rows one at a time when the
    database refuses some, so its writes must be idempotent and must not undo each other."""
    from sqlalchemy import delete, select
    from sqlalchemy.dialects import postgresql, sqlite

    from .tables import DetectorConfigRow, Run

    t, runs = DetectorConfigRow.__table__, Run.__table__
    with engine.begin() as conn:
        run_id = conn.execute(select(runs.c.id).where(runs.c.simulation_id == simulation_id)).scalar()
        if run_id is None:
            raise ValueError(f"no stored run {simulation_id!r}: register the run before its detector configuration")
        values = {}
        for row in rows:
            v = _values(run_id, row)
            values.setdefault((v["device_id"], v["phase"], v["parameter"], v["function"]), v)
        if replace:
            conn.execute(delete(t).where(t.c.run_id == run_id))
        if values:
            insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t)
            conn.execute(insert if replace else insert.on_conflict_do_nothing(), list(values.values()))
    return len(values)


def detector_config_rows(engine: Engine, simulation_id: str) -> list[tuple] | None:
    """The stored run's detector configuration as rows in `COLUMNS` order (sorted by device, phase, channel,
    function), or None when the run has none stored (stored before migration 0014, published without a
    `detectors.csv`, or no such run: imported controller logs have none)."""
    from sqlalchemy import select

    from .tables import DetectorConfigRow, Run

    t, runs = DetectorConfigRow.__table__, Run.__table__
    q = (select(t.c.device_id, t.c.phase, t.c.parameter, t.c.function, t.c.distance_to_stopbar_m,
                t.c.approach_speed_mps)
         .join(runs, runs.c.id == t.c.run_id).where(runs.c.simulation_id == simulation_id)
         .order_by(t.c.device_id, t.c.phase, t.c.parameter, t.c.function))
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    return rows or None
