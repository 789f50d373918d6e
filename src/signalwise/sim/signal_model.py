"""Read the signal model of every traffic light from a running SUMO.

We keep the network's *green* phases only and generate the change intervals
ourselves (yellow for each link that loses its green, then all-red), so
programs with no yellow phases, extra phases or overlapping greens all map to
the same model. Phases that differ only in their crosswalk links are merged
(netconvert emits a "pedestrians red" copy of each phase; we time pedestrian
clearance ourselves). A state that shows green to crosswalks only (an
exclusive pedestrian phase, the walk of a mid-block crossing) is a phase of
its own: dropped, the crosswalks only it serves would never see a walk; it
has no vehicle yellow, and its red clearance is MUTCD's buffer interval
(`phase_change_intervals_s`). A traffic light we cannot model safely is
refused with a reason and left out of control; a pedestrian clearance
configured shorter than the signal's longest crosswalk takes at the walking
speed refuses the run (`UnsafePedClearance`), while a configured yellow or
red clearance below ITE's for the geometry runs and is said (`below_ite_notes`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..core.timing import (
    ALL_RED_MAX_S,
    BICYCLE_SPEED_MPS,
    CYCLIST_ALL_RED_MAX_S,
    ITE_DECELERATION_MPS2,
    ITE_PERCEPTION_REACTION_S,
    PED_GUIDANCE_BEHIND_CURB_M,
    PED_GUIDANCE_SPEED_MPS,
    PED_WALKING_SPEED_MPS,
    VEHICLE_LENGTH_M,
    ceil_to_step,
    crossing_time_s,
    ite_all_red_s,
    ite_yellow_s,
    ped_clearance_s,
    ped_walk_and_clearance_guidance_s,
    required_cycle_s,
    shortest_greens_s,
)
from ..core.types import Crosswalk, Intersection, Movement, Phase, Timing
from .scenario import ScenarioError
from .wauts import Waut, loaded_wauts

GREEN = "Gg"
#: SUMO's `TrafficLightType::NEMA` (a program logic's `type`): one phase of each ring green at the same time
NEMA_TYPE = 4
#: SUMO's `TrafficLightType::RAIL_SIGNAL` and `RAIL_CROSSING`
RAIL_TYPES = (1, 2)

#: timing defaults: field -> seconds, None = derive from geometry (the run configuration's `timing`)
TimingDefaults = Mapping[str, float | None]


class UnsupportedSignal(ValueError):
    """A traffic light whose program cannot be controlled safely."""


class UnsafePedClearance(ScenarioError):
    """A configured pedestrian clearance shorter than its signal's crossing takes at the walking speed: the run is
    refused (as a yellow below 3 s is), not the signal left to its own program."""


class UnknownPhaseTiming(ScenarioError):
    """A signal's own timing names a phase the signal does not have (`timing.per_intersection.<id>.phases`): the run
    is refused, the signal's phases listed, rather than the values ignored."""


@dataclass(frozen=True, slots=True)
class CyclistMovement(Movement):
    """A link from a lane only bicycles use: its red clearance is a cyclist's crossing time up to
    `CYCLIST_ALL_RED_MAX_S`, not capped at a motor vehicle's `ALL_RED_MAX_S`. A kind of its own, so a timing
    derived again from the model alone (`retimed`) keeps it."""


@dataclass(frozen=True, slots=True)
class RefusedSignal:
    id: str
    reason: str


def phase_key(state: str, crosswalk_links: frozenset[int]) -> str | None:
    """Which green phase a program state is, or None for a state that is none (a yellow, an all-red).

    States with the same vehicle links green are one phase (the key: the state with its crosswalks red). A
    state with crosswalks only green is a pedestrian phase, one per distinct state (the key: the state)."""
    if "y" in state or "Y" in state or "u" in state:
        return None
    vehicle_key = "".join("r" if i in crosswalk_links else c for i, c in enumerate(state))
    if any(c in GREEN for c in vehicle_key):
        return vehicle_key
    if any(state[i] in GREEN for i in crosswalk_links):
        return state
    return None  # all red: we generate clearances ourselves


def green_phases_with_durations(program: list[tuple[str, float]],
                                crosswalk_links: frozenset[int]) -> list[tuple[str, float]]:
    """The distinct green phases of a program, crosswalk-only variants merged (`phase_key`).

    A state is a green phase if it shows green to a link and no yellow. Two
    states with the same vehicle links green (at least one) are one phase; its
    crosswalk links are green if any variant shows them green. A state green
    to crosswalks only is a pedestrian phase.
    """
    merged: dict[str, list[str]] = {}
    durations: dict[str, float] = {}
    for state, duration_s in program:
        if any(c in "oO" for c in state):
            raise UnsupportedSignal("program has off/blinking states ('o'/'O')")
        vehicle_key = phase_key(state, crosswalk_links)
        if vehicle_key is None:
            continue
        slot = merged.get(vehicle_key)
        durations[vehicle_key] = durations.get(vehicle_key, 0.0) + duration_s
        if slot is None:
            merged[vehicle_key] = list(state)
        else:
            for i in crosswalk_links:
                if state[i] in GREEN:
                    slot[i] = "G"
    return [("".join(s), durations[k]) for k, s in merged.items()]


