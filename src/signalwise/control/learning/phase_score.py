"""A learned phase-score policy: serve the phase whose weighted features score highest.

Every decision, each phase `a` of the intersection gets a feature vector
`phi(a)` from the lane counts the observation already carries, and the
policy proposes `argmax_a w . phi(a)` (the current phase = hold). The
weights `w` are shared by every phase of every intersection (parameter
sharing, as MPLight and FRAP do): a model is a handful of numbers, fits any
intersection of any network, and is learned by direct policy search on the
evaluation's own measure (`signalwise.training.policy_search`).

Features of phase `a` (sums over its non-crosswalk movements, one term per
movement as in max-pressure's pressure, so a lane that feeds several
movements weighs more; current phase `c`, its green has run `g` seconds):

    in_halt        halting vehicles on the incoming lanes
    out_halt       halting vehicles on the outgoing lanes (spill-back, the
                   downstream neighbour's queue: coordination without messages)
    in_moving      vehicles still moving on the incoming lanes (arriving platoons)
    hold           1 if a == c: what a change costs, in vehicles; it absorbs the
                   clearance (yellow + all-red) the profile imposes, so a model
                   trained under long clearances switches less often
    hold_green_min 1{a == c} * g / 60: how a long green should yield
    hold_moving    1{a == c} * in_moving: a green still carrying a platoon is
                   worth more than its queue says (gap-out, as actuated control)
    hold_halt      1{a == c} * in_halt: a queue behind a green discharges, one
                   behind a red does not; this tells them apart
    hold_young     1{a == c} * max(0, 1 - g / 15 s): a young green is worth
                   keeping (max-pressure's own 15 s hold, as a learnable bonus)
    switch_min_green_min
                   1{a != c} * a's minimum green / 60 s: a phase with a long
                   mandatory green (walk + pedestrian clearance) costs more to start
    switch_clearance_10s
                   1{a != c} * (yellow + all-red) / 10 s: the change's clearance,
                   so one weight vector fits signals and profiles whose clearances differ
    hold_gap       1{a == c} * 1{a detector on c's incoming lanes saw a vehicle
                   within the last 3 s}: actuated control's extension (traffic
                   still crossing the stop bar or the advance loop), which lane
                   counts cannot tell from a queue that has stopped flowing;
                   0 where a signal has no detectors
    switch_red_min 1{a != c} * minutes since a was last seen green (capped):
                   how long its queue has waited, which counts alone do not say
    switch_halt_red
                   1{a != c} * in_halt * minutes since a was last green: about
                   the waiting its queue has piled up (vehicle-minutes), the
                   delay a change would start to pay back
    switch_cut_halt
                   1{a != c} * in_halt over the links c serves and a does not:
                   the queue a change would stop serving. Phases that overlap
                   (a through phase and its through-and-left phase) keep their
                   shared links green through the change; the other features
                   count a phase's links whole and cannot tell a change that
                   stops one approach from one that stops all of them
    switch_cut_moving
                   1{a != c} * in_moving over those links: the platoon it would cut
    switch_new_halt
                   1{a != c} * in_halt over the links a serves and c does not:
                   the queue a change would start serving (in_halt counts the
                   links already green too)
    in_halt_blocked
                   in_halt of each link times how full of standing vehicles
                   its outgoing lane is (0 empty, 1 full, at 7.5 m a car): the
                   queue a green could not move, since its exit has spilled
                   back. in_halt - out_halt is linear and cannot tell a
                   half-full exit from a full one; with a negative weight this
                   discounts the links whose green would be wasted
    hold_load      1{a == c} * in_halt over every link of the intersection: how
                   congested the junction stands. A change loses its clearance
                   for every queue, so with a positive weight a congested
                   junction changes less often (Webster's longer cycle at
                   high saturation)

A model names the features its weights go with (`meta["policy"]["features"]`),
so models made with fewer features keep working as features are added.
`max_pressure_weights(features)` (1, -1, 0, ...) is max-pressure with halting
vehicles as the measure, re-decided every period: a search starts there, so
what it learns is measured as a change from max-pressure.
"""

