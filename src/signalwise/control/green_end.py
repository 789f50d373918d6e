"""How an adaptive controller's change ends the green: gap-out or force-off, for the hi-res log.

A traffic engineer reads event 4 (gap-out) as "this phase's demand was
gone" and event 6 (force-off) as "ended while it still had demand, or by a
plan". Max-pressure and the learning controllers choose a phase by
comparing demands, not by timing gaps, so the log reads what they saw: the
green gaps out when the observation they decided on shows no vehicle,
queued or moving, on any incoming lane of the phase being ended; otherwise
it is forced off. A lane missing from the observation, or a phase with no
vehicle lanes (pedestrians only), shows no demand gone: force-off.

Only the phase's own incoming lanes count (those at its stop line), not the
lanes upstream that a measuring zone adds: a gap-out means the approach at
the stop line is empty.
"""

from __future__ import annotations

from ..core.types import EventCode, Intersection, Observation


def demand_gone(lanes_in: tuple[str, ...], obs: Observation) -> bool:
    """Whether every lane in `lanes_in` is observed with no vehicle on it (False when there are none)."""
    seen = obs.lanes
    return bool(lanes_in) and all((s := seen.get(lane)) is not None and s.count_veh == 0 for lane in lanes_in)


def green_end(inter: Intersection, obs: Observation) -> EventCode:
    """The termination of the green showing in `obs` when the controller ends it on `obs`."""
    phase = inter.phases[obs.signal.phase_index]
    return EventCode.PHASE_GAP_OUT if demand_gone(phase.in_lanes, obs) else EventCode.PHASE_FORCE_OFF
