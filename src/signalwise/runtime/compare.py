"""Compare controllers over seeds, in parallel worker processes.

libsumo runs one simulation per process, so each (controller, seed) runs in a
fresh worker (`max_tasks_per_child=1`). The summary gives, per metric, the
mean and 95% CI per controller, the change against the first controller with
the paired t-test p-value over the seeds both ran (each seed is the same
traffic for every controller) and Welch's beside it, and "better" or "worse"
where the paired p is below 0.05 and the change at least 1 %; "no clear change"
otherwise, and "too few to judge" for a figure averaged over fewer than 10
vehicles or pedestrians in some seed's run (an emergency vehicle's delay).

Every output says the conditions its figures hold under (network, window,
warm-up, demand scale, timing profile, seeds, SUMO options applied): a table
at 1.3 times the demand must not read as the 1.0 one. `report.md` puts them,
the table, the metrics' definitions and the chart on one page a memo can
quote.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..analytics.stats import NON_NEGATIVE, bounded_interval, mean_ci, p_text
from ..analytics.stats import compare as compare_samples
from ..analytics.verdict import (  # the verdict's rule, shared with the API's comparison
    LOWER_IS_BETTER,
    MIN_CHANGE_PCT,
    MIN_PER_SEED,
    SIGNIFICANT_P,
    TOO_FEW,
    judge,
    per_seed_sample,
)
from ..outdirs import why_not_fresh
from ..provenance import models_run, provenance, software_text
from ..sim.metrics import LONG_PED_WAIT_S
from ..sim.processes import fresh_process_context, in_callers_env
from ..sim.scenario import clock_text, seconds_number, seconds_text, window_text
from ..sim.signal_model import BELOW_ITE_NOTE
from ..termination import StopOnce, Terminated
from .config import RunConfig
from .loop import LOCKED_AFTER_S, applied_sumo_options, resolve_scenario, run_window
from .run import RunDirectoryError, distinct_slugs

#: (metric key in metrics.json "network", label, unit, lower is better)
METRICS = (
    # RESCO's definition of delay (every vehicle due: arrived, still driving, never inserted), said once in the
    # report's definitions: a memo's reader wants the plain name
    ("avg_delay_s", "delay per vehicle", "s", LOWER_IS_BETTER["avg_delay_s"]),
    ("avg_wait_s", "avg waiting", "s", LOWER_IS_BETTER["avg_wait_s"]),
    ("avg_travel_time_s", "avg travel time", "s", LOWER_IS_BETTER["avg_travel_time_s"]),
    ("stops_per_veh", "stops per vehicle", "stops/veh", LOWER_IS_BETTER["stops_per_veh"]),
    # the vehicles due and what became of them (due = arrived + still driving + never inserted): the totals a
    # reader checks the per-vehicle figures and the emissions' share of unfinished trips by; due is the demand
    ("vehicles_total", "vehicles due", "veh", None),
    ("throughput_veh", "throughput", "veh", LOWER_IS_BETTER["throughput_veh"]),
    ("running_at_end", "still driving at the end", "veh", LOWER_IS_BETTER["running_at_end"]),
    ("never_inserted", "never inserted", "veh", LOWER_IS_BETTER["never_inserted"]),
    # SUMO's teleports (each cuts a trip short and lowers the delay); a run from before they were counted has none
    ("teleports", "teleports (SUMO)", "count", LOWER_IS_BETTER["teleports"]),
    # vehicles SUMO dropped before they entered: no other figure counts them; a run from before they were counted
    # has none
    ("discarded_veh", "discarded by SUMO", "veh", LOWER_IS_BETTER["discarded_veh"]),
    # SUMO's count of persons jammed (a crosswalk with no walk); a run from before they were counted has none
    ("pedestrians_jammed", "pedestrians jammed (SUMO)", "count", LOWER_IS_BETTER["pedestrians_jammed"]),
    ("locked_veh", "locked in junctions", "veh", LOWER_IS_BETTER["locked_veh"]),
    ("avg_queue_veh", "avg queue", "veh", LOWER_IS_BETTER["avg_queue_veh"]),
    # totals over the counted window: a vehicle still driving at its end counts for the part it drove, and that
    # share differs by controller; per vehicle-km (the same window) is the figure per unit of travel
    ("co2_kg", "CO2 (total)", "kg", LOWER_IS_BETTER["co2_kg"]),
    ("fuel_l", "fuel (total)", "l", LOWER_IS_BETTER["fuel_l"]),
    ("veh_km", "vehicle-km driven", "veh-km", None),
    ("co2_g_per_veh_km", "CO2 per vehicle-km", "g/veh-km", LOWER_IS_BETTER["co2_g_per_veh_km"]),
    ("fuel_l_per_100veh_km", "fuel per 100 vehicle-km", "l/100 veh-km", LOWER_IS_BETTER["fuel_l_per_100veh_km"]),
    ("emergency_delay_s", "emergency vehicle delay", "s", LOWER_IS_BETTER["emergency_delay_s"]),
    # SUMO's time loss over each pedestrian's whole walk: not ATSPM's pedestrian delay (the wait at one crossing
    # from the push to the walk), which `signalwise atspm` gives; the key stays for the readers of summary.json
    ("ped_delay_s", "pedestrians: time lost per walk (SUMO)", "s", LOWER_IS_BETTER["ped_delay_s"]),
    # each pedestrian's standing over its walk (its waits at crosswalks): the mean, the worst 5 % and the worst,
    # and how many waited long; a run from before they were counted has none
    ("ped_wait_s", "pedestrians: wait per walk", "s", LOWER_IS_BETTER["ped_wait_s"]),
    ("ped_wait_p95_s", "pedestrians: wait, 95th percentile", "s", LOWER_IS_BETTER["ped_wait_p95_s"]),
    ("ped_wait_max_s", "pedestrians: longest wait", "s", LOWER_IS_BETTER["ped_wait_max_s"]),
    ("ped_long_waits", f"pedestrians waiting over {LONG_PED_WAIT_S:g} s", "persons",
     LOWER_IS_BETTER["ped_long_waits"]),
)
#: metrics a run has only when SUMO computed the emissions (`metrics["emissions_recorded"]`); else "—", not 0
EMISSIONS = ("co2_kg", "fuel_l", "co2_g_per_veh_km", "fuel_l_per_100veh_km")
#: the values each figure can take, its 95 % interval cut to them (`analytics.stats.bounded_interval`, the rule
#: of `signalwise atspm COMPARE_DIR` too): every figure of the table is a count, a time, a mass, a distance or a
#: rate of them, never below 0
FIGURE_RANGE = {key: NON_NEGATIVE for key, *_rest in METRICS}
#: where the report points for RESCO's definition of delay
RESCO_DELAY_DOC = "docs/benchmarks.md, section \"RESCO networks, timing profiles and the price of safety\""
#: what each figure counts, for the report (`sim.metrics`, `runtime.run`); "counted window": from the warm-up's end
DEFINITIONS = {
    "avg_delay_s": "SUMO's timeLoss + departDelay per vehicle, averaged over every vehicle due in the counted "
                   "window: those that arrived, those still driving at the end and those never inserted (one never "
                   "inserted counts from its scheduled departure to the end). This is the RESCO benchmark's "
                   f"definition of delay ({RESCO_DELAY_DOC}, in the signalwise repository)",
    "avg_wait_s": "SUMO's waitingTime (time at 0.1 m/s or slower) per vehicle, over the vehicles that departed",
    "avg_travel_time_s": "trip duration, departure to arrival, over the vehicles that arrived",
    "stops_per_veh": "SUMO's waitingCount (times a vehicle came down to 0.1 m/s or slower) per vehicle, over the "
                     "vehicles that departed",
    "throughput_veh": "vehicles due in the counted window that arrived at their destination before the run ended",
    "never_inserted": "vehicles due in the counted window that SUMO had not put on the network when the run ended "
                      "(most often: no room on their departure lane)",
    "teleports": "SUMO's teleports over the whole run: a vehicle stuck for the teleport time jumps ahead, which "
                 "cuts its trip short and lowers the delay",
    "discarded_veh": "vehicles SUMO discarded over the whole run before they entered the network (one that cannot "
                     "depart at its route file's speed, or cannot stop for a red signal ahead): no other figure "
                     "counts them; each run's sumo/errors.log names each",
    "pedestrians_jammed": "SUMO's count of persons over the whole run who stood past their jam time, then walked on",
    "locked_veh": f"vehicles standing inside a junction for {LOCKED_AFTER_S:g} s or longer when the run ended (a "
                  "junction lock)",
    "avg_queue_veh": "halting vehicles (0.1 m/s or slower) on the approach lanes of the controlled signals, summed "
                     "over the signals, sampled every 5 s of the counted window and averaged",
    "co2_kg": "CO2 of every vehicle on every edge of the network, junction interiors included (not only the "
              "approaches), over the counted window (the emission model below). A total over a fixed window: a "
              "vehicle still driving at the end counts only for the part of its trip it drove, and how many are "
              "still driving differs by controller, so part of a difference in the total can be emissions that "
              "fall after the window closes; CO2 per vehicle-km compares per unit of travel",
    "fuel_l": "fuel of every vehicle on every edge of the network, junction interiors included, over the counted "
              "window, in litres (the emission model below): a total, as CO2's",
    "vehicles_total": "vehicles due in the counted window: throughput + still driving at the end + never inserted",
    "running_at_end": "vehicles due in the counted window that were still on the network when the run ended",
    "veh_km": "vehicle-km driven in the counted window: SUMO's edgeData, sampled seconds × mean speed on each "
              "edge and interval, summed (the edges' own lanes; junction interiors, a few metres each, are not in "
              "it)",
    "co2_g_per_veh_km": "CO2 (total) over the vehicle-km driven in the same counted window: the CO2 figure per "
                        "unit of travel, which the share of trips still under way at the end does not tilt",
    "fuel_l_per_100veh_km": "fuel (total) over the vehicle-km driven in the same counted window, per 100 km: the "
                            "fuel figure per unit of travel",
    "emergency_delay_s": "the delay above (timeLoss + departDelay) of the emergency vehicles, over the runs that "
                         "had one",
    "ped_delay_s": "SUMO's timeLoss of each pedestrian over its whole walk, from setting out to arriving (one still "
                   "walking counts the time it has stood so far), over the runs that had pedestrians. Not ATSPM's "
                   "pedestrian delay, the wait at one crossing from the push button to the walk, which "
                   "`signalwise atspm` gives from a run's event log",
    "ped_wait_s": "SUMO's waitingTime of each pedestrian's walk stages (the time it stood: at a signal, its waits "
                  "at the crosswalks for the walk, added up where it crossed more than one; one still walking "
                  "counts so far), averaged over the pedestrians due in the counted window, over the runs that had "
                  "pedestrians",
    "ped_wait_p95_s": "the 95th percentile of the same waits in each run (nearest rank: 95 % of its pedestrians "
                      "waited this long or less)",
    "ped_wait_max_s": "the longest of the same waits in each run",
    "ped_long_waits": f"pedestrians in each run whose wait as above was longer than {LONG_PED_WAIT_S:g} s "
                      "(`sim.metrics.LONG_PED_WAIT_S`)",
}


@dataclass
class CompareResult:
    out_dir: Path
    controllers: list[str]
    seeds: list[int]
    runs: dict[tuple[str, int], dict]  # (controller, seed) -> metrics
    run_dirs: dict[tuple[str, int], Path]
    summary: dict
    chart: Path | None
    failures: dict[tuple[str, int], str]


#: in a worker, the compare's "stopped" event (`_note_stop`): the pool hands out one run beyond its workers, which
#: cancelling cannot take back, so that run checks it before starting
_stopped = None


def _note_stop(event) -> None:  # noqa: ANN001 - a multiprocessing Event
    """The pool's initializer. A worker ignores Ctrl-C until it runs a run (`_run_one`, under `StopOnce`): the
    compare passes an interrupt on to every worker process, idle ones included, and an idle one has nothing to
    stop and would only print a traceback; the pool's shutdown ends it."""
    import signal

    global _stopped
    _stopped = event
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_one(cfg_json: str, run_dir: str) -> tuple[str, dict]:
    """Worker: one run, in a fresh process; Ctrl-C or SIGTERM stops it, its run directory marked incomplete. Only
    the first stops it: a terminal's Ctrl-C reaches it both from the terminal and from the compare, which passes
    every interrupt on (`_stopped_on_interrupt`), and a second must not cut the marking short."""
    from . import controller_faults
    from .run import execute_run

    controller_faults.SAY_SEED = True  # the runs of every seed write to one terminal: each line names its seed
    if _stopped is not None and _stopped.is_set():
        raise RuntimeError("the comparison was stopped before this run started")
    cfg = RunConfig.model_validate_json(cfg_json)
    with StopOnce():
        result = execute_run(cfg, Path(run_dir))
    return str(result.run_dir), result.metrics


