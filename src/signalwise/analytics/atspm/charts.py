"""PNG charts engineers know: Purdue Coordination Diagram, split monitor,
arrivals on green by hour, split failures. One file per device and chart.

How they read: every axis that counts or measures starts at 0; a phase has
one colour in every panel and chart (`PHASE_COLOURS`, never the green,
yellow or red of signal states); signal states and terminations keep theirs;
the time axis reads HH:MM and says which day, in the log's own (controller
local) time; phases are named after their movements when the run's signal
model says them (`phase_labels.py`), else by number; thresholds are labelled.

How they stay fast: the figures are plain Agg `Figure`s (no pyplot), built
once per chart kind and panel count and reused for every device — each
device only moves its data into the same few artists (one marker line per
series and panel, step lines, no scatter collections), with fixed margins
instead of tight_layout, at a modest dpi and a fast PNG compression level.
What changes per device (data, titles, per-device legends) is `animated`: the
rest of a figure (frames, ticks, labels, common legends) is drawn once per set of
y-limits and kept as a background that each device's data is blitted onto, which
is how matplotlib's own animations avoid redrawing text (a full draw spent most of
its time laying out and rasterising tick labels). Limits are rounded to a few
steps, so devices share backgrounds.
By default only the first `DEFAULT_CHART_DEVICES` devices are charted
(`devices="all"` for every one), and a `ChartWorker` forked at the start
draws part of them while the caller writes its tables.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import numpy as np

#: devices charted unless told otherwise (`signalwise atspm --chart-devices`)
DEFAULT_CHART_DEVICES = 4
DPI = 80
PNG_OPTIONS = {"compress_level": 1}
CHART_KINDS = ("pcd", "split_monitor", "aog_by_hour", "split_failures")

#: one colour per phase number, in every chart; none is a signal-state green, yellow or red
PHASE_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
                 "#393b79", "#637939", "#7b4173", "#3182bd")
SIGNAL_COLOURS = {"green": "#2ca02c", "yellow": "#e6b800", "red": "#d62728", "arrival": "#000000"}
#: terminations as UDOT's split monitor draws them: (marker, colour)
TERMINATIONS = {"GapOut": ("o", "#2ca02c"), "MaxOut": ("^", "#d62728"), "ForceOff": ("s", "#1f77b4"),
                "Unknown": ("x", "#7f7f7f")}
THRESHOLD_LABEL = "80 % split-failure threshold"
US_PER_MIN = 60_000_000


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


def _cols(df, rows: np.ndarray, names: dict[str, str], day0_us: int) -> dict[str, np.ndarray]:
    out = {}
    for key, col in names.items():
        values = df[col].to_numpy()[rows]
        out[key] = _minutes(values, day0_us) if key in ("x", "x_start") else values
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
    # from the start of the first bin to the end of the last
    start = math.floor((span[0] - day0_us) / US_PER_MIN / bin_min) * bin_min
    end = (math.floor((span[1] - day0_us) / US_PER_MIN / bin_min) + 1) * bin_min
    axis = {"day0": str(np.datetime64(day0_us, "us").astype("datetime64[D]")), "start": start, "end": end,
            "bin_min": bin_min}
    per = {d: {} for d in devices}
    specs = {
        "pcd": ("pcd", {"x": "CycleStart", "phase": "Phase", "y": "TimeInCycle_s", "signal": "Signal"}),
        "pcd_cycles": ("pcd_cycles", {"x": "TimeStamp", "phase": "Phase", "green": "GreenStart_s",
                                      "yellow": "YellowStart_s", "cycle": "Cycle_s"}),
        "split_monitor": ("split_monitor", {"x": "TimeStamp", "phase": "Phase", "split": "Split_s",
                                            "term": "Termination"}),
        "aog": ("arrival_on_green", {"x": "TimeStamp", "phase": "Phase", "green": "Green_Actuations",
                                     "total": "Total_Actuations"}),
        "split_failures": ("split_failures", {"x": "TimeStamp", "phase": "Phase", "failures": "Split_Failure",
                                              "green_occ": "Green_Occupancy", "red_occ": "Red_Occupancy"}),
    }
    for key, (table, names) in specs.items():
        df = t.get(table)
        if df is None or df.empty or not set(names.values()) <= set(df.columns):
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
    label = (f"date and time from {axis['day0']} (the log's local time)" if multi_day
             else f"time of day, {axis['day0']} (the log's local time)")
    return ticks, labels, label


def _time_axis(ax, axis: dict, show_labels: bool = True) -> None:
    from matplotlib.ticker import FixedFormatter, FixedLocator

    ticks, labels, label = _time_ticks(axis)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter(labels if show_labels else [""] * len(labels)))
    ax.set_xlim(axis["start"], axis["end"])
    if show_labels:
        ax.set_xlabel(label, fontsize=8)


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
# Figures, built once per kind and panel count, reused for every device
# ---------------------------------------------------------------------------


class _Panels:
    """A figure of `n` panels sharing the time axis, laid out in inches, with named artists per panel.

    `legend`: handles of one legend across the top (series common to every
    panel); `right_in`: room on the right for per-panel legends.
    """

    def __init__(self, n: int, axis: dict, axes_h_in: float, cols: int = 2, width_in: float = 12.0,
                 legend: list | None = None, right_in: float = 0.25):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        cols = max(1, min(cols, n))
        rows = (n + cols - 1) // cols
        top_in = 0.4 + (0.3 if legend else 0.0) + 0.3  # figure title, legend, panel title
        bottom_in, gap_in, left_in, wgap_in = 0.6, 0.5, 0.65, 0.6
        height = top_in + bottom_in + rows * axes_h_in + (rows - 1) * gap_in
        axes_w_in = (width_in - left_in - right_in - (cols - 1) * wgap_in) / cols
        self.fig = Figure(figsize=(width_in, height), dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=left_in / width_in, right=1 - right_in / width_in, top=1 - top_in / height,
                                 bottom=bottom_in / height, hspace=gap_in / axes_h_in, wspace=wgap_in / axes_w_in)
        grid = self.fig.subplots(rows, cols, squeeze=False)
        self.axes = list(grid.flat)[:n]
        for ax in list(grid.flat)[n:]:
            ax.set_visible(False)
        from matplotlib.ticker import MaxNLocator

        for i, ax in enumerate(self.axes):
            _time_axis(ax, axis, show_labels=i + cols >= n)  # time labels under the last panel of each column
            ax.tick_params(labelsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
            ax.set_ylim(bottom=0)
        self.title = self.fig.suptitle("", fontsize=11, y=1 - 0.12 / height, va="top", animated=True)
        for ax in self.axes:
            ax.title.set_animated(True)
        if legend:
            self.fig.legend(handles=legend, loc="upper center", ncol=len(legend), fontsize=8, frameon=False,
                            bbox_to_anchor=(0.5, 1 - 0.42 / height))
        self.artists: list[dict] = [{} for _ in range(n)]
        self.backgrounds: dict[tuple, object] = {}  # y-limits of every panel -> the drawn background

    def animated(self) -> list:
        """What changes per device, in drawing order."""
        found = [a for ax in self.axes for a in ax.get_children() if a.get_animated() and a.get_visible()]
        return sorted(found, key=lambda a: a.get_zorder()) + [self.title]

    def save(self, path: Path) -> Path:
        """Blit this device's artists onto the background for these y-limits (drawn on first use)."""
        from PIL import Image

        canvas = self.fig.canvas
        key = tuple(ax.get_ylim() for ax in self.axes)
        background = self.backgrounds.get(key)
        if background is None:
            canvas.draw()  # everything but the animated artists
            background = self.backgrounds[key] = canvas.copy_from_bbox(self.fig.bbox)
        else:
            canvas.restore_region(background)
        for artist in self.animated():
            self.fig.draw_artist(artist)
        width, height = canvas.get_width_height()
        # a chart has few colours: a 256-colour palette PNG looks the same, is half the size and is written in
        # less than half the time of the RGBA one (11 vs 26 ms for a PCD)
        rgba = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        rgba.convert("RGB").quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            path, format="png", dpi=(DPI, DPI), **PNG_OPTIONS)
        return path


