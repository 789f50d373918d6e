"""Changes to a live run: validated, recorded with who and when, applied by the loop between ticks.

Every change goes through the shield: an override is a controller that
proposes the operator's phase, so minimum and maximum green, clearances,
pedestrian intervals, the cycle bound and preemption still hold; a timing
change is validated as a run configuration is and applied to each signal at
a phase boundary. A change that fails validation is refused whole, with its
reason.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from ...core.names import MAX_INTERSECTION_ID_CHARS
from ...core.types import Decision, Intersection, Observation


class _Change(BaseModel):
    # a NaN or an infinity is refused as what it is ("Input should be a finite number"): a NaN fails every bound,
    # and was refused as "less than or equal to 3600"
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def non_finite_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON-like value the first NaN or infinity is (`all_red_s`, `rules[0].threshold`), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        where = non_finite_path(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path
                                else str(key))
        if where is not None:
            return where
    return None


def _finite_values(value: Any) -> Any:
    """A mapping of settings (timing, shield, rules) holds no NaN nor infinity, as the change's own numbers."""
    where = non_finite_path(value)
    if where is not None:
        raise PydanticCustomError("finite_number", "{where}: Input should be a finite number", {"where": where})
    return value


#: settings sent as a mapping, checked later against the run configuration: their numbers finite first
FiniteMap = Annotated[dict, AfterValidator(_finite_values)]


def json_safe(value: Any) -> Any:
    """`value` with every NaN and infinity as the text JSON has no number for (`"NaN"`, `"Infinity"`,
    `"-Infinity"`), so that the change log is strict JSON and still says what was sent."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


#: A timing revision as a client sends it back: a JSON integer only. Lax parsing read `true` as revision 1 and
#: `"3"` as 3, so a client's bug would be checked against a revision it never read.
Revision = Annotated[int, Field(ge=0, strict=True)]


class TimingChange(_Change):
    """New safety timing defaults and per-signal overrides (the run configuration's `timing`).

    Its keys replace those in force; a `per_intersection` replaces every signal's own values, so a change of one
    signal's is `SignalTimingChange`, which keeps the others'."""

    kind: Literal["timing"] = "timing"
    timing: FiniteMap = Field(description="keys of the run configuration's `timing`, seconds")
    based_on_revision: Revision | None = Field(None, description=(
        "the `timing_revision` the change was made from (GET /api/v1/live/config): refused with 409, nothing "
        "applied, when another timing change was applied since; left out: applied over whatever is in force"))


class SignalTimingChange(_Change):
    """One signal's own safety timing in place of what it had, the other signals' kept; `timing` null: it has none
    any more and runs the run's defaults. Made by the loop from the map in force when it applies it, so two
    operators changing two signals at once both keep their change."""

    kind: Literal["signal_timing"] = "signal_timing"
    intersection_id: str = Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS)
    timing: FiniteMap | None = Field(description=(
        "the signal's own values (keys of the run configuration's `timing`, as under `per_intersection`, and "
        "`phases`: {phase number: {min_green_s, max_green_s}}), which replace the ones it had; null: none, back on "
        "the defaults"))
    based_on_revision: Revision | None = Field(None, description=(
        "the `timing_revision` the change was made from: refused with 409, nothing applied, when this signal's "
        "own values have changed since (a change of another signal's, or of the defaults, does not refuse it)"))


class ShieldChange(_Change):
    """New shield thresholds (the run configuration's `shield`)."""

    kind: Literal["shield"] = "shield"
    shield: FiniteMap = Field(description="keys of the run configuration's `shield`")


class AlertRulesChange(_Change):
    """The operator's alert rules, in place of the previous operator change's. The rules the run started with
    (built in, and its `--config`'s) stay: a rule named like one adjusts it (a built-in keeps its metric and
    operator, and a safety alert its `alerts.SAFETY_LIMITS`), any other is added. `[]`: no operator rules."""

    kind: Literal["alerts"] = "alerts"
    rules: list[FiniteMap] = Field(description=(
        "the operator's rules: added to the run's own, or adjusting one of the same name; the run's own are never "
        "removed"))


class ControllerChange(_Change):
    """Switch the controller: adaptive <-> baseline, or a model. Over the API a model is a registry version
    (`ql:@active`, `ql:@v3`) or a directory inside SIGNALWISE_MODELS_DIR (`ql:NAME`, relative to it); any other
    path, and a `py:` module, are refused unless they are the run's own controller."""

    kind: Literal["controller"] = "controller"
    controller: str = Field(min_length=1, max_length=500)
    intersections: list[str] | None = Field(None, description="default: every signal")
    controller_options: FiniteMap | None = Field(None, description=(
        "options the controller needs beside the run's: for `ql:@active`, the registry's models resolved "
        "(`registry_models`; deploy and rollback set them)"))

    @field_validator("controller_options")
    @classmethod
    def _known_options(cls, options: dict | None) -> dict | None:
        """As a run configuration refuses them: a misspelt option would be ignored without a word."""
        from ...control.actuated import passage_option_error
        from ...control.base import options_error

        given = options or {}
        why = options_error(given) or ("passage_s" in given and passage_option_error(given["passage_s"]))
        if why:
            raise ValueError(why)
        return options


class OverrideChange(_Change):
    """An operator holds a phase, or places a call for it, for a stated duration; it expires on its own."""

    kind: Literal["override"] = "override"
    intersection_id: str = Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS)
    action: Literal["hold", "call"]
    # strict, as `Revision`: lax parsing held phase 1 for `"phase_number": true` and took `"duration_s": "60"`, so a
    # client's bug placed an override at a live signal
    phase_number: int = Field(ge=1, strict=True, description="1-based phase number, as in the event log")
    duration_s: float = Field(gt=0, le=3600, strict=True, description="seconds of simulated time")


class CancelOverrideChange(_Change):
    kind: Literal["cancel_override"] = "cancel_override"
    intersection_id: str = Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS)