def compare_controllers(base: RunConfig, controllers: list[str], seeds: list[int], out_dir: Path,
                        workers: int | None = None,
                        on_done: Callable[[str, int, dict | None, str | None], None] | None = None,
                        caveats: Sequence[str] = ()) -> CompareResult:
    """Run every controller on every seed in worker processes and write the summary, chart and report.
    `caveats`: what the command said before the runs of what the figures of a learned model are (on its own
    training seeds, under another timing profile or demand, over another window than it trained on), kept in
    summary.json and report.md with the runs' own warnings."""
    why = why_not_fresh(out_dir)
    if why:
        raise RunDirectoryError(f"{out_dir}: {why}")
    if len(set(controllers)) != len(controllers):
        raise ValueError(f"a controller named twice: {', '.join(controllers)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(os.cpu_count() or 1, len(controllers) * len(seeds)))
    if base.evidence == "auto" and workers * 2 > (os.cpu_count() or 1):
        # the runs already fill the cores: a replay beside each would only slow them (`RunConfig.evidence`)
        base = base.model_copy(update={"evidence": "inline"})
    jobs = {}
    runs: dict[tuple[str, int], dict] = {}
    run_dirs: dict[tuple[str, int], Path] = {}
    failures: dict[tuple[str, int], str] = {}
    ctx = fresh_process_context(__name__)
    stopped = ctx.Event()
    planned: dict = {}  # future -> its run directory: what became of each is read there when the compare is stopped
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1, initializer=_note_stop,
                             initargs=(stopped,)) as pool, _stopped_on_interrupt(pool, stopped, planned):
        dirs = distinct_slugs(list(controllers))
        for seed in seeds:
            for c in controllers:
                cfg = base.model_copy(update={"controller": c, "seed": seed, "out_dir": out_dir})
                rd = out_dir / f"{dirs[c]}-s{seed}"
                fut = pool.submit(in_callers_env(_run_one), cfg.model_dump_json(), str(rd))
                jobs[fut], planned[fut] = (c, seed), rd
        for fut in as_completed(jobs):
            key = jobs[fut]
            try:
                rd, metrics = fut.result()
                runs[key] = metrics
                run_dirs[key] = Path(rd)
                if on_done:
                    on_done(key[0], key[1], metrics, None)
            except Exception as exc:  # one failed run must not hide the others
                failures[key] = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                if on_done:
                    on_done(key[0], key[1], None, failures[key])
    summary = summarize(controllers, seeds, runs)
    summary["failures"] = {f"{c}:s{s}": msg for (c, s), msg in failures.items()}
    summary["scenario"] = base.scenario_label
    if base.warmup_s:  # every run's figures count from the warm-up's end: the table says so
        summary["warmup_s"] = base.warmup_s
    summary["conditions"] = conditions(base, seeds)
    summary["caveats"] = list(caveats)
    summary["created"] = dt.datetime.now().isoformat(timespec="seconds")
    # what made the figures: the software, the command, and each learned controller's model with its digest
    summary["provenance"] = {**provenance(), "models": models_run(controllers, base.controller_options)}
    summary["emission_model"] = emission_model(runs.values())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    write_summary_csv(out_dir / "summary.csv", summary)
    write_per_seed_csv(out_dir / PER_SEED_CSV, summary)
    write_intersections_csv(out_dir / INTERSECTIONS_CSV, summary)
    write_delay_over_time_csv(out_dir / DELAY_CSV, controllers, run_dirs)
    chart = None
    try:
        chart = plot_delay_over_time(controllers, run_dirs, out_dir / "delay_over_time.png", base.scenario_label,
                                     conditions_text(summary["conditions"], short=True),
                                     summary["conditions"].get("begin_s") or 0.0)
    except Exception:  # a chart must never lose the numbers
        chart = None
    (out_dir / REPORT).write_text(report_markdown(summary, chart.name if chart else None))
    return CompareResult(out_dir, controllers, seeds, runs, run_dirs, summary, chart, failures)


#: the comparison's page for a memo, in its directory
REPORT = "report.md"
#: one row per controller, seed and figure (tidy: a spreadsheet's pivot or a data frame reads it as it is)
PER_SEED_CSV = "per_seed.csv"
#: the chart's data: the network delay per interval, mean over the seeds, per controller
DELAY_CSV = "delay_over_time.csv"
#: per signal, controller and figure: the figures of each run's metrics.json `intersections` over the seeds
INTERSECTIONS_CSV = "intersections.csv"
#: (key in metrics.json `intersections.<id>`, label, unit, lower is better; None: no direction, no verdict)
INTERSECTION_METRICS = (
    ("delay_per_veh_s", "delay per vehicle on its approaches", "s", True),
    # the vehicles that left its approach edges into the junction: the demand it served, not a figure to judge
    ("throughput_veh", "vehicles through (left its approaches)", "veh", None),
)
#: per-signal figures that average over the signal's vehicles -> the figure counting them in each run (its
#: volume): a signal some seed's run saw fewer than `MIN_PER_SEED` vehicles at is too few to judge, as the network's
INTERSECTION_SAMPLE = {"delay_per_veh_s": "throughput_veh"}
#: what each per-signal figure counts (`sim.metrics.intersection_metrics`), for the report
INTERSECTION_DEFINITIONS = {
    "delay_per_veh_s": "SUMO's edgeData timeLoss (time lost below each vehicle's free speed) summed over the "
                       "signal's incoming edges, whole edges from the upstream junction to the stop line, in the "
                       "counted window, over the vehicles that entered those edges (or set out on them) in it; a "
                       "vehicle still on an edge at the end counts the time it lost so far. A vehicle crossing "
                       "several signals counts at each. It is the delay on the approaches, not HCM control delay "
                       "(that counts from the influence area of the signal and past the stop line), and not the "
                       "network delay above, which adds the wait to enter",
    "throughput_veh": "vehicles that left the signal's incoming edges into its junction in the counted window: "
                      "its approach volume",
}


