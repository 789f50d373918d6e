"""Compute every measure at once, and write the tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import approach_delay as D
from . import cycles as C
from . import gaps as G
from . import measures as M
from . import plans as P
from .detector_health import stuck_on_warnings, without_chatter
from .inputs import DetectorConfig, EventLog
from .interruptions import interruption_warnings

#: measure name -> one-line description (also the API's list of measures)
MEASURES = {
    "actuations": "detector actuations (82) per bin and detector channel",
    "arrival_on_green": "arrivals on green (%) per bin and phase, advance detectors",
    "platoon_ratio": "platoon ratio and HCM arrival type per bin and phase",
    "arrival_on_green_by_approach": "arrivals on green (%) per bin, phase and approach (direction of travel)",
    "platoon_ratio_by_approach": "platoon ratio and HCM arrival type per bin, phase and approach",
    "approach_volume": "vehicles per bin and approach (direction of travel) at the advance detectors",
    "approach_delay": "approach delay (UDOT's): arrivals on red wait for green; volume, total and per-vehicle "
                      "delay per bin and phase",
    "split_failures": "split failures per bin and phase (green and first-5-s red occupancy >= 80%)",
    "split_failure_cycles": "green time and occupancies of every complete cycle",
    "yellow_red": "yellow/red actuations by offset from begin red (atspm's table)",
    "red_light_running": "yellow, red and severe red (> 4 s) actuations per bin and phase",
    "terminations": "gap-outs, max-outs and force-offs per bin and phase",
    "ped": "pedestrian services and actuations per bin and phase",
    "ped_delay": "pedestrian delay per bin and phase",
    "phase_wait": "phase wait (call to green) per bin and phase",
    "preemption": "each preemption: call on/off, duration, entry delay, time to service, dwell, max presence exceeded",
    "split_monitor": "green, yellow, red clearance, red per phase cycle",
    "split_monitor_binned": "split monitor averages and terminations per bin and phase",
    "pcd": "Purdue Coordination Diagram: each arrival's time in cycle",
    "pcd_cycles": "Purdue Coordination Diagram: green/yellow start in each cycle",
    "plans": "split failures, arrivals on green and pedestrian delay per coordination plan (event 131) and phase",
    "timing_revisions": "each timing revision a live run logged (a 131 naming it, not a plan): device, time, revision",
}


@dataclass
class Results:
    tables: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    bin_min: int = 15
    #: first and last event time of the log (µs, naive local time), for the charts' time axis
    span_us: tuple[int, int] | None = None


#: the binned tables: each gets a `Complete` column, False for a bin a data gap of its device touches or the
#: log ends inside; a bin from the log's end on is left out (`gaps.with_complete`)
BINNED = ("actuations", "arrival_on_green", "platoon_ratio", "arrival_on_green_by_approach",
          "platoon_ratio_by_approach", "approach_volume", "approach_delay", "split_failures", "yellow_red", "red_light_running",
          "terminations", "ped", "ped_delay", "phase_wait", "split_monitor_binned")
#: the measures whose intervals a data gap cuts (left out, with a warning), and the tables that read them
GAP_CUT = {"split_monitor": ("split_monitor", "split_monitor_binned"),
           "pcd": ("pcd", "pcd_cycles", "approach_delay", "plans"),
           "arrival_on_green": ("arrival_on_green", "platoon_ratio", "arrival_on_green_by_approach",
                                "platoon_ratio_by_approach", "plans"),
           "split_failures": ("split_failures", "split_failure_cycles", "plans"),
           "phase_wait": ("phase_wait",), "ped_delay": ("ped_delay", "plans")}

#: the measures the charts draw from, computed first so charting can start while the rest is computed
CHART_MEASURES = ("split_monitor", "pcd", "pcd_cycles", "arrival_on_green", "split_failures")


def compute_all(log: EventLog, config: DetectorConfig | None, bin_min: int = 15, latency_s: float = 0.0,
                project: bool = True, fill_in_missing: bool = True, red_time_s: int = 5,
                only: tuple[str, ...] | None = None, threads: int = 1, on_tables=None,
                split_failure_rule: str = "atspm", plans_in_force: P.PlansInForce | None = None,
                revision_devices=()) -> Results:
    """All measures (or `only` those named) for a log and detector configuration.

    `threads` > 1 computes independent groups of measures in that many threads: numpy and pandas
    release the GIL in their sorts and array passes, so two threads take ~1/3 off the time.
    `on_tables({name: table})` is called in the calling thread as each group is done (the charts'
    measures first), so a caller can write tables or start charts while the rest is computed.
    `plans_in_force`: for a log cut at a window's start, the plan each device ran there (`plans` only).
    `revision_devices`: the devices whose run's signal model lists timing revisions: their 131s are told apart
    into plans and timing revisions (`plans.revision_131s`); every other device's 131 is a plan.
    """

    if bin_min <= 0 or (60 % bin_min and bin_min % 60):
        raise ValueError(f"bin size {bin_min} min must divide an hour (or be whole hours)")
    log = without_chatter(log)  # a chattering detector's pulses are no vehicles (`detector_health`)
    want = set(only or MEASURES)
    unknown = want - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown measure(s) {', '.join(sorted(unknown))}; known: {', '.join(MEASURES)}")
    res = Results(bin_min=bin_min, span_us=(int(log.time_us.min()), int(log.time_us.max())) if len(log) else None)
    res.warnings.extend(log.report.warnings())
    if config is not None:
        res.warnings.extend(config.notes)
        # Pedestrian rows alone configure no vehicle detector: such a device has only configuration-free measures
        cfg_devices = set(config.frame.loc[config.frame["Function"] != "Pedestrian", "DeviceId"])
        missing = sorted(set(log.devices) - cfg_devices)
        if missing:
            res.warnings.append(f"no detector configuration for device(s) {', '.join(missing[:5])}"
                                f"{' …' if len(missing) > 5 else ''}: only configuration-free measures for them")
        if want & {"ped", "ped_delay", "plans"}:
            res.warnings.extend(_unmapped_ped_warnings(log, config))
        res.warnings.extend(_unconfigured_channel_warnings(log, config))
        if want & {"split_failures", "split_failure_cycles", "plans"}:
            res.warnings.extend(stuck_on_warnings(log, config))
    res.warnings.extend(interruption_warnings(log))
    if split_failure_rule not in M.SPLIT_FAILURE_RULES:
        raise ValueError(f"split-failure rule must be one of {', '.join(M.SPLIT_FAILURE_RULES)}, "
                         f"not {split_failure_rule!r}")
    tasks = _tasks(want, log, config, bin_min, latency_s, project, fill_in_missing, red_time_s, split_failure_rule,
                   plans_in_force, revision_devices)
    tasks = [_marking_complete(task, log, bin_min) for task in tasks]
    if threads > 1 and len(tasks) > 1:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(threads, thread_name_prefix="atspm") as pool:
            futures = [pool.submit(task) for task in tasks]
            for f in as_completed(futures):
                if on_tables is not None:
                    on_tables(_filled(f.result()[0]))
            outs = [f.result() for f in futures]
    else:
        outs = []
        for task in tasks:
            outs.append(task())
            if on_tables is not None:
                on_tables(_filled(outs[-1][0]))
    tables: dict = {}
    for out_tables, out_warnings in outs:
        tables.update(out_tables)
        res.warnings.extend(out_warnings)
    tables = _filled(tables)
    res.tables = {name: tables[name] for name in MEASURES if name in tables}
    res.warnings.extend(G.left_out_warnings(log, {m for m, by in GAP_CUT.items() if want & set(by)}))
    if config is None:
        needs = want & {"arrival_on_green", "platoon_ratio", "arrival_on_green_by_approach",
                        "platoon_ratio_by_approach", "approach_volume", "split_failures", "split_failure_cycles",
                        "yellow_red", "red_light_running", "pcd", "pcd_cycles", "approach_delay"}
        if needs:
            res.warnings.append("no detector configuration: arrivals on green, platoon ratio, split failures, "
                                "yellow/red actuations and the PCD need one (--detectors)")
        return res
    for f, names in (("Advance", "arrivals on green, platoon ratio, the PCD and approach delay"),
                     ("Presence", "split failures"), ("Yellow_Red", "yellow/red actuations")):
        if config.rows(f).empty:
            res.warnings.append(f"no {f} detectors configured: {names} are empty")
    return res


def _unmapped_ped_warnings(log: EventLog, config: DetectorConfig) -> list[str]:
    """Pedestrian detector events a device's Pedestrian rows do not map to a phase, per device (5 named)."""
    from . import _kernels as K

    return _five_devices(K.unmapped_ped_channels(log, config), lambda dev, chans, n: (
        f"device {dev}: {n} pedestrian detector events (89/90) on channel(s) {chans} left out of the pedestrian "
        "measures: the detector configuration has Pedestrian rows for the device, none for these channels; its "
        "phases without a mapped push-button get no recall estimate either (their push-buttons may be on those "
        "channels)"), "devices with pedestrian detector channels not in their Pedestrian rows, left out the same way")


