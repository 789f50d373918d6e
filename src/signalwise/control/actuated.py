"""Fully actuated control: extend green while detectors see traffic.

Each phase holds its green while a vehicle crossed one of its detectors within
the passage (gap) time; when the gap exceeds it the phase gaps out to the next
phase, in order, that has a call (vehicles waiting on its lanes). A phase
with no vehicle lanes (an exclusive pedestrian phase, a mid-block crossing's
walk) is always called (pedestrian recall): pedestrians are not in the lane
data. No call elsewhere: rest in green. Max-out is the shield's maximum green.

Every change it proposes is a gap-out (event 4): it asks for one only once
the passage timer of the green has expired. It keeps no maximum of its own;
the shield logs its max-outs (event 5).
"""

from __future__ import annotations

from ..core.types import Decision, EventCode, Intersection, Observation
from .base import ControlContext, register

PASSAGE_S = 3.0


class ActuatedController:
    name = "actuated"
    observation = "counts"
    wants_detectors = True

    def __init__(self, inter: Intersection, passage_s: float = PASSAGE_S, step_s: float = 1.0):
        self.inter = inter
        self.passage_s = passage_s
        self.period_s = step_s
        lane_dets: dict[str, list[str]] = {}
        for d in inter.detectors:
            lane_dets.setdefault(d.lane, []).append(d.id)
        self._phase_dets = [tuple(d for lane in p.in_lanes for d in lane_dets.get(lane, ())) for p in inter.phases]
        self._phase_lanes = [p.in_lanes for p in inter.phases]
        #: phases serving pedestrians only: on recall
        self._recall = [not p.in_lanes for p in inter.phases]
        self.detector_ids = tuple(d.id for d in inter.detectors)

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name)
        c = s.phase_index
        idle = obs.detector_idle_s
        if any(idle.get(d, 1e9) < self.passage_s for d in self._phase_dets[c]):
            return Decision(self.inter.id, None, self.name)  # extend
        n = len(self.inter.phases)
        for k in range(1, n):
            p = (c + k) % n
            if self._has_call(p, obs):
                return Decision(self.inter.id, p, self.name, termination=EventCode.PHASE_GAP_OUT)
        return Decision(self.inter.id, None, self.name)  # rest in green

    def _has_call(self, p: int, obs: Observation) -> bool:
        if self._recall[p]:
            return True
        lanes = obs.lanes
        if any(lanes[lane].queue_veh > 0 for lane in self._phase_lanes[p] if lane in lanes):
            return True
        return any(obs.detector_idle_s.get(d, 1e9) == 0.0 for d in self._phase_dets[p])


@register("actuated")
def make_actuated(inter: Intersection, ctx: ControlContext) -> ActuatedController:
    return ActuatedController(inter, float(ctx.options.get("passage_s", PASSAGE_S)), ctx.step_length_s)
