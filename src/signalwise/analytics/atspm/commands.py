"""`signalwise atspm` and `signalwise events import`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer

from ...exitcodes import BAD_INPUT
from ...outdirs import why_unwritable
from ...rundirs import comparison_runs
from ...store.cli_engine import DB_HELP
from .charts import DEFAULT_CHART_DEVICES

events_app = typer.Typer(help="Hi-res event logs: import into the store.", no_args_is_help=True)


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def atspm(
    source: Annotated[Path | None, typer.Argument(
        metavar="[RUN_DIR|EVENTS]", show_default=False,
        help="a `signalwise run` directory or an event log: the same as --run or --events")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="event log, CSV or Parquet")] = None,
    run: Annotated[Path | None, typer.Option("--run", help="a `signalwise run` output directory")] = None,
    detectors: Annotated[Path | None, typer.Option("--detectors", help="detector configuration, CSV or Parquet")] = None,
    bin_min: Annotated[int, typer.Option("--bin", help="bin size in minutes")] = 15,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (default: <run>/atspm or ./atspm)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table format: csv or parquet")] = "csv",
    latency_s: Annotated[float, typer.Option("--latency", help="detector latency to subtract (s)")] = 0.0,
    project: Annotated[bool, typer.Option(
        "--project/--no-project", help="project advance-detector arrivals to the stop bar (distance / speed)")] = True,
    split_failure_rule: Annotated[str, typer.Option(
        "--split-failure-rule", metavar="atspm|udot",
        help="split failures as the atspm package judges them (both occupancies >= 80 %, binned by the end of "
             "the measured red) or as UDOT ATSPM does (> 79 %, binned by the cycle's begin green)")] = "atspm",
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="draw PNG charts")] = True,
    chart_devices: Annotated[str | None, typer.Option(
        "--chart-devices", metavar="N|all|ID,ID",
        help=f"devices to chart: the first N (default {DEFAULT_CHART_DEVICES}), all, or a comma-separated "
             "list of ids")] = None,
    pcd_by: Annotated[str, typer.Option(
        "--pcd-by", metavar="phase|approach",
        help="the PCD's panels: one per phase, or one per phase and approach (each direction of a phase on its "
             "own, as UDOT ATSPM draws it; the approach of each detector from the detector configuration)")
    ] = "phase",
    nema: Annotated[Path | None, typer.Option(
        "--nema", metavar="FILE",
        help="YAML file giving each signal's phases their NEMA numbers ({J1: {1: [2, 6], 2: [1, 5]}}): a NEMA "
             "column in the tables, NEMA names in the charts (docs/atspm.md#nema-numbering)")] = None,
    nema_template: Annotated[bool, typer.Option(
        "--nema-template",
        help="print a --nema file to fill in, every signal's phases with the movements they serve, and stop")] = False,
) -> None:
    """Compute ATSPM performance measures from a hi-res event log: tables and PNG charts.

    `signalwise atspm runs/RUN` reads a run directory, `signalwise atspm log.csv --detectors det.csv` a field
    controller's log."""
    if source is not None:  # as `audit RUN_DIR` takes it: a directory is a run, anything else an event log
        if events is not None or run is not None:
            _fail(f"{source} given with --events or --run: name the run directory or the event log once")
        run, events = (source, None) if source.is_dir() else (None, source)
    if events is not None and run is not None:
        _fail("--events and --run both given: name the event log or the run directory, not both")
    if events is None and run is None:
        _fail("give a run directory or an event log (signalwise atspm RUN_DIR; --events FILE, --run DIR)")
    if fmt not in ("csv", "parquet"):
        _fail(f"--format must be csv or parquet, not {fmt!r}")
    if not (math.isfinite(latency_s) and latency_s >= 0):
        _fail(f"--latency must be a number of seconds, 0 or more, not {latency_s:g}")
    if bin_min < 1:
        _fail(f"--bin must be at least 1 minute, not {bin_min}")
    if split_failure_rule not in ("atspm", "udot"):
        _fail(f"--split-failure-rule must be atspm or udot, not {split_failure_rule!r}")
    if pcd_by not in ("phase", "approach"):
        _fail(f"--pcd-by must be phase or approach, not {pcd_by!r}")
    import gc

    gc.disable()  # a short run that frees its arrays by reference counting: no collector passes over them
    from .worker import MeasureWorker

    worker = MeasureWorker.start()  # before pandas and pyarrow are imported, before any thread starts
    try:
        _atspm(events, run, detectors, bin_min, out, fmt, latency_s, project, charts, chart_devices, worker,
               split_failure_rule, nema, nema_template, pcd_by)
    finally:
        if worker is not None:
            worker.close()
        gc.enable()