def intersection_summary(controllers: list[str], seeds: list[int], runs: dict[tuple[str, int], dict]) -> dict:
    """Per signal (each run's metrics.json `intersections`), per figure of `INTERSECTION_METRICS`: each
    controller's mean and 95 % CI over the seeds that measured it (cut at 0, `FIGURE_RANGE`'s rule), and against
    the first controller the change with its CI, the paired and Welch p and the verdict, over the seeds both
    measured, as `summarize` gives the network's figures. {signal: {key: {"label", "unit", "controllers":
    {controller: entry}}}}; empty for runs from before per-signal figures were kept."""
    baseline = controllers[0]
    signals = sorted({tls for m in runs.values() for tls in (m.get("intersections") or {})})
    out: dict = {}
    for tls in signals:
        rows = {}
        for key, label, unit, lower_better in INTERSECTION_METRICS:
            def value(c: str, s: int, key: str = key, tls: str = tls) -> float | None:
                v = ((runs.get((c, s)) or {}).get("intersections") or {}).get(tls, {}).get(key)
                return None if v is None else float(v)

            base = {s: v for s in seeds if (v := value(baseline, s)) is not None}
            row = {"label": label, "unit": unit, "lower_is_better": lower_better, "controllers": {}}
            # how many vehicles each run that measured the figure averaged it over (the signal's volume)
            counts = [int(n) for m in runs.values() if (at := (m.get("intersections") or {}).get(tls) or {})
                      .get(key) is not None and (n := at.get(INTERSECTION_SAMPLE.get(key, ""))) is not None]
            too_few = bool(counts) and min(counts) < MIN_PER_SEED
            if counts:
                row["per_seed_n"] = {"of": "vehicles", "min": min(counts), "max": max(counts), "too_few": too_few}
            for c in controllers:
                own = {s: v for s in seeds if (v := value(c, s)) is not None}
                ci = mean_ci(list(own.values()))
                low, high, cut = bounded_interval(ci.ci_low, ci.ci_high, NON_NEGATIVE)
                entry = {"values": list(own.values()), "seeds": list(own), "mean": summary_figure(ci.mean),
                         "ci_low": summary_figure(low), "ci_high": summary_figure(high)}
                if cut:
                    entry["ci_note"] = cut
                common = [s for s in own if s in base]
                if c != baseline and common:
                    cmp = compare_samples([base[s] for s in common], [own[s] for s in common], paired=True)
                    pct_lo, pct_hi = cmp.change_pct_ci
                    entry.update({"change_pct": summary_figure(cmp.change_pct), "change": summary_figure(cmp.diff),
                                  "change_ci_low": summary_figure(cmp.diff_ci_low),
                                  "change_ci_high": summary_figure(cmp.diff_ci_high),
                                  "change_pct_ci_low": summary_figure(pct_lo),
                                  "change_pct_ci_high": summary_figure(pct_hi),
                                  "p_paired": summary_p(cmp.p_value_paired), "p_welch": summary_p(cmp.p_value)})
                    entry.update(judge(cmp, lower_better, too_few))
                    if common != list(own) or common != list(base):
                        entry["seeds_compared"] = common
                row["controllers"][c] = entry
            rows[key] = row
        out[tls] = rows
    return out


#: intersections.csv's columns after `intersection`, `metric`, `controller`
INTERSECTION_COLUMNS = ("n", "mean", "ci_low", "ci_high", "ci_note", "change", "change_ci_low", "change_ci_high",
                        "change_pct", "change_pct_ci_low", "change_pct_ci_high", "p_paired", "p_welch", "verdict",
                        "verdict_note", "unit")


def write_intersections_csv(path: Path, summary: dict) -> None:
    """One row per signal, figure and controller (`intersection_summary`), with the unit as a column."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["intersection", "metric", "controller", *INTERSECTION_COLUMNS])
        for tls, rows in (summary.get("intersections") or {}).items():
            for key, row in rows.items():
                for c, e in row["controllers"].items():
                    cells = {**e, "n": len(e["values"]), "verdict_note": e.get("no_verdict"), "unit": row["unit"]}
                    w.writerow([tls, key, c, *[cells.get(k) for k in INTERSECTION_COLUMNS]])


def emission_model(runs: Collection[dict]) -> dict:
    """The emission model the runs' CO2 and fuel come from: each vehicle type the runs' vehicles had -> its emission
    class (the run's metrics.json `emission_classes`: the type's own, else SUMO's default for its vClass), the
    models they name ("HBEFA4") and the fuels the class names say ("petrol", "diesel"). Empty for runs from before
    the classes were kept."""
    classes: dict[str, str] = {}
    for m in runs:
        classes.update(m.get("emission_classes") or {})
    names = set(classes.values())
    models = sorted({c.split("/", 1)[0] for c in names if "/" in c})
    fuels = sorted({f for c in names for f in ("petrol", "diesel") if f in c.lower()})
    return {"classes": dict(sorted(classes.items())), "models": models, "fuels": fuels}


def emission_model_text(model: dict | None, sumo_version: str | None) -> str | None:
    """The emission model in a sentence for the report; None where the runs did not keep it."""
    if not model or not model.get("classes"):
        return None
    sumo = f"SUMO {sumo_version}" if sumo_version else "SUMO"
    classes = "; ".join(f"`{vt}` {c}" for vt, c in model["classes"].items())
    text = (f"{sumo}'s {' and '.join(model['models']) or 'emission'} model, with the emission class of each "
            f"vehicle type the runs' vehicles had (the type's own, else {sumo}'s default for its vClass, which "
            f"changes with the SUMO version): {classes}")
    if model.get("fuels") == ["diesel", "petrol"]:
        text += ". Fuel adds the litres of these classes together, petrol and diesel in one sum: a volume, not an energy"
    elif len(set(model["classes"].values())) > 1:
        text += ". Fuel adds the litres of these classes together"
    return text


def write_per_seed_csv(path: Path, summary: dict) -> None:
    """Each figure of each run: controller, seed, metric, value, unit (a run that did not measure it has no row)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["controller", "seed", "metric", "value", "unit"])
        for c in summary["controllers"]:
            for key, row in summary["metrics"].items():
                e = row["controllers"][c]
                for seed, value in zip(e.get("seeds", ()), e["values"], strict=True):
                    w.writerow([c, seed, key, value, row["unit"]])


def write_delay_over_time_csv(path: Path, controllers: list[str], run_dirs: dict[tuple[str, int], Path]) -> None:
    """The delay-over-time chart's data: controller, interval start (s), the network delay of the vehicles arriving
    in the interval (s/veh), mean over the seeds that have the interval, and how many did."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["controller", "begin_s", "avg_delay_s", "seeds"])
        for c in controllers:
            for t, d, n in delay_over_time([rd for (cc, _s), rd in sorted(run_dirs.items()) if cc == c],
                                           with_count=True):
                w.writerow([c, t, round(d, 3), n])


def conditions(base: RunConfig, seeds: list[int]) -> dict:
    """What every run of the comparison shared that moves its figures, as summary.json keeps it. The window is
    the one the runs use (`loop.run_window`); a network that cannot be read leaves it unknown (None), as the runs
    then failed too."""
    from ..sim.demand_draws import seed_draws

    try:
        scenario = resolve_scenario(base)
        begin_s, end_s = run_window(base, scenario)
        options = applied_sumo_options(base, scenario)
        draws: tuple[str, ...] | None = seed_draws([*scenario.route_files, *scenario.additional_files])
    except Exception:
        begin_s = end_s = None
        options = dict(base.sumo_options)
        draws = None
    own = base.sumocfg or base.net
    return {
        "scenario": base.scenario_label,
        "network": None if own is None else str(own),
        "routes": [str(r) for r in base.routes],
        "seeds": list(seeds),
        # what a seed varies, from how the route files make the demand (`sim.demand_draws`): "demand" (and
        # SUMO's randomness) or "sumo" (SUMO's randomness alone); None where the network could not be read
        "seeds_vary": None if draws is None else "demand" if draws else "sumo",
        "seed_draws": None if draws is None else list(draws),
        "demand_scale": base.demand_scale,
        "timing_profile": base.timing.profile,
        "begin_s": begin_s,
        "end_s": end_s,
        "warmup_s": base.warmup_s,
        "step_length_s": base.step_length_s,
        "time_to_teleport_s": base.time_to_teleport_s,
        "sumo_options": options,
    }


def conditions_text(cond: dict, short: bool = False) -> str:
    """The conditions in one line, for a table's title ("0–3600 s simulated, demand ×1.3, benchmark timing,
    seeds 1–3"); `short` leaves out the seeds and SUMO options (a chart's title)."""
    begin, end = cond.get("begin_s"), cond.get("end_s")
    parts = [f"{window_text(begin, end)} simulated" if begin is not None and end is not None else "window unknown"]
    if cond.get("warmup_s"):
        parts[0] += f", after a {seconds_number(cond['warmup_s'])} s warm-up" + (
            f" (figures from {clock_text(begin + cond['warmup_s'])})" if begin else "")
    parts += [f"demand ×{cond['demand_scale']:g}", f"{cond['timing_profile']} timing"]
    if short:
        return ", ".join(parts)
    parts.append(f"seeds {_seeds_text(cond['seeds'])}" + SEEDS_VARY_SHORT.get(cond.get("seeds_vary"), ""))
    if cond.get("sumo_options"):
        parts.append("SUMO options " + ", ".join(f"{k}={v}" for k, v in cond["sumo_options"].items()))
    return ", ".join(parts)


