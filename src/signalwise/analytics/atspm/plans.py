"""Per-plan statistics: split failures, arrivals on green and pedestrian delay by coordination plan.

A device's plan comes from its Coord Pattern Change events (131, parameter = the plan number): each
plan holds from its 131 to the device's next 131, the last one to the device's last event.

A signalwise live run also logs a timing revision (a timing changed at run time) with a 131, naming the
revision, not a plan. On a device whose run's signal model lists timing revisions (`revision_devices`), the
131s are told apart by the rule the safety audit reads (`analytics.coordination_patterns.pattern_131s`: a
pattern's 131 comes with a 132 at its instant): a revision's 131 starts no plan span, and is a row of
`timing_revisions` instead (the time of the green that took it, and its number). Every 131 of any other
device (a field controller's log, a run without timing changes) is a plan. Before a
device's first 131 the log does not say which plan ran: that span is "unknown" (no plan number), and a
log without any 131 has one unknown span per device. Plan 254 is named "Free" and 255 "Flash", as UDOT
ATSPM names them; any other is "Plan N".

A plan's cycle and offset are those its Cycle Length Change (132) and Offset Length Change (133) give, as the
enumeration logs them with the pattern: the device's first 132 and first 133 in the span, whole seconds (a 132
of 255 with a 156 is 255 plus the 156's seconds); a span without one has none (an empty cell), as has the
unknown span.

The figures are those of the other tables, grouped by plan span instead of by bin: the split-failure
cycles (`measures.split_failure_cycles`, judged by the same rule), the PCD's arrivals
(`cycles.pcd`) and the pedestrian delays (`cycles.ped_delay`).

A log cut at a window's start (a store read with `start=`) lost the 131s before it: `PlansInForce` gives
the plan each device ran at that start, with its cycle and offset (its last 132 and 133 before the start),
read from the full history by the caller, so this stays a function of its inputs and the log itself holds only logged events (no synthetic 131 that other tables,
the input report or a device's first-event time would see).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ...core.types import FLASH_PATTERN, FREE_PATTERN, EventCode
from ..coordination_patterns import pattern_131s
from . import cycles as C
from . import measures as M
from .inputs import DetectorConfig, EventLog

#: Indiana hi-res enumeration (`core.types.EventCode`): Coord Pattern Change, parameter = the plan (pattern) number
PLAN_EVENT = int(EventCode.TIMING_PLAN_CHANGE)
#: Cycle Length Change and Offset Length Change, logged with a pattern's 131: its cycle and offset, whole seconds
CYCLE_EVENT, OFFSET_EVENT = int(EventCode.CYCLE_LENGTH_CHANGE), int(EventCode.OFFSET_LENGTH_CHANGE)
#: Additional Cycle Length Change: with a 132 of 255, the cycle's seconds above 255
EXTRA_CYCLE_EVENT = int(EventCode.ADDITIONAL_CYCLE_LENGTH_CHANGE)
#: plan numbers with a name of their own (UDOT ATSPM's); others are "Plan N"
PLAN_NAMES = {FREE_PATTERN: "Free", FLASH_PATTERN: "Flash"}
UNKNOWN = "unknown"

#: the `timing_revisions` table: each revision's 131 (the begin green that took it) and the revision's number
REVISION_COLUMNS = ["DeviceId", "TimeStamp", "Revision"]

COLUMNS = ["DeviceId", "Start", "End", "Plan", "PlanName", "Cycle_s", "Offset_s", "Phase", "Cycles", "Split_Failures",
           "Arrivals", "Green_Arrivals", "Percent_AOG", "Ped_Count",
           "Mean_PedDelay_s", "Max_PedDelay_s", "Ped_Method"]


@dataclass(frozen=True)
class PlansInForce:
    """The plan each device ran at a window's start: its last 131 before `start_us` (device id -> plan).

    A device not in `plans` had no 131 before the window: its span before its first 131 stays unknown.
    `timings`: device -> (cycle s, offset s) of that plan, from its last 132 (with a 156 where the 132 is 255)
    and 133 before the window, None where the history has none; the held span's own 132 or 133, if the
    window has one, comes first.
    """

    start_us: int
    plans: Mapping[str, int] = field(default_factory=dict)
    timings: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)


def plan_name(plan: int | None) -> str:
    if plan is None:
        return UNKNOWN
    return PLAN_NAMES.get(int(plan), f"Plan {int(plan)}")


def revision_131s(log: EventLog, revision_devices=()) -> np.ndarray:
    """Rows of `log` that are a timing revision's 131, not a plan's: on the devices of `revision_devices` (their
    signal model lists timing revisions), each 131 `coordination_patterns.pattern_131s` does not read as a
    pattern; none elsewhere. A boolean mask over the log's rows."""
    out = np.zeros(len(log), bool)
    index = {name: i for i, name in enumerate(log.devices)}
    wanted = [index[d] for d in revision_devices if d in index]
    if not wanted:
        return out
    sel = np.flatnonzero(np.isin(log.event, (PLAN_EVENT, CYCLE_EVENT)) & np.isin(log.device, wanted))
    dev = log.device[sel].astype(np.int64)
    for d in np.unique(dev):
        rows = sel[dev == d]
        codes = log.event[rows].astype(np.int64)
        patterns = pattern_131s(zip(log.time_us[rows].tolist(), codes.tolist(), log.param[rows].tolist(),
                                    strict=True))
        revision = codes == PLAN_EVENT
        revision[list(patterns)] = False
        out[rows[revision]] = True
    return out


