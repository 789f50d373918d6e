"""Plausibility of measured traffic data: what a source may not send.

A feed that goes silent shows up as age; a feed that sends garbage (a
negative queue, an occupancy above 100 %, NaN from a broken camera zone) must
show up as unhealthy, whichever source it came from. The runtime applies
these checks to every observation before the shield sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .types import LaneState

#: a lane longer than this holds fewer vehicles than this (7.5 m per vehicle on a 1.5 km lane)
MAX_VEHICLES_PER_LANE = 200


def lane_fault(lane: str, s: LaneState) -> str | None:
    """Why one lane's measures cannot be true, or None."""
    for name in ("occupancy", "mean_speed_mps", "wait_s"):
        value = getattr(s, name)
        if not math.isfinite(value):
            return f"lane {lane}: {name} is {value}"
    if not 0 <= s.queue_veh <= MAX_VEHICLES_PER_LANE or not 0 <= s.count_veh <= MAX_VEHICLES_PER_LANE:
        return f"lane {lane}: queue {s.queue_veh} / count {s.count_veh} vehicles out of range"
    if s.queue_veh > s.count_veh:
        return f"lane {lane}: {s.queue_veh} halting of {s.count_veh} vehicles"
    if s.stopped_veh is not None and not s.queue_veh <= s.stopped_veh <= s.count_veh:
        return f"lane {lane}: {s.stopped_veh} stopped vehicles with {s.queue_veh} halting of {s.count_veh}"
    if not 0.0 <= s.occupancy <= 1.0:
        return f"lane {lane}: occupancy {s.occupancy:g} outside 0..1"
    if s.mean_speed_mps < 0 or s.wait_s < 0:
        return f"lane {lane}: negative speed or wait"
    return None


def lanes_fault(lanes: Mapping[str, LaneState]) -> str | None:
    """The first implausible lane measure, or None.

    Every observation of every decision passes here: a lane is first checked in
    one chained comparison that holds exactly when `lane_fault` finds nothing
    (NaN fails every comparison, infinities fail the bounds), and only a lane
    that fails it is asked why. A source may hand one state object to several lanes (SUMO's counts share
    one per value): one that the lane before had is not checked again.
    """
    inf, most = math.inf, MAX_VEHICLES_PER_LANE
    sound = None
    for lane, s in lanes.items():
        if s is sound:
            continue
        if not (0 <= s.queue_veh <= s.count_veh <= most and 0.0 <= s.occupancy <= 1.0
                and 0.0 <= s.mean_speed_mps < inf and 0.0 <= s.wait_s < inf
                and (s.stopped_veh is None or s.queue_veh <= s.stopped_veh <= s.count_veh)):
            why = lane_fault(lane, s)
            if why is not None:
                return why
        sound = s
    return None


def detector_fault(idle_s: Mapping[str, float], counts_veh: Mapping[str, int]) -> str | None:
    """The first implausible detector value (negative or NaN idle time, negative count), or None."""
    for det, value in idle_s.items():
        if not value >= 0:  # catches NaN too
            return f"detector {det}: idle time {value}"
    for det, n in counts_veh.items():
        if not n >= 0:
            return f"detector {det}: count {n}"
    return None
