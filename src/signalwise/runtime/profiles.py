"""Named timing profiles: the rules a run's signals follow.

- `safety` (the default): what a city can run. ITE yellow and all-red from
  geometry, pedestrian walk and clearance, maximum green, cycle bounds,
  SUMO's teleports after 300 s of standstill.
- `benchmark`: RESCO's rules as its code defines them (Pi-Star-Lab/RESCO,
  `resco_benchmark/main.py`, `multi_signal.py`, `config/map_config.py`): a
  decision every `step_length` seconds (10; 5 on arterial4x4), a
  `yellow_length` yellow (3; 2 on arterial4x4) when the phase changes and the
  new green for the rest of the step, no all-red, no maximum green or cycle
  bound, no pedestrian intervals, a yellow only for links going from green
  to red (a protected 'G' going to a permitted 'g' stays green),
  `--time-to-teleport -1`; for max-pressure
  the pressure of RESCO's own (halting vehicles in and out). RESCO ran SUMO
  with `--random`; we run explicit seeds so that results reproduce.
- `reference`: the plain max-pressure reference's rules
  (`shared/reference/maxpressure_ref.py`): decisions every 5 s once the
  green has run 5 s, 3 s yellow (links going from green to red only), no
  all-red, no teleports, and for
  max-pressure its pressure (halting vehicles in and out) and tie rule.

A profile fills the timing keys, controller options and SUMO settings the
configuration does not give; anything given explicitly wins. docs/benchmarks.md
lists each value and where it comes from.
"""

from __future__ import annotations

from ..core.timing import PED_WALKING_SPEED_MAX_MPS

SAFETY, BENCHMARK, REFERENCE = "safety", "benchmark", "reference"
PROFILE_NAMES = (SAFETY, BENCHMARK, REFERENCE)

#: "no bound" for maximum green and cycle length: a day, longer than any run window
NO_BOUND_S = 86400.0

#: SUMO's --time-to-teleport: a vehicle stuck this long jumps ahead; -1 = never
SAFETY_TELEPORT_S = 300.0
NEVER_TELEPORT = -1.0

#: limits (low, high) the safety profile keeps on the timing keys; the other profiles leave them by design
SAFETY_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "yellow_s": (3.0, None),
    "max_green_s": (None, 300.0),
    "cycle_max_s": (None, 600.0),
    "ped_walking_speed_mps": (None, PED_WALKING_SPEED_MAX_MPS),
}

#: RESCO's map_config: step_length (decision period) and yellow_length per map; MultiSignal's own defaults
#: (10 s steps, 4 s yellow) are overridden by these for every map
RESCO_STEP_S = 10.0
RESCO_YELLOW_S = 3.0
RESCO_PER_MAP = {"arterial4x4": {"step_s": 5.0, "yellow_s": 2.0}}

#: protected_yellow False: RESCO's and sumo-rl's yellow (and the reference's) goes only to links going from green to
#: red, so a link going from protected 'G' to permitted 'g' stays green through the change
_TIMING = {
    SAFETY: {},
    BENCHMARK: {"yellow_s": RESCO_YELLOW_S, "all_red_s": 0.0, "min_green_s": RESCO_STEP_S - RESCO_YELLOW_S,
                "max_green_s": NO_BOUND_S, "cycle_min_s": 10.0, "cycle_max_s": NO_BOUND_S, "ped_intervals": False,
                "protected_yellow": False},
    REFERENCE: {"yellow_s": 3.0, "all_red_s": 0.0, "min_green_s": 5.0, "max_green_s": NO_BOUND_S,
                "cycle_min_s": 10.0, "cycle_max_s": NO_BOUND_S, "ped_intervals": False, "protected_yellow": False},
}

#: controller options each profile sets: how often a controller is asked (period_s) and max-pressure's hold
_CONTROLLER_OPTIONS = {
    SAFETY: {},
    # the 10 s decision step already bounds switching, and RESCO's MAXPRESSURE weighs no cost of a change: no
    # lost-time rule (with halting vehicles it would move seed 1 by at most 0.4 s on six networks; over 5 seeds
    # it takes arterial4x4 from 769.2 to 717.5 s and ingolstadt21 from 147.0 to 79.0 s, two seeds locking
    # instead of three; docs/benchmarks.md, "Other pressures under RESCO's rules").
    # RESCO's own MAXPRESSURE (agents/maxpressure.py on states.mplight) weighs queues: stopped vehicles in, minus
    # stopped vehicles on the lanes out, a vehicle counting from the decision that saw it waiting until it leaves
    # (measure "stopped"). Halting vehicles are the queue standing now; against vehicles per 100 m they cost
    # cologne1 and grid4x4 a fifth and are level on ingolstadt21 (5 seeds: 147.0 against 146.5 s, both locking
    # some seeds without teleports); RESCO's exact queue locks cologne3 seed 3 inside a junction
    # (bench/pressure_variants.py; docs/benchmarks.md)
    # the lane before a turn pocket is max-pressure's own reading, as under the safety profile (split among the
    # pockets it feeds), not RESCO's (each signal's own lanes, `shared_lanes: skip`): how our controller counts
    # its queues is not one of RESCO's rules, and the split gives the same figures on six networks and lower on
    # ingolstadt7 (34.6 against 35.7 s) and ingolstadt21 (65.4 against 147.0 s, no seed locked against three);
    # docs/benchmarks.md, "Lanes before a turn pocket"
    BENCHMARK: {"period_s": RESCO_STEP_S, "min_hold_s": 0.0, "lost_time_s": 0.0, "measure": "halting"},
    # the reference's pressure (halting vehicles in and out, each lane alone) and its tie rule (the first
    # phase of the largest pressure, even over the current one); docs/benchmarks.md shows what each is worth
    REFERENCE: {"period_s": 5.0, "min_hold_s": 5.0, "measure": "halting", "ties": "first", "lost_time_s": 0.0,
                "zone_m": 0.0},
}

_TELEPORT = {SAFETY: SAFETY_TELEPORT_S, BENCHMARK: NEVER_TELEPORT, REFERENCE: NEVER_TELEPORT}


def _resco_map(scenario: str | None) -> dict:
    if scenario and scenario.startswith("resco:"):
        return RESCO_PER_MAP.get(scenario.split(":", 1)[1], {})
    return {}


def profile_timing(name: str, scenario: str | None = None) -> dict:
    """The timing keys profile `name` sets (on `scenario`, where the profile has per-network values)."""
    values = dict(_TIMING[name])
    per_map = _resco_map(scenario) if name == BENCHMARK else {}
    if per_map:
        values["yellow_s"] = per_map["yellow_s"]
        values["min_green_s"] = per_map["step_s"] - per_map["yellow_s"]
    return values


def profile_controller_options(name: str, scenario: str | None = None) -> dict:
    """The controller options profile `name` sets."""
    values = dict(_CONTROLLER_OPTIONS[name])
    per_map = _resco_map(scenario) if name == BENCHMARK else {}
    if per_map:
        values["period_s"] = per_map["step_s"]
    return values


def profile_teleport_s(name: str) -> float:
    """SUMO's --time-to-teleport under profile `name`."""
    return _TELEPORT[name]
