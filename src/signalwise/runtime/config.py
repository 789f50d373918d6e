"""The configuration of one run: validated once, written into the run directory."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..control.base import builtin_choices
from ..core.names import MAX_SEED
from ..core.timing import PED_WALKING_SPEED_MPS
from .profiles import (
    PROFILE_NAMES,
    SAFETY,
    SAFETY_LIMITS,
    profile_controller_options,
    profile_teleport_s,
    profile_timing,
)


class TimingConfig(BaseModel):
    """Safety timing defaults; `None` = derive from geometry (ITE yellow, all-red, crossing length).

    `profile` names a set of defaults (`runtime.profiles`): `safety` (these
    fields' own defaults), `benchmark` (RESCO's rules) or `reference` (the plain
    max-pressure reference's rules). Keys given beside it override the profile's.
    """

    model_config = ConfigDict(extra="forbid")
    profile: str = Field(SAFETY, description=(
        "named timing profile: safety (ITE clearances, pedestrian intervals, max green, cycle bounds), "
        "benchmark (RESCO's rules: 10 s decisions, 3 s yellow, no all-red, no teleports, max-pressure on halting "
        "vehicles) or reference (the plain max-pressure reference's: 5 s decisions and minimum green, 3 s yellow, "
        "no all-red, no teleports); "
        "keys given beside it override the profile's values"))
    yellow_s: float | None = Field(None, ge=2.0, le=6.0, description=(
        "yellow change interval, for every phase serving a vehicle link; null = each phase its own: the ITE formula "
        "from the speed limit of each approach it serves, the longest of them, clamped to 3-6 seconds; at least 3 s "
        "under the safety profile. There, a value below a phase's ITE yellow runs as given and is said: the run "
        "warns (a line per setting naming its signals, and the value shown where whole steps round it up; metrics.json's "
        "warnings a line per signal, naming the phases, the ITE values and their inputs), signal_model.json has ITE's "
        "beside it (timing.ite_phase_yellow_s), metrics.json's below_ite_timing and the run summary's row "
        "'configured below ITE (not violations)' record it, and the audit lists it as below ITE (not a violation). "
        "A phase green to crosswalks only has no yellow"))
    all_red_s: float | None = Field(None, ge=0.0, le=6.0, description=(
        "all-red (red clearance) after each yellow, for every phase serving a vehicle link; null = each phase its "
        "own: ITE (path through the junction + 6.1 m) / approach speed for each link it serves (a cyclist's 20 km/h "
        "on a lane only bicycles use), the longest of them, clamped to 1-4 seconds (a link from a lane only "
        "bicycles use: up to 6 s, and a run warns where a cyclist needs longer). Under the safety profile a value "
        "below a phase's ITE red clearance (a cyclist's included), 0 too (MUTCD leaves the red clearance optional), "
        "runs as given and is said and recorded as a yellow below ITE is (timing.ite_phase_all_red_s); the "
        "benchmark and reference profiles' 0 is their rule and is not. A phase "
        "green to crosswalks only, with pedestrian intervals timed, ends with a 3 s red clearance whatever this "
        "says: MUTCD 4E.06's buffer interval before a conflicting vehicle movement"))
    min_green_s: float = Field(5.0, ge=2.0, le=60.0, description=(
        "minimum green of every phase; raised to walk + pedestrian clearance on phases serving a crosswalk; a "
        "signal's own: per_intersection.<signal>.min_green_s, one phase's own: "
        "per_intersection.<signal>.phases.<phase number>.min_green_s"))
    max_green_s: float = Field(60.0, ge=5.0, le=86400.0, description=(
        "maximum green (max-out) of every phase, outside emergency preemption; at most 300 s under the safety "
        "profile (the benchmark and reference profiles have none: 86400 s); a signal's own: "
        "per_intersection.<signal>.max_green_s, one phase's own: "
        "per_intersection.<signal>.phases.<phase number>.max_green_s"))
    ped_walk_s: float = Field(7.0, ge=4.0, le=30.0, description=(
        "pedestrian walk interval on phases serving a crosswalk; a run warns at each signal where a phase's walk + "
        "pedestrian clearance, as shown, is below MUTCD 4E.06's guidance: the longest crosswalk the phase serves "
        "from 1.83 m (6 ft) behind the curb at 0.914 m/s (3 ft/s)"))
    ped_clearance_s: float | None = Field(None, ge=0.0, le=60.0, description=(
        "pedestrian clearance (flashing don't walk); null = each phase's own: the longest crosswalk the phase "
        "serves / ped_walking_speed_mps, rounded up to 0.1 s; a value applies to every phase serving a crosswalk. "
        "A value shorter than the signal's longest crosswalk takes, at a signal whose pedestrian intervals are timed, "
        "refuses the run, naming the signal, its longest crosswalk, the walking speed and the minimum. The audit "
        "holds each flashing don't walk to its phase's longest crosswalk at 1.22 m/s (4 ft/s, the fastest walking "
        "speed the safety profile allows; signal_model.json does not record the run's), whatever this value says"))
    ped_walking_speed_mps: float = Field(PED_WALKING_SPEED_MPS, ge=0.5, le=2.0, description=(
        "walking speed the pedestrian clearance is timed at (crossing length / speed, rounded up to 0.1 s). The "
        "default, 1.1 m/s (3.6 ft/s), is the project's specification's and is faster than MUTCD 4E.06's 3.5 ft/s: "
        "a 14 m crossing gets 12.8 s where 3.5 ft/s gives 13.2 s. A US deployment sets 1.0668 (exactly 3.5 ft/s; "
        "1.07 times some crossings 0.1 s shorter); many cities use 3.0 ft/s (0.9144 m/s); at most 1.22 m/s "
        "(4 ft/s) under the safety profile"))
    cycle_min_s: float = Field(40.0, ge=10.0, le=300.0, description=(
        "shortest cycle a plan may use; raised when every phase at minimum green needs longer"))
    cycle_max_s: float = Field(150.0, ge=20.0, le=86400.0, description=(
        "longest a signal link may wait between two starts of a green that serves it (the shield forces a phase "
        "before, among the fewest phases that serve every link); raised when every phase at minimum green needs "
        "longer (its yellow and red clearance counted in whole simulation steps, as shown); at most 600 s under the safety profile (the benchmark and "
        "reference profiles have none: 86400 s)"))
    cycle_calls: bool = Field(False, description=(
        "false: cycle_max_s counts from each link's last green, so a phase with nobody waiting is still forced "
        "round; true: it counts from a call, and max_green_s from the first call of another phase (with none, "
        "the green rests), as an actuated controller without recall does. A covering phase is called when the controller's "
        "observation sees a vehicle on one of its incoming lanes, and stays called until every link of it has "
        "had a green (event 43 in the log). A phase serving a crosswalk, one whose lanes the observation lacks, "
        "and every phase while the lane data are stale, unhealthy or absent (fixed time, Webster) are on recall: "
        "called at once"))
    ped_intervals: bool = Field(True, description=(
        "time pedestrian walk and clearance on phases serving a crosswalk; false (benchmark and reference "
        "profiles only) = crosswalks show their phase's green throughout, as the network's own program does"))
    protected_yellow: bool = Field(True, description=(
        "a link going from protected green (G, a green arrow) in one phase to permitted green (g, yield to "
        "oncoming traffic) in the next shows the ending phase's yellow, then red during its red clearance, then "
        "its permitted green, as MUTCD's protected/permissive left-turn mode ends a green arrow with a yellow "
        "arrow; false (benchmark and reference profiles only: RESCO's and sumo-rl's rule) = it stays green "
        "through the change, only links losing their green get a yellow. The audit's rule protected_yellow holds "
        "a run to it"))
    #: per traffic-light overrides of the fields above, and under `phases` each phase's own min_green_s and
    #: max_green_s by phase number (see Per-intersection timing overrides below)
    per_intersection: dict[str, dict[str, float | dict[int, dict[str, float]] | None]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data):
        """`timing: benchmark` is short for `timing: {profile: benchmark}`; the profile fills the keys not given."""
        if isinstance(data, str):
            data = {"profile": data}
        if isinstance(data, dict):
            name = data.get("profile", SAFETY)
            if name not in PROFILE_NAMES:
                raise ValueError(f"unknown timing profile {name!r}; choose from {', '.join(PROFILE_NAMES)}")
            data = {**profile_timing(name), **data}
        return data

    @field_validator(*SAFETY_LIMITS, mode="before")
    @classmethod
    def _safety_bound_first(cls, value, info):
        """Under the safety profile a value past its limit is refused with the limit that applies there, before the
        wider bounds every profile has: a 1 s yellow was told 'greater than or equal to 2' (the benchmark's floor)
        when the safety profile's is 3 s."""
        if info.data.get("profile", SAFETY) == SAFETY:
            why = _safety_refusal(info.field_name, value, "")
            if why:
                raise ValueError(why)
        return value

    @field_validator("per_intersection", mode="wrap")
    @classmethod
    def _own_values(cls, value, handler):
        """Each signal's keys as numbers (or null), and its `phases` as {phase number: {key: number}}: a phase is
        named by the number signalwise shows it by (the event log's, ATSPM's and the dashboard's), as an integer
        (YAML's `1:`) or its digits (JSON's `"1"`), and takes only PHASE_TIMING_FIELDS. A refusal names the key
        where it is (`per_intersection.J1.phases.2.min_green_s`)."""
        if not isinstance(value, Mapping) or not all(isinstance(own, Mapping) for own in value.values()):
            return handler(value)
        # a key no timing has is kept as given, for `_consistent` to refuse by name
        scalars = {tls: {k: v for k, v in own.items() if k in TIMING_FIELDS} for tls, own in value.items()}
        out = _OWN_SCALARS.validate_python(scalars)
        for tls, own in value.items():
            out[tls].update({k: v for k, v in own.items() if k not in TIMING_FIELDS and k != PHASES_KEY})
        errors: list[InitErrorDetails] = []
        for tls, own in value.items():
            if PHASES_KEY in own:
                phases = _phase_values(own[PHASES_KEY], (str(tls), PHASES_KEY), errors)
                if phases is not None:
                    out[tls][PHASES_KEY] = phases
        if errors:
            raise ValidationError.from_exception_data("TimingConfig", errors)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> TimingConfig:
        if self.profile == SAFETY:
            _check_safety(self, "")
        _check_bounds(self, "")
        for tls_id, override in self.per_intersection.items():
            unknown = sorted(set(override) - TIMING_FIELDS - {PHASES_KEY})
            if unknown:
                raise ValueError(f"per_intersection.{tls_id}: unknown timing key(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(TIMING_FIELDS | {PHASES_KEY}))})")
            # the override must satisfy the same bounds as the defaults, merged with them
            own = {k: v for k, v in override.items() if k != PHASES_KEY}
            merged = _merged(self.model_dump(exclude={"per_intersection"}), own, f"per_intersection.{tls_id}")
            _check_bounds(merged, f"per_intersection.{tls_id}: ")
            # and each phase's own values, merged with the signal's: the same bounds and safety limits
            for number, values in (override.get(PHASES_KEY) or {}).items():
                where = f"per_intersection.{tls_id}.{PHASES_KEY}.{number}"
                _check_bounds(_merged(merged.model_dump(exclude={"per_intersection"}), values, where), f"{where}: ")
        return self


#: the largest demand scale a run takes (SUMO's --scale); above 0 at the other end
MAX_DEMAND_SCALE = 10.0


def timing_beside(given, profile: str | None = None, cycle_calls: bool = False):
    """A configuration's `timing` (a profile name, a mapping of keys, or None) with `profile` and `cycle_calls`
    set beside its keys: what `--timing NAME` and `--cycle-calls` do to a `--config` file's timing. A profile
    name alone stays a name (as a model's meta.json writes it); None when nothing is set."""
    keys = dict(given) if isinstance(given, Mapping) else {"profile": given} if isinstance(given, str) else {}
    if profile is not None:
        keys["profile"] = profile
    if cycle_calls:
        keys["cycle_calls"] = True
    if not keys:
        return None
    return keys["profile"] if set(keys) == {"profile"} else {"profile": SAFETY, **keys}


def valid_demand_scale(scale: float) -> bool:
    """What `RunConfig.demand_scale` accepts: for a check before any run is configured (a training's scales)."""
    return 0 < scale <= MAX_DEMAND_SCALE


TIMING_FIELDS = frozenset({"yellow_s", "all_red_s", "min_green_s", "max_green_s", "ped_walk_s", "ped_clearance_s",
                           "ped_walking_speed_mps", "cycle_min_s", "cycle_max_s"})
#: the key of a signal's own timing (`timing.per_intersection.<id>`) that holds its phases' own values, and the keys
#: a phase takes there: a timing sheet's minimum and maximum green per phase (the actuated controller's passage per
#: phase is a controller option: `controller_options.passage_s`)
PHASES_KEY = "phases"
PHASE_TIMING_FIELDS = ("min_green_s", "max_green_s")
#: a phase's key that is no timing key, and where it is set instead
_PHASE_KEY_ELSEWHERE = {"passage_s": "the actuated controller's passage is controller_options.passage_s "
                                     "({<signal>: {<phase>: seconds}})"}
_OWN_SCALARS = TypeAdapter(dict[str, dict[str, float | None]])
_SECONDS = TypeAdapter(float)
_PHASE_NUMBER_HINT = ("a phase is named by its number, 1 for the first: the number of the event log, the ATSPM "
                      "charts and the dashboard")


def _phase_values(value, loc: tuple, errors: list) -> dict[int, dict[str, float]] | None:
    """A signal's `phases` as {phase number: {key: float}}; what is wrong with it goes into `errors` (None back)."""
    def refuse(where: tuple, message: str, given) -> None:
        errors.append(InitErrorDetails(type=PydanticCustomError("phase_timing", message), loc=where, input=given))

    if not isinstance(value, Mapping) or not value:
        refuse(loc, "expected a mapping of phase numbers to their own min_green_s / max_green_s, e.g. "
               "{1: {min_green_s: 10, max_green_s: 45}}", value)
        return None
    out: dict[int, dict[str, float]] = {}
    for key, own in value.items():
        number = key if isinstance(key, int) and not isinstance(key, bool) else (
            int(key) if isinstance(key, str) and key.strip().isdigit() else None)
        where = (*loc, str(key))
        if number is None or number < 1:
            refuse(where, f"{key!r} is not a phase number: {_PHASE_NUMBER_HINT}", key)
            continue
        if number in out:
            refuse(where, f"phase {number} is given twice", key)
            continue
        if not isinstance(own, Mapping):
            refuse(where, f"expected phase {number}'s own values, e.g. {{min_green_s: 10, max_green_s: 45}}", own)
            continue
        unknown = sorted(set(own) - set(PHASE_TIMING_FIELDS), key=str)
        if unknown:
            elsewhere = "".join(f"; {_PHASE_KEY_ELSEWHERE[k]}" for k in unknown if k in _PHASE_KEY_ELSEWHERE)
            refuse(where, f"unknown phase timing key(s) {', '.join(map(str, unknown))} (a phase takes "
                   f"{', '.join(PHASE_TIMING_FIELDS)}; the signal's other keys are set beside its phases){elsewhere}",
                   own)
            continue
        numbers = {}
        for name, given in own.items():
            try:
                numbers[name] = _SECONDS.validate_python(given)
            except ValidationError as exc:
                refuse((*where, name), str(exc.errors()[0]["msg"]), given)
        out[number] = numbers
    return out


def _merged(base: dict, own: dict, where: str) -> TimingConfig:
    """`base` (a timing's keys) with `own` over them, validated as a run's timing is; a refusal is said at `where`
    (`per_intersection.J1`, `per_intersection.J1.phases.2`)."""
    try:
        return TimingConfig.model_validate({**base, **own})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if key in SAFETY_LIMITS and msg.startswith(f"{key} ("):  # the safety profile's refusal names it
            key = ""
        raise ValueError(f"{where}{'.' + key if key else ''}: {msg}") from None

#: why the safety profile keeps a limit, where its number alone does not say
_SAFETY_WHY = {"ped_walking_speed_mps": " m/s (4 ft/s, the fastest MUTCD 4E.06 allows, and only where an extended "
                                        "pushbutton press or passive detection serves slower pedestrians)"}
#: where each of the safety profile's limits comes from, said to a live run's operator (`_safety_refusal(live=True)`)
_SAFETY_SOURCE = {
    "yellow_s": f"{SAFETY_LIMITS['yellow_s'][0]:g} s is the shortest yellow change interval MUTCD 4D.26 allows "
                "(3 to 6 s)",
    "max_green_s": f"{SAFETY_LIMITS['max_green_s'][1]:g} s is the safety profile's longest maximum green",
    "cycle_max_s": f"{SAFETY_LIMITS['cycle_max_s'][1]:g} s is the safety profile's longest wait of a signal link "
                   "for its green",
    "ped_walking_speed_mps": "MUTCD 4E.06 times a pedestrian clearance at 3.5 ft/s (1.07 m/s), the normal "
                             "walking speed; 4 ft/s only where an extended pushbutton press or passive detection "
                             "gives slower pedestrians a longer clearance, which signalwise does not model (every "
                             "crosswalk is on recall)",
}
#: said to a live run's operator after a safety limit: the profile cannot be left while the run goes on
_LIVE_PROFILE = "the safety profile, which this live run keeps until it ends"


def _safety_refusal(name: str, value, where: str, live: bool = False) -> str | None:
    """Why the safety profile refuses `value` for the timing key `name` (one of SAFETY_LIMITS), or None. Off a
    live run (`live` False) the refusal names the profiles that have other rules and how a run chooses one; to a
    live run's operator, who cannot leave the profile and must not be pointed at a benchmark's rules on a street,
    it says where the limit comes from instead."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = SAFETY_LIMITS[name]
    if (low is None or value >= low) and (high is None or value <= high):
        return None
    bound = f"at least {low:g}" if low is not None and value < low else f"at most {high:g}"
    refused = f"{where}{name} ({value:g}) must be {bound}{_SAFETY_WHY.get(name, '')} under the safety profile"
    if live:
        return f"{refused}: {_SAFETY_SOURCE[name]} (runtime/profiles.py SAFETY_LIMITS), and {_LIVE_PROFILE}"
    return (f"{refused} (the benchmark and reference profiles have their own rules: --timing benchmark on run, "
            "compare and train, or timing: {profile: benchmark} in a --config file; a live run's profile is its "
            "--config's, fixed while it runs)")


def _check_safety(t: TimingConfig, where: str, live: bool = False) -> None:
    """The safety profile's limits, which the benchmark and reference profiles deliberately leave (`live`: said to
    a live run's operator, `_safety_refusal`)."""
    for name in SAFETY_LIMITS:
        why = _safety_refusal(name, getattr(t, name), where, live)
        if why:
            raise ValueError(why)
    others = "only the benchmark and reference profiles allow it"
    if not t.ped_intervals:
        raise ValueError(f"{where}ped_intervals false leaves pedestrians without walk and clearance: "
                         + (f"{_LIVE_PROFILE} times them at every crosswalk" if live else others))
    if not t.protected_yellow:
        raise ValueError(f"{where}protected_yellow false ends a protected green arrow without a yellow: "
                         + (f"{_LIVE_PROFILE} requires that yellow" if live else others))


def _check_bounds(t: TimingConfig, where: str) -> None:
    if t.min_green_s > t.max_green_s:
        raise ValueError(f"{where}min_green_s ({t.min_green_s:g}) exceeds max_green_s ({t.max_green_s:g})")
    if t.cycle_min_s > t.cycle_max_s:
        raise ValueError(f"{where}cycle_min_s ({t.cycle_min_s:g}) exceeds cycle_max_s ({t.cycle_max_s:g})")


#: the longest `shield.max_observation_age_s`: five minutes, two cycles of the longest default cycle (150 s). One-
#: minute counts (the usual interval) need about 70 s; data older than this says nothing about the queues a
#: decision serves, and a larger value was a way to switch the stale-data fallback off
MAX_OBSERVATION_AGE_S = 300.0


#: the shortest preemption distance and dwell the shield takes; why each, for its description and its refusal
PREEMPT_MIN_DISTANCE_M = 30.0
PREEMPT_MIN_DWELL_S = 10.0
#: the longest: a preemption's green is exempt from the maximum green and the cycle bound, so its dwell is held to
#: the longest maximum green the safety profile lets any phase have (NTCIP 1202's preemptMaximumPresence, 0-65535 s,
#: leaves the value to the agency); and its distance to about the longest reach of the emitters field systems use
#: (optical and radio: 2,500-3,600 ft, 760-1,100 m), where a vehicle at 50 km/h is 72 s away, longer than the
#: default dwell: a call from farther holds a green for nobody
PREEMPT_MAX_DISTANCE_M = 1000.0
PREEMPT_MAX_DWELL_S = 300.0
_PREEMPT_MINIMUM_WHY = {
    "preempt_distance_m": "at least 30 m: nearer, an emergency vehicle at 50 km/h is about 2 s from the stop line, "
                          "less than a change interval, so its call cannot give it a green (shield.preempt: false "
                          "turns preemption off)",
    "preempt_max_dwell_s": "at least 10 s: less ends the preemption while a vehicle called at 150 m is still "
                           "approaching (10 s at 15 m/s)",
}
_PREEMPT_MAXIMUM_WHY = {
    "preempt_distance_m": "at most 1000 m: about the longest reach of field preemption emitters (optical and radio, "
                          "760-1,100 m); from there a vehicle at 50 km/h is 72 s away, so a call from farther holds "
                          "a green for nobody while the cross streets wait",
    "preempt_max_dwell_s": "at most 300 s: a preemption's green is exempt from the maximum green and the cycle "
                           "bound, and 300 s is the longest maximum green the safety profile allows any phase; "
                           "longer, a stuck call (a vehicle standing at a scene, an input never switched off) holds "
                           "the cross streets red for as long as it lasts",
}


class ShieldSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confidence_threshold: float = Field(0.5, ge=0.0, le=1.0, description=(
        "a decision less confident than this is not followed: the Webster fallback plan runs"))
    # at most MAX_OBSERVATION_AGE_S: a larger age keeps a silent feed's last data in control for longer than two
    # of the longest default cycles (cycle_max_s 150 s), which is the stale-data fallback switched off
    max_observation_age_s: float = Field(10.0, gt=0, le=MAX_OBSERVATION_AGE_S, description=(
        "observation data older than this (or from an unhealthy source) sends the shield to its fallback; at "
        "most 300 s, so that the fallback still protects against a feed gone silent"))
    preempt: bool = Field(True, description=(
        "true: an emergency vehicle calls a preemption; false turns preemption off (the reference controllers "
        "have none)"))
    preempt_distance_m: float = Field(150.0, ge=PREEMPT_MIN_DISTANCE_M, le=PREEMPT_MAX_DISTANCE_M, description=(
        "an emergency vehicle within this distance of its next signal gets its green once the green in "
        "force has run its preemption entry minimum (preempt_entry_min_green_s) and pedestrian intervals (see "
        "preempt_ends_walk) and the change interval "
        f"has cleared; {_PREEMPT_MINIMUM_WHY['preempt_distance_m']}; "
        f"{_PREEMPT_MAXIMUM_WHY['preempt_distance_m']} (every profile, and at run time)"))
    preempt_max_dwell_s: float = Field(60.0, ge=PREEMPT_MIN_DWELL_S, le=PREEMPT_MAX_DWELL_S, description=(
        "longest a preemption holds its green at a signal, from its first dwell (107): calls that overlap one "
        "another are one preemption (then every call on is logged as 110, max presence exceeded, and the other "
        "phases are served before a new call is taken); "
        f"{_PREEMPT_MINIMUM_WHY['preempt_max_dwell_s']}; "
        f"{_PREEMPT_MAXIMUM_WHY['preempt_max_dwell_s']} (every profile, and at run time). The audit holds each "
        "preemption to it"))
    preempt_ends_walk: bool = Field(False, description=(
        "on entry to a preemption, end a walk in progress at once (MUTCD 4D.27 permits shortening it); the "
        "pedestrian clearance and the change interval are still timed in full; the green then ends at the "
        "preemption entry minimum (preempt_entry_min_green_s), not at a crosswalk phase's walk + clearance"))
    # 5 s: the default minimum green of a vehicle phase, so by default entry cuts only longer minimums (a crosswalk
    # phase's walk + clearance, a raised per-phase minimum); controllers time a preemption's own "minimum green
    # during right-of-way transfer" apart from the phase's (TxDOT's preemption timing data lists it beside yellow and
    # red clearance, which are never shortened)
    preempt_entry_min_green_s: float = Field(5.0, ge=2.0, le=60.0, description=(
        "during a preemption's entry, a green other than the called one may end once it has run this long (or its "
        "own minimum green, when shorter): a longer minimum, such as a crosswalk phase's walk + pedestrian "
        "clearance, is cut to it, as NEMA controllers' preemption entry minimum does; a green that begins during "
        "the entry shows no walk; a walk already under way and every pedestrian clearance, yellow and red "
        "clearance are timed in full"))

    @field_validator("preempt_distance_m", "preempt_max_dwell_s", mode="before")
    @classmethod
    def _preempt_minimum(cls, value, info):
        """A value past the minimum or the maximum is refused with the reason (the bound alone says only "at
        least" or "at most")."""
        low = {"preempt_distance_m": PREEMPT_MIN_DISTANCE_M, "preempt_max_dwell_s": PREEMPT_MIN_DWELL_S}
        high = {"preempt_distance_m": PREEMPT_MAX_DISTANCE_M, "preempt_max_dwell_s": PREEMPT_MAX_DWELL_S}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < low[info.field_name]:
                raise ValueError(f"{value:g} is too small: {_PREEMPT_MINIMUM_WHY[info.field_name]}")
            if value > high[info.field_name]:
                raise ValueError(f"{value:g} is too large: {_PREEMPT_MAXIMUM_WHY[info.field_name]}")
        return value


#: SUMO options a run sets itself (`sim.backend.build_command`, `runtime.loop`), and why each is not a
#: `sumo_options` key
OWNED_SUMO_OPTIONS = {
    **dict.fromkeys(("net-file", "route-files", "additional-files", "configuration-file", "begin", "end"),
                    "the run's network and window (scenario, sumocfg, net/routes, duration_s)"),
    "step-length": "the run's step (step_length_s)", "seed": "the run's seed (--seed)",
    "random": "runs are reproducible from their seed (--seed)",
    "time-to-teleport": "the run's teleports (time_to_teleport_s)", "scale": "the run's demand (demand_scale)",
    "collision.action": "the audit counts collisions as SUMO reports them, with warn",
    "tls.all-off": "the run controls the signals", "remote-port": "the run's connection (remote_port)",
    "num-clients": "the run's connection (remote_port)", "load-state": "the run's own state",
}


#: options that write files without naming them (SUMO's STR, not FILE): the run's outputs renamed, a device's
#: own output files
_WRITING_OPTIONS = ("output-prefix", "output-suffix", "save-state.suffix")
_WRITING_DEVICES = ("device.ssm.", "device.toc.")


def owned_sumo_option(name: str, files: bool = False) -> str | None:
    """Why a run does not take SUMO option `name`; None when it does.

    The name is resolved through the installed SUMO's own table of options first, so a synonym (`n` for
    `net-file`, `netstate-output` for `netstate-dump`) is refused as its option is, and a name SUMO does not
    have is refused here rather than when SUMO starts. With `files`, any option SUMO says takes a file is
    refused too (`sumo_options`: a run, a training job sent to the API in particular, reads only its network,
    routes and additional files and writes only its run directory); a .sumocfg's own settings, applied with
    `sumocfg_options: apply`, may name the files beside it.
    """
    from ..sim.sumo_option_table import option_table

    if not re.fullmatch(r"[a-z][a-z0-9]*(?:[.-][a-z0-9]+)*", name):
        return "not a SUMO option name (lower case, without the leading dashes: ignore-junction-blocker)"
    table = option_table()
    option = None if table is None else table.get(name)
    if table is not None and option is None:
        return "not an option of the installed SUMO (sumo --help lists them)"
    canonical = name if option is None else option.name
    also = "" if canonical == name else f" (SUMO's other name for {canonical})"
    if canonical in OWNED_SUMO_OPTIONS:
        return f"set by the run{also}: {OWNED_SUMO_OPTIONS[canonical]}"
    if (canonical.endswith(("-output", "-log", "-dump", ".file")) or ".output" in canonical
            or canonical.startswith(("save-", "log", *_WRITING_DEVICES)) or canonical in _WRITING_OPTIONS):
        return f"the run writes its own outputs and logs (its run directory){also}"
    if files and option is not None and option.names_a_file:
        return (f"names a file{also}: a run's sumo_options name none (a file your network needs goes in its "
                ".sumocfg, read with sumocfg_options: apply, or among its additional files)")
    return None


class RunConfig(BaseModel):
    """Everything that determines a run; a seed reproduces it exactly."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # an infinite duration or a NaN scale is a typo
    #: a built-in scenario or resco:NAME; None with `sumocfg` or `net` (your own network), else "single"
    scenario: str | None = None
    controller: str = Field("max-pressure", description=(
        f"{' | '.join(builtin_choices())} | ql:PATH (a trained model directory; ql:@active, ql:@v3 "
        "from the model registry) | an installed plugin's name | py:MODULE:FACTORY | py:FILE.py:FACTORY (your "
        "own controller: docs/controllers.md)"))
    seed: int = Field(1, ge=0, le=MAX_SEED, description=(
        "random seed of SUMO; the same seed reproduces the run. It varies SUMO's randomness (driver imperfection, "
        "insertion, departure lanes and speeds) and the demand only where the route files draw it (random flows, "
        "route and type distributions: the built-in scenarios); RESCO's and randomTrips' route files fix it"))
    duration_s: float | None = Field(None, gt=0, description="simulated seconds; default: the scenario's window")
    sumocfg: Path | None = Field(None, description=(
        "your own SUMO configuration (.sumocfg); not with net/routes. A run reads its net-file, route-files, "
        "additional-files, begin and end (seconds or h:m:s, paths relative to the file); any other setting in it "
        "(step-length, time-to-teleport, processing, routing) is not applied unless sumocfg_options is apply "
        "(or sumo_options names it), and the run's warnings name it (not its report and GUI settings); an output "
        "file it asks for is not written, and the warnings name it; outputs of its additional files go into the "
        "run's sumo/additional/"))
    net: Path | None = Field(None, description="your own SUMO network (.net.xml); needs routes")
    routes: list[Path] = Field(default_factory=list, description="route files (.rou.xml) for net")
    out_dir: Path = Field(Path("runs"), description="parent directory of the run directory")
    step_length_s: float = Field(1.0, gt=0, le=5, description="SUMO simulation step")
    interval_s: float = Field(60.0, gt=0, description="time-series and record interval")
    warmup_s: float = Field(0.0, ge=0, description=(
        "seconds at the start of the run that fill the network and count in no summary figure: delay, waits, "
        "stops, throughput, queues, CO2 and fuel count the vehicles and pedestrians due to depart from begin + "
        "warmup_s on, and the intervals and queue samples from then; the time series, the event log and the "
        "safety audit cover the whole run. A multiple of interval_s, shorter than the run"))
    emissions: bool = Field(True, description="record CO2 and fuel with SUMO's emissions device (HBEFA)")
    record: Literal["full", "lean"] = Field("full", description=(
        "what SUMO records besides trips: full = per-edge intervals, emissions (with emissions), detector passages "
        "for ATSPM; lean = trips, signal events and states only (what delay and the safety audit need: training "
        "episodes, benchmark sweeps)"))
    evidence: Literal["auto", "replay", "inline"] = Field("auto", description=(
        "how a full record uses a second core: replay = a second SUMO replays the run's signal states and "
        "computes and reads the emissions while the run goes on (it must drive the same traffic, every trip "
        "compared; if its process dies, the run replays here), "
        "and the audit runs beside the rest of the writing; inline = all in the run's own process; auto = "
        "replay when at least half a core is free (the cores less this run and the last minute's load "
        "average) and the network's own additional files write no outputs. The audit runs beside the writing "
        "whenever half a core is free and evidence is not inline; for a lean record, in the run command"))
    gui: bool = Field(False, description="run in sumo-gui over TraCI (slower; needs a display)")
    remote_port: int | None = Field(None, description="TCP port of a SUMO already started with --remote-port "
                                                      "(TraCI; the run waits up to 10 s for it to answer); null = "
                                                      "start SUMO in-process (libsumo)")
    #: this runtime worker's share of the signals (the others belong to other workers, or keep their
    #: own programs); None = every signal of the network
    partition: list[str] | None = None
    #: with `remote_port` on a SUMO shared by several workers (`--num-clients N`): this worker's order
    client_order: int | None = Field(None, ge=1)
    timing: TimingConfig = Field(default_factory=TimingConfig, description=(
        "safety timing (see timing.*); a profile name alone (safety | benchmark | reference) selects its values"))
    demand_scale: float = Field(1.0, gt=0, le=MAX_DEMAND_SCALE, description=(
        "SUMO's --scale: the demand times this (1.2 = 20 % more vehicles, each flow and trip file alike); "
        "what-if studies of growth, and training on heavier traffic than the routes hold"))
    time_to_teleport_s: float = Field(300.0, ge=-1.0, description=(
        "SUMO's --time-to-teleport: a vehicle stuck this long jumps ahead; -1 = never (the benchmark and "
        "reference profiles); default: the timing profile's"))
    shield: ShieldSettings = Field(default_factory=ShieldSettings, description="shield thresholds (see shield.*)")
    sumo_options: dict[str, str | int | float | bool] = Field(default_factory=dict, description=(
        "SUMO options the simulation starts with, by name without dashes (e.g. {ignore-junction-blocker: 60, "
        "lateral-resolution: 0.8}): a calibrated network's processing settings (a .sumocfg's own reach SUMO only "
        "with sumocfg_options: apply; a run names those it leaves out). Not the ones a run sets itself (the "
        "network and window, step length, seed, teleports, demand scale, outputs, collisions, the signals), nor "
        "any that names a file; SUMO's other names for an option (n for net-file) count as it does"))
    sumocfg_options: Literal["warn", "apply"] = Field("warn", description=(
        "what a run does with the settings of its .sumocfg beyond the files and window: warn = leave them out "
        "and name them (a run's figures then depend only on the network, the demand and the run configuration); "
        "apply = start SUMO with them too (paths beside the .sumocfg made absolute), all but the ones a run sets "
        "itself, which the warning still names; a sumo_options key wins over the config's value"))
    mqtt_topic_prefix: str = Field("signalwise", min_length=1, max_length=200, description=(
        "signalwise live --mqtt: the topic tree of the detector feed, which subscribes to "
        "<prefix>/+/detectors (one or more levels, e.g. city/corridor-a: two runs whose networks use the same "
        "intersection ids share a broker under their own prefixes); no +, # or empty level"))
    controller_options: dict = Field(default_factory=dict, description=(
        "options passed to the controller: actuated passage_s (3; seconds for every phase, or per signal and "
        "phase: {default: 3, J1: {1: 5, 2: 2}, J3: 2.5}, phases numbered as the event log numbers them: "
        "docs/controllers.md#actuated); max-pressure period_s (5), min_hold_s (10), "
        "measure (density_demand = every vehicle in, halting vehicles out, per 100 m of lane; density = every "
        "vehicle in and out per 100 m, count, queue = halting in and all out, halting, demand = density_demand "
        "not per 100 m, stopped = vehicles seen halting since they entered the lane, RESCO's queue), "
        "lost_time_s (clearance = the yellow + all-red of the phase that ends; 0 = the plain rule), ties (hold | first), "
        "serving (measure | moving: with measure halting, queue or stopped, the current green's moving vehicles "
        "count too), "
        "shared_lanes (split: a lane that feeds several turn pockets counts for each its share of its vehicles; "
        "skip: it counts for none), permitted_weight (1: a permitted movement, SUMO's 'g', weighs its whole "
        "pressure; 0-1: that share of it, so a protected phase of the same movement can win), "
        "zone_m (50: a lane shorter than this is measured with the lanes up or down the road within it; 0 = each "
        "lane alone); user (a mapping your own controller reads: docs/controllers.md); the timing profile sets "
        "what its rules fix; a key no controller reads is refused by name"))

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data):
        """The timing profile fills what the configuration leaves out: per-network timing, the decision
        period, SUMO's teleports. Given keys win, so a dumped configuration reloads unchanged."""
        if not isinstance(data, dict):
            return data
        timing = data.get("timing")
        if isinstance(timing, str):
            timing = {"profile": timing}
        if isinstance(timing, TimingConfig):
            name = timing.profile
        elif isinstance(timing, dict):
            name = timing.get("profile", SAFETY)
        else:
            name = SAFETY
        if name not in PROFILE_NAMES:
            return data  # TimingConfig says what is wrong
        data = dict(data)
        scenario = data.get("scenario")
        if isinstance(timing, dict):
            data["timing"] = {**profile_timing(name, scenario), **timing}
        data["controller_options"] = {**profile_controller_options(name, scenario),
                                      **(data.get("controller_options") or {})}
        data.setdefault("time_to_teleport_s", profile_teleport_s(name))
        return data

    @model_validator(mode="after")
    def _one_network(self) -> RunConfig:
        """Exactly one way of naming the network, so nothing given is silently ignored."""
        if self.sumocfg is not None and (self.net is not None or self.routes):
            raise ValueError(f"sumocfg ({self.sumocfg}) and net/routes both given: a .sumocfg names its own "
                             "network and routes; give one or the other")
        if self.routes and self.net is None:
            raise ValueError("routes given without net: give the network they run on with net (--net)")
        if self.net is not None and not self.routes:
            raise ValueError("net needs at least one routes file (--routes)")
        own = self.sumocfg or self.net
        if own is not None and self.scenario is not None:
            raise ValueError(f"scenario {self.scenario!r} and {own} both given: choose the built-in scenario "
                             "or your own network")
        if own is None and self.scenario is None:
            self.scenario = "single"
        return self

    @model_validator(mode="after")
    def _warmup_fits(self) -> RunConfig:
        """A warm-up ends on an interval's boundary, so every figure (per approach, CO2 and fuel are SUMO's
        per-interval sums) counts from the same moment."""
        if self.warmup_s and abs(self.warmup_s / self.interval_s - round(self.warmup_s / self.interval_s)) > 1e-9:
            raise ValueError(f"warmup_s (--warmup) {self.warmup_s:g} s is not a multiple of interval_s {self.interval_s:g} s: "
                             "the per-approach figures, CO2 and fuel are SUMO's per-interval sums, and would count "
                             "from another moment than the delay")
        if self.duration_s is not None and self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s (--warmup) {self.warmup_s:g} s leaves nothing of the {self.duration_s:g} s "
                             "run to count: give a longer --duration or a shorter --warmup")
        return self

    @property
    def scenario_label(self) -> str:
        """What the run is of: the scenario name, or your network's file name."""
        if self.scenario is not None:
            return self.scenario
        return Path(self.sumocfg or self.net).name

    def with_absolute_paths(self) -> RunConfig:
        """The same configuration with every file path absolute, so it can be re-run from anywhere."""
        absolute = {name: getattr(self, name).resolve() for name in ("sumocfg", "net", "out_dir")
                    if getattr(self, name) is not None}
        return self.model_copy(update={**absolute, "routes": [p.resolve() for p in self.routes]})

    @field_validator("sumo_options")
    @classmethod
    def _sumo_options_not_owned(cls, options: dict) -> dict:
        """An option the run sets itself would be overridden or would break its evidence: refused by name."""
        for name in options:
            why = owned_sumo_option(name, files=True)
            if why:
                raise ValueError(f"{name}: {why}")
        return options

    @field_validator("controller_options")
    @classmethod
    def _known_options(cls, options: dict) -> dict:
        """A misspelt option (min_hold for min_hold_s) would be ignored without a word: refused by name."""
        from ..control.actuated import passage_option_error
        from ..control.base import options_error

        why = options_error(options) or ("passage_s" in options and passage_option_error(options["passage_s"]))
        if why:
            raise ValueError(why)
        return options

    @field_validator("mqtt_topic_prefix")
    @classmethod
    def _topic_levels(cls, prefix: str) -> str:
        """A prefix MQTT can subscribe under: wildcards or an empty level would match other feeds' topics."""
        if any(c in prefix for c in "+#\0") or "" in prefix.split("/"):
            raise ValueError(f"{prefix!r} is no MQTT topic prefix: levels separated by /, none empty, no + or #")
        return prefix

    @field_validator("controller")
    @classmethod
    def _known_controller(cls, v: str) -> str:
        """A name no controller has is refused by name; a `py:` spec is only read here (its module is imported
        where the run starts, never where a configuration is merely checked)."""
        from ..control.base import spec_error

        why = spec_error(v)
        if why:
            raise ValueError(why)
        return v
