"""Max-pressure control (Varaiya 2013): serve the phase with the largest pressure.

Pressure of a phase = sum over its movements of (vehicles on the incoming
lane - vehicles on the outgoing lane); `measure` says which vehicles count.
Re-decided every `period_s` once the current green has run `min_hold_s`; the
shield keeps minimum green and clearances, so short periods are safe.

A lane at the stop line can be shorter than the queue it serves (0.9 m on
ingolstadt7's western entry): counted alone it shows no one and its phase is
never served. With `zone_m` > 0 each movement's lanes are measured over a
zone: the incoming lane with the lanes feeding it whose near end lies within
`zone_m` of the stop line, the outgoing lane with the lanes it feeds within
`zone_m` of the junction, never across another signal's stop line (a
detector or camera zone is laid the same way; `sim.lane_zones` says which
lanes, `control.zones` measures them, for the phase-score agent too). A
lane at least `zone_m` long is its own zone. A lane downstream of two
outgoing lanes counts in both their zones.

Every change costs the clearance (yellow + all-red of the phase that ends)
during which nobody moves. With `lost_time_s` > 0 a change is proposed only
when it pays for that: the other phase's pressure, served for `min_hold_s` out of the
`min_hold_s + lost_time_s` a change takes, must beat the current phase's
pressure served all that time (Varaiya's switching cost, in its simplest
form). The plain textbook rule is `lost_time_s = 0`.

With `measure="stopped"` a lane's queue is the vehicles seen halting on it
since they entered it (`LaneState.stopped_veh`), RESCO's own queue
(`traffic_signal.py`, `observe`): a queue still moving off keeps counting
until it has left the lane, so its green is not cut while it discharges,
and a vehicle that arrives on a green without stopping adds nothing.

A change it proposes gaps out (event 4) when the observation shows no
vehicle on the incoming lanes of the phase it ends, and forces it off
(event 6) otherwise (`green_end`).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from ..core.types import Decision, Intersection, Observation
from .base import ControlContext, register
from .green_end import green_end, measured_incoming, phase_end_lanes
from .zones import MIN_LANE_M, MovementZones, zone_per_100m, zone_sum

PERIOD_S = 5.0
#: hold a new green at least this long before re-deciding. Without a hold the
#: controller chases every fluctuation and the clearances eat the capacity (on
#: the built-in corridor, 5 s re-decisions with no hold gave 181 s average
#: delay vs 90 s fixed-time). With the lost-time rule below a shorter hold
#: serves better: 10 s (docs/benchmarks.md has the figures).
MIN_HOLD_S = 10.0
#: the hold of the plain rule (no lost time; what the class alone does, and the learning agent's guide)
PLAIN_HOLD_S = 15.0
#: the default pressure: every vehicle in, halting vehicles out, both per 100 m of the zone. Per metre:
#: whole-lane counts starve an approach whose last lane is short (ingolstadt1's 9 m lanes hold one car
#: while the queue stands upstream: 42 s vs fixed time's 32 s there; per metre, 23 s). Halting out: a
#: vehicle moving away blocks nobody, and counted it cuts the green that has just started to discharge
#: (under the safety profile 0.93x the delay of every vehicle out, geometric mean of 15 networks; worse on
#: ingolstadt1 and `single`; bench/pressure_variants.py --timing safety, bench/random_networks.py)
MEASURE = "density_demand"
#: the default for a lane that feeds several lanes (`SHARED_LANES`): split among them. On a random network
#: whose turn pockets are shorter than a car (netgenerate's), skipping them leaves every queue unseen
SHARED_LANES_DEFAULT = "split"
#: the class's own default, which the tabular agent's state reads (its shipped tables were learned on it)
PLAIN_MEASURE = "density"
#: the default lost time of a change: the yellow + all-red of the phase that ends
LOST_TIME = "clearance"
#: the default measuring zone, metres from the junction: lanes shorter than this are measured with their
#: neighbours up or down the road. ingolstadt7 under the benchmark profile, seed 1: 219 s with each lane
#: alone (its western entry, 0.9 m at the stop line, never served), 31 s with 50 m zones (docs/benchmarks.md)
ZONE_M = 50.0
#: the weight of a permitted movement's pressure (SUMO's 'g': it yields to an opposing flow). 1: weighed as a
#: protected one, so a phase of through movements with permitted lefts always outweighs the protected-left phase
#: of the same lefts, which is then never served
PERMITTED_WEIGHT = 1.0


class MaxPressureController:
    name = "max-pressure"
    wants_detectors = False

    def __init__(self, inter: Intersection, period_s: float = PERIOD_S, measure: str = PLAIN_MEASURE,
                 min_hold_s: float = PLAIN_HOLD_S, ties: str = "hold",
                 lost_time_s: float | Sequence[float] = 0.0,
                 lane_length_m: dict[str, float] | None = None, zone_m: float = 0.0,
                 lane_upstream: dict[str, tuple[tuple[str, float], ...]] | None = None,
                 lane_downstream: dict[str, tuple[tuple[str, float], ...]] | None = None,
                 serving: str = "measure", shared_lanes: str = "skip",
                 lane_upstream_split: dict[str, tuple[tuple[str, float, float], ...]] | None = None,
                 permitted_weight: float = PERMITTED_WEIGHT):
        if measure not in MEASURES:
            raise ValueError(f"max-pressure measure {measure!r}; choose from {', '.join(MEASURES)}")
        if ties not in TIES:
            raise ValueError(f"max-pressure ties {ties!r}; choose from {', '.join(TIES)}")
        if shared_lanes not in SHARED_LANES:
            raise ValueError(f"max-pressure shared_lanes {shared_lanes!r}; choose from {', '.join(SHARED_LANES)}")
        self.shared_lanes = shared_lanes
        self.inter = inter
        self.period_s = period_s
        self.measure = measure
        #: the lane data the runtime reads for it (`ObservationNeed.lane_detail`)
        self.observation = "stopped" if measure == "stopped" else "counts"
        self.min_hold_s = min_hold_s
        self.ties = ties
        #: per phase: what a change away from it costs, seconds (one value: the same for every phase)
        lost = [lost_time_s] * len(inter.phases) if isinstance(lost_time_s, (int, float)) else list(lost_time_s)
        self.lost_time_s = tuple(max(0.0, float(x)) for x in lost)
        #: density: vehicles per 100 m of lane, so a short lane full of queue weighs like a long one full of queue
        self._per_100m = None
        if measure in PER_100M:
            self._per_100m = {lane: 100.0 / max(length, MIN_LANE_M) for lane, length in (lane_length_m or {}).items()}
        self._movements = [tuple((m.in_lane, m.out_lane) for m in p.movements if not m.is_crosswalk)
                           for p in inter.phases]
        if not 0.0 <= permitted_weight <= 1.0:
            raise ValueError(f"max-pressure permitted_weight {permitted_weight!r}: between 0 and 1")
        self.permitted_weight = float(permitted_weight)
        #: per phase, each movement's weight: a permitted one (SUMO's 'g', yielding to an opposing flow)
        #: discharges slower than a protected one, so it weighs `permitted_weight` of its queue
        self._weights = [tuple(self.permitted_weight if p.green_state[m.link_index] == "g" else 1.0
                               for m in p.movements if not m.is_crosswalk) for p in inter.phases]
        #: which vehicles count on the way in and on the way out
        if measure == "stopped":
            self._x_in = self._x_out = _stopped_veh
        else:
            self._x_in = attrgetter("count_veh" if measure in ("count", "demand", "density", "density_demand")
                                    else "queue_veh")
            self._x_out = attrgetter("queue_veh" if measure in ("halting", "demand", "density_demand") else "count_veh")
        if serving not in SERVING:
            raise ValueError(f"max-pressure serving {serving!r}; choose from {', '.join(SERVING)}")
        if serving == "moving" and measure not in ("halting", "queue", "stopped"):
            raise ValueError(f"max-pressure serving 'moving' weighs what measure {measure!r} already counts; "
                             "use it with measure halting, queue or stopped")
        #: the current green's incoming vehicles, when they are counted apart from the measure's
        self._serving_x_in = attrgetter("count_veh") if serving == "moving" else None
        #: unweighted measures: each phase's lanes in and out with how many of its movements use them. The sums
        #: are of whole vehicles, exact in any order, so a lane shared by several movements is read once
        self._lane_terms = [(_summed((a, w) for (a, _), w in zip(moves, ws, strict=True)),
                             _summed((b, w) for (_, b), w in zip(moves, ws, strict=True)))
                            for moves, ws in zip(self._movements, self._weights, strict=True)]
        lengths = lane_length_m or {}
        split = lane_upstream_split if shared_lanes == "split" and lane_upstream_split else None
        zones = MovementZones((move for moves in self._movements for move in moves), zone_m, lane_upstream,
                              lane_downstream, split)
        self.zone_m = zones.zone_m
        #: the lanes read besides the intersection's own (the runtime observes them too)
        self.zone_lane_ids = zones.extra_lane_ids
        #: per phase, the incoming lanes its demand is measured on: an ended green gaps out when they are empty
        self._measured_in = measured_incoming(self._movements, zones)
        self._end_lanes = phase_end_lanes(inter, self._measured_in)
        #: with zones: per phase, each incoming and outgoing zone with its weight (movements using it, per
        #: 100 m of the whole zone under density) and its lanes' shares (None: each lane whole); None when
        #: every lane is its own zone
        self._zone_terms = None
        if self.zone_lane_ids:
            def weight(zone, shares=None):
                return zone_per_100m(zone, lengths, shares) if measure in PER_100M else 1.0
            self._zone_terms = [
                (tuple((zones.incoming(a), n * weight(zones.incoming(a), zones.incoming_shares(a)),
                        zones.incoming_shares(a)) for a, n in ins),
                 tuple((zones.outgoing(b), n * weight(zones.outgoing(b)), None) for b, n in outs))
                for ins, outs in self._lane_terms]
        self._memo_obs: Observation | None = None
        self._memo: list[float] = []

    def pressures(self, obs: Observation) -> list[float]:
        """Pressure per phase. The last observation's answer is kept: the learning agent asks
        up to three times per decision (state, guide, hand-over target)."""
        if obs is self._memo_obs:
            return self._memo
        if self._zone_terms is None and self._per_100m is None:
            out = self._lane_pressures(obs.lanes)
        else:
            out = [self._phase_pressure(obs.lanes, i, self._x_in) for i in range(len(self._movements))]
        self._memo_obs, self._memo = obs, out
        return out

    def _lane_pressures(self, lanes) -> list[float]:
        """Every phase's pressure when each lane is its own zone and counts whole: `_phase_pressure`'s sums, term
        for term in the same order (so the same floats), in one loop. Asked at every decision of every signal,
        a call per phase was a measurable part of the loop's time on grid4x4."""
        x_in, x_out, get = self._x_in, self._x_out, lanes.get
        out = []
        for ins, outs in self._lane_terms:
            total = 0.0
            for a, n in ins:
                la = get(a)
                if la is not None:
                    total += n * x_in(la)
            for b, n in outs:
                lb = get(b)
                if lb is not None:
                    total -= n * x_out(lb)
            out.append(total)
        return out

    def _phase_pressure(self, lanes, phase: int, x_in) -> float:
        """One phase's pressure, its incoming vehicles counted by `x_in` (outgoing by the measure's)."""
        x_out = self._x_out
        total = 0.0
        if self._zone_terms is not None:
            ins, outs = self._zone_terms[phase]
            for zone, w, shares in ins:
                total += w * zone_sum(lanes, zone, x_in, shares)
            for zone, w, _ in outs:
                total -= w * zone_sum(lanes, zone, x_out)
            return total
        per_m = self._per_100m
        if per_m is None:
            ins, outs = self._lane_terms[phase]
            for a, n in ins:
                la = lanes.get(a)
                if la is not None:
                    total += n * x_in(la)
            for b, n in outs:
                lb = lanes.get(b)
                if lb is not None:
                    total -= n * x_out(lb)
            return total
        for (a, b), w in zip(self._movements[phase], self._weights[phase], strict=True):
            la, lb = lanes.get(a), lanes.get(b)
            xa = x_in(la) if la is not None else 0
            xb = x_out(lb) if lb is not None else 0
            total += w * (xa * per_m.get(a, 1.0) - xb * per_m.get(b, 1.0))
        return total

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is None or s.interval != "green" or s.elapsed_s < self.min_hold_s:
            return Decision(self.inter.id, None, self.name)
        pressures = self.pressures(obs)
        current = s.phase_index
        if self._serving_x_in is not None:
            pressures = list(pressures)
            pressures[current] = self._phase_pressure(obs.lanes, current, self._serving_x_in)
        if self.ties == "first":  # the first phase of the largest pressure, even over the current one
            best = max(range(len(pressures)), key=lambda i: pressures[i])
            if best == current:
                return Decision(self.inter.id, None, self.name)
            return Decision(self.inter.id, best, self.name, termination=green_end(self.inter, obs, end_lanes=self._end_lanes))
        best = max(range(len(pressures)), key=lambda i: (pressures[i], i == current))
        if best == current or not self._pays(pressures[best], pressures[current], self.lost_time_s[current]):
            return Decision(self.inter.id, None, self.name)
        return Decision(self.inter.id, best, self.name, termination=green_end(self.inter, obs, end_lanes=self._end_lanes))

    def _pays(self, best: float, current: float, lost_time_s: float) -> bool:
        """Whether changing to a phase of pressure `best` beats holding one of `current`, clearance counted."""
        if best <= current:
            return False
        if lost_time_s <= 0 or best <= 0:
            return best > current
        horizon = max(self.min_hold_s, self.period_s)
        return best * horizon / (horizon + lost_time_s) > current