def timing_revisions(log: EventLog, revision_devices=()):
    """Each timing revision's 131 (`revision_131s`): device, time (the begin green that took it) and revision
    number, in the log's order. A revision re-stated (a run started on it, a recovery) is a row each time."""
    import pandas as pd

    rows = np.flatnonzero(revision_131s(log, revision_devices))
    names = np.array(log.devices, dtype=object)
    return pd.DataFrame({"DeviceId": names[log.device[rows]] if len(rows) else np.empty(0, object),
                         "TimeStamp": pd.to_datetime(log.time_us[rows].astype(np.int64), unit="us"),
                         "Revision": log.param[rows].astype(np.int64)}, columns=REVISION_COLUMNS)


def plan_spans(log: EventLog, in_force: PlansInForce | None = None,
               revision_devices=()) -> list[tuple[int, int, int, int | None]]:
    """Each device's plan spans, in device then time order: (device index, start µs, end µs, plan or None).
    A timing revision's 131 (`revision_131s`: on `revision_devices` only) is no plan and starts no span.

    A span starts at its 131 and ends at the device's next 131 (its last event for the last span); the
    unknown span runs from the device's first event to its first 131 and is left out when that 131 is
    the device's first event. Several 131s at one instant: the highest plan number holds (the log is
    sorted by device, time, code and parameter, so the order they were logged in is not kept). A 131 repeating the
    plan in force still starts a span of its own, as every 131 does.

    With `in_force` (the log is a window from `in_force.start_us`), a device's span before its first 131
    in the window has the plan in force at the window's start and starts there; a 131 at that instant
    holds instead. ValueError if the log has an event before the window's start.
    """
    first, last = M.device_spans_us(log)
    if in_force is not None and len(log) and int(log.time_us.min()) < in_force.start_us:
        raise ValueError("the log has events before the window's start: the plans in force at the start "
                         "are for a log cut there")
    spans: list[tuple[int, int, int, int | None]] = []
    # the log is sorted by (device, time), log order kept
    sel = np.flatnonzero((log.event == PLAN_EVENT) & ~revision_131s(log, revision_devices))
    pdev, pt, pplan = log.device[sel].astype(np.int64), log.time_us[sel], log.param[sel].astype(np.int64)
    for d in range(len(log.devices)):
        if first[d] > last[d]:  # a device with no event
            continue
        mine = pdev == d
        t, plan = pt[mine], pplan[mine]
        if len(t):
            keep = np.ones(len(t), bool)
            keep[:-1] = t[1:] != t[:-1]  # same instant: the last after sorting, the highest plan number
            t, plan = t[keep], plan[keep]
        starts = [int(x) for x in t]
        plans: list[int | None] = [int(p) for p in plan]
        held = None if in_force is None else in_force.plans.get(log.devices[d])
        if held is not None and (not starts or starts[0] > in_force.start_us):
            starts.insert(0, int(in_force.start_us))
            plans.insert(0, int(held))
        elif not starts or starts[0] > first[d]:
            starts.insert(0, int(first[d]))
            plans.insert(0, None)
        ends = starts[1:] + [int(last[d])]
        spans.extend((d, s, e, p) for s, e, p in zip(starts, ends, plans, strict=True))
    return spans