#: what a seed varies, in a table's heading (`conditions["seeds_vary"]`)
SEEDS_VARY_SHORT = {"demand": " (each draws new demand)",
                    "sumo": " (one fixed demand: seeds vary SUMO's randomness only)"}


def seeds_vary_text(cond: dict) -> str | None:
    """What a seed of the comparison varies, in a sentence (`sim.demand_draws.seeds_vary_text`); None when
    unknown."""
    from ..sim.demand_draws import seeds_vary_text as text

    if cond.get("seeds_vary") is None:
        return None
    return text(tuple(cond.get("seed_draws") or ()))


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


@contextlib.contextmanager
def _stopped_on_interrupt(pool: ProcessPoolExecutor, stopped, planned: dict) -> Iterator[None]:  # noqa: ANN001
    """On Ctrl-C or SIGTERM, no queued run starts: leaving the pool would otherwise wait for every one of them.
    The signal is passed on to the workers: a terminal's Ctrl-C reaches them too, but `kill -INT PID`, a wrapper
    script or a batch scheduler signal this process alone, and the runs must stop rather than go on to their end.
    `_run_one` stops on the first and ignores a second; an idle worker ignores it (`_note_stop`). The wait is said on stderr, and the command's last line (`what_is_left`) says what became of each run
    that was under way, as its run.json says (`planned`: future -> run directory)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        import signal
        import sys

        stopped.set()
        running = list(getattr(pool, "_processes", None) or {})  # worker pids: the pool has no public list
        for pid in running:
            with contextlib.suppress(OSError):
                os.kill(pid, exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
        left = [rd for fut, rd in planned.items() if not fut.done()]
        # handed to the workers, but no more than the workers: the pool hands out one beyond them, which waits
        # (and then does not start: `_stopped`); an idle worker is no run
        under_way = min(sum(1 for fut in planned if fut.running()), len(running))
        if under_way:
            print(f"stopping: waiting for the {under_way} run(s) under way to stop and mark their run "
                  "directories", file=sys.stderr, flush=True)
        pool.shutdown(wait=True, cancel_futures=True)
        exc.what_is_left = what_became_of(left)
        raise


def what_became_of(run_dirs: Sequence[Path]) -> str:
    """What the runs not finished when a comparison was stopped are now, from each one's run.json: marked
    incomplete, finished first, failed, or never started (no run.json)."""
    by_status: dict[str, list[str]] = {}
    for rd in run_dirs:
        try:
            status = json.loads((Path(rd) / "run.json").read_text()).get("status")
        except (OSError, ValueError):
            status = None
        by_status.setdefault(status if isinstance(status, str) else "not started", []).append(Path(rd).name)
    said = {"incomplete": "marked incomplete", "complete": "finished before the stop reached them (complete)",
            "failed": "failed", "running": "left `running` (their process did not mark them)",
            "not started": "never started"}
    order = list(said)
    parts = [f"{len(names)} run(s) {said.get(status, status)}: {', '.join(names[:6])}"
             + (f" and {len(names) - 6} more" if len(names) > 6 else "")
             for status, names in sorted(by_status.items(),
                                         key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))]
    return "; ".join(parts) if parts else "no run was under way"


@dataclass
class NetworkCheck:
    """What the check saw of the network every run will use."""

    #: signals left to their own program, and why (`sim.signal_model.RefusedSignal`)
    refused: list = field(default_factory=list)
    #: per signal, where `fixed` does not run the network's program as written (`sim.signal_model.PLAN_NOTE`)
    plan_notes: dict[str, list[str]] = field(default_factory=dict)


def check_network(base: RunConfig, controllers: Sequence[str] = ()) -> NetworkCheck:
    """Start the network once with its routes, in this process; a SimulationError (or ScenarioError) names what
    every run would fail on: a network without a signal to control, a route over an edge the network lacks, a
    per-intersection override for a signal it does not have, a walk of the persons setting out in its first
    `PERSONS_CHECKED_S` that SUMO cannot route. Each of `controllers` is then built for
    every signal as its runs will build it, so a model that does not fit the network (ControllerUnavailable)
    is refused too. Called before any worker starts, so a comparison no run can finish is one line, not a
    failure per controller and seed after the baseline's runs and a table of dashes. A SUMO given by
    `remote_port` is left alone (starting it here would take it from the runs)."""
    if base.remote_port is not None:
        return NetworkCheck()
    from ..control.base import ControllerUnavailable
    from ..control.learning.qtable import ModelError
    from ..sim.additionals import ADDITIONAL_DIR
    from ..sim.detectors import place_detectors
    from ..sim.signal_model import plan_notes
    from .loop import LoopStepper, network_read, open_field, resolve_scenario, run_window, sumo_options

    cfg = base.model_copy(update={"gui": False})
    scenario = resolve_scenario(cfg)
    with tempfile.TemporaryDirectory(prefix="signalwise-check-") as tmp:
        # read as a run reads it first: a network SUMO cannot parse is `run`'s one line, not SUMO's own lines
        with network_read(scenario.net_file):
            place_detectors(scenario.net_file, Path(tmp))
        # the runs' own end, though nothing steps to it: SUMO gives a flow without an `end` the run's end as its
        # end, and one that begins after an end one step in was refused ("ends before its begin time") where runs
        # are not
        _begin_s, end_s = run_window(cfg, scenario)
        # the additional files' outputs written as a run writes them: into a run's `sumo/additional/`, named by a
        # relative path as the default `runs` names it, so an output no run could write is refused here once
        opts = sumo_options(cfg, scenario, end_s=end_s,
                            additional_outputs_dir=_as_runs_name_it(Path(tmp) / "sumo" / ADDITIONAL_DIR))
        fld = open_field(cfg, scenario, opts)
        try:
            for name in controllers:
                try:
                    LoopStepper(cfg.model_copy(update={"controller": name}), fld, end_s)
                except ModelError as exc:
                    raise ControllerUnavailable(f"{name}: {exc}") from None
            if _has_persons([*scenario.route_files, *scenario.additional_files]):
                _step_past_first_walks(fld.backend, min(end_s, fld.backend.time_s() + PERSONS_CHECKED_S))
        finally:
            fld.backend.close()
    return NetworkCheck(list(fld.refused), plan_notes(fld.intersections))


def _as_runs_name_it(path: Path) -> Path:
    """`path` relative to the working directory, as a run under the default `runs` names its own directory
    (absolute where no relative path leads there)."""
    try:
        return Path(os.path.relpath(path))
    except (ValueError, OSError):
        return path


#: simulated seconds `check_network` runs a network with persons: SUMO routes a walk only when its person sets
#: out, and a walk it cannot route (no sidewalk, no crossing) stops the simulation there, in every run
PERSONS_CHECKED_S = 300.0


def _has_persons(files: Sequence[Path]) -> bool:
    """Whether any of the files holds a person or a person flow (a byte search: a city's routes are large)."""
    import gzip

    for path in files:
        opener = gzip.open if str(path).endswith(".gz") else open
        try:
            with opener(path, "rb") as fh:
                tail = b""
                while chunk := fh.read(1 << 20):
                    if b"<person" in tail + chunk:
                        return True
                    tail = chunk[-len(b"<person"):]
        except OSError:
            continue  # SUMO read it when the check started: a file it did not want says nothing here
    return False


def _step_past_first_walks(backend, until_s: float) -> None:  # noqa: ANN001 - a SumoBackend
    """Step SUMO to `until_s`, so that the persons setting out by then have their walks routed; a walk SUMO
    cannot route is refused in one line before any run, not as a failure of every run part way."""
    from ..sim.backend import SimulationError, read_files

    now_s = backend.time_s()
    try:
        while now_s < until_s:
            now_s = backend.step()
    except SimulationError as exc:
        why = str(exc).removeprefix("SUMO stopped during the run: ").rstrip(".")
        raise SimulationError(f"SUMO stopped at {seconds_number(now_s)} s when the network was tried once before the runs: "
                              f"{why} ({read_files(backend.opts)})") from None


#: the figures of persons or vehicles a network may have none of: the count each run's `network` keeps of them
_COUNTED_BY = {"emergency_delay_s": ("emergency_vehicles", "emergency vehicles"),
               **{key: ("pedestrians", "pedestrians") for key, *_ in METRICS if key.startswith("ped_")}}


def _none_in_runs(key: str, runs: dict[tuple[str, int], dict]) -> str | None:
    """"no pedestrians in these runs" for a figure of `_COUNTED_BY` when no run had any (the `corridor` has no
    pedestrian demand): a row of "—" (or of 0 waits over 60 s) alone reads as something broken."""
    if not runs or key not in _COUNTED_BY:
        return None
    count, what = _COUNTED_BY[key]
    return f"no {what} in these runs" if all(m["network"].get(count) == 0 for m in runs.values()) else None


def summarize(controllers: list[str], seeds: list[int], runs: dict[tuple[str, int], dict]) -> dict:
    """Mean and 95% CI per metric over the seeds that measured it; change vs the first controller, Welch and paired
    p-values over the seeds both measured (`seeds_compared` when that is fewer), and `verdict` "better" or
    "worse" where the paired p is below `SIGNIFICANT_P` and the change at least `MIN_CHANGE_PCT` (in the metric's
    direction). A change without a verdict says why in `no_verdict`: "too few to judge" for a figure whose runs
    averaged it over fewer than `MIN_PER_SEED` vehicles or pedestrians in some seed (`per_seed_n` of the metric:
    the fewest and most over the runs that measured it), whatever the paired test gave (none, "p n/a", too), else
    "no clear change" where the test ran."""
    baseline = controllers[0]
    table = {}
    for key, label, unit, lower_better in METRICS:
        row = {"label": label, "unit": unit, "lower_is_better": lower_better, "controllers": {}}
        # a run that measured none of it (emissions off; no vehicle arrived, no emergency vehicle or pedestrian)
        have = {cs for cs, m in runs.items() if (key not in EMISSIONS or m.get("emissions_recorded", True))
                and m["network"].get(key) is not None}
        sample = per_seed_sample(key, [runs[cs]["network"] for cs in sorted(have)], of_runs=len(runs))
        if sample is not None:
            row["per_seed_n"] = sample
        if (none := _none_in_runs(key, runs)) is not None:
            row["none_in_runs"] = none
        base_seeds = [s for s in seeds if (baseline, s) in have]
        for c in controllers:
            c_seeds = [s for s in seeds if (c, s) in have]
            vals = [runs[(c, s)]["network"][key] for s in c_seeds]
            ci = mean_ci(vals)
            # the t-interval cut to the values the figure can take, by the rule of `signalwise atspm COMPARE_DIR`
            # (`analytics.stats.bounded_interval`): a count of 0, 0 and 1 never below 0
            low, high, cut = bounded_interval(ci.ci_low, ci.ci_high, FIGURE_RANGE[key])
            # `seeds`: the seed of each of `values`, in order
            entry = {"values": vals, "seeds": c_seeds, "mean": summary_figure(ci.mean), "ci_low": summary_figure(low),
                     "ci_high": summary_figure(high)}
            if cut:  # where an end was cut ("t-interval cut at 0"); the tables then give the interval, not ±
                entry["ci_note"] = cut
            # the change and its tests over the seeds both measured: a seed one side has no figure for (no
            # emergency vehicle, nothing arrived, a run failed) is left out of the other side too
            common = [s for s in c_seeds if s in base_seeds]
            if c != baseline and common:
                cmp = compare_samples([runs[(baseline, s)]["network"][key] for s in common],
                                      [runs[(c, s)]["network"][key] for s in common], paired=True)
                entry["change_pct"] = summary_figure(cmp.change_pct)
                # the change's own 95 % CI over the same seeds (the paired differences'), in the figure's unit and
                # in percent of the baseline's mean
                pct_lo, pct_hi = cmp.change_pct_ci
                entry.update({"change": summary_figure(cmp.diff), "change_ci_low": summary_figure(cmp.diff_ci_low),
                              "change_ci_high": summary_figure(cmp.diff_ci_high), "change_pct_ci_low": summary_figure(pct_lo),
                              "change_pct_ci_high": summary_figure(pct_hi)})
                # each field named after its test: the paired one over the same seeds (the verdict's) and Welch's
                entry["p_paired"] = summary_p(cmp.p_value_paired)
                entry["p_welch"] = summary_p(cmp.p_value)
                # `verdict`, or why none in `no_verdict`; neither where no test ran (one seed, or no spread: the
                # tables say "p n/a")
                entry.update(judge(cmp, lower_better, sample is not None and sample["too_few"], key))
                if common != c_seeds or common != base_seeds:
                    entry["seeds_compared"] = common
            row["controllers"][c] = entry
        table[key] = row
    # None (shown "—") for a controller none of whose runs finished: nothing was audited, so no count of 0
    safety = {c: sum(runs[(c, s)].get("safety", {}).get("violations", 0) for s in seeds if (c, s) in runs)
              if any((c, s) in runs for s in seeds) else None for c in controllers}
    share = {c: summary_figure(sum(f) / len(f)) if (f := [runs[(c, s)]["network"]["fallback_fraction"] for s in seeds
                                                   if (c, s) in runs]) else None for c in controllers}
    never = [c for c in controllers
             if any((c, s) in runs for s in seeds) and not any(runs[(c, s)].get("controller_ran", True)
                                                               for s in seeds if (c, s) in runs)]
    said = run_warnings(controllers, seeds, runs)
    return {"baseline": baseline, "controllers": controllers, "seeds": seeds, "metrics": table,
            "intersections": intersection_summary(controllers, seeds, runs),
            "safety_violations": safety, "fallback_share": share, "never_ran": never,
            **controller_fault_totals(controllers, seeds, runs),
            "run_warnings": said, "warnings": warning_groups(said)}


def per_seed_text(sample: dict, judged: bool = True) -> str:
    """A small sample as the tables say it: "n = 1–2 vehicles per seed: too few to judge", or "n = 1 vehicle per
    run that had any (3 of 9 runs; the others had none): ..." where some runs had none (without the judgement
    where each cell of the row says it)."""
    span = f"{sample['min']}" if sample["min"] == sample["max"] else f"{sample['min']}–{sample['max']}"
    of = sample["of"] if sample["max"] != 1 else sample["of"].removesuffix("s")  # "1 vehicle", "1 pedestrian"
    runs, of_runs = sample.get("runs"), sample.get("of_runs")
    which = f"per run that had any ({runs} of {of_runs} runs; the others had none)" \
        if runs is not None and of_runs is not None and runs < of_runs else "per seed"
    return f"n = {span} {of} {which}" + (f": {TOO_FEW}" if judged else "")


def controller_fault_totals(controllers: list[str], seeds: list[int],
                            runs: dict[tuple[str, int], dict]) -> dict[str, dict[str, int | None]]:
    """Per controller, summed over its finished runs: the errors it raised (`controller_errors`) and the proposals
    the shield could not follow as given (`invalid_proposals`); None for a controller none of whose runs finished."""
    def total(c: str, count) -> int | None:
        done = [runs[(c, s)] for s in seeds if (c, s) in runs]
        return sum(count(m) for m in done) if done else None

    return {"controller_errors": {c: total(c, lambda m: m["network"].get("controller_errors", 0))
                                  for c in controllers},
            "invalid_proposals": {c: total(c, lambda m: m.get("controller_faults", {}).get("invalid_proposals", 0))
                                  for c in controllers}}


#: the rows a comparison shows when any run had one: (summary key, label)
FAULT_ROWS = (("controller_errors", "controller errors"), ("invalid_proposals", "invalid proposals"))


def run_warnings(controllers: list[str], seeds: list[int], runs: dict[tuple[str, int], dict]) -> dict[str, list[str]]:
    """Each finished run's own warnings (`metrics["warnings"]`: teleports that lower the delay, vehicles SUMO
    discarded, junctions locked, nothing due in the window...), keyed "controller:s<seed>" as `failures` is."""
    return {run_key(c, s): list(runs[(c, s)]["warnings"]) for c in controllers for s in seeds
            if runs.get((c, s), {}).get("warnings")}


def run_key(controller: str, seed: int) -> str:
    """A run's name in summary.json ("ql:s1")."""
    return f"{controller}:s{seed}"


def _runs_text(keys: Sequence[str]) -> str:
    """Runs as a person reads them, as the progress line names one ("ql s1"), seeds of a controller together:
    "fixed s1–3, ql s1, s3"."""
    seeds: dict[str, list[int]] = {}
    for key in keys:
        controller, _, seed = key.rpartition(":s")
        seeds.setdefault(controller, []).append(int(seed))
    return ", ".join(f"{c} " + ("s" + _seeds_text(ss) if len(ss) > 2 and ss == list(range(ss[0], ss[0] + len(ss)))
                                 else ", ".join(f"s{s}" for s in ss)) for c, ss in seeds.items())


#: a parenthesis holding a figure ("(yield 29)", "(first: 'v1' at 6 s)"): the detail a warning of one kind
#: gives differently from run to run
_FIGURES_ASIDE = re.compile(r"\s*\([^()]*\d[^()]*\)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: a count's noun in the singular, which a kind reads as the plural ("1 time", "29 times")
_ONE_TIME = re.compile(r"# time\b")


def _warning_kind(text: str) -> str:
    """What a warning says with its figures left out: runs that teleported 29 and 21 times (or 1 time) warn of
    one kind."""
    return _ONE_TIME.sub("# times", _NUMBER.sub("#", _FIGURES_ASIDE.sub("", text)))


def warning_groups(said: dict[str, list[str]], leave_out: Collection[str] = ()) -> list[dict]:
    """The runs' warnings, each once: {"runs": [run keys], "text": the line to show}, in the order the runs
    first gave them (the below-ITE lines first). A text several runs gave reads "fixed s1, ql s1: text"; texts of one kind that differ in
    their figures read once, the part that differs per run in brackets ("SUMO teleported vehicles [fixed s1: 29
    times (yield 29); ql s1: 3 times (yield 3)] after 300 s standing ..."). The per-signal notes of a configured
    clearance below ITE read one line per setting, naming the signals (`_below_ite_groups`). `leave_out`: texts
    already shown."""
    kinds: dict[str, dict[str, list[str]]] = {}  # kind -> text -> run keys
    below: dict[str, dict[str, dict]] = {}  # run key -> signal -> its parsed below-ITE note
    for key, texts in said.items():
        others = []
        for text in dict.fromkeys(texts):
            if text in leave_out:
                continue
            note = _below_ite_note(text)
            if note is not None:
                below.setdefault(key, {})[note["signal"]] = note
            else:
                others.append(text)
        for text in _signals_together(others):
            kinds.setdefault(_warning_kind(text), {}).setdefault(text, []).append(key)
    groups = _below_ite_groups(below)
    for by_text in kinds.values():
        merged = _merged_text(by_text) if len(by_text) > 1 else None
        if merged is not None:
            groups.append({"runs": [k for keys in by_text.values() for k in keys], "text": merged})
            continue
        groups += [{"runs": keys, "text": f"{_runs_text(keys)}: {text}"}
                   for text, keys in by_text.items()]
    return groups


#: a run's warning that a signal's configured yellow or red clearance is below ITE's for its geometry
#: (`sim.signal_model.below_ite_notes`, one per signal): the signal, the setting and value, and each phase's detail
_BELOW_ITE = re.compile(r"signal '(?P<signal>[^']+)': " + re.escape(BELOW_ITE_NOTE)
                        + r"(?P<setting>.+?) (?:is|are) below ITE for the signal's geometry: (?P<detail>.+)")
#: a phase's interval in such a note, its value and ITE's: "red clearance 2 s < ITE 2.4 s"
_BELOW_ITE_INTERVAL = re.compile(r"(?P<interval>yellow|red clearance) \d+(?:\.\d+)? s < ITE (?P<ite>\d+(?:\.\d+)?) s")


def _below_ite_note(text: str) -> dict | None:
    """A below-ITE warning's parts ({"signal", "setting", "ite": {interval: [ITE's values, s]}}); None for any
    other warning, or one this does not read (it then reads as given)."""
    m = _BELOW_ITE.fullmatch(text)
    if m is None:
        return None
    ite: dict[str, list[float]] = {}
    for part in _BELOW_ITE_INTERVAL.finditer(m["detail"]):
        ite.setdefault(part["interval"], []).append(float(part["ite"]))
    if not ite:
        return None
    return {"signal": m["signal"], "setting": m["setting"], "ite": ite}


#: signals a grouped below-ITE line names; the rest are counted
BELOW_ITE_NAMED = 6


def _below_ite_groups(below: dict[str, dict[str, dict]]) -> list[dict]:
    """The runs' below-ITE notes (run key -> signal -> `_below_ite_note`) as one line per setting and the
    signals it is below ITE at, with the runs that gave it and the span of ITE's values there: "fixed s1–3,
    max-pressure s1–3: below ITE at 5 signals (J1, J2, J3, J4, J5): timing.all_red_s 2 s, where ITE's red
    clearance is 2.2–2.4 s for their geometry; ...". Each phase's figures and the formula's inputs stay in each run's metrics.json."""
    by_setting: dict[str, dict[tuple[str, ...], list[str]]] = {}  # setting -> its signals -> run keys
    ite: dict[str, dict[str, list[float]]] = {}  # setting -> interval -> ITE's values
    for key, notes in below.items():
        per_setting: dict[str, list[str]] = {}
        for signal, note in notes.items():
            per_setting.setdefault(note["setting"], []).append(signal)
            for interval, values in note["ite"].items():
                ite.setdefault(note["setting"], {}).setdefault(interval, []).extend(values)
        for setting, signals in per_setting.items():
            by_setting.setdefault(setting, {}).setdefault(tuple(sorted(signals)), []).append(key)
    groups = []
    for setting, by_signals in by_setting.items():
        spans = " and ".join(f"ITE's {interval} is {_span_s(values)}" for interval, values in ite[setting].items())
        for signals, keys in by_signals.items():
            named = ", ".join(signals[:BELOW_ITE_NAMED]) + (
                f" and {len(signals) - BELOW_ITE_NAMED} more" if len(signals) > BELOW_ITE_NAMED else "")
            where = f"{len(signals)} signals ({named})" if len(signals) > 1 else f"signal {named}"
            whose = "their" if len(signals) > 1 else "its"
            runs_as = "values run" if " and " in setting else "value runs"
            groups.append({"runs": keys, "text": f"{_runs_text(keys)}: below ITE at {where}: {setting}, where "
                                                 f"{spans} for {whose} geometry; the configured {runs_as} (not a "
                                                 "safety violation); each run's metrics.json (warnings) gives "
                                                 "every phase's ITE value and its inputs"})
    return groups


#: the one signal a warning names ("coordinated at signal 'A0' runs ...", "signal 'A0': ...")
_ONE_SIGNAL = re.compile(r"\bsignal ('[^']*')")
#: signals a line of warnings given at several signals names; the rest are counted
SIGNALS_NAMED = 6


def _signals_together(texts: Sequence[str]) -> list[str]:
    """One run's warnings, those that differ only in the signal they name as one naming them all: "coordinated at
    signals 'A0', 'A1' runs the uncoordinated plan ..." (in the order the run first gave them)."""
    signals: dict[str, list[str]] = {}  # the text with its signal left out (or the text naming none) -> signals
    for text in texts:
        found = list(_ONE_SIGNAL.finditer(text))
        if len(found) != 1:
            signals.setdefault(text, [])
            continue
        m = found[0]
        signals.setdefault(f"{text[:m.start()]}\0{text[m.end():]}", []).append(m[1])
    out = []
    for template, named in signals.items():
        if not named:
            out.append(template)
            continue
        shown = ", ".join(named[:SIGNALS_NAMED]) + (
            f" and {len(named) - SIGNALS_NAMED} more" if len(named) > SIGNALS_NAMED else "")
        out.append(template.replace("\0", f"signal{'s' if len(named) > 1 else ''} {shown}"))
    return out


def _span_s(values: Sequence[float]) -> str:
    """ITE's values as a span: "2.4 s", "2.2–2.4 s"."""
    lo, hi = min(values), max(values)
    return f"{lo:g} s" if lo == hi else f"{lo:g}–{hi:g} s"


def _merged_text(by_text: dict[str, list[str]]) -> str | None:
    """Texts of one kind as one: the words they share before and after, the rest per run in brackets; None when
    they share less than half their words (two sentences, not one with other figures)."""
    words = [text.split() for text in by_text]
    shortest = min(len(w) for w in words)
    head = 0
    while head < shortest and all(w[head] == words[0][head] for w in words):
        head += 1
    tail = 0
    while tail < shortest - head and all(w[-1 - tail] == words[0][-1 - tail] for w in words):
        tail += 1
    if 2 * (head + tail) < shortest:
        return None
    parts = "; ".join(f"{_runs_text(keys)}: {' '.join(w[head:len(w) - tail])}"
                      for w, keys in zip(words, by_text.values(), strict=True))
    return " ".join([*words[0][:head], f"[{parts}]", *words[0][len(words[0]) - tail:]])


def delay_over_time(run_dirs: list[Path], with_count: bool = False) -> list[tuple]:
    """(interval start s, network delay of the vehicles arriving in it s/veh), the mean over the runs that
    have the interval, from each run's `timeseries.csv` (runs without one are skipped); `with_count`: and how
    many runs had it."""
    per_time: dict[float, list[float]] = {}
    for rd in run_dirs:
        if not (rd / "timeseries.csv").exists():
            continue
        with open(rd / "timeseries.csv") as fh:
            for row in csv.DictReader(fh):
                if row["scope"] == "network" and row["avg_delay_s"] not in ("", "None"):
                    per_time.setdefault(float(row["begin_s"]), []).append(float(row["avg_delay_s"]))
    if with_count:
        return [(t, sum(per_time[t]) / len(per_time[t]), len(per_time[t])) for t in sorted(per_time)]
    return [(t, sum(per_time[t]) / len(per_time[t])) for t in sorted(per_time)]


def plot_delay_over_time(controllers: list[str], run_dirs: dict[tuple[str, int], Path], path: Path,
                         title: str, conditions: str = "", begin_s: float = 0.0) -> Path | None:
    """Network delay per interval, mean over seeds, one line per controller; `conditions` under the title. A
    window that does not begin at 0 (`begin_s`, a .sumocfg's 07:00:00) is shown in times of day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    plotted = False
    for c in controllers:
        points = delay_over_time([rd for (cc, _s), rd in run_dirs.items() if cc == c])
        if points:
            ax.plot([t / 60 for t, _d in points], [d for _t, d in points], label=c, lw=1.6)
            plotted = True
    if not plotted:
        plt.close(fig)
        return None
    time_axis(ax, begin_s)
    ax.set_ylabel("delay of vehicles arriving (s/veh)")
    # the conditions folded to the chart's width (a window with its times of day makes a long line)
    ax.set_title(f"Delay over time — {title} (mean over seeds)"
                 + (f"\n{textwrap.fill(conditions, 100)}" if conditions else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def time_axis(ax, begin_s: float) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Label a chart's x axis of simulated minutes: in times of day where the window does not begin at 0 (07:00 to
    07:12, not minutes 420 to 432: the config's own clock, `clock_text`), else in minutes."""
    if begin_s:
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda m, _pos: clock_text(m * 60)))
        ax.set_xlabel("simulation time (time of day)")
    else:
        ax.set_xlabel("simulation time (min)")


