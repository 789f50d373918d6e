"""How an adaptive controller's change ends the green: gap-out or force-off, for the hi-res log.

A traffic engineer reads event 4 (gap-out) as "this phase's demand was
gone" and event 6 (force-off) as "ended while it still had demand, or by a
plan". Max-pressure and the learning controllers choose a phase by
comparing demands, not by timing gaps, so the log reads what they saw: the
green gaps out when the observation they decided on shows no vehicle,
queued or moving, on any incoming lane of the phase being ended; otherwise
it is forced off. A lane missing from the observation, or a phase with no
vehicle lanes (pedestrians only), shows no demand gone: force-off.

The lanes looked at are those the controller measures the phase's demand
on: its incoming lanes and, where the controller reads a zone (`zone_m`),
the lanes up the road within it. A stop-line lane shorter than a car
(ingolstadt7's 0.9 m entry) holds no queue; the queue stands on the lane
behind it, and an empty stop-line lane alone would read as demand gone.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.types import EventCode, Intersection, Observation


def demand_gone(lanes_in: tuple[str, ...], obs: Observation) -> bool:
    """Whether every lane in `lanes_in` is observed with no vehicle on it (False when there are none)."""
    seen = obs.lanes
    return bool(lanes_in) and all((s := seen.get(lane)) is not None and s.count_veh == 0 for lane in lanes_in)


def green_end(inter: Intersection, obs: Observation,
              measured_in: Sequence[tuple[str, ...]] | None = None) -> EventCode:
    """The termination of the green showing in `obs` when the controller ends it on `obs`. `measured_in`: per
    phase, the incoming lanes the controller measures (`measured_incoming`); None: each phase's own."""
    k = obs.signal.phase_index
    lanes = measured_in[k] if measured_in is not None else inter.phases[k].in_lanes
    return EventCode.PHASE_GAP_OUT if demand_gone(lanes, obs) else EventCode.PHASE_FORCE_OFF


def measured_incoming(moves_per_phase: Sequence[Sequence[tuple[str, str]]], zones) -> list[tuple[str, ...]]:
    """Per phase, its movements' incoming lanes with the zone lanes `zones` (`MovementZones`) adds to each."""
    return [tuple(dict.fromkeys(lane for a, _ in moves for lane in zones.incoming(a))) for moves in moves_per_phase]