def read_intersection(api, tls_id: str, defaults: TimingDefaults,
                      overrides: dict | None = None, wauts: Mapping[str, list[Waut]] | None = None) -> Intersection:
    """Build the `Intersection` of one traffic light from a running simulation.

    `api` is the `libsumo` or `traci` module (same interface). `wauts`: per signal, the WAUTs of the loaded
    additional files (`wauts.loaded_wauts`; read here when not given).
    """
    links = api.trafficlight.getControlledLinks(tls_id)
    n_links = len(links)
    movements: list[Movement] = []
    crosswalk_lanes: dict[str, list[int]] = {}
    via_lengths_m: list[float] = []
    speed_of: dict[str, float] = {}  # one question per incoming lane (a remote SUMO answers each)
    cyclists_only: dict[str, bool] = {}
    for index, link_group in enumerate(links):
        if not link_group:
            continue  # an unused signal index
        first_in, first_out, _via = link_group[0]
        if _is_crossing_lane(first_out) or _is_crossing_lane(first_in):
            crossing = first_out if _is_crossing_lane(first_out) else first_in
            crosswalk_lanes.setdefault(crossing, []).append(index)
            movements.append(Movement(index, first_in, first_out, True))
            continue
        # a signal index may serve several connections (netconvert --tls.group-signals): a movement for each, so
        # that every lane it serves is observed and its change interval clears each approach and path
        for in_lane, out_lane, via in link_group:
            path_m = path_across_m(api, via) if via else None
            if path_m is not None:
                via_lengths_m.append(path_m)
            if in_lane not in speed_of:
                cyclists_only[in_lane] = is_bicycle_lane(api, in_lane)
                speed_of[in_lane] = approach_speed_mps(api, in_lane, cyclists_only[in_lane])
            kind = CyclistMovement if cyclists_only[in_lane] else Movement
            movements.append(kind(index, in_lane, out_lane, False, speed_of[in_lane], path_m))
    crosswalk_links = frozenset(i for idx in crosswalk_lanes.values() for i in idx)
    crosswalks = tuple(
        Crosswalk(lane.rsplit("_", 1)[0], tuple(idx), api.lane.getLength(lane))
        for lane, idx in sorted(crosswalk_lanes.items())
    )

    program = _current_program(api, tls_id)
    if program.type in RAIL_TYPES:
        raise UnsupportedSignal("a rail signal or rail crossing: trains' signals are SUMO's own to run")
    if program.type == NEMA_TYPE:
        raise UnsupportedSignal(
            f"program {program.programID!r} is NEMA dual-ring (a phase of each ring green at once), which "
            "signalwise does not model; a static or actuated program is (--tls.default-type static)")
    states = [p.state for p in program.phases]
    if any(len(s) != n_links for s in states):
        raise UnsupportedSignal(f"program {program.programID!r} state length differs from {n_links} links")
    greens_timed = green_phases_with_durations([(p.state, float(p.duration)) for p in program.phases],
                                               crosswalk_links)
    greens = [s for s, _ in greens_timed]
    if not greens:
        raise UnsupportedSignal(f"program {program.programID!r} has no green phase")
    if len(greens) == 1:
        # nothing to choose between: every decision would hold it (a ramp meter, a green that never ends)
        raise UnsupportedSignal(single_green_reason(program.programID, greens[0], [
            (p.state, float(p.duration)) for p in program.phases], movements, crosswalk_links))
    by_index: dict[int, list[Movement]] = {}
    for m in movements:
        by_index.setdefault(m.link_index, []).append(m)
    phases = tuple(
        Phase(i, state, tuple(m for j, c in enumerate(state) if c in GREEN for m in by_index.get(j, ())))
        for i, state in enumerate(greens)
    )
    notes: list[str] = []
    ever_green = set().union(*(p.green_links for p in phases))
    vehicle_links = {m.link_index for m in movements if not m.is_crosswalk}
    never = sorted(vehicle_links - ever_green)
    if never:
        notes.append(f"links {never} are never green in the network's program")
    unserved = [c for c in crosswalks if not set(c.link_indices) & ever_green]
    if unserved:
        notes.append(UNSERVED_CROSSWALK_NOTE + ", ".join(f"{c.id} (links {list(c.link_indices)})" for c in unserved))
    notes.extend(_plan_notes(program.type, _offset_s(api, tls_id), states, crosswalk_links))
    notes.extend(waut_notes(program.programID, (loaded_wauts(api) if wauts is None else wauts).get(tls_id, [])))

    short = short_ped_clearance(tls_id, crosswalks, defaults, overrides or {})
    if short:
        raise UnsafePedClearance(short)
    unknown = unknown_phase_timing(tls_id, phases, overrides or {})
    if unknown:
        raise UnknownPhaseTiming(unknown)
    speed_mps = max((m.approach_speed_mps for m in movements if not m.is_crosswalk), default=13.9)
    width_m = max(via_lengths_m, default=15.0)
    timing = derive_timing(phases, crosswalks, speed_mps, width_m, defaults, overrides or {}, notes)
    cut = [(k + 1, g) for k, (g, most) in enumerate(zip((d for _, d in greens_timed), timing.max_green_s,
                                                        strict=True)) if g > most + 1e-6]
    if cut:
        notes.append(PLAN_NOTE + "greens longer than max_green_s are cut to it (" + ", ".join(
            f"phase {k} {g:g} s > {timing.max_green_s[k - 1]:g} s" for k, g in cut) + ")")
    played = {**defaults, **(overrides or {})}
    notes.extend(lengthened_greens_notes(tls_id, [d for _, d in greens_timed], phases, crosswalk_links, timing,
                                         played, overrides or {}))
    notes.extend(cycle_bound_notes([d for _, d in greens_timed], phases, crosswalk_links, timing, played))
    notes.extend(program_greens_notes(program, crosswalk_links, timing))
    all_red_given = {**defaults, **(overrides or {})}.get("all_red_s")
    if all_red_given is None or float(all_red_given) >= CYCLIST_ALL_RED_MAX_S - 1e-9:
        notes.extend(cyclist_clearance_notes(phases, width_m))  # shorter: a below-ITE note says what it needs
    notes.extend(below_ite_notes(tls_id, phases, speed_mps, width_m, timing, defaults, overrides or {}))
    onsets_s, changes_s = program_splits_s([(p.state, float(p.duration)) for p in program.phases], crosswalk_links,
                                           [phase_key(g, crosswalk_links) for g in greens])
    return Intersection(tls_id, phases, n_links, tuple(movements), (), crosswalks, timing, speed_mps, width_m,
                        tuple(d for _, d in greens_timed), tuple(notes),
                        program_cycle_s=sum(float(p.duration) for p in program.phases),
                        program_offset_s=_offset_s(api, tls_id), program_green_onset_s=onsets_s,
                        program_change_s=changes_s)


def program_splits_s(program: list[tuple[str, float]], crosswalk_links: frozenset[int],
                     phase_keys: list[str | None]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per phase (`phase_keys`, as `phase_key` gives them, in the phases' order), where its green begins in the
    program's cycle (s from the program's start, as SUMO counts it) and the program's time from the end of that
    green to the start of the next (its yellow and all-red states): a coordinated plan's splits
    (`control.coordinated`). Both empty when a phase's green is not one run of states a cycle (the program
    serves it twice), where a phase has no split of its own."""
    keys = [phase_key(state, crosswalk_links) for state, _ in program]
    starts, t = [], 0.0
    for _state, duration_s in program:
        starts.append(t)
        t += duration_s
    cycle_s = t
    n = len(program)
    # the runs of states of one green phase, going round the cycle from a state that begins a run
    first = next((j for j in range(n) if keys[j] is not None and keys[j] != keys[j - 1]), None)
    if first is None or cycle_s <= 0:
        return (), ()
    runs: list[tuple[str, float, float]] = []  # (key, onset, end) in program time, end may pass the cycle
    for j in range(first, first + n):
        k, at = keys[j % n], starts[j % n] + (cycle_s if j >= n else 0.0)
        if k is None:
            continue
        if runs and runs[-1][0] == k and abs(runs[-1][2] - at) < 1e-9:
            runs[-1] = (k, runs[-1][1], at + program[j % n][1])
        else:
            runs.append((k, at, at + program[j % n][1]))
    if len(runs) != len(set(r[0] for r in runs)) or sorted(r[0] for r in runs) != sorted(
            k for k in phase_keys if k is not None) or len(phase_keys) != len(runs):
        return (), ()
    by_key = {r[0]: i for i, r in enumerate(runs)}
    onsets, changes = [], []
    for k in phase_keys:
        i = by_key[k]
        _k, onset, end = runs[i]
        next_onset = runs[(i + 1) % len(runs)][1] + (cycle_s if i + 1 == len(runs) else 0.0)
        onsets.append(onset % cycle_s)
        changes.append(next_onset - end)
    return tuple(onsets), tuple(changes)


def walking_speed_mps(timing: TimingDefaults) -> float:
    """The walking speed a signal's pedestrian clearance is timed at (`timing.ped_walking_speed_mps`)."""
    return float(timing.get("ped_walking_speed_mps") or PED_WALKING_SPEED_MPS)