def mean_text(entry: dict, n_seeds: int) -> str:
    """A controller's figure as the table and report show it: mean ± the 95% CI's half-width ("n/a" without
    one), or, where the interval was cut to the values the figure can take (`ci_note`), the mean and the
    interval itself ("0.33 [0, 1.77]"), and `(n=k)` when fewer seeds than all measured it; "—" when none did."""
    if entry["mean"] is None:
        return "—"
    fmt = "{:.1f}" if abs(entry["mean"]) >= 10 else "{:.2f}"  # 0.7 ± 0.0 hid a half-width of 0.03
    if entry.get("ci_note") and entry["ci_high"] is not None:  # cut to the figure's range: not ± a half-width
        text = f"{fmt.format(entry['mean'])} [{entry['ci_low']:g}, {fmt.format(entry['ci_high'])}]"
    else:
        spread = "n/a" if len(entry["values"]) < 2 or entry["ci_high"] is None else fmt.format(
            (entry["ci_high"] - entry["ci_low"]) / 2)
        text = f"{fmt.format(entry['mean'])} ± {spread}"
    if len(entry["values"]) < n_seeds:  # the seeds that measured it (no emergency vehicle on the others)
        text += f" (n={len(entry['values'])})"
    return text


def intersection_lines(summary: dict, row: Callable[..., str]) -> list[str]:
    """The report's section of per-signal delay (`intersection_summary`): each signal's delay per vehicle on its
    approaches per controller, and its change against the baseline; none for runs without per-signal figures."""
    per = summary.get("intersections") or {}
    if not per:
        return []
    controllers, base = summary["controllers"], summary["baseline"]
    others = [c for c in controllers if c != base]
    n_seeds = len(summary["seeds"])
    key = "delay_per_veh_s"
    lines = ["", "## Delay per intersection", "",
             f"Delay per vehicle on each signal's approaches (s/veh, `intersections.<id>.{key}` of each run's "
             f"metrics.json): {INTERSECTION_DEFINITIONS[key]}. Mean ± half-width of the 95 % CI over the seeds, as "
             f"above; then the change against {base} with its 95 % CI and the paired p, judged by the same rule "
             "(each signal one more test: among many, one in twenty changes that are chance alone reads better or "
             "worse). "
             f"`{INTERSECTIONS_CSV}` has these and each signal's vehicles through its approaches (its volume), one "
             "row per signal, figure and controller.", "",
             row("intersection", *controllers, *[f"{c} vs {base}" for c in others]),
             row("---", *["---:"] * len(controllers), *["---"] * len(others))]
    for tls, rows in per.items():
        entries = rows[key]["controllers"]
        changes = []
        for c in others:
            e = entries[c]
            if e.get("change_pct") is None:
                changes.append("—")
                continue
            said = e.get("verdict") or e.get("no_verdict")
            changes.append(f"{change_text(e)} ({p_text(e.get('p_paired'))})" + (f": **{said}**" if said else ""))
        sample = rows[key].get("per_seed_n")
        label = f"{tls} ({per_seed_text(sample, judged=False)})" if sample and sample["too_few"] else tls
        lines.append(row(label, *[mean_text(entries[c], n_seeds) for c in controllers], *changes))
    return lines


