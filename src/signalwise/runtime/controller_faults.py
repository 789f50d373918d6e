"""What a controller did wrong in a run, each kind once with its count: the errors its `decide` raised, and the
proposals the shield could not follow as given (a phase that does not exist, a decision it cannot read).

The loop records here what it caught (`LoopStepper._decide`); the run writes the kinds to
`controller_errors.csv` and `metrics.json` and warns when they are more than a small share of the decisions
(`runtime.run`); a live run rewrites `controller_errors.csv` as they come, and shows the counts in its snapshots,
alerts and `run.json` (`runtime.live.runtime`). On stderr a kind is said when first seen, then at most once every
`LOG_EVERY_S` with the count since its last line (a live run goes on for days), and once more with its count when
the run ends: a controller that fails at every third call no longer writes a line per call.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..control.plugins import ControllerAttributeError
from ..core.types import Decision

log = logging.getLogger("signalwise.runtime")

#: the least time between two stderr lines of one kind, wall-clock seconds (as the live feeds throttle theirs)
LOG_EVERY_S = 60.0
#: kinds told apart by their message; past this many, further messages of a type count under one kind
MAX_KINDS = 20
#: the longest message kept of an error, in characters
MESSAGE_CHARS = 300
#: a run whose controller raised at more than this share of its decisions warns: the fallback served those
ERROR_WARN_SHARE = 0.01
#: a run in which more than this share of the proposals could not be followed as given warns
INVALID_WARN_SHARE = 0.10
#: what each kind is, and what the shield did in its place
RAISED, INVALID_PHASE, UNREADABLE = "raised", "invalid_phase", "unreadable"
SHIELD_DID = {RAISED: "the shield's Webster fallback served", INVALID_PHASE: "the shield held the current green",
              UNREADABLE: "the shield's Webster fallback served"}
#: the columns of controller_errors.csv, one row per kind
CSV_COLUMNS = ("kind", "count", "first_time_s", "first_signal", "signals", "type", "message", "where")


@dataclass
class FaultKind:
    """One kind of fault: its first occurrence in full, then a count."""

    kind: str  # RAISED, INVALID_PHASE or UNREADABLE
    type: str  # the exception's type ("" for a proposal)
    message: str
    where: str  # file:line of the innermost frame of the first traceback ("" for a proposal)
    first_time_s: float
    first_signal: str
    count: int = 0
    signals: set[str] = field(default_factory=set)
    said: int = 0  # occurrences the stderr lines have covered
    said_at: float = -float("inf")  # when its last line was logged (the clock's time)

    @property
    def text(self) -> str:
        """The kind in words: "KeyError: 'E1_0' (at /x/qbal.py:41)", or the proposal's fault."""
        if self.kind != RAISED:
            return self.message
        said = f"{self.type}: {self.message}" if self.message else self.type
        return f"{said} (at {self.where})" if self.where else said

    def row(self) -> dict:
        return {"kind": self.kind, "count": self.count, "first_time_s": self.first_time_s,
                "first_signal": self.first_signal, "signals": " ".join(sorted(self.signals)), "type": self.type,
                "message": self.message, "where": self.where}


