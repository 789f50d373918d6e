"""A live run's recoveries from a simulator crash, read as one timeline.

When its simulator dies, `signalwise live` resumes from the state it saved at the resume time R (up to
`--state-every` seconds back) and replays from there. Its event log holds, in file order: the log up to the
crash; one event 240 per signal (`EventCode.RUNTIME_RECOVERY`, signalwise's own code: parameter = whole
seconds rewound, timestamp = R); the events that opened the intervals in force at R, re-stated at their
original times (a begin green (1) for every signal, at or before R); the replay. The span from R to the crash
is logged twice, and sorted by time the two copies interleave: vehicles counted twice, cycles made of both.

The run went on with the replay, so that is the timeline read here (the audit checks each side of the marker
on its own, as both were shown; measures need one): the events logged before the marker with a time after R
are left out, since the replay supersedes them; those at R stay, as the saved state holds them (the tick that
ended at R logged them before it was saved). The replay's re-statements are read once: a row at or before R
that is an exact copy of one kept, and a detector's first event at R that repeats the state the kept log has
it in (an 82 for a vehicle standing on it since before R, which the restored simulator reports anew). The
markers themselves are left out too (the input report says where they were), so the log read, and what
`events import` stores of it, is one timeline. The replay starts from the very state the log was in at R, so
cycles across the marker read as one.

A 240 is read so only in the shape a live run writes it: a run of consecutive 240 rows (one recovery, as the
audit splits the log) followed, before the next run, by a begin green at or before its time for each device
it marks. Otherwise (a live run's log sorted by time, or a field controller logging 240 for something of its
vendor's) the log is read as it is, and a warning says so.
"""

from __future__ import annotations

import numpy as np

#: `signalwise.core.types.EventCode.RUNTIME_RECOVERY` (not imported: the measures load without `core`)
RUNTIME_RECOVERY = 240
BEGIN_GREEN = 1
DETECTOR_STATES = (81, 82)


def _runs(marks: np.ndarray) -> list[tuple[int, int]]:
    """(first, past last) index of each run of consecutive marker rows."""
    cut = np.flatnonzero(np.diff(marks) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(marks, cut)]


def one_timeline(t: np.ndarray, device: np.ndarray, code: np.ndarray, param: np.ndarray,
                 devices: list[str]) -> tuple[np.ndarray | None, list[tuple], list[tuple]]:
    """The rows (given in file order) to keep, or None to keep all; the recoveries read, each (resumed µs,
    seconds rewound, rows superseded, re-stated rows read once); the markers left as they are, each (time µs,
    device names)."""
    marks = np.flatnonzero(code == RUNTIME_RECOVERY)
    if not len(marks):
        return None, [], []
    keep = np.ones(len(t), bool)
    read: list[tuple] = []
    unread: list[tuple] = []
    runs = _runs(marks)
    for k, (first, past) in enumerate(runs):
        upto = runs[k + 1][0] if k + 1 < len(runs) else len(t)
        resumed = int(t[first:past].min())
        marked = set(device[first:past].tolist())
        after = np.arange(past, upto)
        restated = after[t[after] <= resumed]
        greens = set(device[restated[code[restated] == BEGIN_GREEN]].tolist())
        if not marked <= greens:
            unread.append((resumed, sorted(devices[d] for d in marked)))
            continue
        before = np.flatnonzero(keep[:first])
        superseded = before[(t[before] > resumed) & (code[before] != RUNTIME_RECOVERY)]
        keep[superseded] = False
        keep[first:past] = False  # said in the report; the log read is the one timeline, with no trace of two
        before = before[t[before] <= resumed]
        n_restated = _drop_copies(restated, before, t, device, code, param, keep)
        n_restated += _drop_restated_states(after, before, resumed, t, device, code, param, keep)
        rewound_s = int(param[first:past].max())
        read.append((resumed, rewound_s, len(superseded), n_restated))
    return (keep if not keep.all() else None), read, unread


def _drop_copies(restated, before, t, device, code, param, keep) -> int:
    """Re-stated rows that are exact copies of kept rows: dropped; how many."""
    rows = restated[code[restated] != RUNTIME_RECOVERY]
    if not len(rows):
        return 0
    near = before[t[before] >= t[rows].min()]
    seen = set(zip(t[near].tolist(), device[near].tolist(), code[near].tolist(), param[near].tolist(), strict=True))
    copies = [i for i in rows.tolist() if (int(t[i]), int(device[i]), int(code[i]), int(param[i])) in seen]
    keep[copies] = False
    return len(copies)


def _drop_restated_states(after, before, resumed, t, device, code, param, keep) -> int:
    """Each detector's first event in the replay, when it comes at the resume time and repeats the state its
    latest kept event left it in: dropped; how many."""
    det = np.isin(code, DETECTOR_STATES)
    first_seen: set[tuple[int, int]] = set()
    at_resume = []
    for i in after[det[after] & keep[after]].tolist():
        key = (int(device[i]), int(param[i]))
        if key in first_seen:
            continue
        first_seen.add(key)
        if t[i] == resumed:
            at_resume.append(i)
    if not at_resume:
        return 0
    kept = before[det[before]]
    state: dict[tuple[int, int], tuple[int, int]] = {}  # (device, channel) -> (time, code) of its latest kept
    for i in kept.tolist():
        key = (int(device[i]), int(param[i]))
        if key not in state or t[i] >= state[key][0]:
            state[key] = (int(t[i]), int(code[i]))
    again = [i for i in at_resume if (s := state.get((int(device[i]), int(param[i])))) and s[1] == code[i]]
    keep[again] = False
    return len(again)


def recovery_warnings(read: list[tuple[str, int, int, int]], unread: list[tuple[str, list[str]]]) -> list[str]:
    """One line per recovery read (what was left out and why), one per marker left as it is."""
    out = [f"recovery at {at} (a live run's simulator crashed {rewound} s later; event 240): {left_out} events "
           f"of the rewound span (after {at}) were logged before the crash and are left out, replaced by the "
           f"replay the run went on with" + (f"; {restated} events it re-states read once" if restated else "")
           for at, rewound, left_out, restated in read]
    for at, names in unread[:5]:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        out.append(f"event 240 at {at} (device {shown}), signalwise's live-run recovery marker, is not followed "
                   "by the begin greens a live run re-states after it: the log is read as it is (a live run's log "
                   "sorted by time, as the store returns it, counts the rewound span twice: read its events.csv "
                   "as written)")
    if len(unread) > 5:
        out.append(f"{len(unread) - 5} more events 240 not in a live run's shape, read as they are")
    return out
