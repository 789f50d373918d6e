"""The ATSPM detector configuration of a run's signals: what `detectors.csv` holds.

ATSPM measures (arrivals on green, split failures, the PCD) need to know
which phase each detector channel calls. Offline runs, live runs and the live
dashboard's per-signal charts all describe their detectors with this one rule,
so `signalwise atspm --run DIR` reads any run directory the same way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ..core.types import Intersection

COLUMNS = ("DeviceId", "Phase", "Parameter", "Function", "DistanceToStopbar_m", "ApproachSpeed_mps", "Lane")


def primary_phase(inter: Intersection, lane: str) -> int:
    """The phase that gives this lane a protected green first, else a permitted one (0: none serves it)."""
    permitted = None
    for p in inter.phases:
        chars = {p.green_state[m.link_index] for m in p.movements if m.in_lane == lane}
        if "G" in chars:
            return p.number
        if "g" in chars and permitted is None:
            permitted = p.number
    return permitted or 0


def lane_speed_mps(inter: Intersection, lane: str) -> float:
    """The speed ATSPM projects this lane's advance arrivals to the stop bar at: the lane's own speed limit, as its
    movements carry it (a cyclist's speed on a lane only bicycles use, `sim.signal_model.approach_speed_mps`);
    the signal's approach speed (its fastest lane) when they carry none."""
    return next((m.approach_speed_mps for m in inter.movements
                 if m.in_lane == lane and m.approach_speed_mps is not None), inter.approach_speed_mps)


def detector_rows(intersections: Iterable[Intersection]) -> list[tuple]:
    """One row per detector, in `COLUMNS` order: DeviceId is the signal, Parameter its channel."""
    return [(inter.id, primary_phase(inter, det.lane), det.channel,
             "Presence" if det.kind == "stopbar" else "Advance", det.distance_to_stopbar_m,
             round(lane_speed_mps(inter, det.lane), 2), det.lane)
            for inter in intersections for det in inter.detectors]


def write_detector_config(path: Path, intersections: Iterable[Intersection]) -> None:
    with open(path, "w", newline="") as fh:
        write_detector_csv(fh, intersections)


def write_detector_csv(fh: TextIO, intersections: Iterable[Intersection]) -> None:
    """`detectors.csv` into an open text stream: a run's file and `signalwise detectors` write it the same way."""
    w = csv.writer(fh)
    w.writerow(COLUMNS)
    w.writerows(detector_rows(intersections))
