"""Signal timing formulas traffic engineers use, in SI units.

References: ITE "Guidelines for Determining Traffic Signal Change and
Clearance Intervals" (2020) for yellow and red clearance; Webster (1958),
"Traffic signal settings", for the optimum cycle; MUTCD 4E.06 for pedestrian
clearance at 3.5 ft/s (1.07 m/s; we use 1.1 m/s as the issue asks, and a run's
`timing.ped_walking_speed_mps` sets another), at most 4 ft/s (1.22 m/s), and
for its guidance that walk + clearance cover the crossing from 6 ft behind
the curb at 3 ft/s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GRAVITY_MPS2 = 9.81
ITE_PERCEPTION_REACTION_S = 1.0
ITE_DECELERATION_MPS2 = 3.05  # 10 ft/s^2
PED_WALKING_SPEED_MPS = 1.1
FOOT_M = 0.3048
#: the fastest walking speed MUTCD 4E.06 lets a pedestrian clearance be timed at (4 ft/s, where slower pedestrians
#: get extended pushbutton time): the safety profile refuses a faster one, and the audit times no clearance faster
PED_WALKING_SPEED_MAX_MPS = 1.22
#: MUTCD 4E.06 guidance: walk + pedestrian clearance lets a pedestrian who leaves 6 ft behind the curb at the start
#: of walk reach the far side at 3 ft/s
PED_GUIDANCE_SPEED_MPS = 3 * FOOT_M
PED_GUIDANCE_BEHIND_CURB_M = 6 * FOOT_M
#: a cyclist's speed for the change interval of a link from a bicycle lane: 20 km/h, the speed of SUMO's own
#: bicycle (vClass bicycle's default maxSpeed), the cyclists a run simulates. A bicycle path's speed limit is the
#: road's (13.89 m/s on an OSM import): timed at it, a cyclist who enters at the end of yellow would get half the
#: red clearance it needs to cross (ITE's red clearance is the crossing time at the approach speed)
BICYCLE_SPEED_MPS = 20 / 3.6
VEHICLE_LENGTH_M = 6.1  # 20 ft design vehicle, ITE
#: the longest red clearance derived for a motor vehicle's link: ITE's (W + L) / v for a wide junction at a low
#: speed limit gives more than drivers, who see the cross street's yellow, are held for
ALL_RED_MAX_S = 4.0
#: the longest red clearance derived for a link from a lane only bicycles use: a cyclist entering at the end of
#: yellow crosses at 20 km/h, so a 21.8 m path needs 5.0 s; 6 s is the longest all_red_s a run's configuration
#: takes (runtime.config's bound)
CYCLIST_ALL_RED_MAX_S = 6.0


def ite_yellow_s(approach_speed_mps: float, grade: float = 0.0,
                 lo_s: float = 3.0, hi_s: float = 6.0) -> float:
    """Yellow change interval y = t + v / (2a + 2Gg), clamped to [lo_s, hi_s]."""
    v = max(0.0, approach_speed_mps)
    y = ITE_PERCEPTION_REACTION_S + v / (2 * ITE_DECELERATION_MPS2 + 2 * GRAVITY_MPS2 * grade)
    return round(min(hi_s, max(lo_s, y)), 1)


def ite_all_red_s(intersection_width_m: float, approach_speed_mps: float,
                  lo_s: float = 1.0, hi_s: float = ALL_RED_MAX_S) -> float:
    """Red clearance r = (W + L) / v: time to clear the intersection width, clamped to [lo_s, hi_s]."""
    return round(min(hi_s, max(lo_s, crossing_time_s(intersection_width_m, approach_speed_mps))), 1)


def crossing_time_s(intersection_width_m: float, approach_speed_mps: float) -> float:
    """ITE's red clearance before clamping: (W + L) / v, the time a vehicle entering at the end of yellow takes to
    clear the path (speeds below 1 m/s taken as 1 m/s)."""
    return (max(0.0, intersection_width_m) + VEHICLE_LENGTH_M) / max(approach_speed_mps, 1.0)


def ped_clearance_s(crossing_length_m: float, walking_speed_mps: float = PED_WALKING_SPEED_MPS) -> float:
    """Pedestrian clearance (flashing don't walk) = crossing length / walking speed, rounded up to 0.1 s (to the
    nearest would give 14.5 s for the 14.55 s a 16 m crossing takes at 1.1 m/s: a walker still on it)."""
    return round(math.ceil(max(0.0, crossing_length_m) / walking_speed_mps * 10 - 1e-6) / 10, 1)


def ped_walk_and_clearance_guidance_s(crossing_length_m: float) -> float:
    """MUTCD 4E.06 guidance for walk + pedestrian clearance: the crossing from 6 ft (1.83 m) behind the curb at
    3 ft/s (0.914 m/s)."""
    return (max(0.0, crossing_length_m) + PED_GUIDANCE_BEHIND_CURB_M) / PED_GUIDANCE_SPEED_MPS


@dataclass(frozen=True, slots=True)
class WebsterPlan:
    """A fixed-time plan: cycle, green per phase, and whether demand saturates."""

    cycle_s: float
    green_s: tuple[float, ...]
    lost_time_s: float
    flow_ratio_sum: float  # Y
    oversaturated: bool


def webster_plan(flow_ratios: list[float], lost_time_per_phase_s: float,
                 cycle_min_s: float, cycle_max_s: float,
                 min_green_s: list[float] | None = None,
                 max_green_s: list[float] | None = None,
                 saturation_cap: float = 0.9) -> WebsterPlan:
    """Webster's optimum cycle C0 = (1.5 L + 5) / (1 - Y), greens split by y_i / Y.

    `flow_ratios` are the critical flow ratios y_i = q_i / s_i per phase. When
    Y >= `saturation_cap` the formula blows up (C0 -> inf); we cap Y there,
    which yields the maximum cycle, split greens in proportion to demand and
    flag the plan `oversaturated` so the caller can report it.
    """
    n = len(flow_ratios)
    if n == 0:
        raise ValueError("webster_plan needs at least one phase")
    ys = [max(0.0, float(y)) for y in flow_ratios]
    lost_s = lost_time_per_phase_s * n
    y_sum = sum(ys)
    oversaturated = y_sum >= saturation_cap
    y_eff = min(y_sum, saturation_cap)
    cycle = (1.5 * lost_s + 5.0) / (1.0 - y_eff)
    cycle = min(cycle_max_s, max(cycle_min_s, cycle))
    effective_green = max(cycle - lost_s, 0.0)
    if y_sum <= 0:
        shares = [1.0 / n] * n
    else:
        shares = [y / y_sum for y in ys]
    greens = [effective_green * s for s in shares]
    mins = min_green_s or [0.0] * n
    maxs = max_green_s or [float("inf")] * n
    greens = [min(maxs[i], max(mins[i], g)) for i, g in enumerate(greens)]
    cycle = sum(greens) + lost_s
    return WebsterPlan(round(cycle, 1), tuple(round(g, 1) for g in greens), lost_s, round(y_sum, 4), oversaturated)



def ceil_to_step(value_s: float, step_s: float) -> float:
    """`value_s` as a simulation stepping every `step_s` runs it: rounded up to whole steps."""
    return math.ceil(value_s / step_s - 1e-6) * step_s


def shortest_greens_s(min_green_s: Sequence[float], crossing: Sequence[bool], walk_s: float,
                      ped_clearance_s: float | Sequence[float], step_s: float) -> list[float]:
    """Per phase, the shortest green the signal shows: its minimum, or, for a phase serving a crosswalk
    (`crossing`), its walk and pedestrian clearance when longer; each interval rounded up to whole steps of
    `step_s` (0: as given). `ped_clearance_s`: one for every phase, or each phase's own. The shield plans the
    cycle bound with these, and the signal model fits it to them."""
    shown = (lambda v: ceil_to_step(v, step_s)) if step_s > 0 else (lambda v: v)
    clear = ([ped_clearance_s] * len(min_green_s) if isinstance(ped_clearance_s, (int, float))
             else list(ped_clearance_s))
    return [max(shown(g), shown(walk_s) + shown(c)) if cross else shown(g)
            for g, cross, c in zip(min_green_s, crossing, clear, strict=True)]


def required_cycle_s(min_green_s: Sequence[float], clearance_s: float | Sequence[float]) -> float:
    """Shortest cycle that serves every phase once at its minimum green.

    `clearance_s`: one change interval for every phase, or each phase's own.
    """
    if isinstance(clearance_s, (int, float)):
        return sum(min_green_s) + clearance_s * len(min_green_s)
    return sum(min_green_s) + sum(clearance_s)