def _marker(ax, label: str, colour: str, marker: str = ".", size: float = 3.0):
    return ax.plot([], [], ls="none", marker=marker, ms=size, color=colour, mec=colour, label=label,
                   animated=True)[0]


def _proxy(label: str, colour: str, **kw):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, label=label, **kw)


class Charts:
    """Draws the four charts for one device at a time, reusing figures between devices."""

    def __init__(self, axis: dict, labels: dict | None = None):
        self.axis = axis
        self.labels = labels or {}
        self._figs: dict[tuple[str, int], _Panels] = {}

    def _panels(self, kind: str, n: int, build):
        key = (kind, n)
        if key not in self._figs:
            self._figs[key] = build(n)
        return self._figs[key]

    # -- Purdue Coordination Diagram ---------------------------------------------------------
    def _build_pcd(self, n: int) -> _Panels:
        legend = [_proxy("arrival (detector, projected to the stop bar)", "k", ls="none", marker=".", ms=6),
                  _proxy("begin green", SIGNAL_COLOURS["green"]), _proxy("begin yellow", SIGNAL_COLOURS["yellow"]),
                  _proxy("begin red (end of cycle)", SIGNAL_COLOURS["red"])]
        p = _Panels(n, self.axis, axes_h_in=1.6, legend=legend)
        for ax, art in zip(p.axes, p.artists, strict=True):
            art["arrivals"] = _marker(ax, "arrival", SIGNAL_COLOURS["arrival"], size=2.5)
            for key, label in (("green", "begin green"), ("yellow", "begin yellow"), ("cycle", "begin red")):
                art[key] = ax.plot([], [], drawstyle="steps-post", lw=1.0, color=SIGNAL_COLOURS[
                    "red" if key == "cycle" else key], label=label, animated=True)[0]
        p.fig.supylabel("time in cycle (s)", fontsize=9, x=0.008)
        return p

    def pcd(self, device: str, data: dict, path: Path) -> Path | None:
        arr, cyc = data.get("pcd"), data.get("pcd_cycles")
        phases = sorted(set(arr["phase"].tolist() if arr else []) | set(cyc["phase"].tolist() if cyc else []))
        if not phases:
            return None
        p = self._panels("pcd", len(phases), self._build_pcd)
        for ax, art, ph in zip(p.axes, p.artists, phases, strict=True):
            a = arr["phase"] == ph if arr else None
            c = cyc["phase"] == ph if cyc else None
            ax_ = arr["x"][a] if arr else np.empty(0)
            ay = arr["y"][a].astype(float) if arr else np.empty(0)
            art["arrivals"].set_data(ax_, ay)
            cx = cyc["x"][c] if cyc else np.empty(0)
            tops = [ay]
            for key in ("green", "yellow", "cycle"):
                cy = cyc[key][c].astype(float) if cyc else np.empty(0)
                art[key].set_data(cx, cy)
                tops.append(cy)
            ax.set_ylim(0, _top(np.concatenate(tops), 30.0, 1.05, step=30.0))
            title = f"{_phase_name(self.labels, device, ph)}: {len(ay):,} arrivals"
            if len(ay):
                title += f", {100 * np.mean(arr['signal'][a] == 'green'):.0f} % on green"
            ax.set_title(title, fontsize=8)
        p.title.set_text(f"Purdue Coordination Diagram — {device}")
        return self._save(p, path)

    # -- split monitor -----------------------------------------------------------------------
    def _build_split_monitor(self, n: int) -> _Panels:
        legend = [_proxy(term, colour, ls="none", marker=m, ms=5) for term, (m, colour) in TERMINATIONS.items()]
        p = _Panels(n, self.axis, axes_h_in=1.5, legend=legend)
        for ax, art in zip(p.axes, p.artists, strict=True):
            for term, (m, colour) in TERMINATIONS.items():
                art[term] = _marker(ax, term, colour, marker=m, size=3.5)
        p.fig.supylabel("split: green + yellow + red clearance (s)", fontsize=9, x=0.008)
        return p

    def split_monitor(self, device: str, data: dict, path: Path) -> Path | None:
        s = data.get("split_monitor")
        if not s:
            return None
        phases = sorted(set(s["phase"].tolist()))
        p = self._panels("split_monitor", len(phases), self._build_split_monitor)
        for ax, art, ph in zip(p.axes, p.artists, phases, strict=True):
            m = s["phase"] == ph
            x, y, term = s["x"][m], s["split"][m].astype(float), s["term"][m]
            for name in TERMINATIONS:
                k = term == name
                art[name].set_data(x[k], y[k])
            ax.set_ylim(0, _top(y, 10.0, 1.12, step=30.0))
            mean = np.nanmean(y) if np.isfinite(y).any() else float("nan")
            ax.set_title(f"{_phase_name(self.labels, device, ph)}: mean split {mean:.1f} s over {len(y)} cycles",
                         fontsize=8)
        p.title.set_text(f"Split monitor — {device}")
        return self._save(p, path)

    # -- arrivals on green by hour -----------------------------------------------------------
    def aog_by_hour(self, device: str, data: dict, path: Path) -> Path | None:
        d = data.get("aog")
        if not d or not len(d["x"]):
            return None
        p = self._panels("aog_by_hour", 1, self._build_aog)
        ax = p.axes[0]
        for c in list(ax.containers):
            c.remove()
        hour = np.floor(d["x"] / 60) * 60
        phases = sorted(set(d["phase"].tolist()))
        width = 60 * 0.84 / len(phases)
        for i, ph in enumerate(phases):
            m = d["phase"] == ph
            hours, inv = np.unique(hour[m], return_inverse=True)
            green = np.bincount(inv, d["green"][m].astype(float), len(hours))
            total = np.bincount(inv, d["total"][m].astype(float), len(hours))
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = np.where(total > 0, 100 * green / total, np.nan)
            ax.bar(hours + 4.8 + i * width, pct, width, align="edge", color=phase_colour(ph),
                   label=_phase_name(self.labels, device, ph), animated=True)
        ax.set_ylim(0, 100)
        self._single_legend(p, ax.containers)
        p.title.set_text(f"Arrivals on green by hour — {device}")
        return self._save(p, path)

    def _build_aog(self, n: int) -> _Panels:
        # whole hours: the bars of an hour stand between its edges
        hours = {**self.axis, "start": math.floor(self.axis["start"] / 60) * 60,
                 "end": max(math.ceil(self.axis["end"] / 60), math.floor(self.axis["start"] / 60) + 1) * 60}
        p = _Panels(1, hours, axes_h_in=2.8, cols=1, width_in=10.0, right_in=2.6)
        p.axes[0].set_ylabel("arrivals on green (%)", fontsize=8)
        from matplotlib.ticker import FixedFormatter, FixedLocator

        n_hours = (hours["end"] - hours["start"]) // 60
        step = 60 * max(1, math.ceil(n_hours / 12))
        ticks = np.arange(hours["start"], hours["end"] + 1, step)
        p.axes[0].xaxis.set_major_locator(FixedLocator(ticks))
        p.axes[0].xaxis.set_major_formatter(FixedFormatter([f"{int(m) // 60 % 24:02d}:00" for m in ticks]))
        return p

    def _single_legend(self, p: _Panels, handles, ax=None) -> None:
        ax = ax or p.axes[0]
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.legend(handles=list(handles), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False).set_animated(True)

    # -- split failures ----------------------------------------------------------------------
    def _build_split_failures(self, n: int) -> _Panels:
        from matplotlib.ticker import MaxNLocator

        p = _Panels(2, self.axis, axes_h_in=1.9, cols=1, width_in=11.0, right_in=3.0)
        ax1, ax2 = p.axes
        _time_axis(ax1, self.axis, show_labels=True)
        ax1.set_ylabel("split failures per bin", fontsize=8)
        ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_ylabel("mean occupancy per bin (%)", fontsize=8)
        ax2.set_ylim(0, 105)
        ax2.axhline(80, color="#555555", lw=1.0, ls=":", label=THRESHOLD_LABEL)
        return p

    def split_failures(self, device: str, data: dict, path: Path) -> Path | None:
        d = data.get("split_failures")
        if not d or not len(d["x"]):
            return None
        p = self._panels("split_failures", 2, self._build_split_failures)
        ax1, ax2 = p.axes
        for ax in (ax1, ax2):
            for ln in list(ax.get_lines()):
                if not ln.get_label().startswith("80"):
                    ln.remove()
        step = self.axis["bin_min"]
        phases = sorted(set(d["phase"].tolist()))
        top = 1.0
        handles1, handles2 = [], []
        for ph in phases:
            m = d["phase"] == ph
            x = np.append(d["x"][m], d["x"][m][-1] + step)  # each bin drawn over its whole width
            name, colour = _phase_name(self.labels, device, ph), phase_colour(ph)
            f = d["failures"][m].astype(float)
            handles1.append(ax1.plot(x, np.append(f, f[-1]), drawstyle="steps-post", color=colour, lw=1.3,
                                     label=name, animated=True)[0])
            top = max(top, float(np.nanmax(f)) if len(f) else 0.0)
            g, r = 100 * d["green_occ"][m].astype(float), 100 * d["red_occ"][m].astype(float)
            ax2.plot(x, np.append(g, g[-1]), drawstyle="steps-post", color=colour, lw=1.2,
                     label=f"{name} green occupancy", animated=True)
            ax2.plot(x, np.append(r, r[-1]), drawstyle="steps-post", color=colour, lw=1.2, ls="--",
                     label=f"{name} first 5 s of red occupancy", animated=True)
        ax1.set_ylim(0, math.ceil(top * 1.15) if top > 1 else 1.2)
        handles2 = [_proxy("green occupancy (solid, phase colour)", "#444444", lw=1.2),
                    _proxy("first 5 s of red occupancy (dashed)", "#444444", lw=1.2, ls="--"),
                    next(ln for ln in ax2.get_lines() if ln.get_label().startswith("80"))]
        self._single_legend(p, handles1, ax1)
        self._single_legend(p, handles2, ax2)
        p.title.set_text(f"Split failures — {device} ({step}-min bins)")
        return self._save(p, path)

    def _save(self, p: _Panels, path: Path) -> Path:
        return p.save(path)

    def draw(self, kind: str, device: str, data: dict, out_dir: Path) -> Path | None:
        """One chart (`CHART_KINDS`) of one device, as out_dir/<kind>_<device>.png."""
        return getattr(self, kind)(device, data, Path(out_dir) / f"{kind}_{_safe(device)}.png")