from __future__ import annotations

import math
from operator import attrgetter

import numpy as np

from ...core.types import Decision, Intersection, Observation
from ..green_end import green_end, measured_incoming
from ..zones import (
    MIN_LANE_M,
    UNKNOWN_LANE_M,
    MovementZones,
    Neighbours,
    SplitNeighbours,
    zone_per_100m,
    zone_sum,
)

#: every feature the policy can weigh, in the order PhaseFeatures computes them
ALL_FEATURES = ("in_halt", "out_halt", "in_moving", "hold", "hold_green_min", "hold_moving", "hold_halt",
                "hold_young", "switch_min_green_min", "switch_clearance_10s", "hold_gap", "switch_red_min",
                "switch_halt_red", "switch_cut_halt", "switch_cut_moving", "switch_new_halt", "in_halt_blocked", "hold_load")
#: what `signalwise train --agent phase-score` searches by default (the ten of docs/learning.md's results;
#: `hold_gap` is named where it is wanted, as the shipped models do)
FEATURES = ALL_FEATURES[:10]
#: the first models' features (models with 7 weights name these)
FEATURES_V1 = ALL_FEATURES[:7]
#: the features that read detectors (a controller weighing one asks the loop for detector idle times)
DETECTOR_FEATURES = ("hold_gap",)
#: the features that need each phase's last green remembered (kept only when one is weighed)
WAITING_FEATURES = ("switch_red_min", "switch_halt_red")
#: the features that split a phase's links into those the current phase serves too and the rest
OVERLAP_FEATURES = ("switch_cut_halt", "switch_cut_moving", "switch_new_halt")
#: the features that read how full each outgoing lane stands (its length, whatever the measure)
SPILLBACK_FEATURES = ("in_halt_blocked",)
#: road a standing car takes: SUMO's default passenger car (5 m) and its gap (2.5 m); a lane holding
#: length / this many halting vehicles is full
STANDING_CAR_M = 7.5
#: a green's age beyond this adds nothing more (keeps a stuck phase from growing a huge feature)
GREEN_CAP_S = 120.0
#: measures: "count" = vehicles; "density" = vehicles per 100 m of their lane (needs lane lengths)
MEASURES = ("count", "density")
#: a lane that feeds several stop-line lanes (before a turn pocket): skip leaves it out of every zone (what a
#: model without the key was trained on); split counts it for each pocket with its share, as max-pressure does
SHARED_LANES = ("skip", "split")
#: halting vehicles of a lane state (what `out_halt` sums over an outgoing zone)
_HALTING = attrgetter("queue_veh")
#: a green younger than this gets the `hold_young` bonus, fading to 0 (max-pressure's MIN_HOLD_S)
YOUNG_GREEN_S = 15.0
#: `hold_gap`: a detector that saw a vehicle within this many seconds extends the green (actuated's passage time)
PASSAGE_S = 3.0


def max_pressure_weights(features=FEATURES) -> tuple[float, ...]:
    """Weights under which the policy is max-pressure on halting vehicles (no hold)."""
    return tuple(1.0 if f == "in_halt" else -1.0 if f == "out_halt" else 0.0 for f in features)


MAX_PRESSURE_WEIGHTS = max_pressure_weights()


