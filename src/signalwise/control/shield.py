"""The safety shield: every controller's proposal passes through here.

The shield owns the signal. Controllers only *propose* the next green phase
(or to hold the current one); the shield decides when that is allowed and
drives the change itself:

    green(i) --min green, pedestrian walk + clearance done--> yellow(i)
             --yellow_of(i)--> all-red --all_red_of(i)--> green(j)

Guarantees, per intersection:

- minimum green (which includes pedestrian walk + clearance for phases that
  serve a crosswalk), maximum green (max-out), yellow and all-red clearance
  before any new green, each the ending phase's own (links green in both
  phases stay green: overlaps; with `Timing.protected_yellow` a link going
  from protected 'G' to permitted 'g' is cleared as one losing its green,
  then shows its 'g');
- cycle bounds: no signal link waits more than `cycle_max_s` between two
  starts of its green. The bound is kept on a covering set of phases (the
  fewest phases that together serve every link, `cycle_phases`): each of them
  is served before the oldest service of its links is `cycle_max_s` old (any
  phase showing a link green serves it), so every link is. Phases
  outside the cover (a protected left that a through phase also serves as
  permitted, a second pairing of the same movements) are served when the
  controller asks, never forced. Before it lets a phase keep or take the
  green, the shield checks that every covering phase can still start by its
  deadline, served at minimum green in due order (deadline + service:
  Jackson's rule, which fits whenever any order does); if not, it forces the
  first one due (force-off). While an operator's retime waits for its green,
  the green in force is held, and the next phase chosen, with the greens to
  come counted at the timing in force against the stricter of the two
  bounds: until a green takes it, a retime may still be replaced (undone),
  so its raised bound or shorter greens are not yet in force. A green takes
  it when every phase can still start by its deadline under it, against its
  own bound (a raised bound is what its longer greens need); otherwise it
  keeps the timing in force. A retime that
  waits longer than a cycle is logged (`retime_waiting`). A retime given
  before the first tick is the timing the signal starts on
  (`start_on_pending`). With `Timing.cycle_calls` a covering phase's deadline runs
  from its call instead (event 43): the observation handed to `tick` saw a
  vehicle on one of its incoming lanes while it was not green; the call
  stays until every link of the phase has begun a green. A phase nobody
  waits for is then never forced. Where the shield cannot see calls it
  places them at once (recall): phases serving a crosswalk (pedestrians
  are not in the lane data), lanes missing from the observation, and every
  phase while no sound lane data are fresher than `max_observation_age_s`
  (fixed time and Webster observe no lanes; a failed detector feed);
- emergency preemption (unless `preempt` is off): an emergency vehicle within
  `preempt_distance_m` calls (102, on the lowest channel no other call at the
  signal holds, with a `preempt_call` intervention naming vehicle, lane and
  phase); the calls are served one at a time in the order they came (105 when
  a call's entry starts, a `preempt_queued` intervention for one that waits).
  Entry: the green in force ends once it has run the preemption entry minimum
  (`preempt_entry_min_green_s`, or its own minimum green when shorter: NEMA's
  entry minimum, which truncates a longer minimum green) and its pedestrians'
  walk and clearance (with `preempt_ends_walk` the walk ends at once; the
  clearance is never shortened), then its yellow and all-red in full. A green
  that begins while a call is on (its change interval was under way) shows no
  walk and has the same entry minimum; should every call end before it does,
  its walk starts then. The called phase's green is held (107 begins the
  dwell of every call it serves) until the vehicle passes. The maximum dwell
  bounds the signal, not each call: continuous preemption at a signal (calls
  overlapping or following one another without a gap) dwells at most
  `preempt_max_dwell_s` from its first 107, whichever calls it serves (and
  lasts at most one entry and that dwell from its first 102); then
  every call on ends (110, max presence exceeded, and 104) and the signal
  re-services: each other phase of the cycle (`cycle_phases`) runs at least
  its minimum green, clearances in full, before a new call is taken
  (`preempt_reservice` interventions; a call that comes meanwhile waits,
  `preempt_lockout`). A vehicle whose call ended does not call again at that
  signal until it has dropped out of range (left the distance or passed the
  stop line), as a detector input re-arms only once its call drops. Cycle and
  max-green bounds are suspended while a preempt is active, clearances are
  not;
- fallback: when a decision's confidence is below the threshold, the
  observation it was made on is older than `max_observation_age_s` or has an
  unhealthy source, the controller failed, or its decision cannot be
  followed (not readable, another signal's, a phase the signal lacks), the
  shield follows its fallback plan (Webster by default) until things
  recover, and logs why.

Emergency vehicles reach it in the `Observation` handed to `tick`.

It records every change as Indiana hi-res events and every override as an
`Intervention`. It never knows which controller proposed. Each green's end
is logged with why it ended (`_asked_termination`): a max-out (5) at the
maximum green, a force-off (6) for its own interventions (cycle bound,
preemption) and for its fallback plan, and, for a change it makes as the
controller asked, the termination the controller's `Decision` states.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from ..core.timing import ceil_to_step, shortest_greens_s
from ..core.types import (
    Decision,
    EmergencyApproach,
    EventCode,
    Intersection,
    Intervention,
    Observation,
    SignalEvent,
    SignalStatus,
    Timing,
)
from .preempt_phase import phase_serving_link

EPS = 1e-6
GREEN = "Gg"

GREEN_I, YELLOW_I, ALL_RED_I = "green", "yellow", "all_red"
#: the terminations a controller may state for a change it asks for (`Decision.termination`)
_CONTROLLER_TERMINATIONS = frozenset({EventCode.PHASE_GAP_OUT, EventCode.PHASE_MAX_OUT, EventCode.PHASE_FORCE_OFF})
PED_NONE, PED_WALK, PED_CLEAR, PED_DONT_WALK = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class ShieldConfig:
    """The shield's thresholds. No defaults here: the run configuration holds them, once."""

    confidence_threshold: float
    max_observation_age_s: float
    #: False: emergency vehicles call no preemption (the reference controllers have none)
    preempt: bool
    preempt_distance_m: float
    preempt_max_dwell_s: float
    #: a preemption's entry ends a walk in progress (its clearance still runs in full)
    preempt_ends_walk: bool
    #: during a preemption's entry a green may end once it has run this (or its own minimum, when shorter)
    preempt_entry_min_green_s: float
    step_length_s: float


class _GreensPlan(NamedTuple):
    """A timing the greens to come may run, as the cycle bound plans them: per phase its shortest green and its
    change interval, and the bound each link's wait is held to under it."""

    min_green_s: list[float]
    clear_s: list[float]
    cycle_max_s: float


class Outlook(NamedTuple):
    """What the shield will do with `phase` asked for at full confidence from the next step on (an operator's hold
    or call), worked out from its state now (`IntersectionShield.outlook`). Phases 0-based, times in the run's
    seconds; `math.inf`: no such end."""

    phase: int
    #: the phase green now, or the one being cleared, and its interval (green, yellow, all_red)
    in_force: int
    interval: str
    #: that phase's yellow and all-red as configured, and the two as shown (in whole steps)
    yellow_s: float
    all_red_s: float
    clearance_shown_s: float
    #: `phase` is green now, since then (None: it is not)
    green_since_s: float | None = None
    #: the green in force may not end before then, and why (`minimum green`, `pedestrian walk and clearance`)
    held_until_s: float | None = None
    held_by: str | None = None
    #: during a clearance, the phase it clears to (when not `phase`)
    clearing_to: int | None = None
    #: a phase the cycle bound serves before `phase`
    cycle_first: int | None = None
    #: when `phase` is green at the earliest; `exact`: by the shield's own schedule, else about (another phase's
    #: minimum green and clearance come first)
    green_at_s: float | None = None
    exact: bool = True
    #: when its green is ended by its maximum green (counted from another phase's call with `cycle_calls`:
    #: `max_from_call`), and by the cycle bound (`cycle_max_s`), then serving `cycle_next`
    max_green_s: float = math.inf
    max_end_s: float = math.inf
    max_from_call: bool = False
    cycle_max_s: float = math.inf
    cycle_end_s: float = math.inf
    cycle_next: int | None = None
    #: a preemption holds the signal now, for this vehicle (the phase waits until it ends)
    preempt_vehicle: str | None = None


