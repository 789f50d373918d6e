"""Event 131 (Coord Pattern Change): a coordination pattern, or a live run's timing revision.

signalwise logs two things with a 131, in the Indiana enumeration:

- a coordination pattern, as a field controller logs one (`control.coordinated.pattern_events`): a 131 naming the
  pattern (1, the program's plan; 254, Free), with a 132 (cycle length) and a 133 (offset) of the same instant;
- a timing revision, a timing changed at run time and applied without a restart (`control.shield`, docs/live.md):
  a 131 alone, naming the revision (1-based), before the begin green (1) that takes it.

The rule that tells them apart (`pattern_131s`; `last_pattern`: the plan in force) is read by the safety audit (a
revision's 131 changes the timing its greens are held to; a pattern's changes none), by ATSPM (a pattern starts a
plan span of `plans`; a revision starts none and is listed in `timing_revisions`) and by the API (the plan in force
at a window's start, stored or live). It is only meaningful for a device whose signal model lists timing revisions
(`revision_devices`; `read_revision_devices` reads them from a run's `signal_model.json`): a field controller's
log, or a device whose timing never changed, logs patterns only, and each of its 131s is a pattern, with or without
a 132 beside it.

Pure Python, the standard library and `signalwise.core` only (the event codes and pattern numbers are core's): the
audit imports only `signalwise.core` besides this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.types import COORDINATED_PATTERN, FREE_PATTERN, EventCode


def pattern_131s(events: Iterable[tuple[object, int, int]]) -> set[int]:
    """Positions in `events` (one device's (time, event code, parameter), in any order within an instant) of the
    131s that are a coordination pattern, not a timing revision.

    At an instant with a 132, exactly one 131 is the pattern: the one whose parameter is the pattern's number
    (`FREE_PATTERN` where the 132 says cycle 0, else `COORDINATED_PATTERN`), else the instant's only 131. Every
    other 131 is a revision: a 131 with no 132 at its instant, and any other 131 of a pattern's instant (a live
    run may log a replayed revision's 131 at the instant of its pattern: at its start, at a controller switch).
    The log's order within an instant is not kept (the store sorts by code and parameter), so the rule reads the
    instant, not the order. A pattern 1 and a revision 1 at one instant are two 131s of parameter 1: one is the
    pattern, the other names revision 1."""
    by_time: dict[object, list[int]] = {}
    params: dict[int, int] = {}
    cycles: dict[object, list[int]] = {}
    for k, (t, code, param) in enumerate(events):
        if code == EventCode.TIMING_PLAN_CHANGE:
            by_time.setdefault(t, []).append(k)
            params[k] = int(param)
        elif code == EventCode.CYCLE_LENGTH_CHANGE:
            cycles.setdefault(t, []).append(int(param))
    out: set[int] = set()
    for t, ks in by_time.items():
        if t not in cycles:
            continue
        number = FREE_PATTERN if cycles[t][0] == 0 else COORDINATED_PATTERN
        named = [k for k in ks if params[k] == number]
        if named:
            out.add(named[0])
        elif len(ks) == 1:
            out.add(ks[0])
    return out


def revision_devices(model: object) -> frozenset[str]:
    """The devices of a run's signal model (`signal_model.json`, a list of signals) that list timing revisions
    (`timing_revisions`): the only devices whose log can hold a revision's 131. Anything else (no model, a
    malformed one) lists none."""
    if not isinstance(model, list):
        return frozenset()
    return frozenset(str(d["id"]) for d in model
                     if isinstance(d, dict) and "id" in d and isinstance(d.get("timing_revisions"), list)
                     and d["timing_revisions"])


def last_pattern(events: Sequence[tuple[object, int, int]]) -> int | None:
    """Position in `events` (one device's (time, event code, parameter), in time order) of its last 131 that is a
    coordination pattern (`pattern_131s`), not a timing revision: the plan in force after them. None when no 131
    is a pattern's."""
    return max(pattern_131s(events), default=None)


def read_revision_devices(path: Path) -> tuple[frozenset[str], str | None]:
    """The `revision_devices` of the signal model at `path` (a run's `signal_model.json`), and why it cannot be
    read (None when it can): then no device lists revisions, and every 131 reads as a coordination pattern. The
    runtime replaces the file whole, so it is never read half-written."""
    try:
        model = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return frozenset(), exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return revision_devices(model), None
