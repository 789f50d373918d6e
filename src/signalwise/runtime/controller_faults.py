"""What a controller did wrong in a run, each kind once with its count: the errors its `decide` raised, and the
proposals the shield could not follow as given (a phase that does not exist, a decision for another signal, a
decision it cannot read).

An error's kind is its type and the place in the controller's code that raised it (file:line), the first message
kept as its example: a `KeyError` whose message names a lane, or an error whose message holds the time, is one
kind however many lanes or times it names.

The loop records here what it caught (`LoopStepper._decide`); the run writes the kinds to
`controller_errors.csv` and `metrics.json` and warns when they are more than a small share of the decisions
(`runtime.run`); a live run rewrites `controller_errors.csv` as they come, and shows the counts in its snapshots,
alerts and `run.json` (`runtime.live.runtime`). On stderr a kind is said when first seen, then at most once every
`LOG_EVERY_S` with the count since its last line (a live run goes on for days), and once more with its count when
the run ends: a controller that fails at every third call no longer writes a line per call. In a comparison each
line names the run's seed (`SAY_SEED`), as the runs of several seeds write to one terminal at once.

A controller whose `decide` returns None (no Decision) at every call for `SILENT_WARN_S` at a signal is said once
too: None is a hold, and a `decide` that forgot its `return` holds every green to the shield's bounds unnoticed.
"""

from __future__ import annotations

import functools
import logging
import os
import site
import sysconfig
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..control.plugins import ControllerAttributeError
from ..control.shield import INVALID_PHASE_REASON, WRONG_SIGNAL_REASON
from ..core.types import Decision

log = logging.getLogger("signalwise.runtime")

#: the least time between two stderr lines of one kind, wall-clock seconds (as the live feeds throttle theirs)
LOG_EVERY_S = 60.0
#: kinds told apart (by type and where raised, or by message for a proposal); past this many, further ones of a type
#: count under one kind
MAX_KINDS = 20
#: the longest message kept of an error, in characters
MESSAGE_CHARS = 300
#: a run whose controller raised at more than this share of its decisions warns: the fallback served those
ERROR_WARN_SHARE = 0.01
#: a run in which more than this share of the proposals could not be followed as given warns
INVALID_WARN_SHARE = 0.10
#: a signal whose controller returned None at every decision for this many simulated seconds is said once
SILENT_WARN_S = 300.0
#: what each kind is, and what the shield did in its place
RAISED, INVALID_PHASE, UNREADABLE = "raised", "invalid_phase", "unreadable"
#: a Decision whose `intersection_id` is another signal's (`control.shield`'s `wrong_signal` intervention)
WRONG_SIGNAL = "wrong_signal"
SHIELD_DID = {RAISED: "the shield's Webster fallback served", INVALID_PHASE: "the shield's Webster fallback served",
              UNREADABLE: "the shield's Webster fallback served", WRONG_SIGNAL: "the shield's Webster fallback served"}
#: in a comparison's worker (`runtime.compare`), each stderr line names the run's seed
SAY_SEED = False
#: the columns of controller_errors.csv, one row per kind
CSV_COLUMNS = ("kind", "count", "first_time_s", "first_signal", "signals", "type", "message", "where")


