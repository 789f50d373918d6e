"""Coordinated fixed-time control: the network's program with its cycle length and offset kept.

A coordinated pretimed controller keeps a common cycle C and each signal's offset, so that greens recur at the
same points of every cycle and a platoon released upstream meets a green downstream. Here C is the program's
cycle (every state's duration, yellows and all-reds included) and the offset is the program's: SUMO runs a
program at cycle position (time - offset) mod C, and this plan puts each phase's green onset where the program
has it. Each phase's split is its program green plus its program change interval (the yellow and all-red states
after it); under the shield's own change interval (ITE yellow and all-red, as the signal shows them) the green
gives up, or gains, the difference, so each split, the cycle and the offset hold.

A signal whose splits cannot hold the shield's rules is not coordinated, and the run says why once (a phase's
green below its minimum green or walk + pedestrian clearance, above its max green, a cycle longer than the cycle
bound, or a program serving a phase twice a cycle): it runs the plan `fixed` runs there. Letting such a cycle run
long instead would move the signal off its offset a little more every cycle, which is no coordination either.

The run begins on the first phase's green, wherever the schedule is; each green ends at its phase's next
force-off point at or after its shortest green (a transition: a first green is lengthened to reach the schedule,
or cut at its max green, after which the next green takes up the rest). From the first force-off on schedule,
every onset is on schedule. After a preemption it is the same transition.

The run logs each signal's plan at its start, as a field controller logs a coordination pattern: a 131 (Coord
Pattern Change) naming pattern 1, the program's plan (a run has one plan per signal), with a 132 (Cycle Length
Change: the cycle, whole seconds) and a 133 (Offset Length Change: the offset in the cycle, whole seconds); a
signal not coordinated logs pattern 254, UDOT ATSPM's "Free", with cycle and offset 0. ATSPM's per-plan table
reads them; the audit reads the 131 naming the pattern at an instant with a 132 as the pattern, not a timing
revision (`coordination_events`). A live run logs them where a field controller would: at its start, and whenever a controller
switch changes the pattern a signal runs (`controller_pattern`, `pattern_events`; `runtime/live/runtime.py`).

Not coordinated by offsets: `webster` (each signal's own cycle, re-planned), `actuated` and `max-pressure`
(decentralised: each signal decides from its own detectors and lanes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.timing import ceil_to_step, shortest_greens_s
from ..core.types import (
    COORDINATED_PATTERN,
    FREE_PATTERN,
    Decision,
    EventCode,
    Intersection,
    Observation,
    SignalEvent,
)
from .base import ControlContext, register
from .fixed import make_fixed

COORDINATED_CONTROLLER = "coordinated"
#: the largest parameter of a 132 or 133: a longer cycle is 255 plus a 156 with the rest, a longer offset 255
MAX_PARAMETER = 255


@dataclass(frozen=True)
class CoordinatedPlan:
    """One signal's coordinated plan, seconds; per-phase tuples are indexed like the phases."""

    cycle_s: float
    offset_s: float
    #: where each phase's green begins in the cycle, from the program's start (the program's own onsets)
    onset_s: tuple[float, ...]
    #: each phase's split in the program: its green plus its change interval
    split_s: tuple[float, ...]
    #: each phase's change interval as the shield shows it (yellow + all-red, rounded up to whole steps)
    clearance_s: tuple[float, ...]
    #: each phase's green under the plan: its split less the shield's change interval
    green_s: tuple[float, ...]

    def force_off_s(self, phase: int) -> float:
        """Where phase `phase`'s green ends in the cycle, from the program's start (not reduced mod C)."""
        return self.onset_s[phase] + self.green_s[phase]

    def as_dict(self) -> dict:
        """For metrics.json's `coordination`: the plan an engineer can check the log against."""
        return {"cycle_s": self.cycle_s, "offset_s": self.offset_s, "green_onset_s": list(self.onset_s),
                "split_s": list(self.split_s), "clearance_s": list(self.clearance_s),
                "green_s": list(self.green_s)}


