"""Webster fixed-time plans, re-planned from measured flows.

Cycle C0 = (1.5 L + 5) / (1 - Y), effective greens split by critical flow
ratio, both held to the intersection's bounds. The lost time L counts, per
phase, its change interval as the signal shows it (SUMO drivers stop at yellow
when they can, so none of it is used as green: YELLOW_USED_S) and HCM's
start-up lost time (START_UP_LOST_S). The signal shows each phase's effective
green plus its start-up lost time minus the yellow used, so the displayed
greens and change intervals add up to the planned cycle: the plan's cycle is
the one the signal runs, within cycle_min_s..cycle_max_s
(`core.timing.webster_plan`; docs/controllers.md, "The built-in Webster
plan"). Each green is a whole number of simulation steps, and the controller
decides at every step below 1 s (`decision_period_s`), so a green ends on the
step its plan says.

Before the first planning period ends
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

from ..core.timing import WebsterPlan, ceil_to_step, shortest_greens_s, webster_plan
from ..core.types import Decision, Intersection, Observation
from .base import ControlContext, register
from .fixed import PlanFollower

SATURATION_FLOW_VPHPL = 1800.0  # veh/h per lane, HCM base for through lanes
START_UP_LOST_S = 2.0  # HCM start-up lost time per phase
#: the part of a phase's yellow and red clearance drivers use as green (HCM's extension of effective green, e):
#: SUMO's drivers stop at yellow when they can, so none. A displayed green = effective green + START_UP_LOST_S -
#: YELLOW_USED_S
YELLOW_USED_S = 0.0
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


def clearances_shown_s(inter: Intersection, step_s: float = 1.0) -> list[float]:
    """Each phase's yellow + red clearance as the signal shows them: each rounded up to whole steps of `step_s`."""
    t = inter.timing
    return [ceil_to_step(t.yellow_of(p), step_s) + ceil_to_step(t.all_red_of(p), step_s)
            for p in range(len(inter.phases))]


def lost_time_per_phase_s(inter: Intersection, step_s: float = 1.0) -> float:
    """Webster's lost time of a phase, the mean over the phases: its change interval as the signal really shows it
    (whole steps), less the part of it used as green (YELLOW_USED_S), plus the start-up lost time.

    Webster's lost time per cycle is the sum over the phases; each phase ends with its own change interval.

    SUMO drivers stop at yellow when they can, so almost none of the yellow is
    used as green: the whole change interval is lost.
    """
    shown = clearances_shown_s(inter, step_s) or [0.0]
    return sum(shown) / len(shown) - YELLOW_USED_S + START_UP_LOST_S


def shortest_planned_greens_s(inter: Intersection, step_s: float = 1.0) -> list[float]:
    """Per phase, the shortest green the shield lets it show (`core.timing.shortest_greens_s`, as
    `control.shield` holds it): its minimum green, or a crosswalk phase's walk and pedestrian clearance when
    longer. A plan below it would be lengthened on the street, and its cycle with it."""
    t = inter.timing
    crossing = {i for c in inter.crosswalks for i in c.link_indices} if t.ped_intervals else set()
    return shortest_greens_s(t.min_green_s, [bool(p.green_links & crossing) for p in inter.phases], t.ped_walk_s,
                             [t.ped_clearance_of(p) for p in range(len(inter.phases))], step_s)


def decision_period_s(step_s: float) -> float:
    """How often a Webster plan is asked whether its green is over: every second, or every step when steps are
    shorter, so a green planned in whole steps ends on its planned step (at 1 s, a 17.5 s green at 0.5 s steps
    would show 18 s)."""
    return min(1.0, step_s)


def nominal_flows(inter: Intersection, ctx: ControlContext) -> dict[str, float]:
    """veh/h per incoming lane before anything is counted: the context's, DEFAULT_LANE_FLOW_VPH where it has none,
    and on every lane where it has no demand on any (see the module's note on zero demand)."""
    flows = {lane: ctx.nominal_lane_flow_vph.get(lane, DEFAULT_LANE_FLOW_VPH) for lane in inter.in_lanes}
    if not any(flows.values()):
        return dict.fromkeys(inter.in_lanes, DEFAULT_LANE_FLOW_VPH)
    return flows


def plan_for(inter: Intersection, lane_flow_vph: dict[str, float], step_s: float = 1.0) -> WebsterPlan:
    """The Webster plan for `lane_flow_vph`, its displayed greens in whole steps of `step_s` (the module's note)."""
    t = inter.timing
    return webster_plan(flow_ratios(inter, lane_flow_vph), lost_time_per_phase_s(inter, step_s), t.cycle_min_s,
                        t.cycle_max_s, shortest_planned_greens_s(inter, step_s), list(t.max_green_s),
                        start_up_lost_s=START_UP_LOST_S, extension_s=YELLOW_USED_S, step_s=step_s)


class WebsterController(PlanFollower):
    """Follows a Webster plan; every planning period re-plans from stop-bar counts."""

    def __init__(self, inter: Intersection, ctx: ControlContext, planning_period_s: float = PLANNING_PERIOD_S):
        self.step_s = ctx.step_length_s
        self.plan = plan_for(inter, nominal_flows(inter, ctx), self.step_s)
        super().__init__(inter, list(self.plan.green_s), "webster", decision_period_s(self.step_s))
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
            self.plan = plan_for(self.inter, flows, self.step_s)
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
    return _FallbackPlan(inter, ctx)


class _FallbackPlan(PlanFollower):
    """`fallback_plan`'s follower: its Webster plan is worked out the first time it is read. Most runs never fall
    back, and the nominal demand may have to be read from the route files first (`runtime.loop` defers that
    too): 30-50 ms of a run's start on resco:cologne8."""

    def __init__(self, inter: Intersection, ctx: ControlContext):
        super().__init__(inter, [], "webster-fallback", decision_period_s(ctx.step_length_s))
        self._green_s: list[float] | None = None
        self._ctx: ControlContext | None = ctx
        self._step_s = ctx.step_length_s

    @property
    def green_s(self) -> list[float]:
        if self._green_s is None:
            self._green_s = list(plan_for(self.inter, nominal_flows(self.inter, self._ctx), self._step_s).green_s)
            self._ctx = None
        return self._green_s

    @green_s.setter
    def green_s(self, value: list[float]) -> None:  # a re-plan (`set_plan`), and PlanFollower's own start
        self._green_s, self._ctx = list(value), None
