"""Fixed-time control: the network's own program (the usual baseline).

We keep the program's green phases, their order and their green times; the
change intervals are the shield's (ITE yellow, all-red), so the baseline
obeys the same safety rules as every other controller. A green shorter than
its phase's minimum (min_green_s, or walk + pedestrian clearance) runs the
minimum, as the shield would hold it anyway; where that, or a green cut to
max green or by the cycle bound, makes the plan differ from the program as
written, the signal model notes it and a fixed run warns
(`sim.signal_model.PLAN_NOTE`).

A plan ends each green at its split, whatever the traffic: the change is a
force-off (event 6), as a pretimed or coordinated controller logs it.
"""

from __future__ import annotations

from ..core.names import BASELINE_CONTROLLER
from ..core.types import Decision, EventCode, Intersection, Observation
from .base import ControlContext, register


class PlanFollower:
    """Serve phases in order, each for its planned green; re-plannable."""

    observation = "none"
    wants_detectors = False

    def __init__(self, inter: Intersection, green_s: list[float], name: str, period_s: float = 1.0):
        self.inter = inter
        self.name = name
        self.period_s = period_s
        self.green_s = list(green_s)

    def set_plan(self, green_s: list[float]) -> None:
        self.green_s = list(green_s)

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name)
        if s.elapsed_s + 1e-6 >= self.green_s[s.phase_index]:
            return Decision(self.inter.id, (s.phase_index + 1) % len(self.inter.phases), self.name,
                            termination=EventCode.PHASE_FORCE_OFF)
        return Decision(self.inter.id, None, self.name)


@register(BASELINE_CONTROLLER)
def make_fixed(inter: Intersection, ctx: ControlContext) -> PlanFollower:
    greens = list(inter.program_green_s) or [30.0] * len(inter.phases)
    greens = [max(g, m) for g, m in zip(greens, inter.timing.min_green_s, strict=True)]
    return PlanFollower(inter, greens, BASELINE_CONTROLLER)