def coordination_plan(inter: Intersection, step_length_s: float) -> CoordinatedPlan | str:
    """The signal's coordinated plan under the shield's timing, or why it has none (a sentence).

    `step_length_s`: the simulation step, to which the shield rounds every interval up."""
    n = len(inter.phases)
    if len(inter.program_change_s) != n or len(inter.program_green_s) != n or inter.program_cycle_s <= 0:
        return ("the program serves a phase more than once a cycle, so no phase has a split of its own")
    t = inter.timing
    step = step_length_s if step_length_s > 0 else 0.0
    shown = (lambda v: ceil_to_step(v, step)) if step else (lambda v: v)
    clearance = tuple(shown(t.yellow_of(p)) + shown(t.all_red_of(p)) for p in range(n))
    crossing = {i for c in inter.crosswalks for i in c.link_indices} if t.ped_intervals else set()
    shortest = shortest_greens_s(t.min_green_s, [bool(p.green_links & crossing) for p in inter.phases],
                                 t.ped_walk_s, [t.ped_clearance_of(p) for p in range(n)], step)
    split = tuple(g + c for g, c in zip(inter.program_green_s, inter.program_change_s, strict=True))
    green = tuple(s - c for s, c in zip(split, clearance, strict=True))
    short = [p for p in range(n) if green[p] < shortest[p] - 1e-6]
    if short:
        need = sum(max(g, least) + c for g, least, c in zip(green, shortest, clearance, strict=True))
        return ("its splits cannot hold the shield's minimums: " + "; ".join(
            f"phase {p + 1}'s split {split[p]:g} s (program green {inter.program_green_s[p]:g} s + change "
            f"{inter.program_change_s[p]:g} s) leaves {green[p]:g} s of green after the shield's {clearance[p]:g} s "
            f"yellow and all-red, below its shortest green {shortest[p]:g} s (min_green_s, or walk + pedestrian "
            "clearance)" for p in short)
            + f"; its cycle would need {need:g} s, not the program's {inter.program_cycle_s:g} s")
    long = [p for p in range(n) if green[p] > t.max_green_s[p] + 1e-6]
    if long:
        return "its greens exceed max green: " + "; ".join(
            f"phase {p + 1}'s {green[p]:g} s (program green {inter.program_green_s[p]:g} s + change "
            f"{inter.program_change_s[p]:g} s, less the shield's {clearance[p]:g} s yellow and all-red) > "
            f"max_green_s {t.max_green_s[p]:g} s" for p in long) + \
            " (a signal's own timing.per_intersection.<signal>.max_green_s raises it)"
    plan = CoordinatedPlan(inter.program_cycle_s, inter.program_offset_s, tuple(inter.program_green_onset_s),
                           split, clearance, green)
    wait_s = _longest_link_wait_s(inter, plan)
    if not t.cycle_calls and wait_s > t.cycle_max_s + 1e-6:
        return (f"its cycle leaves a link {wait_s:g} s between the starts of its green, more than cycle_max_s "
                f"{t.cycle_max_s:g} s")
    return plan


def _longest_link_wait_s(inter: Intersection, plan: CoordinatedPlan) -> float:
    """The longest time between the starts of one link's greens under the plan (one cycle for a link one phase
    serves)."""
    longest = 0.0
    for link in set().union(*(p.green_links for p in inter.phases)):
        onsets = sorted(plan.onset_s[p.index] % plan.cycle_s for p in inter.phases if link in p.green_links)
        gaps = [b - a for a, b in zip(onsets, [*onsets[1:], onsets[0] + plan.cycle_s], strict=True)]
        longest = max(longest, *gaps)
    return longest


class CoordinatedPlanFollower:
    """Serve phases in the program's order, each green ending at its force-off point in the common cycle."""

    observation = "none"
    wants_detectors = False

    def __init__(self, inter: Intersection, plan: CoordinatedPlan, step_length_s: float,
                 name: str = COORDINATED_CONTROLLER):
        self.inter = inter
        self.plan = plan
        self.name = name
        self.period_s = step_length_s if step_length_s > 0 else 1.0  # a force-off within a step of its point
        t = inter.timing
        crossing = {i for c in inter.crosswalks for i in c.link_indices} if t.ped_intervals else set()
        self._shortest_s = shortest_greens_s(t.min_green_s, [bool(p.green_links & crossing) for p in inter.phases],
                                             t.ped_walk_s, [t.ped_clearance_of(p) for p in range(len(inter.phases))],
                                             step_length_s if step_length_s > 0 else 0.0)
        self._max_green_s = t.max_green_s

    def green_end_s(self, phase: int, green_start_s: float) -> float:
        """When the green of `phase` that began at `green_start_s` ends: the phase's first force-off at or after
        its shortest green; in a transition no later than its max green."""
        p = self.plan
        off_s = p.offset_s + p.force_off_s(phase)
        earliest_s = green_start_s + self._shortest_s[phase]
        cycles = math.ceil((earliest_s - off_s) / p.cycle_s - 1e-9)
        return min(off_s + cycles * p.cycle_s, green_start_s + self._max_green_s[phase])

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is None or s.interval != "green":
            return Decision(self.inter.id, None, self.name)
        if obs.time_s + 1e-6 >= self.green_end_s(s.phase_index, obs.time_s - s.elapsed_s):
            return Decision(self.inter.id, (s.phase_index + 1) % len(self.inter.phases), self.name,
                            termination=EventCode.PHASE_FORCE_OFF)
        return Decision(self.inter.id, None, self.name)


@register(COORDINATED_CONTROLLER)
def make_coordinated(inter: Intersection, ctx: ControlContext):
    """The signal's coordinated plan; where it has none (`coordination_plan` says why, and the run warns), the
    plan `fixed` runs, under this controller's name."""
    plan = coordination_plan(inter, ctx.step_length_s)
    if isinstance(plan, str):
        follower = make_fixed(inter, ctx)
        follower.name = COORDINATED_CONTROLLER
        return follower
    return CoordinatedPlanFollower(inter, plan, ctx.step_length_s)