CHANGE_TYPES = (TimingChange, SignalTimingChange, ShieldChange, AlertRulesChange, ControllerChange, OverrideChange,
                CancelOverrideChange)
Change = Annotated[Union[CHANGE_TYPES], Field(discriminator="kind")]  # noqa: UP007 - a union built from the tuple

#: the kinds of change a client may send (`Change`'s `kind`), read from the types so that a new one is never left out
KINDS = frozenset(t.model_fields["kind"].default for t in CHANGE_TYPES)


def passage_refusal(options: dict, targets: list[Intersection], signals: set[str]) -> str | None:
    """Why the actuated controller's `passage_s` option (`control.actuated`) cannot apply where a controller change
    builds it (`targets`): a phase a target does not have, or a signal the run (`signals`) does not have; None when
    it can. Asked of every target before any switches (a controller is otherwise built at one signal to check it)."""
    from ...control.actuated import PASSAGE_DEFAULT_KEY, phase_passages_s
    from ...control.base import ControllerUnavailable

    passage = options.get("passage_s")
    if not isinstance(passage, dict):
        return None
    unknown = sorted(str(k) for k in passage if str(k) != PASSAGE_DEFAULT_KEY and k not in signals)
    if unknown:
        return (f"controller_options.passage_s names {', '.join(unknown)}, not a signal of this run "
                f"(signals: {', '.join(sorted(signals))})")
    for inter in targets:
        try:
            phase_passages_s(passage, inter)
        except ControllerUnavailable as exc:
            return str(exc)
    return None


class ChangeRefused(ValueError):
    """A change that cannot be applied: the reason, in one line."""


class LoopBusy(ChangeRefused):
    """The loop did not take the change in time (it is busy, or waits on the simulator): nothing of it was
    applied, and the same change may be sent again (the API answers 503 with Retry-After)."""


class UnknownIntersection(ChangeRefused):
    """The change names a signal the run does not have (the API answers 404)."""


class StaleTimingRevision(ChangeRefused):
    """The timing a change was made from is no longer the one in force (the API answers 409 with `revision`)."""

    def __init__(self, reason: str, revision: int):
        super().__init__(reason)
        self.revision = revision


