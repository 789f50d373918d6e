"""Running beside a real intersection: no simulator, observations from the feeds, a shadow sink.

`--field none`: the loop's clock is its own (paced against the wall clock by
the runtime), every observation comes from the detector feeds, and decisions
go to the shadow sink, which records what would have been done and actuates
nothing. This is how an agency trials adaptive control beside its existing
timing; a field-controller adapter (NTCIP 1202) will be another sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...core.types import EmergencyApproach, Intersection, Observation, ObservationNeed


class ShadowSink:
    """Takes the shield's signal states and actuates nothing; the loop's record keeps them."""

    def __init__(self):
        self.commands = 0
        self.states: dict[str, str] = {}

    def set_signal_state(self, tls_id: str, state: str) -> None:
        self.commands += 1
        self.states[tls_id] = state


class FeedField:
    """A field with no simulator: a clock advanced by the loop, and the feeds as the only source."""

    def __init__(self, feed, step_length_s: float, start_s: float, lane_shapes: Mapping[str, list] | None = None):
        self.feed = feed
        self.step_length_s = step_length_s
        self._t = start_s
        self._lane_shapes = dict(lane_shapes or {})
        self.emergency_seen: set[str] = set()
        self.pid = None

    def step(self) -> float:
        self._t += self.step_length_s
        return self._t

    def time_s(self) -> float:
        return self._t

    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        return self.feed.observe(inter, time_s, need)

    @property
    def emergency_active(self) -> bool:
        return False  # a detector feed carries no vehicles; preemption comes from a preempt input later

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        return {}

    def set_signal_state(self, tls_id: str, state: str) -> None:
        pass  # nothing to actuate: the sink is the shadow sink

    def lane_shape(self, lane: str) -> list[tuple[float, float]]:
        return self._lane_shapes.get(lane, [(0.0, 0.0), (0.0, -1.0)])

    def halting_by_lane(self, lanes: Iterable[str]) -> dict[str, int]:
        lanes = tuple(lanes)
        estimate = getattr(self.feed, "lane_queues", None)
        known = estimate(lanes) if estimate is not None else {}
        return {lane: int(known.get(lane, 0)) for lane in lanes}

    def halting_veh(self, lanes: Iterable[str]) -> int:
        return sum(self.halting_by_lane(lanes).values())

    def save_state(self, path) -> None:
        return None  # nothing to save: the feeds are the state

    def close(self) -> None:
        pass


def lane_shapes_of(net_file, lanes: Iterable[str]) -> dict[str, list]:
    """Lane shapes from the network file (for approach directions and the map), without a simulator."""
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    out = {}
    for lane in lanes:
        try:
            out[lane] = list(net.getLane(lane).getShape())
        except (KeyError, ValueError):
            continue
    return out
