"""PNG charts engineers know: Purdue Coordination Diagram, split monitor,
arrivals on green by hour, split failures, pedestrian delay. One file per device and chart.

How they read: every axis that counts or measures starts at 0; a phase has
one colour in every panel and chart (`PHASE_COLOURS`, never the green,
yellow or red of signal states); signal states and terminations keep theirs;
the time axis reads HH:MM and says which day, in the log's own (controller
local) time; phases are named after their movements when the run's signal
model says them (`phase_labels.py`), else by number; thresholds are labelled;
the time axis spans the log (its first event to its last, to the minute), and
a time bin the log covers only in part (`Complete` false in its table: the
log starts or ends inside it, or a data gap or an interruption touches it) is
hatched (split failures) or drawn lighter (bars), never like a whole one.

Coordination plans, as UDOT ATSPM shows them: on every chart of a device whose log has a Coord Pattern Change
(131), each plan span of `plans` (`plans.py`) is a band along the time axis, light blue and light grey in turn,
with a dashed divider where the plan changes, and a label over it naming the plan
(`Plan 1 (C 90 s, off 12 s)`, `Free`, `Unknown` before the device's first 131) with the chart's own figure for
that plan from the `plans` table: arrivals on green on the PCD and arrivals on green by hour, split failures on the split failures chart,
pedestrians and their mean delay on the pedestrian delay chart; the split monitor names the plan only (the
table has no split figure per plan). A label too wide for its span is shortened, then left out, never drawn
over its neighbour's. A device without any 131 has one `unknown` span, the whole log: it gets no band, since a
band over the whole axis labelled `Unknown` on every panel says nothing a reader can use, and the charts of a
run of a controller that logs no plan stay as they are.

Timing revisions (a live run's timing changed at run time, `timing_revisions`): a 131 naming a revision is no
plan (`plans.py`), so it starts no band. Each is a dark dashed vertical line at the green that took it, on every
chart of its device, and the split monitor's legend names it: splits measured after it ran under the changed
timing (a longer minimum green, yellow or all-red shows in the splits), within the plan in force.

How they stay fast: they are drawn with Pillow by `raster.py` (markers
stamped for all points in one call, step lines as one polyline), a few
milliseconds a chart; `signalwise atspm` draws them in its second process
(`worker.py`) beside the measures they draw from. By default every device is charted up to
`DEFAULT_CHART_DEVICES` (25), and the first 25 of a larger network (`devices="all"` for every one).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .plans import PLAN_NAMES
from .raster import DPI, PARTIAL_HATCH, TICK_PX, Axes, Plot, font

#: devices charted unless told otherwise (`signalwise atspm --chart-devices`): every device of a corridor or a
#: district, and the first 25 of a larger network, whose charts would take a while: about 90 ms a device (its
#: five charts) on a 15-30-minute log, so 25 take about 2.3 s (100 devices of a 15-minute `grid10x10` run: 7.9 s);
#: a warning names how many were left out
DEFAULT_CHART_DEVICES = 25
CHART_KINDS = ("pcd", "split_monitor", "aog_by_hour", "split_failures", "ped_delay")

#: one colour per phase number, in every chart; none is a signal-state green, yellow or red
PHASE_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
                 "#393b79", "#637939", "#7b4173", "#3182bd")
SIGNAL_COLOURS = {"green": "#2ca02c", "yellow": "#e6b800", "red": "#d62728", "arrival": "#000000"}
#: terminations as UDOT's split monitor draws them: (marker, colour)
TERMINATIONS = {"GapOut": ("o", "#2ca02c"), "MaxOut": ("^", "#d62728"), "ForceOff": ("s", "#1f77b4"),
                "Unknown": ("x", "#7f7f7f")}
THRESHOLD_LABEL = "80 % split-failure threshold"
PARTIAL_BIN_LABEL = "hatched: partial bin (Complete false)"
NOTE_IN = 0.18  # the height of a note line under a chart's title
#: under a run's split monitor: what a force-off means in a run (only `coordinated` holds a common cycle and offset)
RUN_FORCE_OFF_NOTE = ("force-off: a timed plan's split end (a coordinated run's: its plan's force-off point, on the "
                      "cycle and offset of plans.csv), or a green ended with demand left by the controller's choice "
                      "or the shield")
#: under a run's pedestrian delay chart: not the run summary's figure of the same name
RUN_PED_NOTE = ("each pedestrian's wait at this crossing for the walk; not the run summary's pedestrian delay, "
                "SUMO's time lost over each pedestrian's whole walk")
RECALL_NOTE = ("recall: no push-button is logged; the delay is the HCM's (C - W)^2 / 2C for pedestrians "
               "arriving at random, per pedestrian cycle")
US_PER_MIN = 60_000_000
#: coordination plan bands: the tints of successive spans (UDOT ATSPM's light blue and light grey, over white)
PLAN_BAND_COLOURS = ("#e4eff7", "#eeeeee")
PLAN_DIVIDER = "#8c8c8c"
PLAN_DIVIDER_LABEL = "coordination plan change (131)"
#: a live run's timing revision (a 131 naming a revision, not a plan): a dark dashed line where a green took it
REVISION_LINE = "#222222"
REVISION_LEGEND = "timing revision (131 naming it): the timing changed at run time, from this green on"
#: the row of plan labels over a panel, in inches
PLAN_ROW_IN = 0.18


def phase_colour(phase: int) -> str:
    return PHASE_COLOURS[(int(phase) - 1) % len(PHASE_COLOURS)]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


# ---------------------------------------------------------------------------
# Data: per device, plain numpy arrays (cheap to send to a worker process)
# ---------------------------------------------------------------------------


def _minutes(ts, day0_us: int) -> np.ndarray:
    """Datetime column -> minutes since midnight of the log's first day."""
    return (np.asarray(ts, "datetime64[us]").astype(np.int64) - day0_us) / US_PER_MIN


