"""The independent safety checker: verify a run's evidence against the signal safety rules.

The shield never grades itself. This module was written from the rules and
the evidence formats only (not from the shield's code), and it reads only what
a run leaves behind:

- ``events.csv``          the hi-res event log (what the controller said it did),
- ``signal_states.csv``   every link state string SUMO was given (what drivers saw),
- ``signal_model.json``   phases, links (a vehicle link's speed and path across) and timing of every signal,
- ``run.json``            the simulation step,
- ``config.yaml``, ``changes.jsonl``, ``trips.csv``, ``vtype_classes.json``,
  ``preempt_calls.csv``: whether preemption was on, its dwell, and who called
  (rule ``preempt``), where the run has them.

Rules (names as they appear in reports):

``min_green``          green (1 → next 8 of the phase) lasts ≥ min_green_s[phase];
                       one that a preemption (102 … 104) overlaps, ≥ the
                       preemption entry minimum when shorter (the run's
                       ``shield.preempt_entry_min_green_s`` in config.yaml, else
                       2 s, the least it may be), as NEMA's entry minimum allows.
``max_green``          green lasts ≤ max_green_s[phase] + one step; a green that
                       overlaps an active preemption (102 … 104) is held to it
                       before the preemption began and after it ended (the shield
                       suspends the bound during one), and is exempt if it was
                       preempted all the while. Under
                       ``cycle_calls`` the maximum runs from the first call
                       (43) of a link the green does not serve, and a green with
                       no such call rests (as NEMA's max timer does).
``yellow``             8 → 9 of the phase lasts ≥ its yellow (``phase_yellow_s``,
                       else ``yellow_s``).
``all_red``            10 → 11 of the phase lasts ≥ its red clearance
                       (``phase_all_red_s``, else ``all_red_s``).
``sequence``           each phase goes 1 → 8 → 9 → 10 → 11 → (next) 1; a green
                       never ends (or restarts) without yellow.
``conflicting_green``  a 1 never comes while another phase of the device is
                       green, yellow or clearing.
``ped``                21 → 22 ≥ ped_walk_s, 22 → 23 ≥ the phase's pedestrian
                       clearance (``phase_ped_clearance_s``, else
                       ``ped_clearance_s``) and ≥ the
                       longest crosswalk the phase serves (``crosswalks[].length_m``)
                       / the walking speed, 23 no later than the phase's 8, and 21
                       only while the phase is green. The walking speed is the
                       model's ``ped_walking_speed_mps`` when its timing records one,
                       and never above 1.22 m/s (4 ft/s, MUTCD 4E.06's ceiling, where an
                       extended pushbutton press serves slower pedestrians; with none
                       recorded, that): so a clearance shorter than
                       the crossing takes is a violation whatever ``ped_clearance_s``
                       says. A walk may end early while a preemption is active
                       (MUTCD 4D.27); its clearance may not.
``cycle_max``          every link that some phase shows green is served (a 1 of a
                       phase whose green includes it) at most cycle_max_s + one
                       step after its previous service; its first service comes
                       within that of the device's first event; a link not green
                       when the log ends was served within that before the end.
                       A window that overlaps a preemption is held to the bound
                       before the preemption began and after it ended, and is
                       exempt if preempted from start to end. (A phase
                       whose links other phases also serve need not come round.)
                       Under ``cycle_calls`` (a timing key) the window runs from
                       a call instead: after a 43 (phase call registered) of a
                       phase, each of its links not served at that moment is
                       served within cycle_max_s + one step; a link nobody
                       called is not held to it. The calls are the log's
                       own: whether a vehicle was there is not in this evidence.
``preempt``            a 104 only ends an active call, a 102 never repeats an
                       active call; a call still on at the end of the log is the
                       warning ``preempt_unterminated``. The log's preemptions are
                       held to what the run records apart from it: a 102 in a run
                       whose ``config.yaml`` has ``shield.preempt: false`` is a
                       violation and suspends nothing; so is a 102 when no
                       vehicle of SUMO's class ``emergency`` was in the network
                       (``trips.csv`` with ``vtype_classes.json``) and no external
                       call for that signal was on (``preempt_calls.csv``), both
                       within a step (a run that does not record its vehicles,
                       a live run on SUMO, and no external call explains it:
                       the warning ``preempt_unverified``; a ``--field none``
                       run has no simulated vehicles, ``live.yaml``). Overlapping calls make one
                       preemption (an episode: the shield's maximum dwell bounds
                       the signal, not each call), which may last one entry (the
                       longest yellow + red clearance, then the longest minimum
                       green with its yellow and red clearance, a 3 s pedestrian
                       buffer, four steps of rounding) and one dwell
                       (``shield.preempt_max_dwell_s``, the largest in force, a
                       live change's included, and never more than 300 s; the
                       300 s, with the warning ``preempt_dwell_unknown``, when
                       ``config.yaml`` does not say) plus a step: a longer one is
                       a violation, and the rules it suspends hold again past
                       that. The entry minimum read from the run is never taken
                       below 2 s (the configuration's own lower bound).
``link_yellow``        a vehicle link that stops being green shows yellow (y) for
                       ≥ the shortest yellow of the phases serving it before red.
``protected_yellow``   under a timing with ``protected_yellow`` (the safety
                       profile's; a model without the key has it off), a
                       vehicle link going from protected green (G) to permitted
                       green (g) shows yellow first (a direct G -> g is a
                       violation), for ≥ the shortest yellow of the phases
                       serving it when the yellow leads straight to its g; such
                       a yellow's end starts a red clearance as any link's
                       does (``link_all_red``).
``link_all_red``       after a vehicle link's yellow ends at t, no other vehicle
                       link of the device turns green before t + the shortest
                       red clearance of the phases serving the first link; nor
                       while a vehicle link still shows yellow.
``link_green``         a vehicle link turns green only while a phase whose green
                       includes it is green in the log (1 → 8): the street shows
                       what the controller logged.
``crosswalk_green``    a crosswalk link is green only inside a walk interval
                       (21 → 22) of a phase that serves it. A signal model whose
                       timing has ``ped_intervals: false`` (the benchmark and
                       reference profiles) has no walk intervals: its crosswalk
                       links are held to the vehicle rules instead.
``crosswalk_served``   in a run with pedestrians, every crosswalk link of the
                       model is served: one that a phase shows green is held to
                       ``cycle_max`` with that phase; one that no phase shows
                       green must still turn green (signal_states.csv) at most
                       cycle_max_s + one step after the device's first state and
                       after its previous green began, and, when not green as
                       the log ends, within that before the end, so a crosswalk
                       the model leaves out fails it (its pedestrians would wait
                       for ever). A window that overlaps a preemption is held to
                       the bound before and after it (exempt if preempted
                       throughout). Whether the run had pedestrians is SUMO's
                       ``sumo/statistics.xml`` (persons loaded); with no such
                       file the rule applies.

Below ITE (``below_ite``, a section of its own, not a rule: the run's own
model is what a rule holds it to). Under the safety profile's rules (a timing
with ``protected_yellow`` and pedestrian intervals; the benchmark and reference
profiles' 3 s yellow and no all-red are their rules), each yellow (8 → 9) and
red clearance (10 → 11) of a phase is also measured against ITE's for the
vehicle links the phase serves, from their geometry in the model
(``links[].approach_speed_mps``, ``path_m``, ``bicycle_lane``), whatever the
timing says: yellow 1 s + v / (2 · 3.05 m/s²), at least 3 s; red clearance
(path + 6.1 m) / v, at least 1 s and at most 4 s (a bicycle lane's link: 6 s).
A configured clearance an agency sets by policy runs, and is reported here, one
line per device, phase and interval, with how many of its intervals were
shorter, the shortest, and the formula's inputs. A phase serving no vehicle
link (an exclusive pedestrian phase) has no ITE clearance; a model without
the links' geometry (written before it) none either.

Timing changed at run time (a live run's operator): a device entry's
``timing_revisions`` holds the timing of each change, and a 131 (timing plan
change, parameter = revision, 1-based) logs the green from which the device
ran it. Each green, and the yellow and red clearance that end it, are held
to the revision in force when the green began; a cycle window open across a
change is held to the longest bound in force during it. A 131 logged with a
132 (cycle length change) at the same instant is a coordination pattern (a
``coordinated`` run's plan), not a revision: it changes no safety timing
(``coordination_patterns.pattern_131s``, the rule ATSPM's plans read too).

A run that died (killed with SIGKILL: ``run.json`` says ``died``, or ``running``
with its process gone) can leave ``events.csv`` and ``signal_states.csv``
ending at different times (a feed run holds its events back a few seconds
while it writes the states at once, and the kill loses what was held): it is
graded up to the earlier end, and the ``run_status`` warning says how many
seconds of the other file were not. A run still running (``running``, its
process alive) is graded the same way, up to the time both files cover so far
(of their complete lines: the last may be half written), and the warning says
so and up to when. A complete run is graded to the end.

Timing: decisions happen at step times, so a rule "≥ X" is met by a duration
of ceil(X / step) steps and is checked as ``measured ≥ X``; a maximum may be
exceeded by up to one step (``measured ≤ X + step``). The log has 0.1 s
resolution: when the step is a multiple of 0.1 s timestamps are exact and the
comparison tolerance is 1 µs; otherwise timestamps are rounded and the
tolerance is the log resolution (0.1 s). Several events can share a
timestamp; within one, the checker applies them in the order that follows the
rules when one exists (so "11 of phase 2 and 1 of phase 3 at t" is a clean
change), and only reports what no order can explain.

Hand-written (no library checks NEMA/Indiana event sequences against a
signal model); pure Python (PyYAML reads ``config.yaml``), imports only ``signalwise.core`` and the rule that
tells a pattern's 131 from a revision's (``analytics.coordination_patterns``,
which ATSPM reads too).
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from signalwise.core import SignalEvent, read_events
from signalwise.core.timing import (
    ALL_RED_MAX_S,
    CYCLIST_ALL_RED_MAX_S,
    ITE_DECELERATION_MPS2,
    ITE_PERCEPTION_REACTION_S,
    PED_WALKING_SPEED_MAX_MPS,
    VEHICLE_LENGTH_M,
    crossing_time_s,
    ite_all_red_s,
    ite_yellow_s,
)
from signalwise.core.types import RECOVERY_STATE, EventCode
from signalwise.outdirs import run_status, shown_status

from .coordination_patterns import pattern_131s
from .unprotected_crosswalks import PED_RULES, not_applied_reason, unprotected_ends, untimed_crosswalk_signals

RUNTIME_RECOVERY = int(EventCode.RUNTIME_RECOVERY)

LOG_RESOLUTION_S = 0.1
EXACT_TOLERANCE_S = 1e-6

#: every rule the checker verifies, in report order
RULES = (
    "min_green", "max_green", "yellow", "all_red", "sequence", "conflicting_green", "ped", "cycle_max",
    "preempt", "link_yellow", "protected_yellow", "link_all_red", "link_green", "crosswalk_green", "crosswalk_served",
)

GREEN_CHARS = frozenset("Gg")
YELLOW_CHARS = frozenset("y")

# event codes (Indiana enumeration)
BEGIN_GREEN, BEGIN_YELLOW, END_YELLOW, BEGIN_RED_CLEAR, END_RED_CLEAR = 1, 8, 9, 10, 11
PED_WALK, PED_CLEARANCE, PED_DONT_WALK = 21, 22, 23
PREEMPT_CALL_ON, PREEMPT_CALL_OFF = 102, 104
PHASE_CALL = 43
_PHASE_CODES = (BEGIN_GREEN, BEGIN_YELLOW, END_YELLOW, BEGIN_RED_CLEAR, END_RED_CLEAR)
_PED_CODES = (PED_WALK, PED_CLEARANCE, PED_DONT_WALK)
#: detector on/off events: a device with only these has no signal events to check
_DETECTOR_CODES = frozenset(int(c) for c in (EventCode.DETECTOR_OFF, EventCode.DETECTOR_ON, EventCode.PED_DETECTOR_OFF,
                                             EventCode.PED_DETECTOR_ON))
#: inside one timestamp, prefer ends before begins: walk/clearance end before yellow,
#: clearance ends before the next green, green before the walk it carries
_SAME_TIME_PRIORITY = {PED_DONT_WALK: 0, PED_CLEARANCE: 1, BEGIN_YELLOW: 2, END_YELLOW: 3, BEGIN_RED_CLEAR: 4,
                       END_RED_CLEAR: 5, BEGIN_GREEN: 6, PED_WALK: 7, PHASE_CALL: 8}

REQUIRED_FILES = ("events.csv", "signal_model.json", "signal_states.csv", "run.json")


class AuditInputError(ValueError):
    """The evidence is missing or unreadable; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule (or, in `AuditReport.warnings`, one thing worth a look).

    `phase` is the 1-based phase number of the event log, `link` the index in
    the SUMO state string; `measured_s` / `required_s` are the duration found
    and the bound it had to meet, when the rule is about a duration.
    """

    rule: str
    device_id: str
    time_s: float
    phase: int | None = None
    link: int | None = None
    measured_s: float | None = None
    required_s: float | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.device_id} t={self.time_s:g}"
        if self.phase is not None:
            where += f" phase {self.phase}"
        if self.link is not None:
            where += f" link {self.link}"
        numbers = ""
        if self.measured_s is not None and self.required_s is not None:
            numbers = f" ({self.measured_s:g} s vs {self.required_s:g} s)"
        return f"{self.rule}: {where}{numbers}: {self.detail}".rstrip(": ")


@dataclass
class AuditReport:
    """What the checker found. `checked` counts the intervals/events each rule examined."""

    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    #: intervals a rule did not apply to because a preemption was active
    exempted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    devices: list[str] = field(default_factory=list)
    step_length_s: float = 1.0
    tolerance_s: float = EXACT_TOLERANCE_S
    #: yellows and red clearances shorter than ITE's for their phase's geometry, one per device, phase and interval
    #: (rule ``below_ite``): not violations of the run's own model, so `ok` does not count them
    below_ite: list[Violation] = field(default_factory=list)
    #: rule -> why it was not applied (the pedestrian rules at signals whose timing has no pedestrian intervals):
    #: its 0 is no clean result
    not_applied: dict[str, str] = field(default_factory=dict)
    #: per signal without pedestrian intervals, its crosswalk greens followed by a conflicting vehicle green sooner
    #: than the crossing takes (`unprotected_crosswalks.unprotected_ends`): information, not violations
    pedestrian_info: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def below_ite_lines(self) -> list[str]:
        """The below-ITE section, a line each: "below ITE: <device> t=<first> phase <n> (<shortest> s vs <ITE> s):
        ..."."""
        return ["below ITE: " + str(b).removeprefix(f"{b.rule}: ") for b in self.below_ite]

    def violations_by_rule(self) -> dict[str, int]:
        counts = dict.fromkeys(RULES, 0)
        for v in self.violations:
            counts[v.rule] = counts.get(v.rule, 0) + 1
        return counts

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "devices": list(self.devices),
            "step_length_s": self.step_length_s,
            "tolerance_s": self.tolerance_s,
            "checked": dict(self.checked),
            "exempted": dict(self.exempted),
            "violations_by_rule": self.violations_by_rule(),
            "violations": [v.as_dict() for v in self.violations],
            "warnings": [w.as_dict() for w in self.warnings],
            "below_ite": [b.as_dict() for b in self.below_ite],
            "not_applied": dict(self.not_applied),
            "pedestrian_info": list(self.pedestrian_info),
        }