@dataclass(slots=True)
class PreemptCall:
    """One emergency vehicle's preemption call at a signal, from its 102 to its 104."""

    vehicle_id: str
    #: the channel its 102 ... 104 are logged on: the lowest no other call at the signal held when it came
    channel: int
    #: the phase serving the vehicle's link (0-based)
    phase: int
    in_lane: str
    on_s: float
    #: when the called phase's green began to serve it (its 107); None while its entry clears or it waits
    dwell_start_s: float | None = None


class FallbackPlan:
    """What the shield follows when it cannot trust the controller.

    Anything with `decide(observation) -> Decision` that needs only the signal
    status (no traffic data: the data may be what failed) fits.
    """

    def decide(self, obs: Observation) -> Decision:  # pragma: no cover - protocol
        raise NotImplementedError


def clearance_state(from_state: str, to_state: str, yellow: bool, protected_yellow: bool = True) -> str:
    """Link states while leaving `from_state` for `to_state`.

    Links green in both phases stay green ('g' if either phase only permits
    them); links losing their green show 'y' (yellow) or 'r' (all-red);
    everything else is red. With `protected_yellow` a link going from
    protected 'G' to permitted 'g' is cleared like one losing its green: a
    driver finishing a protected left is warned before oncoming traffic is
    released (MUTCD's yellow arrow). Without it (RESCO's rule) it stays 'g'.
    """
    out = []
    for a, b in zip(from_state, to_state, strict=True):
        if a in GREEN and b in GREEN and not (protected_yellow and a == "G" and b == "g"):
            out.append("g" if "g" in (a, b) else "G")
        elif a in GREEN:
            out.append("y" if yellow else "r")
        elif a == "s" and b == "s":
            out.append("s")  # right turn on red stays
        else:
            out.append("r")
    return "".join(out)


