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

from collections.abc import Callable, Iterable, Mapping, Sequence

#: lanes shorter than one car are counted as one car long (density: per 100 m of the zone)
MIN_LANE_M = 7.5
#: a lane of unknown length counts as this long
UNKNOWN_LANE_M = 100.0

Neighbours = Mapping[str, tuple[tuple[str, float], ...]]
#: per lane: (lane, distance from the junction, share of its vehicles counted), as `sim.lane_zones.split_zones`
SplitNeighbours = Mapping[str, tuple[tuple[str, float, float], ...]]


class MovementZones:
    """The lanes measured for each incoming and outgoing lane of some movements.

    `movements`: (incoming lane, outgoing lane) pairs (crosswalks left out);
    `upstream` / `downstream`: each lane's neighbours with their distance
    from the junction, nearest first (`ControlContext.lane_upstream` /
    `lane_downstream`).
    """

    def __init__(self, movements: Iterable[tuple[str, str]], zone_m: float = 0.0,
                 upstream: Neighbours | None = None, downstream: Neighbours | None = None,
                 upstream_split: SplitNeighbours | None = None):
        movements = tuple(movements)
        self.zone_m = max(0.0, float(zone_m))
        #: per incoming lane whose zone holds a shared lane: the share of each zone lane's vehicles counted
        self._in_shares: dict[str, tuple[float, ...]] = {}
        if upstream_split is not None:
            self._in = {}
            for lane in dict.fromkeys(a for a, _ in movements):
                near = [(other, share) for other, distance_m, share in upstream_split.get(lane, ())
                        if distance_m < self.zone_m]
                if near:
                    self._in[lane] = (lane, *(other for other, _ in near))
                    if any(share < 1.0 for _, share in near):
                        self._in_shares[lane] = (1.0, *(share for _, share in near))
        else:
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

    def incoming_shares(self, lane: str) -> tuple[float, ...] | None:
        """The share of each lane of `incoming(lane)` counted for it; None when every lane counts whole."""
        return self._in_shares.get(lane)


def zone_per_100m(zone: Iterable[str], lane_length_m: Mapping[str, float],
                  shares: Sequence[float] | None = None) -> float:
    """Density weight of a zone: 100 m over its whole length (at least one car long); a shared lane counts
    its share of its length, as it counts its share of its vehicles."""
    if shares is None:
        length_m = sum(lane_length_m.get(lane, UNKNOWN_LANE_M) for lane in zone)
    else:
        length_m = sum(lane_length_m.get(lane, UNKNOWN_LANE_M) * w for lane, w in zip(zone, shares, strict=True))
    return 100.0 / max(length_m, MIN_LANE_M)


def zone_sum(lanes: Mapping, zone: Iterable[str], x: Callable, shares: Sequence[float] | None = None) -> float:
    """Sum of `x(lane state)` over the zone's lanes the observation has (a lane not observed counts 0), each
    times its share when `shares` are given."""
    total = 0
    if shares is None:
        for lane in zone:
            s = lanes.get(lane)
            if s is not None:
                total += x(s)
        return total
    for lane, w in zip(zone, shares, strict=True):
        s = lanes.get(lane)
        if s is not None:
            total += w * x(s)
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