# ---------------------------------------------------------------------------
# The signal model, as the checker needs it.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Device:
    id: str
    n_links: int
    phase_numbers: tuple[int, ...]
    min_green_s: dict[int, float]  # by phase number
    max_green_s: dict[int, float]
    yellow_s: dict[int, float]  # by phase number: the yellow shown when that phase ends
    all_red_s: dict[int, float]
    ped_walk_s: float
    ped_clearance_s: float
    cycle_max_s: float
    #: the cycle bound runs from a call (43), not from the last service
    cycle_calls: bool
    vehicle_links: tuple[int, ...]
    crosswalk_links: tuple[int, ...]
    #: crosswalk link -> phase numbers whose green serves it
    crosswalk_phases: dict[int, frozenset[int]]
    #: phase number -> the links its green serves
    green_links: dict[int, frozenset[int]] = field(default_factory=dict)
    #: vehicle link -> the shortest yellow / red clearance of the phases serving it (what it is owed when it ends)
    link_yellow_s: dict[int, float] = field(default_factory=dict)
    link_all_red_s: dict[int, float] = field(default_factory=dict)
    #: every crosswalk link of the model, with or without pedestrian intervals (`crosswalk_served`)
    all_crosswalk_links: tuple[int, ...] = ()
    #: phase number -> (the pedestrian clearance its longest crosswalk takes, s; why), from the geometry
    ped_crossing_s: dict[int, tuple[float, str]] = field(default_factory=dict)
    #: a link going from protected 'G' to permitted 'g' is owed a yellow (`protected_yellow`)
    protected_yellow: bool = False
    #: phase number -> (ITE's yellow / red clearance for the vehicle links it serves, s; why), from the geometry
    ite_yellow_s: dict[int, tuple[float, str]] = field(default_factory=dict)
    ite_all_red_s: dict[int, tuple[float, str]] = field(default_factory=dict)
    #: by phase number: the pedestrian clearance the model gives that phase (a model written before phases had
    #: their own: none, and `ped_clearance_s` for every phase)
    phase_ped_clearance_s: dict[int, float] = field(default_factory=dict)

    @property
    def ped_phases(self) -> frozenset[int]:
        return frozenset(p for ps in self.crosswalk_phases.values() for p in ps)

    def ped_clearance_of(self, phase: int) -> tuple[float, str]:
        """The pedestrian clearance `phase` is owed, and what sets it: the model's for the phase, or its crossing's."""
        crossing_s, why = self.ped_crossing_s.get(phase, (0.0, ""))
        given_s, key = ((self.phase_ped_clearance_s[phase], "phase_ped_clearance_s")
                        if phase in self.phase_ped_clearance_s else (self.ped_clearance_s, "ped_clearance_s"))
        if crossing_s > given_s:
            return crossing_s, why
        return given_s, key


def _ped_crossing_s(raw: dict, timing: dict, green_links: dict[int, set[int]]) -> dict[int, tuple[float, str]]:
    """Per phase number, the time its longest crosswalk takes to cross at the walking speed (the model's, at most
    `PED_WALKING_SPEED_MAX_MPS`), and a few words saying so; phases serving no crosswalk left out."""
    speed = min(float(timing.get("ped_walking_speed_mps") or PED_WALKING_SPEED_MAX_MPS), PED_WALKING_SPEED_MAX_MPS)
    out: dict[int, tuple[float, str]] = {}
    for cw in raw.get("crosswalks", []):
        length_m = float(cw.get("length_m") or 0.0)
        links = {int(i) for i in cw.get("links", [])}
        for n, served in green_links.items():
            if links & served and length_m / speed > out.get(n, (0.0, ""))[0]:
                out[n] = (length_m / speed, f"crosswalk {cw.get('id')} {length_m:g} m at {speed:g} m/s")
    return out


def _ite_change_s(raw: dict, timing: dict, green_links: dict[int, set[int]]
                  ) -> tuple[dict[int, tuple[float, str]], dict[int, tuple[float, str]]]:
    """Per phase number, ITE's yellow and red clearance for the vehicle links its green serves, the longest any of
    them needs, each with the formula's inputs: from each link's geometry in the model (the speed its change
    interval is timed at, its path across the junction, whether its lane is only for bicycles), never from the
    timing. A red clearance is capped at 4 s, a bicycle lane's link's at 6 s, as the signal model caps a derived
    one. Nothing under a timing without the safety profile's rules (the benchmark and reference profiles, with no
    pedestrian intervals and no protected yellow, have their own clearances by design), and nothing for a link
    the model gives no geometry (a model written before it did)."""
    if not (timing.get("protected_yellow", False) and timing.get("ped_intervals", True)):
        return {}, {}
    yellow: dict[int, tuple[float, str]] = {}
    all_red: dict[int, tuple[float, str]] = {}
    for link in raw.get("links", []):
        if link.get("crosswalk") or link.get("approach_speed_mps") is None or link.get("path_m") is None:
            continue
        i, speed, path = int(link["index"]), float(link["approach_speed_mps"]), float(link["path_m"])
        cyclist = bool(link.get("bicycle_lane"))
        cap = CYCLIST_ALL_RED_MAX_S if cyclist else ALL_RED_MAX_S
        where = f"link {i}{' (a bicycle lane)' if cyclist else ''} {link.get('in_lane')} to {link.get('out_lane')}"
        y = (ite_yellow_s(speed), f"{ITE_PERCEPTION_REACTION_S:g} s + {speed:.2f} m/s / (2 x {ITE_DECELERATION_MPS2:g} "
                                  f"m/s2), {where}")
        crossing = crossing_time_s(path, speed)
        r = ite_all_red_s(path, speed, hi_s=cap)
        capped = f" = {crossing:.1f} s, capped at {cap:g} s" if crossing > r + 0.05 else ""
        r_why = (r, f"({path:.1f} m + {VEHICLE_LENGTH_M:g} m) / {speed:.2f} m/s{capped}, {where}")
        for n, served in green_links.items():
            if i in served:
                if y[0] > yellow.get(n, (-1.0, ""))[0]:
                    yellow[n] = y
                if r > all_red.get(n, (-1.0, ""))[0]:
                    all_red[n] = r_why
    return yellow, all_red


