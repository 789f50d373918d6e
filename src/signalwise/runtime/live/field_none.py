"""Running beside a real intersection: no simulator, observations from the feeds, a shadow sink.

`--field none`: the loop's clock is its own (paced against the wall clock by
the runtime), every observation comes from the detector feeds and the run's
cameras (`cameras.FeedsAndCameras`), and decisions
go to the shadow sink, which records what would have been done and actuates
nothing. This is how an agency trials adaptive control beside its existing
timing; a field-controller adapter (NTCIP 1202) will be another sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...core.types import EmergencyApproach, Intersection, Observation, ObservationNeed
from ...sim.lane_zones import ZONE_REACH_M, lane_zones, split_zones


class ShadowSink:
    """Takes the shield's signal states and actuates nothing; the loop's record keeps them."""

    def __init__(self):
        self.commands = 0
        self.states: dict[str, str] = {}

    def set_signal_state(self, tls_id: str, state: str) -> None:
        self.commands += 1
        self.states[tls_id] = state


@dataclass(frozen=True)
class LaneNetwork:
    """The network's lanes as the loop reads them at start-up, when no simulator loaded the network."""

    shapes: Mapping[str, list[tuple[float, float]]] = field(default_factory=dict)
    length_m: Mapping[str, float] = field(default_factory=dict)
    successors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lane -> the lanes it feeds
    signal_lanes: frozenset[str] = frozenset()  # lanes ending at a signal's stop line


class FeedField:
    """A field with no simulator: a clock advanced by the loop, and the feeds as the only source."""

    def __init__(self, feed, step_length_s: float, start_s: float, network: LaneNetwork | None = None):
        self.feed = feed
        self.step_length_s = step_length_s
        self._t = start_s
        self.network = network or LaneNetwork()
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
        return False  # a detector feed carries no vehicles; preemption calls come from the preemption input
        # (`preempt.WithPreemptCalls` wraps the loop's source)

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        return {}

    def set_signal_state(self, tls_id: str, state: str) -> None:
        pass  # nothing to actuate: the sink is the shadow sink

    def lane_shapes(self, lanes: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
        """Each lane's centre line in the network file; a lane it does not have points south."""
        return {lane: self.network.shapes.get(lane, [(0.0, 0.0), (0.0, -1.0)]) for lane in lanes}

    def lane_length_m(self, lane: str) -> float:
        """The lane's length in the network file (max-pressure measures per 100 m of lane)."""
        try:
            return self.network.length_m[lane]
        except KeyError:
            raise KeyError(f"{lane!r} is not a lane of this network") from None

    def lane_zones(self, in_lanes: Iterable[str], out_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """As `SumoBackend.lane_zones`, from the network file: the same zones a SUMO field gives."""
        net = self.network
        return lane_zones(in_lanes, out_lanes, net.successors, net.signal_lanes, self.lane_length_m, reach_m)

    def lane_split_zones(self, in_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """As `SumoBackend.lane_split_zones`, from the network file."""
        net = self.network
        return split_zones(in_lanes, net.successors, net.signal_lanes, self.lane_length_m, reach_m)

    def halting_by_lane(self, lanes: Iterable[str]) -> dict[str, int]:
        """The lanes whose queue the feeds (and cameras) know now; a lane with no usable data is left out (the
        snapshot says "no data" for it, not an empty lane)."""
        lanes = tuple(lanes)
        estimate = getattr(self.feed, "lane_queues", None)
        known = estimate(lanes) if estimate is not None else {}
        return {lane: int(known[lane]) for lane in lanes if known.get(lane) is not None}

    def halting_veh(self, lanes: Iterable[str]) -> int:
        return sum(self.halting_by_lane(lanes).values())

    def save_state(self, path) -> None:
        return None  # nothing to save: the feeds are the state

    def close(self) -> None:
        pass


def read_lane_network(net_file) -> LaneNetwork:
    """Every lane's shape (for approach directions), length and successors, and the lanes ending at a
    signal, read once from the network file: what a SUMO field answers, without a simulator.

    Internal lanes and pedestrian connections are left out (sumolib's defaults): SUMO also links sidewalks
    to walking areas, but no road lane's zone reaches either.
    """
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    lanes = [lane for edge in net.getEdges() for lane in edge.getLanes()]
    return LaneNetwork(
        shapes={lane.getID(): list(lane.getShape()) for lane in lanes},
        length_m={lane.getID(): lane.getLength() for lane in lanes},
        successors={lane.getID(): tuple(c.getToLane().getID() for c in lane.getOutgoing()) for lane in lanes},
        signal_lanes=frozenset(c[0].getID() for tls in net.getTrafficLights() for c in tls.getConnections()))