# ---------------------------------------------------------------------------
# Which devices, and drawing them (here or in worker processes)
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
        notes.append(f"no data to chart for device(s) {', '.join(unknown)}")
    return [d for d in wanted if d in set(all_devices)], notes


#: rough cost of each chart (s, blitted onto a kept background) and of building its figure and drawing
#: its first background, to share the work out: a process pays the second once per chart kind
_COST = {"pcd": (0.07, 0.35), "split_monitor": (0.07, 0.35), "aog_by_hour": (0.06, 0.1),
         "split_failures": (0.07, 0.12)}


def plan_charts(results, devices=None) -> tuple[list[tuple[str, str, dict]], dict, list[str]]:
    """What to draw: ([(kind, device, data)], the time axis, notes) for the chosen devices."""
    t = results.tables
    all_devices = sorted({str(d) for df in t.values() if df is not None and "DeviceId" in df
                          for d in df["DeviceId"].unique()})
    chosen, notes = select_devices(all_devices, devices)
    data, axis = chart_data(results, chosen)
    items = [(kind, d, data[d]) for d in chosen if d in data for kind in CHART_KINDS]
    return items, axis, notes


def draw_charts(items, axis: dict, labels: dict, out_dir: Path) -> list[Path]:
    """Draw planned charts here, reusing one figure per chart kind and panel count."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = Charts(axis, labels)
    return [p for kind, device, data in items if (p := charts.draw(kind, device, data, out_dir)) is not None]


def share(items) -> tuple[list, list]:
    """Split planned charts between two drawing processes by their rough cost (longest first, to the
    less loaded; a process pays a chart kind's figure and first background once)."""
    load, kinds, out = [0.0, 0.0], [set(), set()], ([], [])
    for item in sorted(items, key=lambda it: -_COST[it[0]][0]):
        cost, build = _COST[item[0]]
        i = min((0, 1), key=lambda j: load[j] + cost + (0 if item[0] in kinds[j] else build))
        load[i] += cost + (0 if item[0] in kinds[i] else build)
        kinds[i].add(item[0])
        out[i].append(item)
    return out


def write_charts(results, out_dir: Path, devices=None, phase_labels: dict | None = None
                 ) -> tuple[list[Path], list[str]]:
    """Charts for the chosen devices, drawn here; returns (paths, notes)."""
    items, axis, notes = plan_charts(results, devices)
    return (draw_charts(items, axis, phase_labels or {}, Path(out_dir)) if items else []), notes


class ChartWorker:
    """A process that draws charts while its parent does other work (`signalwise atspm` writes tables).

    Start it first thing — it is forked before the parent imports pandas or pyarrow or starts a
    thread, so nothing half-locked is inherited — and it imports matplotlib and loads its fonts
    while the parent reads and computes. Given the charts, it forks a sibling from its warmed-up
    self and the two draw them (each its own chart kinds, `share`), so matplotlib is loaded once
    and the parent never loads it. Linux only (fork); elsewhere `start` returns None and the
    caller draws everything itself.
    """

    def __init__(self, ctx):
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="signalwise-charts")
        self._proc.start()
        child.close()
        self._pending = False

    @classmethod
    def start(cls) -> ChartWorker | None:
        if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
            return None
        import multiprocessing as mp

        try:
            return cls(mp.get_context("fork"))
        except OSError:
            return None

    def submit(self, items, axis: dict, labels: dict, out_dir: Path) -> None:
        self._conn.send((items, axis, labels, str(out_dir)))
        self._pending = True

    def result(self) -> tuple[list[Path], list[str]]:
        """(paths drawn, notes); waits for the drawing to finish."""
        if not self._pending:
            return [], []
        self._pending = False
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            return [], ["charts: the drawing process ended without drawing its share"]
        if status == "ok":
            return [Path(p) for p in payload], []
        return [], [f"charts: {payload}"]

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
        self._conn.close()