class PhaseFeatures:
    """Observation -> (n_phases, len(FEATURES)) array for one intersection.

    `lane_length_m` (measure "density"): vehicles count per 100 m of their
    lane, as max-pressure's default measure, so a 9 m approach lane holding
    one car of a long queue weighs like a long lane full of queue.

    `zone_m` > 0: `in_halt`, `out_halt` and `in_moving` (and the `hold_*`
    terms built from them) are measured over each movement's zone, as
    max-pressure measures its pressure (`control.zones`): the lanes feeding
    a short incoming lane within `zone_m` of the stop line, those a short
    outgoing lane feeds within `zone_m` of the junction (`lane_upstream`,
    `lane_downstream`), per 100 m of the whole zone under density. A lane
    shorter than a car (ingolstadt7's 0.9 m western entry) never shows the
    queue behind it; its zone does. 0 reads each lane alone.

    `lane_upstream_split` (`ControlContext.lane_upstream_split`, a model's
    `shared_lanes: split`): the incoming zones take in the lane before a turn
    pocket, each pocket counting its share of that lane's vehicles and
    length, as max-pressure's default does; None leaves such a lane out.

    `out_lane_length_m`: each outgoing lane's length, for how full it stands (`in_halt_blocked`), whatever
    the measure; a lane it does not name is taken as `UNKNOWN_LANE_M` long.
    """

    def __init__(self, inter: Intersection, features=FEATURES, lane_length_m: dict[str, float] | None = None,
                 zone_m: float = 0.0, lane_upstream: Neighbours | None = None,
                 lane_downstream: Neighbours | None = None, lane_upstream_split: SplitNeighbours | None = None,
                 out_lane_length_m: dict[str, float] | None = None):
        self.inter = inter
        self.n_phases = len(inter.phases)
        features = check_features(features)
        self.columns = [ALL_FEATURES.index(f) for f in features]
        #: detector ids on each phase's incoming lanes, read only when a `DETECTOR_FEATURES` feature is weighed
        self.reads_detectors = any(f in DETECTOR_FEATURES for f in features)
        phase_in_lanes = [{m.in_lane for m in p.movements if not m.is_crosswalk} for p in inter.phases]
        self._phase_dets = [tuple(d.id for d in inter.detectors if d.lane in lanes) for lanes in phase_in_lanes] \
            if self.reads_detectors else [()] * self.n_phases
        self._min_green_min = np.array(inter.timing.min_green_s, float) / 60.0
        #: per current phase: the change interval a switch away from it shows, per 10 s
        self._clearance_10s = [inter.timing.clearance_of(p) / 10.0 for p in range(self.n_phases)]
        self._moves = [tuple((m.in_lane, m.out_lane) for m in p.movements if not m.is_crosswalk)
                       for p in inter.phases]
        #: every vehicle link of any phase, once; `_serves[a, k]` = 1 when phase a's green serves link k. A
        #: link's terms are computed once per observation however many phases serve it
        links = {m.link_index: (m.in_lane, m.out_lane) for p in inter.phases for m in p.movements
                 if not m.is_crosswalk}
        self._link_ids = tuple(sorted(links))
        column = {link: k for k, link in enumerate(self._link_ids)}
        self._serves = np.zeros((self.n_phases, len(self._link_ids)))
        for a, p in enumerate(inter.phases):
            for m in p.movements:
                if not m.is_crosswalk:
                    self._serves[a, column[m.link_index]] += 1.0
        self._overlap = any(f in OVERLAP_FEATURES for f in features)
        #: per link: its outgoing lane and the halting vehicles that fill it, when a spill-back feature is weighed
        self._blocked = None
        if any(f in SPILLBACK_FEATURES for f in features):
            lengths = out_lane_length_m or {}
            self._blocked = tuple((links[k][1], max(lengths.get(links[k][1], UNKNOWN_LANE_M), MIN_LANE_M)
                                   / STANDING_CAR_M) for k in self._link_ids)
        #: per phase: when it was last seen green (its waiting starts there); None until the first observation,
        #: and always when no waiting feature is weighed (the decision loop then skips them)
        self._last_green_s: list[float] | None = None
        self._waits = any(f in WAITING_FEATURES for f in features)
        #: the intersection's own lanes the features read (what `health` checks)
        self.lanes = tuple(dict.fromkeys(lane for mv in self._moves for pair in mv for lane in pair))
        zones = MovementZones((move for moves in self._moves for move in moves), zone_m, lane_upstream,
                              lane_downstream, lane_upstream_split or None)
        self.zone_m = zones.zone_m
        #: the lanes read besides the intersection's own (the runtime observes them too)
        self.zone_lane_ids = zones.extra_lane_ids
        #: per phase, the incoming lanes its demand is measured on: an ended green gaps out when they are empty
        self.measured_in = measured_incoming(self._moves, zones)

        def weight(zone, shares=None):
            return 1.0 if lane_length_m is None else zone_per_100m(zone, lane_length_m, shares)

        def incoming(lane):
            zone, shares = zones.incoming(lane), zones.incoming_shares(lane)
            return tuple(zip(zone, shares or (1.0,) * len(zone), strict=True)), weight(zone, shares)

        #: per link: (incoming zone as (lane, share) pairs, its weight, outgoing zone, its weight)
        self._terms = tuple((*incoming(links[k][0]), zones.outgoing(links[k][1]), weight(zones.outgoing(links[k][1])))
                            for k in self._link_ids)

    def matrix(self, obs: Observation) -> np.ndarray:
        """(n_phases, len(features)) for this observation."""
        return self._all(obs)[:, self.columns]

    def _all(self, obs: Observation) -> np.ndarray:
        lanes = obs.lanes
        x = np.zeros((self.n_phases, len(ALL_FEATURES)))
        per_link = np.zeros((3, len(self._terms)))  # halting in, halting out, moving in: per link
        for k, (zone_in, k_in, zone_out, k_out) in enumerate(self._terms):
            halt = moving = 0.0
            for lane, share in zone_in:
                li = lanes.get(lane)
                if li is not None:
                    halt += share * li.queue_veh
                    moving += share * max(0, li.count_veh - li.queue_veh)
            per_link[0, k] = k_in * halt
            per_link[1, k] = k_out * zone_sum(lanes, zone_out, _HALTING)
            per_link[2, k] = k_in * moving
        x[:, :3] = (self._serves @ per_link.T)
        if self._blocked is not None:
            fill = np.zeros(len(self._terms))
            for k, (out_lane, full_veh) in enumerate(self._blocked):
                lo = lanes.get(out_lane)
                if lo is not None:
                    fill[k] = min(1.0, lo.queue_veh / full_veh)
            x[:, 16] = self._serves @ (per_link[0] * fill)
        s = obs.signal
        if s is not None:
            c = s.phase_index
            x[c, 3] = 1.0
            x[c, 4] = min(s.elapsed_s, GREEN_CAP_S) / 60.0
            x[c, 5] = x[c, 2]
            x[c, 6] = x[c, 0]
            x[c, 7] = max(0.0, 1.0 - s.elapsed_s / YOUNG_GREEN_S)
            x[:, 8] = self._min_green_min
            x[:, 9] = self._clearance_10s[c]
            x[c, 8] = x[c, 9] = 0.0
            idle = obs.detector_idle_s
            x[c, 10] = float(any(idle.get(d, GREEN_CAP_S) < PASSAGE_S for d in self._phase_dets[c]))
            x[c, 17] = per_link[0].sum()
            if self._waits:
                last = self._last_green_s
                if last is None:  # nothing waited before the first look
                    last = self._last_green_s = [obs.time_s] * self.n_phases
                last[c] = obs.time_s  # green, or being cleared: its waiting starts now, so c's terms are 0
                red_min = np.minimum(obs.time_s - np.array(last), GREEN_CAP_S) / 60.0
                x[:, 11] = red_min
                x[:, 12] = x[:, 0] * red_min
            if self._overlap:
                current = self._serves[c] > 0
                kept = self._serves * current  # each phase's links the current phase serves too
                cut_links = per_link[[0, 2]] * current  # halting and moving on the current phase's links
                x[:, 13] = cut_links[0].sum() - kept @ per_link[0]
                x[:, 14] = cut_links[1].sum() - kept @ per_link[2]
                x[:, 15] = x[:, 0] - kept @ per_link[0]
                x[c, 13:16] = 0.0
        return x

    def health(self, obs: Observation, max_age_s: float = 10.0) -> float:
        """Share of the lanes the features read that the observation has; 0 for stale or unhealthy data."""
        if not obs.healthy or obs.age_s > max_age_s or obs.signal is None:
            return 0.0
        if not self.lanes:
            return 1.0
        have = obs.lanes
        return sum(1 for lane in self.lanes if lane in have) / len(self.lanes)


