"""ATSPM measures of a `compare` directory, per controller over its seeds: what an engineer reports beside the delay.

Each run of the comparison gives one figure per measure, over all its signals and phases (arrivals on green,
split failures and phase wait are counts and durations, so they add up across phases before they divide); the
controllers' figures are then means with 95 % intervals over the seeds, against the comparison's baseline with
the paired t-test over the seeds both ran, as `signalwise compare` reports the delay (`analytics.stats`), and the
verdict of `analytics.verdict`, the one rule of `signalwise compare`.

Each figure is bounded: a count or a duration is never below 0, a share never outside 0-100 %. The interval is
Student's t (as `compare`'s) intersected with that range (`FIGURE_RANGE`), by the rule `signalwise compare` cuts
its own intervals with (`analytics.stats.bounded_interval`, whose docstring says why). The `ci_note` column says
where an end was cut.

The change of a figure that is itself a percent (arrivals on green, split failures as a share of cycles) is
given in percentage points, the difference of the two shares (`change`, `change_unit` "pp"): 26.4 % to 36.7 % is
+10.4 pp, which a relative change (+39.4 %, the `change_pct` column, kept for readers of older files) would let a
reader take for 39 points. The other figures' `change` is in their own unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..stats import NON_NEGATIVE, PERCENT, bounded_interval, compare, mean_ci, p_text
from ..verdict import judge
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
#: the values each figure can take: its interval is cut to them (the module's docstring says why)
FIGURE_RANGE = {"arrivals_on_green_pct": PERCENT, "split_failure_pct": PERCENT,
                "split_failures": NON_NEGATIVE, "phase_wait_s": NON_NEGATIVE}
#: a change of a figure in % is a difference in percentage points
POINTS = "pp"
#: the conditions comparison.csv repeats on every row, from the comparison's summary.json (as its summary.csv)
CSV_CONDITIONS = ("scenario", "demand_scale", "timing_profile", "begin_s", "end_s", "warmup_s", "seeds",
                  "seeds_vary")


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
    p_welch: float = math.nan  # Welch's t-test over the same seeds; NaN for the baseline itself
    verdict: str = ""  # "better" | "worse" (`analytics.verdict.judge`), else ""
    verdict_note: str = ""  # why there is no verdict ("no clear change", ...), else ""
    ci_note: str = ""  # where the t-interval was cut to the figure's range (`FIGURE_RANGE`)
    #: candidate mean - baseline mean over the seeds both ran, in `change_unit`, and its 95 % CI (the paired
    #: differences'); NaN for the baseline itself
    change: float = math.nan
    change_ci_low: float = math.nan
    change_ci_high: float = math.nan

    @property
    def change_unit(self) -> str:
        """The unit of `change`: percentage points for a figure in %, else the figure's own unit."""
        return change_unit(self.unit)


def change_unit(unit: str) -> str:
    """A change's unit: "pp" (percentage points) for a figure in %, else the figure's own."""
    return POINTS if unit == "%" else unit


def bounded_ci(name: str, low: float, high: float) -> tuple[float, float, str]:
    """The t-interval of figure `name` cut to the values it can take, and a note naming each end cut
    (`analytics.stats.bounded_interval`, the rule of `signalwise compare` too)."""
    return bounded_interval(low, high, FIGURE_RANGE[name])


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

    for name, unit, lower, _what in FIGURES:
        for c in controllers:
            own = values(name, c)
            if not own:
                continue
            ci = mean_ci([v for _s, v in own])
            change, p, welch, judged = math.nan, math.nan, math.nan, {}
            diff = diff_low = diff_high = math.nan
            if c != baseline:
                both = sorted({s for s, _v in own} & {s for s, _v in values(name, baseline)})
                if both:
                    cmp = compare([v for _s, v in values(name, baseline, both)],
                                  [v for _s, v in values(name, c, both)], paired=True)
                    change, p, welch = cmp.change_pct, cmp.p_value_paired, cmp.p_value
                    diff, diff_low, diff_high = cmp.diff, cmp.diff_ci_low, cmp.diff_ci_high
                    judged = judge(cmp, lower)
            low, high, note = bounded_ci(name, ci.ci_low, ci.ci_high)
            rows.append(ControllerRow(c, name, unit, ci.mean, low, high, ci.n, change, p, welch,
                                      judged.get("verdict", ""), judged.get("no_verdict", ""), note,
                                      diff, diff_low, diff_high))
    return rows, warnings


def write_csv(rows: list[ControllerRow], path: Path, conditions: dict | None = None) -> None:
    """One row per controller and figure; the columns `signalwise compare`'s summary.csv has besides (Welch's p,
    the verdict or why there is none, the conditions) after the first nine, which keep their places, then the
    change in its own unit with its CI and that unit (`CSV_CHANGE`: "pp" for a figure in %), after them all."""
    import csv

    cond = conditions or {}
    constants = [" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                 for v in (cond.get(k) for k in CSV_CONDITIONS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["controller", "figure", "unit", "mean", "ci_low", "ci_high", "n", "change_pct",
                    "p_value_paired", "p_welch", "verdict", "verdict_note", "ci_note", *CSV_CONDITIONS, *CSV_CHANGE])
        for r in rows:
            w.writerow([r.controller, r.figure, r.unit, *(_cell(v) for v in (r.mean, r.ci_low, r.ci_high)), r.n,
                        _cell(r.change_pct), _cell(r.p_value_paired), _cell(r.p_welch), r.verdict, r.verdict_note,
                        r.ci_note, *constants, *(_cell(v) for v in (r.change, r.change_ci_low, r.change_ci_high)),
                        r.change_unit])


#: the change's columns, after every older one: candidate mean - baseline mean, its 95 % CI, and their unit
CSV_CHANGE = ("change", "change_ci_low", "change_ci_high", "change_unit")


def _cell(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.4g}"


def table_text(rows: list[ControllerRow], baseline: str) -> list[str]:
    """The rows as lines a person reads: figure, then each controller's mean ± half-width, change and p."""
    lines = []
    for name, unit, _lower, what in FIGURES:
        mine = [r for r in rows if r.figure == name]
        if not mine:
            continue
        lines.append(f"{name} ({unit}): {what}")
        for r in mine:
            if r.ci_note:  # cut to the figure's range: no longer symmetric about the mean
                spread = f"(95% CI {r.ci_low:.1f} to {r.ci_high:.1f}, {r.ci_note})"
            else:
                spread = "± " + ("n/a" if math.isnan(r.ci_low) else f"{(r.ci_high - r.ci_low) / 2:.1f}")
            text = f"  {r.controller:<16s} {r.mean:8.1f} {spread} (n={r.n})"
            if r.controller != baseline and not (math.isnan(r.change_pct) and math.isnan(r.change)):
                p = p_text(r.p_value_paired)
                text += f"  {change_words(r)} vs {baseline}, paired {p}" + (f" ({r.verdict})" if r.verdict else "")
            lines.append(text)
    return lines


def change_words(r: ControllerRow) -> str:
    """The change as the table prints it: in percentage points for a figure in % ("+10.4 pp"; its relative
    change would read as points), else in percent of the baseline ("-24.6 %"), or, where the baseline is 0 and
    has no percent, in the figure's unit ("+6.0 cycles")."""
    if r.change_unit == POINTS or math.isnan(r.change_pct):
        return f"{r.change:+.1f} {r.change_unit}"
    return f"{r.change_pct:+.1f} %"