def span_timings(log: EventLog, spans, in_force: PlansInForce | None = None) -> list[tuple[int | None, int | None]]:
    """(cycle s, offset s) of each of `spans` (`plan_spans`): its device's first 132 and first 133 from the span's
    start until the next span's (the last span: to its end, inclusive), None where there is none or the span's plan
    is unknown. A 132 of 255 adds a 156 logged at its instant (the cycle's seconds above 255). A span `in_force`
    held from a window's start without a 132 or 133 of its own takes the ones `in_force.timings` gives."""
    out: list[tuple[int | None, int | None]] = []
    dev = log.device.astype(np.int64)
    found = {}
    for code in (CYCLE_EVENT, OFFSET_EVENT, EXTRA_CYCLE_EVENT):
        sel = np.flatnonzero(log.event == code)  # in (device, time) order
        found[code] = (dev[sel], log.time_us[sel], log.param[sel].astype(np.int64))

    def first_in(code, d, start, end, inclusive):
        fdev, ft, fp = found[code]
        mine = (fdev == d) & (ft >= start) & ((ft <= end) if inclusive else (ft < end))
        at = np.flatnonzero(mine)
        return (int(ft[at[0]]), int(fp[at[0]])) if len(at) else None

    for k, (d, start, end, plan) in enumerate(spans):
        if plan is None:
            out.append((None, None))
            continue
        last = k + 1 == len(spans) or spans[k + 1][0] != d
        cycle, offset = first_in(CYCLE_EVENT, d, start, end, last), first_in(OFFSET_EVENT, d, start, end, last)
        cycle_s = None if cycle is None else cycle[1]
        if cycle is not None and cycle_s == 255:
            extra = first_in(EXTRA_CYCLE_EVENT, d, cycle[0], cycle[0], True)
            cycle_s += 0 if extra is None else extra[1]
        offset_s = None if offset is None else offset[1]
        if in_force is not None and start == in_force.start_us and in_force.plans.get(log.devices[d]) == plan:
            held_cycle_s, held_offset_s = in_force.timings.get(log.devices[d], (None, None))
            cycle_s = held_cycle_s if cycle_s is None else cycle_s
            offset_s = held_offset_s if offset_s is None else offset_s
        out.append((cycle_s, offset_s))
    return out