def short_ped_clearance(tls_id: str, crosswalks: tuple[Crosswalk, ...], defaults: TimingDefaults,
                        overrides: dict) -> str | None:
    """Why a signal's configured pedestrian clearance is too short: below its longest crosswalk's length / the
    walking speed, the clearance derived when none is given. None when it is not, when none is configured, and
    when the signal's pedestrian intervals are not timed (the benchmark and reference profiles)."""
    d = {**defaults, **overrides}
    given = d.get("ped_clearance_s")
    if given is None or not crosswalks or not d.get("ped_intervals", True):
        return None
    speed = walking_speed_mps(d)
    longest = max(crosswalks, key=lambda c: c.length_m)
    need = ped_clearance_s(longest.length_m, speed)
    if float(given) >= need - 1e-9:
        return None
    own = f"timing.per_intersection.{tls_id}."
    key = (own if "ped_clearance_s" in overrides else "timing.") + "ped_clearance_s"
    speed_key = (own if "ped_walking_speed_mps" in overrides else "timing.") + "ped_walking_speed_mps"
    return (f"{key} {float(given):g} s is shorter than signal {tls_id!r} needs: its crosswalk {longest.id} is "
            f"{longest.length_m:.1f} m, {need:.1f} s at the walking speed of {speed:g} m/s ({speed_key}); give at "
            f"least {need:.1f} s, or null to derive it from the crossing")


#: the key of a signal's own timing holding its phases' own values (`runtime.config.PHASES_KEY`)
PHASES_KEY = "phases"


def phase_overrides(overrides: Mapping) -> dict[int, dict[str, float]]:
    """A signal's own per-phase values (`timing.per_intersection.<id>.phases`), by phase number (1-based, as the
    event log numbers phases); {} when it has none."""
    return {int(n): dict(v) for n, v in (overrides.get(PHASES_KEY) or {}).items()}


def unknown_phase_timing(tls_id: str, phases: tuple[Phase, ...], overrides: Mapping) -> str | None:
    """Why a signal's own per-phase values cannot apply: they name a phase it does not have (its phases listed,
    each with the approaches it serves); None when they can."""
    unknown = sorted(set(phase_overrides(overrides)) - {p.number for p in phases})
    if not unknown:
        return None
    listed = "; ".join(f"{p.number}: {_phase_approaches(p)}" for p in phases)
    return (f"timing.per_intersection.{tls_id}.phases names phase {', '.join(map(str, unknown))}, which signal "
            f"{tls_id!r} does not have: it has phases 1..{len(phases)} ({listed}), numbered as its event log, the "
            "ATSPM charts and the dashboard number them")


def _phase_approaches(p: Phase) -> str:
    """The incoming edges a phase's green serves (`from W_J1, E_J1`), or `crosswalks only`."""
    edges = list(dict.fromkeys(m.in_lane.rsplit("_", 1)[0] for m in p.movements if not m.is_crosswalk))
    return f"from {', '.join(edges)}" if edges else "crosswalks only"


def approach_speed_mps(api, lane: str, bicycles_only: bool | None = None) -> float:
    """The speed a link's change interval is timed at: the lane's speed limit, or on a lane only bicycles may use
    (a bicycle lane or path) a cyclist's speed when lower: a bicycle path carries the road's limit, and a cyclist
    crossing at 20 km/h needs more than twice the red clearance a car at 50 km/h does. `bicycles_only`: whether
    the lane is such a lane, when already asked (`is_bicycle_lane`)."""
    limit_mps = api.lane.getMaxSpeed(lane)
    if bicycles_only if bicycles_only is not None else is_bicycle_lane(api, lane):
        return min(limit_mps, BICYCLE_SPEED_MPS)
    return limit_mps


def is_bicycle_lane(api, lane: str) -> bool:
    """Whether only bicycles may use the lane (a bicycle lane or path)."""
    allowed = set(api.lane.getAllowed(lane))
    return bool(allowed) and allowed <= BICYCLE_CLASSES


#: vehicle classes of a bicycle lane (SUMO's `bicycle`; `--bikelanes.guess` and OSM cycleways allow only it)
BICYCLE_CLASSES = frozenset({"bicycle"})


def single_green_reason(program_id: str, green: str, program: list[tuple[str, float]],
                        movements: list[Movement], crosswalk_links: frozenset[int]) -> str:
    """Why a program with one green phase is refused, saying what it is: a green that never ends, or one
    green with its yellow and red (a ramp meter), and which links it never shows green.

    Only the reason: whoever reads it says what becomes of the signal (a run leaves it to its own program;
    with no other signal there is no run)."""
    red = sorted({m.link_index for m in movements if not m.is_crosswalk} - {
        i for i, c in enumerate(green) if c in GREEN})
    between_s: dict[str, float] = {}  # the program's other intervals, as its vehicles see them
    for state, duration_s in program:
        vehicles = [c for i, c in enumerate(state) if i not in crosswalk_links]
        if any(c in "yYu" for c in vehicles):
            between_s["yellow"] = between_s.get("yellow", 0.0) + duration_s
        elif not any(c in GREEN for c in vehicles):
            between_s["red"] = between_s.get("red", 0.0) + duration_s
    shown = f" (links {red} are never green)" if red else "" if between_s else " (always green for its vehicles)"
    others = " and ".join(f"{kind} ({s:g} s)" for kind, s in between_s.items())
    return (f"program {program_id!r} has a single green phase{shown}" + (f", with its {others}" if others else "")
            + ": nothing to choose between")


#: a signal's note that its cycle_max_s was raised to fit its phases' minimum greens and clearances (a live timing
#: change's answer says it: `retimed`)
CYCLE_RAISED_NOTE = "cycle bound raised: "
#: a signal's note that a phase's max_green_s was raised to its minimum green (a crosswalk phase's walk + pedestrian
#: clearance): a run warns of it at start (`timing_warnings`), a live timing change's answer says it
MAX_GREEN_RAISED_NOTE = "max green raised: "


def retimed(inter: Intersection, defaults: TimingDefaults, overrides: dict | None = None,
            notes: list[str] | None = None) -> Timing:
    """The timing of an intersection already read, under new defaults (a live timing change); `notes`, when
    given, gets the derivation's notes (a raised cycle bound: `CYCLE_RAISED_NOTE`), which the change's answer says.

    A running simulation cannot be asked again: once signals are driven, SUMO
    reports the driven state as a one-phase program.
    """
    return derive_timing(inter.phases, inter.crosswalks, inter.approach_speed_mps, inter.width_m, defaults,
                         overrides or {}, notes if notes is not None else [])


