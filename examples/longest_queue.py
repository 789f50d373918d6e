"""Longest queue first: serve the phase whose incoming lanes hold the most halting vehicles.

A controller brought from outside signalwise (docs/controllers.md): it only proposes, the shield keeps
minimum and maximum green, clearances, pedestrian intervals and the cycle bound.

    signalwise run -s single -c py:examples/longest_queue.py:make
"""

from signalwise.control import ControlContext
from signalwise.core import Decision, EventCode, Intersection, Observation


class LongestQueue:
    observation = "counts"  # queue and count per lane: all it reads
    wants_detectors = False

    def __init__(self, inter: Intersection, period_s: float):
        self.inter = inter
        self.name = "longest-queue"
        self.period_s = period_s  # asked every this many seconds of green

    def queue_veh(self, obs: Observation, phase: int) -> int:
        lanes = self.inter.phases[phase].in_lanes
        return sum(obs.lanes[lane].queue_veh for lane in lanes if lane in obs.lanes)

    def decide(self, obs: Observation) -> Decision:
        now = obs.signal.phase_index if obs.signal else 0
        queues = [self.queue_veh(obs, p) for p in range(len(self.inter.phases))]
        best = max(range(len(queues)), key=lambda p: (queues[p], p == now))  # a tie keeps the green
        if best == now:
            return Decision(self.inter.id, None, self.name)  # hold
        ended = EventCode.PHASE_GAP_OUT if queues[now] == 0 else EventCode.PHASE_FORCE_OFF
        return Decision(self.inter.id, best, self.name, termination=ended)


def make(inter: Intersection, ctx: ControlContext) -> LongestQueue:
    """The factory `-c py:examples/longest_queue.py:make` names; `controller_options: {user: {period_s: 5}}`."""
    return LongestQueue(inter, float(ctx.options.get("user", {}).get("period_s", 5.0)))