class ControllerFaults:
    """The faults of one run's controllers, by kind, and the decisions they were asked for."""

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic):
        self.label = label  # the controller as the run names it (its spec)
        #: the controller a signal runs, where it is not `label` (a live run switches signals one by one)
        self.label_of: Callable[[str], str] | None = None
        self.clock = clock
        self.decisions = 0
        self.kinds: dict[tuple[str, str, str], FaultKind] = {}

    def raised(self, exc: BaseException, signal: str, time_s: float) -> None:
        """`decide` (or reading what it returned) raised `exc` at `signal`."""
        message = _one_line(exc)
        key = (RAISED, type(exc).__name__, message)
        if key not in self.kinds and len(self.kinds) >= MAX_KINDS:
            key = (RAISED, type(exc).__name__, "(messages past the first kinds not told apart)")
        if key not in self.kinds:
            self.kinds[key] = FaultKind(RAISED, key[1], key[2], _where(exc), time_s, signal)
        self._note(self.kinds[key], signal, time_s)

    def proposed(self, decision: Decision | None, malformed: str | None, n_phases: int, signal: str,
                 time_s: float) -> None:
        """A proposal the shield took: noted when it cannot follow it as given (`malformed`: the shield's reason
        it cannot be read; a phase index outside 0..n_phases-1 is held)."""
        if malformed is not None:
            kind, message = UNREADABLE, f"decision not readable: {malformed}"
        elif decision is not None and decision.phase_index is not None and not 0 <= decision.phase_index < n_phases:
            kind, message = INVALID_PHASE, (f"phase index {decision.phase_index} does not exist (the signal's "
                                            f"phases are 0-{n_phases - 1})")
        else:
            return
        key = (kind, "", message)
        if key not in self.kinds and len(self.kinds) >= MAX_KINDS:
            key = (kind, "", f"{kind.replace('_', ' ')} (messages past the first kinds not told apart)")
        if key not in self.kinds:
            self.kinds[key] = FaultKind(kind, "", key[2], "", time_s, signal)
        self._note(self.kinds[key], signal, time_s)

    def _note(self, fault: FaultKind, signal: str, time_s: float) -> None:
        fault.count += 1
        fault.signals.add(signal)
        now = self.clock()
        if now - fault.said_at < LOG_EVERY_S:
            return
        since = fault.count - fault.said - 1
        fault.said, fault.said_at = fault.count, now
        more = f" ({since} more of this kind since its last line)" if since else \
            "; further ones of this kind are counted in controller_errors.csv, not each logged"
        what = "failed" if fault.kind == RAISED else "made a proposal the shield cannot follow"
        log.warning("controller %s %s at %s t=%.0f: %s; %s%s", self._label(signal), what, signal, time_s, fault.text,
                    SHIELD_DID[fault.kind], more)

    def _label(self, signal: str) -> str:
        return self.label_of(signal) if self.label_of is not None else self.label

    def log_totals(self) -> None:
        """At the end of a run: the count of each kind some of which were not logged one by one."""
        for fault in self.kinds.values():
            if fault.count > fault.said:
                log.warning("controller %s: %s, %d times in all at %s (first at %s t=%.0f)",
                            self._label(fault.first_signal), fault.text,
                            fault.count, _signals_text(fault.signals), fault.first_signal, fault.first_time_s)

    def count(self, *kinds: str) -> int:
        return sum(f.count for f in self.kinds.values() if f.kind in kinds)

    @property
    def errors(self) -> int:
        return self.count(RAISED)

    @property
    def invalid(self) -> int:
        return self.count(INVALID_PHASE, UNREADABLE)

    def rows(self) -> list[list]:
        """controller_errors.csv's rows, one per kind, in `CSV_COLUMNS` order (a batch run writes them once, a live
        run as they come)."""
        return [[row[c] for c in CSV_COLUMNS] for row in (f.row() for f in self.kinds.values())]

    def as_metrics(self) -> dict:
        """metrics.json's `controller_faults`: the decisions asked for, the errors and invalid proposals with their
        shares, and each kind."""
        return {"decisions": self.decisions, "errors": self.errors, "error_share": _share(self.errors, self.decisions),
                "invalid_proposals": self.invalid, "invalid_share": _share(self.invalid, self.decisions),
                "kinds": [f.row() for f in self.kinds.values()]}

    def warnings(self) -> list[str]:
        """A sentence for the run's reader when errors or invalid proposals took more than a small share of its
        decisions: the figures are then partly the shield's, not the controller's."""
        out = []
        if self.decisions and self.errors / self.decisions > ERROR_WARN_SHARE:
            top = self._most(RAISED)
            out.append(f"the controller raised an error at {self.errors} of {self.decisions} decisions "
                       f"({self.errors / self.decisions:.1%}) and {SHIELD_DID[RAISED]} in its place: these figures "
                       f"are partly the fallback's; most often {top.text}, {top.count} times, first at "
                       f"{top.first_signal} t={top.first_time_s:.0f} (controller_errors.csv lists each kind)")
        if self.decisions and self.invalid / self.decisions > INVALID_WARN_SHARE:
            top = self._most(INVALID_PHASE, UNREADABLE)
            out.append(f"{self.invalid} of the controller's {self.decisions} proposals "
                       f"({self.invalid / self.decisions:.1%}) could not be followed as given, and "
                       f"{SHIELD_DID[top.kind]} in their place: these figures are partly the shield's, not the "
                       f"controller's; e.g. {top.text}, {top.count} times, first at {top.first_signal} "
                       f"t={top.first_time_s:.0f} (controller_errors.csv lists each kind)")
        return out

    def _most(self, *kinds: str) -> FaultKind:
        return max((f for f in self.kinds.values() if f.kind in kinds), key=lambda f: f.count)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of the exception's traceback: where it was raised. Empty for a `period_s`
    (or `needs_counts_at`) a user's controller left unusable: no line of its code raised that, and the wrapper's
    own line would mislead (the message names the controller's class and attribute)."""
    if isinstance(exc, ControllerAttributeError) and exc.__cause__ is None:
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _signals_text(signals: set[str], shown: int = 5) -> str:
    names = sorted(signals)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"signal{'s' if len(names) > 1 else ''} {', '.join(names[:shown])}{more}"


def _share(n: int, of: int) -> float:
    return round(n / of, 4) if of else 0.0