def check_features(features) -> tuple[str, ...]:
    """Feature names this signalwise knows, without repeats; ValueError (one line) otherwise."""
    features = tuple(features)
    unknown = [f for f in features if f not in ALL_FEATURES]
    if unknown or len(set(features)) != len(features) or not features:
        raise ValueError(f"unknown or repeated phase-score feature(s) {', '.join(unknown) or list(features)} "
                         f"(known: {', '.join(ALL_FEATURES)})")
    return features


def check_weights(weights, features=FEATURES) -> np.ndarray:
    """The weights as a float array, one per feature; ValueError (one line) otherwise."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(features),) or not np.all(np.isfinite(w)):
        raise ValueError(f"a phase-score policy over {', '.join(features)} has {len(features)} finite weights, "
                         f"got {[float(x) for x in np.ravel(w)]}")
    return w


def check_options(measure, shared_lanes, period_s) -> None:
    """A policy's measure, shared-lane rule and decision period; ValueError (one line) for one that cannot run."""
    if measure not in MEASURES:
        raise ValueError(f"phase-score measure {measure!r}; choose from {', '.join(MEASURES)}")
    if shared_lanes not in SHARED_LANES:
        raise ValueError(f"phase-score shared_lanes {shared_lanes!r}; choose from {', '.join(SHARED_LANES)}")
    if not (isinstance(period_s, int | float) and math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"phase-score period_s must be a positive number of seconds, not {period_s!r}")


