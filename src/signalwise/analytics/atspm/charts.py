"""PNG charts engineers know: Purdue Coordination Diagram, split monitor,
arrivals on green by hour, split failures. One file per device and chart."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MAX_DEVICES = 20
_COLORS = {"green": "#2ca02c", "yellow": "#e6b800", "red": "#d62728"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int):
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    return rows, cols


def pcd_chart(arrivals, cycles, device: str, path: Path) -> Path | None:
    a = arrivals[arrivals["DeviceId"] == device]
    c = cycles[cycles["DeviceId"] == device]
    phases = sorted(set(a["Phase"]) | set(c["Phase"]))
    if not phases:
        return None
    plt = _plt()
    rows, cols = _grid(len(phases))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.2 * rows), squeeze=False)
    for ax, ph in zip(axes.flat, phases, strict=False):
        cc = c[c["Phase"] == ph]
        aa = a[a["Phase"] == ph]
        ax.step(cc["TimeStamp"], cc["GreenStart_s"], where="post", color=_COLORS["green"], lw=1, label="begin green")
        ax.step(cc["TimeStamp"], cc["YellowStart_s"], where="post", color=_COLORS["yellow"], lw=1, label="begin yellow")
        ax.step(cc["TimeStamp"], cc["Cycle_s"], where="post", color=_COLORS["red"], lw=0.8, label="end of cycle")
        ax.scatter(aa["CycleStart"], aa["TimeInCycle_s"], s=3, c="black", label="arrival")
        aog = (aa["Signal"] == "green").mean() * 100 if len(aa) else float("nan")
        ax.set_title(f"phase {ph}: {len(aa)} arrivals, {aog:.0f}% on green", fontsize=9)
        ax.set_ylabel("time in cycle (s)")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(phases):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Purdue Coordination Diagram — {device}")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def split_monitor_chart(splits, device: str, path: Path) -> Path | None:
    s = splits[splits["DeviceId"] == device]
    phases = sorted(set(s["Phase"]))
    if not phases:
        return None
    plt = _plt()
    rows, cols = _grid(len(phases))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.0 * rows), squeeze=False)
    marks = {"GapOut": ("o", "#1f77b4"), "MaxOut": ("^", "#d62728"), "ForceOff": ("s", "#9467bd"),
             "Unknown": (".", "#555555")}
    for ax, ph in zip(axes.flat, phases, strict=False):
        p = s[s["Phase"] == ph]
        for term, (m, col) in marks.items():
            q = p[p["Termination"] == term]
            if len(q):
                ax.scatter(q["TimeStamp"], q["Split_s"], s=8, marker=m, c=col, label=term)
        ax.set_title(f"phase {ph}: mean split {p['Split_s'].mean():.1f} s over {len(p)} cycles", fontsize=9)
        ax.set_ylabel("split (s)")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper right")
    for ax in list(axes.flat)[len(phases):]:
        ax.axis("off")
    fig.suptitle(f"Split monitor — {device}")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def aog_by_hour_chart(aog, device: str, path: Path) -> Path | None:
    d = aog[aog["DeviceId"] == device]
    if d.empty:
        return None
    plt = _plt()
    d = d.assign(Hour=d["TimeStamp"].dt.floor("h"))
    g = d.groupby(["Hour", "Phase"])[["Green_Actuations", "Total_Actuations"]].sum().reset_index()
    g["AOG"] = 100 * g["Green_Actuations"] / g["Total_Actuations"]
    piv = g.pivot(index="Hour", columns="Phase", values="AOG")
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(piv.columns))
    x = np.arange(len(piv.index))
    for i, ph in enumerate(piv.columns):
        ax.bar(x + i * width, piv[ph].to_numpy(), width, label=f"phase {ph}")
    ax.set_xticks(x + 0.4 - width / 2, [h.strftime("%m-%d %H:%M") for h in piv.index], rotation=30, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("arrivals on green (%)")
    ax.set_title(f"Arrivals on green by hour — {device}")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def split_failures_chart(sf, device: str, path: Path) -> Path | None:
    d = sf[sf["DeviceId"] == device]
    if d.empty:
        return None
    plt = _plt()
    phases = sorted(set(d["Phase"]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for ph in phases:
        p = d[d["Phase"] == ph]
        ax1.plot(p["TimeStamp"], p["Split_Failure"], marker="o", ms=3, lw=1, label=f"phase {ph}")
        ax2.plot(p["TimeStamp"], 100 * p["Green_Occupancy"], lw=1, label=f"phase {ph} green")
        ax2.plot(p["TimeStamp"], 100 * p["Red_Occupancy"], lw=1, ls="--", label=f"phase {ph} first 5 s red")
    ax1.set_ylabel("split failures per bin")
    ax1.legend(fontsize=7, ncol=4)
    ax2.axhline(80, color="grey", lw=0.8, ls=":")
    ax2.set_ylabel("mean occupancy (%)")
    ax2.set_ylim(0, 105)
    ax2.legend(fontsize=6, ncol=4)
    ax1.set_title(f"Split failures — {device}")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_charts(results, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Charts for each device (up to MAX_DEVICES); returns (paths, notes)."""
    t = results.tables
    out_dir.mkdir(parents=True, exist_ok=True)
    devices = sorted({d for df in t.values() if "DeviceId" in df for d in df["DeviceId"].unique()})
    notes = []
    if len(devices) > MAX_DEVICES:
        notes.append(f"charts drawn for the first {MAX_DEVICES} of {len(devices)} devices")
        devices = devices[:MAX_DEVICES]
    paths = []
    for dev in devices:
        s = _safe(dev)
        if "pcd" in t and "pcd_cycles" in t:
            paths.append(pcd_chart(t["pcd"], t["pcd_cycles"], dev, out_dir / f"pcd_{s}.png"))
        if "split_monitor" in t:
            paths.append(split_monitor_chart(t["split_monitor"], dev, out_dir / f"split_monitor_{s}.png"))
        if "arrival_on_green" in t:
            paths.append(aog_by_hour_chart(t["arrival_on_green"], dev, out_dir / f"aog_by_hour_{s}.png"))
        if "split_failures" in t:
            paths.append(split_failures_chart(t["split_failures"], dev, out_dir / f"split_failures_{s}.png"))
    return [p for p in paths if p is not None], notes