def _worker_main(conn) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    warm = Figure(figsize=(2, 1), dpi=DPI)  # fonts, Agg and the PNG encoder, before the data comes
    FigureCanvasAgg(warm)
    warm.subplots().set_title("0123456789 phase")
    warm.savefig(io.BytesIO(), format="png", dpi=DPI, pil_kwargs=PNG_OPTIONS)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg is None:
            return
        items, axis, labels, out_dir = msg
        try:
            conn.send(("ok", [str(p) for p in _draw_in_two(items, axis, labels, Path(out_dir))]))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it as a warning
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _draw_in_two(items, axis: dict, labels: dict, out_dir: Path) -> list[Path]:
    """Draw `items` here and in a sibling forked from this (warmed-up, single-threaded) process.

    A plain `os.fork`: this worker is a daemon process, which multiprocessing does not let have
    children of its own."""
    import multiprocessing as mp

    theirs, mine = share(items)
    if not theirs or not mine:
        return draw_charts(items, axis, labels, out_dir)
    reader, writer = mp.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the sibling: draw its share, report, and leave without running the parent's exit code
        code = 0
        try:
            writer.send(("ok", [str(p) for p in draw_charts(theirs, axis, labels, out_dir)]))
        except BaseException as exc:  # noqa: BLE001 - reported through the pipe
            writer.send(("error", f"{type(exc).__name__}: {exc}"))
            code = 1
        finally:
            os._exit(code)
    writer.close()
    try:
        drawn = draw_charts(mine, axis, labels, out_dir)
        try:
            status, payload = reader.recv()
        except EOFError:
            status, payload = "error", "the second drawing process ended without drawing its share"
    finally:
        os.waitpid(pid, 0)
    if status != "ok":
        raise RuntimeError(payload)
    return drawn + [Path(p) for p in payload]
