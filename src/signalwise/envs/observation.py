"""What an agent sees: one intersection's signal and queues as a vector in [0, 1].

Layout for an intersection with n phases (length 3n + 2, float32):

    [0, n)        phase one-hot     the green phase, or the phase being cleared
    n             clearing          1 during yellow and during all-red (one flag for both), else 0
    n + 1         time in interval  seconds in the current interval / that phase's maximum green (120 s when
                                    it has none), clipped to 1; it restarts at 0 when green turns yellow and
                                    again when yellow turns all-red
    [n+2, 2n+2)   queue per group   halting vehicles on the lanes phase i serves (its lane group)
                                    / the group's storage, clipped to 1
    [2n+2, 3n+2)  count per group   vehicles on those lanes / the group's storage, clipped to 1

So during a clearance the vector says that a change is under way, but not
where to, nor whether it is in yellow or all-red. With `clearance=True`
(the environments' `clearance_features=True`) three parts follow, length
4n + 4:

    [3n+2, 4n+2)  next phase one-hot  the phase the yellow and all-red lead to; all 0 in green
    4n + 2        yellow              1 during yellow, else 0 (all-red: clearing 1, yellow 0)
    4n + 3        clearance left      seconds until the next green starts / the intersection's longest
                                      change interval (yellow + all-red, each in whole simulation steps as
                                      the shield runs them); 0 in green

A group's storage is its lanes' total length over 7.5 m (a 5 m car plus
SUMO's 2.5 m minimum gap): the vehicles it holds when jammed. Why: it puts
queues of short and long approaches on one scale without a per-scenario
constant, and keeps every value inside the Box. Lane groups are the ones the
tabular agent uses (`StateFeatures.groups`): per phase, not per lane, so the
vector grows with the number of phases.

A controller builds the same vector from what a run gives it, to deploy an
environment-trained policy as a `py:` controller (docs/learning.md):
`PhaseQueueObservation(inter, ctx.lane_length_m).encode(obs.signal, obs.lanes)`
in a factory `make(inter, ctx)` whose controller reads `observation = "counts"`
(or "stopped" or "full": each has the queue and count).

The benchmark and reference profiles have no maximum green (a day,
`runtime.profiles.NO_BOUND_S`): divided by it, the time in interval would
read 0 for ever. A phase without a maximum is timed against
`UNBOUNDED_SCALE_S` instead, 120 s (twelve of the benchmark's 10 s
decisions; the safety profile's default maximum green is 60 s): a green
longer than that reads 1.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..core.timing import ceil_to_step
from ..core.types import Intersection, LaneState, SignalStatus
from ..runtime.profiles import NO_BOUND_S

JAM_SPACING_M = 7.5
#: the time-in-interval scale of a phase without a maximum green
UNBOUNDED_SCALE_S = 120.0


class PhaseQueueObservation:
    """SignalStatus + lane counts -> the agent's observation vector, for one intersection.

    `lane_length_m` holds at least the intersection's incoming lanes: the environment's probe, or a controller's
    `ControlContext.lane_length_m`. `clearance`: add the next phase, the yellow flag and the clearance time left
    (the module's docstring), with the simulation's `step_length_s` (the shield runs each yellow and all-red in
    whole steps)."""

    def __init__(self, inter: Intersection, lane_length_m: dict[str, float], clearance: bool = False,
                 step_length_s: float = 1.0):
        self.inter = inter
        self.n_phases = len(inter.phases)
        self.groups = tuple(p.in_lanes for p in inter.phases)
        self.lanes = tuple(dict.fromkeys(lane for g in self.groups for lane in g))
        self.storage_veh = np.array([max(1.0, sum(lane_length_m[lane] for lane in g) / JAM_SPACING_M)
                                     for g in self.groups], dtype=np.float64)
        self.time_scale_s = tuple(UNBOUNDED_SCALE_S if g >= NO_BOUND_S else g for g in inter.timing.max_green_s)
        self.clearance = bool(clearance)
        t = inter.timing
        #: per phase ending: its yellow and its all-red as the signal shows them, whole steps
        self.yellow_s = tuple(ceil_to_step(t.yellow_of(p), step_length_s) for p in range(self.n_phases))
        self.all_red_s = tuple(ceil_to_step(t.all_red_of(p), step_length_s) for p in range(self.n_phases))
        #: the clearance time left is a share of this: the longest change interval of the intersection
        self.clearance_scale_s = max([y + r for y, r in zip(self.yellow_s, self.all_red_s, strict=True)] + [0.0]) \
            or 1.0
        size = 3 * self.n_phases + 2 + (self.n_phases + 2 if self.clearance else 0)
        self.space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)

    def clearance_left_s(self, status: SignalStatus) -> float:
        """Seconds until the next green starts: what is left of the yellow and all-red that end `status`'s phase;
        0 in green."""
        c = status.phase_index
        if status.interval == "yellow":
            return max(0.0, self.yellow_s[c] - status.elapsed_s) + self.all_red_s[c]
        if status.interval == "all_red":
            return max(0.0, self.all_red_s[c] - status.elapsed_s)
        return 0.0

    def encode(self, status: SignalStatus, lanes: dict[str, LaneState]) -> np.ndarray:
        n = self.n_phases
        out = np.zeros(self.space.shape[0], dtype=np.float32)
        out[status.phase_index] = 1.0
        out[n] = 0.0 if status.interval == "green" else 1.0
        out[n + 1] = min(1.0, status.elapsed_s / self.time_scale_s[status.phase_index])
        queue = np.zeros(n)
        count = np.zeros(n)
        for k, g in enumerate(self.groups):
            for lane in g:
                ls = lanes[lane]
                queue[k] += ls.queue_veh
                count[k] += ls.count_veh
        out[n + 2:2 * n + 2] = np.minimum(1.0, queue / self.storage_veh)
        out[2 * n + 2:3 * n + 2] = np.minimum(1.0, count / self.storage_veh)
        if self.clearance and status.interval != "green":
            if status.next_phase_index is not None:
                out[3 * n + 2 + status.next_phase_index] = 1.0
            out[4 * n + 2] = 1.0 if status.interval == "yellow" else 0.0
            out[4 * n + 3] = min(1.0, self.clearance_left_s(status) / self.clearance_scale_s)
        return out