def _link_minimum(green_links: dict[int, set[int]], by_phase: dict[int, float], default_s: float,
                  n_links: int) -> dict[int, float]:
    """Per link, the shortest value of the phases whose green serves it (a link no phase serves: `default_s`).

    A phase's change interval covers every link it serves, so a link is owed at
    least the shortest of those: the check can never fault a change the rules allow.
    """
    out = dict.fromkeys(range(n_links), default_s)
    for link in range(n_links):
        values = [by_phase[p] for p, links in green_links.items() if link in links]
        if values:
            out[link] = min(values)
    return out


def _parse_device(raw: dict, where: str) -> _Device:
    try:
        dev_id = str(raw["id"])
        timing = raw["timing"]
        phases = raw["phases"]
        number_of = {int(p["index"]): int(p["number"]) for p in phases}
        green_links = {int(p["number"]): {int(i) for i in p.get("green_links", [])} for p in phases}
        min_g = [float(x) for x in timing["min_green_s"]]
        max_g = [float(x) for x in timing["max_green_s"]]
        # each phase's change interval; a model written before phases had their own gives one for all
        yellow = [float(x) for x in timing.get("phase_yellow_s") or [timing["yellow_s"]] * len(min_g)]
        all_red = [float(x) for x in timing.get("phase_all_red_s") or [timing["all_red_s"]] * len(min_g)]
        yellow_by = {number_of[i]: yellow[i] for i in number_of}
        ped_clear = [float(x) for x in timing.get("phase_ped_clearance_s") or []]
        all_red_by = {number_of[i]: all_red[i] for i in number_of}
        n_links = int(raw.get("n_links") or max((len(p.get("green_state", "")) for p in phases), default=0))
        crosswalk_links = {int(link["index"]) for link in raw.get("links", []) if link.get("crosswalk")}
        for cw in raw.get("crosswalks", []):
            crosswalk_links.update(int(i) for i in cw.get("links", []))
        all_crosswalk_links = tuple(sorted(crosswalk_links))
        if timing.get("ped_intervals", True) is False:
            # a profile without pedestrian intervals: crosswalks show their phase's green and follow the vehicle rules
            crosswalk_links = set()
        ite_yellow, ite_all_red = _ite_change_s(raw, timing, green_links)
        device = _Device(
            id=dev_id, n_links=n_links, phase_numbers=tuple(sorted(number_of.values())),
            min_green_s={number_of[i]: min_g[i] for i in number_of},
            max_green_s={number_of[i]: max_g[i] for i in number_of},
            yellow_s=yellow_by, all_red_s=all_red_by,
            ped_walk_s=float(timing["ped_walk_s"]), ped_clearance_s=float(timing["ped_clearance_s"]),
            cycle_max_s=float(timing["cycle_max_s"]),
            cycle_calls=bool(timing.get("cycle_calls", False)),
            # links the model does not mark as crosswalks are held to the vehicle rules
            vehicle_links=tuple(i for i in range(n_links) if i not in crosswalk_links),
            crosswalk_links=tuple(sorted(crosswalk_links)),
            crosswalk_phases={c: frozenset(n for n, links in green_links.items() if c in links)
                              for c in crosswalk_links},
            green_links={n: frozenset(links) for n, links in green_links.items()},
            link_yellow_s=_link_minimum(green_links, yellow_by, float(timing["yellow_s"]), n_links),
            link_all_red_s=_link_minimum(green_links, all_red_by, float(timing["all_red_s"]), n_links),
            all_crosswalk_links=all_crosswalk_links,
            ped_crossing_s=_ped_crossing_s(raw, timing, green_links) if crosswalk_links else {},
            # a model written before the key: the rule it was run under did not exist, so it is not held to it
            protected_yellow=bool(timing.get("protected_yellow", False)),
            ite_yellow_s=ite_yellow, ite_all_red_s=ite_all_red,
            phase_ped_clearance_s={number_of[i]: ped_clear[i] for i in number_of} if ped_clear else {},
        )
    except KeyError as exc:
        raise AuditInputError(f"{where}: missing field {exc}") from None
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise AuditInputError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None
    return device


def _timing_revisions(raw: dict, where: str) -> list[_Device]:
    """The device as each run-time timing change left it (revision k at k - 1): the same phases and links,
    another timing."""
    listed = raw.get("timing_revisions") or []
    if not isinstance(listed, list):
        raise AuditInputError(f"{where}: timing_revisions is not a list")
    return [_parse_device({**raw, "timing": timing}, f"{where} timing_revisions[{k}]")
            for k, timing in enumerate(listed)]


def _pattern_131s(events: list[SignalEvent]) -> set[int]:
    """Indices in `events` (one device's) of the 131s that are a coordination pattern, not a timing revision: the
    rule ATSPM reads too (`coordination_patterns.pattern_131s`). A pattern changes no safety timing and names no
    revision."""
    return pattern_131s((e.time_s, e.event_code, e.parameter) for e in events)


def _switches(dev_id: str, events: list[SignalEvent], revisions: list[_Device],
              out: _Findings) -> list[tuple[float, _Device]]:
    """(time, device with that revision's timing) of each 131 of the device, in time order. A 131 naming a
    revision the model lacks is a warning, and the timing in force stays: its greens are held to that."""
    found = []
    patterns = _pattern_131s(events)
    for k, e in enumerate(events):
        if e.event_code != EventCode.TIMING_PLAN_CHANGE or k in patterns:
            continue
        if 1 <= e.parameter <= len(revisions):
            found.append((e.time_s, revisions[e.parameter - 1]))
        else:
            out.warning("unknown_timing_revision", dev_id, e.time_s,
                        detail=f"timing plan change to revision {e.parameter}; the signal model has "
                               f"{len(revisions)}: the timing in force is kept")
    return found


# ---------------------------------------------------------------------------
# Collecting findings.
# ---------------------------------------------------------------------------


class _Findings:
    def __init__(self, report: AuditReport, step_s: float, tol_s: float) -> None:
        self.report = report
        self.step_s = step_s
        self.tol_s = tol_s
        #: (device, phase, interval) -> the intervals held to ITE's clearance, and those shorter (`against_ite`)
        self._ite: dict[tuple[str, int, str], dict] = {}

    def check(self, rule: str, n: int = 1) -> None:
        self.report.checked[rule] = self.report.checked.get(rule, 0) + n

    def exempt(self, rule: str) -> None:
        self.report.exempted[rule] = self.report.exempted.get(rule, 0) + 1

    def violation(self, rule: str, device: str, time_s: float, **kw) -> None:
        self.report.violations.append(Violation(rule, device, _r(time_s), **_rounded(kw)))

    def warning(self, rule: str, device: str, time_s: float, **kw) -> None:
        self.report.warnings.append(Violation(rule, device, _r(time_s), **_rounded(kw)))

    def against_ite(self, dev: _Device, kind: str, phase: int, start_s: float, measured: float) -> None:
        """A yellow (`kind` "yellow") or red clearance ("red clearance") of `phase` measured against ITE's for its
        geometry; counted per device, phase and interval, and reported by `report_below_ite`."""
        ite = (dev.ite_yellow_s if kind == "yellow" else dev.ite_all_red_s).get(phase)
        if ite is None:
            return
        own = dev.yellow_s[phase] if kind == "yellow" else dev.all_red_s[phase]
        seen = self._ite.setdefault((dev.id, phase, kind), {"n": 0, "below": 0, "first": None,
                                                            "shortest": math.inf, "ite": ite, "own": own})
        seen["n"] += 1
        if not self.at_least(measured, ite[0]):
            seen["below"] += 1
            seen["first"] = start_s if seen["first"] is None else seen["first"]
            seen["shortest"] = min(seen["shortest"], measured)

    def report_below_ite(self) -> None:
        for (dev_id, phase, kind), seen in sorted(self._ite.items(), key=lambda x: (*x[0][:2], x[0][2] != "yellow")):
            if seen["below"]:
                (ite_s, why) = seen["ite"]
                self.report.below_ite.append(Violation(
                    "below_ite", dev_id, _r(seen["first"]), phase=phase, measured_s=_r(seen["shortest"]),
                    required_s=_r(ite_s),
                    detail=f"{kind} below ITE in {seen['below']} of {seen['n']} intervals (the signal model's "
                           f"{seen['own']:g} s): ITE {why}"))

    def at_least(self, measured: float, required: float) -> bool:
        return measured >= required - self.tol_s

    def at_most(self, measured: float, limit: float) -> bool:
        """A maximum may be exceeded by up to one step (decisions happen at step times)."""
        return measured <= limit + self.step_s + self.tol_s


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _rounded(kw: dict) -> dict:
    for k in ("measured_s", "required_s"):
        if kw.get(k) is not None:
            kw[k] = _r(kw[k])
    return kw


def tolerance_for_step(step_length_s: float) -> float:
    """Exact comparison when step times land on the 0.1 s log grid; else the log resolution."""
    tenths = step_length_s / LOG_RESOLUTION_S
    return EXACT_TOLERANCE_S if abs(tenths - round(tenths)) < 1e-6 else LOG_RESOLUTION_S


def _outside_preempts(a0: float, a1: float, windows: list[tuple[float, float]]) -> tuple[float, float] | None:
    """For an interval [a0, a1] that shares a moment with a preemption, the longer of its stretches the bounds
    hold over, as (start, end): before the first such preemption began, or after the last one ended (the shield
    suspends the cycle and max-green bounds during one and restarts them after); None when none overlaps. The
    stretch itself, not only its length: which timing revisions it ran under depends on where it lies."""
    overlapping = [(w0, w1) for w0, w1 in windows if a0 <= w1 and w0 <= a1]
    if not overlapping:
        return None
    before = (a0, max(a0, min(w0 for w0, _ in overlapping)))
    after = (min(a1, max(w1 for _, w1 in overlapping)), a1)
    return before if before[1] - before[0] > after[1] - after[0] else after


# ---------------------------------------------------------------------------
# Event log: preemption windows.
# ---------------------------------------------------------------------------


