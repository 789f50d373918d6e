"""The few types every stage takes and gives.

Frozen dataclasses with units in field names. A controller reads an
`Observation` and returns a `Decision`; the shield turns decisions into signal
states and `SignalEvent`s; the store and analytics read events and metrics.
Nothing here imports SUMO, a database or a web framework.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Static description of an intersection (read once from a network).
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Movement:
    """One signal link: vehicles (or pedestrians) going from one lane to another.

    `link_index` is the position of this link in the signal state string.
    """

    link_index: int
    in_lane: str
    out_lane: str
    is_crosswalk: bool = False
    #: the incoming lane's speed limit and the path through the junction: this link's ITE change interval
    approach_speed_mps: float | None = None
    path_m: float | None = None


@dataclass(frozen=True, slots=True)
class Detector:
    """A point detector on an incoming lane, placed by us or by the network."""

    id: str
    lane: str
    kind: str  # "stopbar" | "advance"
    distance_to_stopbar_m: float
    channel: int  # 1-based detector channel as controllers number them


@dataclass(frozen=True, slots=True)
class Crosswalk:
    """A pedestrian crossing controlled by the signal."""

    id: str  # SUMO crossing edge id
    link_indices: tuple[int, ...]
    length_m: float


@dataclass(frozen=True, slots=True)
class Phase:
    """A green phase: the links it serves and the SUMO state while it is green.

    `number` is the 1-based phase number used in the hi-res event log.
    """

    index: int
    green_state: str
    movements: tuple[Movement, ...]

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def green_links(self) -> frozenset[int]:
        return frozenset(i for i, c in enumerate(self.green_state) if c in "Gg")

    @property
    def in_lanes(self) -> tuple[str, ...]:
        """Incoming vehicle lanes served by this phase, in link order, unique."""
        seen: dict[str, None] = {}
        for m in self.movements:
            if not m.is_crosswalk:
                seen.setdefault(m.in_lane, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class Timing:
    """Safety timing of one intersection, seconds.

    `min_green_s` and `max_green_s` are per phase (indexed like phases).
    Pedestrian walk and clearance apply to phases that serve a crosswalk.

    The change interval is per phase too, as a NEMA controller keeps it: when
    phase p ends, its yellow and red clearance run (`yellow_of(p)`,
    `all_red_of(p)`), each worked out from the approach speeds and paths of the
    links p serves (ITE). `yellow_s` and `all_red_s` are the longest of them;
    with no per-phase values they apply to every phase.

    The pedestrian clearance is per phase as well (MUTCD 4E.06 times each
    crossing's): `ped_clearance_of(p)`, from the longest crosswalk p serves, so
    a phase over a short crosswalk is not held for the signal's longest.
    `ped_clearance_s` is the signal's longest crosswalk's (a configured value:
    every phase's).

    `cycle_max_s` bounds how long a link waits for its green. By default it
    counts from the link's last service, so a phase nobody waits for is
    still forced round; with `cycle_calls` it counts from a call, as a NEMA
    controller without recall skips a phase with no call (the shield says
    when a phase is called).

    With `protected_yellow`, a link that ends a protected green ('G') and is
    only permitted ('g') in the next phase is cleared like a link losing its
    green: yellow, red clearance, then its permitted green.
    """

    yellow_s: float
    all_red_s: float
    min_green_s: tuple[float, ...]
    max_green_s: tuple[float, ...]
    ped_walk_s: float
    ped_clearance_s: float
    cycle_min_s: float
    cycle_max_s: float
    #: False: no walk / clearance intervals; crosswalks show their phase's green throughout (benchmark profiles)
    ped_intervals: bool = True
    #: per phase (indexed like phases): the yellow and red clearance shown when that phase ends; () = the scalars
    phase_yellow_s: tuple[float, ...] = ()
    phase_all_red_s: tuple[float, ...] = ()
    #: True: the cycle bound runs from a call (a vehicle seen on a phase's lanes), not from the last service
    cycle_calls: bool = False
    #: True: a link going from protected green ('G') to permitted green ('g') at a phase change shows the ending
    #: phase's yellow and red clearance first (MUTCD: a yellow arrow ends a green arrow); False: it stays green
    #: (RESCO's and the reference's rule: only links losing their green get a yellow)
    protected_yellow: bool = True
    #: per phase (indexed like phases): its pedestrian clearance (flashing don't walk), 0 for a phase serving no
    #: crosswalk; () = `ped_clearance_s` for every phase
    phase_ped_clearance_s: tuple[float, ...] = ()

    def clearance_s(self) -> float:
        """The longest change interval of any phase."""
        return self.yellow_s + self.all_red_s

    def yellow_of(self, phase: int) -> float:
        return self.phase_yellow_s[phase] if self.phase_yellow_s else self.yellow_s

    def all_red_of(self, phase: int) -> float:
        return self.phase_all_red_s[phase] if self.phase_all_red_s else self.all_red_s

    def clearance_of(self, phase: int) -> float:
        """Yellow + red clearance shown when `phase` ends: what a change away from it costs."""
        return self.yellow_of(phase) + self.all_red_of(phase)

    def ped_clearance_of(self, phase: int) -> float:
        """The pedestrian clearance `phase`'s crosswalks get after their walk."""
        return self.phase_ped_clearance_s[phase] if self.phase_ped_clearance_s else self.ped_clearance_s


@dataclass(frozen=True, slots=True)
class Intersection:
    """A signalized intersection as the controllers and the shield see it."""

    id: str
    phases: tuple[Phase, ...]
    n_links: int
    movements: tuple[Movement, ...]
    detectors: tuple[Detector, ...]
    crosswalks: tuple[Crosswalk, ...]
    timing: Timing
    approach_speed_mps: float = 13.9
    #: longest path through the junction, for the all-red clearance (ITE: time to clear the width)
    width_m: float = 15.0
    #: green time of each phase in the network's own program (the fixed baseline)
    program_green_s: tuple[float, ...] = ()
    #: links that are green in the network's own program but belong to no
    #: green phase we derived (kept red by us); reported, never silently used
    notes: tuple[str, ...] = ()
    #: the program's cycle (every state's duration, yellows and all-reds included) and its offset, s: SUMO runs
    #: it at cycle position (time - offset) mod cycle. A coordinated plan keeps both (`control.coordinated`)
    program_cycle_s: float = 0.0
    program_offset_s: float = 0.0
    #: per phase (indexed like phases), where its green begins in the program's cycle, s from the cycle's start,
    #: and the program's change interval after it (its yellow and all-red states up to the next green), s: its
    #: split is its green plus this. Empty when the program serves a phase more than once a cycle (no split is
    #: its own then)
    program_green_onset_s: tuple[float, ...] = ()
    program_change_s: tuple[float, ...] = ()

    @property
    def in_lanes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for m in self.movements:
            if not m.is_crosswalk:
                seen.setdefault(m.in_lane, None)
        return tuple(seen)

    @property
    def out_lanes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for m in self.movements:
            if not m.is_crosswalk:
                seen.setdefault(m.out_lane, None)
        return tuple(seen)

    def phases_serving_crosswalk(self) -> frozenset[int]:
        cw_links = {i for c in self.crosswalks for i in c.link_indices}
        return frozenset(p.index for p in self.phases if p.green_links & cw_links)


# ---------------------------------------------------------------------------
# What is seen and what is decided, every step.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneState:
    """Traffic on one lane at one moment."""

    queue_veh: int  # halting vehicles (speed < 0.1 m/s)
    count_veh: int  # vehicles on the lane
    occupancy: float  # 0..1
    mean_speed_mps: float
    wait_s: float  # accumulated waiting time of vehicles on the lane
    #: vehicles on the lane that were seen halting at an observation since they entered it: a queue still
    #: discharging counts until it has left (RESCO's queue). None where the source does not follow vehicles
    stopped_veh: int | None = None


@dataclass(frozen=True, slots=True)
class EmergencyApproach:
    """An emergency vehicle heading for this intersection."""

    vehicle_id: str
    in_lane: str
    distance_m: float
    link_index: int


@dataclass(frozen=True, slots=True)
class SignalStatus:
    """What the signal shows now: the phase, its interval, and for how long."""

    phase_index: int  # current green phase, or the phase being cleared
    interval: str  # "green" | "yellow" | "all_red"
    elapsed_s: float  # time in the current interval
    next_phase_index: int | None = None  # during clearance: the phase that comes next
    preempted: bool = False


@dataclass(frozen=True, slots=True)
class ObservationNeed:
    """What a controller needs measured, so a source reads no more than that.

    `lane_detail` is "full" (queue, count, occupancy, speed, wait),
    "counts" (queue and count only) or "stopped" (queue, count and the
    vehicles seen halting since they entered the lane) for `lane_ids`;
    detectors are asked for
    their idle times and for their last complete period's counts.
    """

    lane_ids: tuple[str, ...] = ()
    lane_detail: str = "counts"
    detector_idle_ids: tuple[str, ...] = ()
    detector_count_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How fresh and sound one source's part of an observation is.

    `source` names the feed ("lanes", "detectors", a camera zone, an external
    detector feed); `age_s` is how old its newest data is at observation time;
    `healthy` is False when the source reported a fault or sent values that
    cannot be true, and `reason` says which.
    """

    source: str
    age_s: float = 0.0
    healthy: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything a controller may use about one intersection at `time_s`.

    `lanes` holds incoming and outgoing lanes. `detector_idle_s` maps a
    detector id to the seconds since it last saw a vehicle (0 while occupied;
    SUMO's loop that has seen none yet reads `time_s + 3600`).
    `detector_counts_veh` holds the vehicles of the last complete counting
    period (SUMO's: 900 s from the run's begin; empty before the first ends).
    `sources` says, per source, how old and how sound its data is: the shield
    falls back to its plan when any is stale or unhealthy. `emergency` lists
    the emergency vehicles approaching, which the shield's preemption serves.
    """

    time_s: float
    intersection_id: str
    lanes: dict[str, LaneState]
    detector_idle_s: dict[str, float] = field(default_factory=dict)
    signal: SignalStatus | None = None
    detector_counts_veh: dict[str, int] = field(default_factory=dict)  # last complete count period
    emergency: tuple[EmergencyApproach, ...] = ()
    sources: tuple[SourceHealth, ...] = ()

    @property
    def age_s(self) -> float:
        """Age of the stalest source (0 with none)."""
        return max((s.age_s for s in self.sources), default=0.0)

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.sources)

    def data_fault(self, max_age_s: float) -> str | None:
        """Why these data cannot be trusted (a source too old or unhealthy), or None."""
        for s in self.sources:
            if not s.healthy:
                return f"{s.source} unhealthy: {s.reason or 'fault reported'}"
            if s.age_s > max_age_s:
                return f"{s.source} stale: {s.age_s:.0f} s old (max {max_age_s:g} s)"
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    """A controller's proposal: serve `phase_index` next, or keep the current one.

    `confidence` in [0, 1]; the shield falls back to its plan when it is low.

    `termination` says why a proposed change ends the current green, as the
    hi-res log records it (`EventCode.PHASE_GAP_OUT`: its demand is gone;
    `PHASE_MAX_OUT`: it reached the controller's own maximum;
    `PHASE_FORCE_OFF`: ended by a plan or while vehicles still wait). Only
    the controller knows which: the shield sees a phase index, not a reason.
    None (or a hold): the shield logs a force-off, claiming no detector
    knowledge it does not have.
    """

    intersection_id: str
    phase_index: int | None  # None = hold the current phase
    proposed_by: str
    confidence: float = 1.0
    termination: EventCode | None = None

    @property
    def holds(self) -> bool:
        return self.phase_index is None


# ---------------------------------------------------------------------------
# The hi-res controller event log (Indiana enumeration).
# ---------------------------------------------------------------------------


class EventCode(enum.IntEnum):
    """Indiana Traffic Signal Hi-Resolution Data Logger enumerations we emit."""

    PHASE_BEGIN_GREEN = 1
    PHASE_GAP_OUT = 4
    PHASE_MAX_OUT = 5
    PHASE_FORCE_OFF = 6
    PHASE_GREEN_TERMINATION = 7
    PHASE_BEGIN_YELLOW = 8
    PHASE_END_YELLOW = 9
    PHASE_BEGIN_RED_CLEARANCE = 10
    PHASE_END_RED_CLEARANCE = 11
    PHASE_CALL_REGISTERED = 43
    PED_BEGIN_WALK = 21
    PED_BEGIN_CLEARANCE = 22
    PED_BEGIN_DONT_WALK = 23
    PED_CALL_REGISTERED = 45
    DETECTOR_OFF = 81
    DETECTOR_ON = 82
    PED_DETECTOR_OFF = 89
    PED_DETECTOR_ON = 90
    PREEMPT_CALL_ON = 102
    PREEMPT_ENTRY_STARTED = 105
    PREEMPT_BEGIN_TRACK_CLEARANCE = 106
    PREEMPT_CALL_OFF = 104
    PREEMPT_BEGIN_DWELL = 107
    PREEMPT_MAX_PRESENCE_EXCEEDED = 110
    #: Indiana's "coordination pattern change". Alone, a timing plan: the device runs the signal model's timing
    #: revision `parameter` (1-based, `timing_revisions` in signal_model.json) from the green that begins at
    #: the same time on. An operator's timing change at run time; the audit holds each green to its revision.
    #: Logged with a 132 at the same instant, a coordination pattern (parameter = the pattern number: 1 the
    #: program's plan `coordinated` runs, 254 free), which changes no safety timing
    TIMING_PLAN_CHANGE = 131
    #: Indiana's "cycle length change", logged with a coordination pattern's 131: its cycle, whole seconds (0
    #: for a free pattern); a cycle over 255 s is logged as 255 with the rest in a 156
    CYCLE_LENGTH_CHANGE = 132
    #: Indiana's "offset length change", logged with a coordination pattern's 131: its offset, whole seconds
    #: (0 for a free pattern; over 255 s logged as 255)
    OFFSET_LENGTH_CHANGE = 133
    #: Indiana's "additional cycle length change": with a 132 of 255, the cycle's seconds above 255
    ADDITIONAL_CYCLE_LENGTH_CHANGE = 156
    #: signalwise's own code, outside the Indiana enumeration's assigned range: the live runtime
    #: resumed from a saved state after its simulator died. Parameter = whole seconds of simulated
    #: time rewound. Events after it replay from the restored state, starting with the events that
    #: opened the intervals in force then, at their original times; the audit checks each side alone.
    RUNTIME_RECOVERY = 240


#: the row `signal_states.csv` gets at a recovery (state column), before the restored states
RECOVERY_STATE = "RECOVERY"

#: the coordination pattern numbers (a 131's parameter, logged with a 132 at its instant) signalwise logs: the
#: program's plan, the one plan `coordinated` runs; Free (UDOT ATSPM's name), a signal not coordinated (it runs the
#: plan `fixed` runs, on no common cycle; its 132 and 133 are 0). Flash is a field controller's, named by ATSPM
COORDINATED_PATTERN = 1
FREE_PATTERN = 254
FLASH_PATTERN = 255


@dataclass(frozen=True, slots=True, order=True)
class SignalEvent:
    """One row of the hi-res log: (time, device, event code, parameter).

    `parameter` is the phase number (1-based) for phase and pedestrian
    events, the detector channel for detector events, the preempt channel for
    preemption events.
    """

    time_s: float
    device_id: str
    event_code: int
    parameter: int


@dataclass(frozen=True, slots=True)
class Intervention:
    """The shield overrode or constrained a decision: which rule, where, when."""

    time_s: float
    intersection_id: str
    rule: str  # min_green | max_green | clearance | ped_clearance | cycle_max | preempt | fallback
    detail: str = ""
