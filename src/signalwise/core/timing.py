"""Signal timing formulas traffic engineers use, in SI units.

References: ITE "Guidelines for Determining Traffic Signal Change and
Clearance Intervals" (2020) for yellow and red clearance; Webster (1958),
"Traffic signal settings", for the optimum cycle; MUTCD 4E.06 for pedestrian
clearance, 3.5 ft/s (1.07 m/s), 4 ft/s (1.22 m/s) only with an extended
pushbutton press or passive detection, and for its guidance that walk +
clearance cover the crossing from 6 ft behind the curb at 3 ft/s.

The default walking speed, `PED_WALKING_SPEED_MPS` = 1.1 m/s (3.6 ft/s), is
the project's specification's ("pedestrian clearance = crossing length /
1.1 m/s"), and is faster than the 3.5 ft/s (1.0668 m/s) MUTCD 4E.06 times a
pedestrian clearance at: on a 14 m crossing 12.8 s against 13.2 s. A US
deployment sets `timing: {ped_walking_speed_mps: 1.0668}` (exactly 3.5 ft/s;
1.07 is slightly faster and times some crossings 0.1 s shorter).

ITE's yellow and red clearance are rounded to the nearest 0.1 s, so a recorded
value may be up to 0.05 s below the formula's (2.022 s is 2.0 s); the
pedestrian clearance is rounded up.
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
#: the fastest walking speed MUTCD 4E.06 lets a pedestrian clearance be timed at: 4 ft/s, and only where an extended
#: pushbutton press or passive detection gives slower pedestrians a longer clearance (its normal speed is 3.5 ft/s):
#: the safety profile refuses a faster one, and the audit times no clearance faster
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
    """Yellow change interval y = t + v / (2a + 2Gg), clamped to [lo_s, hi_s], to the nearest 0.1 s."""
    v = max(0.0, approach_speed_mps)
    y = ITE_PERCEPTION_REACTION_S + v / (2 * ITE_DECELERATION_MPS2 + 2 * GRAVITY_MPS2 * grade)
    return round(min(hi_s, max(lo_s, y)), 1)


def ite_all_red_s(intersection_width_m: float, approach_speed_mps: float,
                  lo_s: float = 1.0, hi_s: float = ALL_RED_MAX_S) -> float:
    """Red clearance r = (W + L) / v: time to clear the intersection width, clamped to [lo_s, hi_s], to the nearest
    0.1 s."""
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
    """A fixed-time plan: cycle, green per phase, and whether demand saturates.

    `green_s` is each phase's displayed green (what the signal shows before its yellow), and `cycle_s` the sum of
    the displayed greens and the change intervals: the cycle the signal runs. `lost_time_s` is Webster's L,
    the cycle's lost time (`webster_plan`), to the millisecond (LOST_TIME_DECIMALS)."""

    cycle_s: float
    green_s: tuple[float, ...]
    lost_time_s: float
    flow_ratio_sum: float  # Y
    oversaturated: bool


#: the decimals a plan's lost time is recorded to (0.001 s): its sum of per-phase means read 24.999999999999996
LOST_TIME_DECIMALS = 3