def _preempt_windows(dev: str, events: list[SignalEvent], log_end_s: float, out: _Findings) -> list[tuple[float, float]]:
    """Active preemption intervals (102 → its 104, or → end of log) on one device."""
    active: dict[int, float] = {}
    windows: list[tuple[float, float]] = []
    # within a timestamp, a call-off ends the previous call before a new call-on starts
    for e in sorted((e for e in events if e.event_code in (PREEMPT_CALL_ON, PREEMPT_CALL_OFF)),
                    key=lambda e: (e.time_s, e.event_code != PREEMPT_CALL_OFF)):
        ch = e.parameter
        if e.event_code == PREEMPT_CALL_ON:
            out.check("preempt")
            if ch in active:
                out.violation("preempt", dev, e.time_s, detail=f"preempt {ch} called on again while active "
                                                                f"since t={active[ch]:g} (no 104 in between)")
                continue
            active[ch] = e.time_s
        else:
            if ch not in active:
                out.violation("preempt", dev, e.time_s, detail=f"preempt {ch} call off (104) without an active call")
                continue
            windows.append((active.pop(ch), e.time_s))
    for ch, start in active.items():
        out.warning("preempt_unterminated", dev, start, measured_s=log_end_s - start,
                    detail=f"preempt {ch} called on at t={start:g} and still on when the log ends")
        windows.append((start, log_end_s))
    return windows


#: the longest a preemption may hold its green whatever a run's configuration says: the run configuration's own
#: maximum of shield.preempt_max_dwell_s (runtime/config.py PREEMPT_MAX_DWELL_S), written again here: the audit
#: imports nothing of the shield or of the configuration it grades
PREEMPT_MAX_DWELL_S = 300.0
#: the shortest green a preemption's entry may end (shield.preempt_entry_min_green_s's lowest value, written again
#: here): a green the log shows cut by a preemption is held to the run's configured entry minimum, or to this
PREEMPT_ENTRY_MIN_GREEN_S = 2.0
#: the red clearance a phase green to crosswalks only ends with (MUTCD 4E.06's buffer), which the model's
#: all_red_s does not carry
_PED_BUFFER_S = 3.0


@dataclass(frozen=True)
class PreemptionEvidence:
    """What a run records of preemption apart from its log, against which the log's preemption claims are held.

    `enabled`: the configuration's shield.preempt (None: not recorded). `max_dwell_s`: the longest
    shield.preempt_max_dwell_s in force during the run (its configuration's, or a larger one a live change
    applied; None: not recorded). `vehicles`: when each emergency vehicle was in the network (depart, arrival;
    arrival inf while still driving at the end), or None when the run does not record its vehicles. `calls`: per
    device, each external preemption call (on, its off or lapse; inf while still on), or None when the run
    records no external calls."""

    enabled: bool | None = None
    max_dwell_s: float | None = None
    vehicles: list[tuple[float, float]] | None = None
    calls: dict[str, list[tuple[float, float]]] | None = None
    #: the configuration's shield.preempt_entry_min_green_s (None: not recorded; then PREEMPT_ENTRY_MIN_GREEN_S)
    entry_min_green_s: float | None = None

    def caller_at(self, device: str, time_s: float, tol_s: float) -> bool | None:
        """Whether an emergency vehicle was in the network, or an external call for `device` was on, at `time_s`;
        None when neither explains it and the run does not record its vehicles (a live run on SUMO)."""
        spans = [*(self.vehicles or ()), *((self.calls or {}).get(device, ()))]
        if any(a - tol_s <= time_s <= b + tol_s for a, b in spans):
            return True
        return None if self.vehicles is None else False


def _preempt_entry_s(devices: list[_Device], step_s: float) -> float:
    """The longest a preemption's entry may take on a device (any of its timing revisions): the change interval
    under way when the call came, then the green that interval was timed for run to its minimum (a crosswalk
    phase's is walk + clearance) and its own change interval and pedestrian buffer, each interval rounded up to
    a step."""
    change = max((d.yellow_s[p] + d.all_red_s[p] for d in devices for p in d.phase_numbers), default=0.0)
    green = max((d.min_green_s[p] + d.yellow_s[p] + d.all_red_s[p] for d in devices for p in d.phase_numbers),
                default=0.0)
    return change + green + _PED_BUFFER_S + 4 * step_s


def _check_preempt_claims(dev: str, windows: list[tuple[float, float]], calls_on: list[float],
                          revisions: list[_Device], evidence: PreemptionEvidence | None,
                          out: _Findings) -> list[tuple[float, float]]:
    """Hold the log's preemptions to what the run records apart from the log, and return the stretches the cycle,
    maximum green and pedestrian rules are suspended over: a preemption in a run whose configuration has it off,
    or whose 102 no emergency vehicle or external call explains, is a violation and suspends nothing; a
    preemption (overlapping calls together) longer than its calls' entry and dwell allow is a violation and
    suspends them only for that long: one entry and one dwell for the preemption, whichever calls it serves, as
    the shield bounds the signal."""
    if evidence is None or not windows:
        return windows
    if evidence.enabled is False:
        for t in calls_on:
            out.violation("preempt", dev, t, detail="preemption called on (102) in a run whose configuration has "
                                                     "shield.preempt false: no preemption may run")
        return []
    unknown = [t for t in calls_on if evidence.caller_at(dev, t, out.step_s + out.tol_s) is None]
    if unknown:
        out.warning("preempt_unverified", dev, unknown[0], detail=f"{len(unknown)} preemption call(s) (102) not "
                    "checked against a vehicle: the run does not record its vehicles (trips.csv), and no external "
                    "call (preempt_calls.csv) explains them")
    unexplained = [t for t in calls_on if evidence.caller_at(dev, t, out.step_s + out.tol_s) is False]
    for t in unexplained:
        out.violation("preempt", dev, t, detail="preemption called on (102) with no emergency vehicle in the "
                                                 "network (trips.csv) and no external call for this signal "
                                                 "(preempt_calls.csv) at that time")
    kept = [w for w in windows if not any(w[0] - out.tol_s <= t <= w[0] + out.tol_s for t in unexplained)]
    if evidence.max_dwell_s is None and kept:  # a run directory that does not say: the most any configuration allows
        out.warning("preempt_dwell_unknown", dev, kept[0][0],
                    detail=f"config.yaml gives no shield.preempt_max_dwell_s: preemptions held to the largest any "
                           f"run may have, {PREEMPT_MAX_DWELL_S:g} s")
    dwell_s = min(PREEMPT_MAX_DWELL_S if evidence.max_dwell_s is None else evidence.max_dwell_s,
                  PREEMPT_MAX_DWELL_S)
    allowed_s = _preempt_entry_s(revisions, out.step_s) + dwell_s + out.step_s
    bounded = []
    for start, end, calls in _episodes(kept):
        if end - start > allowed_s + out.tol_s:
            out.violation("preempt", dev, start, measured_s=end - start, required_s=allowed_s,
                          detail=f"preemption ({len(calls)} call(s) overlapping) held longer than a signal may: "
                                 f"one entry (a change interval, a minimum green and its clearance) and one dwell "
                                 f"of {dwell_s:g} s; the rules it suspends apply again from t={start + allowed_s:g}")
            end = start + allowed_s
        bounded.append((start, end))
    return bounded


def _episodes(windows: list[tuple[float, float]]) -> list[tuple[float, float, list[tuple[float, float]]]]:
    """Overlapping preemption windows as one (start, end, its calls' windows): continuous preemption at a
    signal, whichever calls it serves."""
    merged: list[list] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2].append((a, b))
        else:
            merged.append([a, b, [(a, b)]])
    return [(a, b, calls) for a, b, calls in merged]


# ---------------------------------------------------------------------------
# Event log: phase intervals, pedestrian intervals, cycle.
# ---------------------------------------------------------------------------

_ACTIVE = ("green", "yellow", "yellow_end", "red_clear")
#: the interval a phase event may come in (the others are ordered by `_DeviceEvents._fits` itself)
_INTERVAL_BEFORE = {BEGIN_YELLOW: "green", END_YELLOW: "yellow", BEGIN_RED_CLEAR: "yellow_end",
                    END_RED_CLEAR: "red_clear"}


@dataclass
class _PhaseState:
    interval: str = "red"  # red | green | yellow | yellow_end (9 seen, 10 not yet) | red_clear
    since_s: float = 0.0
    ped: str = "none"  # none | walk | clearance
    ped_since_s: float = 0.0
    last_green_s: float | None = None
    walks: list[tuple[float, float | None]] = field(default_factory=list)  # [21, 22) intervals
    greens: list[tuple[float, float | None]] = field(default_factory=list)  # [1, 8) intervals (or 1 → 10)


