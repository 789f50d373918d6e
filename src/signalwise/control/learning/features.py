"""What the Q-learning agent sees: an Observation turned into one state index.

State encoding (mixed radix, most significant first):

    phase          the current green phase                      (n_phases values)
    green_time     seconds of green so far, bucketed at          (len(TIME_EDGES_S) + 1)
                   TIME_EDGES_S: <10 | 10-20 | 20-35 | 35+
    queue_p<i>     halting vehicles on the lanes phase i serves  (len(QUEUE_EDGES) + 1 each)
                   (its "lane group"), bucketed at QUEUE_EDGES:
                   0 | 1-3 | 4-9 | 10+

On the built-in `single` (4 phases) that is 4 * 4 * 4^4 = 4,096 states x 4
actions: 16 K values, 64 KB of float32. Queues are summed per phase lane
group rather than per lane so the table grows with the number of phases, not
lanes. Halting vehicles (not all vehicles) because a vehicle stopped at a red
is what costs delay; moving vehicles are already being served.

Actions (`actions=`): "phases" (default) — one per phase, the phase to serve
next (the current one = hold); "switch" — two: 0 hold, 1 change to the
phase max-pressure would pick among the others. With "switch" the table
learns only *when* to end a green, and max-pressure chooses which follows.

State "compact" (`state="compact"`, only with actions "switch"): what the
hold-or-hand-over decision needs, independent of how many phases exist:

    phase          the current green phase                      (n_phases values)
    green_time     seconds of green so far, at COMPACT_TIME_EDGES_S (5 values)
    pressure_gap   max-pressure's pick minus the current phase's  (6: <=-8 | -7..-3 | -2..0 | 1..3 |
                   pressure, in vehicles                            4..8 | 9+)
    cur_queue      halting vehicles on the current phase's lanes (4: 0 | 1-2 | 3-6 | 7+)
    next_queue     halting vehicles on the lanes of the phase    (5: 0 | 1-3 | 4-8 | 9-15 | 16+)
                   max-pressure would hand over to

On `single` that is 4 * 5 * 6 * 4 * 5 = 2,400 states x 2 actions. Why: the
per-phase-queue state grows as 4^n_phases and stays mostly unvisited (16 % after
60 episodes on `single`); the decision "end this green now?" depends on whether
the green is still being used and how much is waiting for the next one. The
pressure gap is there because training follows max-pressure where the table
knows little: with max-pressure's own decision variable in the state, its
choice is a function of the state, so the table does not learn "switching is
bad" merely because max-pressure switches when a hidden backlog has built up
(with moving vehicles instead of the gap, it did: the learned policy held
where max-pressure switched and delay rose from 49 s to 78 s).

Observation health in [0, 1]: 0 when the source says unhealthy or the data
is older than `max_age_s`, else the share of lane-group lanes present in the
observation. The controller multiplies its confidence by it.
"""

from __future__ import annotations

from bisect import bisect_right

from ...core.types import Intersection, Observation
from .qtable import StateEncoding

TIME_EDGES_S = (10.0, 20.0, 35.0)
QUEUE_EDGES = (1, 4, 10)
COMPACT_TIME_EDGES_S = (8.0, 15.0, 25.0, 40.0)
CUR_QUEUE_EDGES = (1, 3, 7)
PRESSURE_GAP_EDGES = (-7.5, -2.5, 0.5, 3.5, 8.5)  # pressures are whole vehicles
NEXT_QUEUE_EDGES = (1, 4, 9, 16)
STATES = ("lane-groups", "compact")


