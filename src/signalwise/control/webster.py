"""Webster fixed-time plans, re-planned from measured flows.

Cycle C0 = (1.5 L + 5) / (1 - Y), greens split by critical flow ratio, both
clamped to the intersection's bounds. Before the first planning period ends
the plan comes from the scenario's nominal demand (a user's network: its route
files', `sim.route_demand`). Planning periods count from the run's begin
(`ControlContext.begin_s`), as the stop-bar detectors' counting periods do, so a
run that begins at 07:00 re-plans at 07:15 on the counts of 07:00-07:15. Also
the shield's default fallback: it needs no live data to run.

Zero demand on every lane, nominal or counted, makes no plan: it is what a
dead detector feed looks like as much as an empty network, and a plan for it
(every phase at its minimum, or the cycle's leftover on one phase) is no
better than the plan in hand. The nominal plan then assumes
DEFAULT_LANE_FLOW_VPH on every lane; a re-plan keeps the current plan.
"""

from __future__ import annotations

import math

from ..core.timing import WebsterPlan, webster_plan
from ..core.types import Decision, Intersection, Observation
from .base import ControlContext, register
from .fixed import PlanFollower

SATURATION_FLOW_VPHPL = 1800.0  # veh/h per lane, HCM base for through lanes
START_UP_LOST_S = 2.0  # HCM start-up lost time per phase
DEFAULT_LANE_FLOW_VPH = 300.0  # when neither demand nor counts are known
PLANNING_PERIOD_S = 900.0


def lane_phase_shares(inter: Intersection) -> dict[str, list[int]]:
    """Which phases carry each incoming lane's flow: protected ('G') first, else permitted."""
    shares: dict[str, list[int]] = {}
    for lane in inter.in_lanes:
        protected, permitted = [], []
        for p in inter.phases:
            chars = {p.green_state[m.link_index] for m in p.movements if m.in_lane == lane}
            if "G" in chars:
                protected.append(p.index)
            elif "g" in chars:
                permitted.append(p.index)
        shares[lane] = protected or permitted
    return shares


def flow_ratios(inter: Intersection, lane_flow_vph: dict[str, float]) -> list[float]:
    """Critical flow ratio y_i per phase: the busiest lane it serves / saturation flow."""
    ys = [0.0] * len(inter.phases)
    for lane, phases in lane_phase_shares(inter).items():
        if not phases:
            continue
        y = lane_flow_vph.get(lane, 0.0) / len(phases) / SATURATION_FLOW_VPHPL
        for p in phases:
            ys[p] = max(ys[p], y)
    return ys


def lost_time_per_phase_s(inter: Intersection, step_s: float = 1.0) -> float:
    """Clearance as the signal really shows it (whole steps) plus start-up lost time, the mean over phases.

    Webster's lost time per cycle is the sum over the phases; each phase ends with its own change interval.

    SUMO drivers stop at yellow when they can, so almost none of the yellow is
    used as green: the whole change interval is lost.
    """
    t = inter.timing
    n = len(inter.phases) or 1
    shown_s = sum(math.ceil(t.yellow_of(p) / step_s - 1e-9) * step_s + math.ceil(t.all_red_of(p) / step_s - 1e-9) * step_s
                  for p in range(n))
    return shown_s / n + START_UP_LOST_S


def nominal_flows(inter: Intersection, ctx: ControlContext) -> dict[str, float]:
    """veh/h per incoming lane before anything is counted: the context's, DEFAULT_LANE_FLOW_VPH where it has none,
    and on every lane where it has no demand on any (see the module's note on zero demand)."""
    flows = {lane: ctx.nominal_lane_flow_vph.get(lane, DEFAULT_LANE_FLOW_VPH) for lane in inter.in_lanes}
    if not any(flows.values()):
        return dict.fromkeys(inter.in_lanes, DEFAULT_LANE_FLOW_VPH)
    return flows


def plan_for(inter: Intersection, lane_flow_vph: dict[str, float], step_s: float = 1.0) -> WebsterPlan:
    t = inter.timing
    return webster_plan(flow_ratios(inter, lane_flow_vph), lost_time_per_phase_s(inter, step_s), t.cycle_min_s,
                        t.cycle_max_s, list(t.min_green_s), list(t.max_green_s))


class WebsterController(PlanFollower):
    """Follows a Webster plan; every planning period re-plans from stop-bar counts."""

    def __init__(self, inter: Intersection, ctx: ControlContext, planning_period_s: float = PLANNING_PERIOD_S):
        self.plan = plan_for(inter, nominal_flows(inter, ctx))
        super().__init__(inter, list(self.plan.green_s), "webster")
        self.planning_period_s = planning_period_s
        self._begin_s = ctx.begin_s
        self.plans: list[tuple[float, WebsterPlan]] = [(ctx.begin_s, self.plan)]
        self._next_plan_s = ctx.begin_s + planning_period_s
        self._stopbar = {d.id: d.lane for d in inter.detectors if d.kind == "stopbar"}
        self.wants_detectors = False
        self._vehicles_at_last_plan: dict[str, int] = {}

    @property
    def needs_counts_at(self) -> float:
        return self._next_plan_s

    def decide(self, obs: Observation) -> Decision:
        if obs.detector_counts_veh and obs.time_s >= self._next_plan_s:
            on_lane = {lane: s.count_veh for lane, s in obs.lanes.items()}
            self.replan(obs.detector_counts_veh, obs.time_s, on_lane)
        return super().decide(obs)

    def replan(self, counts_veh: dict[str, int], now_s: float,
               vehicles_on_lane: dict[str, int] | None = None) -> WebsterPlan:
        """New plan from the demand of the last planning period.

        Demand = vehicles that crossed the stop bar + growth of the vehicles
        stored on the lane: under congestion the stop bar only sees what the
        signal let through, and planning on that alone under-serves the peak.
        No demand on any lane keeps the plan (the module's note on zero demand).
        The next re-plan is at the end of the counting period after `now_s`
        (periods from the run's begin), where the detectors' next counts are.
        """
        per_hour = 3600.0 / self.planning_period_s
        vehicles_on_lane = vehicles_on_lane or {}
        flows = {}
        for det, n in counts_veh.items():
            lane = self._stopbar.get(det)
            if lane is None:
                continue
            growth = vehicles_on_lane.get(lane, 0) - self._vehicles_at_last_plan.get(lane, 0)
            flows[lane] = max(0, n + growth) * per_hour
        self._vehicles_at_last_plan = dict(vehicles_on_lane)
        if any(flows.values()):
            self.plan = plan_for(self.inter, flows)
            self.plans.append((now_s, self.plan))
            self.set_plan(list(self.plan.green_s))
        periods_done = math.floor((now_s - self._begin_s) / self.planning_period_s + 1e-9)
        self._next_plan_s = self._begin_s + (max(periods_done, 0) + 1) * self.planning_period_s
        return self.plan


@register("webster")
def make_webster(inter: Intersection, ctx: ControlContext) -> WebsterController:
    return WebsterController(inter, ctx)


def fallback_plan(inter: Intersection, ctx: ControlContext) -> PlanFollower:
    """The shield's fallback: a Webster plan from nominal demand, no live data needed."""
    return PlanFollower(inter, list(plan_for(inter, nominal_flows(inter, ctx)).green_s), "webster-fallback")