def _unconfigured_channel_warnings(log: EventLog, config: DetectorConfig) -> list[str]:
    """Vehicle detector channels a configured device logs but no row of the configuration names (5 devices)."""
    from . import _kernels as K

    return _five_devices(K.unconfigured_detector_channels(log, config), lambda dev, chans, n: (
        f"device {dev}: {n} detector-on events (82) on channel(s) {chans} that no row of the detector "
        "configuration names: counted in actuations, left out of every phase measure (arrivals on green, split "
        "failures, yellow/red actuations, phase wait); add a Presence, Advance or Yellow_Red row for each to "
        "measure them"), "devices with detector channels not in the configuration, left out the same way")


def _five_devices(lost, line, more: str) -> list[str]:
    """A warning per device for the first five (device, channels, events) of `lost`, and one line for the rest."""
    out = [line(dev, ", ".join(map(str, chans)), n) for dev, chans, n in lost[:5]]
    if len(lost) > 5:
        out.append(f"{len(lost) - 5} more {more}")
    return out


def _marking_complete(task, log: EventLog, bin_min: int):
    """The task, its binned tables given a `Complete` column (`gaps.with_complete`)."""
    def run():
        tables, warnings = task()
        return {name: G.with_complete(df, log, bin_min) if name in BINNED else df
                for name, df in tables.items()}, warnings
    return run