class IntersectionShield:
    """The shield of one intersection. Call `tick(now)` once per simulation step."""

    def __init__(self, inter: Intersection, fallback: FallbackPlan, config: ShieldConfig,
                 start_s: float = 0.0, initial_phase: int = 0):
        self.inter = inter
        self.cfg = config
        self.fallback = fallback
        #: (from phase, to phase, yellow) -> the state shown, under the timing in force
        self._change_cache: dict[tuple[int, int, bool], str] = {}
        self._use_timing(inter.timing)
        self._pending_timing: Timing | None = None
        self._pending_revision: int | None = None
        #: the first green that passed the waiting retime over (it did not fit), and whether its wait was logged
        self._retime_passed_s: float | None = None
        self._retime_wait_noted = False
        #: no tick yet: the green the signal opened with has run nothing (`start_on_pending`)
        self._ticked = False
        #: the signal model's timing revision in force (0: the timing the run started with)
        self.timing_revision = 0
        self._n = len(inter.phases)
        # without pedestrian intervals (benchmark profiles) crosswalks simply follow their phase's green
        cw_links = {i for c in inter.crosswalks for i in c.link_indices} if inter.timing.ped_intervals else set()
        self._ped_links = [frozenset(p.green_links & cw_links) for p in inter.phases]
        self._green_states = [p.green_state for p in inter.phases]
        self._phase_links = [tuple(i for i, ch in enumerate(p.green_state) if ch in GREEN) for p in inter.phases]
        self.cycle_phases = covering_phases(inter)
        self._bounded = [p in self.cycle_phases for p in range(self._n)]
        self._no_walk_states = [_with_red(p.green_state, self._ped_links[p.index]) for p in inter.phases]
        #: per phase, the incoming lanes whose vehicles call it; None: on recall (it serves a crosswalk: the lane
        #: data do not see pedestrians waiting)
        serve_crosswalk = inter.phases_serving_crosswalk()
        self._call_lanes: list[tuple[str, ...] | None] = [
            None if (p.index in serve_crosswalk or not p.in_lanes) else p.in_lanes for p in inter.phases]
        #: per phase, when its call registered (cycle_calls); None: not called
        self._call_s: list[float | None] = [None] * len(inter.phases)
        #: per called phase, its links that have not begun a green since the call (the call ends when none is left)
        self._call_owed: list[set[int]] = [set() for _ in inter.phases]
        #: when an observation last brought sound lane data to read calls from
        self._lanes_seen_s: float | None = None

        self.events: list[SignalEvent] = []
        self.interventions: list[Intervention] = []
        self.proposal: Decision | None = None
        self.data_fault: str | None = None
        self.controller_failed = False
        #: why the latest proposal could not be read (a phase index that is no whole number, a confidence that
        #: is no number); None when it could. Such a proposal is a controller failure, not a crash or a trust.
        self.malformed: str | None = None

        self.phase = initial_phase
        self.next_phase: int | None = None
        self.interval = GREEN_I
        self.interval_start_s = start_s
        self.green_start_s = start_s
        self.last_green_start_s = [start_s] * self._n
        #: when each link last began a green (any phase serving it counts); the cycle deadlines come from these
        self.link_served_s = {link: start_s for links in self._phase_links for link in links}
        #: per phase, when the wait its cycle deadline runs from began (its links' oldest service, or its call),
        #: worked out from `link_served_s` when first needed after it changed; each plan adds its own bound
        self._deadlines: list[float] | None = None
        self.ped = PED_NONE
        self.ped_start_s = start_s
        self.state = ""
        #: who has been told "minimum green" in this green: noted once each, so that an operator's phase held back
        #: is logged even when the controller's was first
        self._min_green_noted: set[str] = set()

        self.in_fallback = False
        self.fallback_ticks = 0
        self.ticks = 0
        #: while green with a trusted "hold" proposal, nothing can change before this time
        self._quiet_until_s = -math.inf

        self.preempt_active = False
        self.preempt_vehicle: str | None = None
        self.preempt_phase: int | None = None
        self.preempt_start_s = 0.0
        #: when the preempted phase's green began for the vehicle (the dwell); None while entry still clears
        self.preempt_dwell_start_s: float | None = None
        #: the calls on now, by vehicle, in the order they came (the first is the one served: `preempt_vehicle`)
        self.preempt_calls: dict[str, PreemptCall] = {}
        #: vehicles whose call ended and that have not dropped out of range since: they do not call again yet
        self._preempt_spent: set[str] = set()
        #: the first 107 of the preemption in force (calls overlapping or following one another): what the maximum
        #: dwell bounds; None while no preemption dwells
        self._episode_dwell_start_s: float | None = None
        #: the first 102 of the preemption in force: it lasts at most one entry (`_entry_bound_s`) and the dwell
        self._episode_on_s = 0.0
        #: after a preemption ran out its maximum dwell: the phases still owed a minimum green before a new call is
        #: taken (the re-service), and the vehicles told they wait for it
        self._reservice_owed: set[int] = set()
        self._lockout_noted: set[str] = set()
        #: the green in force began during a preemption and showed no walk
        self._walk_withheld = False
        self._start_green(initial_phase, start_s)

    def _use_timing(self, t: Timing) -> None:
        n = len(t.min_green_s)
        #: per phase: the change interval shown when that phase ends
        self._yellow_s = [t.yellow_of(p) for p in range(n)]
        self._all_red_s = [t.all_red_of(p) for p in range(n)]
        self._clear_eff_s, self._min_green_eff_s = self._effective(t)
        #: the longest a preemption's entry may take: a change interval under way, then a minimum green and its own
        #: change interval (the audit allows this, plus a pedestrian buffer and rounding)
        self._entry_bound_s = max(self._clear_eff_s) + max(g + c for g, c in zip(self._min_green_eff_s,
                                                                                   self._clear_eff_s, strict=True))
        self._calls = t.cycle_calls
        self._protected_yellow = t.protected_yellow
        self._change_cache.clear()  # the change states follow the timing's protected_yellow
        self._in_force_plan = _GreensPlan(self._shortest_green(t), self._clear_eff_s, t.cycle_max_s)
        self._plan_timing(t)

    @property
    def _entry_min_green_s(self) -> float:
        """The preemption entry minimum, read from the settings in force (a run-time shield change replaces them)."""
        return ceil_to_step(self.cfg.preempt_entry_min_green_s, self.cfg.step_length_s)

    def _effective(self, t: Timing) -> tuple[list[float], list[float]]:
        """Per phase, its change interval and minimum green rounded up to whole steps: what the signal shows."""
        step = self.cfg.step_length_s
        clear = [ceil_to_step(t.yellow_of(p), step) + ceil_to_step(t.all_red_of(p), step)
                 for p in range(len(t.min_green_s))]
        return clear, [ceil_to_step(g, step) for g in t.min_green_s]

    def _shortest_green(self, t: Timing) -> list[float]:
        """Per phase, the shortest green it can show: its minimum, or its pedestrians' walk and clearance when
        longer (every green of a phase with a crosswalk times them in full before it may end). The cycle bound
        plans with these; planning a crosswalk phase at its bare minimum let the phases after it come late."""
        crossing = {i for c in self.inter.crosswalks for i in c.link_indices} if t.ped_intervals else set()
        return shortest_greens_s(t.min_green_s, [bool(p.green_links & crossing) for p in self.inter.phases],
                                 t.ped_walk_s, [t.ped_clearance_of(p) for p in range(len(t.min_green_s))],
                                 self.cfg.step_length_s)

    def _plan_timing(self, upcoming: Timing) -> None:
        """The plans the cycle bound checks the greens to come with, when `upcoming` (a retime, or the timing in
        force) is the timing the next green may take.

        Holding a green and choosing the next phase use the timing in force, against the stricter of its bound
        and the retime's (a lowered bound holds from the change on): a waiting retime may be replaced before any
        green takes it, so a hold its raised bound or shorter greens allowed would leave a link late once it is
        undone. The retime's own plan, with its own bound, only decides whether a green takes it
        (`_retime_fits`): a raised bound is what its longer greens need (planned against the old, a retime whose
        cycle the old bound cannot hold never found a green it fits), and once taken it is the bound in force."""
        self._hold_plan = self._in_force_plan._replace(
            cycle_max_s=min(self.inter.timing.cycle_max_s, upcoming.cycle_max_s))
        self._retime_plan = self._in_force_plan if upcoming is self.inter.timing else _GreensPlan(
            self._shortest_green(upcoming), self._effective(upcoming)[0], upcoming.cycle_max_s)
        self._deadlines = None

    def retime(self, timing: Timing, revision: int | None = None) -> None:
        """New safety timing (an operator's change), taken at the next green: never mid-interval. With a
        `revision` (the signal model's timing revision it is), the green that takes it is logged after a 131,
        so the audit holds every green to the timing it ran under."""
        if len(timing.min_green_s) != len(self.inter.phases) or \
                len(timing.phase_yellow_s) not in (0, len(self.inter.phases)) or \
                len(timing.phase_ped_clearance_s) not in (0, len(self.inter.phases)):
            raise ValueError(f"timing for {len(timing.min_green_s)} phases given to {self.inter.id} "
                             f"with {len(self.inter.phases)}")
        if self._pending_timing is None:
            self._retime_passed_s, self._retime_wait_noted = None, False
        self._pending_timing, self._pending_revision = timing, revision
        self._plan_timing(timing)
        self._quiet_until_s = -math.inf  # the hold proved under the old plan: a longer new one may not allow it

    def start_on_pending(self) -> bool:
        """Take the waiting retime as the timing the signal starts on (False: none waits).

        Before the first tick the green the signal opened with has run nothing under the old timing, so there is
        no green to finish first: it is opened again under the new one, its 131 logged before its 1 (a restart
        replaying an operator's changes must not run a first green and clearance the operator had lengthened).
        Its opening events must still be here, not handed on."""
        if self._pending_timing is None:
            return False
        start_s = self.green_start_s
        if self._ticked or self.interval != GREEN_I or not self.events \
                or any(e.time_s != start_s for e in self.events):
            raise RuntimeError(f"{self.inter.id}: a timing is started on only before the first tick, with the "
                               "opening green's events not yet handed on")
        self.events.clear()
        self._take_timing(self._pending_timing, self._pending_revision, start_s)
        self._start_green(self.phase, start_s)
        return True

    @property
    def pending_revision(self) -> int | None:
        """The revision of the retime waiting for a green it fits (None: none waits, or it has no number)."""
        return self._pending_revision

    # -- public --------------------------------------------------------------
    def status(self, now: float) -> SignalStatus:
        return SignalStatus(self.phase, self.interval, now - self.interval_start_s, self.next_phase,
                            self.preempt_active)

    def outlook(self, phase: int, now: float) -> Outlook:
        """What the shield will do with `phase` proposed from the next step on, from its state at `now` (it reads,
        never changes it): when the phase can be green and what holds it back, and what ends that green (maximum
        green, the cycle bound). An operator told "applied" is told this too, so that a hold the minimum green
        defers or the maximum green cuts is not read as done now."""
        step = self.cfg.step_length_s
        c, t = self.phase, self.inter.timing
        out = Outlook(phase, c, self.interval, self._yellow_s[c], self._all_red_s[c], self._clear_eff_s[c],
                      max_green_s=t.max_green_s[phase], max_from_call=self._calls,
                      cycle_max_s=self._hold_plan.cycle_max_s)
        if self.preempt_active:
            return out._replace(preempt_vehicle=self.preempt_vehicle or "an emergency vehicle")
        if self._n == 1:
            return out._replace(green_since_s=self.green_start_s)
        if self.interval == GREEN_I and c == phase:
            max_start = self._max_green_start_s()
            urgent = self._most_urgent(exclude=c)
            cycle_end = math.inf
            if urgent is not None:
                slack = self._slack(urgent, now + step)  # seconds it may be held past the next step
                if math.isfinite(slack):
                    cycle_end = now + step + max(0, math.floor(slack / step + EPS)) * step
            return out._replace(green_since_s=self.green_start_s,
                                max_end_s=max_start + ceil_to_step(t.max_green_s[c], step),
                                cycle_end_s=cycle_end, cycle_next=urgent)
        if self.interval == GREEN_I:
            held_until, held_by = self.green_start_s + self._min_green_eff_s[c], "minimum green"
            ped_end = self._ped_end_s()
            # a crosswalk phase's minimum green is its walk + clearance: a tie is the pedestrians' (docs/live.md)
            if ped_end is not None and ped_end >= held_until - EPS:
                held_until, held_by = ped_end, "pedestrian walk and clearance"
            change_s = max(now + step, held_until)
            first = None if self._feasible(phase, change_s) else self._most_urgent(exclude=c)
            first = None if first == phase else first
            green_at = change_s + self._clear_eff_s[c]
            if first is not None:
                green_at += self._in_force_plan.min_green_s[first] + self._clear_eff_s[first]
            out = out._replace(held_until_s=held_until if held_until > now + step + EPS else None,
                               held_by=held_by if held_until > now + step + EPS else None,
                               cycle_first=first, green_at_s=green_at, exact=first is None)
        else:
            to = self.next_phase
            cleared = self.interval_start_s + (self._clear_eff_s[c] if self.interval == YELLOW_I
                                               else ceil_to_step(self._all_red_s[c], step))
            green_at = cleared if to == phase else (
                cleared + self._in_force_plan.min_green_s[to] + self._clear_eff_s[to])
            out = out._replace(clearing_to=None if to == phase else to, green_at_s=green_at, exact=to == phase)
        cycle_end, cycle_next = self._cycle_end_after(phase, out.green_at_s)
        return out._replace(max_end_s=out.green_at_s + ceil_to_step(t.max_green_s[phase], step),
                            cycle_end_s=cycle_end, cycle_next=cycle_next)

    def _ped_end_s(self) -> float | None:
        """When the pedestrian walk and clearance of the green in force end (None: none runs)."""
        step, t = self.cfg.step_length_s, self.inter.timing
        clear_s = ceil_to_step(t.ped_clearance_of(self.phase), step)
        if self.ped == PED_WALK:
            return self.ped_start_s + ceil_to_step(t.ped_walk_s, step) + clear_s
        if self.ped == PED_CLEAR:
            return self.ped_start_s + clear_s
        return None

    def _cycle_end_after(self, phase: int, start_s: float) -> tuple[float, int | None]:
        """The latest end of a green of `phase` starting at `start_s` that the cycle bound lets run, and the phase
        it then serves, as `_slack` plans it (the other covering phases in due order, each at its minimum green
        and change interval, under the timing in force); (inf, None) when no bound applies."""
        plan, links = self._hold_plan, set(self._phase_links[phase])
        waits = []
        for q in self.cycle_phases:
            if q == phase:
                continue
            if self._calls:
                wait = math.inf if self._call_s[q] is None else self._call_s[q]
            else:
                wait = min((start_s if link in links else self.link_served_s[link] for link in self._phase_links[q]),
                           default=math.inf)
            waits.append((wait + plan.cycle_max_s + plan.min_green_s[q] + plan.clear_s[q], q, wait))
        latest, offset_s = math.inf, plan.clear_s[phase]
        for _due, q, wait in sorted(waits):
            latest = min(latest, wait + plan.cycle_max_s - offset_s)
            offset_s += plan.min_green_s[q] + plan.clear_s[q]
        if not math.isfinite(latest):
            return math.inf, None
        return latest, min(waits)[1]

    def propose(self, decision: Decision | None, observation: Observation | None = None,
                failed: bool = False) -> None:
        """Hand the shield the controller's latest proposal and the observation it was made on.

        None with `failed=True`: the controller crashed. A proposal made on
        stale or unhealthy data is not followed: the fallback plan serves until
        a proposal on sound data arrives.
        """
        self.malformed = None if decision is None else malformed_decision(decision)
        if self.malformed is not None:
            decision = None
        elif decision is not None and decision.phase_index is not None and type(decision.phase_index) is not int:
            decision = replace(decision, phase_index=int(decision.phase_index))  # numpy's integers, as plain ints
        self.proposal = decision
        self.data_fault = None if observation is None else observation.data_fault(self.cfg.max_observation_age_s)
        self.controller_failed = failed or self.malformed is not None

    def tick(self, now: float, observation: Observation | None = None) -> str | None:
        """Advance to time `now`; returns the new link state string if it changed.

        `observation` (when there is one this step) brings the emergency
        vehicles approaching, which preemption serves.
        """
        self._ticked = True
        emergency = observation.emergency if observation is not None and self.cfg.preempt else ()
        if not emergency and self._preempt_spent:
            self._preempt_spent.clear()  # none in range: every vehicle whose call ended may call again
        if self._calls:
            self._update_calls(now, observation)
        if (now < self._quiet_until_s and not emergency and self.interval == GREEN_I
                and self.ped != PED_WALK and self.ped != PED_CLEAR and self._trusted_hold()):
            # the last full check proved nothing can change yet, no call to start or end, no interval
            # running out: what the steps below would conclude, without their tests (most ticks end here)
            self.ticks += 1
            return None
        before = self.state
        if emergency or self.preempt_active:  # otherwise there is no call to start or end
            self._update_preempt(now, emergency)
        if self.interval == YELLOW_I and now - self.interval_start_s >= self._yellow_s[self.phase] - EPS:
            self._begin_all_red(now)
        if self.interval == ALL_RED_I and now - self.interval_start_s >= self._all_red_s[self.phase] - EPS:
            self._emit(now, EventCode.PHASE_END_RED_CLEARANCE, self.phase)
            self._start_green(self.next_phase, now)
        if self.interval == GREEN_I:
            if self.ped == PED_WALK or self.ped == PED_CLEAR:
                self._advance_ped(now)
            if now < self._quiet_until_s and not emergency and self._trusted_hold():
                self.ticks += 1  # fast path: the last full check proved nothing can change yet
                return self.state if self.state != before else None
            self._quiet_until_s = -math.inf
            target, code = self._choose(now)
            if target is not None and target != self.phase:
                self._begin_yellow(target, now, code)
        return self.state if self.state != before else None

    def seed_green(self, phase: int, green_start_s: float, now: float) -> None:
        """Take up a signal that has shown `phase` green since `green_start_s` (a prediction's starting point).

        Pedestrian intervals are placed where that much green has brought
        them; other phases count as served at the same start (the cycle bound
        restarts). Nothing is logged: this is where the signal already stands.
        """
        t = self.inter.timing
        self.phase, self.next_phase, self.interval = phase, None, GREEN_I
        self.interval_start_s = self.green_start_s = green_start_s
        self.last_green_start_s = [green_start_s] * self._n
        self.link_served_s = dict.fromkeys(self.link_served_s, green_start_s)
        self._call_s = [None] * self._n
        self._call_owed = [set() for _ in range(self._n)]
        self._deadlines = None
        self.state = self._no_walk_states[phase]
        self.ped = PED_NONE
        self._walk_withheld = False
        if self._ped_links[phase]:
            walk_end = green_start_s + t.ped_walk_s
            clear_end = walk_end + t.ped_clearance_of(phase)
            if now < walk_end:
                self.ped, self.ped_start_s, self.state = PED_WALK, green_start_s, self._green_states[phase]
            elif now < clear_end:
                self.ped, self.ped_start_s = PED_CLEAR, walk_end
            else:
                self.ped, self.ped_start_s = PED_DONT_WALK, walk_end

    def opening_events(self) -> list[SignalEvent]:
        """The events that opened the intervals in force now, at their original times.

        A log that resumes after a recovery starts with these, so the part
        after the recovery marker says where every signal stands and can be
        checked on its own.
        """
        out: list[SignalEvent] = []
        dev, p = self.inter.id, self.phase + 1

        def ev(t: float, code: EventCode, param: int) -> None:
            out.append(SignalEvent(t, dev, int(code), param))

        for call in self.preempt_calls.values():
            ev(call.on_s, EventCode.PREEMPT_CALL_ON, call.channel)
        if self.timing_revision:  # the green in force ran under a run-time change's timing
            ev(self.green_start_s, EventCode.TIMING_PLAN_CHANGE, self.timing_revision)
        ev(self.green_start_s, EventCode.PHASE_BEGIN_GREEN, p)
        for q, called_s in enumerate(self._call_s):
            if called_s is not None:
                ev(called_s, EventCode.PHASE_CALL_REGISTERED, q + 1)
        if self.ped != PED_NONE:
            ev(self.green_start_s, EventCode.PED_BEGIN_WALK, p)
            if self.ped in (PED_CLEAR, PED_DONT_WALK):
                ev(self.ped_start_s, EventCode.PED_BEGIN_CLEARANCE, p)
            if self.ped == PED_DONT_WALK:
                clear_s = self.inter.timing.ped_clearance_of(self.phase)
                ev(self.ped_start_s + clear_s, EventCode.PED_BEGIN_DONT_WALK, p)
        if self.interval == YELLOW_I:
            ev(self.interval_start_s, EventCode.PHASE_BEGIN_YELLOW, p)
        elif self.interval == ALL_RED_I:
            ev(self.interval_start_s - ceil_to_step(self._yellow_s[self.phase], self.cfg.step_length_s),
               EventCode.PHASE_BEGIN_YELLOW, p)
            ev(self.interval_start_s, EventCode.PHASE_END_YELLOW, p)
            ev(self.interval_start_s, EventCode.PHASE_BEGIN_RED_CLEARANCE, p)
        return out

    def _trusted_hold(self) -> bool:
        """The current proposal keeps the phase and would not send the shield to its fallback."""
        d = self.proposal
        if self.in_fallback or self.preempt_active or self.controller_failed or self.data_fault is not None \
                or self._reservice_owed:
            return False
        if d is None:
            return True
        return (d.phase_index is None or d.phase_index == self.phase) and d.intersection_id == self.inter.id and \
            d.confidence >= self.cfg.confidence_threshold

    @property
    def fallback_fraction(self) -> float:
        return self.fallback_ticks / self.ticks if self.ticks else 0.0

    # -- choosing ----------------------------------------------------------------
    def _choose(self, now: float) -> tuple[int | None, EventCode | None]:
        """The phase to change to now (None: keep the green) and why the green ends, as the log says it."""
        c = self.phase
        elapsed = now - self.green_start_s
        min_done = elapsed >= self._min_green_eff_s[c] - EPS and self.ped in (PED_NONE, PED_DONT_WALK)

        if self.preempt_active:
            if self.preempt_phase == c:
                return None, None
            # NEMA's entry minimum: a longer minimum green (a crosswalk phase's walk + clearance) is cut to it, the
            # pedestrians' walk (unless preempt_ends_walk) and clearance are not
            entry_min_s = min(self._min_green_eff_s[c], self._entry_min_green_s)
            if elapsed < entry_min_s - EPS or self.ped in (PED_WALK, PED_CLEAR):
                if self.ped == PED_WALK and self.cfg.preempt_ends_walk:
                    self._intervene(now, "preempt", f"walk of phase {c + 1} ended early for {self.preempt_vehicle}")
                    self._begin_ped_clearance(now)
                self._note_min_green(now, "preempt waits for minimum green / pedestrian clearance", "preempt")
                return None, None
            self._intervene(now, "preempt", f"to phase {self.preempt_phase + 1} for {self.preempt_vehicle}")
            return self.preempt_phase, EventCode.PHASE_FORCE_OFF

        wanted = self._wanted_phase(now)
        if self._n == 1:
            return None, None
        if not min_done:
            if wanted is not None and wanted != c:
                by = "the fallback plan" if self.in_fallback else (
                    self.proposal.proposed_by if self.proposal is not None else "the controller")
                self._note_min_green(now, f"phase {wanted + 1} proposed by {by} before minimum green", by)
            elif self.ped in (PED_NONE, PED_DONT_WALK):
                self._quiet_until_s = self.green_start_s + self._min_green_eff_s[c] - EPS
            return None, None

        step = self.cfg.step_length_s
        urgent = self._most_urgent(exclude=c)
        slack = self._slack(urgent, now + step) if urgent is not None else math.inf
        if slack < -EPS:
            # asked for on the very step the bound needs it (a plan whose cycle is the bound): the controller's
            # change, ended as it says; one already overdue (held by a minimum green) stays the shield's
            if wanted == urgent and slack >= -step - EPS:
                return wanted, self._asked_termination()
            self._intervene(now, "cycle_max", f"phase {urgent + 1} must be served within {self._hold_plan.cycle_max_s:g} s")
            return urgent, EventCode.PHASE_FORCE_OFF

        if self._reservice_owed:
            target = self._reservice_next(c, now)
            if target is not None:
                return target, EventCode.PHASE_FORCE_OFF

        max_start_s = self._max_green_start_s()
        maxed_out = now - max_start_s >= self.inter.timing.max_green_s[c] - EPS
        # A controller that ends the green itself at its maximum (a fixed plan whose green is the max) is not overridden.
        if maxed_out and (wanted is None or wanted == c or not self._feasible(wanted, now)):
            target = wanted if wanted is not None and wanted != c else (c + 1) % self._n
            if self._calls and (wanted is None or wanted == c) and urgent is not None:
                target = urgent  # the phase called first, not the next in line
            if urgent is not None and not self._feasible(target, now):
                target = urgent
            self._intervene(now, "max_green", f"phase {c + 1} maxed out after {elapsed:.0f} s")
            return target, EventCode.PHASE_MAX_OUT

        if wanted is None or wanted == c:
            if not self.in_fallback:
                max_end = max_start_s + self.inter.timing.max_green_s[c] - EPS
                held = now + math.floor(slack / step + EPS) * step if math.isfinite(slack) else math.inf
                self._quiet_until_s = min(max_end, held)
            return None, None
        if not self._feasible(wanted, now):
            self._intervene(now, "cycle_max", f"phase {wanted + 1} replaced by phase {urgent + 1} to keep cycle bound")
            return urgent, EventCode.PHASE_FORCE_OFF
        return wanted, self._asked_termination()

    def _asked_termination(self) -> EventCode:
        """How a change made as asked ends the green: the fallback plan's changes and a decision that states
        no termination (or one that is no green's end) are force-offs; otherwise what the controller says.

        Not a gap-out by default: a gap-out says the phase's demand was gone, which only the controller can
        know (a fixed plan's split end, a phase chosen over one that still has queues, are not); a force-off
        claims only that the green was ended before its maximum."""
        t = None if self.in_fallback or self.proposal is None else self.proposal.termination
        # user code may state anything: only a whole number that is one of the three is taken
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t not in _CONTROLLER_TERMINATIONS:
            return EventCode.PHASE_FORCE_OFF
        return EventCode(int(t))

    def _wanted_phase(self, now: float) -> int | None:
        """The controller's proposal, or the fallback plan's when it cannot be trusted."""
        d = self.proposal
        reason = None
        if self.controller_failed:
            reason = "controller failed" if self.malformed is None else f"decision not readable: {self.malformed}"
        elif self.data_fault is not None:
            reason = f"observation not usable: {self.data_fault}"
        elif d is not None and d.intersection_id != self.inter.id:
            # another signal's decision (a copy-paste slip): no proposal for this signal, as one not readable; a
            # controller that always names another signal is a broken one, and the fallback serves, whatever the
            # confidence it states (held, its greens would run to their maximum)
            reason = f"{WRONG_SIGNAL_REASON}: {d.intersection_id!r}, by {d.proposed_by}"
            self._intervene(now, "wrong_signal", f"decision for signal {d.intersection_id!r} by {d.proposed_by}, not "
                                                 "this one; the fallback serves")
        elif d is not None and d.phase_index is not None and not 0 <= d.phase_index < self._n:
            # a phase the signal lacks: as unusable as an index that is no whole number (`malformed_decision`)
            reason = f"{INVALID_PHASE_REASON}: index {d.phase_index}"
            self._intervene(now, "invalid_phase", f"phase index {d.phase_index} does not exist; the fallback serves")
        elif d is not None and d.confidence < self.cfg.confidence_threshold:
            reason = f"confidence {d.confidence:.2f} below {self.cfg.confidence_threshold:.2f}"
        if reason is None and d is None and self.in_fallback:
            reason = "no decision yet"
        self.ticks += 1
        if reason is not None:
            self.fallback_ticks += 1
            if not self.in_fallback:
                self.in_fallback = True
                self._intervene(now, "fallback", reason)
            obs = Observation(now, self.inter.id, {}, signal=self.status(now))
            fb = self.fallback.decide(obs)
            return fb.phase_index
        if self.in_fallback:
            self.in_fallback = False
            self._intervene(now, "fallback_end", "controller trusted again")
        return None if d is None else d.phase_index

    # -- cycle bound (Jackson's rule: earliest due date first) --------------------
    def _deadline(self, p: int, plan: _GreensPlan) -> float:
        """When phase `p` must start at the latest under `plan`'s bound."""
        return self._wait_starts()[p] + plan.cycle_max_s

    def _wait_starts(self) -> list[float]:
        """`_wait_start_s` of every phase, worked out once after what it reads changed (`_deadlines = None`)."""
        waits = self._deadlines
        if waits is None:
            waits = self._deadlines = [self._wait_start_s(q) for q in range(self._n)]
        return waits

    def _wait_start_s(self, p: int) -> float:
        """When the wait phase `p`'s deadline runs from began (inf: none, never forced)."""
        if not self._bounded[p]:
            return math.inf
        if self._calls:
            called_s = self._call_s[p]
            return math.inf if called_s is None else called_s
        return min(map(self.link_served_s.__getitem__, self._phase_links[p]), default=math.inf)

    def _most_urgent(self, exclude: int) -> int | None:
        """The covering phase (other than `exclude`) to serve next: the first in due order under the timing in
        force (`_hold_plan`); None if there is none."""
        dues = self._dues(self._hold_plan, exclude)
        return min(dues)[1] if dues else None

    def _due(self, p: int, plan: _GreensPlan) -> tuple[float, int]:
        """Phase `p`'s place in the order that meets every deadline whenever any order does. A phase must *start*
        by its deadline, so it must *end* its service (minimum green and change interval) by deadline +
        service; serving by that due time is Jackson's rule (earliest due date minimises the worst lateness on
        one machine). Earliest deadline alone is not enough where deadlines tie (every phase's after a
        preemption, phases served together): a 24 s pedestrian phase first made the 6 s one after it late."""
        return self._deadline(p, plan) + plan.min_green_s[p] + plan.clear_s[p], p

    def _dues(self, plan: _GreensPlan, skip: int | None) -> list[tuple[float, int]]:
        """`_due` of every covering phase but `skip`: the same sums in the same order, without two method calls
        per phase (the shield asks at every change, two or three times)."""
        waits, bound, green, clear = self._wait_starts(), plan.cycle_max_s, plan.min_green_s, plan.clear_s
        return [(waits[p] + bound + green[p] + clear[p], p) for p in self.cycle_phases if p != skip]

    def _feasible(self, first: int, end_green_s: float) -> bool:
        """Can we end green at `end_green_s`, serve `first`, then all others by deadline?"""
        return self._slack(first, end_green_s) >= -EPS

    def _slack(self, first: int, end_green_s: float) -> float:
        """Seconds the green could still be held past `end_green_s` with every deadline met (<0: too late).

        The green now showing ends first (its own change interval), then each phase in due order is served
        at minimum green and ends with its own, under the timing in force (`_hold_plan`): a green takes a
        waiting retime only when every deadline is met under it too (`_retime_fits`), and keeps the timing in
        force otherwise, so the deadlines hold whichever it runs and whatever retime replaces the waiting one.
        """
        if self._n == 1:
            return math.inf
        return self._plan_slack(first, end_green_s + self._clear_eff_s[self.phase], self._hold_plan)

    def _plan_slack(self, first: int | None, next_start_s: float, plan: _GreensPlan) -> float:
        """The least time to spare, over the covering phases, when the next green starts at `next_start_s` with
        `first` (None: whichever is due) and the rest follow in due order under `plan`."""
        rest = [p for _due, p in sorted(self._dues(plan, first))]  # (due, phase) pairs: no two alike
        waits, bound, green, clear = self._wait_starts(), plan.cycle_max_s, plan.min_green_s, plan.clear_s
        slack, t = math.inf, next_start_s
        for p in ([first, *rest] if first is not None else rest):
            slack = min(slack, waits[p] + bound - t)  # `_deadline(p, plan) - t`
            t += green[p] + clear[p]
        return slack

    def _retime_fits(self, phase: int, now: float) -> bool:
        """Whether the green starting now takes the waiting retime's timing: when every cycle deadline is met
        under it, against its own bound (from this green on the bound in force), or when it is no later than
        the timing in force. When the new, longer minimum would make the phases after it late, this green keeps
        the old timing (valid until now, and what the phase was chosen under) and the retime waits for a green
        it fits."""
        def slack(plan: _GreensPlan) -> float:
            return self._plan_slack(None, now + plan.min_green_s[phase] + plan.clear_s[phase], plan)

        new_s = slack(self._retime_plan)
        # once a deadline is already out of reach under both, the new timing is taken when it is no later: not
        # held off while the old makes things later
        return new_s >= -EPS or new_s >= slack(self._hold_plan) - EPS

    # -- calls (cycle_calls) ----------------------------------------------------------------
    def _max_green_start_s(self) -> float:
        """When the green's maximum began to run: at its start, or with cycle_calls at the first call of another
        phase (NEMA's max timer); with no such call the green rests (inf)."""
        if not self._calls:
            return self.green_start_s
        c = self.phase
        conflicting = [t for q, t in enumerate(self._call_s) if t is not None and q != c]
        return max(self.green_start_s, min(conflicting)) if conflicting else math.inf

    def _update_calls(self, now: float, observation: Observation | None) -> None:
        """Register the calls this observation shows, or recall every phase when no sound lane data are fresh."""
        lanes = observation.lanes if observation is not None else None
        if lanes:  # lane data: sound ones show the calls, a stale or unhealthy source recalls every phase
            fresh = observation.data_fault(self.cfg.max_observation_age_s) is None
            recall = not fresh
            if fresh:
                self._lanes_seen_s = now
        else:  # none this step: observations come during green only, so a clearance is not a gap in the data
            fresh = False
            recall = self._lanes_seen_s is None or (
                self.interval == GREEN_I
                and now - max(self._lanes_seen_s, self.green_start_s) > self.cfg.max_observation_age_s + EPS)
        if not fresh and not recall:
            return
        green_now = self.phase if self.interval == GREEN_I else None
        for p in self.cycle_phases:
            if self._call_s[p] is not None or p == green_now:
                continue
            call_lanes = self._call_lanes[p]
            if recall or call_lanes is None or any(
                    (s := lanes.get(lane)) is None or s.count_veh > 0 for lane in call_lanes):
                self._call_s[p] = now
                # a link whose green begins this very step is served already (the audit reads it so too)
                self._call_owed[p] = {k for k in self._phase_links[p] if self.link_served_s[k] < now - EPS}
                self._emit(now, EventCode.PHASE_CALL_REGISTERED, p)
                self._deadlines = None
                self._quiet_until_s = -math.inf

    # -- preemption ------------------------------------------------------------------
    def _update_preempt(self, now: float, emergency: Sequence[EmergencyApproach]) -> None:
        """End the calls whose vehicle is gone or whose dwell ran out, log each new call as it comes, and serve the
        first call on (`_serve_first_call`)."""
        present = {e.vehicle_id for e in emergency}
        self._preempt_spent &= present  # a vehicle out of range calls again when it comes back
        calls = self.preempt_calls
        # the maximum dwell bounds the preemption at this signal, from its first 107, not each call from its own
        # (and the whole preemption from its first 102 by one entry and the dwell, should calls that left before
        # their green keep it in entry)
        start = self._episode_dwell_start_s
        dwell = None if start is None else now - start
        timed_out = self.preempt_active and (
            (dwell is not None and dwell > self.cfg.preempt_max_dwell_s)
            or now - self._episode_on_s > self._entry_bound_s + self.cfg.preempt_max_dwell_s)
        if dwell is None:
            dwell = now - self._episode_on_s
        if timed_out:
            # every phase of the cycle but the one preempted runs its minimum green before a new call is taken
            self._reservice_owed = set(self.cycle_phases) - {self.preempt_phase}
            self._lockout_noted = set()
        for vid, call in list(calls.items()):
            if vid in present and not timed_out:
                continue
            if vid in present:
                self._intervene(now, "preempt_timeout", f"{vid}: the preemption at this signal held over {dwell:.0f} s "
                                                        f"(channel {call.channel}); it calls again once it has left "
                                                        "the preemption distance, and the other phases are served "
                                                        "first")
                self._emit(now, EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED, call.channel)  # then the call ends, 104
                self._preempt_spent.add(vid)
            self._emit(now, EventCode.PREEMPT_CALL_OFF, call.channel)
            del calls[vid]
        green = self.phase if self.interval == GREEN_I else None
        new = [(phase, e) for e in emergency if e.vehicle_id not in calls and e.vehicle_id not in self._preempt_spent
               and (phase := self._phase_serving_link(e.link_index)) is not None]
        if self._reservice_owed:  # no call is taken until the other phases have been served
            for _phase, e in new:
                if e.vehicle_id not in self._lockout_noted:
                    self._lockout_noted.add(e.vehicle_id)
                    self._intervene(now, "preempt_lockout", f"{e.vehicle_id} waits: phases "
                                    f"{', '.join(str(p + 1) for p in sorted(self._reservice_owed))} are served "
                                    "after a preemption that ran out its maximum dwell")
            new = []
        # calls that come together: one the green in force serves first, then the nearest
        for phase, e in sorted(new, key=lambda pe: (pe[0] != green, pe[1].distance_m)):
            if e.vehicle_id in calls:
                continue  # one vehicle seen on two links: one call
            used = {c.channel for c in calls.values()}
            channel = next(k for k in range(1, len(used) + 2) if k not in used)
            first = next(iter(calls.values()), None)
            calls[e.vehicle_id] = PreemptCall(e.vehicle_id, channel, phase, e.in_lane, now)
            self._emit(now, EventCode.PREEMPT_CALL_ON, channel)
            self._intervene(now, "preempt_call", f"{e.vehicle_id} on {e.in_lane} calls phase {phase + 1} "
                                                 f"(channel {channel}, {e.distance_m:.0f} m)")
            if first is not None:
                self._intervene(now, "preempt_queued", f"{e.vehicle_id} (channel {channel}) waits for the "
                                                       f"preemption for {first.vehicle_id} (channel {first.channel})")
        self._serve_first_call(now)

    def _serve_first_call(self, now: float) -> None:
        """The first call on is the one the signal serves: its entry starts (105) when it becomes first; with none
        left the preemption ends."""
        first = next(iter(self.preempt_calls.values()), None)
        if first is None:
            if self.preempt_active:
                self._end_preemption(now)
            return
        if not self.preempt_active:
            self._episode_on_s = first.on_s
        if not (self.preempt_active and first.vehicle_id == self.preempt_vehicle):
            self.preempt_active = True
            self.preempt_vehicle, self.preempt_phase, self.preempt_start_s = first.vehicle_id, first.phase, first.on_s
            self._emit(now, EventCode.PREEMPT_ENTRY_STARTED, first.channel)
        self._begin_dwells(now)

    def _begin_dwells(self, now: float) -> None:
        """The called phase is green under the preemption: every call it serves begins its dwell (107)."""
        if self.interval == GREEN_I and self.phase == self.preempt_phase:
            for call in self.preempt_calls.values():
                if call.phase == self.phase and call.dwell_start_s is None:
                    call.dwell_start_s = now
                    self._emit(now, EventCode.PREEMPT_BEGIN_DWELL, call.channel)
                    if self._episode_dwell_start_s is None:
                        self._episode_dwell_start_s = now
        first = next(iter(self.preempt_calls.values()))
        self.preempt_dwell_start_s = first.dwell_start_s

    def _end_preemption(self, now: float) -> None:
        self.preempt_active = False
        # the cycle bound restarts after a preempt (it was suspended)
        self.last_green_start_s = [max(t, now) for t in self.last_green_start_s]
        self.link_served_s = {k: max(t, now) for k, t in self.link_served_s.items()}
        self._call_s = [None if c is None else max(c, now) for c in self._call_s]
        self._deadlines = None
        self.preempt_vehicle = None
        self.preempt_phase = None
        self.preempt_dwell_start_s = None
        self._episode_dwell_start_s = None
        if self._walk_withheld and self.interval == GREEN_I:  # the green goes on: its pedestrians get their walk
            self._walk_withheld = False
            self._begin_walk(self.phase, now)

    def _reservice_next(self, c: int, now: float) -> int | None:
        """During the re-service after a preemption's maximum dwell: the phase to force to (None: keep the green).
        A green that has run its minimum (the caller checked) has been served; the next phase owed, in phase
        order after it, follows."""
        self._reservice_owed.discard(c)
        if not self._reservice_owed:
            return None
        target = min(self._reservice_owed, key=lambda p: (p - c) % self._n)
        self._intervene(now, "preempt_reservice", f"to phase {target + 1}: phases "
                        f"{', '.join(str(p + 1) for p in sorted(self._reservice_owed))} are served before a new "
                        "preemption call, after one that ran out its maximum dwell")
        return target

    def _phase_serving_link(self, link: int) -> int | None:
        return phase_serving_link(self.inter, link)

    # -- intervals -----------------------------------------------------------------------
    def _start_green(self, phase: int, now: float) -> None:
        self.phase = phase
        self.next_phase = None
        self.interval = GREEN_I
        self.interval_start_s = now
        self.green_start_s = now
        self.last_green_start_s[phase] = now
        for link in self._phase_links[phase]:
            self.link_served_s[link] = now
        if self._calls:  # a call is answered once every link of its phase has begun a green since it came
            for q in self.cycle_phases:
                owed = self._call_owed[q]
                if self._call_s[q] is not None:
                    owed.difference_update(self._phase_links[phase])
                    if not owed:
                        self._call_s[q] = None
        self._deadlines = None  # links served
        if self._pending_timing is not None:
            if self._retime_fits(phase, now):
                self._take_timing(self._pending_timing, self._pending_revision, now)
            else:
                self._note_retime_waits(now)
        self._min_green_noted = set()
        self.proposal = None if (self.proposal and self.proposal.phase_index == phase) else self.proposal
        self._emit(now, EventCode.PHASE_BEGIN_GREEN, phase)
        # a green that begins during a preemption's entry (its change interval was under way) starts no walk
        self._walk_withheld = bool(self._ped_links[phase]) and self.preempt_active and phase != self.preempt_phase
        if self._ped_links[phase] and not self._walk_withheld:
            self._begin_walk(phase, now)
        else:
            self.ped = PED_NONE
            self.state = self._no_walk_states[phase]
        if self.preempt_active and phase == self.preempt_phase:
            self._begin_dwells(now)

    def _begin_walk(self, phase: int, now: float) -> None:
        self.ped = PED_WALK
        self.ped_start_s = now
        self._emit(now, EventCode.PED_BEGIN_WALK, phase)
        self.state = self._green_states[phase]

    def _take_timing(self, timing: Timing, revision: int | None, now: float) -> None:
        """The green starting now runs `timing`; with a `revision`, logged by a 131 before its 1."""
        self.inter = replace(self.inter, timing=timing)
        self._use_timing(timing)
        if revision is not None:
            self.timing_revision = revision
            self._emit(now, EventCode.TIMING_PLAN_CHANGE, revision)
        self._pending_timing = self._pending_revision = None

    def _note_retime_waits(self, now: float) -> None:
        """A green kept the timing in force: once the retime has been passed over for longer than a cycle, say
        so (an operator reading "applied" must be able to see that the signal still runs the old timing)."""
        if self._retime_passed_s is None:
            self._retime_passed_s = now
        waited_s = now - self._retime_passed_s
        cycle_s = max(self.inter.timing.cycle_max_s, self._pending_timing.cycle_max_s)
        if not self._retime_wait_noted and waited_s > cycle_s:
            self._retime_wait_noted = True
            which = "the new timing" if self._pending_revision is None else f"timing revision {self._pending_revision}"
            self._intervene(now, "retime_waiting",
                            f"{which} not taken at any green since t={self._retime_passed_s:g} s ({waited_s:.0f} s, "
                            f"over a {cycle_s:g} s cycle): under it a phase would miss its cycle deadline; the "
                            f"signal runs revision {self.timing_revision}")

    def _advance_ped(self, now: float) -> None:
        if self.ped == PED_WALK and now - self.ped_start_s >= self.inter.timing.ped_walk_s - EPS:
            self._begin_ped_clearance(now)
        if self.ped == PED_CLEAR and now - self.ped_start_s >= self.inter.timing.ped_clearance_of(self.phase) - EPS:
            self.ped = PED_DONT_WALK
            self._emit(now, EventCode.PED_BEGIN_DONT_WALK, self.phase)

    def _begin_ped_clearance(self, now: float) -> None:
        self.ped = PED_CLEAR
        self.ped_start_s = now
        self.state = self._no_walk_states[self.phase]
        self._emit(now, EventCode.PED_BEGIN_CLEARANCE, self.phase)

    def _begin_yellow(self, target: int, now: float, code: EventCode) -> None:
        self._emit(now, code, self.phase)
        self._emit(now, EventCode.PHASE_GREEN_TERMINATION, self.phase)
        self._emit(now, EventCode.PHASE_BEGIN_YELLOW, self.phase)
        self.next_phase = target
        self.interval = YELLOW_I
        self.interval_start_s = now
        self.state = self._change_state(self.phase, target, yellow=True)
        if self._yellow_s[self.phase] <= EPS:
            self._begin_all_red(now)

    def _begin_all_red(self, now: float) -> None:
        self._emit(now, EventCode.PHASE_END_YELLOW, self.phase)
        self._emit(now, EventCode.PHASE_BEGIN_RED_CLEARANCE, self.phase)
        self.interval = ALL_RED_I
        self.interval_start_s = now
        self.state = self._change_state(self.phase, self.next_phase, yellow=False)

    def _change_state(self, a: int, b: int, yellow: bool) -> str:
        key = (a, b, yellow)
        s = self._change_cache.get(key)
        if s is None:
            s = clearance_state(self._no_walk_states[a], self._no_walk_states[b], yellow, self._protected_yellow)
            self._change_cache[key] = s
        return s

    # -- logging ---------------------------------------------------------------------------
    def _emit(self, now: float, code: EventCode, phase_or_channel: int) -> None:
        param = phase_or_channel + 1 if code < 100 else phase_or_channel
        self.events.append(SignalEvent(now, self.inter.id, int(code), param))

    def _intervene(self, now: float, rule: str, detail: str) -> None:
        self.interventions.append(Intervention(now, self.inter.id, rule, detail))

    def _note_min_green(self, now: float, detail: str, by: str) -> None:
        if by not in self._min_green_noted:
            self._min_green_noted.add(by)
            self._intervene(now, "min_green", detail)


