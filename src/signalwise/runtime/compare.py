"""Compare controllers over seeds, in parallel worker processes.

libsumo runs one simulation per process, so each (controller, seed) runs in a
fresh worker (`max_tasks_per_child=1`). The summary gives, per metric, the
mean and 95% CI per controller, the change against the first controller and
Welch's t-test p-value.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..analytics.stats import compare as compare_samples
from ..analytics.stats import mean_ci
from ..outdirs import why_not_fresh
from ..sim.processes import fresh_process_context, in_callers_env
from ..termination import Terminated, sigterm_as_interrupt
from .config import RunConfig
from .run import RunDirectoryError, distinct_slugs

#: (metric key in metrics.json "network", label, unit, lower is better)
METRICS = (
    ("avg_delay_s", "avg delay (RESCO)", "s", True),
    ("avg_wait_s", "avg waiting", "s", True),
    ("avg_travel_time_s", "avg travel time", "s", True),
    ("stops_per_veh", "stops per vehicle", "", True),
    ("throughput_veh", "throughput", "veh", False),
    ("never_inserted", "never inserted", "veh", True),
    # SUMO's teleports (each cuts a trip short and lowers the delay); a run from before they were counted has none
    ("teleports", "teleports (SUMO)", "", True),
    # SUMO's count of persons jammed (a crosswalk with no walk); a run from before they were counted has none
    ("pedestrians_jammed", "pedestrians jammed (SUMO)", "", True),
    ("locked_veh", "locked in junctions", "veh", True),
    ("avg_queue_veh", "avg queue", "veh", True),
    ("co2_kg", "CO2", "kg", True),
    ("fuel_l", "fuel", "l", True),
    ("emergency_delay_s", "emergency veh delay", "s", True),
    ("ped_delay_s", "pedestrian delay", "s", True),
)
#: metrics a run has only when SUMO computed the emissions (`metrics["emissions_recorded"]`); else "—", not 0
EMISSIONS = ("co2_kg", "fuel_l")


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
    global _stopped
    _stopped = event


def _run_one(cfg_json: str, run_dir: str) -> tuple[str, dict]:
    """Worker: one run, in a fresh process; SIGTERM stops it as Ctrl-C does, its run directory marked incomplete."""
    from .run import execute_run

    if _stopped is not None and _stopped.is_set():
        raise RuntimeError("the comparison was stopped before this run started")
    cfg = RunConfig.model_validate_json(cfg_json)
    with sigterm_as_interrupt():
        result = execute_run(cfg, Path(run_dir))
    return str(result.run_dir), result.metrics


def compare_controllers(base: RunConfig, controllers: list[str], seeds: list[int], out_dir: Path,
                        workers: int | None = None,
                        on_done: Callable[[str, int, dict | None, str | None], None] | None = None) -> CompareResult:
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
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1, initializer=_note_stop,
                             initargs=(stopped,)) as pool, _stopped_on_interrupt(pool, stopped):
        dirs = distinct_slugs(list(controllers))
        for seed in seeds:
            for c in controllers:
                cfg = base.model_copy(update={"controller": c, "seed": seed, "out_dir": out_dir})
                rd = out_dir / f"{dirs[c]}-s{seed}"
                jobs[pool.submit(in_callers_env(_run_one), cfg.model_dump_json(), str(rd))] = (c, seed)
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
    summary["created"] = dt.datetime.now().isoformat(timespec="seconds")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _write_summary_csv(out_dir / "summary.csv", summary)
    chart = None
    try:
        chart = plot_delay_over_time(controllers, run_dirs, out_dir / "delay_over_time.png", base.scenario_label)
    except Exception:  # a chart must never lose the numbers
        chart = None
    return CompareResult(out_dir, controllers, seeds, runs, run_dirs, summary, chart, failures)


@contextlib.contextmanager
def _stopped_on_interrupt(pool: ProcessPoolExecutor, stopped) -> Iterator[None]:  # noqa: ANN001 - an Event
    """On Ctrl-C or SIGTERM, no queued run starts: leaving the pool would otherwise wait for every one of them.
    A terminal's Ctrl-C reaches the workers too; a SIGTERM (`Terminated`) sent to this process alone is passed
    on to the running ones (`_run_one` ignores a second), so they stop and mark their run directories too."""
    try:
        yield
    except KeyboardInterrupt as exc:
        stopped.set()
        running = list(getattr(pool, "_processes", None) or {})  # worker pids: the pool has no public list
        if isinstance(exc, Terminated):
            for pid in running:
                with contextlib.suppress(OSError):
                    os.kill(pid, exc.signum)
        pool.shutdown(wait=True, cancel_futures=True)  # the running ones have marked their run directories
        exc.what_is_left = "the runs under way marked their run directories incomplete"
        raise


@dataclass
class NetworkCheck:
    """What the check saw of the network every run will use."""

    #: signals left to their own program, and why (`sim.signal_model.RefusedSignal`)
    refused: list = field(default_factory=list)
    #: per signal, where `fixed` does not run the network's program as written (`sim.signal_model.PLAN_NOTE`)
    plan_notes: dict[str, list[str]] = field(default_factory=dict)


def check_network(base: RunConfig, controllers: Sequence[str] = ()) -> NetworkCheck:
    """Start the network once, for one step with its routes, in this process; a SimulationError (or ScenarioError)
    names what every run would fail on: a network without a signal to control, a route over an edge the network
    lacks, a per-intersection override for a signal it does not have. Each of `controllers` is then built for
    every signal as its runs will build it, so a model that does not fit the network (ControllerUnavailable)
    is refused too. Called before any worker starts, so a comparison no run can finish is one line, not a
    failure per controller and seed after the baseline's runs and a table of dashes. A SUMO given by
    `remote_port` is left alone (starting it here would take it from the runs)."""
    if base.remote_port is not None:
        return NetworkCheck()
    from ..control.base import ControllerUnavailable
    from ..control.learning.qtable import ModelError
    from ..sim.signal_model import plan_notes
    from .loop import LoopStepper, open_field, resolve_scenario, run_window, sumo_options

    cfg = base.model_copy(update={"gui": False})
    scenario = resolve_scenario(cfg)
    # the runs' own end, though nothing steps to it: SUMO gives a flow without an `end` the run's end as its end,
    # and one that begins after an end one step in was refused ("ends before its begin time") where runs are not
    _begin_s, end_s = run_window(cfg, scenario)
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=end_s))
    try:
        for name in controllers:
            try:
                LoopStepper(cfg.model_copy(update={"controller": name}), fld, end_s)
            except ModelError as exc:
                raise ControllerUnavailable(f"{name}: {exc}") from None
    finally:
        fld.backend.close()
    return NetworkCheck(list(fld.refused), plan_notes(fld.intersections))


def summarize(controllers: list[str], seeds: list[int], runs: dict[tuple[str, int], dict]) -> dict:
    """Mean and 95% CI per metric over the seeds that measured it; change vs the first controller, Welch and paired
    p-values over the seeds both measured (`seeds_compared` when that is fewer)."""
    baseline = controllers[0]
    table = {}
    for key, label, unit, lower_better in METRICS:
        row = {"label": label, "unit": unit, "lower_is_better": lower_better, "controllers": {}}
        # a run that measured none of it (emissions off; no vehicle arrived, no emergency vehicle or pedestrian)
        have = {cs for cs, m in runs.items() if (key not in EMISSIONS or m.get("emissions_recorded", True))
                and m["network"].get(key) is not None}
        base_seeds = [s for s in seeds if (baseline, s) in have]
        for c in controllers:
            c_seeds = [s for s in seeds if (c, s) in have]
            vals = [runs[(c, s)]["network"][key] for s in c_seeds]
            ci = mean_ci(vals)
            entry = {"values": vals, "mean": _num(ci.mean), "ci_low": _num(ci.ci_low), "ci_high": _num(ci.ci_high)}
            # the change and its tests over the seeds both measured: a seed one side has no figure for (no
            # emergency vehicle, nothing arrived, a run failed) is left out of the other side too
            common = [s for s in c_seeds if s in base_seeds]
            if c != baseline and common:
                cmp = compare_samples([runs[(baseline, s)]["network"][key] for s in common],
                                      [runs[(c, s)]["network"][key] for s in common], paired=True)
                entry["change_pct"] = _num(cmp.change_pct)
                entry["p_value"] = _num(cmp.p_value)
                entry["p_value_paired"] = _num(cmp.p_value_paired)
                if common != c_seeds or common != base_seeds:
                    entry["seeds_compared"] = common
            row["controllers"][c] = entry
        table[key] = row
    # None (shown "—") for a controller none of whose runs finished: nothing was audited, so no count of 0
    safety = {c: sum(runs[(c, s)].get("safety", {}).get("violations", 0) for s in seeds if (c, s) in runs)
              if any((c, s) in runs for s in seeds) else None for c in controllers}
    share = {c: _num(sum(f) / len(f)) if (f := [runs[(c, s)]["network"]["fallback_fraction"] for s in seeds
                                                   if (c, s) in runs]) else None for c in controllers}
    never = [c for c in controllers
             if any((c, s) in runs for s in seeds) and not any(runs[(c, s)].get("controller_ran", True)
                                                               for s in seeds if (c, s) in runs)]
    return {"baseline": baseline, "controllers": controllers, "seeds": seeds, "metrics": table,
            "safety_violations": safety, "fallback_share": share, "never_ran": never}


def delay_over_time(run_dirs: list[Path]) -> list[tuple[float, float]]:
    """(interval start s, network delay of the vehicles arriving in it s/veh), the mean over the runs that
    have the interval, from each run's `timeseries.csv` (runs without one are skipped)."""
    per_time: dict[float, list[float]] = {}
    for rd in run_dirs:
        if not (rd / "timeseries.csv").exists():
            continue
        with open(rd / "timeseries.csv") as fh:
            for row in csv.DictReader(fh):
                if row["scope"] == "network" and row["avg_delay_s"] not in ("", "None"):
                    per_time.setdefault(float(row["begin_s"]), []).append(float(row["avg_delay_s"]))
    return [(t, sum(per_time[t]) / len(per_time[t])) for t in sorted(per_time)]


def plot_delay_over_time(controllers: list[str], run_dirs: dict[tuple[str, int], Path], path: Path,
                         title: str) -> Path | None:
    """Network delay per interval, mean over seeds, one line per controller."""
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
    ax.set_xlabel("simulation time (min)")
    ax.set_ylabel("delay of vehicles arriving (s/veh)")
    ax.set_title(f"Delay over time — {title} (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _write_summary_csv(path: Path, summary: dict) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "controller", "n", "mean", "ci_low", "ci_high", "change_pct", "p_value",
                    "p_value_paired"])
        for key, row in summary["metrics"].items():
            for c, e in row["controllers"].items():
                w.writerow([key, c, len(e["values"]), e["mean"], e["ci_low"], e["ci_high"], e.get("change_pct"),
                            e.get("p_value"), e.get("p_value_paired")])


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)