def derive_timing(phases: tuple[Phase, ...], crosswalks: tuple[Crosswalk, ...], approach_speed_mps: float,
                  width_m: float, defaults: TimingDefaults, overrides: dict, notes: list[str]) -> Timing:
    """Safety timing from geometry and defaults; per-intersection overrides win, and a phase's own minimum and
    maximum green (`overrides['phases']`, by phase number) win over the signal's."""
    d = {**defaults, **overrides}
    own_phase = phase_overrides(overrides)
    phase_yellow, phase_all_red = phase_change_intervals_s(phases, approach_speed_mps, width_m, d["yellow_s"],
                                                           d["all_red_s"], bool(d.get("ped_intervals", True)))
    yellow, all_red = max(phase_yellow), max(phase_all_red)
    longest_cw = max((c.length_m for c in crosswalks), default=0.0)
    ped_clear = (d["ped_clearance_s"] if d["ped_clearance_s"] is not None
                 else ped_clearance_s(longest_cw, walking_speed_mps(d)))
    walk = float(d["ped_walk_s"]) if crosswalks else 0.0
    ped_intervals = bool(d.get("ped_intervals", True))
    if not crosswalks or not ped_intervals:
        walk, ped_clear = 0.0, 0.0
    phase_ped_clear = phase_ped_clearances_s(phases, crosswalks, d) if walk or ped_clear else ()
    cw_links = {i for c in crosswalks for i in c.link_indices}
    min_green = []
    for p in phases:
        g = float(own_phase.get(p.number, {}).get("min_green_s", d["min_green_s"]))
        if p.green_links & cw_links:
            g = max(g, walk + (phase_ped_clear[p.index] if phase_ped_clear else ped_clear))
        min_green.append(math.ceil(g))
    given_max = [float(own_phase.get(p.number, {}).get("max_green_s", d["max_green_s"])) for p in phases]
    max_green = [max(m, g) for m, g in zip(given_max, min_green, strict=True)]
    notes.extend(_max_green_raised_notes(phases, given_max, min_green, cw_links, walk,
                                         phase_ped_clear or [ped_clear] * len(phases)))
    cycle_min, cycle_max = float(d["cycle_min_s"]), float(d["cycle_max_s"])
    # as the signal shows them: each interval rounded up to whole simulation steps (a 3.3 s yellow shows 4 s at 1 s;
    # a crosswalk phase's walk and pedestrian clearance each so, as the shield times them)
    step_s = float(d.get("step_length_s") or 0.0)
    shown = (lambda v: ceil_to_step(v, step_s)) if step_s > 0 else (lambda v: v)
    shortest = shortest_greens_s(min_green, [bool(p.green_links & cw_links) for p in phases], walk,
                                 phase_ped_clear or ped_clear, step_s)
    if walk or ped_clear:
        notes.extend(_ped_guidance_notes(phases, crosswalks, shown(walk), [shown(c) for c in phase_ped_clear],
                                         step_s))
    need = required_cycle_s(shortest, [shown(y) + shown(r) for y, r in zip(phase_yellow, phase_all_red, strict=True)])
    if cycle_max < need:
        notes.append(CYCLE_RAISED_NOTE + f"cycle_max_s {cycle_max:g} s raised to {math.ceil(need)} s: the phases' "
                     f"minimum greens with their yellow and all-red need {math.ceil(need)} s")
        cycle_max = float(math.ceil(need))
    cycle_min = min(cycle_min, cycle_max)
    if cycle_min < need:
        cycle_min = float(math.ceil(need))
    for name, value in (("yellow_s", yellow), ("all_red_s", all_red), ("min_green_s", d["min_green_s"])):
        if value is None or value < 0:
            raise UnsupportedSignal(f"invalid timing {name}={value}")
    return Timing(float(yellow), float(all_red), tuple(min_green), tuple(max_green), walk, float(ped_clear),
                  cycle_min, cycle_max, ped_intervals, phase_yellow, phase_all_red, bool(d.get("cycle_calls", False)),
                  bool(d.get("protected_yellow", True)), phase_ped_clear)


def _max_green_raised_notes(phases: tuple[Phase, ...], given_max_s: list[float], min_green_s: list[float],
                            cw_links: set[int], walk_s: float, ped_clear_s) -> list[str]:
    """The note, when a phase's maximum green as given is shorter than its minimum green (a crosswalk phase's walk +
    pedestrian clearance): the minimum runs, so the operator is told the value given is not what runs."""
    short = []
    for p, given, least in zip(phases, given_max_s, min_green_s, strict=True):
        if given >= least - 1e-9:
            continue
        why = (f" (walk {walk_s:g} s + pedestrian clearance {ped_clear_s[p.index]:g} s)"
               if p.green_links & cw_links and walk_s + ped_clear_s[p.index] > 0 else "")
        short.append(f"phase {p.number} max_green_s {given:g} s runs {least:g} s, its minimum green{why}")
    if not short:
        return []
    return [MAX_GREEN_RAISED_NOTE + "; ".join(short) + ": a maximum green never ends a green before its minimum"]


def served_crosswalks(phase: Phase, crosswalks: tuple[Crosswalk, ...]) -> list[Crosswalk]:
    """The crosswalks `phase`'s green serves (a link of theirs green in it)."""
    return [c for c in crosswalks if set(c.link_indices) & phase.green_links]


def phase_ped_clearances_s(phases: tuple[Phase, ...], crosswalks: tuple[Crosswalk, ...],
                           timing: TimingDefaults) -> tuple[float, ...]:
    """Each phase's pedestrian clearance (MUTCD 4E.06 times it per crossing): the longest crosswalk it serves at
    the walking speed, or a configured `ped_clearance_s` (every phase's; `short_ped_clearance` holds it to the
    longest crosswalk); 0 for a phase serving none. A phase over short crosswalks so ends its flashing don't walk,
    and may end its green, when they are clear rather than when the signal's longest would be."""
    given = timing.get("ped_clearance_s")
    out = []
    for p in phases:
        served = served_crosswalks(p, crosswalks)
        if not served:
            out.append(0.0)
        elif given is not None:
            out.append(float(given))
        else:
            out.append(ped_clearance_s(max(c.length_m for c in served), walking_speed_mps(timing)))
    return tuple(out)