def covering_phases(inter: Intersection) -> tuple[int, ...]:
    """The fewest phases that together show green to every link some phase serves (greedy set cover).

    Greedy: the phase serving the most links not yet covered, ties to the
    lower index, until every link is covered. Greedy may keep one phase more
    than the true minimum; the bound it keeps is as strict either way.
    """
    green = [frozenset(i for i, ch in enumerate(p.green_state) if ch in GREEN) for p in inter.phases]
    uncovered = set().union(*green) if green else set()
    chosen: list[int] = []
    while uncovered:
        best = max(range(len(green)), key=lambda p: (len(green[p] & uncovered), -p))
        if not green[best] & uncovered:
            break
        chosen.append(best)
        uncovered -= green[best]
    return tuple(sorted(chosen))


#: the kinds of reason (`runtime.run.fallback_reason_kind`: what comes before ": ") the fallback begins for at a
#: decision naming another signal, or a phase the signal lacks
WRONG_SIGNAL_REASON = "decision for another signal"
INVALID_PHASE_REASON = "phase that does not exist"


def malformed_decision(decision: Decision) -> str | None:
    """Why a proposal cannot be read, or None.

    Controllers are user code and models: something other than a Decision,
    a float phase index or a NaN confidence must send the signal to its
    fallback plan, not crash the run (an index that is no whole number) or
    pass as confident (NaN compares false with the threshold).
    """
    if type(decision) is Decision:  # what every built-in controller proposes, told at once (at every decision)
        p, c = decision.phase_index, decision.confidence
        if (p is None or type(p) is int) and type(c) is float and math.isfinite(c):
            return None
    if not isinstance(decision, Decision):  # a user's `decide` returning a phase number, a dict, ...
        return f"decide returned {type(decision).__name__}, not a Decision"
    p = decision.phase_index
    if p is not None and (isinstance(p, bool) or not isinstance(p, numbers.Integral)):
        return f"phase index {p!r} is not a whole number"
    c = decision.confidence
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c):
        return f"confidence {c!r} is not a finite number"
    return None



def _with_red(state: str, links: frozenset[int]) -> str:
    if not links:
        return state
    return "".join("r" if i in links else c for i, c in enumerate(state))