class StateFeatures:
    """Observation -> (state index, health) for one intersection."""

    def __init__(self, inter: Intersection, time_edges_s=TIME_EDGES_S, queue_edges=QUEUE_EDGES,
                 max_age_s: float = 10.0, actions: str = "phases", state: str = "lane-groups"):
        if actions not in ("phases", "switch"):
            raise ValueError(f"actions must be 'phases' or 'switch', not {actions!r}")
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        if state == "compact" and actions != "switch":
            raise ValueError("state 'compact' describes the hand-over to max-pressure's pick: use actions 'switch'")
        self.actions = actions
        self.state_kind = state
        self.inter = inter
        self.time_edges_s = tuple(float(x) for x in time_edges_s)
        self.queue_edges = tuple(int(x) for x in queue_edges)
        self.max_age_s = max_age_s
        self.groups = tuple(p.in_lanes for p in inter.phases)
        self.all_lanes = tuple(dict.fromkeys(lane for g in self.groups for lane in g))
        self.out_lanes = tuple(lane for lane in inter.out_lanes if lane not in set(self.all_lanes))
        n = len(inter.phases)
        from ..max_pressure import MaxPressureController

        #: max-pressure over this intersection: the compact state's gap, the hand-over
        #: target of "switch", and the guide all read it
        self.pressure = MaxPressureController(inter)
        if state == "compact":
            self.time_edges_s = COMPACT_TIME_EDGES_S
            names = ("phase", "green_time", "pressure_gap", "cur_queue", "next_queue")
            radices = (n, len(COMPACT_TIME_EDGES_S) + 1, len(PRESSURE_GAP_EDGES) + 1, len(CUR_QUEUE_EDGES) + 1,
                       len(NEXT_QUEUE_EDGES) + 1)
        else:
            names = ("phase", "green_time") + tuple(f"queue_p{i}" for i in range(n))
            radices = (n, len(self.time_edges_s) + 1) + (len(self.queue_edges) + 1,) * n
        self.encoding = StateEncoding(names, radices)
        self._strides = self.encoding.strides

    @property
    def n_actions(self) -> int:
        return len(self.inter.phases) if self.actions == "phases" else 2

    def layout(self) -> dict:
        """What a model must match to be used here: phases, their lane groups, and the bucket edges."""
        return {
            "phases": [p.green_state for p in self.inter.phases],
            "lane_groups": [list(g) for g in self.groups],
            "time_edges_s": list(self.time_edges_s),
            "queue_edges": list(self.queue_edges),
            **({"actions": self.actions} if self.actions != "phases" else {}),
            **({"state": self.state_kind} if self.state_kind != "lane-groups" else {}),
        }

    def group_queues(self, obs: Observation) -> list[int]:
        lanes = obs.lanes
        out = []
        for g in self.groups:
            total = 0
            for lane in g:
                ls = lanes.get(lane)
                if ls is not None:
                    total += ls.queue_veh
            out.append(total)
        return out

    def total_queue(self, obs: Observation) -> int:
        lanes = obs.lanes
        return sum(lanes[lane].queue_veh for lane in self.all_lanes if lane in lanes)

    def downstream_queue(self, obs: Observation) -> int:
        """Halting vehicles on the outgoing lanes: the queues this intersection feeds."""
        lanes = obs.lanes
        return sum(lanes[lane].queue_veh for lane in self.out_lanes if lane in lanes)

    def health(self, obs: Observation) -> float:
        if not obs.healthy or obs.age_s > self.max_age_s or obs.signal is None:
            return 0.0
        if not self.all_lanes:
            return 1.0
        lanes = obs.lanes
        return sum(1 for lane in self.all_lanes if lane in lanes) / len(self.all_lanes)

    def next_phase(self, obs: Observation) -> int:
        """The phase max-pressure would hand over to: the highest pressure among the others."""
        return self._next_and_gap(obs)[0]

    def _next_and_gap(self, obs: Observation) -> tuple[int, float]:
        current = obs.signal.phase_index
        p = self.pressure.pressures(obs)
        nxt = max((i for i in range(len(p)) if i != current), key=lambda i: p[i], default=current)
        return nxt, p[nxt] - p[current]

    def _halting(self, obs: Observation, phase: int) -> int:
        lanes = obs.lanes
        return sum(lanes[lane].queue_veh for lane in self.groups[phase] if lane in lanes)

    def state(self, obs: Observation) -> int:
        """The state index of an observation taken during a green (obs.signal must be set)."""
        s = obs.signal
        st = self._strides
        if self.state_kind == "compact":
            nxt, gap = self._next_and_gap(obs)
            return (s.phase_index * st[0] + bisect_right(COMPACT_TIME_EDGES_S, s.elapsed_s) * st[1]
                    + bisect_right(PRESSURE_GAP_EDGES, gap) * st[2]
                    + bisect_right(CUR_QUEUE_EDGES, self._halting(obs, s.phase_index)) * st[3]
                    + bisect_right(NEXT_QUEUE_EDGES, self._halting(obs, nxt)) * st[4])
        idx = s.phase_index * st[0] + bisect_right(self.time_edges_s, s.elapsed_s) * st[1]
        edges = self.queue_edges
        for k, q in enumerate(self.group_queues(obs)):
            idx += bisect_right(edges, q) * st[2 + k]
        return idx