def _span_index(spans, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For rows (device index, time µs): the index in `spans` of the span in force at that time (the last
    span of the device starting at or before it; the device's first span for a time before it)."""
    out = np.full(len(t), -1, np.int64)
    if not spans or not len(t):
        return out
    sdev = np.array([s[0] for s in spans], np.int64)
    sstart = np.array([s[1] for s in spans], np.int64)
    for d in np.unique(dev):
        rows = np.flatnonzero(dev == d)
        at = np.flatnonzero(sdev == d)
        if not len(at):
            continue
        k = np.searchsorted(sstart[at], t[rows], "right") - 1
        out[rows] = at[np.maximum(k, 0)]
    return out


def _us(col) -> np.ndarray:
    return col.to_numpy("datetime64[us]").astype(np.int64)


def plan_summary(log: EventLog, config: DetectorConfig | None, bin_min: int = 15, latency_s: float = 0.0,
                 project: bool = True, red_time_s: int = 5, split_failure_rule: str = "atspm",
                 in_force: PlansInForce | None = None, revision_devices=()):
    """Per device, plan span and phase: split failures, arrivals on green and pedestrian delay.

    One row per span and phase of the device that has split-failure cycles, PCD arrivals or pedestrian
    delays anywhere in the log (a span where the phase had none reads 0 cycles / arrivals / pedestrians);
    a device with none of them has one row per span, with no phase. `bin_min` only selects the same
    split-failure cycles as the binned table (their last measured red stops at the end of the data's
    last bin). `in_force`: the plans in force at the start of a windowed log (`plan_spans`). `revision_devices`:
    the devices whose 131s may name a timing revision, which starts no span (`revision_131s`).
    """
    import pandas as pd

    spans = plan_spans(log, in_force, revision_devices)
    names = np.array(log.devices, dtype=object)
    index = {name: i for i, name in enumerate(log.devices)}
    parts = []  # per source: a frame indexed by (span index, phase)
    if config is not None:
        # A split-failure cycle counts in the plan in force at its begin green, UDOT ATSPM's time for a
        # cycle: the green (and the split) the cycle measures was timed by that plan, and a cycle
        # straddling a change then counts once, whole, in the plan that served it. The binned table's
        # time (the end of the measured red, under the atspm rule) would give a cycle to the next plan
        # whenever the change falls in its green or first seconds of red.
        (_, dev, _, phase, _, go, ro, green_us), _ = M.split_failure_cycles(log, config, bin_min, red_time_s)
        cyc = pd.DataFrame({"Span": _span_index(spans, dev.astype(np.int64), green_us), "Phase": phase,
                            "Split_Failures": M.split_failure_flags(go, ro, split_failure_rule)})
        parts.append(cyc.groupby(["Span", "Phase"]).agg(Cycles=("Split_Failures", "size"),
                                                        Split_Failures=("Split_Failures", "sum")))
        # A PCD arrival counts in the plan in force at the start (begin red) of its PCD cycle, so every
        # arrival of a cycle counts in the same plan, as the cycle is drawn in one plan of the diagram.
        arrivals, _ = C.pcd(log, config, latency_s, project)
        adev = arrivals["DeviceId"].map(index).to_numpy(np.int64)
        arr = pd.DataFrame({"Span": _span_index(spans, adev, _us(arrivals["CycleStart"])),
                            "Phase": arrivals["Phase"].to_numpy(), "Green": (arrivals["Signal"] == "green").to_numpy()})
        parts.append(arr.groupby(["Span", "Phase"]).agg(Arrivals=("Green", "size"), Green_Arrivals=("Green", "sum")))
    # A pedestrian delay counts in the plan in force when the pedestrian may walk (the row's time, its
    # begin walk): the walk that ends the wait was served by that plan.
    waits = C.ped_delay(log, config)
    if len(waits):
        wdev = waits["DeviceId"].map(index).to_numpy(np.int64)
        peds = C.aggregate_waits(waits.assign(Span=_span_index(spans, wdev, _us(waits["TimeStamp"]))),
                                 ["Span", "Phase", "Method"], "PedDelay_s")
        parts.append(peds.rename(columns={"Count": "Ped_Count", "Method": "Ped_Method"}).set_index(["Span", "Phase"]))
    per = {}
    if parts:
        joined = pd.concat(parts, axis=1)
        per = {(int(s), int(p)): rec for (s, p), rec in zip(joined.index, joined.to_dict("records"), strict=True)}
    phases: dict[int, set] = {}
    for s, p in per:
        phases.setdefault(spans[s][0], set()).add(p)
    timings = span_timings(log, spans, in_force)
    out = []
    for s, (d, start, end, plan) in enumerate(spans):
        cycle_s, offset_s = timings[s]
        for p in sorted(phases.get(d, ())) or [None]:
            r = {k: v for k, v in per.get((s, p), {}).items() if not (isinstance(v, float) and np.isnan(v))}
            arrivals = r.get("Arrivals", 0)
            out.append({
                "DeviceId": names[d], "Start": start, "End": end, "Plan": plan, "PlanName": plan_name(plan),
                "Cycle_s": cycle_s, "Offset_s": offset_s,
                "Phase": p, "Cycles": int(r.get("Cycles", 0)), "Split_Failures": int(r.get("Split_Failures", 0)),
                "Arrivals": int(arrivals), "Green_Arrivals": int(r.get("Green_Arrivals", 0)),
                # a share (0-1), as the binned arrival_on_green table gives it
                "Percent_AOG": float(M.percent_aog(r.get("Green_Arrivals", 0), arrivals)) if arrivals else np.nan,
                "Ped_Count": int(r.get("Ped_Count", 0)), "Mean_PedDelay_s": r.get("Mean_PedDelay_s", np.nan),
                "Max_PedDelay_s": r.get("Max_PedDelay_s", np.nan), "Ped_Method": r.get("Ped_Method"),
            })
    df = pd.DataFrame(out, columns=COLUMNS).astype(  # the same types when there is no row
        {c: np.int64 for c in ("Cycles", "Split_Failures", "Arrivals", "Green_Arrivals", "Ped_Count")}
        | {c: np.float64 for c in ("Percent_AOG", "Mean_PedDelay_s", "Max_PedDelay_s")})
    for c in ("Start", "End"):
        df[c] = pd.to_datetime(np.array([r[c] for r in out], np.int64), unit="us")
    for c in ("Plan", "Cycle_s", "Offset_s", "Phase", "Ped_Method"):  # plain ints, None where there is none: an empty CSV cell, a JSON null
        df[c] = pd.Series([r[c] for r in out], dtype=object)
    return df
