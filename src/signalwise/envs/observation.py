"""What an agent sees: one intersection's signal and queues as a vector in [0, 1].

Layout for an intersection with n phases (length 3n + 2, float32):

    [0, n)        phase one-hot     the green phase, or the phase being cleared
    n             clearing          1 during yellow / all-red, else 0
    n + 1         time in interval  seconds in the current interval / that phase's maximum green (120 s when
                                    it has none), clipped to 1
    [n+2, 2n+2)   queue per group   halting vehicles on the lanes phase i serves (its lane group)
                                    / the group's storage, clipped to 1
    [2n+2, 3n+2)  count per group   vehicles on those lanes / the group's storage, clipped to 1

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

from ..core.types import Intersection, LaneState, SignalStatus
from ..runtime.profiles import NO_BOUND_S

JAM_SPACING_M = 7.5
#: the time-in-interval scale of a phase without a maximum green
UNBOUNDED_SCALE_S = 120.0


class PhaseQueueObservation:
    """SignalStatus + lane counts -> the agent's observation vector, for one intersection.

    `lane_length_m` holds at least the intersection's incoming lanes: the environment's probe, or a controller's
    `ControlContext.lane_length_m`."""

    def __init__(self, inter: Intersection, lane_length_m: dict[str, float]):
        self.inter = inter
        self.n_phases = len(inter.phases)
        self.groups = tuple(p.in_lanes for p in inter.phases)
        self.lanes = tuple(dict.fromkeys(lane for g in self.groups for lane in g))
        self.storage_veh = np.array([max(1.0, sum(lane_length_m[lane] for lane in g) / JAM_SPACING_M)
                                     for g in self.groups], dtype=np.float64)
        self.time_scale_s = tuple(UNBOUNDED_SCALE_S if g >= NO_BOUND_S else g for g in inter.timing.max_green_s)
        self.space = spaces.Box(0.0, 1.0, shape=(3 * self.n_phases + 2,), dtype=np.float32)

    def encode(self, status: SignalStatus, lanes: dict[str, LaneState]) -> np.ndarray:
        n = self.n_phases
        out = np.zeros(3 * n + 2, dtype=np.float32)
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
        out[2 * n + 2:] = np.minimum(1.0, count / self.storage_veh)
        return out