def _filled(tables: dict) -> dict:
    import pandas as pd

    return {name: (df if df is not None else pd.DataFrame()) for name, df in tables.items()}


def _tasks(want: set, log: EventLog, config: DetectorConfig | None, bin_min: int, latency_s: float,
           project: bool, fill_in_missing: bool, red_time_s: int, split_failure_rule: str = "atspm",
           plans_in_force: P.PlansInForce | None = None, revision_devices=()) -> list:
    """Independent groups of measures, largest first: each returns ({name: table}, [warnings])."""

    def split_failures():
        t, w = {}, []
        if "split_failures" in want:
            t["split_failures"] = M.split_failures(log, config, bin_min, red_time_s, rule=split_failure_rule)
        if "split_failure_cycles" in want:
            t["split_failure_cycles"] = M.split_failures(log, config, bin_min, red_time_s, by_cycle=True,
                                                         rule=split_failure_rule)
        _, dropped = M.split_failure_cycles(log, config, bin_min, red_time_s)
        if dropped:
            w.append(f"split failures: {dropped} cycles left out as incomplete "
                     "(missing yellow or red clearance, or no event from the phase's detectors)")
        return t, w

    def yellow_red():
        t, w = {}, []
        if "yellow_red" in want:
            t["yellow_red"] = M.yellow_red(log, config, bin_min, latency_s)
        if "red_light_running" in want:
            t["red_light_running"] = M.red_light_running(log, config, bin_min, latency_s)
        dropped = M.yellow_red_rows(log, config, latency_s)[5]
        if dropped:
            w.append(f"yellow/red actuations: {dropped} cycles left out as incomplete "
                     "(not exactly one begin green, yellow and red clearance)")
        return t, w

    def pcd():
        arrivals, cyc = C.pcd(log, config, latency_s, project)
        t = {k: v for k, v in (("pcd", arrivals), ("pcd_cycles", cyc)) if k in want}
        if "approach_delay" in want:  # the PCD's arrivals and cycles, computed once
            t["approach_delay"] = D.approach_delay(log, config, bin_min, latency_s, project)
        return t, []

    def arrivals_on_green():
        aog = M.arrival_on_green(log, config, bin_min, latency_s, project)
        t = {"arrival_on_green": aog} if "arrival_on_green" in want else {}
        if "platoon_ratio" in want:
            t["platoon_ratio"] = M.platoon_ratio(log, config, aog, bin_min)
        if want & {"arrival_on_green_by_approach", "platoon_ratio_by_approach"}:
            by = M.arrival_on_green_by_approach(log, config, bin_min, latency_s, project)
            if "arrival_on_green_by_approach" in want:
                t["arrival_on_green_by_approach"] = by
            if "platoon_ratio_by_approach" in want:
                t["platoon_ratio_by_approach"] = M.platoon_ratio(log, config, by, bin_min)
        return t, []

    def split_monitor():
        sm = C.split_monitor(log)
        t = {"split_monitor": sm} if "split_monitor" in want else {}
        if "split_monitor_binned" in want:
            t["split_monitor_binned"] = C.split_monitor_binned(sm, bin_min)
        return t, []

    def plans():
        return {"plans": P.plan_summary(log, config, bin_min, latency_s, project, red_time_s, split_failure_rule,
                                        plans_in_force, revision_devices)}, []

    def one(name, fn):
        return lambda: ({name: fn()}, [])

    tasks = []  # the charts' measures first, the largest first
    if config is not None:
        if want & {"split_failures", "split_failure_cycles"}:
            tasks.append(split_failures)
        if want & {"pcd", "pcd_cycles", "approach_delay"}:
            tasks.append(pcd)
        if want & {"arrival_on_green", "platoon_ratio", "arrival_on_green_by_approach", "platoon_ratio_by_approach"}:
            tasks.append(arrivals_on_green)
    if "plans" in want:  # reads the split-failure cycles, the PCD and the pedestrian delays (computed once)
        tasks.append(plans)
    if want & {"split_monitor", "split_monitor_binned"}:
        tasks.append(split_monitor)
    if config is not None and want & {"yellow_red", "red_light_running"}:
        tasks.append(yellow_red)
    if "actuations" in want:
        tasks.append(one("actuations", lambda: M.actuations(log, bin_min, fill_in_missing)))
    if config is not None and "approach_volume" in want:
        tasks.append(one("approach_volume", lambda: M.approach_volume(log, config, bin_min)))
    if "phase_wait" in want:
        tasks.append(one("phase_wait", lambda: C.binned_waits(C.phase_wait(log, config), "Wait_s", bin_min)))
    if "ped_delay" in want:
        tasks.append(one("ped_delay", lambda: C.binned_waits(C.ped_delay(log, config), "PedDelay_s", bin_min)))
    if "ped" in want:
        tasks.append(one("ped", lambda: M.pedestrian(log, bin_min, config)))
    if "terminations" in want:
        tasks.append(one("terminations", lambda: M.terminations(log, bin_min)))
    if "preemption" in want:
        tasks.append(one("preemption", lambda: C.preemption(log)))
    if "timing_revisions" in want:
        tasks.append(one("timing_revisions", lambda: P.timing_revisions(log, revision_devices)))
    return tasks


