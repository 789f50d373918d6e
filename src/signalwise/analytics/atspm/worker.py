"""A second process for `signalwise atspm`: the charts' measures, their tables and the charts.

The measures hold the GIL for most of their time, so two threads only take turns; a process uses
the other core. The command's own process reads the log and computes the other measures while this
one reads the same file, computes the measures the charts draw from (`CHART_GROUP`, about half the
work), writes their tables and draws the charts. Nothing but the job and a small summary crosses
between them: each reads the file itself, as handing a million-event log through a pipe would cost
more than reading it.

It is forked first thing, before the command imports pandas or pyarrow or starts a thread, so
nothing half-locked is inherited. Linux only (fork); elsewhere `MeasureWorker.start` returns None
and the command does all of it in its own process (`run_job` there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: the measures computed here: those the charts draw from, with the tables computed beside them
#: (each group of `compute._tasks` whole, so no group is computed twice), and the per-plan table, which
#: reads the split-failure cycles, the PCD and the pedestrian delays computed here (the pedestrian delay chart
#: draws those), and the timing revisions the charts mark
CHART_GROUP = ("split_failures", "split_failure_cycles", "pcd", "pcd_cycles", "approach_delay", "arrival_on_green",
               "ped_delay", "platoon_ratio", "arrival_on_green_by_approach", "platoon_ratio_by_approach",
               "split_monitor", "split_monitor_binned", "plans", "timing_revisions")


@dataclass
class Job:
    events: Path
    detectors: Path | None
    options: dict  # bin_min, latency_s, project, revision_devices: as `compute_all` takes them
    out_dir: Path
    fmt: str
    charts: bool
    chart_devices: object = None  # None, "all", a count or device ids (charts.select_devices)
    #: the log is a signalwise run's (its clock dates every run on one day): the charts say simulated time
    run_clock: bool = False
    #: `--nema`: {signal: {phase: NEMA numbers}} (`nema.NemaMap`), checked; None = tables and charts without NEMA
    nema: dict | None = None
    #: `--pcd-by`: the PCD's panels per phase ("phase") or per phase and approach ("approach")
    pcd_by: str = "phase"


@dataclass
class Done:
    rows: dict[str, int] = field(default_factory=dict)  # table name -> rows written
    paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chart_paths: list[Path] = field(default_factory=list)


def compute_options(job: Job) -> dict:
    """The job's options for `compute_all`, with `revision_devices` (unless given): the devices whose 131s may
    name a timing revision, those the run's signal model beside the log lists timing revisions for
    (`coordination_patterns.revision_devices`); none for a log without a model (a field controller's)."""
    if "revision_devices" in job.options:
        return job.options
    from ..coordination_patterns import read_revision_devices
    from .nema import signal_model_beside

    path = signal_model_beside(job.events, job.detectors)
    # unreadable: the audit and --nema say so; here every 131 stays a plan
    devices = read_revision_devices(path)[0] if path is not None else frozenset()
    return {**job.options, "revision_devices": tuple(sorted(devices))}


def run_job(job: Job, log=None, config=None) -> Done:
    """Compute CHART_GROUP, write its tables and draw the charts. `log`/`config` when the caller
    has read them already (no worker process); otherwise they are read from the job's files."""
    from .compute import compute_all, write_table
    from .inputs import read_detectors, read_event_log, with_stopbar_yellow_red
    from .nema import nema_labels, with_nema

    if log is None:
        log = read_event_log(job.events)
        config = with_stopbar_yellow_red(read_detectors(job.detectors)) if job.detectors is not None else None
    results = compute_all(log, config, only=CHART_GROUP, **compute_options(job))
    done = Done(rows={name: len(df) for name, df in results.tables.items()}, warnings=list(results.warnings))
    done.paths = [write_table(name, with_nema(df, job.nema), job.out_dir, job.fmt)
                  for name, df in results.tables.items()]
    if job.charts:
        from .charts import draw_charts, plan_charts
        from .phase_labels import labels_beside

        labels, notes = labels_beside(job.events, job.detectors)
        labels = nema_labels(labels, job.nema)
        items, axis, more = plan_charts(results, job.chart_devices)
        if axis:
            axis["run_clock"] = job.run_clock
        done.warnings += notes + more
        done.chart_paths = draw_charts(items, axis, labels, job.out_dir, job.pcd_by) if items else []
    return done


class MeasureWorker:
    """The forked process that runs one `Job` while its parent does the rest."""

    def __init__(self, ctx):
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="signalwise-atspm")
        self._proc.start()
        child.close()
        self._pending = False

    @classmethod
    def start(cls) -> MeasureWorker | None:
        import os
        import sys

        if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
            return None
        import multiprocessing as mp

        try:
            return cls(mp.get_context("fork"))
        except OSError:
            return None

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def submit(self, job: Job) -> None:
        try:
            self._conn.send(job)
        except (OSError, ValueError):  # it is gone already: `result` says so
            pass
        self._pending = True

    def result(self) -> tuple[Done | None, str | None]:
        """(what the job did, None) or (None, why it failed); waits for the job to finish."""
        if not self._pending:
            return None, "no job was given"
        self._pending = False
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            return None, "the worker process ended without an answer"
        return (payload, None) if status == "ok" else (None, payload)

    def close(self) -> None:
        """Stop the process: at once if it is still working (its parent failed and needs nothing more)."""
        if self._pending:
            self._proc.terminate()
        else:
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()


def _worker_main(conn) -> None:
    import gc

    gc.disable()  # as in the parent: arrays are freed by reference counting, the process is short
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            return
        try:
            conn.send(("ok", run_job(job)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which falls back to doing it itself
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