def _atspm(events, run, detectors, bin_min, out, fmt, latency_s, project, charts, chart_devices, worker,
           split_failure_rule="atspm", nema=None, nema_template=False, pcd_by="phase") -> None:
    from .inputs import EventLogError

    started = time.perf_counter()
    if run is not None:
        if not run.is_dir():
            _fail(f"{run}: not a directory")
        if not (run / "events.csv").exists() and (runs := comparison_runs(run)):
            if nema is not None or nema_template:
                _fail(f"--nema: {run} is a comparison; its figures are over all phases. Give --nema with one "
                      "run's directory (signalwise atspm RUN_DIR --nema FILE)")
            _compare_dir(run, runs, out, bin_min, latency_s, project, split_failure_rule)
            return
        events = run / "events.csv"
        if not events.exists():
            alt = run / "events.parquet"
            events = alt if alt.exists() else events
        if detectors is None and (run / "detectors.csv").exists():
            detectors = run / "detectors.csv"
    from .worker import Job

    options = dict(bin_min=bin_min, latency_s=latency_s, project=project, split_failure_rule=split_failure_rule)
    job = Job(events=events, detectors=detectors, options=options,
              out_dir=out or ((run / "atspm") if run is not None else Path("atspm")), fmt=fmt, charts=charts,
              chart_devices=_chart_devices(chart_devices), run_clock=run is not None, pcd_by=pcd_by)
    log = None
    if nema is not None or nema_template:
        try:
            job.nema, log = _nema_mapping(job, nema, nema_template)
        except (EventLogError, ValueError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        if nema_template:
            return
    why = why_unwritable(job.out_dir)
    if why:
        _fail(f"--out {job.out_dir}: {why}")
    try:
        n_events, n_devices, rows, paths, chart_paths, warnings = _compute_write_draw(job, worker, log)
    except (EventLogError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:  # a file that cannot be read or written (permissions, a full disk)
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    elapsed = time.perf_counter() - started
    typer.echo(f"{n_events:,} events from {n_devices} device(s), {bin_min}-min bins, {elapsed:.1f} s")
    for name, n in rows.items():
        typer.echo(f"  {name:28s} {n:7,d} rows")
    if n_events == 0:
        warnings = [*warnings, f"{events} holds no events: every table is empty"]
    if run is not None and _recorded_lean(run):
        warnings = [*warnings, f"{run} was recorded lean (record: lean, as training episodes are): it has no "
                               "detector events, so the measures made from them are empty; run it again with "
                               "the full record (the default) for every measure"]
    for w in warnings:
        typer.echo(f"warning: {w}")
    typer.echo(f"wrote {len(paths)} tables and {len(chart_paths)} charts to {job.out_dir}")


def _nema_mapping(job, path: Path | None, template: bool):
    """`--nema FILE` read and checked against the run's signal model (or, for a log without one, the phases the
    log shows), before anything is computed or written; `--nema-template` printed. -> (mapping or None, the log
    when it had to be read for the check, else None)."""
    from .nema import (
        check_signals,
        log_phases,
        model_phases,
        nema_template,
        read_model,
        read_nema,
        signal_model_beside,
    )
    from .phase_labels import phase_labels

    mapping = read_nema(path) if path is not None else None
    model_path = signal_model_beside(job.events, job.detectors)
    log = None
    if model_path is not None:
        model = read_model(model_path)
        phases, where, labels = model_phases(model), f"the run's signal model {model_path}", phase_labels(model)
    else:
        from .inputs import read_event_log

        log = read_event_log(job.events)
        phases, where, labels = log_phases(log), f"the event log {job.events}", {}
    if mapping is not None:
        check_signals(mapping, phases, f"--nema {path}", where)
    if template:
        typer.echo(nema_template(phases, labels), nl=False)
    return mapping, log


def _compare_dir(compare_dir: Path, runs: list[Path], out: Path | None, bin_min, latency_s, project,
                 split_failure_rule) -> None:
    """A comparison's directory: each controller's ATSPM figures over its seeds, against the baseline."""
    import json

    from .comparison import figures_by_controller, table_text, write_csv
    from .inputs import EventLogError

    out = out or compare_dir / "atspm"
    why = why_unwritable(out)
    if why:
        _fail(f"--out {out}: {why}")
    options = dict(bin_min=bin_min, latency_s=latency_s, project=project, split_failure_rule=split_failure_rule)
    done = [0]

    def on_run(run: Path) -> None:
        done[0] += 1
        typer.echo(f"  {done[0]}/{len(runs)} {run.name}", err=True)

    try:
        rows, warnings = figures_by_controller(compare_dir, runs, options, on_run)
    except (EventLogError, ValueError) as exc:
        _fail(str(exc))
    baseline = json.loads((compare_dir / "summary.json").read_text())["baseline"]
    summary = json.loads((compare_dir / "summary.json").read_text())
    whole = f" (whole runs: the {summary['warmup_s']:g} s warm-up included)" if summary.get("warmup_s") else ""
    typer.echo(f"ATSPM of {len(runs)} runs in {compare_dir}: mean ± 95% CI over seeds, all signals and phases"
               f"{whole}; change vs {baseline}, paired t-test p over the same seeds")
    for line in table_text(rows, baseline):
        typer.echo(line)
    for w in warnings:
        typer.echo(f"warning: {w}")
    write_csv(rows, out / "comparison.csv", summary.get("conditions"))
    typer.echo(f"wrote {out / 'comparison.csv'}; each run's own tables and charts: signalwise atspm {runs[0]}")


def _recorded_lean(run: Path) -> bool:
    """Whether a run directory's config says it recorded only trips, signal events and states."""
    import yaml

    try:
        config = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and config.get("record") == "lean"


def _compute_write_draw(job, worker, log=None) -> tuple:
    """Compute, write and draw, split between two processes: the worker (forked at the start) reads
    the log itself and does the charts' measures, their tables and the charts (`worker.CHART_GROUP`);
    this process reads it too and computes and writes the rest, in two threads. Without a worker, or
    when it fails, this process does it all.
    `log`: the job's event log when it has been read already (to check `--nema` against it).
    -> (events, devices, {table: rows} in MEASURES order, table paths, chart paths, warnings)."""
    from .compute import MEASURES, compute_all, write_table
    from .inputs import read_detectors, read_event_log, with_stopbar_yellow_red
    from .nema import with_nema
    from .worker import CHART_GROUP, compute_options, run_job

    if worker is not None:
        worker.submit(job)
    if log is None:
        log = read_event_log(job.events)
    # however the configuration was named (--run or --detectors), stop-bar detectors count yellow/red
    # actuations when it has no Yellow_Red rows, as the API does: the same files give the same tables
    config = with_stopbar_yellow_red(read_detectors(job.detectors)) if job.detectors is not None else None
    paths: list[Path] = []

    def on_tables(tables: dict) -> None:
        for name, df in tables.items():
            paths.append(write_table(name, with_nema(df, job.nema), job.out_dir, job.fmt))

    mine = compute_all(log, config, only=tuple(m for m in MEASURES if m not in CHART_GROUP), threads=2,
                       on_tables=on_tables, **compute_options(job))
    warnings = list(mine.warnings)
    done, failure = worker.result() if worker is not None else (None, None)
    if done is None:  # no worker, or it failed: the same job here, on the log already read
        if failure:
            warnings.append(f"the chart process failed ({failure}); its measures and charts were done here")
        done = run_job(job, log, config)
    rows = {name: len(df) for name, df in mine.tables.items()} | done.rows
    order = {name: i for i, name in enumerate(MEASURES)}
    rows = dict(sorted(rows.items(), key=lambda kv: order[kv[0]]))
    paths = sorted(paths + list(done.paths), key=lambda p: order.get(p.stem, len(order)))
    warnings = list(dict.fromkeys(warnings + done.warnings))
    return len(log), len(log.devices), rows, paths, list(done.chart_paths), warnings


def _chart_devices(text: str | None):
    """--chart-devices: None (default cap), "all", a count, or device ids."""
    if text is None or text.strip().lower() == "all":
        return None if text is None else "all"
    if text.strip().isdigit():
        return int(text)
    return [d.strip() for d in text.split(",") if d.strip()]


def events_import(
    file: Annotated[Path, typer.Argument(help="event log, CSV or Parquet")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    simulation_id: Annotated[str | None, typer.Option("--simulation-id", help="tag the events with a simulation id")] = None,
) -> None:
    """Bulk-load an event log into the store's event table (duplicates are ignored)."""
    import numpy as np

    from .inputs import EventLogError, read_event_log

    try:
        log = read_event_log(file)
    except EventLogError as exc:
        _fail(str(exc))
    from signalwise.store import bulk_insert_events
    from signalwise.store.cli_engine import engine_or_exit, writes_or_exit
    from signalwise.store.engine import shown_url

    from .fall_back_import import continue_fall_back

    engine = engine_or_exit(db)
    try:
        with writes_or_exit(engine, f"cannot write into {shown_url(engine)}"):
            # a fall-back split across two files: line the repeated hour up with the stored one, not over it
            moved = continue_fall_back(engine, log, simulation_id or "")
            names = np.array(log.devices, dtype=object)
            stamps = log.time_us.astype("datetime64[us]").astype(object)
            rows = zip(stamps, names[log.device] if len(log) else [], log.event.tolist(), log.param.tolist(),
                       strict=False)
            inserted = bulk_insert_events(engine, rows, simulation_id=simulation_id)
    except ValueError as exc:
        _fail(str(exc))
    for w in [*log.report.warnings(), *moved]:
        typer.echo(f"warning: {w}")
    typer.echo(f"imported {inserted:,} new events of {len(log):,} from {file} "
               f"({len(log) - inserted:,} already stored)")


events_app.command("import")(events_import)


def register(app: typer.Typer) -> None:
    app.command("atspm")(atspm)
    app.add_typer(events_app, name="events")