class _DeviceEvents:
    """Replays one device's phase and pedestrian events against the rules."""

    #: the shortest green a preemption's entry may end (`PreemptionEvidence.entry_min_green_s`)
    entry_min_green_s = PREEMPT_ENTRY_MIN_GREEN_S

    def __init__(self, dev: _Device, out: _Findings, preempts: list[tuple[float, float]], first_s: float,
                 starts_mid_run: bool = False, switches: list[tuple[float, _Device]] = ()):
        self.dev = dev
        #: (time, the device with its new timing) of each 131, in time order: taken by the green at that time
        self.switches = list(switches)
        #: (time of a switch, the cycle bound in force before it): a window open across it takes the longest
        self.cycle_bounds_before: list[tuple[float, float]] = []
        self.out = out
        self.preempts = preempts
        self.first_s = first_s
        #: a log that resumes after a recovery does not say when each phase was last served: a cycle window
        #: from its first event would be a guess, so only windows between greens it saw are checked
        self.starts_mid_run = starts_mid_run
        self.phases = {n: _PhaseState(since_s=first_s) for n in dev.phase_numbers}
        #: link -> when a green serving it last began (None: not yet in this log)
        self.link_served: dict[int, float | None] = {
            link: None for links in dev.green_links.values() for link in links}
        #: under cycle_calls: link -> when the oldest call still unanswered for it came
        self.link_called: dict[int, float] = {}
        self._handlers = {BEGIN_GREEN: self._begin_green, BEGIN_YELLOW: self._begin_yellow,
                          END_YELLOW: self._end_yellow, BEGIN_RED_CLEAR: self._begin_red_clear,
                          END_RED_CLEAR: self._end_red_clear, PED_WALK: self._walk,
                          PED_CLEARANCE: self._ped_clearance, PED_DONT_WALK: self._dont_walk,
                          PHASE_CALL: self._call}

    # -- which events fit the rules right now (used to order events sharing a timestamp)

    def _blocks_green(self, n: int, st: _PhaseState) -> bool:
        if st.interval == "yellow_end":
            return self.dev.all_red_s[n] > self.out.tol_s  # with no all-red, the phase is red after 9
        return st.interval in _ACTIVE

    def _fits(self, e: SignalEvent) -> bool:
        st = self.phases[e.parameter]
        code = e.event_code
        if code == BEGIN_GREEN:
            return not self._blocks_green(e.parameter, st) and not any(
                self._blocks_green(n, o) for n, o in self.phases.items() if n != e.parameter)
        if code == PED_WALK:
            return st.interval == "green" and st.ped == "none"
        if code == PED_CLEARANCE:
            return st.ped == "walk"
        if code == PED_DONT_WALK:
            return st.ped == "clearance"
        if code == PHASE_CALL:
            return True
        return st.interval == _INTERVAL_BEFORE[code]

    def replay(self, events: list[SignalEvent]) -> None:
        """Apply events time by time; inside one timestamp, in an order the rules allow when one exists."""
        i = 0
        while i < len(events):
            j = i
            while j < len(events) and abs(events[j].time_s - events[i].time_s) < 1e-6:
                j += 1
            if j == i + 1:  # alone at its time (most are): no order to choose
                self._apply(events[i])
                i = j
                continue
            pending = sorted(events[i:j], key=lambda e: (_SAME_TIME_PRIORITY[e.event_code], e.parameter))
            while pending:
                k = next((k for k, e in enumerate(pending) if self._fits(e)), 0)
                self._apply(pending.pop(k))
            i = j

    def _apply(self, e: SignalEvent) -> None:
        self._handlers[e.event_code](e.time_s, e.parameter, self.phases[e.parameter])

    # -- phase intervals

    def _take_timing(self, t: float) -> None:
        """The revisions logged up to this green are in force from it on (the clearances before it ran under
        the previous one: they were checked when they ended)."""
        while self.switches and self.switches[0][0] <= t + self.out.tol_s:
            _at, dev = self.switches.pop(0)
            self.cycle_bounds_before.append((t, self.dev.cycle_max_s))
            self.dev = dev

    def _begin_green(self, t: float, p: int, st: _PhaseState) -> None:
        self._take_timing(t)
        out, dev = self.out, self.dev
        out.check("conflicting_green")
        others = [(n, o.interval) for n, o in self.phases.items() if n != p and self._blocks_green(n, o)]
        if others:
            desc = ", ".join(f"phase {n} {iv.replace('_', ' ')}" for n, iv in others)
            out.violation("conflicting_green", dev.id, t, phase=p, detail=f"green began while {desc}")
        out.check("sequence")
        if st.interval == "green":
            out.violation("sequence", dev.id, t, phase=p, detail=f"green restarted without yellow "
                                                                  f"(green since t={st.since_s:g})")
        elif self._blocks_green(p, st):
            out.violation("sequence", dev.id, t, phase=p,
                          detail=f"green began during its own clearance ({st.interval.replace('_', ' ')})")
        links = sorted(self.dev.green_links.get(p, ()))
        if self.dev.cycle_calls:
            # cycle bound from the calls: time since the oldest unanswered call on a link this green serves
            called = [(self.link_called.pop(k), k) for k in links if k in self.link_called]
            if called:
                start, link = min(called)
                self._check_cycle_window(start, t, p, f"link {link} since its call")
        else:
            # cycle bound: time since each link this green serves was last served (or since the log began)
            # (one check per green: the link this green serves that waited longest)
            known = [(self.link_served[k], k) for k in links if self.link_served.get(k) is not None]
            unseen = [k for k in links if self.link_served.get(k) is None]
            if unseen and self.starts_mid_run:
                self.out.exempt("cycle_max")
            elif unseen:
                self._check_cycle_window(self.first_s, t, p, f"link {unseen[0]} before its first service")
            if known and not (unseen and not self.starts_mid_run):
                start, link = min(known)
                self._check_cycle_window(start, t, p, f"link {link} between services")
        for k in links:
            self.link_served[k] = t
        if st.greens and st.greens[-1][1] is None:  # a green restarted without yellow (a sequence violation)
            st.greens[-1] = (st.greens[-1][0], t)
        st.interval, st.since_s, st.last_green_s = "green", t, t
        st.greens.append((t, None))

    def _call(self, t: float, p: int, st: _PhaseState) -> None:
        """A 43: every link of the phase not served at this moment is owed a green within cycle_max_s."""
        for k in self.dev.green_links.get(p, ()):
            served = self.link_served.get(k)
            if served is not None and served >= t - self.out.tol_s:
                continue
            self.link_called.setdefault(k, t)  # events come in time order: an older call stays

    def _check_cycle_window(self, start: float, end: float, p: int, what: str) -> None:
        out = self.out
        outside = _outside_preempts(start, end, self.preempts)
        if outside is not None:
            if outside[1] - outside[0] <= out.tol_s:  # preempted from the window's start to its end
                out.exempt("cycle_max")
                return
            (start, end), what = outside, f"{what}, outside a preemption"
        out.check("cycle_max")
        bound_s = max([self.dev.cycle_max_s, *(b for at, b in self.cycle_bounds_before if at > start)])
        if not out.at_most(end - start, bound_s):
            out.violation("cycle_max", self.dev.id, end, phase=p, measured_s=end - start,
                          required_s=bound_s + out.step_s,
                          detail=f"phase not served for too long ({what}, from t={start:g})")

    def _green_ends(self, t: float, p: int, st: _PhaseState, completed: bool) -> None:
        out, dev = self.out, self.dev
        if completed and st.greens and st.greens[-1][1] is None:
            st.greens[-1] = (st.greens[-1][0], t)
        length = t - st.since_s
        if completed:
            out.check("min_green")
            required, what = dev.min_green_s[p], "green shorter than minimum"
            # a preemption called before this green ended may end it at its entry minimum (NEMA's), when shorter
            if any(w0 <= t + out.tol_s and st.since_s <= w1 + out.tol_s for w0, w1 in self.preempts):
                entry_s = min(required, self.entry_min_green_s)
                if not out.at_least(length, required) and out.at_least(length, entry_s):
                    out.exempt("min_green")
                required, what = entry_s, "green shorter than the preemption entry minimum"
            if not out.at_least(length, required):
                out.violation("min_green", dev.id, st.since_s, phase=p, measured_s=length,
                              required_s=required, detail=what)
        since = st.since_s
        outside = _outside_preempts(since, t, self.preempts)
        if outside is not None:
            if outside[1] - outside[0] <= out.tol_s:  # preempted all the while it was green
                out.exempt("max_green")
                return
            since = t - (outside[1] - outside[0])
        if dev.cycle_calls:
            # the maximum runs from the first call of a link this green does not serve: with none, it rests in green
            own = dev.green_links.get(p, frozenset())
            conflicting = [c for k, c in self.link_called.items() if k not in own]
            if not conflicting:
                out.exempt("max_green")
                return
            since = max(since, min(conflicting))
        length = t - since
        out.check("max_green")
        if not out.at_most(length, dev.max_green_s[p]):
            out.violation("max_green", dev.id, since, phase=p, measured_s=length,
                          required_s=dev.max_green_s[p] + out.step_s,
                          detail="green longer than maximum" + ("" if completed else " (still green at log end)"))

    def _begin_yellow(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        out.check("sequence")
        if st.interval == "green":
            self._green_ends(t, p, st, completed=True)
        else:
            out.violation("sequence", dev.id, t, phase=p,
                          detail=f"yellow began while the phase was {st.interval.replace('_', ' ')}, not green")
        if st.ped != "none":  # part of the walk cycle counted at its 21
            required = dev.ped_walk_s if st.ped == "walk" else dev.ped_clearance_of(p)[0]
            out.violation("ped", dev.id, t, phase=p, measured_s=t - st.ped_since_s, required_s=required,
                          detail=f"pedestrian {st.ped} still running when the phase turned yellow")
        st.interval, st.since_s = "yellow", t

    def _end_yellow(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        out.check("sequence")
        if st.interval == "yellow":
            out.check("yellow")
            if not out.at_least(t - st.since_s, dev.yellow_s[p]):
                out.violation("yellow", dev.id, st.since_s, phase=p, measured_s=t - st.since_s,
                              required_s=dev.yellow_s[p], detail="yellow shorter than required")
            out.against_ite(dev, "yellow", p, st.since_s, t - st.since_s)
        else:
            out.violation("sequence", dev.id, t, phase=p,
                          detail=f"end of yellow while the phase was {st.interval.replace('_', ' ')}")
        st.interval, st.since_s = "yellow_end", t

    def _begin_red_clear(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        out.check("sequence")
        if st.interval == "green":
            self._green_ends(t, p, st, completed=True)
            out.violation("sequence", dev.id, t, phase=p, detail="green ended without yellow (10 straight after 1)")
        elif st.interval != "yellow_end":
            out.violation("sequence", dev.id, t, phase=p,
                          detail=f"red clearance began while the phase was {st.interval.replace('_', ' ')}")
        st.interval, st.since_s = "red_clear", t

    def _end_red_clear(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        out.check("sequence")
        if st.interval == "red_clear":
            out.check("all_red")
            if not out.at_least(t - st.since_s, dev.all_red_s[p]):
                out.violation("all_red", dev.id, st.since_s, phase=p, measured_s=t - st.since_s,
                              required_s=dev.all_red_s[p], detail="red clearance shorter than required")
            out.against_ite(dev, "red clearance", p, st.since_s, t - st.since_s)
        else:
            out.violation("sequence", dev.id, t, phase=p,
                          detail=f"end of red clearance while the phase was {st.interval.replace('_', ' ')}")
        st.interval, st.since_s = "red", t

    # -- pedestrian intervals

    def _walk(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        out.check("ped")
        if st.interval != "green":
            out.violation("ped", dev.id, t, phase=p,
                          detail=f"walk began while the phase was {st.interval.replace('_', ' ')}, not green")
        if st.ped != "none":
            out.violation("ped", dev.id, t, phase=p, detail=f"walk began again during pedestrian {st.ped}")
            self._close_walk(st, t)
        st.ped, st.ped_since_s = "walk", t
        st.walks.append((t, None))

    def _ped_clearance(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        if st.ped == "walk":
            if not out.at_least(t - st.ped_since_s, dev.ped_walk_s):
                if any(a0 - out.tol_s <= t <= a1 + out.tol_s for a0, a1 in self.preempts):
                    out.exempt("ped")  # ended on entry to a preemption, as MUTCD 4D.27 permits
                else:
                    out.violation("ped", dev.id, st.ped_since_s, phase=p, measured_s=t - st.ped_since_s,
                                  required_s=dev.ped_walk_s, detail="walk shorter than required")
            self._close_walk(st, t)
        st.ped, st.ped_since_s = "clearance", t

    def _dont_walk(self, t: float, p: int, st: _PhaseState) -> None:
        out, dev = self.out, self.dev
        required, why = dev.ped_clearance_of(p)
        if st.ped == "clearance":
            if not out.at_least(t - st.ped_since_s, required):
                out.violation("ped", dev.id, st.ped_since_s, phase=p, measured_s=t - st.ped_since_s,
                              required_s=required, detail=f"pedestrian clearance shorter than required ({why})")
        elif st.ped == "walk":
            out.violation("ped", dev.id, t, phase=p, measured_s=0.0, required_s=required,
                          detail="don't walk straight after walk: no pedestrian clearance")
            self._close_walk(st, t)
        st.ped, st.ped_since_s = "none", t

    @staticmethod
    def _close_walk(st: _PhaseState, t: float) -> None:
        if st.walks and st.walks[-1][1] is None:
            st.walks[-1] = (st.walks[-1][0], t)

    # -- end of the log

    def finish(self, log_end_s: float) -> None:
        green_now: set[int] = set()
        for p, st in self.phases.items():
            if st.interval == "green":
                self._green_ends(log_end_s, p, st, completed=False)  # only a maximum can be judged
                green_now |= self.dev.green_links.get(p, frozenset())
        if self.dev.cycle_calls:
            for link, called in sorted(self.link_called.items()):
                if link not in green_now and log_end_s > called:
                    phase = min((n for n, links in self.dev.green_links.items() if link in links), default=0)
                    self._check_cycle_window(called, log_end_s, phase, f"link {link} called, until the log ends")
            return
        for link, last in sorted(self.link_served.items()):
            if link in green_now:
                continue
            if last is None and self.starts_mid_run:
                self.out.exempt("cycle_max")
                continue
            start = last if last is not None else self.first_s
            if log_end_s > start:
                phase = min((n for n, links in self.dev.green_links.items() if link in links), default=0)
                what = f"link {link} until the log ends" if last is not None else f"link {link} never served"
                self._check_cycle_window(start, log_end_s, phase, what)


# ---------------------------------------------------------------------------
# Signal states: what SUMO showed, link by link.
# ---------------------------------------------------------------------------


def _state_changes(dev: _Device, rows: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Rows of one device in time order, one per instant (the last one wins), repeats dropped."""
    by_time: dict[float, str] = {}
    for t, state in sorted(rows, key=lambda r: r[0]):  # stable: file order within a time
        if len(state) != dev.n_links:
            raise AuditInputError(f"signal_states.csv: device {dev.id} at t={t:g} has a {len(state)}-link state "
                                  f"{state!r}, the signal model says {dev.n_links} links")
        by_time[round(t, 6)] = state
    out: list[tuple[float, str]] = []
    for t, state in by_time.items():
        if not out or out[-1][1] != state:
            out.append((t, state))
    return out


class _Cover:
    """The union of half-open intervals [start, end), asked whether it holds an instant. A link's greens are
    thousands over a long run and every green onset asks: a search, where a scan of them all made the audit
    quadratic in the run's length."""

    def __init__(self, intervals: list[tuple[float, float]]):  # sorted by start
        self.starts: list[float] = []
        self.ends: list[float] = []
        for a, b in intervals:
            if b <= a:
                continue  # holds no instant
            if self.ends and a <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def covers(self, t: float) -> bool:
        k = bisect.bisect_right(self.starts, t) - 1
        return k >= 0 and t < self.ends[k]


def _audit_links(dev: _Device, changes: list[tuple[float, str]], walks: dict[int, list[tuple[float, float | None]]],
                 log_end_s: float, out: _Findings, switches: list[tuple[float, _Device]] = (),
                 greens: dict[int, list[tuple[float, float | None]]] | None = None) -> None:
    if not changes:
        return
    # per vehicle link, the log's greens of the phases serving it: what the street may show it green in
    serving = None if greens is None else {
        i: _Cover(sorted((s - out.tol_s, (math.inf if e is None else e) - out.tol_s)
                         for p, links in dev.green_links.items() if i in links for s, e in greens.get(p, ())))
        for i in dev.vehicle_links}
    switches = list(switches)
    clear_end: dict[int, float] = {}  # vehicle link -> when its last yellow (or abrupt green end) ended
    yellow_start: dict[int, float] = {}
    prev = changes[0][1]
    for i in dev.vehicle_links:
        if prev[i] in YELLOW_CHARS:
            yellow_start[i] = changes[0][0]
    vehicle_links = dev.vehicle_links
    # a gap below this, after link j's clearance began, is not `out.at_least` its red clearance
    all_red_short = {j: r - out.tol_s for j, r in dev.link_all_red_s.items()}
    left_protected: set[int] = set()  # vehicle links whose protected green ended and that are not green again
    # the loop below runs for every link of every state change of the run: the sets, the tolerance and the
    # device's flags are read once (and again when a revision changes the device), and the yellows checked
    # are counted here and added to the findings once
    green, yellow, tol = GREEN_CHARS, YELLOW_CHARS, out.tol_s
    protected = dev.protected_yellow
    yellows_checked = 0
    for t, state in changes[1:]:
        onsets = []
        for i in [i for i in vehicle_links if prev[i] != state[i]]:  # a change moves a few links of many
            before, now = prev[i], state[i]
            if protected:
                _protected_change(dev, i, t, before, now, yellow_start.get(i), left_protected, clear_end, out)
            if before in green:
                if now not in green:
                    if now in yellow:
                        yellow_start[i] = t
                    else:
                        yellows_checked += 1
                        out.violation("link_yellow", dev.id, t, link=i, measured_s=0.0,
                                      required_s=dev.link_yellow_s[i],
                                      detail=f"link went {before!r} -> {now!r} without yellow")
                        clear_end[i] = t
            elif before in yellow:
                if now not in yellow:
                    start = yellow_start.pop(i, None)
                    if now in green:
                        onsets.append(i)
                    else:
                        clear_end[i] = t
                        if start is not None:
                            yellows_checked += 1
                            if not t - start >= dev.link_yellow_s[i] - tol:  # `out.at_least`
                                out.violation("link_yellow", dev.id, start, link=i, measured_s=t - start,
                                              required_s=dev.link_yellow_s[i], detail="yellow shorter than required")
            elif now in yellow:
                yellow_start[i] = t
            elif now in green:
                onsets.append(i)
        if onsets and serving is not None:
            out.check("link_green", len(onsets))
            for i in onsets:
                if not serving[i].covers(t):
                    out.violation("link_green", dev.id, t, link=i,
                                  detail="link turned green while no phase serving it was green in the log")
        if onsets:
            out.check("link_all_red", len(onsets))
            # the clearances that ended too recently, shortest gap first: the same for every link turning green now
            short = sorted((t - te, j) for j, te in clear_end.items()
                           if te <= t + 1e-9 and t - te < all_red_short[j])
            for i in onsets:
                # a link still showing yellow has not begun its clearance: no new green may start beside it
                showing = [(since, j) for j, since in yellow_start.items() if j != i]
                if showing:
                    since, j = min(showing)
                    out.violation("link_all_red", dev.id, t, link=i, measured_s=0.0, required_s=dev.link_all_red_s[j],
                                  detail=f"link turned green while link {j} showed yellow (since t={since:g})")
                    continue
                gap, j = next(((gap, j) for gap, j in short if j != i), (None, None)) if short else (None, None)
                if j is not None:
                    out.violation("link_all_red", dev.id, t, link=i, measured_s=gap,
                                  required_s=dev.link_all_red_s[j],
                                  detail=f"link turned green {gap:g} s after link {j}'s yellow ended")
        prev = state
        # a revision taken by the green at t: the clearances that ended by then were owed the previous one's
        while switches and switches[0][0] <= t + out.tol_s:
            dev = switches.pop(0)[1]
            all_red_short = {j: r - out.tol_s for j, r in dev.link_all_red_s.items()}
            protected = dev.protected_yellow
    if yellows_checked:
        out.check("link_yellow", yellows_checked)
    _audit_crosswalks(dev, changes, walks, log_end_s, out)


def _protected_change(dev: _Device, i: int, t: float, before: str, now: str, yellow_since: float | None,
                      left_protected: set[int], clear_end: dict[int, float], out: _Findings) -> None:
    """`protected_yellow`: link `i` going `before` -> `now` at `t`. A protected green ('G') that is followed by a
    permitted one ('g') is owed a yellow: a driver finishing a protected left must be warned before oncoming
    traffic is released. A yellow that leads straight to the 'g' ends a clearance (`clear_end`) as a yellow
    before red does, so the links turning green after it wait out its red clearance (`link_all_red`)."""
    if before == "G" and now == "g":
        out.check("protected_yellow")
        out.violation("protected_yellow", dev.id, t, link=i, measured_s=0.0, required_s=dev.link_yellow_s[i],
                      detail="link went 'G' -> 'g' (protected to permitted) without yellow")
    elif before == "G" and now not in GREEN_CHARS:
        left_protected.add(i)
    elif now in GREEN_CHARS and i in left_protected:
        left_protected.discard(i)
        if now != "g":
            return  # protected again: not this rule's change
        out.check("protected_yellow")
        if before in YELLOW_CHARS and yellow_since is not None:
            clear_end[i] = t
            if not out.at_least(t - yellow_since, dev.link_yellow_s[i]):
                out.violation("protected_yellow", dev.id, yellow_since, link=i, measured_s=t - yellow_since,
                              required_s=dev.link_yellow_s[i],
                              detail="yellow before the permitted green shorter than required")


def _audit_crosswalks(dev: _Device, changes: list[tuple[float, str]],
                      walks: dict[int, list[tuple[float, float | None]]], log_end_s: float, out: _Findings) -> None:
    for c in dev.crosswalk_links:
        serving = dev.crosswalk_phases.get(c, frozenset())
        cover = sorted((s, math.inf if e is None else e) for p in serving for s, e in walks.get(p, ()))
        for start, end in _green_intervals(changes, c, log_end_s):
            out.check("crosswalk_green")
            gap = _first_uncovered(start, end, cover, out.tol_s)
            if gap is not None:
                g0, g1 = gap
                phases = ", ".join(str(p) for p in sorted(serving)) or "none"
                out.violation("crosswalk_green", dev.id, g0, link=c, measured_s=g1 - g0, required_s=0.0,
                              detail=f"crosswalk green with no walk interval (21 -> 22) of a phase serving it "
                                     f"(phases: {phases})")


def _audit_crosswalk_service(dev: _Device, changes: list[tuple[float, str]], log_end_s: float,
                             preempts: list[tuple[float, float]], bound_s: float, starts_mid_run: bool,
                             out: _Findings) -> None:
    """`crosswalk_served`: each crosswalk link is examined; one that no phase of the model shows green (so that
    `cycle_max` does not hold it) must still turn green within `bound_s` (+ one step) of the device's first
    state, of its previous green's start, and of the log's end when it is not green then."""
    if not changes:
        return
    served = set().union(*dev.green_links.values()) if dev.green_links else set()
    first_s = changes[0][0]
    for c in dev.all_crosswalk_links:
        if c in served:
            continue  # its phases are held to cycle_max
        out.check("crosswalk_served")  # counted where this rule, not cycle_max, is what holds the link
        greens = _green_intervals(changes, c, log_end_s)
        onsets = [s for s, _ in greens]
        # a log that starts mid-run (a recovery) has no known last green before it: its first window starts at
        # the log's start only when the link never turns green in it, which no start can excuse
        windows = [] if starts_mid_run and onsets else [(first_s, onsets[0] if onsets else log_end_s, "first green")]
        windows += [(a, b, "between greens") for a, b in zip(onsets, onsets[1:], strict=False)]
        if onsets and changes[-1][1][c] not in GREEN_CHARS:
            windows.append((onsets[-1], log_end_s, "until the log ends"))
        for start, end, what in windows:
            outside = _outside_preempts(start, end, preempts)
            if outside is not None:
                if outside[1] - outside[0] <= out.tol_s:
                    out.exempt("crosswalk_served")
                    continue
                (start, end), what = outside, f"{what}, outside a preemption"
            if not out.at_most(end - start, bound_s):
                never = "; no phase of the signal model serves it" + ("" if onsets else ", and it was never green")
                out.violation("crosswalk_served", dev.id, end, link=c, measured_s=end - start,
                              required_s=bound_s + out.step_s,
                              detail=f"crosswalk not green for too long ({what}, from t={start:g}){never}")


def _green_intervals(changes: list[tuple[float, str]], link: int, log_end_s: float) -> list[tuple[float, float]]:
    intervals, since = [], None
    for t, state in changes:
        green = state[link] in GREEN_CHARS
        if green and since is None:
            since = t
        elif not green and since is not None:
            intervals.append((since, t))
            since = None
    if since is not None:
        intervals.append((since, max(log_end_s, since)))
    return intervals


def _first_uncovered(start: float, end: float, cover: list[tuple[float, float]],
                     tol_s: float) -> tuple[float, float] | None:
    """The first part of [start, end) that no interval in `cover` (sorted) contains, if any."""
    pos = start
    for s, e in cover:
        if pos >= end - tol_s:
            return None
        if s > pos + tol_s:
            return pos, min(s, end)
        pos = max(pos, e)
    return None if pos >= end - tol_s else (pos, end)


# ---------------------------------------------------------------------------
# Entry points.
# ---------------------------------------------------------------------------


def audit(events: Iterable[SignalEvent], signal_model: list[dict], signal_states: list[tuple[float, str, str]],
          step_length_s: float, *, end_s: float | None = None, starts_mid_run: bool = False,
          pedestrians: bool = True, preemption: PreemptionEvidence | None = None) -> AuditReport:
    """Check one run's evidence against every rule.

    `signal_states` rows are (time_s, device_id, state). The log is taken to end
    at `end_s`, or at the latest time in the events and states. `pedestrians`:
    whether the run had any (False: `crosswalk_served` does not apply). `preemption`:
    what the run records of preemption apart from the log (None: the log's 102 … 104
    windows are taken as they are).
    """
    if not step_length_s > 0:
        raise AuditInputError(f"step length must be positive, not {step_length_s!r}")
    events = list(events)
    if any(e.event_code == RUNTIME_RECOVERY for e in events):
        return _audit_across_recoveries(events, signal_model, list(signal_states), step_length_s, end_s,
                                        pedestrians, preemption)
    devices, revisions = {}, {}
    for k, raw in enumerate(signal_model):
        d = _parse_device(raw, f"signal_model.json entry {k}")
        devices[d.id] = d
        revisions[d.id] = _timing_revisions(raw, f"signal_model.json entry {k} ({d.id})")
    tol = tolerance_for_step(step_length_s)
    report = AuditReport(devices=sorted(devices), step_length_s=step_length_s, tolerance_s=tol)
    out = _Findings(report, step_length_s, tol)
    untimed = untimed_crosswalk_signals(signal_model)
    if untimed:
        report.not_applied = dict.fromkeys(PED_RULES, not_applied_reason(untimed))
    raw_by_id = {str(raw.get("id")): raw for raw in signal_model}

    events = sorted(events, key=lambda e: e.time_s)
    states = [(float(t), str(d), str(s)) for t, d, s in signal_states]
    times = [e.time_s for e in events] + [t for t, _d, _s in states]
    log_end = end_s if end_s is not None else max(times, default=0.0)

    by_device: dict[str, list[SignalEvent]] = {}
    for e in events:
        by_device.setdefault(e.device_id, []).append(e)
    states_by_device: dict[str, list[tuple[float, str]]] = {}
    for t, d, s in states:
        states_by_device.setdefault(d, []).append((t, s))
    for unknown in sorted(set(by_device) - set(devices)):
        if all(e.event_code in _DETECTOR_CODES for e in by_device[unknown]):
            continue  # a signal left to its own program: its detectors logged (ATSPM reads them), nothing to check
        out.warning("unknown_device", unknown, by_device[unknown][0].time_s,
                    detail="events for a device that is not in the signal model; not checked")
    for unknown in sorted(set(states_by_device) - set(devices)):
        out.warning("unknown_device", unknown, states_by_device[unknown][0][0],
                    detail="signal states for a device that is not in the signal model; not checked")

    for dev_id, dev in devices.items():
        dev_events = by_device.get(dev_id, [])
        preempts: list[tuple[float, float]] = []
        if not dev_events:
            out.warning("no_events", dev_id, 0.0, detail="no events in the log for this device")
            walks: dict[int, list] = {}
            greens: dict[int, list] | None = None  # no events: nothing to hold the states to
        else:
            preempts = _preempt_windows(dev_id, dev_events, log_end, out)
            preempts = _check_preempt_claims(
                dev_id, preempts, [e.time_s for e in dev_events if e.event_code == PREEMPT_CALL_ON],
                [dev, *revisions[dev_id]], preemption, out)
            phase_events = []
            for e in dev_events:
                if e.event_code not in _PHASE_CODES and e.event_code not in _PED_CODES and not (
                        e.event_code == PHASE_CALL and dev.cycle_calls):
                    continue
                if e.parameter not in dev.min_green_s:
                    out.warning("unknown_phase", dev_id, e.time_s,
                                detail=f"event {e.event_code} for phase {e.parameter}, not in the signal model")
                    continue
                if e.event_code in _PED_CODES and e.parameter not in dev.ped_phases:
                    out.warning("ped_without_crosswalk", dev_id, e.time_s, phase=e.parameter,
                                detail=f"pedestrian event {e.event_code} for a phase that serves no crosswalk")
                phase_events.append(e)
            switches = _switches(dev_id, dev_events, revisions[dev_id], out)
            replay = _DeviceEvents(dev, out, preempts, dev_events[0].time_s, starts_mid_run, switches)
            if preemption is not None and preemption.entry_min_green_s is not None:
                # never below the configuration's own lower bound, whatever the run directory says
                replay.entry_min_green_s = max(preemption.entry_min_green_s, PREEMPT_ENTRY_MIN_GREEN_S)
            replay.replay(phase_events)
            replay.finish(log_end)
            walks = {p: st.walks for p, st in replay.phases.items()}
            greens = {p: st.greens for p, st in replay.phases.items()}
        changes = _state_changes(dev, states_by_device.get(dev_id, []))
        _audit_links(dev, changes, walks, log_end, out, switches if dev_events else (), greens)
        if dev_id in untimed:
            report.pedestrian_info.append(unprotected_ends(raw_by_id[dev_id], changes, log_end, tol))
        if pedestrians:
            bound_s = max([dev.cycle_max_s, *(d.cycle_max_s for d in revisions[dev_id])])
            _audit_crosswalk_service(dev, changes, log_end, preempts, bound_s, starts_mid_run, out)

    out.report_below_ite()
    report.violations.sort(key=lambda v: (v.time_s, v.device_id, RULES.index(v.rule)))
    report.warnings.sort(key=lambda v: (v.time_s, v.device_id, v.rule))
    return report


def _split_at(rows: list, is_marker) -> list[list]:
    """Rows in file order, cut before each run of markers (one run of markers = one recovery)."""
    parts: list[list] = [[]]
    previous_marker = False
    for row in rows:
        marker = is_marker(row)
        if marker and not previous_marker and parts[-1]:
            parts.append([])
        if not marker:
            parts[-1].append(row)
        previous_marker = marker
    return parts


def _audit_across_recoveries(events: list[SignalEvent], signal_model: list[dict],
                             signal_states: list[tuple[float, str, str]], step_length_s: float,
                             end_s: float | None, pedestrians: bool = True,
                             preemption: PreemptionEvidence | None = None) -> AuditReport:
    """A live run that recovered from a simulator crash: the recovery marker is a boundary.

    Before it, the log up to the crash; after it, the replay from the restored
    state, which opens with the events of the intervals in force at their
    original times. Each part is checked on its own, and the findings add up.
    """
    event_parts = _split_at(events, lambda e: e.event_code == RUNTIME_RECOVERY)
    state_parts = _split_at(signal_states, lambda r: r[2] == RECOVERY_STATE)
    if len(state_parts) != len(event_parts):
        raise AuditInputError(f"{len(event_parts) - 1} recovery marker(s) in the event log but "
                              f"{len(state_parts) - 1} in the signal states")
    merged: AuditReport | None = None
    for k, (ev, st) in enumerate(zip(event_parts, state_parts, strict=True)):
        last = k == len(event_parts) - 1
        times = [e.time_s for e in ev] + [float(t) for t, _d, _s in st]
        part = audit(ev, signal_model, st, step_length_s,
                     end_s=end_s if last else max(times, default=0.0), starts_mid_run=k > 0,
                     pedestrians=pedestrians, preemption=preemption)
        if merged is None:
            merged = part
            continue
        merged.violations.extend(part.violations)
        merged.warnings.extend(part.warnings)
        merged.below_ite.extend(part.below_ite)
        for i, info in enumerate(part.pedestrian_info):  # the same signals in every part: their counts add up
            for key in ("crosswalk_greens_ended", "followed_by_conflicting_green_within_crossing"):
                merged.pedestrian_info[i][key] += info[key]
        for rule, n in part.checked.items():
            merged.checked[rule] = merged.checked.get(rule, 0) + n
    first_s = next(e.time_s for e in events if e.event_code == RUNTIME_RECOVERY)
    merged.warnings.insert(0, Violation("recovery", "-", first_s, detail=f"{len(event_parts) - 1} recovery "
                                                                        "marker(s): each side checked on its own"))
    return merged


def audit_run(run_dir: Path) -> AuditReport:
    """Read a run directory's evidence and check it; `AuditInputError` says what is missing or broken."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditInputError(f"{run_dir}: not a directory (a run directory holds run.json, events.csv, ...)"
                              if run_dir.exists() else f"{run_dir}: no such run directory")
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        why = ""
        shown = run_status(run_dir)
        status = shown.get("status")
        if status == "running":
            why = "; run.json says the run is still running"
        elif status in ("died", "failed"):  # why the evidence is not there
            why = f"; the run {status}" + (f": {shown['reason']}" if shown.get("reason") else "")
        raise AuditInputError(f"{run_dir}: not a complete run directory, missing {', '.join(missing)}{why}")
    try:
        return _audit_complete_run(run_dir)
    except AuditInputError as exc:
        shown = run_status(run_dir)  # a run killed mid-write leaves a broken file: say why it is broken
        if shown.get("status") == "died":
            raise AuditInputError(f"{exc}; the run died: {shown.get('reason', 'its process is gone')}") from None
        raise


def _audit_complete_run(run_dir: Path) -> AuditReport:
    run = _read_json(run_dir / "run.json")
    step = run.get("step_length_s") if isinstance(run, dict) else None
    if step is None and isinstance(run, dict) and isinstance(run.get("config"), dict):
        step = run["config"].get("step_length_s")
    try:
        step = float(step)
    except (TypeError, ValueError):
        raise AuditInputError(f"{run_dir / 'run.json'}: no numeric step_length_s") from None
    model = _read_json(run_dir / "signal_model.json")
    if isinstance(model, dict) and isinstance(model.get("devices"), list):
        model = model["devices"]
    if not isinstance(model, list) or not all(isinstance(d, dict) for d in model):
        raise AuditInputError(f"{run_dir / 'signal_model.json'}: expected a list of devices")
    shown = shown_status(run)  # a `running` run whose process is gone died: its evidence stops where it was killed
    status = shown.get("status")
    running = status == "running"  # its process is alive: both files still grow, each at its own pace
    try:
        events = _read_whole_lines(run_dir / "events.csv", lambda p: list(read_events(p)), running)
    except ValueError as exc:
        raise AuditInputError(str(exc)) from None
    states = _read_whole_lines(run_dir / "signal_states.csv", read_signal_states, running)
    cut = _common_end(events, states) if status in ("died", "running") else None
    if cut is not None:
        end_s = cut[0]
        events = [e for e in events if e.time_s <= end_s + EXACT_TOLERANCE_S]
        states = [r for r in states if r[0] <= end_s + EXACT_TOLERANCE_S]
    try:
        report = audit(events, model, states, step, end_s=None if cut is None else cut[0],
                       pedestrians=_had_persons(run_dir), preemption=read_preemption_evidence(run_dir))
    except AuditInputError as exc:
        raise AuditInputError(f"{run_dir}: {exc}") from None
    if status in ("failed", "incomplete", "died"):
        said = f"the run died: {shown['reason']}" if status == "died" else f"run.json says the run is {status}"
        said += "; the evidence may stop early"
        if cut is not None:
            end_s, ends, other, lost_s = cut
            said += (f"; graded up to t={end_s:g} s, where {ends} ends: the last {lost_s:g} s of {other} "
                     "were not graded")
        report.warnings.insert(0, Violation("run_status", "-", 0.0, detail=said))
    elif running:
        horizon = cut[0] if cut is not None else max([e.time_s for e in events] + [t for t, _d, _s in states],
                                                         default=0.0)
        said = (f"run.json says the run is still running (process {(shown.get('process') or {}).get('pid', '?')}"
                f" is alive): audited up to t={horizon:g} s, the time both events.csv and signal_states.csv cover "
                "so far")
        if cut is not None:
            said += f" (the last {cut[3]:g} s of {cut[2]} were not graded: {cut[1]} has not caught up yet)"
        said += "; audit it again when the run has ended"
        report.warnings.insert(0, Violation("run_status", "-", 0.0, detail=said))
    return report


def _read_whole_lines(path: Path, read, growing: bool):
    """`read(path)`; for a file still being written (`growing`), of its complete lines only: the writer flushes its
    buffer whenever it fills, so the last line may be cut mid-row (`J1,8,1` of `J1,8,12` would read as another
    event). Such a file is copied once to a temporary file, cut after its last newline, and only the copy is read:
    read again from the run's folder, it could have grown by another half-written row in between."""
    if not growing:
        return read(path)
    import os
    import shutil
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f"audit-{path.stem}-", suffix=path.suffix)
    try:
        with open(path, "rb") as src, open(fd, "w+b") as copy:
            shutil.copyfileobj(src, copy)
            copy.truncate(_after_last_newline(copy))
        return read(Path(name))
    except ValueError as exc:  # name the run's file, not the copy
        raise type(exc)(str(exc).replace(name, str(path))) from None
    finally:
        os.remove(name)


def _after_last_newline(fh, chunk: int = 1 << 16) -> int:
    """The offset just past the last `\n` of the open binary file `fh` (0 when it has none), found from its end."""
    end = fh.seek(0, 2)
    while end > 0:
        start = max(0, end - chunk)
        fh.seek(start)
        at = fh.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _common_end(events: list[SignalEvent], states: list[tuple[float, str, str]]) -> tuple[float, str, str, float] | None:
    """For a run that died: (the last time both events.csv and signal_states.csv cover, the file that ends
    there, the other file, the seconds of it past that time), or None when they end together (or one is empty).

    The two files of a killed run can end at different times: a `--field none` run holds its events back (they
    wait out the feed's lateness before going into events.csv in time order) while it writes the signal states at
    once, and SIGKILL loses what was held. Graded past the earlier end, the longer file would be held to evidence
    the other never got to hold: a legal green would be a green "the log never showed".
    """
    if not events or not states:
        return None
    events_end = max(e.time_s for e in events)
    states_end = max(t for t, _d, _s in states)
    if abs(events_end - states_end) <= EXACT_TOLERANCE_S:
        return None
    if events_end < states_end:
        return events_end, "events.csv", "signal_states.csv", round(states_end - events_end, 3)
    return states_end, "signal_states.csv", "events.csv", round(events_end - states_end, 3)


def read_preemption_evidence(run_dir: Path) -> PreemptionEvidence:
    """What a run directory records of preemption apart from its log: `config.yaml`'s shield.preempt and
    preempt_max_dwell_s (with the larger dwells `changes.jsonl` applied at run time), the emergency vehicles'
    times in the network (`trips.csv`, their class from `vtype_classes.json`) and the external calls
    (`preempt_calls.csv`). A file the run lacks leaves its part unknown."""
    import yaml

    enabled, dwell, entry = None, None, None
    try:
        shield = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("shield") or {}
        enabled = shield.get("preempt") if isinstance(shield.get("preempt"), bool) else None
        dwell = float(shield["preempt_max_dwell_s"]) if "preempt_max_dwell_s" in shield else None
        entry = shield.get("preempt_entry_min_green_s")
        entry = float(entry) if isinstance(entry, (int, float)) and not isinstance(entry, bool) else None
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError):
        pass
    for change in _jsonl(run_dir / "changes.jsonl"):
        asked = ((change.get("payload") or {}).get("shield") or {}) if change.get("kind") == "shield" else {}
        if change.get("result") == "applied" and isinstance(asked.get("preempt_max_dwell_s"), (int, float)):
            dwell = max(dwell or 0.0, float(asked["preempt_max_dwell_s"]))
        if change.get("result") == "applied" and isinstance(asked.get("preempt_entry_min_green_s"), (int, float)):
            entry = min(entry or math.inf, float(asked["preempt_entry_min_green_s"]))  # the shortest in force
    return PreemptionEvidence(enabled, dwell, _emergency_vehicles(run_dir), _external_calls(run_dir), entry)


def _jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill: the others still count
        if isinstance(row, dict):
            out.append(row)
    return out


def _emergency_vehicles(run_dir: Path) -> list[tuple[float, float]] | None:
    """(depart, arrival) of every vehicle of SUMO's class `emergency` (arrival inf: still driving at the end); none
    in a live run fed by detectors (`live.yaml`'s field `none`: no simulated vehicle calls); None when the run does
    not record its vehicles."""
    import yaml

    try:
        if (yaml.safe_load((run_dir / "live.yaml").read_text()) or {}).get("field") == "none":
            return []
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    try:
        classes = json.loads((run_dir / "vtype_classes.json").read_text())
        with open(run_dir / "trips.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError):
        return None
    spans = []
    for row in rows:
        if classes.get(row.get("vtype")) != "emergency":
            continue
        try:
            depart = float(row.get("depart_s") or "nan")
        except ValueError:
            continue
        try:
            arrival = float(row["arrival_s"]) if row.get("arrival_s") else math.inf
        except ValueError:
            arrival = math.inf
        if arrival < 0:  # SUMO writes -1 for a vehicle still driving when the run ended
            arrival = math.inf
        if not math.isnan(depart):
            spans.append((depart, arrival))
    return spans


def _external_calls(run_dir: Path) -> dict[str, list[tuple[float, float]]] | None:
    """Per device, each external call (its `on` row in `preempt_calls.csv` to its `off` or `lapsed`; inf while
    still on)."""
    try:
        with open(run_dir / "preempt_calls.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    open_calls: dict[tuple[str, str], float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        try:
            t = float(row.get("time_s") or "")
        except ValueError:
            continue
        key = (row.get("device_id") or "", row.get("call_id") or "")
        if row.get("state") == "on":
            open_calls.setdefault(key, t)
        elif row.get("state") in ("off", "lapsed") and key in open_calls:
            out.setdefault(key[0], []).append((open_calls.pop(key), t))
    for (device, _call), t in open_calls.items():
        out.setdefault(device, []).append((t, math.inf))
    return out


def _had_persons(run_dir: Path) -> bool:
    """Whether SUMO loaded any person in the run (its `sumo/statistics.xml`); True when it does not say."""
    import xml.etree.ElementTree as ET

    try:
        persons = ET.parse(run_dir / "sumo" / "statistics.xml").getroot().find("persons")
        return persons is None or int(float(persons.get("loaded", 1))) > 0
    except (OSError, ET.ParseError, ValueError):
        return True


def read_signal_states(path: Path) -> list[tuple[float, str, str]]:
    """`signal_states.csv` rows as (time_s, device_id, state)."""
    rows: list[tuple[float, str, str]] = []
    columns = ("time_s", "device_id", "state")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        missing = set(columns) - set(header)
        if missing:
            raise AuditInputError(f"{path}: lacks columns {sorted(missing)}")
        # read as csv.DictReader would (a name given twice: its last column; blank lines are no rows), without
        # building a dict per row
        at_time, at_device, at_state = (max(k for k, name in enumerate(header) if name == c) for c in columns)
        width = len(header)
        line_no = 1
        for row in reader:
            if not row:
                continue
            line_no += 1
            if len(row) < width:  # the missing fields are None, as in csv.DictReader
                row = row + [None] * (width - len(row))
            try:
                rows.append((float(row[at_time]), str(row[at_device]), str(row[at_state]).strip()))
            except (TypeError, ValueError):
                as_read = dict(zip(header, row, strict=False))
                if len(row) > width:
                    as_read[None] = row[width:]
                raise AuditInputError(f"{path}:{line_no}: bad signal state row {as_read!r}") from None
    return rows


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuditInputError(f"{path}: not readable JSON ({exc})") from None
