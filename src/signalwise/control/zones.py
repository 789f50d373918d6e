"""Measuring a movement over a zone: its lane and the lanes just before or after it, within `zone_m`.

A lane at the stop line can be shorter than one car (0.9 m on ingolstadt7's
western entry): counted alone it never shows the queue that stands on the
lane behind it. A controller that reads lanes (max-pressure, the phase-score
agent) measures each movement's incoming lane with the lanes feeding it
whose near end lies within `zone_m` of the stop line, and its outgoing lane
with the lanes it feeds within `zone_m` of the junction, never across
another signal's stop line (`sim.lane_zones` lists those lanes with their
distances; `ControlContext.lane_upstream` / `lane_downstream` carry them).
A lane with no such neighbour is its own zone; `zone_m` 0 measures every
lane alone. One implementation, so both controllers see the same zones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

#: lanes shorter than one car are counted as one car long (density: per 100 m of the zone)
MIN_LANE_M = 7.5
#: a lane of unknown length counts as this long
UNKNOWN_LANE_M = 100.0

Neighbours = Mapping[str, tuple[tuple[str, float], ...]]


class MovementZones:
    """The lanes measured for each incoming and outgoing lane of some movements.

    `movements`: (incoming lane, outgoing lane) pairs (crosswalks left out);
    `upstream` / `downstream`: each lane's neighbours with their distance
    from the junction, nearest first (`ControlContext.lane_upstream` /
    `lane_downstream`).
    """

    def __init__(self, movements: Iterable[tuple[str, str]], zone_m: float = 0.0,
                 upstream: Neighbours | None = None, downstream: Neighbours | None = None):
        movements = tuple(movements)
        self.zone_m = max(0.0, float(zone_m))
        self._in = _zones((a for a, _ in movements), upstream, self.zone_m)
        self._out = _zones((b for _, b in movements), downstream, self.zone_m)
        #: the lanes read besides the movements' own (a runtime must observe them too)
        self.extra_lane_ids = tuple(dict.fromkeys(lane for z in (*self._in.values(), *self._out.values())
                                                  for lane in z[1:]))

    def incoming(self, lane: str) -> tuple[str, ...]:
        """The lanes measured for incoming lane `lane`, itself first."""
        return self._in.get(lane, (lane,))

    def outgoing(self, lane: str) -> tuple[str, ...]:
        """The lanes measured for outgoing lane `lane`, itself first."""
        return self._out.get(lane, (lane,))


def zone_per_100m(zone: Iterable[str], lane_length_m: Mapping[str, float]) -> float:
    """Density weight of a zone: 100 m over its whole length (at least one car long)."""
    return 100.0 / max(sum(lane_length_m.get(lane, UNKNOWN_LANE_M) for lane in zone), MIN_LANE_M)


def zone_sum(lanes: Mapping, zone: Iterable[str], x: Callable) -> float:
    """Sum of `x(lane state)` over the zone's lanes the observation has (a lane not observed counts 0)."""
    total = 0
    for lane in zone:
        s = lanes.get(lane)
        if s is not None:
            total += x(s)
    return total


def _zones(lanes: Iterable[str], neighbours: Neighbours | None, zone_m: float) -> dict[str, tuple[str, ...]]:
    """The zone (the lane itself first) of each lane that has neighbours within `zone_m`."""
    out: dict[str, tuple[str, ...]] = {}
    if zone_m <= 0 or not neighbours:
        return out
    for lane in lanes:
        near = tuple(other for other, distance_m in neighbours.get(lane, ()) if distance_m < zone_m)
        if near:
            out[lane] = (lane, *near)
    return out
