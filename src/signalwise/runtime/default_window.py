"""The warning for a run whose window is the one-hour default and outlasts its demand by far.

SUMO given no end time runs until the last vehicle has left. A run needs its end before it starts (the evidence
replay, the record intervals and the progress bar are sized by it), so a network given as `--net`/`--routes`, or a
.sumocfg with no end, runs one hour (`sim.scenario`). Where the route files' last departure comes long before
that, the rest of the hour is an empty network: per-vehicle figures do not change, but time averages (queues,
fallback share) count the empty part, and the shield's maximum green keeps ending greens that rest with no call
(max-outs on an empty network). Nothing says so unless the run does.
"""

from __future__ import annotations

import functools
import gzip
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from sumolib.miscutils import parseTime

#: how far past the routes' last departure the default window may run before a run warns: time for the last
#: vehicles to cross a city network, not an empty network's worth
EMPTY_TAIL_S = 600.0
#: what the suggested --duration leaves after the last departure for the last vehicles to leave
LEAVE_MARGIN_S = 300.0
#: elements that depart once at `depart`, and flows that depart until their `end`
_ONCE = frozenset({"vehicle", "trip", "person", "container"})
_FLOWS = frozenset({"flow", "personFlow", "containerFlow"})


def last_departure_s(files: tuple[Path, ...]) -> float | None:
    """The latest departure any vehicle, person or container of `files` is due at, in simulation seconds; None
    when a file cannot be read or some departure is not a time known in advance (a flow with no `end`, a
    `triggered` departure): the warning is then left out rather than guessed. Read once per process for the
    same files (by size and modification time): every run of a `compare` or a training asks."""
    try:
        stamps = tuple((str(f), Path(f).stat().st_mtime_ns, Path(f).stat().st_size) for f in files)
    except OSError:
        return None
    return _last_departure_s(stamps)


@functools.lru_cache(maxsize=8)
def _last_departure_s(stamps: tuple[tuple[str, int, int], ...]) -> float | None:
    latest = -math.inf
    for path in (Path(f) for f, _mtime, _size in stamps):
        try:
            with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as fh:
                for _event, el in ET.iterparse(fh, events=("end",)):
                    if el.tag in _ONCE or el.tag in _FLOWS:
                        at = _time(el.get("depart") if el.tag in _ONCE else el.get("end"))
                        if at is None:
                            return None
                        latest = max(latest, at)
                        el.clear()
        except (ET.ParseError, OSError, EOFError):
            return None
    return latest if math.isfinite(latest) else None


def _time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(parseTime(text.strip()))
    except (ValueError, IndexError, TypeError):  # TypeError: SUMO's reader gives None for "triggered"
        return None
    return value if math.isfinite(value) else None


def default_window_warning(duration_s: float | None, scenario) -> str | None:  # noqa: ANN001 - a sim Scenario
    """The warning for a run of `scenario` with no `--duration` (`duration_s` None) whose window is the default
    hour and runs more than EMPTY_TAIL_S past its routes' last departure; None otherwise."""
    if duration_s is not None or scenario.end_given:
        return None
    last_s = last_departure_s(tuple(scenario.route_files) + tuple(scenario.additional_files))
    if last_s is None or scenario.end_s - last_s <= EMPTY_TAIL_S:
        return None
    begin_s = scenario.begin_s
    suggest_s = math.ceil((max(last_s, begin_s) - begin_s + LEAVE_MARGIN_S) / 60.0) * 60.0
    return (f"the routes' last departure is at {last_s:g} s, but the run simulates {begin_s:g}-{scenario.end_s:g} s: "
            "without --duration or an end in the .sumocfg a run takes one hour, where SUMO would stop once the "
            f"last vehicle has left. Its last {scenario.end_s - last_s:g} s add no traffic: time averages (queues, "
            "fallback share) count them, and the shield's maximum green keeps ending greens that rest with no call "
            f"(max_green interventions on an empty network, unless timing.cycle_calls); give --duration {suggest_s:g} (the last departure and "
            f"{LEAVE_MARGIN_S:g} s for the last vehicles to leave) to stop sooner")
