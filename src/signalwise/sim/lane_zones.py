"""The lanes a movement's queue really stands on: its lane and the lanes just before or after it.

A signal's incoming lane can be shorter than one car (ingolstadt7's western
entry ends in 0.9 m lanes; ingolstadt21 has dozens under 20 m). Counted
alone it shows nothing while the queue stands on the lane behind it, so a
pressure rule never serves it. A detection zone is measured from the stop
line back, not per lane: these functions list, for each incoming lane, the
lanes that feed it within a reach (and for each outgoing lane the lanes it
feeds), never across another signal's stop line, each with its distance from
the junction. The controller picks how far to look.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set

#: how far the zones are listed; a controller looks at most this far
ZONE_REACH_M = 200.0


def zone_lanes(lane: str, neighbours: Callable[[str], Iterable[str]], length_m: Callable[[str], float],
               reach_m: float = ZONE_REACH_M) -> tuple[tuple[str, float], ...]:
    """Lanes reached from `lane` through `neighbours` (predecessors upstream, successors downstream; the
    caller leaves out steps across another signal's stop line), each with its distance from the junction
    (where its near end is), nearest first.

    `lane` itself is at distance 0 and is not listed. A lane is listed when its near end lies within
    `reach_m`, and once.
    """
    found: dict[str, float] = {}
    frontier = [(lane, length_m(lane))]
    while frontier:
        here, far_end_m = frontier.pop(0)
        if far_end_m >= reach_m:
            continue
        for nxt in neighbours(here):
            if nxt == lane or nxt in found:
                continue
            found[nxt] = far_end_m
            frontier.append((nxt, far_end_m + length_m(nxt)))
    return tuple(sorted(found.items(), key=lambda kv: (kv[1], kv[0])))


def lane_zones(in_lanes: Iterable[str], out_lanes: Iterable[str], successors: Mapping[str, Iterable[str]],
               signal_lanes: Set[str], length_m: Callable[[str], float], reach_m: float = ZONE_REACH_M,
               ) -> tuple[dict[str, tuple[tuple[str, float], ...]], dict[str, tuple[tuple[str, float], ...]]]:
    """Each incoming lane's upstream zone and each outgoing lane's downstream zone (see `zone_lanes`);
    a lane between two signals is both, with a zone for each.

    `successors` maps every lane to the lanes it feeds; `signal_lanes` are the lanes that end at a
    signal's stop line: the upstream walk does not enter one, the downstream walk does not leave one.
    Nor does the upstream walk enter a lane that feeds several lanes: its vehicles have not yet sorted
    themselves into movements, and counted in each zone they would push the phases with the most of
    them (on ingolstadt21 a single lane feeding a through lane and a turning lane held the through
    phase green while the turning car at its head, which only the other phase serves, blocked it).
    """
    preds: dict[str, list[str]] = {}
    for lane, nexts in successors.items():
        for nxt in nexts:
            preds.setdefault(nxt, []).append(lane)
    upstream = lambda x: [p for p in preds.get(x, ()) if p not in signal_lanes  # noqa: E731
                          and len(set(successors[p])) == 1]
    downstream = lambda x: () if x in signal_lanes else successors.get(x, ())  # noqa: E731
    return ({lane: zone_lanes(lane, upstream, length_m, reach_m) for lane in in_lanes},
            {lane: zone_lanes(lane, downstream, length_m, reach_m) for lane in out_lanes})


def split_zones(in_lanes: Iterable[str], successors: Mapping[str, Iterable[str]], signal_lanes: Set[str],
                length_m: Callable[[str], float], reach_m: float = ZONE_REACH_M,
                ) -> dict[str, tuple[tuple[str, float, float], ...]]:
    """Each incoming lane's upstream zone, pocket splits included, each lane with its distance from the
    junction and its share: the fraction of its vehicles counted for this lane.

    `lane_zones` stops at a lane that feeds several lanes. Where the lanes at the stop line are turn pockets
    shorter than a car (netgenerate's pockets, many OSM imports), the queue stands on the lane before them,
    which feeds the pocket and the through lane, so each pocket shows one car at most and the queue is
    unseen. Here a lane whose every successor ends at a signal's stop line is entered too, and feeding k of
    them it gives each 1/k of its vehicles (their turns are unknown to a detector); the lanes behind it,
    walked as `lane_zones` walks, keep that share. Such a lane can only feed the stop line itself, so only
    the first step meets one. A lane that also feeds a road without a signal is a fork, not a pocket
    split: some of its vehicles never come here (on ingolstadt1, counted, it added vehicles bound elsewhere to
    the side street's pressure), so it stays out. Nearest first.
    """
    fan = {lane: len(set(nexts)) for lane, nexts in successors.items()}
    preds: dict[str, list[str]] = {}
    for lane, nexts in successors.items():
        for nxt in set(nexts):
            preds.setdefault(nxt, []).append(lane)
    behind = lambda x: [p for p in preds.get(x, ()) if p not in signal_lanes and fan[p] == 1]  # noqa: E731
    out: dict[str, tuple[tuple[str, float, float], ...]] = {}
    for lane in in_lanes:
        stop_m = length_m(lane)
        zone: list[tuple[str, float, float]] = []
        for p in preds.get(lane, ()) if stop_m < reach_m else ():
            if p in signal_lanes or (fan[p] > 1 and not all(n in signal_lanes for n in successors[p])):
                continue
            share = 1.0 / fan[p]
            zone.append((p, stop_m, share))
            zone.extend((q, stop_m + d, share) for q, d in zone_lanes(p, behind, length_m, reach_m - stop_m))
        out[lane] = tuple(sorted(zone, key=lambda t: (t[1], t[0])))
    return out


def listed_lanes(*sides: Mapping[str, tuple[tuple[str, float], ...]]) -> set[str]:
    """Every lane some zone of `sides` (the upstream and downstream halves of `lane_zones`) lists."""
    return {lane for side in sides for zone in side.values() for lane, _ in zone}


def signal_neighbours(lanes: Mapping[str, tuple[Iterable[str], Iterable[str]]],
                      downstream: Mapping[str, tuple[tuple[str, float], ...]]) -> dict[str, tuple[str, ...]]:
    """Each signal's neighbours: the signals whose approaches its outgoing lanes reach (the lane itself or
    its downstream zone, so within the zones' reach), and the signals whose outgoing lanes reach its own.

    `lanes` maps each signal to its (incoming, outgoing) lanes; `downstream` is `lane_zones`' second half.
    Why: a signal that holds a green can push a queue onto the next signal's approach, and one that holds
    a red can back a queue up into the signal before it; a per-signal search that counts both sees it.
    """
    approach_of: dict[str, set[str]] = {}
    for tls, (in_lanes, _) in lanes.items():
        for lane in in_lanes:
            approach_of.setdefault(lane, set()).add(tls)
    found: dict[str, set[str]] = {tls: set() for tls in lanes}
    for tls, (_, out_lanes) in lanes.items():
        for out in out_lanes:
            for lane in (out, *(zl for zl, _ in downstream.get(out, ()))):
                for other in approach_of.get(lane, ()):
                    if other != tls:
                        found[tls].add(other)
                        found[other].add(tls)
    return {tls: tuple(sorted(near)) for tls, near in sorted(found.items())}