def change_text(entry: dict, space: str = " ") -> str:
    """The change against the baseline in percent with its 95 % CI, compact: "-30.6 % [-42.9, -18.2]" (`space`
    "": "-30.6% [-42.9, -18.2]", the terminal table's); the bracket left out where the seeds give no interval."""
    text = f"{entry['change_pct']:+.1f}{space}%"
    lo, hi = entry.get("change_pct_ci_low"), entry.get("change_pct_ci_high")
    return text + (f" [{lo:+.1f}, {hi:+.1f}]" if lo is not None and hi is not None else "")


def metric_label(row: dict) -> str:
    """A metric's name as the tables show it, with how few vehicles or pedestrians each seed's run averaged it
    over when that is too few to judge by: "emergency vehicle delay (n = 1–2 vehicles per seed: too few to
    judge)"."""
    sample = row.get("per_seed_n")
    if row.get("none_in_runs"):
        return f"{row['label']} ({row['none_in_runs']})"
    return f"{row['label']} ({per_seed_text(sample)})" if sample and sample.get("too_few") else row["label"]


def report_markdown(summary: dict, chart: str | None) -> str:
    """The comparison on one page of plain markdown, for a memo: the conditions, each figure with its unit and
    95% CI, the change against the baseline in words, what each figure counts, the safety audit and the chart
    (`chart`: its file name, beside the report)."""
    cond = summary.get("conditions", {})
    controllers, base = summary["controllers"], summary["baseline"]
    others = [c for c in controllers if c != base]
    n_seeds = len(summary["seeds"])
    metrics = summary["metrics"]

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|")

    def row(*cells: object) -> str:
        return "| " + " | ".join(cell(c) for c in cells) + " |"

    begin, end = cond.get("begin_s"), cond.get("end_s")
    window = "unknown (the network could not be read)" if begin is None or end is None else \
        f"{seconds_number(begin)}–{seconds_number(end)} s ({(end - begin) / 60:g} min" + (
            f", {clock_text(begin)}–{clock_text(end)})" if begin else ")")
    warmup = cond.get("warmup_s") or 0
    teleport = cond.get("time_to_teleport_s")
    network = cond.get("network")
    lines = [f"# Controller comparison on {summary.get('scenario', cond.get('scenario', ''))}: "
             f"{', '.join(controllers)}", "",
             f"`signalwise compare`, {summary.get('created', '')}. Baseline: {base}.", "",
             "## Conditions", "",
             row("condition", "value"), row("---", "---"),
             row("network", f"{network}" if network else f"built-in scenario {cond.get('scenario', '')}"),
             *([row("routes", ", ".join(cond["routes"]))] if cond.get("routes") else []),
             row("simulated window", window),
             row("warm-up", f"{seconds_number(warmup)} s: the figures count from {seconds_text(begin + warmup, begin)}"
                 if warmup and begin is not None
                 else f"{seconds_number(warmup)} s: the figures count after it" if warmup else "none: the figures count from the start"),
             row("demand scale", f"×{cond.get('demand_scale', 1.0):g} (SUMO's --scale: the route files' vehicles times "
                                 "this)"),
             row("timing profile", cond.get("timing_profile", "")),
             row("seeds", f"{', '.join(str(s) for s in summary['seeds'])} (each seed is the same traffic for every "
                          "controller" + (f"; {seeds_vary_text(cond)}" if seeds_vary_text(cond) else "") + ")"),
             row("step length", f"{cond['step_length_s']:g} s" if cond.get("step_length_s") else ""),
             row("teleports", "never" if teleport is not None and teleport < 0 else
                 f"a vehicle stuck {teleport:g} s jumps ahead" if teleport is not None else ""),
             row("SUMO options applied", ", ".join(f"{k}={v}" for k, v in cond["sumo_options"].items())
                 if cond.get("sumo_options") else "none beyond the run's own"),
             *provenance_rows(summary.get("provenance"), row),
             "", "## Results", "",
             f"Mean ± half-width of the 95 % confidence interval (Student t) over the {n_seeds} seed(s); `(n=k)` "
             "where only k seeds measured the figure, `—` where none did, `n/a` where the seeds give no interval. "
             "`mean [low, high]` where the interval reached below 0, which no figure here can take, and was cut "
             "there (`ci_note` in summary.csv: `t-interval cut at 0`; the true mean is never below 0, so the part "
             "cut off never held it), as `signalwise atspm` cuts its intervals.",
             "", row("metric", "unit", *controllers), row("---", "---", *["---:"] * len(controllers))]
    for m in metrics.values():
        lines.append(row(metric_label(m), m["unit"],
                         *[mean_text(m["controllers"][c], n_seeds) for c in controllers]))
    share = summary.get("fallback_share", {})
    lines.append(row("fallback share", "%", *["—" if share.get(c) is None else f"{share[c]:.1%}"
                                              for c in controllers]))
    for key, label in FAULT_ROWS:
        if any(summary.get(key, {}).values()):
            lines.append(row(label, "count, summed over the seeds",
                             *["—" if summary[key].get(c) is None else str(summary[key][c]) for c in controllers]))
    viol = summary.get("safety_violations", {})
    lines.append(row("safety violations (audit)", "count", *["—" if viol.get(c) is None else str(viol[c])
                                                             for c in controllers]))
    if others:
        lines += ["", f"## Change against {base}", "",
                  f"Change of the mean against {base} with its 95 % confidence interval in brackets (Student t over "
                  "the per-seed differences of the seeds both ran, in percent of the baseline's mean; "
                  "`change_pct_ci_low`/`change_pct_ci_high` in summary.csv, and `change_ci_low`/`change_ci_high` in "
                  "the figure's unit), and the two-sided paired t-test p over the seeds both ran "
                  "(each seed is the same traffic for both; `p_paired` in summary.csv, and Welch's p, which ignores "
                  "the pairing, beside it as `p_welch`). **better** or **worse** where the paired p < "
                  f"{SIGNIFICANT_P:g} and the change is at least {MIN_CHANGE_PCT:g} %, in the figure's direction "
                  "(lower is better for every figure but throughput). **no clear change** where the paired p is "
                  f"{SIGNIFICANT_P:g} or more (the seeds do not tell the change from chance) or the change is under "
                  f"{MIN_CHANGE_PCT:g} % (too small to act on, however sure). **too few to judge** where some seed's "
                  f"run averaged the figure over fewer than {MIN_PER_SEED} vehicles or pedestrians (the results "
                  "table gives how many). Each figure is tested on its own, with no correction for testing "
                  f"{len(metrics)} figures per controller: among that many, one in twenty changes that are chance "
                  "alone still reads better or worse. `—`: no change to give (nothing measured, or a baseline of 0).",
                  "",
                  row("metric", *others), row("---", *["---"] * len(others))]
        for m in metrics.values():
            cells = []
            for c in others:
                e = m["controllers"][c]
                if e.get("change_pct") is None:
                    cells.append("—")
                    continue
                said = e.get("verdict") or e.get("no_verdict")
                words = f": **{said}**" if said else ""
                fewer = f", {len(e['seeds_compared'])} seed(s) both measured" if e.get("seeds_compared") is not None \
                    else ""
                cells.append(f"{change_text(e)} ({p_text(e.get('p_paired'))}{fewer}){words}")
            lines.append(row(m["label"], *cells))  # a small sample: the results table gives its n
    lines += intersection_lines(summary, row)
    lines += ["", "## Safety and warnings", "",
              "- Safety violations: what the independent audit found when it re-checked each run's signal states "
              "and event log against the rules (minimum and maximum green, yellow, all-red, phase sequence, "
              "conflicting greens, pedestrian walk and clearance, cycle length), summed over the seeds: "
              + ", ".join(f"{c} {'—' if viol.get(c) is None else viol[c]}" for c in controllers) + "."]
    for c in summary.get("never_ran", ()):
        lines.append(f"- {c} never ran: the shield's fallback plan served its runs, so its column shows the "
                     "fallback plan, not the controller.")
    for run, why in summary.get("failures", {}).items():
        lines.append(f"- The run {run} failed ({why}): its figures are left out.")
    for caveat in summary.get("caveats", ()):
        lines.append(f"- {caveat}")
    said = summary.get("warnings", ())
    if said:
        lines.append("- What the runs warned of (each run directory's metrics.json lists its own):")
        lines += [f"  - {group['text']}" for group in said]
    lines += ["", "## What the figures count", "",
              "The counted window runs from the warm-up's end to the end of the run.", ""]
    for key, m in metrics.items():
        unit = f" ({m['unit']})" if m["unit"] else ""
        lines.append(f"- **{m['label']}**{unit}: {DEFINITIONS[key]}.")
    model = emission_model_text(summary.get("emission_model"), (summary.get("provenance") or {}).get("sumo"))
    if model:
        lines.append(f"- **emission model** (CO2 and fuel): {model}.")
    lines += ["- **fallback share**: share of the shield's steps in which its fallback plan (Webster), not the "
              "controller, chose the phase; mean over the seeds.",
              "- **safety violations**: the independent audit's count of rule breaks, summed over the seeds.",
              *(["- **controller errors**: decisions at which the controller raised an error (the fallback served "
                 "them), summed over the seeds; each run's `controller_errors.csv` lists each kind once, with its "
                 "count.",
                 "- **invalid proposals**: proposals the shield could not follow as given (a phase that does not "
                 "exist is held, an unreadable decision sends the signal to the fallback), summed over the seeds."]
                if any(any(summary.get(key, {}).values()) for key, _ in FAULT_ROWS) else []),
              "", "## Chart", ""]
    lines.append(f"![Delay over time]({chart}): network delay of the vehicles arriving in each interval, mean over "
                 "the seeds, one line per controller." if chart else "No chart: no run recorded a time series.")
    lines += ["", "## Files", "",
              "In this directory: `summary.csv` (one row per figure and controller, its unit, verdict (with "
              "`verdict_note` where there is none), these conditions and the change's 95 % CI), `summary.json` "
              f"(each controller's `values` with their `seeds`), `{PER_SEED_CSV}` (one row per controller, seed "
              f"and figure), `{INTERSECTIONS_CSV}` (one row per signal, figure and controller: its delay and "
              f"volume over the seeds), `{DELAY_CSV}` (the chart's data), and a run directory per controller and "
              "seed "
              "(`<controller>-s<seed>`: its configuration, metrics, SUMO outputs and hi-res event log).", ""]
    return "\n".join(lines)