def merge_results(*parts: Results) -> Results:
    """One Results from several computed on the same log (`only=` parts): tables in MEASURES order,
    each warning once."""
    out = Results(bin_min=parts[0].bin_min, span_us=parts[0].span_us)
    tables = {name: df for part in parts for name, df in part.tables.items()}
    out.tables = {name: tables[name] for name in MEASURES if name in tables}
    out.warnings = list(dict.fromkeys(w for part in parts for w in part.warnings))
    return out


def _arrow(df):
    """DataFrame -> Arrow table; timestamps at the coarsest unit that keeps them exact, so a CSV reads
    2025-01-06 06:15:00 for a bin and keeps the microseconds of an event."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is None and f.type.unit == "ns":
            col = table.column(i)
            ns = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
            ns = ns[~np.isnan(ns)] if ns.dtype.kind == "f" else ns
            unit = next((u for u, q in (("s", 10**9), ("ms", 10**6), ("us", 10**3)) if not np.any(ns % q)), "ns")
            table = table.set_column(i, f.name, col.cast(pa.timestamp(unit)))
    return table


def write_tables(results: Results, out_dir: Path, fmt: str = "csv") -> list[Path]:
    """Write each table as CSV or Parquet (through Arrow: 10x faster than pandas' CSV writer on a million
    rows); returns the paths written."""
    return [write_table(name, df, out_dir, fmt) for name, df in results.tables.items()]


def write_table(name: str, df, out_dir: Path, fmt: str = "csv") -> Path:
    """Write one table as out_dir/<name>.<fmt>, whole or not at all (through a temporary file)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.{fmt}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    table = _arrow(df)
    if fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        pacsv.write_csv(table, tmp)
    tmp.replace(path)
    return path