class Override:
    """Proposes the operator's phase with full confidence until it expires; the shield still decides.

    `hold` keeps proposing the phase for the whole duration (the shield's
    maximum green and cycle bound still cut it); `call` proposes it until it
    has been served once, then hands back.
    """

    observation = "none"
    wants_detectors = False

    def __init__(self, inter: Intersection, inner, action: str, phase_index: int, until_s: float,
                 made_s: float | None = None):
        self.inter = inter
        self.inner = inner
        self.action = action
        self.phase_index = phase_index
        self.until_s = until_s
        self.made_s = made_s  # when it was applied (the run's simulated second), if known
        self.served = False
        #: when the phase's green that served it began, as the signal shows it (the 1 in the event log), which may
        #: be a decision before the override first sees it green
        self.served_at_s: float | None = None
        #: what the decisions saw of the phase while the override lasted: when its latest green began, and how many
        #: of its greens the shield ended for another phase's (maximum green, the cycle bound, a preemption)
        self.green_since_s: float | None = None
        self.cut_short = 0
        self._green_now = False
        self.name = f"override:{action}"
        self.period_s = 1.0

    def describe(self) -> str:
        return f"{self.action} phase {self.phase_index + 1} until t={self.until_s:.0f} s"

    def expired(self, now_s: float) -> bool:
        return self.ending(now_s) is not None

    def ending(self, now_s: float) -> tuple[str, str] | None:
        """Whether it ends at `now_s`, as the change log says it: (`override_served`, why) once a call's phase
        has been green, (`override_expired`, why) when its time is up; None while it lasts. Told apart because a
        call served at once and one the shield never let through look alike in a log that says only "expired"."""
        phase = self.phase_index + 1
        if self.action == "call" and self.served:
            if self.served_at_s is not None and self.made_s is not None and self.served_at_s < self.made_s:
                return "override_served", (f"phase {phase} was green already (since t={self.served_at_s:.0f} s) "
                                           "when the call came: the call is done")
            at = f" at t={self.served_at_s:.0f} s" if self.served_at_s is not None else ""
            return "override_served", f"phase {phase} was served (green){at}: the call is done"
        if now_s >= self.until_s:
            if self.action == "call":
                return "override_expired", f"its time ran out at t={self.until_s:.0f} s before phase {phase} was served"
            if self.served:
                return "override_expired", f"its time ran out at t={self.until_s:.0f} s; {self._held_greens()}"
            # the shield gave the phase in force its minimum green and clearance first; a change it had begun
            # towards the phase still completes, so the phase may come up after this line
            return "override_expired", (f"its time ran out at t={self.until_s:.0f} s before phase {phase} was "
                                        "green: the shield serves the phase in force its minimum green and "
                                        f"clearance first (interventions.csv), and a change begun towards phase "
                                        f"{phase} completes")
        return None

    def _held_greens(self) -> str:
        """What a hold got, said without claiming more: a phase green from t=66 s may have lost the green to
        other phases (maximum green, the cycle bound) and had it back while held."""
        phase = self.phase_index + 1
        if not self.cut_short:
            return f"phase {phase} was green from t={self.served_at_s:.0f} s"
        text = (f"phase {phase} was first green at t={self.served_at_s:.0f} s; the shield ended its green "
                f"{self.cut_short} time(s) to serve other phases (maximum green, the cycle bound or a preemption; "
                "interventions.csv says which)")
        if self._green_now:
            text += f", and it was green again from t={self.green_since_s:.0f} s"
        return text

    def describe_replaced(self, by: Override, at_s: float) -> str:
        """The change log's reason when another override at the same signal takes this one's place."""
        held = f"; {self._held_greens()}" if self.action == "hold" and self.served else ""
        return f"replaced at t={at_s:.0f} s by {by.describe()}{held}"

    def decide(self, obs: Observation) -> Decision:
        s = obs.signal
        if s is not None and s.interval == "green":
            self._saw_green(s.phase_index, obs.time_s - s.elapsed_s)
        if s is not None and s.phase_index == self.phase_index and s.interval == "green":
            if not self.served:
                self.served_at_s = round(obs.time_s - s.elapsed_s, 3)  # the green's start, not this decision's time
            self.served = True
            return Decision(self.inter.id, None, self.name, 1.0)
        return Decision(self.inter.id, self.phase_index, self.name, 1.0)

    def _saw_green(self, phase_index: int, since_s: float) -> None:
        """Note when the phase's green began, and count those the shield ended for another phase's green.
        Decisions are asked during greens only, so a green of another phase after the phase's own ended it."""
        if phase_index != self.phase_index:
            self.cut_short += self._green_now
            self._green_now = False
            return
        if not self._green_now:
            self.green_since_s = since_s
        self._green_now = True


def _clearance(o) -> str:
    """The change interval ending phase `o.in_force`: `yellow 3.3 s and all-red 1.5 s (6 s in whole steps)`."""
    text = f"yellow {o.yellow_s:g} s and all-red {o.all_red_s:g} s"
    if not math.isclose(o.clearance_shown_s, o.yellow_s + o.all_red_s, abs_tol=1e-6):
        text += f" ({o.clearance_shown_s:g} s in whole steps)"
    return text