#: the conditions summary.csv repeats on every row: a spreadsheet (or a filter) keeps them with each figure
CSV_CONDITIONS = ("scenario", "demand_scale", "timing_profile", "begin_s", "end_s", "warmup_s", "seeds",
                  "seeds_vary", "time_to_teleport_s", "sumo_options")


#: the change's 95 % CI, after every older column (a reader going by position finds those where they were): the
#: change in the figure's unit with its CI, then the CI in percent of the baseline's mean
CSV_CHANGE_CI = ("change", "change_ci_low", "change_ci_high", "change_pct_ci_low", "change_pct_ci_high")


def provenance_rows(made: dict | None, row: Callable[..., str]) -> list[str]:
    """The report's rows of what made the figures (summary.json's `provenance`): the software, each learned
    controller's model (its path, its id, `provenance.model_id`, which the registry shows too, and its files'
    digest, the registry's `content_sha256`) and the command; none for a summary written before it was kept."""
    if not made:
        return []
    rows = [row("software", software_text(made))]

    def model_text(m: dict) -> str:
        if not m.get("sha256"):
            return f"{m['path']} (unknown: no such directory)"
        named = f"model id {m['model_id']}; " if m.get("model_id") else ""  # none in a summary from before ids
        return f"{m['path']} ({named}files SHA-256 {m['sha256']})"

    for spec, models in (made.get("models") or {}).items():
        text = "; ".join(model_text(m) for m in models)
        rows.append(row(f"model of {spec}", text or "not known (none named)"))
    if made.get("command"):
        rows.append(row("command", f"`{made['command']}` in {made.get('cwd', '?')}"))
    return rows