def coordination_report(intersections, step_length_s: float) -> tuple[dict[str, dict], list[str]]:
    """Per signal, its coordinated plan (metrics.json's `coordination`: the plan, or `not_coordinated` with the
    reason), and the run's warnings: one per signal that is not coordinated, and one on signals whose cycles
    differ (no common cycle: offsets coordinate nothing between them)."""
    plans: dict[str, dict] = {}
    warnings: list[str] = []
    cycles: dict[float, list[str]] = {}
    for inter in sorted(intersections, key=lambda i: i.id):
        plan = coordination_plan(inter, step_length_s)
        if isinstance(plan, str):
            plans[inter.id] = {"not_coordinated": plan}
            warnings.append(f"{COORDINATED_CONTROLLER} at signal {inter.id!r} runs the uncoordinated plan fixed "
                            f"runs: {plan}")
            continue
        plans[inter.id] = plan.as_dict()
        cycles.setdefault(round(plan.cycle_s, 6), []).append(inter.id)
    if len(cycles) > 1:
        warnings.append(f"{COORDINATED_CONTROLLER}: the programs' cycles differ (" + "; ".join(
            f"{c:g} s at {', '.join(ids[:5])}{' and more' if len(ids) > 5 else ''}" for c, ids in sorted(
                cycles.items())) + "): offsets coordinate only signals sharing a cycle")
    return plans, warnings


#: a coordination pattern as the log names it: (pattern number, cycle s, offset s), whole seconds
Pattern = tuple[int, int, int]
#: the pattern of a signal not coordinated: "Free", no common cycle, so cycle and offset 0
FREE: Pattern = (FREE_PATTERN, 0, 0)


def plan_pattern(plan: CoordinatedPlan | str) -> Pattern:
    """The pattern a plan is logged as: `COORDINATED_PATTERN` with its cycle and its offset within the cycle (whole
    seconds; SUMO's (t - offset) mod C); `FREE` for a signal `coordination_plan` refuses one (a reason)."""
    if not isinstance(plan, CoordinatedPlan):
        return FREE
    cycle_s = round(plan.cycle_s)
    return COORDINATED_PATTERN, cycle_s, round(plan.offset_s % plan.cycle_s) % max(cycle_s, 1)


def controller_pattern(controller) -> Pattern | None:  # noqa: ANN001 - any controller
    """The pattern a signal's controller runs: a `coordinated` plan's, `FREE` where `coordinated` runs the plan `fixed`
    runs (`make_coordinated`); None for any other controller, which runs no coordination pattern."""
    if isinstance(controller, CoordinatedPlanFollower):
        return plan_pattern(controller.plan)
    if getattr(controller, "name", None) == COORDINATED_CONTROLLER:
        return FREE
    return None


def pattern_events(device_id: str, pattern: Pattern, time_s: float) -> list[SignalEvent]:
    """One signal's pattern as a field controller logs a coordination pattern change, at `time_s`: a 131 (the
    pattern number), a 132 (the cycle; 255 and a 156 with the rest above 255 s, each at most 255) and a 133 (the
    offset, at most 255), in that order, as the Indiana enumeration gives them.

    The 132 of the same instant is what tells the pattern apart from a timing revision's 131, which is logged
    alone (before its green's 1), in whatever order the log keeps within the instant: the audit reads the 131
    naming the pattern's number there as the pattern (`safety_audit._pattern_131s`)."""
    number, cycle_s, offset_s = pattern
    events = [SignalEvent(time_s, device_id, int(EventCode.TIMING_PLAN_CHANGE), number),
              SignalEvent(time_s, device_id, int(EventCode.CYCLE_LENGTH_CHANGE), min(cycle_s, MAX_PARAMETER))]
    if cycle_s > MAX_PARAMETER:
        events.append(SignalEvent(time_s, device_id, int(EventCode.ADDITIONAL_CYCLE_LENGTH_CHANGE),
                                  min(cycle_s - MAX_PARAMETER, MAX_PARAMETER)))
    events.append(SignalEvent(time_s, device_id, int(EventCode.OFFSET_LENGTH_CHANGE), min(offset_s, MAX_PARAMETER)))
    return events


def coordination_events(intersections, step_length_s: float, time_s: float) -> list[SignalEvent]:
    """Each signal's plan as a field controller logs a coordination pattern, at `time_s` (the run's start):
    `pattern_events` of `COORDINATED_PATTERN` with the plan's cycle and offset, or of `FREE` where
    `coordination_plan` refuses one."""
    return [e for inter in sorted(intersections, key=lambda i: i.id)
            for e in pattern_events(inter.id, plan_pattern(coordination_plan(inter, step_length_s)), time_s)]