def _split_by_device(df, devices: list[str]) -> dict[str, np.ndarray]:
    """Row indices of `df` per device (only those in `devices`), in row order."""
    if df is None or df.empty or "DeviceId" not in df:
        return {}
    import pandas as pd

    codes = pd.Categorical(df["DeviceId"].astype(str), categories=devices).codes
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(devices) + 1))
    return {d: order[bounds[i]:bounds[i + 1]] for i, d in enumerate(devices) if bounds[i + 1] > bounds[i]}


#: columns a chart reads where a table has them: a table without `Complete` has every bin read as whole, a PCD
#: without `Approach`/`Direction` (one from before they were kept) no approach
OPTIONAL_COLUMNS = ("complete", "approach", "direction")
#: how the PCD is split into panels (`signalwise atspm --pcd-by`): a panel per phase, or per phase and approach
PCD_BY = ("phase", "approach")


def _cols(df, rows: np.ndarray, names: dict[str, str], day0_us: int) -> dict[str, np.ndarray]:
    out = {}
    for key, col in names.items():
        if key in OPTIONAL_COLUMNS and col not in df:
            out[key] = np.ones(len(rows), bool) if key == "complete" else np.full(len(rows), "", dtype=object)
            continue
        values = df[col].to_numpy()[rows]
        out[key] = _minutes(values, day0_us) if key in ("x", "x_start", "x_end") else values
    return out


def chart_data(results, devices: list[str]) -> tuple[dict, dict]:
    """({device: {chart kind: arrays}}, the time axis) for the devices to chart."""
    t = results.tables
    span = getattr(results, "span_us", None)
    if span is None:
        stamps = [df["TimeStamp"] for df in t.values() if df is not None and len(df) and "TimeStamp" in df]
        if not stamps:
            return {}, {}
        span = (min(int(np.asarray(s.min(), "datetime64[us]").astype(np.int64)) for s in stamps),
                max(int(np.asarray(s.max(), "datetime64[us]").astype(np.int64)) for s in stamps))
    day0_us = span[0] // (1440 * US_PER_MIN) * (1440 * US_PER_MIN)
    bin_min = getattr(results, "bin_min", 15)
    # the log's span, its first event to its last, to the whole minute: a 20-minute run's axis ends at 00:20, not
    # at the end of the bin it ends inside (that bin is drawn as far as the log goes, and marked incomplete)
    start = math.floor((span[0] - day0_us) / US_PER_MIN)
    end = max(math.ceil((span[1] - day0_us) / US_PER_MIN), start + 1)
    axis = {"day0": str(np.datetime64(day0_us, "us").astype("datetime64[D]")), "start": start, "end": end,
            "bin_min": bin_min}
    per = {d: {} for d in devices}
    specs = {
        "pcd": ("pcd", {"x": "CycleStart", "phase": "Phase", "y": "TimeInCycle_s", "signal": "Signal",
                        "approach": "Approach", "direction": "Direction"}),
        "pcd_cycles": ("pcd_cycles", {"x": "TimeStamp", "phase": "Phase", "green": "GreenStart_s",
                                      "yellow": "YellowStart_s", "cycle": "Cycle_s"}),
        "split_monitor": ("split_monitor", {"x": "TimeStamp", "phase": "Phase", "split": "Split_s",
                                            "term": "Termination"}),
        "aog": ("arrival_on_green", {"x": "TimeStamp", "phase": "Phase", "green": "Green_Actuations",
                                     "total": "Total_Actuations", "complete": "Complete"}),
        "split_failures": ("split_failures", {"x": "TimeStamp", "phase": "Phase", "failures": "Split_Failure",
                                              "green_occ": "Green_Occupancy", "red_occ": "Red_Occupancy",
                                              "complete": "Complete"}),
        "ped_delay": ("ped_delay", {"x": "TimeStamp", "phase": "Phase", "method": "Method", "count": "Count",
                                    "mean": "Mean_PedDelay_s", "max": "Max_PedDelay_s", "complete": "Complete"}),
        "plans": ("plans", {"x": "Start", "x_end": "End", "plan": "Plan", "name": "PlanName", "cycle": "Cycle_s",
                            "offset": "Offset_s", "phase": "Phase", "cycles": "Cycles", "failures": "Split_Failures",
                            "arrivals": "Arrivals", "green": "Green_Arrivals", "peds": "Ped_Count",
                            "ped_mean": "Mean_PedDelay_s", "ped_method": "Ped_Method"}),
        "timing_revisions": ("timing_revisions", {"x": "TimeStamp", "revision": "Revision"}),
    }
    for key, (table, names) in specs.items():
        df = t.get(table)
        if df is None or df.empty or not {c for k, c in names.items() if k not in OPTIONAL_COLUMNS} <= set(df.columns):
            continue
        for dev, rows in _split_by_device(df, devices).items():
            per[dev][key] = _cols(df, rows, names, day0_us)
    return {d: v for d, v in per.items() if v}, axis


