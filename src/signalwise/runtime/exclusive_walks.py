"""Exclusive pedestrian phases that a controller serves only when the cycle bound forces them.

A phase green to crosswalks only (a "scramble", all crosswalks at once) has no vehicle on its lanes. Max-pressure
weighs vehicles only, so that phase's pressure is 0 and it wins only when every other phase's is below 0: where no
other phase walks its crosswalks, its pedestrians get a walk only when the shield's cycle bound forces the phase,
`cycle_max_s` after it last ran (150 s by default), and never under a profile with no bound. Nothing else in a run
shows it but long pedestrian waits, so the run says it when it starts, and in its warnings.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.types import Intersection
from .profiles import NO_BOUND_S

#: controllers that weigh no pedestrian: a phase serving only crosswalks is never their choice while a vehicle
#: waits. `actuated` calls such a phase every cycle (pedestrian recall); `fixed`, `webster` and `coordinated` play
#: it in their plan
PEDESTRIAN_BLIND = frozenset({"max-pressure"})


def exclusive_walk_phases(inter: Intersection) -> list[tuple[int, list[str]]]:
    """(phase number, its crosswalks) of each phase that serves no vehicle and is the only one to walk those
    crosswalks: a pedestrian there waits for that phase alone."""
    found = []
    for p in inter.phases:
        if p.in_lanes:
            continue
        others = frozenset().union(*(q.green_links for q in inter.phases if q.index != p.index))
        alone = [c.id for c in inter.crosswalks
                 if set(c.link_indices) & p.green_links and not set(c.link_indices) & others]
        if alone:
            found.append((p.number, alone))
    return found


#: a signal's note (its signal_model.json notes, on a run whose controller is in `PEDESTRIAN_BLIND`) on such a phase
EXCLUSIVE_WALK_NOTE = "exclusive pedestrian phase: "


def exclusive_walk_notes(intersections: Iterable[Intersection], controller: str) -> dict[str, list[str]]:
    """Per signal, a note on each exclusive pedestrian phase a pedestrian-blind controller (`PEDESTRIAN_BLIND`)
    serves only under the cycle bound: the phase, its crosswalks, the bound, and what serves it sooner."""
    if controller.split(":", 1)[0] not in PEDESTRIAN_BLIND:
        return {}
    out: dict[str, list[str]] = {}
    for inter in sorted(intersections, key=lambda i: i.id):
        bound_s = inter.timing.cycle_max_s
        if bound_s >= NO_BOUND_S:
            when = (f"and this timing has no cycle bound (cycle_max_s {bound_s:g} s): the phase may never run and "
                    "its pedestrians never get a walk")
        else:
            when = (f"so the phase runs only when the cycle bound forces it, cycle_max_s {bound_s:g} s after it last "
                    "ran: a pedestrian there may wait about that long for a walk")
        for number, crosswalks in exclusive_walk_phases(inter):
            out.setdefault(inter.id, []).append(
                EXCLUSIVE_WALK_NOTE + f"phase {number} walks {', '.join(crosswalks)} and serves no vehicle, and "
                f"{controller} weighs no pedestrian, {when}; to serve them sooner, lower timing.cycle_max_s (one "
                f"signal's: timing.per_intersection.{inter.id}.cycle_max_s), or run -c actuated, which calls a "
                "phase serving only pedestrians every cycle (pedestrian recall), or -c fixed")
    return out


def exclusive_walk_warnings(intersections: Iterable[Intersection], controller: str) -> list[str]:
    """`exclusive_walk_notes` as a run's warnings, one line a phase, naming its signal."""
    return [f"signal {tls!r}: {note}" for tls, notes in exclusive_walk_notes(intersections, controller).items()
            for note in notes]