def _summed(lane_weights) -> tuple[tuple[str, float], ...]:
    """Each lane once with the summed weight of the movements using it (whole vehicles: exact in any order)."""
    out: dict[str, float] = {}
    for lane, w in lane_weights:
        out[lane] = out.get(lane, 0) + w
    return tuple(out.items())


#: count: every vehicle on the lane, in and out; queue: halting vehicles in, every vehicle out;
#: halting: halting vehicles in and out (the plain reference's pressure); demand: every vehicle in, halting
#: vehicles out (vehicles moving away block nobody; a queue downstream does)
#: density: every vehicle in and out, per 100 m of lane (lanes of unknown length count as 100 m)
#: density_demand: every vehicle in, halting vehicles out, per 100 m of lane (the controller's default)
#: stopped: vehicles seen halting on the lane since they entered it, in and out (RESCO's queue; halting vehicles
#: from a source that does not follow vehicles)
MEASURES = ("count", "queue", "halting", "demand", "density", "stopped", "density_demand")
#: the measures weighed per 100 m of their zone
PER_100M = ("density", "density_demand")


def _stopped_veh(lane) -> int:
    """A lane's stopped vehicles, or its halting ones from a source that does not follow vehicles."""
    n = lane.stopped_veh
    return lane.queue_veh if n is None else n