# ---------------------------------------------------------------------------
# Axes
# ---------------------------------------------------------------------------


def _time_ticks(axis: dict) -> tuple[np.ndarray, list[str], str]:
    """Tick positions (minutes), HH:MM labels, and the axis label naming the day."""
    start, end = axis["start"], axis["end"]
    span = max(end - start, 1.0)
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720) if span / s <= 7), 1440)
    ticks = np.arange(math.ceil(start / step) * step, end + 1e-9, step)
    multi_day = end > 1440
    day0 = np.datetime64(axis["day0"], "D")
    labels = []
    for m in ticks:
        hh, mm = divmod(int(round(m)) % 1440, 60)
        day = day0 + int(m // 1440)
        labels.append(f"{str(day)[5:]} {hh:02d}:{mm:02d}" if multi_day else f"{hh:02d}:{mm:02d}")
    if axis.get("run_clock"):  # a signalwise run's log: simulated time on a date it gives every run
        label = (f"date and time (simulated; the log starts on {axis['day0']})" if multi_day
                 else f"time of day (simulated; the log is dated {axis['day0']})")
    else:
        label = (f"date and time from {axis['day0']} (the log's local time)" if multi_day
                 else f"time of day, {axis['day0']} (the log's local time)")
    return ticks, labels, label


def _time_axis(ax: Axes, axis: dict, show_labels: bool = True) -> None:
    ticks, labels, label = _time_ticks(axis)
    ax.set_xticks(ticks, labels, show_labels)
    if show_labels:
        ax.set_xlabel(label)


def _top(values, floor: float, pad: float = 1.08, step: float | None = None) -> float:
    """The top of a y axis: the largest value padded, at least `floor`, rounded up to `step` (so that
    devices with similar data share a blitted background)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    top = max(floor, float(v.max()) * pad) if len(v) else floor
    return math.ceil(top / step) * step if step else top


def _phase_name(labels: dict, device: str, phase: int) -> str:
    return labels.get((device, int(phase)), f"phase {int(phase)}")


# ---------------------------------------------------------------------------
# Coordination plans along the time axis
# ---------------------------------------------------------------------------


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def plan_label(plan, name: str, cycle_s, offset_s) -> str:
    """A plan span's name on a chart: `Plan 1 (C 90 s, off 12 s)`, `Free`, `Unknown` (before the first 131)."""
    if _missing(plan):
        return "Unknown"
    timing = []
    if not _missing(cycle_s) and int(cycle_s) > 0:  # a Free plan logs cycle 0: no cycle to name
        timing.append(f"C {int(cycle_s)} s")
        if not _missing(offset_s):
            timing.append(f"off {int(offset_s)} s")
    return f"{name} ({', '.join(timing)})" if timing else str(name)


def plan_bands(data: dict, axis: dict) -> list[dict]:
    """The plan spans of one device, in time order, each {start, end (minutes, within the axis), plan, name,
    short, rows (its rows of the device's `plans` data)}; none for a device whose log has no 131 (its one span
    unknown) or without a `plans` table."""
    p = data.get("plans")
    if not p or not len(p["x"]) or all(_missing(v) for v in p["plan"]):
        return []
    bands = []
    for start in np.unique(p["x"]):  # a span per start: several 131s at one instant are one span
        rows = p["x"] == start
        first = int(np.flatnonzero(rows)[0])
        lo, hi = max(float(start), axis["start"]), min(float(p["x_end"][first]), axis["end"])
        if hi <= lo:
            continue
        plan = p["plan"][first]
        name = "Unknown" if _missing(plan) else str(p["name"][first])
        bands.append({"start": lo, "end": hi, "plan": None if _missing(plan) else int(plan), "short": name,
                      "name": plan_label(plan, name, p["cycle"][first], p["offset"][first]), "rows": rows})
    return bands


def _plan_rows(data: dict, band: dict, phase=None) -> np.ndarray:
    """The band's rows of the `plans` data, of one phase (None: all its phases)."""
    rows = band["rows"]
    return rows if phase is None else rows & (data["plans"]["phase"] == phase)


def _total(data: dict, key: str, rows: np.ndarray) -> float:
    return float(np.nansum(data["plans"][key][rows].astype(float)))


def _aog_stats(data: dict, band: dict, phase=None) -> list[str]:
    """Arrivals on green in the plan (one phase's, or all phases' together), longest wording first."""
    rows = _plan_rows(data, band, phase)
    n = _total(data, "arrivals", rows)
    if not n:
        return ["no arrivals"]
    pct = 100 * _total(data, "green", rows) / n
    whose = "" if phase is not None else "all phases, "
    return [f"AoG {pct:.0f} % ({whose}{int(n):,} arrivals)", f"AoG {pct:.0f} %"]


def _split_failure_stats(data: dict, band: dict) -> list[str]:
    rows = _plan_rows(data, band)
    cycles, failures = _total(data, "cycles", rows), _total(data, "failures", rows)
    if not cycles:
        return ["no cycles"]
    return [f"split failures {int(failures)} of {int(cycles)} cycles ({100 * failures / cycles:.0f} %)",
            f"SF {int(failures)}/{int(cycles)}"]


def _ped_stats(data: dict, band: dict, phase) -> list[str]:
    rows = _plan_rows(data, band, phase)
    n = int(_total(data, "peds", rows))
    if not n:
        return ["no pedestrians"]
    p = data["plans"]
    rows = rows & (p["peds"].astype(float) > 0)
    mean = float(np.average(p["ped_mean"][rows].astype(float), weights=p["peds"][rows].astype(float)))
    recall = "recall" in set(p["ped_method"][rows].tolist())
    who = f"{n:,} walk{'' if n == 1 else 's'}" if recall else f"{n:,} pedestrian{'' if n == 1 else 's'}"
    return [f"{who}, mean delay {mean:.0f} s", f"mean {mean:.0f} s"]


def _plan_texts(band: dict, stats: list[str]) -> list[str]:
    """A band's label, longest first: its name with the chart's figure, then shorter ways of saying it."""
    name, short = band["name"], band["short"]
    out = []
    if stats:
        out += [f"{name}: {stats[0]}", f"{short}: {stats[0]}", f"{short}: {stats[-1]}"]
    out += [name, short]
    if band["plan"] is not None and band["plan"] not in PLAN_NAMES:  # Free and Flash say it in their name
        out.append(f"P{band['plan']}")
    return list(dict.fromkeys(out))


def _draw_plans(ax: Axes, bands: list[dict], axis: dict, stats=None, labels: bool = True) -> None:
    """Tint each plan span of the panel, divide them, and label each (`stats(band)`: the chart's figures for
    the plan, longest first). Drawn first, under the data."""
    for i, band in enumerate(bands):
        ax.band(band["start"], band["end"], PLAN_BAND_COLOURS[i % len(PLAN_BAND_COLOURS)], band["name"])
    for band in bands:
        if band["start"] > axis["start"]:
            ax.vline(band["start"], PLAN_DIVIDER, PLAN_DIVIDER_LABEL)
    if labels:
        for band in bands:
            ax.span_label(_plan_texts(band, stats(band) if stats else []), band["start"], band["end"])


def revision_marks(data: dict) -> list[tuple[float, int]]:
    """(minutes, revision) of each timing revision of the device (`timing_revisions`), in time order."""
    r = data.get("timing_revisions")
    if not r or not len(r["x"]):
        return []
    return sorted((float(x), int(n)) for x, n in zip(r["x"], r["revision"], strict=True))


def revision_label(revision: int) -> str:
    """A timing revision's line on a chart (the panel's record names it)."""
    return f"timing revision {revision} (131)"


def _draw_revisions(ax: Axes, data: dict) -> None:
    """A dashed line where each timing revision of the device was taken: not a plan, so no band."""
    for x, revision in revision_marks(data):
        ax.vline(x, REVISION_LINE, revision_label(revision))


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def _pcd_title(labels: dict, device: str, phase: int, arr: dict | None, rows, approach: str | None = None) -> str:
    """A PCD panel's title: the phase's arrivals and their share on green; with `approach`, the approach's
    ("phase 1 (EB/WB through), approach J2_J1 (WB): 78 arrivals, 49 % on green")."""
    n = int(np.count_nonzero(rows)) if arr else 0
    where = ""
    if approach is not None:
        direction = next((str(d) for d in arr["direction"][rows] if d), "") if n else ""
        where = f", approach {approach}" + (f" ({direction})" if direction else "")
    title = f"{_phase_name(labels, device, phase)}{where}: {n:,} arrivals"
    if n:
        title += f", {100 * np.mean(arr['signal'][rows] == 'green'):.0f} % on green"
    return title


def _split_title(labels: dict, device: str, phase: int, splits: np.ndarray) -> str:
    """A split monitor panel's title: the phase's mean split over its cycles."""
    mean = np.nanmean(splits) if np.isfinite(splits).any() else float("nan")
    cycles = f"{len(splits)} cycle" + ("" if len(splits) == 1 else "s")
    return f"{_phase_name(labels, device, phase)}: mean split {mean:.1f} s over {cycles}"


def panel_titles(results, device: str, phase_labels: dict | None = None) -> dict[str, list[str]]:
    """{chart kind: the titles of its panels, one per phase} for the PCD and the split monitor of `device`,
    worded as the PNG prints them: the figures a text alternative of the image gives (the dashboard's alt
    text, `GET /api/v1/live/atspm/{chart}`'s `X-Chart-Figures`)."""
    items, _axis, _notes = plan_charts(results, [device])
    labels = phase_labels or {}
    data = next((d for _kind, dev, d in items if dev == device), {})
    out = {}
    arr, cyc = data.get("pcd"), data.get("pcd_cycles")
    phases = sorted(set(arr["phase"].tolist() if arr else []) | set(cyc["phase"].tolist() if cyc else []))
    if phases:
        out["pcd"] = [_pcd_title(labels, device, ph, arr, arr["phase"] == ph if arr else None) for ph in phases]
    s = data.get("split_monitor")
    if s:
        out["split_monitor"] = [_split_title(labels, device, ph, s["split"][s["phase"] == ph].astype(float))
                                for ph in sorted(set(s["phase"].tolist()))]
    return out


def _tick_reach_in(axis: dict) -> float:
    """How far past a panel's edge its time-axis labels reach, in inches: each is centred on its tick, so the
    first and last stand out by half the widest label (a few pixels more for air)."""
    _ticks, labels, _label = _time_ticks(axis)
    widest_px = max((font(TICK_PX).getlength(label) for label in labels), default=0.0)
    return (widest_px / 2 + 4) / DPI


def _panels(n: int, axis: dict, axes_h_in: float, cols: int = 2, width_in: float = 12.0,
            legend: bool = False, right_in: float = 0.25, notes: int = 0, plan_row: bool = False
            ) -> tuple[Plot, list[Axes]]:
    """A figure of `n` panels sharing the time axis, laid out in inches (fixed margins, no layout pass);
    `right_in`: room on the right for per-panel legends. The right margin and the gap between columns
    leave room for the time labels at the panels' edges (`_tick_reach_in`: "06-05 00:15" on a log that
    crosses midnight is wider than the 0.25 in margin a time of day needs). `plan_row`: a row over each panel,
    under its title, for the labels of the coordination plans."""
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    row_in = PLAN_ROW_IN if plan_row else 0.0
    # figure title, notes, legend, panel title, plan labels
    top_in = 0.4 + NOTE_IN * notes + (0.3 if legend else 0.0) + 0.3 + row_in
    reach_in = _tick_reach_in(axis)
    right_in = max(right_in, reach_in)
    bottom_in, gap_in, left_in, wgap_in = 0.6, 0.5 + row_in, max(0.75, reach_in), max(0.6, 2 * reach_in)
    height = top_in + bottom_in + rows * axes_h_in + (rows - 1) * gap_in
    axes_w_in = (width_in - left_in - right_in - (cols - 1) * wgap_in) / cols
    plot = Plot(width_in, height)
    axes = []
    for i in range(n):
        r, c = divmod(i, cols)
        left = left_in + c * (axes_w_in + wgap_in)
        top = top_in + r * (axes_h_in + gap_in)
        ax = plot.panel((left, top, left + axes_w_in, top + axes_h_in), (axis["start"], axis["end"]))
        ax.label_row_px = int(round(row_in * DPI))
        _time_axis(ax, axis, show_labels=i + cols >= n)  # time labels under the last panel of each column
        axes.append(ax)
    return plot, axes


def _marker(colour: str, marker: str = ".", size_px: int = 3) -> dict:
    return {"colour": colour, "marker": marker, "size_px": size_px}


def _line(colour: str, width_px: int = 1, dash: bool = False) -> dict:
    return {"colour": colour, "width_px": width_px, "dash": dash}


class Charts:
    """Draws the four charts of one device at a time."""

    def __init__(self, axis: dict, labels: dict | None = None, pcd_by: str = "phase"):
        self.axis = axis
        self.labels = labels or {}
        self.pcd_by = pcd_by

    # -- Purdue Coordination Diagram ---------------------------------------------------------
    def pcd(self, device: str, data: dict, path: Path) -> Path | None:
        arr, cyc = data.get("pcd"), data.get("pcd_cycles")
        phases = sorted(set(arr["phase"].tolist() if arr else []) | set(cyc["phase"].tolist() if cyc else []))
        if not phases:
            return None
        panels = pcd_panels(arr, phases, self.pcd_by)
        bands = plan_bands(data, self.axis)
        plot, axes = _panels(len(panels), self.axis, axes_h_in=1.6, legend=True, plan_row=bool(bands))
        lines = (("green", "begin green", SIGNAL_COLOURS["green"]), ("yellow", "begin yellow", SIGNAL_COLOURS["yellow"]),
                 ("cycle", "begin red", SIGNAL_COLOURS["red"]))
        for ax, (ph, approach) in zip(axes, panels, strict=True):
            a = arr["phase"] == ph if arr else None
            if approach is not None:
                a = a & (arr["approach"] == approach)
            c = cyc["phase"] == ph if cyc else None
            ax_ = arr["x"][a] if arr else np.empty(0)
            ay = arr["y"][a].astype(float) if arr else np.empty(0)
            cx = cyc["x"][c] if cyc else np.empty(0)
            cys = {key: (cyc[key][c].astype(float) if cyc else np.empty(0)) for key, _l, _c in lines}
            ax.set_ylim(0, _top(np.concatenate([ay, *cys.values()]), 30.0, 1.05, step=30.0))
            # a plan's figure is the phase's (`plans` has no approach): an approach's panel names the plan only
            _draw_plans(ax, bands, self.axis, (lambda band, ph=ph: _aog_stats(data, band, ph)) if approach is None
                        else None)
            _draw_revisions(ax, data)
            ax.scatter(ax_, ay, SIGNAL_COLOURS["arrival"], "arrival", ".", 3)
            for key, label, colour in lines:
                ax.steps(cx, cys[key], colour, label)
            ax.set_title(_pcd_title(self.labels, device, ph, arr, a, approach))
        plot.legend_top([("arrival (detector, projected to the stop bar)", _marker("#000000", ".", 5)),
                         ("begin green", _line(SIGNAL_COLOURS["green"])),
                         ("begin yellow", _line(SIGNAL_COLOURS["yellow"])),
                         ("begin red (end of cycle)", _line(SIGNAL_COLOURS["red"]))], y_in=0.55)
        plot.vertical_text(2, _middle(axes), "time in cycle (s)", 11)
        plot.title(f"Purdue Coordination Diagram: device {device}")
        return plot.save(path)

    # -- split monitor -----------------------------------------------------------------------
    def split_monitor(self, device: str, data: dict, path: Path) -> Path | None:
        s = data.get("split_monitor")
        if not s:
            return None
        phases = sorted(set(s["phase"].tolist()))
        notes = [RUN_FORCE_OFF_NOTE] if self.axis.get("run_clock") else []
        bands = plan_bands(data, self.axis)
        plot, axes = _panels(len(phases), self.axis, axes_h_in=1.5, legend=True, notes=len(notes),
                             plan_row=bool(bands))
        for ax, ph in zip(axes, phases, strict=True):
            m = s["phase"] == ph
            x, y, term = s["x"][m], s["split"][m].astype(float), s["term"][m]
            ax.set_ylim(0, _top(y, 10.0, 1.12, step=30.0))
            _draw_plans(ax, bands, self.axis)  # the plan's name: `plans` has no split figure per plan
            _draw_revisions(ax, data)
            for name, (marker, colour) in TERMINATIONS.items():
                k = term == name
                ax.scatter(x[k], y[k], colour, name, marker, 4)
            ax.set_title(_split_title(self.labels, device, ph, y))
        legend = [(term, _marker(colour, marker, 6)) for term, (marker, colour) in TERMINATIONS.items()]
        if revision_marks(data):  # splits after the line ran under another timing, within the same plan
            legend.append((REVISION_LEGEND, _line(REVISION_LINE, dash=True)))
        plot.legend_top(legend, y_in=0.55 + NOTE_IN * len(notes))
        for i, note in enumerate(notes):
            plot.note(note, y_in=0.34 + NOTE_IN * i)
        plot.vertical_text(2, _middle(axes), "split: green + yellow + red clearance (s)", 11)
        plot.title(f"Split monitor: device {device}")
        return plot.save(path)

    # -- arrivals on green by hour -----------------------------------------------------------
    def aog_by_hour(self, device: str, data: dict, path: Path) -> Path | None:
        d = data.get("aog")
        if not d or not len(d["x"]):
            return None
        bands = plan_bands(data, self.axis)
        plot, (ax,) = _panels(1, self.axis, axes_h_in=2.8, cols=1, width_in=10.0, right_in=2.6,
                              plan_row=bool(bands))
        ax.set_ylabel("arrivals on green (%)")
        ax.set_ylim(0, 100)
        _draw_plans(ax, bands, self.axis, lambda band: _aog_stats(data, band))
        _draw_revisions(ax, data)
        hour = np.floor(d["x"] / 60) * 60
        # each hour's bars stand in the part of it the log covers; an hour the log covers only in part (it starts
        # or ends inside it, or a bin of it is not complete) is drawn lighter
        hours = np.unique(hour)
        lo, hi = np.maximum(hours, self.axis["start"]), np.minimum(hours + 60, self.axis["end"])
        incomplete = {h for h in hours if not d["complete"][hour == h].astype(bool).all()}
        partial = (lo > hours) | (hi < hours + 60) | np.isin(hours, list(incomplete))
        phases = sorted(set(d["phase"].tolist()))
        legend = []
        for i, ph in enumerate(phases):
            m = d["phase"] == ph
            at = np.searchsorted(hours, hour[m])
            green = np.bincount(at, d["green"][m].astype(float), len(hours))
            total = np.bincount(at, d["total"][m].astype(float), len(hours))
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = np.where(total > 0, 100 * green / total, np.nan)
            width = (hi - lo) * 0.84 / len(phases)
            name, colour = _phase_name(self.labels, device, ph), phase_colour(ph)
            ax.bars(lo + (hi - lo) * 0.08 + i * width, pct, width, colour, name, partial=partial)
            legend.append((name, {"colour": colour, "bar": True}))
        if partial.any():
            spans = ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in zip(lo[partial], hi[partial], strict=True))
            legend.append((f"lighter: partial hour ({spans})" if partial.sum() <= 2 else "lighter: partial hour",
                           {"colour": "#555555", "bar": True, "light": True}))
        ax.legend_right(legend)
        plot.title(f"Arrivals on green by hour: device {device}")
        return plot.save(path)

    # -- split failures ----------------------------------------------------------------------
    def split_failures(self, device: str, data: dict, path: Path) -> Path | None:
        d = data.get("split_failures")
        if not d or not len(d["x"]):
            return None
        bands = plan_bands(data, self.axis)
        plot, (ax1, ax2) = _panels(2, self.axis, axes_h_in=1.9, cols=1, width_in=11.0, right_in=3.0,
                                   plan_row=bool(bands))
        ax2.label_row_px = 0  # the plans are labelled once, over the upper panel
        _draw_plans(ax1, bands, self.axis, lambda band: _split_failure_stats(data, band))
        _draw_revisions(ax1, data)
        _draw_plans(ax2, bands, self.axis, labels=False)
        _draw_revisions(ax2, data)
        _time_axis(ax1, self.axis, show_labels=True)
        ax1.set_ylabel("split failures per bin")
        ax2.set_ylabel("mean occupancy per bin (%)")
        step = self.axis["bin_min"]
        end = self.axis["end"]
        shaded = _incomplete_bins(d, step, self.axis)
        for a, b in shaded:
            ax1.shade(a, b, PARTIAL_BIN_LABEL)
            ax2.shade(a, b, PARTIAL_BIN_LABEL)
        phases = sorted(set(d["phase"].tolist()))
        top = max([1.0] + [float(np.nanmax(d["failures"][d["phase"] == ph].astype(float))) for ph in phases])
        ax1.set_ylim(0, math.ceil(top * 1.15) if top > 1 else 1.2, integer=True)
        ax2.set_ylim(0, 105)
        legend1 = []
        for ph in phases:
            m = d["phase"] == ph
            # each bin drawn over its width, the last one as far as the log goes
            x = np.append(d["x"][m], min(d["x"][m][-1] + step, end))
            name, colour = _phase_name(self.labels, device, ph), phase_colour(ph)
            f = d["failures"][m].astype(float)
            ax1.steps(x, np.append(f, f[-1]), colour, name, width_px=2)
            legend1.append((name, _line(colour, 2)))
            g, r = 100 * d["green_occ"][m].astype(float), 100 * d["red_occ"][m].astype(float)
            ax2.steps(x, np.append(g, g[-1]), colour, f"{name} green occupancy")
            ax2.steps(x, np.append(r, r[-1]), colour, f"{name} first 5 s of red occupancy", dash=True)
        ax2.hline(80, "#555555", THRESHOLD_LABEL)
        if shaded:
            legend1.append((PARTIAL_BIN_LABEL, {"colour": PARTIAL_HATCH, "hatch": True}))
        ax1.legend_right(legend1)
        ax2.legend_right([("green occupancy (solid, phase colour)", _line("#444444")),
                          ("first 5 s of red occupancy (dashed)", _line("#444444", dash=True)),
                          (THRESHOLD_LABEL, {"colour": "#555555", "dot": True})])
        plot.title(f"Split failures: device {device} ({step}-min bins)")
        return plot.save(path)

    # -- pedestrian delay --------------------------------------------------------------------
    def ped_delay(self, device: str, data: dict, path: Path) -> Path | None:
        """UDOT's pedestrian delay per bin and phase: each pedestrian's wait for the walk, the bin's mean (bar)
        and maximum (marker)."""
        d = data.get("ped_delay")
        if not d or not len(d["x"]):
            return None
        phases = sorted(set(d["phase"].tolist()))
        recall = "recall" in set(d["method"].tolist())
        notes = ([RUN_PED_NOTE] if self.axis.get("run_clock") else []) + ([RECALL_NOTE] if recall else [])
        bands = plan_bands(data, self.axis)
        plot, axes = _panels(len(phases), self.axis, axes_h_in=1.5, legend=True, notes=len(notes),
                             plan_row=bool(bands))
        step, end = self.axis["bin_min"], self.axis["end"]
        for ax, ph in zip(axes, phases, strict=True):
            m = d["phase"] == ph
            x, mean, top = d["x"][m], d["mean"][m].astype(float), d["max"][m].astype(float)
            count = d["count"][m].astype(float)
            methods = sorted(set(d["method"][m].tolist()))
            lo, hi = np.maximum(x, self.axis["start"]), np.minimum(x + step, end)
            ax.set_ylim(0, _top(top, 30.0, 1.1, step=30.0))
            _draw_plans(ax, bands, self.axis, lambda band, ph=ph: _ped_stats(data, band, ph))
            _draw_revisions(ax, data)
            colour = phase_colour(ph)
            ax.bars(lo + (hi - lo) * 0.1, mean, (hi - lo) * 0.8, colour, "mean delay per bin",
                    partial=~d["complete"][m].astype(bool))
            ax.scatter((lo + hi) / 2, top, "#000000", "longest delay in the bin", "^", 5)
            n = int(count.sum())
            if methods == ["recall"]:  # a row per walk shown, each the estimate for a pedestrian arriving at random
                title = f"{n:,} walk{'' if n == 1 else 's'} on recall, longest estimate {np.nanmax(top):.0f} s"
            else:
                title = f"{n:,} pedestrian{'' if n == 1 else 's'}, longest wait {np.nanmax(top):.0f} s"
            ax.set_title(f"{_phase_name(self.labels, device, ph)}: {title}")
        legend = [("mean delay per bin (bar, phase colour)", {"colour": "#555555", "bar": True}),
                  ("longest delay in the bin", _marker("#000000", "^", 6))]
        if any(not c for c in d["complete"].astype(bool)):
            legend.append(("lighter: a bin the log covers only in part", {"colour": "#555555", "bar": True,
                                                                          "light": True}))
        plot.legend_top(legend, y_in=0.55 + NOTE_IN * len(notes))
        for i, note in enumerate(notes):
            plot.note(note, y_in=0.34 + NOTE_IN * i)
        plot.vertical_text(2, _middle(axes), "pedestrian delay: wait for the walk (s)", 11)
        plot.title(f"Pedestrian delay (push-button or arrival to the walk): device {device}")
        return plot.save(path)

    def draw(self, kind: str, device: str, data: dict, out_dir: Path) -> Path | None:
        """One chart (`CHART_KINDS`) of one device, as out_dir/<kind>_<device>.png."""
        return getattr(self, kind)(device, data, Path(out_dir) / f"{kind}_{_safe(device)}.png")