def override_outlook(ov: Override, o, replaced: Override | None = None) -> tuple[list[str], dict]:
    """What the shield will do with an override just applied, from its state then (`IntersectionShield.outlook`,
    `o`): the answer's `reason` (its lines) and `shield` (the same in figures). "Applied" says the override is in
    force; this says when its phase is green, what holds it back, and what ends a hold's green, so that a hold the
    minimum green defers, or the maximum green cuts, is not read as done now."""
    phase, held = ov.phase_index + 1, o.in_force + 1
    lines: list[str] = []
    facts: dict = {"green_since_s": o.green_since_s, "green_at_s": o.green_at_s, "green_at_exact": o.exact,
                   "waits_for": None, "green_ends_at_s": None, "green_ended_by": None,
                   "replaces": replaced.describe() if replaced is not None else None}
    if o.preempt_vehicle is not None:
        facts["waits_for"] = "preemption"
        lines.append(f"deferred: a preemption for {o.preempt_vehicle} holds the signal; phase {phase} waits until it "
                     "ends")
    elif o.green_since_s is not None:
        lines.append(f"phase {phase} is green now (since t={o.green_since_s:.1f} s)"
                     + (": the call is served at once" if ov.action == "call" else ""))
    else:
        at = f"phase {phase} green at {'' if o.exact else 'about '}t={o.green_at_s:.1f} s"
        if o.interval != "green":
            if o.clearing_to is None:
                lines.append(f"the change to phase {phase} is under way ({o.interval.replace('_', '-')} of phase "
                             f"{held}): {at}")
            else:
                facts["waits_for"] = "clearance"
                lines.append(f"deferred: phase {held}'s {o.interval.replace('_', '-')} clears to phase "
                             f"{o.clearing_to + 1}, which runs its minimum green and clearance first: {at}")
        else:
            if o.held_until_s is not None:
                facts["waits_for"] = o.held_by
                text = (f"deferred: phase {held} {o.held_by} ends at t={o.held_until_s:.1f} s, then "
                        f"{_clearance(o)}")
            else:
                text = f"phase {held} ends its green at the next step, then {_clearance(o)}"
            if o.cycle_first is not None:
                facts["waits_for"] = facts["waits_for"] or "cycle bound"
                text += (f"; the cycle bound (every phase served within {o.cycle_max_s:g} s) serves phase "
                         f"{o.cycle_first + 1} first")
            lines.append(f"{text}: {at}")
        if ov.until_s < o.green_at_s - 1e-6:
            lines.append(f"it ends at t={ov.until_s:.1f} s, before phase {phase} can be green")
    if ov.action == "hold" and o.preempt_vehicle is None:
        ends = min(o.max_end_s, o.cycle_end_s)
        if ends < ov.until_s - 1e-6:
            facts["green_ends_at_s"] = ends
            if o.max_end_s <= o.cycle_end_s:
                facts["green_ended_by"] = "max_green"
                counted = ", counted from another phase's call" if o.max_from_call else ""
                lines.append(f"max green {o.max_green_s:g} s ends each hold (first at t={o.max_end_s:.1f} s{counted}); "
                             "the hold resumes after the clearance and the next phase's minimum green")
            else:
                facts["green_ended_by"] = "cycle_max"
                lines.append(f"the cycle bound (every phase served within {o.cycle_max_s:g} s) ends its green by "
                             f"t={o.cycle_end_s:.1f} s to serve phase {o.cycle_next + 1}; the hold resumes after the "
                             "clearance and that phase's minimum green")
    elif ov.action == "call" and o.green_since_s is None and o.preempt_vehicle is None:
        lines.append(f"a call ends once phase {phase} has been green")
    if replaced is not None:
        made = f" set at t={replaced.made_s:.1f} s" if replaced.made_s is not None else ""
        lines.append(f"replaces the {replaced.action} of phase {replaced.phase_index + 1}{made} "
                     f"(until t={replaced.until_s:.1f} s)")
    return lines, facts


def replaced_record(old: Override, new: Override, intersection_id: str, at_s: float) -> dict:
    """The change log's entry that ends an override another one replaced (`who`: runtime), as
    `override_expired` and `override_served` end the others: the log says how every override ended."""
    return {"at": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "who": "runtime",
            "kind": "override_replaced", "sim_time_s": at_s,
            "payload": {"intersection_id": intersection_id, "override": old.describe(), "replaced_by": new.describe()},
            "result": "applied", "reason": old.describe_replaced(new, at_s)}


def record(change: BaseModel, who: str, result: str, reason: str = "", at: dt.datetime | None = None) -> dict:
    """The change as the log and the store keep it: who, when, what, and what came of it."""
    payload = change.model_dump(mode="json")
    if "based_on_revision" in payload and payload["based_on_revision"] is None:  # sent without: logged as before
        del payload["based_on_revision"]
    return {"at": (at or dt.datetime.now().astimezone()).isoformat(timespec="seconds"), "who": who,
            "kind": change.kind, "payload": payload, "result": result, "reason": reason}
