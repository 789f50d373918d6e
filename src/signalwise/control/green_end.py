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


def demand_gone(lanes_in: tuple[str, ...], obs: Observation, zone_lanes: tuple[str, ...] = ()) -> bool:
    """Whether every lane in `lanes_in` is observed with no vehicle on it (False when there are none), and no
    vehicle is seen on `zone_lanes`: a zone lane not observed counts as empty, as the controllers that read
    zones count it, while an own stop-line lane not observed is no demand known to be gone."""
    seen = obs.lanes
    return (bool(lanes_in) and all((s := seen.get(lane)) is not None and s.count_veh == 0 for lane in lanes_in)
            and all((s := seen.get(lane)) is None or s.count_veh == 0 for lane in zone_lanes))


def green_end(inter: Intersection, obs: Observation,
              measured_in: Sequence[tuple[str, ...]] | None = None,
              end_lanes: Sequence[tuple[tuple[str, ...], tuple[str, ...]]] | None = None) -> EventCode:
    """The termination of the green showing in `obs` when the controller ends it on `obs`. `measured_in`: per
    phase, the incoming lanes the controller measures (`measured_incoming`); None: each phase's own.
    `end_lanes`: the same as `phase_end_lanes(inter, measured_in)` gives, kept by a controller that ends greens
    often (the lanes are otherwise worked out again at each change)."""
    k = obs.signal.phase_index
    own, zone = end_lanes[k] if end_lanes is not None else _end_lanes(inter, k, measured_in)
    return EventCode.PHASE_GAP_OUT if demand_gone(own, obs, zone) else EventCode.PHASE_FORCE_OFF


def phase_end_lanes(inter: Intersection, measured_in: Sequence[tuple[str, ...]] | None = None,
                    ) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per phase, what `green_end` looks at when that phase's green ends: (its own incoming lanes, the lanes of
    `measured_in` besides them)."""
    return [_end_lanes(inter, k, measured_in) for k in range(len(inter.phases))]


def _end_lanes(inter: Intersection, k: int, measured_in: Sequence[tuple[str, ...]] | None,
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    own = inter.phases[k].in_lanes
    zone = tuple(lane for lane in measured_in[k] if lane not in own) if measured_in is not None else ()
    return own, zone


def measured_incoming(moves_per_phase: Sequence[Sequence[tuple[str, str]]], zones) -> list[tuple[str, ...]]:
    """Per phase, its movements' incoming lanes with the zone lanes `zones` (`MovementZones`) adds to each."""
    return [tuple(dict.fromkeys(lane for a, _ in moves for lane in zones.incoming(a))) for moves in moves_per_phase]