def pcd_panels(arr: dict | None, phases: list[int], pcd_by: str = "phase") -> list[tuple[int, str | None]]:
    """The PCD's panels, (phase, approach or None): one per phase, or with `pcd_by` "approach" one per phase and
    approach its arrivals came from (a phase whose arrivals name no approach keeps one panel), as UDOT ATSPM
    draws a PCD per approach."""
    if pcd_by != "approach" or not arr:
        return [(ph, None) for ph in phases]
    out: list[tuple[int, str | None]] = []
    for ph in phases:
        named = sorted({str(a) for a in arr["approach"][arr["phase"] == ph] if a})
        out += [(ph, a) for a in named] or [(ph, None)]
    return out


def _hhmm(minutes: float) -> str:
    hh, mm = divmod(int(round(minutes)) % 1440, 60)
    return f"{hh:02d}:{mm:02d}"


def _incomplete_bins(d: dict, step: int, axis: dict) -> list[tuple[float, float]]:
    """The spans (minutes, within the axis) of the bins a device's table marks not `Complete`."""
    starts = np.unique(d["x"][~d["complete"].astype(bool)])
    return [(max(float(a), axis["start"]), min(float(a) + step, axis["end"])) for a in starts]


def _middle(axes: list[Axes]) -> float:
    return (min(ax.box[1] for ax in axes) + max(ax.box[3] for ax in axes)) / 2