def webster_plan(flow_ratios: list[float], lost_time_per_phase_s: float,
                 cycle_min_s: float, cycle_max_s: float,
                 min_green_s: list[float] | None = None,
                 max_green_s: list[float] | None = None,
                 saturation_cap: float = 0.9, *,
                 start_up_lost_s: float = 0.0, extension_s: float = 0.0, step_s: float = 0.0) -> WebsterPlan:
    """Webster's optimum cycle C0 = (1.5 L + 5) / (1 - Y), effective greens split by y_i / Y.

    `flow_ratios` are the critical flow ratios y_i = q_i / s_i per phase. When
    Y >= `saturation_cap` the formula blows up (C0 -> inf); we cap Y there,
    which yields the maximum cycle, split greens in proportion to demand and
    flag the plan `oversaturated` so the caller can report it.

    The model (HCM's): each phase i loses l = l1 + (Y_i + R_i) - e of its interval, `lost_time_per_phase_s`
    (the mean over the phases; L = n l), where l1 is the start-up lost time (`start_up_lost_s`), Y_i + R_i its
    yellow and red clearance and e the part of them drivers still use as green (`extension_s`). The effective
    greens g_i = (C - L) y_i / Y are turned into displayed greens G_i = g_i + l1 - e, so that the displayed
    greens and the change intervals, Sum G_i + Sum (Y_i + R_i), add up to C: the plan's cycle is the cycle run.

    The displayed greens are held to `min_green_s` and `max_green_s`. A phase held at one lengthens or shortens
    the cycle by the difference, as long as the cycle stays within `cycle_min_s`..`cycle_max_s`; beyond them the
    other phases give up (or take) the difference. With `step_s` > 0 every displayed green is a whole number of
    steps (largest remainders, the cycle's total kept), as a signal stepping every `step_s` shows it; the change
    intervals in `lost_time_per_phase_s` are then expected in whole steps too. Only bounds that contradict each
    other (the minimum greens alone need more than `cycle_max_s`, the maximum greens fill less than
    `cycle_min_s`) leave the cycle outside them.
    """
    n = len(flow_ratios)
    if n == 0:
        raise ValueError("webster_plan needs at least one phase")
    ys = [max(0.0, float(y)) for y in flow_ratios]
    lost_s = lost_time_per_phase_s * n
    gain_s = start_up_lost_s - extension_s  # displayed green - effective green, per phase
    clearance_total_s = lost_s - gain_s * n  # the change intervals the cycle shows
    y_sum = sum(ys)
    oversaturated = y_sum >= saturation_cap
    y_eff = min(y_sum, saturation_cap)
    cycle = (1.5 * lost_s + 5.0) / (1.0 - y_eff)
    cycle = min(cycle_max_s, max(cycle_min_s, cycle))
    effective_green = max(cycle - lost_s, 0.0)
    shares = [1.0 / n] * n if y_sum <= 0 else [y / y_sum for y in ys]
    mins = list(min_green_s) if min_green_s else [0.0] * n
    maxs = list(max_green_s) if max_green_s else [float("inf")] * n
    greens = [min(maxs[i], max(mins[i], effective_green * s + gain_s)) for i, s in enumerate(shares)]
    # the cycle a phase held at its minimum or maximum makes, brought back within the bounds
    total = sum(greens)
    low, high = cycle_min_s - clearance_total_s, cycle_max_s - clearance_total_s
    if total > high + 1e-9:
        greens = _fit_greens(greens, high, mins, maxs)
    elif total < low - 1e-9:
        greens = _fit_greens(greens, low, mins, maxs)
    if step_s > 0:
        greens = _greens_in_steps(greens, mins, maxs, low, high, step_s)
        cycle = sum(greens) + clearance_total_s
        return WebsterPlan(round(cycle, 6), tuple(round(g, 6) for g in greens), round(lost_s, LOST_TIME_DECIMALS),
                           round(y_sum, 4), oversaturated)
    greens = [round(g, 1) for g in greens]
    return WebsterPlan(round(sum(greens) + clearance_total_s, 1), tuple(greens), round(lost_s, LOST_TIME_DECIMALS),
                       round(y_sum, 4), oversaturated)


def _fit_greens(greens: list[float], total_s: float, mins: list[float], maxs: list[float]) -> list[float]:
    """`greens` changed to add up to `total_s`: the phases not at the bound in the way give or take the difference
    in proportion to their greens, each held within its `mins`..`maxs` (as far as they allow)."""
    out = list(greens)
    for _ in range(len(out) + 1):
        diff = total_s - sum(out)
        if abs(diff) < 1e-9:
            break
        free = [i for i in range(len(out)) if (out[i] < maxs[i] - 1e-9 if diff > 0 else out[i] > mins[i] + 1e-9)]
        if not free:
            break
        weight = sum(out[i] for i in free)
        for i in free:
            share = out[i] / weight if weight > 0 else 1.0 / len(free)
            out[i] = min(maxs[i], max(mins[i], out[i] + diff * share))
    return out


def _greens_in_steps(greens: list[float], mins: list[float], maxs: list[float], low_s: float, high_s: float,
                     step_s: float) -> list[float]:
    """`greens` in whole steps of `step_s`, their total the nearest whole steps to theirs within `low_s`..`high_s`
    (the greens' share of the cycle bounds), each within its `mins`..`maxs` rounded inwards to whole steps (a
    minimum up, a maximum down): largest remainders first."""
    units = [g / step_s for g in greens]
    lo = [math.ceil(m / step_s - 1e-6) for m in mins]
    hi = [max(lo[i], math.floor(m / step_s + 1e-6)) if math.isfinite(m) else math.inf for i, m in enumerate(maxs)]
    target = round(sum(units))
    if target * step_s > high_s + 1e-6:
        target = math.floor(high_s / step_s + 1e-6)
    if target * step_s < low_s - 1e-6:
        target = math.ceil(low_s / step_s - 1e-6)
    whole = [min(hi[i], max(lo[i], math.floor(u + 1e-6))) for i, u in enumerate(units)]
    # remainders largest first for adding a step, smallest first for taking one
    order = sorted(range(len(units)), key=lambda i: units[i] - whole[i], reverse=True)
    while sum(whole) < target:
        grow = [i for i in order if whole[i] < hi[i]]
        if not grow:
            break
        whole[grow[0]] += 1
        order = sorted(range(len(units)), key=lambda i: units[i] - whole[i], reverse=True)
    while sum(whole) > target:
        shrink = [i for i in reversed(order) if whole[i] > lo[i]]
        if not shrink:
            break
        whole[shrink[0]] -= 1
        order = sorted(range(len(units)), key=lambda i: units[i] - whole[i], reverse=True)
    return [w * step_s for w in whole]



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