def _ped_guidance_notes(phases: tuple[Phase, ...], crosswalks: tuple[Crosswalk, ...], walk_s: float,
                        clearance_s: list[float], step_s: float) -> list[str]:
    """The note, when a phase's walk + pedestrian clearance as shown (`clearance_s`: each phase's) is below
    MUTCD 4E.06's guidance for the longest crosswalk it serves: guidance, not a rule, so a run warns
    (`pedestrian_warnings`) and neither refuses nor fails it."""
    short = []
    for p, clear_s in zip(phases, clearance_s, strict=True):
        served = served_crosswalks(p, crosswalks)
        if not served:
            continue
        longest = max(served, key=lambda c: c.length_m)
        guidance = ped_walk_and_clearance_guidance_s(longest.length_m)
        if walk_s + clear_s < guidance - 1e-6:
            short.append(f"phase {p.number} {walk_s + clear_s:g} s ({walk_s:g} s + {clear_s:g} s) < {guidance:.1f} s "
                         f"for crosswalk {longest.id} ({longest.length_m:.1f} m)")
    if not short:
        return []
    steps = f" as shown at {step_s:g} s steps" if step_s > 0 else ""
    return [PED_GUIDANCE_NOTE + f"walk + pedestrian clearance{steps} is below MUTCD 4E.06's guidance (the "
            f"longest crosswalk a phase serves, crossed from {PED_GUIDANCE_BEHIND_CURB_M:.2f} m behind the curb at "
            f"{PED_GUIDANCE_SPEED_MPS:.3f} m/s): " + ", ".join(short) + "; a longer ped_walk_s meets it"]