def write_summary_csv(out: Path | TextIO, summary: dict) -> None:
    """One row per metric and controller; the unit, the verdict and the conditions as columns of their own, not
    a comment line a CSV reader would take for a row. `out` is a path, or an open text stream (the API answers
    the same file with `?format=csv`). An entry gives its sample size as `n`, or as its list of `values`."""
    cond = summary.get("conditions", {})
    constants = [_csv_value(cond.get(name)) for name in CSV_CONDITIONS]
    with (open(out, "w", newline="") if isinstance(out, Path) else contextlib.nullcontext(out)) as fh:
        w = csv.writer(fh)
        # Welch's p then the paired p, in the columns their older names (`p_value`, `p_value_paired`) held, and
        # `verdict_note` last, so a reader going by position finds each figure where it was
        w.writerow(["metric", "controller", "n", "mean", "ci_low", "ci_high", "change_pct", "p_welch",
                    "p_paired", "unit", "verdict", *CSV_CONDITIONS, "verdict_note", *CSV_CHANGE_CI, "ci_note"])
        for key, row in summary["metrics"].items():
            for c, e in row["controllers"].items():
                w.writerow([key, c, e["n"] if "n" in e else len(e["values"]), e["mean"], e["ci_low"],
                            e["ci_high"], e.get("change_pct"), e.get("p_welch"), e.get("p_paired"), row["unit"],
                            e.get("verdict"), *constants, e.get("no_verdict"), *[e.get(k) for k in CSV_CHANGE_CI],
                            e.get("ci_note")])


def _csv_value(v: object) -> object:
    """A list as "1 2 3", options as "name=value; ...": one cell each."""
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}={x}" for k, x in v.items())
    return v


def summary_figure(x: float) -> float | None:
    """A figure as the summary files write it: 4 decimals, NaN as empty."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def summary_p(x: float) -> float | None:
    """A p-value to 4 significant digits: 4 decimals wrote 0.00003 as 0.0, a certainty no test gives."""
    return None if x is None or math.isnan(x) else float(f"{x:.4g}")
