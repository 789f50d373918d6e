"""`signalwise atspm` and `signalwise events import`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ...exitcodes import BAD_INPUT
from .charts import DEFAULT_CHART_DEVICES

events_app = typer.Typer(help="Hi-res event logs: import into the store.", no_args_is_help=True)


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def atspm(
    events: Annotated[Path | None, typer.Option("--events", help="event log, CSV or Parquet")] = None,
    run: Annotated[Path | None, typer.Option("--run", help="a `signalwise run` output directory")] = None,
    detectors: Annotated[Path | None, typer.Option("--detectors", help="detector configuration, CSV or Parquet")] = None,
    bin_min: Annotated[int, typer.Option("--bin", help="bin size in minutes")] = 15,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (default: <run>/atspm or ./atspm)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table format: csv or parquet")] = "csv",
    latency_s: Annotated[float, typer.Option("--latency", help="detector latency to subtract (s)")] = 0.0,
    project: Annotated[bool, typer.Option(
        "--project/--no-project", help="project advance-detector arrivals to the stop bar (distance / speed)")] = True,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="draw PNG charts")] = True,
    chart_devices: Annotated[str | None, typer.Option(
        "--chart-devices", metavar="N|all|ID,ID",
        help=f"devices to chart: the first N (default {DEFAULT_CHART_DEVICES}), all, or a comma-separated "
             "list of ids")] = None,
) -> None:
    """Compute ATSPM performance measures from a hi-res event log: tables and PNG charts."""
    if (events is None) == (run is None):
        _fail("give exactly one of --events FILE or --run DIR")
    if fmt not in ("csv", "parquet"):
        _fail(f"--format must be csv or parquet, not {fmt!r}")
    import gc

    gc.disable()  # a short run that frees its arrays by reference counting: no collector passes over them
    worker = None
    if charts:
        from .charts import ChartWorker

        worker = ChartWorker.start()  # before pandas and pyarrow are imported, before any thread starts
    try:
        _atspm(events, run, detectors, bin_min, out, fmt, latency_s, project, charts, chart_devices, worker)
    finally:
        if worker is not None:
            worker.close()
        gc.enable()


def _atspm(events, run, detectors, bin_min, out, fmt, latency_s, project, charts, chart_devices, worker) -> None:
    from .inputs import EventLogError, read_detectors, read_event_log, with_stopbar_yellow_red

    started = time.perf_counter()
    try:
        if run is not None:
            if not run.is_dir():
                _fail(f"{run}: not a directory")
            events = run / "events.csv"
            if not events.exists():
                alt = run / "events.parquet"
                events = alt if alt.exists() else events
            if detectors is None and (run / "detectors.csv").exists():
                detectors = run / "detectors.csv"
        log = read_event_log(events)
        # however the configuration was named (--run or --detectors), stop-bar detectors count yellow/red
        # actuations when it has no Yellow_Red rows, as the API does: the same files give the same tables
        config = with_stopbar_yellow_red(read_detectors(detectors)) if detectors is not None else None
        out_dir = out or ((run / "atspm") if run is not None else Path("atspm"))
        results, paths, chart_paths = _compute_write_draw(
            log, config, dict(bin_min=bin_min, latency_s=latency_s, project=project), out_dir, fmt,
            charts, chart_devices, worker, (events, detectors))
    except (EventLogError, ValueError) as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    typer.echo(f"{len(log):,} events from {len(log.devices)} device(s), {bin_min}-min bins, {elapsed:.1f} s")
    for name, df in results.tables.items():
        typer.echo(f"  {name:22s} {len(df):7,d} rows")
    for w in results.warnings:
        typer.echo(f"warning: {w}")
    typer.echo(f"wrote {len(paths)} tables and {len(chart_paths)} charts to {out_dir}")


def _compute_write_draw(log, config, options: dict, out_dir: Path, fmt: str, charts: bool, chart_devices,
                        worker, sources) -> tuple:
    """Compute, write and draw, overlapping what can be: measures run in two threads, each table is
    written as it comes, and the charts go to the chart worker (a process: the measures hold the GIL
    most of their time) the moment their measures are all there."""
    from .compute import CHART_MEASURES, compute_all, write_table

    paths: list[Path] = []
    for_charts: dict = {}
    wanted = set(CHART_MEASURES) if config is not None else {"split_monitor"}
    plan: dict = {}

    def on_tables(tables: dict) -> None:
        for name, df in tables.items():
            if name in CHART_MEASURES:
                for_charts[name] = df
        if charts and not plan and wanted <= set(for_charts):
            plan.update(_start_charts(dict(for_charts), log, options, chart_devices, worker, sources, out_dir))
        for name, df in tables.items():
            paths.append(write_table(name, df, out_dir, fmt))

    results = compute_all(log, config, threads=2, on_tables=on_tables, **options)
    chart_paths: list[Path] = []
    if charts:
        if not plan:  # some chart measure never came (e.g. an empty log): chart what there is
            plan.update(_start_charts(dict(for_charts or results.tables), log, options, chart_devices, worker,
                                      sources, out_dir))
        results.warnings.extend(plan["notes"])
        if plan["mine"]:
            from .charts import draw_charts

            chart_paths = draw_charts(plan["mine"], plan["axis"], plan["labels"], out_dir)
        elif worker is not None:
            chart_paths, notes = worker.result()
            results.warnings.extend(notes)
    order = {name: i for i, name in enumerate(results.tables)}
    return results, sorted(paths, key=lambda p: order.get(p.stem, len(order))), chart_paths


def _start_charts(tables: dict, log, options: dict, chart_devices, worker, sources, out_dir: Path) -> dict:
    """Plan the charts from their measures and hand them to the worker; -> what is left to do here."""
    from .charts import plan_charts
    from .compute import Results
    from .phase_labels import labels_beside

    labels, notes = labels_beside(*sources)
    results = Results(tables=tables, bin_min=options["bin_min"],
                      span_us=(int(log.time_us.min()), int(log.time_us.max())) if len(log) else None)
    items, axis, more = plan_charts(results, _chart_devices(chart_devices))
    mine = items
    if worker is not None and items:
        out_dir.mkdir(parents=True, exist_ok=True)
        worker.submit(items, axis, labels, out_dir)
        mine = []
    return {"mine": mine, "axis": axis, "labels": labels, "notes": notes + more}


def _chart_devices(text: str | None):
    """--chart-devices: None (default cap), "all", a count, or device ids."""
    if text is None or text.strip().lower() == "all":
        return None if text is None else "all"
    if text.strip().isdigit():
        return int(text)
    return [d.strip() for d in text.split(",") if d.strip()]


def events_import(
    file: Annotated[Path, typer.Argument(help="event log, CSV or Parquet")],
    db: Annotated[str | None, typer.Option("--db", help="database URL (default: SIGNALWISE_DATABASE_URL or ./signalwise.db)")] = None,
    simulation_id: Annotated[str | None, typer.Option("--simulation-id", help="tag the events with a simulation id")] = None,
) -> None:
    """Bulk-load an event log into the store's event table (duplicates are ignored)."""
    import numpy as np

    from .inputs import EventLogError, read_event_log

    try:
        log = read_event_log(file)
    except EventLogError as exc:
        _fail(str(exc))
    from signalwise.store import bulk_insert_events, get_engine

    names = np.array(log.devices, dtype=object)
    stamps = log.time_us.astype("datetime64[us]").astype(object)
    rows = zip(stamps, names[log.device] if len(log) else [], log.event.tolist(), log.param.tolist(), strict=False)
    try:
        inserted = bulk_insert_events(get_engine(db), rows, simulation_id=simulation_id)
    except ValueError as exc:
        _fail(str(exc))
    for w in log.report.warnings():
        typer.echo(f"warning: {w}")
    typer.echo(f"imported {inserted:,} new events of {len(log):,} from {file} "
               f"({len(log) - inserted:,} already stored)")


events_app.command("import")(events_import)


def register(app: typer.Typer) -> None:
    app.command("atspm")(atspm)
    app.add_typer(events_app, name="events")