def phase_change_intervals_s(phases: tuple[Phase, ...], approach_speed_mps: float, width_m: float,
                             yellow_s: float | None, all_red_s: float | None, ped_intervals: bool = True
                             ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each phase's yellow and red clearance: the longest any of its vehicle links needs (ITE, per approach).

    ITE works both out per approach: the yellow from that approach's speed,
    the red clearance from the time to cross the junction on that path at that
    speed. One value for the whole junction would take the fastest approach's
    speed and the longest path, which is too long a yellow for a slow approach
    and too short a red clearance for a slow approach with a long path. A value
    given (the profile's, the configuration's) applies to every phase serving a
    vehicle link. Links without their own speed or path take the junction's. A
    red clearance derived is capped at `ALL_RED_MAX_S`, a cyclist's link's at
    `CYCLIST_ALL_RED_MAX_S` (`red_clearance_cap_s`).

    A phase serving no vehicle link (an exclusive pedestrian phase) with
    pedestrian intervals timed has no yellow: no vehicle is stopping, and its
    crosswalks' flashing don't walk has already ended their green. Its red
    clearance is MUTCD 4E.06's buffer interval, `PED_BUFFER_S`, or a longer
    configured `all_red_s`. Without pedestrian intervals (the benchmark and reference
    profiles) its crosswalks end their green as vehicle links do, and it takes
    the configured values, or the junction's.
    """
    ite_yellow, ite_all_red = ite_change_intervals_s(phases, approach_speed_mps, width_m)
    yellows, all_reds = [], []
    for yellow_ite, all_red_ite in zip(ite_yellow, ite_all_red, strict=True):
        if yellow_ite is None and ped_intervals:
            yellows.append(0.0)
            all_reds.append(max(PED_BUFFER_S, float(all_red_s or 0.0)))  # an agency's longer all-red holds
            continue
        if yellow_ite is None:
            yellow_ite, all_red_ite = ite_yellow_s(approach_speed_mps), ite_all_red_s(width_m, approach_speed_mps)
        yellows.append(float(yellow_s) if yellow_s is not None else yellow_ite)
        all_reds.append(float(all_red_s) if all_red_s is not None else all_red_ite)
    return tuple(yellows), tuple(all_reds)


#: MUTCD 4E.06's buffer interval: a steady DON'T WALK of at least 3 s after the pedestrian change interval, before
#: any conflicting vehicle movement is released. A phase serving a vehicle link gets it from its own yellow (its
#: flashing don't walk ends no later than its yellow begins); an exclusive pedestrian phase has no yellow, so this
#: is its red clearance
PED_BUFFER_S = 3.0


def ite_change_intervals_s(phases: tuple[Phase, ...], approach_speed_mps: float, width_m: float
                           ) -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
    """Each phase's yellow and red clearance by ITE from the geometry of the vehicle links it serves, the longest any
    of them needs (a red clearance capped at `red_clearance_cap_s`), whatever is configured: what a configured value
    is held to. None for a phase serving no vehicle link."""
    yellows: list[float | None] = []
    all_reds: list[float | None] = []
    for p in phases:
        links = [(*link_speed_and_path(m, approach_speed_mps, width_m), red_clearance_cap_s(m))
                 for m in p.movements if not m.is_crosswalk]
        yellows.append(max(ite_yellow_s(v) for v, _, _ in links) if links else None)
        all_reds.append(max(ite_all_red_s(w, v, hi_s=cap) for v, w, cap in links) if links else None)
    return tuple(yellows), tuple(all_reds)


def red_clearance_cap_s(m: Movement) -> float:
    """The longest red clearance derived for a link: a motor vehicle's cap, or on a link from a lane only bicycles
    use the longest all_red_s a configuration takes (a cyclist clears a 21.8 m path in 5.0 s at 20 km/h)."""
    return CYCLIST_ALL_RED_MAX_S if isinstance(m, CyclistMovement) else ALL_RED_MAX_S


def link_speed_and_path(m: Movement, approach_speed_mps: float, width_m: float) -> tuple[float, float]:
    """A link's approach speed and path across the junction, the junction's where the link has none."""
    return (m.approach_speed_mps if m.approach_speed_mps is not None else approach_speed_mps,
            m.path_m if m.path_m is not None else width_m)


def read_all(api, defaults: TimingDefaults, overrides: dict[str, dict] | None = None,
             only: list[str] | None = None) -> tuple[list[Intersection], list[RefusedSignal]]:
    """Every traffic light we can control, and those refused with their reason."""
    overrides = overrides or {}
    result, refused = [], []
    wauts = loaded_wauts(api)  # the files read once for every signal
    for tls_id in api.trafficlight.getIDList():
        if only is not None and tls_id not in only:
            continue
        try:
            result.append(read_intersection(api, tls_id, defaults, overrides.get(tls_id), wauts))
        except UnsupportedSignal as exc:
            refused.append(RefusedSignal(tls_id, str(exc)))
    return result, refused


#: internal lanes one path across a junction may be split into (SUMO splits it where it waits for a foe)
MAX_INTERNAL_LANES = 8


def path_across_m(api, via: str) -> float:
    """A link's path across its junction: its internal lane and the ones after it. A link that yields inside the
    junction (a left turn giving way to oncoming traffic) has its path split where it waits, mid-junction, so
    the first internal lane alone is a fraction of what a vehicle entering at the end of yellow must clear."""
    total_m, lane = 0.0, via
    for _ in range(MAX_INTERNAL_LANES):
        total_m += api.lane.getLength(lane)
        lane = next((link[4] for link in api.lane.getLinks(lane) if link[4]), "")
        if not lane:
            break
    return total_m


#: notes that say where the network's own program does not run as written under `fixed` (a `fixed` run warns of
#: them). Every run's signal_model.json keeps them, whatever its controller: they say what the baseline plays, and
#: name it, so that an actuated or max-pressure run's notes do not read as its own plan (nor as the fallback's)
PLAN_NOTE = "the network's program as -c fixed plays it: "
#: a signal's note that its program had phases differing only in their crosswalks (signal_model.json's notes)
MERGED_NOTE = "phases differing only in crosswalk links were merged"
#: a signal's note naming the crosswalks its program never shows green (a run warns of it)
UNSERVED_CROSSWALK_NOTE = "crosswalks never green in the network's program: "
#: a signal's note that its walk + pedestrian clearance is below MUTCD 4E.06's guidance (a run warns of it)
PED_GUIDANCE_NOTE = "pedestrian guidance: "
#: a signal's note that its actuated program's own min/max greens (minDur/maxDur) are not the ones any controller
#: times (a run warns of it, `timing_warnings`)
PROGRAM_GREENS_NOTE = "the program's min/max greens: "
#: a signal's note that a cyclist's red clearance is cut to `CYCLIST_ALL_RED_MAX_S` (a run warns of it,
#: `timing_warnings`)
CYCLIST_CLEARANCE_NOTE = "cyclist clearance: "
#: a signal's note that a configured yellow or red clearance is shorter than ITE's for a phase's geometry (a run
#: warns of it, `timing_warnings`)
BELOW_ITE_NOTE = "below ITE: "


def pedestrian_warnings(intersections) -> list[str]:
    """A run's sentences on crosswalks no phase shows green: their pedestrians wait until SUMO moves them on, under
    every controller and under the program itself; and on signals whose walk + pedestrian clearance is below
    MUTCD 4E.06's guidance. (Program states differing only in their crosswalks, merged into one phase, are a note
    in signal_model.json, not a warning: most netconvert programs have them.)"""
    out = []
    for i in sorted(intersections, key=lambda i: i.id):
        for note in i.notes:
            if note.startswith(UNSERVED_CROSSWALK_NOTE):
                out.append(f"signal {i.id!r}: {note.removeprefix(UNSERVED_CROSSWALK_NOTE)} never green in the "
                           "network's program: no controller gives them a walk, and pedestrians wait there until "
                           "SUMO moves them on (a jam)")
            elif note.startswith(PED_GUIDANCE_NOTE):
                out.append(f"signal {i.id!r}: {note.removeprefix(PED_GUIDANCE_NOTE)}")
    return out


def timing_warnings(intersections) -> list[str]:
    """A run's sentences, under every controller, on signals whose actuated program's min/max greens are not used
    (one per distinct sentence, naming its signals: a netgenerate grid's programs all have the same), on
    signals where a cyclist's red clearance is cut, on signals whose configured yellow or red clearance is
    below ITE's for a phase, on signals whose cycle bound was raised to fit their minimums, and on signals whose
    maximum green was raised to a phase's minimum green (one line a signal)."""
    greens: dict[str, list[str]] = {}
    out = []
    for i in sorted(intersections, key=lambda i: i.id):
        for note in i.notes:
            if note.startswith(PROGRAM_GREENS_NOTE):
                greens.setdefault(note.removeprefix(PROGRAM_GREENS_NOTE), []).append(i.id)
            elif note.startswith(CYCLIST_CLEARANCE_NOTE):
                out.append(f"signal {i.id!r}: {note.removeprefix(CYCLIST_CLEARANCE_NOTE)}")
            elif note.startswith((BELOW_ITE_NOTE, CYCLE_RAISED_NOTE, MAX_GREEN_RAISED_NOTE)):
                out.append(f"signal {i.id!r}: {note}")
    return [f"signal(s) {_named(ids)}: {text}" for text, ids in _spans_merged(greens).items()] + out


#: a figure or a range of them in seconds as `_span_s` writes it ("5 s", "5-13 s")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))? s\b")


def _spans_merged(by_text: dict[str, list[str]]) -> dict[str, list[str]]:
    """Sentences that differ only in their figures (`_span_s`'s "5 s" or "5-13 s") as one, each figure the range
    over them, with the signals of them all (a network of actuated programs gives each signal its own min green
    range: DRT's 11 signals one line, not 11)."""
    groups: dict[str, list[tuple[str, list[tuple[float, float]], list[str]]]] = {}
    for text, ids in by_text.items():
        spans = [(float(m[1]), float(m[2] or m[1])) for m in _SPAN.finditer(text)]
        groups.setdefault(_SPAN.sub("#", text), []).append((text, spans, ids))
    merged = {}
    for shape, members in groups.items():
        if len(members) == 1:
            merged[members[0][0]] = members[0][2]
            continue
        ranges = [_span_s([v for _, spans, _ in members for v in spans[k]]) for k in range(len(members[0][1]))]
        merged["".join(p + r for p, r in zip(shape.split("#"), [*ranges, ""], strict=True))] = \
            sorted(i for _, _, ids in members for i in ids)
    return merged


def _named(ids: list[str], shown: int = 5) -> str:
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def plan_notes(intersections) -> dict[str, list[str]]:
    """Per signal, its notes on where `fixed` does not run the network's program as written (prefix dropped);
    signals with none left out."""
    notes = {i.id: [n.removeprefix(PLAN_NOTE) for n in i.notes if n.startswith(PLAN_NOTE)] for i in intersections}
    return {tls: n for tls, n in notes.items() if n}


#: SUMO's `TrafficLightType` numbers (a program logic's `type`) that `fixed` plays as a fixed plan, by name
_LOGIC_TYPES = {0: "static", 3: "actuated", 5: "delay_based"}


def _offset_s(api, tls_id: str) -> float:
    """The traffic light's program offset, s (SUMO gives it as the parameter `offset`)."""
    try:
        return float(api.trafficlight.getParameter(tls_id, "offset") or 0.0)
    except Exception:  # noqa: BLE001 - a SUMO without the parameter: no offset to speak of
        return 0.0


def _plan_notes(logic_type: int, offset_s: float, states: list[str], crosswalk_links: frozenset[int]) -> list[str]:
    """Where `fixed`, which plays the program's distinct green phases in order with its green times under the
    shield's clearances, differs from the program as SUMO would run it."""
    notes = []
    if logic_type != 0:
        name = _LOGIC_TYPES.get(logic_type, f"type {logic_type}")
        notes.append(PLAN_NOTE + f"the program is {name}: its phases' durations are played as fixed greens, "
                                 "and SUMO's own logic does not run")
    if abs(offset_s) > 1e-9:
        notes.append(PLAN_NOTE + f"offset {offset_s:g} s not applied: the plan starts with its first green at "
                                 "the run's begin, and under the shield's clearances its cycle differs from the "
                                 "program's (-c coordinated keeps the program's cycle and offset)")
    # the program's green states in order, one per vehicle phase (crosswalk-only variants are one phase)
    greens = [st for st in states if phase_key(st, crosswalk_links) is not None]
    keys = [phase_key(st, crosswalk_links) for st in greens]
    if len(set(greens)) > len(set(keys)):
        notes.append(MERGED_NOTE)
    order = [k for j, k in enumerate(keys) if k != keys[j - 1]] if len(keys) > 1 else keys
    if len(order) > len(set(order)):
        notes.append(PLAN_NOTE + "the program serves a phase more than once a cycle; each green state is one "
                                 "phase, served once a cycle for its durations added up")
    return notes


def waut_notes(program_id: str, wauts: list[Waut]) -> list[str]:
    """The note on a signal a WAUT switches to other programs: its model is the program active at the run's
    begin, and no controller (nor `fixed`) follows the switches (the programs' phases may differ)."""
    return [PLAN_NOTE + f"WAUT {w.id!r} switches this signal's program ({w.describe()}), which no controller "
                        f"follows: the run keeps program {program_id!r}, the one active at its begin, for the whole "
                        "run" for w in wauts if any(to != program_id for _, to in w.switches)]


def lengthened_greens_notes(tls_id: str, program_green_s: list[float], phases: tuple[Phase, ...],
                            crosswalk_links: frozenset[int], timing: Timing, given: TimingDefaults,
                            overrides: dict) -> list[str]:
    """The note on program greens shorter than their phase's shortest green as the signal shows it (the shield
    holds every green that long): `fixed` runs them that long, so it is not the program as written. Each phase
    says why: its crosswalks' walk + pedestrian clearance, or min_green_s. `given`: the run's timing with the
    signal's own `overrides` applied."""
    step_s = float(given.get("step_length_s") or 0.0)
    shown = (lambda v: ceil_to_step(v, step_s)) if step_s > 0 else (lambda v: v)
    crossing, shortest = _shortest_played_s(phases, crosswalk_links, timing, step_s)
    own_phase = phase_overrides(overrides)
    parts = []
    for p, g, least, cross in zip(phases, program_green_s, shortest, crossing, strict=True):
        if g >= least - 1e-6:
            continue
        walk_s, clear_s = shown(timing.ped_walk_s), shown(timing.ped_clearance_of(p.index))
        if "min_green_s" in own_phase.get(p.number, {}):
            key = f"timing.per_intersection.{tls_id}.{PHASES_KEY}.{p.number}.min_green_s"
            min_s = float(own_phase[p.number]["min_green_s"])
        else:
            key, min_s = _timing_key(tls_id, "min_green_s", overrides), float(given["min_green_s"])
        if cross and walk_s + clear_s > 0 and walk_s + clear_s >= shown(min_s) - 1e-6:
            why = f"walk {walk_s:g} s + pedestrian clearance {clear_s:g} s"
        else:
            why = f"{key} {min_s:g} s"
        parts.append(f"phase {p.number} {g:g} s < {least:g} s: {why}")
    if not parts:
        return []
    return [PLAN_NOTE + "greens shorter than the minimum green are lengthened to it (" + "; ".join(parts) + ")"]


def _shortest_played_s(phases: tuple[Phase, ...], crosswalk_links: frozenset[int], timing: Timing,
                       step_s: float) -> tuple[list[bool], list[float]]:
    """Per phase, whether its pedestrian intervals are timed (it walks a crosswalk, under a profile that times
    them), and the shortest green it shows, as the shield holds it (`control.shield`'s `_shortest_green`)."""
    crossing = [bool(p.green_links & crosswalk_links) and timing.ped_intervals for p in phases]
    return crossing, shortest_greens_s(timing.min_green_s, crossing, timing.ped_walk_s,
                                       [timing.ped_clearance_of(p.index) for p in phases], step_s)


def cycle_bound_notes(program_green_s: list[float], phases: tuple[Phase, ...], crosswalk_links: frozenset[int],
                      timing: Timing, given: TimingDefaults) -> list[str]:
    """The note on a program whose cycle, as `fixed` plays it (each green between its shortest and its max green,
    each change interval as shown), leaves a link longer than cycle_max_s between the starts of its green: the
    shield then ends greens early to serve it in time (its `cycle_max` interventions). None with cycle_calls,
    whose bound runs from a phase's call, not from its links' last green."""
    if timing.cycle_calls:
        return []
    step_s = float(given.get("step_length_s") or 0.0)
    shown = (lambda v: ceil_to_step(v, step_s)) if step_s > 0 else (lambda v: v)
    _crossing, shortest = _shortest_played_s(phases, crosswalk_links, timing, step_s)
    greens = [min(max(shown(g), least), shown(most))
              for g, least, most in zip(program_green_s, shortest, timing.max_green_s, strict=True)]
    starts, t = [], 0.0
    for p, g in zip(phases, greens, strict=True):
        starts.append(t)
        t += g + shown(timing.yellow_of(p.index)) + shown(timing.all_red_of(p.index))
    cycle_s = t
    late: dict[int, float] = {}  # phase number -> the longest wait of its links, s
    green = [p.green_links for p in phases]  # a property worked out at each read: once per phase, not per link
    for link in set().union(*green):
        begins = [s for g, s in zip(green, starts, strict=True) if link in g]
        wait_s = max(b - a for a, b in zip(begins, [*begins[1:], begins[0] + cycle_s], strict=True))
        if wait_s > timing.cycle_max_s + 1e-6:
            for p, g in zip(phases, green, strict=True):
                if link in g:
                    late[p.number] = max(late.get(p.number, 0.0), wait_s)
    if not late:
        return []
    return [PLAN_NOTE + f"its cycle of {cycle_s:g} s as played (each green between min and max green, the change "
            f"intervals as shown) leaves links of phase(s) {sorted(late)} up to {max(late.values()):g} s between "
            f"the starts of their green, more than cycle_max_s {timing.cycle_max_s:g} s: the shield ends greens "
            "early to serve them within it (cycle_max interventions)"]


#: SUMO's `TrafficLightType` numbers whose phases' minDur/maxDur are a green's bounds (actuated, delay_based)
ACTUATED_TYPES = (3, 5)


def program_greens_notes(program, crosswalk_links: frozenset[int], timing: Timing) -> list[str]:
    """The note on an actuated (or delay_based) program whose green phases have their own minDur/maxDur: no
    controller times them; every one holds each phase between the run's min_green_s and max_green_s."""
    if program.type not in ACTUATED_TYPES:
        return []
    bounds = [(float(p.minDur), float(p.maxDur)) for p in program.phases
              if phase_key(p.state, crosswalk_links) is not None and 0 < p.minDur < p.maxDur]
    if not bounds:
        return []
    name = _LOGIC_TYPES[program.type]
    return [PROGRAM_GREENS_NOTE + f"the {name} program's own minDur {_span_s([lo for lo, _ in bounds])} and maxDur "
            f"{_span_s([hi for _, hi in bounds])} are not used: every controller keeps each green between min green "
            f"{_span_s(timing.min_green_s)} and max green {_span_s(timing.max_green_s)} (timing.min_green_s / "
            "max_green_s; a --config's timing.per_intersection.<signal>.min_green_s / max_green_s sets a signal's "
            "own, and timing.per_intersection.<signal>.phases.<phase>.min_green_s / max_green_s a phase's)"]


def _span_s(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g} s" if lo == hi else f"{lo:g}-{hi:g} s"


def cyclist_clearance_notes(phases: tuple[Phase, ...], width_m: float) -> list[str]:
    """The note on a signal where a cyclist's link needs more red clearance than `CYCLIST_ALL_RED_MAX_S`: a
    cyclist who enters at the end of yellow is still crossing when the cross street turns green."""
    cut = []
    for p in phases:
        for m in p.movements:
            if isinstance(m, CyclistMovement):
                speed_mps, path_m = link_speed_and_path(m, BICYCLE_SPEED_MPS, width_m)
                need_s = crossing_time_s(path_m, speed_mps)
                if need_s > CYCLIST_ALL_RED_MAX_S + 0.05:
                    cut.append((need_s, p.index, m, path_m, speed_mps))
    if not cut:
        return []
    need_s, index, m, path_m, speed_mps = max(cut, key=lambda c: c[0])
    phases_cut = sorted({c[1] + 1 for c in cut})
    return [CYCLIST_CLEARANCE_NOTE + f"red clearance cut to {CYCLIST_ALL_RED_MAX_S:g} s (the longest all_red_s "
            f"takes) after phase(s) {phases_cut}: a cyclist from {m.in_lane} needs {need_s:.1f} s to cross its "
            f"{path_m:.1f} m path at {speed_mps * 3.6:.0f} km/h"]


def safety_rules(timing: TimingDefaults) -> bool:
    """Whether a run's timing follows the safety profile's rules: pedestrian intervals and the protected yellow,
    which the safety profile keeps and the benchmark and reference profiles leave out (the profile's name is not
    among a run's timing defaults)."""
    return bool(timing.get("ped_intervals", True)) and bool(timing.get("protected_yellow", True))


def below_ite_notes(tls_id: str, phases: tuple[Phase, ...], approach_speed_mps: float, width_m: float,
                    timing: Timing, defaults: TimingDefaults, overrides: dict) -> list[str]:
    """The note on a signal whose configured yellow or red clearance is shorter than ITE's for a phase's geometry,
    under the safety profile's rules: an agency's policy value runs as configured, and is said, with the ITE value
    and the formula's inputs of each phase it falls short on. None under the benchmark and reference profiles,
    whose 3 s yellow and no all-red are their rules, nor when nothing is configured (ITE's values run)."""
    d = {**defaults, **overrides}
    given = [k for k in ("yellow_s", "all_red_s") if d.get(k) is not None]
    if not given or not safety_rules(d):
        return []
    parts, short = [], set()
    for p in phases:
        links = [(m, *link_speed_and_path(m, approach_speed_mps, width_m)) for m in p.movements if not m.is_crosswalk]
        if not links:
            continue  # an exclusive pedestrian phase: no vehicle to clear
        said = []
        if "yellow_s" in given:
            need, m, v = max(((ite_yellow_s(v), m, v) for m, v, _w in links), key=lambda x: x[0])
            if timing.yellow_of(p.index) < need - 1e-9:
                short.add("yellow_s")
                said.append(f"yellow {timing.yellow_of(p.index):g} s < ITE {need:g} s ({ITE_PERCEPTION_REACTION_S:g} s "
                            f"+ {v:.2f} m/s / (2 x {ITE_DECELERATION_MPS2:g} m/s2), from {m.in_lane})")
        if "all_red_s" in given:
            need, m, v, w = max(((ite_all_red_s(w, v, hi_s=red_clearance_cap_s(m)), m, v, w) for m, v, w in links),
                                key=lambda x: x[0])
            if timing.all_red_of(p.index) < need - 1e-9:
                short.add("all_red_s")
                crossing = crossing_time_s(w, v)
                capped = f" = {crossing:.1f} s, capped at {need:g} s" if crossing > need + 0.05 else ""
                who = "a cyclist from " if isinstance(m, CyclistMovement) else ""
                said.append(f"red clearance {timing.all_red_of(p.index):g} s < ITE {need:g} s (({w:.1f} m + "
                            f"{VEHICLE_LENGTH_M:g} m) / {v:.2f} m/s{capped}, {who}{m.in_lane} to {m.out_lane})")
        if said:
            parts.append(f"phase {p.number} " + ", ".join(said))
    if not parts:
        return []
    keys = " and ".join(f"{_timing_key(tls_id, k, overrides)} {float(d[k]):g} s" for k in given if k in short)
    return [BELOW_ITE_NOTE + f"{keys} {'is' if len(short) == 1 else 'are'} below ITE for the signal's geometry: "
            + "; ".join(parts) + f" (the configured value{'s run' if len(short) > 1 else ' runs'}; null derives "
            "ITE's)"]


def _timing_key(tls_id: str, key: str, overrides: dict) -> str:
    """Where a timing key's value comes from: the signal's own override, or the run's timing."""
    return (f"timing.per_intersection.{tls_id}." if key in overrides else "timing.") + key


def ite_timing(inter: Intersection) -> dict[str, list[float | None]]:
    """Each phase's yellow and red clearance by ITE from the signal's geometry, for signal_model.json beside the
    timing in force (`ite_phase_yellow_s`, `ite_phase_all_red_s`; null for a phase serving no vehicle link)."""
    yellows, all_reds = ite_change_intervals_s(inter.phases, inter.approach_speed_mps, inter.width_m)
    return {"ite_phase_yellow_s": list(yellows), "ite_phase_all_red_s": list(all_reds)}


def link_geometry(m: Movement, inter: Intersection) -> dict:
    """A vehicle link's geometry for signal_model.json, from which the audit works out ITE's change interval on its
    own: the speed its change interval is timed at (a cyclist's on a lane only bicycles use), its path across the
    junction, and whether its lane is such a lane; nothing for a crosswalk."""
    if m.is_crosswalk:
        return {}
    speed_mps, path_m = link_speed_and_path(m, inter.approach_speed_mps, inter.width_m)
    return {"approach_speed_mps": speed_mps, "path_m": path_m,
            "bicycle_lane": isinstance(m, CyclistMovement)}


def _current_program(api, tls_id: str):
    current = api.trafficlight.getProgram(tls_id)
    logics = api.trafficlight.getAllProgramLogics(tls_id)
    for logic in logics:
        if logic.programID == current:
            return logic
    if not logics:
        raise UnsupportedSignal("no program logic")
    return logics[0]


def _is_crossing_lane(lane_id: str) -> bool:
    """SUMO names crossing lanes ':<junction>_c<k>_0'."""
    if not lane_id.startswith(":"):
        return False
    edge = lane_id.rsplit("_", 1)[0]
    tail = edge.rsplit("_", 1)[-1]
    return tail.startswith("c") and tail[1:].isdigit()