@dataclass
class FaultKind:
    """One kind of fault: its first occurrence in full, then a count."""

    kind: str  # RAISED, INVALID_PHASE, WRONG_SIGNAL or UNREADABLE
    type: str  # the exception's type ("" for a proposal)
    message: str  # the first one's
    where: str  # file:line in the controller's code that raised it (`_where`; "" for a proposal)
    first_time_s: float
    first_signal: str
    count: int = 0
    signals: set[str] = field(default_factory=set)
    said: int = 0  # occurrences the stderr lines have covered
    said_at: float = -float("inf")  # when its last line was logged (the clock's time)
    lumped: bool = False  # the kind past `MAX_KINDS` that counts the further ones of its type together

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

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic, seed: int | None = None):
        self.label = label  # the controller as the run names it (its spec)
        self.seed = seed  # the run's seed, which stderr names in a comparison (`SAY_SEED`)
        #: the controller a signal runs, where it is not `label` (a live run switches signals one by one)
        self.label_of: Callable[[str], str] | None = None
        self.clock = clock
        self.decisions = 0
        self.kinds: dict[tuple[str, str, str], FaultKind] = {}
        #: per signal, when its controller's unbroken run of None returns began
        self._silent_since: dict[str, float] = {}
        #: the signals whose controller returned None at every decision for `SILENT_WARN_S`, each with when that began
        self.silent: dict[str, float] = {}

    def raised(self, exc: BaseException, signal: str, time_s: float) -> None:
        """`decide` (or reading what it returned) raised `exc` at `signal`. Its kind is its type and where it was
        raised; an error raised nowhere in the controller's code (an unusable `period_s`) is told by its message."""
        where = _where(exc)
        key = (RAISED, type(exc).__name__, where or _one_line(exc))
        if key not in self.kinds and len(self.kinds) >= MAX_KINDS:
            key = (RAISED, type(exc).__name__, "")
            if key not in self.kinds:
                self.kinds[key] = FaultKind(RAISED, key[1], f"(kinds past the first {MAX_KINDS} counted together)",
                                            "", time_s, signal, lumped=True)
        if key not in self.kinds:
            self.kinds[key] = FaultKind(RAISED, key[1], _one_line(exc), where, time_s, signal)
        self._note(self.kinds[key], signal, time_s)

    def proposed(self, decision: Decision | None, malformed: str | None, n_phases: int, signal: str,
                 time_s: float) -> None:
        """A proposal the shield took: noted when it cannot follow it as given (`malformed`: the shield's reason
        it cannot be read; a Decision for another signal, and a phase index outside 0..n_phases-1, which the
        fallback serves in place of), and when the controller has returned None at every decision for `SILENT_WARN_S` at `signal`."""
        if malformed is not None:
            kind, message = UNREADABLE, f"decision not readable: {malformed}"
        elif decision is None:
            self._none_returned(signal, time_s)
            return
        else:
            if self._silent_since:  # a Decision ends the signal's run of None returns
                self._silent_since.pop(signal, None)
            if decision.intersection_id != signal:
                kind, message = WRONG_SIGNAL, (f"decision for signal {decision.intersection_id!r}, not this one "
                                               f"({signal!r}): not followed")
            elif decision.phase_index is not None and not 0 <= decision.phase_index < n_phases:
                kind, message = INVALID_PHASE, (f"phase index {decision.phase_index} does not exist (the signal's "
                                                f"phases are 0-{n_phases - 1})")
            else:
                return
        # a decision for another signal is one kind whichever signal it names (each signal's copy names another)
        key = (kind, "", "" if kind == WRONG_SIGNAL else message)
        if key not in self.kinds and len(self.kinds) >= MAX_KINDS:
            key = (kind, "", f"{kind.replace('_', ' ')} (kinds past the first {MAX_KINDS} counted together)")
            if key not in self.kinds:
                self.kinds[key] = FaultKind(kind, "", key[2], "", time_s, signal, lumped=True)
        if key not in self.kinds:
            self.kinds[key] = FaultKind(kind, "", message, "", time_s, signal)
        self._note(self.kinds[key], signal, time_s)

    def _none_returned(self, signal: str, time_s: float) -> None:
        """`decide` returned None at `signal`: said once a run, when a signal's None returns have gone on unbroken
        for `SILENT_WARN_S`."""
        since = self._silent_since.setdefault(signal, time_s)
        if time_s - since < SILENT_WARN_S or signal in self.silent:
            return
        self.silent[signal] = since
        if len(self.silent) == 1:
            log.warning("controller %s returned None, not a Decision, at every decision at %s from t=%.0f to "
                        "t=%.0f: each is taken as a hold, so only the shield's maximum green and cycle bound end its "
                        "greens (does decide return its Decision?); said once a run", self._label(signal), signal,
                        since, time_s)

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
        label = self.label_of(signal) if self.label_of is not None else self.label
        return f"{label} s{self.seed}" if SAY_SEED and self.seed is not None else label

    def log_totals(self) -> None:
        """At the end of a run: the count of each kind some of which were not logged one by one."""
        for fault in self.kinds.values():
            if fault.count > fault.said:
                log.warning("controller %s: %s, %s in all at %s (first at %s t=%.0f)",
                            self._label(fault.first_signal), fault.text,
                            _times(fault.count), _signals_text(fault.signals), fault.first_signal, fault.first_time_s)

    def count(self, *kinds: str) -> int:
        return sum(f.count for f in self.kinds.values() if f.kind in kinds)

    @property
    def errors(self) -> int:
        return self.count(RAISED)

    @property
    def invalid(self) -> int:
        return self.count(INVALID_PHASE, WRONG_SIGNAL, UNREADABLE)

    def rows(self) -> list[list]:
        """controller_errors.csv's rows, one per kind, in `CSV_COLUMNS` order (a batch run writes them once, a live
        run as they come)."""
        return [[row[c] for c in CSV_COLUMNS] for row in (f.row() for f in self.kinds.values())]

    def as_metrics(self) -> dict:
        """metrics.json's `controller_faults`: the decisions asked for, the errors and invalid proposals with their
        shares, and each kind."""
        return {"decisions": self.decisions, "errors": self.errors, "error_share": _share(self.errors, self.decisions),
                "invalid_proposals": self.invalid, "invalid_share": _share(self.invalid, self.decisions),
                "kinds": [f.row() for f in self.kinds.values()],
                **({"none_returned": dict(sorted(self.silent.items()))} if self.silent else {})}

    def warnings(self) -> list[str]:
        """A sentence for the run's reader when errors or invalid proposals took more than a small share of its
        decisions: the figures are then partly the shield's, not the controller's."""
        out = []
        if self.decisions and self.errors / self.decisions > ERROR_WARN_SHARE:
            top = self._most(RAISED)
            out.append(f"the controller raised an error at {self.errors} of {self.decisions} decisions "
                       f"({self.errors / self.decisions:.1%}) and {SHIELD_DID[RAISED]} in its place: these figures "
                       f"are partly the fallback's; {'most often ' if top.count > 1 else 'e.g. '}{top.text}, "
                       f"{_times(top.count)}, first at {top.first_signal} t={top.first_time_s:.0f} "
                       "(controller_errors.csv lists each kind)")
        if self.decisions and self.invalid / self.decisions > INVALID_WARN_SHARE:
            top = self._most(INVALID_PHASE, WRONG_SIGNAL, UNREADABLE)
            out.append(f"{self.invalid} of the controller's {self.decisions} proposals "
                       f"({self.invalid / self.decisions:.1%}) could not be followed as given, and "
                       f"{SHIELD_DID[top.kind]} in their place: these figures are partly the shield's, not the "
                       f"controller's; e.g. {top.text}, {_times(top.count)}, first at {top.first_signal} "
                       f"t={top.first_time_s:.0f} (controller_errors.csv lists each kind)")
        if self.silent:
            first = min(self.silent.values())
            out.append(f"the controller returned None, not a Decision, at every decision for {SILENT_WARN_S:g} s or "
                       f"more at {_signals_text(set(self.silent))} (from t={first:.0f}): each None is a hold, so only "
                       "the shield's maximum green and cycle bound ended those greens; if that is not meant, check "
                       "that decide returns its Decision")
        return out

    def fallback_reasons_warned(self) -> set[str]:
        """The kinds of reason for the shield's fallback (`runtime.run.fallback_reason_kind`) that `warnings` already
        explains: its errors, its proposals it cannot follow (unreadable, for another signal, of a phase that does not
        exist)."""
        out = set()
        if self.decisions and self.errors / self.decisions > ERROR_WARN_SHARE:
            out.add("controller failed")
        if self.decisions and self.invalid / self.decisions > INVALID_WARN_SHARE:
            out.update(("decision not readable", WRONG_SIGNAL_REASON, INVALID_PHASE_REASON))
        return out

    def _most(self, *kinds: str) -> FaultKind:
        """The most frequent of these kinds; the catch-all past `MAX_KINDS` only when there is no other."""
        found = [f for f in self.kinds.values() if f.kind in kinds]
        return max([f for f in found if not f.lumped] or found, key=lambda f: f.count)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _where(exc: BaseException) -> str:
    """file:line where the controller's code raised the exception: the innermost frame of its traceback outside
    Python's own library and the installed packages (an error numpy raised names the controller's line that called
    numpy), or the innermost frame when every frame is there (an installed plugin's own code). Empty for a
    `period_s` (or `needs_counts_at`) a user's controller left unusable: no line of its code raised that, and the
    wrapper's own line would mislead (the message names the controller's class and attribute)."""
    if isinstance(exc, ControllerAttributeError) and exc.__cause__ is None:
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    libraries = _library_dirs()
    own = [f for f in frames if not f.filename.startswith(libraries)]
    frame = own[-1] if own else frames[-1]
    return f"{frame.filename}:{frame.lineno}"


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """Where Python's own library and the installed packages lie, each ending in a separator."""
    paths = sysconfig.get_paths()
    dirs = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(name)}
    dirs.update(getattr(site, "getsitepackages", lambda: [])())
    return tuple(os.path.join(d, "") for d in sorted(dirs))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _signals_text(signals: set[str], shown: int = 5) -> str:
    names = sorted(signals)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"signal{'s' if len(names) > 1 else ''} {', '.join(names[:shown])}{more}"


def _share(n: int, of: int) -> float:
    return round(n / of, 4) if of else 0.0