class PhaseScoreController:
    """Proposes the best-scoring phase every `period_s` of green; the shield decides.

    Confidence is the observation's health: the weights apply to every state,
    so there is no unseen state to distrust, only missing or stale data, and
    then the shield's Webster fallback runs. Health is over the
    intersection's own lanes; a zone lane not observed counts as empty, as
    for max-pressure. A change ends the green as max-pressure's do: a
    gap-out when the phase has no vehicle on its incoming lanes, else a
    force-off (`green_end`).
    """

    name = "ql"
    observation = "counts"
    wants_detectors = False

    def __init__(self, inter: Intersection, weights, period_s: float = 5.0, label: str = "ql",
                 features=FEATURES, measure: str = "count", lane_length_m: dict[str, float] | None = None,
                 zone_m: float = 0.0, lane_upstream: Neighbours | None = None,
                 lane_downstream: Neighbours | None = None, shared_lanes: str = "skip",
                 lane_upstream_split: SplitNeighbours | None = None):
        check_options(measure, shared_lanes, period_s)
        self.inter = inter
        self.features = PhaseFeatures(inter, features, (lane_length_m or {}) if measure == "density" else None,
                                      zone_m, lane_upstream, lane_downstream,
                                      lane_upstream_split if shared_lanes == "split" else None,
                                      out_lane_length_m=lane_length_m)
        #: the zone lanes the features read besides the intersection's own: the runtime observes them too
        self.zone_lane_ids = self.features.zone_lane_ids
        self.weights = check_weights(weights, tuple(features))
        #: detector idle times are read only for a detector feature that weighs something
        self.wants_detectors = any(w != 0 for f, w in zip(features, self.weights, strict=True) if f in DETECTOR_FEATURES)
        self.period_s = float(period_s)
        self.name = label
        self.decisions = 0

    def scores(self, obs: Observation) -> np.ndarray:
        return self.features.matrix(obs) @ self.weights

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        health = self.features.health(obs)
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name, health)
        self.decisions += 1
        score = self.scores(obs)
        best = int(np.argmax(score))
        if score[best] <= score[s.phase_index]:  # ties hold: a change always costs a clearance
            best = s.phase_index
        if best == s.phase_index:
            return Decision(self.inter.id, None, self.name, health)
        return Decision(self.inter.id, best, self.name, health, green_end(self.inter, obs, self.features.measured_in))
