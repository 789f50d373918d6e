"""ATSPM measures of a `compare` directory, per controller over its seeds: what an engineer reports beside the delay.

Each run of the comparison gives one figure per measure, over all its signals and phases (arrivals on green,
split failures and phase wait are counts and durations, so they add up across phases before they divide); the
controllers' figures are then means with 95 % intervals over the seeds, against the comparison's baseline with
the paired t-test over the seeds both ran, as `signalwise compare` reports the delay (`analytics.stats`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..stats import compare, mean_ci, p_text
from .compute import compute_all
from .inputs import read_detectors, read_event_log, with_stopbar_yellow_red

#: (name, unit, lower is better, what it is): the figures of one run
FIGURES = (
    ("arrivals_on_green_pct", "%", False, "arrivals on green, of all arrivals at the advance detectors"),
    ("split_failure_pct", "%", True, "cycles with a split failure (green and red occupancy >= 80 %), of all cycles"),
    ("split_failures", "cycles", True, "cycles with a split failure, all signals and phases"),
    ("phase_wait_s", "s", True, "mean wait of a called phase for its green"),
)
MEASURES = ("arrival_on_green", "split_failures", "phase_wait")


def run_figures(run_dir: Path, options: dict) -> dict[str, float]:
    """One run's figures (NaN where it has nothing to measure: no advance detector, no cycle, no call)."""
    config = with_stopbar_yellow_red(read_detectors(run_dir / "detectors.csv"))
    tables = compute_all(read_event_log(run_dir / "events.csv"), config, only=MEASURES, **options).tables
    aog, sf, wait = tables["arrival_on_green"], tables["split_failures"], tables["phase_wait"]

    def share(part: float, whole: float) -> float:
        return 100.0 * part / whole if whole else math.nan

    waits = float(wait["Count"].sum()) if len(wait) else 0.0
    return {
        "arrivals_on_green_pct": share(float(aog["Green_Actuations"].sum()), float(aog["Total_Actuations"].sum())),
        "split_failure_pct": share(float(sf["Split_Failure"].sum()), float(sf["Cycles"].sum())),
        "split_failures": float(sf["Split_Failure"].sum()),
        "phase_wait_s": float((wait["Mean_Wait_s"] * wait["Count"]).sum()) / waits if waits else math.nan,
    }


@dataclass(frozen=True)
class ControllerRow:
    controller: str
    figure: str
    unit: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    change_pct: float  # against the baseline; NaN for the baseline itself
    p_value_paired: float


def figures_by_controller(compare_dir: Path, runs: list[Path], options: dict,
                on_run: Callable[[Path], None] | None = None) -> tuple[list[ControllerRow], list[str]]:
    """Every run's figures, then per controller (in the comparison's order) mean ± 95 % CI over its seeds and
    the paired change against the baseline; warnings name the runs left out and why."""
    summary = json.loads((compare_dir / "summary.json").read_text())
    per_run: dict[tuple[str, int], dict[str, float]] = {}
    warnings = []
    for run in runs:
        meta = json.loads((run / "run.json").read_text())
        if not (run / "detectors.csv").exists() or not (run / "events.csv").exists():
            warnings.append(f"{run.name}: no detectors.csv or events.csv (a lean record?): left out")
            continue
        per_run[meta["controller"], int(meta["seed"])] = run_figures(run, options)
        if on_run is not None:
            on_run(run)
    controllers = [c for c in summary["controllers"] if any(k[0] == c for k in per_run)]
    baseline = summary["baseline"]
    rows = []
    def values(name: str, controller: str, seeds: list[int] | None = None) -> list[tuple[int, float]]:
        """(seed, figure) of the controller's runs that measured it, in seed order."""
        return [(s, per_run[c, s][name]) for c, s in sorted(per_run) if c == controller
                and (seeds is None or s in seeds) and not math.isnan(per_run[c, s][name])]

    for name, unit, _lower, _what in FIGURES:
        for c in controllers:
            own = values(name, c)
            if not own:
                continue
            ci = mean_ci([v for _s, v in own])
            change, p = math.nan, math.nan
            if c != baseline:
                both = sorted({s for s, _v in own} & {s for s, _v in values(name, baseline)})
                if both:
                    cmp = compare([v for _s, v in values(name, baseline, both)],
                                  [v for _s, v in values(name, c, both)], paired=True)
                    change, p = cmp.change_pct, cmp.p_value_paired
            rows.append(ControllerRow(c, name, unit, ci.mean, ci.ci_low, ci.ci_high, ci.n, change, p))
    return rows, warnings


def write_csv(rows: list[ControllerRow], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["controller", "figure", "unit", "mean", "ci_low", "ci_high", "n", "change_pct",
                    "p_value_paired"])
        for r in rows:
            w.writerow([r.controller, r.figure, r.unit, *(_cell(v) for v in (r.mean, r.ci_low, r.ci_high)), r.n,
                        _cell(r.change_pct), _cell(r.p_value_paired)])


def _cell(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.4g}"


def table_text(rows: list[ControllerRow], baseline: str) -> list[str]:
    """The rows as lines a person reads: figure, then each controller's mean ± half-width, change and p."""
    lines = []
    for name, unit, lower_better, what in FIGURES:
        mine = [r for r in rows if r.figure == name]
        if not mine:
            continue
        lines.append(f"{name} ({unit}): {what}")
        for r in mine:
            spread = "n/a" if math.isnan(r.ci_low) else f"{(r.ci_high - r.ci_low) / 2:.1f}"
            text = f"  {r.controller:<16s} {r.mean:8.1f} ± {spread} (n={r.n})"
            if r.controller != baseline and not math.isnan(r.change_pct):
                p = p_text(r.p_value_paired)
                verdict = ("better" if (r.change_pct < 0) == lower_better else "worse") \
                    if r.p_value_paired < 0.05 else ""
                text += f"  {r.change_pct:+.1f} % vs {baseline}, paired {p}" + (f" ({verdict})" if verdict else "")
            lines.append(text)
    return lines