#: skip: a lane that feeds several lanes belongs to no zone upstream; split: it does, each lane it feeds
#: counting its share of its vehicles (`sim.lane_zones.split_zones`), so a turn pocket shorter than its queue
#: sees the queue standing before it
SHARED_LANES = ("skip", "split")
#: hold: a tie with the current phase keeps it; first: the first phase of the largest pressure is served,
#: even when the current phase ties with it (the plain reference's rule)
TIES = ("hold", "first")
#: measure: the current green is weighed as every other phase | moving: its incoming vehicles count moving
#: ones too, so a queue still discharging (no longer halting) keeps its green; only with the halting measures
SERVING = ("measure", "moving")


@register("max-pressure")
def make_max_pressure(inter: Intersection, ctx: ControlContext) -> MaxPressureController:
    o = ctx.options
    lost = o.get("lost_time_s", LOST_TIME)
    if lost == "clearance":  # each phase's own yellow + all-red
        lost = tuple(inter.timing.clearance_of(p) for p in range(len(inter.phases)))
    else:
        lost = float(lost)
    return MaxPressureController(inter, float(o.get("period_s", PERIOD_S)), str(o.get("measure", MEASURE)),
                                 float(o.get("min_hold_s", MIN_HOLD_S)), str(o.get("ties", "hold")), lost,
                                 ctx.lane_length_m, float(o.get("zone_m", ZONE_M)), ctx.lane_upstream,
                                 ctx.lane_downstream, str(o.get("serving", "measure")),
                                 str(o.get("shared_lanes", SHARED_LANES_DEFAULT)), ctx.lane_upstream_split,
                                 float(o.get("permitted_weight", PERMITTED_WEIGHT)))