# ---------------------------------------------------------------------------
# Which devices, and drawing them
# ---------------------------------------------------------------------------


def select_devices(all_devices: list[str], devices) -> tuple[list[str], list[str]]:
    """`devices`: None (the first DEFAULT_CHART_DEVICES), "all", a count, or device ids; -> (chosen, notes)."""
    notes = []
    if devices is None or isinstance(devices, int):
        cap = DEFAULT_CHART_DEVICES if devices is None else devices
        if len(all_devices) > cap:
            notes.append(f"charts drawn for the first {cap} of {len(all_devices)} devices "
                         "(--chart-devices all, a number, or device ids for others)")
        return all_devices[:cap], notes
    if devices == "all":
        return list(all_devices), notes
    wanted = [str(d) for d in devices]
    unknown = [d for d in wanted if d not in set(all_devices)]
    if unknown:
        shown = ", ".join(all_devices[:10]) + (f" and {len(all_devices) - 10} more" if len(all_devices) > 10 else "")
        notes.append(f"no data to chart for device(s) {', '.join(unknown)} (devices with data: {shown or 'none'})")
    return [d for d in wanted if d in set(all_devices)], notes


def plan_charts(results, devices=None) -> tuple[list[tuple[str, str, dict]], dict, list[str]]:
    """What to draw: ([(kind, device, data)], the time axis, notes) for the chosen devices."""
    t = results.tables
    all_devices = sorted({str(d) for df in t.values() if df is not None and "DeviceId" in df
                          for d in df["DeviceId"].unique()})
    chosen, notes = select_devices(all_devices, devices)
    data, axis = chart_data(results, chosen)
    items = [(kind, d, data[d]) for d in chosen if d in data for kind in CHART_KINDS]
    return items, axis, notes


def draw_charts(items, axis: dict, labels: dict, out_dir: Path, pcd_by: str = "phase") -> list[Path]:
    """Draw planned charts into out_dir; `pcd_by`: the PCD's panels per phase or per phase and approach."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = Charts(axis, labels, pcd_by)
    return [p for kind, device, data in items if (p := charts.draw(kind, device, data, out_dir)) is not None]


def write_charts(results, out_dir: Path, devices=None, phase_labels: dict | None = None, run_clock: bool = False
                 ) -> tuple[list[Path], list[str]]:
    """Charts for the chosen devices; returns (paths, notes). `run_clock`: the log is a signalwise run's, whose
    clock is simulated time on one fixed date, which the time axis then names as such."""
    items, axis, notes = plan_charts(results, devices)
    if axis:
        axis["run_clock"] = run_clock
    return (draw_charts(items, axis, phase_labels or {}, Path(out_dir)) if items else []), notes
