"""One run, start to finish, leaving its evidence in a directory.

    run.json            status (running | complete | incomplete | failed; a failed run refused before its
                        first step has `ran: false`), timings, versions, the process
                        (pid, host, start): a `running` run whose process is gone is shown `died`
                        (`outdirs.shown_status`)
    config.yaml         the resolved configuration (re-run it to reproduce)
    metrics.json        network-wide and per-intersection metrics, safety, fallback
    trips.csv           every vehicle: delay, waiting, stops (CO2 and fuel: per edge and interval)
    timeseries.csv      per interval (default 60 s), network and per intersection
    events.csv          hi-res event log (Indiana enumeration), ATSPM-readable
    detectors.csv       detector configuration for ATSPM
    detector_passages.csv  every vehicle over every detector (SUMO ground truth)
    vtype_classes.json  every vehicle type -> its SUMO vClass, as the simulator knew them at the end (the
                        records count buses, trucks and emergency vehicles by it: `records`)
    signal_states.csv   every signal state SUMO showed
    signal_model.json   phases, links, approaches and timing of every signal
    queues.csv          halting vehicles on each signal's approaches, every 5 s
    interventions.csv   every time the shield overrode a decision, and why
    controller_errors.csv  each kind of error the controller raised, and of proposal the shield could not
                        follow as given, once with its count (`controller_faults`)
    sumo/               SUMO's raw outputs

A run interrupted (Ctrl-C, SIGTERM, SUMO dying) keeps what it has and says so in
run.json; nothing half-written is presented as complete.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import platform
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import __version__
from ..control.coordinated import COORDINATED_CONTROLLER, coordination_events, coordination_report
from ..core.eventlog import event_row, write_event_rows
from ..core.names import BASELINE_CONTROLLER
from ..core.types import EventCode
from ..outdirs import process_identity
from ..provenance import models_run, provenance
from ..sim.backend import SimulationError
from ..sim.metrics import after_warmup, intersection_metrics, network_metrics, time_series
from ..sim.outputs import (
    Teleports,
    read_discarded,
    read_pedestrians_jammed,
    read_teleports,
    read_tripinfo,
    read_unsorted_ignored,
)
from ..sim.replay import spare_cores
from ..sim.scenario import clock_text, seconds_text
from ..sim.signal_model import pedestrian_warnings, plan_notes, timing_warnings
from ..termination import stop_reason
from .below_ite import below_ite_timing
from .config import RunConfig
from .controller_faults import CSV_COLUMNS as FAULT_COLUMNS
from .default_window import default_window_warning
from .detector_config import write_detector_config
from .evidence import EVIDENCE_FILES, SumoEvidence, merged, read_evidence
from .exclusive_walks import exclusive_walk_notes, exclusive_walk_warnings
from .loop import (
    LOCKED_AFTER_S,
    ControllerFactory,
    LoopResult,
    describe_intersections,
    dump_json,
    run_loop,
    sumocfg_note,
)
from .records import VTYPE_CLASSES_FILE
from .step_rounding import clearance_rounding_warnings

Progress = Callable[[float, float], None]


class RunDirectoryError(SimulationError):
    """The run directory cannot take this run's evidence."""


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    metrics: dict
    status: str


def new_run_dir(cfg: RunConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    network = cfg.scenario or _file_stem(cfg.scenario_label)  # your my.city.net.xml: "my.city"
    name = f"{stamp}-{slug(network)}-{controller_slug(cfg.controller)}-s{cfg.seed}"
    path = cfg.out_dir / name
    k = 1
    while path.exists():
        k += 1
        path = cfg.out_dir / f"{name}-{k}"
    return path


def _file_stem(name: str) -> str:
    for suffix in (".sumocfg", ".net.xml.gz", ".net.xml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def execute_run(cfg: RunConfig, run_dir: Path | None = None, progress: Progress | None = None,
                controllers: ControllerFactory | None = None, audit_apart: bool = False,
                **loop_options) -> RunResult:
    """Run, then turn SUMO's outputs and the loop's record into the run directory.

    `controllers` builds each intersection's controller instead of the
    registry's `cfg.controller` (training hands in its learning controllers);
    `loop_options` go to `run_loop` (`source_wrapper`, `backend_factory`: the
    camera in the loop uses both). `audit_apart`: a lean record is audited in a
    forked process too when a core is free, as a full record is (`_start_audit`):
    for the `run` command, whose process does nothing else; a caller that runs
    episodes among threads or workers of its own keeps a lean run's audit here.
    """
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(cfg)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunDirectoryError(f"{run_dir} exists and is not empty: a run never overwrites another's evidence; "
                                "give a new --run-dir or remove that one")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.with_absolute_paths()
    started = dt.datetime.now().isoformat(timespec="seconds")
    # which process runs it: a reader tells a run killed with SIGKILL (run.json left `running`) from a live one
    status = {"status": "running", "started": started, "signalwise": __version__,
              "python": platform.python_version(), "step_length_s": cfg.step_length_s,
              "process": process_identity(), "provenance": provenance(),
              **({"models": models} if (models := models_run([cfg.controller], cfg.controller_options)) else {})}
    dump_json(run_dir / "run.json", status)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False))
    stepped = []  # whether the simulation took a step: a refusal comes before the first (`_stepped`)
    try:
        loop = run_loop(cfg, run_dir, _stepped(progress, stepped), controllers=controllers, **loop_options)
        t0 = time.perf_counter()
        # a stop or a failure here leaves no `running` behind either
        metrics = write_evidence(cfg, loop, run_dir, audit_apart=True) if audit_apart else \
            write_evidence(cfg, loop, run_dir)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM inside `sigterm_as_interrupt`
        status.update(status="incomplete", reason=stop_reason(exc), finished=_now())
        dump_json(run_dir / "run.json", status)
        exc.what_is_left = f"the run directory {run_dir} is marked incomplete"  # the command's last line
        raise
    except Exception as exc:  # anything that stops the run (SUMO, a controller that cannot start): say why
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        # `ran: false`: refused once SUMO had started (no controllable signal, a model that does not fit), before
        # its first step: a run that never ran, no evidence of a run that broke (`signalwise audit` says so)
        status.update(status="failed", reason=reason, finished=_now(), ran=bool(stepped))
        dump_json(run_dir / "run.json", status)
        raise
    status.update(status="complete", finished=_now(), wall_s=round(loop.wall_s, 3), steps=loop.steps,
                  simulated_s=loop.end_s - loop.begin_s, postprocess_s=round(time.perf_counter() - t0, 3),
                  scenario=loop.scenario.name, controller=cfg.controller, seed=cfg.seed)
    dump_json(run_dir / "run.json", status)
    return RunResult(run_dir, cfg, metrics, "complete")


def _stepped(progress: Progress | None, stepped: list) -> Progress:
    """`progress`, noting in `stepped` that it was called: the loop calls it after its first step, so a run
    refused before (found only once SUMO has read the network) is told from one that broke while it ran."""
    def noted(done_s: float, total_s: float) -> None:
        stepped.append(True)
        if progress is not None:
            progress(done_s, total_s)
    return noted


def _vehicles(n: int) -> str:
    return f"{n} vehicle{'' if n == 1 else 's'}"


def write_evidence(cfg: RunConfig, loop: LoopResult, run_dir: Path, audit_apart: bool = False) -> dict:
    """Everything the run leaves; what does not need the emissions first, while a replay may still compute them.
    `audit_apart`: see `execute_run`."""
    try:
        return _write_evidence(cfg, loop, run_dir, audit_apart)
    finally:
        if loop.evidence_replay is not None:
            loop.evidence_replay.stop()  # done by now, unless writing failed: then it must not outlive the run


def _write_evidence(cfg: RunConfig, loop: LoopResult, run_dir: Path, audit_apart: bool = False) -> dict:
    # the audit's inputs first, so that it runs in its own process while this one writes the rest; and what this
    # process recorded before what a replay recorded, which may still be on its way
    replayed = loop.evidence_replay.replayed if loop.evidence_replay is not None else ()
    sumo = read_evidence(loop.files, loop.detectors, only=tuple(n for n in EVIDENCE_FILES if n not in replayed))
    replay = None
    if "passages" in replayed:
        replay, sumo = _with_replayed(loop, sumo)
    _write_csv(run_dir / "signal_states.csv", ["time_s", "device_id", "state"], loop.signal_states)
    # with the notes that depend on the run's controller (`exclusive_walks`), beside the signal's own
    by_controller = exclusive_walk_notes(loop.intersections, cfg.controller)
    dump_json(run_dir / "signal_model.json", describe_intersections(
        [dataclasses.replace(i, notes=(*i.notes, *by_controller[i.id])) if i.id in by_controller else i
         for i in loop.intersections],
        loop.approach_direction, cfg.step_length_s))
    event_rows = sumo.detector_event_rows
    event_rows.extend(event_row(e.time_s, e.device_id, e.event_code, e.parameter) for e in loop.events)
    if cfg.controller == COORDINATED_CONTROLLER:  # each signal's plan (131, 132, 133), as a field controller logs it
        event_rows.extend(event_row(e.time_s, e.device_id, e.event_code, e.parameter)
                          for e in coordination_events(loop.intersections, cfg.step_length_s, loop.begin_s))
    write_event_rows(run_dir / "events.csv", event_rows)
    audit = _start_audit(run_dir, cfg, audit_apart)  # its inputs are all written

    trips, persons = read_tripinfo(loop.files["tripinfo"])
    approach_edges = {i.id: {lane.rsplit("_", 1)[0] for lane in i.in_lanes} for i in loop.intersections}
    _write_csv(run_dir / "detector_passages.csv",
               ["time_s", "detector_id", "device_id", "channel", "lane", "vehicle_id", "vtype", "enter_s", "leave_s",
                "speed_mps"], sumo.passage_rows)
    dump_json(run_dir / VTYPE_CLASSES_FILE, dict(sorted(loop.vtype_classes.items())))
    _write_csv(run_dir / "interventions.csv", ["time_s", "device_id", "rule", "detail"],
               [(iv.time_s, iv.intersection_id, iv.rule, iv.detail) for iv in loop.interventions])
    faults = loop.controller_faults
    _write_csv(run_dir / "controller_errors.csv", list(FAULT_COLUMNS), faults.rows() if faults is not None else [])
    write_detector_config(run_dir / "detectors.csv", loop.intersections)
    _write_csv(run_dir / "queues.csv", ["time_s", "device_id", "halting_veh"], loop.queue_samples)
    _write_csv(run_dir / "trips.csv",
               ["vehicle_id", "vtype", "status", "depart_s", "arrival_s", "duration_s", "route_length_m", "waiting_s",
                "stops", "time_loss_s", "depart_delay_s", "delay_s"],
               [(t.vehicle_id, t.vtype, t.status, t.depart_s, t.arrival_s, t.duration_s, t.route_length_m,
                 t.waiting_s, t.stops, t.time_loss_s, t.depart_delay_s, round(t.delay_s, 2)) for t in trips])
    if loop.evidence_replay is not None and replay is None:
        replay, sumo = _with_replayed(loop, sumo)
    edgedata, emissions = sumo.edgedata, sumo.emissions
    series = time_series(trips, edgedata, emissions, loop.queue_samples, approach_edges, loop.begin_s, loop.end_s,
                         cfg.interval_s)
    if series:
        _write_csv(run_dir / "timeseries.csv", list(series[0]), [list(r.values()) for r in series])

    counted = after_warmup(loop.begin_s + cfg.warmup_s, loop.end_s, trips, persons, loop.queue_samples, edgedata,
                           emissions)
    from ..store.vehicle_classes import is_emergency

    net = network_metrics(counted.trips, counted.persons, counted.queue_samples, loop.emergency_ids,
                          counted.emissions, [t for t, c in loop.vtype_classes.items() if is_emergency(c)]).as_dict()
    net.update(per_travel(net, counted.edgedata, cfg.emissions and cfg.record == "full"))
    discarded = read_discarded(loop.files["errors"]) if "errors" in loop.files else []
    unsorted = read_unsorted_ignored(loop.files["errors"]) if "errors" in loop.files else []
    teleports = read_teleports(loop.files["statistics"]) if "statistics" in loop.files else None
    jammed = read_pedestrians_jammed(loop.files["statistics"]) if "statistics" in loop.files else None
    per_tls = intersection_metrics(counted.edgedata, counted.emissions, counted.queue_samples, approach_edges)
    rules = dict(Counter(iv.rule for iv in loop.interventions))
    for tls, frac in loop.fallback_fraction.items():
        per_tls.setdefault(tls, {})["fallback_fraction"] = round(frac, 4)
    fallback = sum(loop.fallback_fraction.values()) / max(1, len(loop.fallback_fraction))
    preempts = sum(1 for e in loop.events if e.event_code == EventCode.PREEMPT_CALL_ON)
    metrics = {
        "scenario": loop.scenario.name,
        "controller": cfg.controller,
        "seed": cfg.seed,
        **({"demand_scale": cfg.demand_scale} if cfg.demand_scale != 1.0 else {}),
        "simulated_s": loop.end_s - loop.begin_s,
        "begin_s": loop.begin_s,
        # the figures count from here (a warm-up fills the network first); the time series covers the whole run
        **({"warmup_s": cfg.warmup_s, "counted_from_s": loop.begin_s + cfg.warmup_s} if cfg.warmup_s else {}),
        # CO2 and fuel are 0 when SUMO was not asked for them (`emissions: false`, or a lean record): say so
        "emissions_recorded": cfg.emissions and cfg.record == "full",
        # the emission class of each vehicle type the run's vehicles had (its own, else SUMO's default for its
        # vClass): the fleet the CO2 and fuel figures assume
        "emission_classes": {vt: loop.emission_classes[vt] for vt in sorted({t.vtype for t in trips})
                             if vt in loop.emission_classes},
        "network": {**net, "discarded_veh": len(discarded),
                    # route-file entries (a vehicle, a whole flow, a person) SUMO skipped as out of departure order
                    "unsorted_ignored": len(unsorted), "preemptions": preempts,
                    "fallback_fraction": round(fallback, 4), "controller_errors": loop.controller_errors,
                    "locked_veh": sum(loop.junction_locks.values()), "locked_junctions": loop.junction_locks,
                    # SUMO's own count (sumo/statistics.xml); None when SUMO wrote none: unknown, not 0
                    "teleports": None if teleports is None else teleports.total,
                    "teleports_by_kind": None if teleports is None else teleports.by_kind(),
                    # SUMO's count of persons jammed (stood past its jam time, then walked on); None: unknown
                    "pedestrians_jammed": jammed},
        "intersections": per_tls,
        "shield_interventions": rules,
        **({"controller_faults": faults.as_metrics()} if faults is not None else {}),
        "refused_signals": [{"id": r.id, "reason": r.reason} for r in loop.refused],
        "wall_s": round(loop.wall_s, 3),
        "realtime_factor": round((loop.end_s - loop.begin_s) / loop.wall_s, 1) if loop.wall_s else None,
    }
    if loop.webster_plans:
        over = sum(1 for plans in loop.webster_plans.values() for _t, p in plans if p["oversaturated"])
        metrics["webster"] = {"plans": loop.webster_plans, "oversaturated_plans": over}
    metrics["controller_ran"], warnings = _controller_ran(fallback, loop)
    reasons = fallback_reasons(loop.interventions)
    if reasons:
        metrics["fallback_reasons"] = reasons
        if metrics["controller_ran"]:  # else the warning that it never ran gives the reason
            said = faults.fallback_reasons_warned() if faults is not None else ()
            warnings.extend(fallback_warnings([r for r in reasons if r["reason"] not in said], fallback))
    if faults is not None:
        warnings.extend(faults.warnings())
    if loop.decide_s:
        metrics["decision_time"] = decision_times(loop.decide_s, cfg.step_length_s)
        warnings.extend(decision_time_warnings(metrics["decision_time"], cfg.step_length_s))
    if replay is not None:
        metrics["evidence"] = replay
        if not replay["same_traffic"]:
            # the replay's SUMO had this run's inputs and signal states: its other traffic says that this run's own
            # traffic was not its inputs' alone, which running it again, inline or not, does not mend
            warnings.append(f"the evidence replay failed ({replay['failed']}): a second SUMO given this run's "
                            "inputs and signal states drove other traffic, so this run's figures may not come out "
                            "the same when it is run again; it has no CO2 or fuel figures, per-edge intervals or "
                            "detector passages (evidence: inline records them in the run's own SUMO, unchecked)")
    note = sumocfg_note(cfg, loop.scenario)
    if note:
        warnings.append(note)
    if (tail := default_window_warning(cfg.duration_s, loop.scenario)) is not None:
        warnings.append(tail)
    if loop.demand_unread:  # the plans made before any count (Webster's, the fallback's) rest on assumed demand
        warnings.append(loop.demand_unread)
    if not net["vehicles_total"]:
        after = f" after the {cfg.warmup_s:g} s warm-up" if cfg.warmup_s else ""
        warnings.append(f"no vehicle was due to depart between {seconds_text(loop.begin_s + cfg.warmup_s, loop.begin_s)}"
                        f" and {seconds_text(loop.end_s, loop.begin_s)}, the run's window{after}: every figure is empty (check the begin, end, "
                        "--duration and --warmup against your routes' departure times)")
    # a vehicle due at the very last step is loaded but had no chance to enter: it waited 0 s. RESCO's delay counts
    # it as SUMO writes it (an undeparted row, departDelay 0: one more vehicle due, no delay), and so does the run;
    # the count the tables show ("never inserted") holds it, which a warning explains
    blocked = sum(1 for t in counted.trips if t.status == "undeparted" and t.depart_delay_s > 0)
    last_step = net["never_inserted"] - blocked
    end_text = f"{loop.end_s:g} s" + (f", {clock_text(loop.end_s)}" if loop.begin_s else "")
    at_end = (f"due at the run's end ({end_text}), where SUMO stops before the step that would insert it: "
              "no delay counted, as RESCO's delay counts such a vehicle (one more vehicle due, with none)")
    if blocked:
        # the count the tables show ("never inserted") holds those due at the last step too: say both
        warnings.append(f"{blocked} of {net['vehicles_total']} vehicles never entered the network "
                        "(their entry was blocked until the end); each counts in the delay from its scheduled "
                        "departure to the end of the run"
                        + (f" ({net['never_inserted']} never inserted in all: {last_step} more "
                           f"{'was' if last_step == 1 else 'were'} {at_end})" if last_step > 0 else ""))
    elif last_step > 0:
        warnings.append(f"{_vehicles(last_step)} never inserted: no entry was blocked; "
                        f"{'it was' if last_step == 1 else 'they were'} {at_end}")
    if unsorted:
        warnings.append(unsorted_warning(unsorted))
    if discarded:
        warnings.append(discarded_warning(discarded))
    if teleports is not None and teleports.total:
        warnings.append(_teleport_warning(teleports, cfg.time_to_teleport_s))
    if jammed:
        warnings.append(_jammed_warning(jammed))
    if loop.junction_locks:
        warnings.append(_lock_warning(loop.junction_locks, cfg.time_to_teleport_s))
    if cfg.controller == BASELINE_CONTROLLER:
        warnings.extend(plan_warnings(plan_notes(loop.intersections)))
    elif cfg.controller == COORDINATED_CONTROLLER:
        metrics["coordination"], said = coordination_report(loop.intersections, cfg.step_length_s)
        warnings.extend(said)
    warnings.extend(pedestrian_warnings(loop.intersections))
    warnings.extend(exclusive_walk_warnings(loop.intersections, cfg.controller))
    warnings.extend(timing_warnings(loop.intersections))
    warnings.extend(clearance_rounding_warnings(loop.intersections, cfg.timing, cfg.step_length_s))
    below = below_ite_timing(loop.intersections, cfg.timing, cfg.step_length_s)
    if below:  # the summary says these beside the audit's violations: departures from ITE, not violations
        metrics["below_ite_timing"] = below
    if warnings:
        metrics["warnings"] = warnings
    verdict = audit()
    if verdict is not None:
        metrics["safety"] = verdict
    dump_json(run_dir / "metrics.json", metrics)
    return metrics


def per_travel(net: dict, edgedata: list[dict], emissions_recorded: bool) -> dict:
    """The vehicle-km driven in the counted window (SUMO's edgeData: sampledSeconds x mean speed per edge and
    interval, the edges' own lanes; junction interiors, a few metres each, are not in it) and CO2 and fuel per
    unit of it over the same window: a total over a fixed window counts a vehicle still driving at the end only
    for the part it drove, and the share still driving differs by controller. None where emissions were not
    computed or nothing drove; `veh_km` None where no edgeData was recorded (a lean run), not 0: nothing measured
    is no distance driven."""
    if not edgedata:
        return {"veh_km": None, "co2_g_per_veh_km": None, "fuel_l_per_100veh_km": None}
    veh_km = sum(r.get("sampledSeconds", 0.0) * r.get("speed", 0.0) for r in edgedata) / 1000.0
    ok = emissions_recorded and veh_km > 0
    return {"veh_km": round(veh_km, 3),
            "co2_g_per_veh_km": round(net["co2_kg"] * 1000.0 / veh_km, 3) if ok else None,
            "fuel_l_per_100veh_km": round(net["fuel_l"] * 100.0 / veh_km, 4) if ok else None}


def _with_replayed(loop: LoopResult, sumo: SumoEvidence) -> tuple[dict, SumoEvidence]:
    """The replay's verdict, and `sumo` with the rows of the files the replay recorded."""
    replay, rows = loop.evidence_replay.wait(loop.files, loop.signal_states, loop.detectors)
    return replay, merged(sumo, rows)


def plan_warnings(plan_notes: dict[str, list[str]]) -> list[str]:
    """One sentence per signal where `fixed` does not run the network's program as written (its offset, an
    actuated program's logic, a phase served twice a cycle, greens past max green): the baseline is then not
    quite the city's plan, and a reader of a change against it must know. Signals whose sentences are the same
    share one line (a RESCO network's 6 s greens lengthened to the benchmark's 7 s: 19 signals of ingolstadt21)."""
    said: dict[str, list[str]] = {}
    for tls, notes in sorted(plan_notes.items()):
        if notes:
            said.setdefault("; ".join(notes), []).append(tls)
    out = []
    for text, signals in said.items():
        named = (f"signal {signals[0]!r}" if len(signals) == 1 else
                 "signals " + ", ".join(map(repr, signals[:5])) + (f" and {len(signals) - 5} more"
                                                                   if len(signals) > 5 else ""))
        out.append(f"{BASELINE_CONTROLLER} at {named} is not the network's program as written: {text}")
    return out


def _teleport_warning(teleports: Teleports, teleport_s: float) -> str:
    """The sentence for a run in which SUMO teleported vehicles: they lower the delay, and nothing else says so.

    SUMO takes a vehicle that has stood `teleport_s` off its lane and puts it back further along its route
    (tripinfo's routeLength leaves out what it skipped). Its timeLoss counts the standing up to the teleport and
    nothing while it is away, so the rest of the wait it would have had counts in no delay, and the vehicles
    behind it move up sooner: the run's delay (timeLoss + departDelay) is lower than the same traffic without
    teleports would give."""
    kinds = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in teleports.by_kind().items() if n)
    times = "time" if teleports.total == 1 else "times"
    return (f"SUMO teleported vehicles {teleports.total} {times} ({kinds}) after {teleport_s:g} s standing "
            "(time_to_teleport_s): each teleported vehicle's trip is cut short, taken out of the queue and put back "
            "further along its route; its delay counts the time it stood until then, not the wait it skipped, "
            "so the average delay is lower than without teleports (the benchmark profile never teleports)")


#: SUMO's reason for a vehicle it cannot insert before a red signal: "tlLogic 'C' link 12 never switches to 'G'"
_NEVER_GREEN = re.compile(r"tlLogic '(?P<tls>.+?)' link (?P<link>\d+) never switches to 'G'")


def discarded_warning(discarded: list[tuple[str, float | None, str]]) -> str:
    """The sentence for vehicles SUMO discarded before they entered. SUMO inserts a vehicle only where it can stop
    for a red signal ahead unless it knows the signal turns green in time; a signal signalwise drives shows SUMO
    its current state alone, so SUMO reads a red as one that never turns green: such a vehicle is lost to the
    control, not to its route file (SUMO names the link)."""
    first, at_s, why = discarded[0]
    at = f" at {at_s:g} s" if at_s is not None else ""
    red = [m for _, _, w in discarded if (m := _NEVER_GREEN.search(w))]
    if red:
        links = sorted({(m["tls"], int(m["link"])) for m in red})
        named = ", ".join(f"signal {tls!r} link {k}" for tls, k in links[:3]) + (
            f" and {len(links) - 3} more" if len(links) > 3 else "")
        cause = (f"{len(red)} could not stop at their departure speed for a link showing red ahead ({named}); "
                 "SUMO sees only the state signalwise gives a signal, no program to look ahead in, so it takes a link "
                 "they need as one that may never turn green under this control")
    else:
        cause = f"they cannot depart at the speed their route file gives ({why})" if why else \
            "they cannot depart at the speed their route file gives"
    return (f"{len(discarded)} vehicles were discarded by SUMO before they entered: {cause} (first: {first!r}{at}; "
            "sumo/errors.log names each). Like SUMO's own tripinfo, no figure counts them")


def unsorted_warning(ignored: list[str]) -> str:
    """The sentence for route-file entries SUMO ignored as out of departure order: a flow, a person flow or a vehicle
    listed after one that departs later is skipped whole, and nothing but SUMO's own log says so."""
    named = ", ".join(repr(i) for i in ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
    return (f"SUMO ignored {len(ignored)} route-file entries (vehicles, flows, persons or person flows) because each "
            f"comes after one that departs later in its file: {named}. None of their traffic ran and no figure "
            "counts it; sort the file by departure time (SUMO's tools/route/sort_routes.py) or give those entries a "
            "route file of their own (sumo/errors.log names each)")


def _jammed_warning(jammed: int) -> str:
    """The sentence for a run in which SUMO found pedestrians jammed: each stood where it could not go on (a
    crosswalk that never shows a walk, a blocked walking area) until SUMO let it walk on through whatever was in its
    way, and nothing else says that a crossing failed them."""
    return (f"SUMO found pedestrians jammed {jammed} times: each stood where it could not walk on (a crosswalk that "
            "shows no walk, a blocked walking area) for SUMO's jam time (--pedestrian.striping.jamtime, 300 s by "
            "default), then walked on through what blocked it; sumo/errors.log names each person and lane")


def _lock_warning(locks: dict[str, int], teleport_s: float) -> str:
    """The sentence for a run that ended with vehicles locked inside junctions."""
    worst = sorted(locks.items(), key=lambda kv: (-kv[1], kv[0]))
    named = ", ".join(f"{j} ({n})" for j, n in worst[:3]) + (f" and {len(worst) - 3} more" if len(worst) > 3 else "")
    why = ("SUMO never teleports a vehicle under this run's settings (--time-to-teleport -1), so nothing frees them"
           if teleport_s < 0 else "no signal state frees them")
    return (f"{sum(locks.values())} vehicles stood locked inside {len(locks)} junction(s) at the end, each for "
            f"{LOCKED_AFTER_S:.0f} s or more: {named}; {why}, and the delay of everything behind them grows to "
            "the end of the run")


#: a run whose fallback served at least this share never really ran its controller
NEVER_RAN_FALLBACK_SHARE = 0.99


def _controller_ran(fallback_share: float, loop: LoopResult) -> tuple[bool, list[str]]:
    """Whether the controller under test decided at all, and a sentence for the reader when it did not."""
    if fallback_share < NEVER_RAN_FALLBACK_SHARE:
        return True, []
    why = next((iv.detail for iv in loop.interventions if iv.rule == "fallback"), "no reason logged")
    return False, [f"the controller never ran: the shield's Webster fallback served {fallback_share:.1%} of the "
                   f"time ({why}); these figures are the fallback's, not the controller's"]


#: "observation not usable: lanes unhealthy: lane E_0: occupancy ..." -> its kind, "observation not usable: lanes
#: unhealthy" (a source's name may hold spaces: a camera zone's)
_DATA_FAULT = re.compile(r"(observation not usable: .+? (?:unhealthy|stale))(?::|$)")


def fallback_reason_kind(detail: str) -> str:
    """The kind of a reason the shield gave for falling back (`control.shield`'s `fallback` intervention), with
    what differs from one time to the next (a lane, a value, a confidence) left out."""
    m = _DATA_FAULT.match(detail)
    if m:
        return m[1]
    if re.match(r"confidence \S+ below ", detail):
        return "confidence below the threshold"
    return detail.split(": ", 1)[0]


def fallback_reasons(interventions) -> list[dict]:
    """Why the shield's fallback began, each kind of reason once (`fallback_reason_kind`), most frequent first: its
    count, the signals, and its first occurrence in full (interventions.csv lists each)."""
    kinds: dict[str, dict] = {}
    for iv in interventions:
        if iv.rule != "fallback":
            continue
        kind = fallback_reason_kind(iv.detail)
        entry = kinds.get(kind)
        if entry is None:
            entry = kinds[kind] = {"reason": kind, "count": 0, "signals": set(), "first_time_s": iv.time_s,
                                   "first_signal": iv.intersection_id, "first_detail": iv.detail}
        entry["count"] += 1
        entry["signals"].add(iv.intersection_id)
    return [{**e, "signals": sorted(e["signals"])} for e in sorted(kinds.values(), key=lambda e: -e["count"])]


def fallback_warnings(reasons: list[dict], fallback_share: float) -> list[str]:
    """A sentence per kind of reason the fallback took over for: the run summary shows its share, and the reader
    must know whether that was the controller, its data or something else (a lane occupancy out of range, a stale
    feed). The controller's errors and unreadable decisions have sentences of their own
    (`ControllerFaults.warnings`), and are left to them by the caller."""
    out = []
    for r in reasons:
        signals = r["signals"]
        named = ", ".join(signals[:5]) + (f" and {len(signals) - 5} more" if len(signals) > 5 else "")
        detail = r["first_detail"]
        first = detail[len(r["reason"]):].lstrip(": ") if detail.startswith(r["reason"]) else detail
        out.append(f"the shield's Webster fallback took over {'once' if r['count'] == 1 else str(r['count']) + ' times'}"
                   f" for: {r['reason']} (signal{'s' if len(signals) > 1 else ''} {named}; first at "
                   f"{r['first_signal']} t={r['first_time_s']:.0f}" + (f": {first}" if first else "")
                   + f"); these figures are partly the fallback's (fallback share {fallback_share:.1%}, over the "
                   "signals; interventions.csv lists each time)")
    return out


def decision_times(decide_s, step_s: float) -> dict:
    """metrics.json's `decision_time`: wall milliseconds of the controller's decisions (`decide`, and handing its
    proposal to the shield) at the median, p99 and most, and how many took longer than a simulation step."""
    import numpy as np

    ms = np.asarray(decide_s, dtype=np.float64) * 1000.0
    p50, p99 = np.percentile(ms, [50, 99])
    return {"decisions": int(ms.size), "median_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(ms.max()), 3), "longer_than_step": int((ms > step_s * 1000.0).sum())}


def decision_time_warnings(times: dict, step_s: float) -> list[str]:
    """A sentence when the controller decides slowly for a live run: its p99 above the live runtime's
    `decision_latency` alert, or a decision longer than a simulation step (a live run at real time would fall
    behind)."""
    from .live.alerts import BUILTIN_RULES

    alert_ms = next(r.threshold for r in BUILTIN_RULES if r.name == "decision_latency")
    if times["p99_ms"] <= alert_ms and not times["longer_than_step"]:
        return []
    longer = (f"; {times['longer_than_step']} took longer than a simulation step ({step_s:g} s), which a live run at "
              "real time cannot keep up with" if times["longer_than_step"] else "")
    return [f"the controller's decisions took {times['median_ms']:.1f} ms at the median, {times['p99_ms']:.1f} ms at "
            f"p99 and {times['max_ms']:.1f} ms at most (wall time, {times['decisions']} decisions): above the "
            f"{alert_ms:g} ms p99 at which a live run raises its decision_latency alert{longer}"
            if times["p99_ms"] > alert_ms else
            f"the controller's decisions took {times['median_ms']:.1f} ms at the median, {times['p99_ms']:.1f} ms at "
            f"p99 and {times['max_ms']:.1f} ms at most (wall time, {times['decisions']} decisions){longer}"]


def _start_audit(run_dir: Path, cfg: RunConfig, lean_apart: bool = False) -> Callable[[], dict | None]:
    """The audit's verdict, to ask for when needed: from a forked process while this one writes the rest of a
    full record (or, with `lean_apart`, of a lean one), when a second core is free for it (`RunConfig.evidence`);
    else computed here and now."""
    if (cfg.record != "full" and not lean_apart) or cfg.evidence == "inline" or spare_cores() < 0.5:
        verdict = _audit(run_dir)
        return lambda: verdict
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        verdict = _audit(run_dir)
        return lambda: verdict
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_audit_child, args=(run_dir, send), name="signalwise-audit", daemon=True)
    proc.start()
    send.close()

    def verdict() -> dict | None:
        try:
            ok, value = recv.recv()
        except EOFError:  # the audit process died without a word: audit here instead
            ok, value = True, _audit(run_dir)
        finally:
            recv.close()
            proc.join()
        if not ok:
            raise value
        return value

    return verdict


def _audit_child(run_dir: Path, send) -> None:
    try:
        outcome = (True, _audit(run_dir))
    except Exception as exc:  # the run reports it as if the audit had run in its own process
        outcome = (False, exc)
    send.send(outcome)
    send.close()


def _audit(run_dir: Path) -> dict | None:
    """The independent checker's verdict on this run's event log, when it is installed."""
    try:
        from ..analytics.safety_audit import audit_run
    except ImportError:
        return None
    report = audit_run(run_dir)
    return {"violations": len(report.violations), "checked": report.checked,
            "by_rule": {rule: n for rule, n in report.violations_by_rule().items() if n},
            **({"below_ite": report.below_ite_lines()} if report.below_ite else {}),
            # rules with nothing to hold at some signals (no pedestrian intervals): their 0 is no clean result
            **({"not_applied": report.not_applied, "pedestrian_info": report.pedestrian_info}
               if report.not_applied else {})}


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def slug(text: str) -> str:
    """A directory name for a scenario or controller spec; long specs keep a hash so that two models'
    runs (ql:/long/path/a/model, ql:/long/path/b/model) never share a directory."""
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)
    if len(name) <= 40:
        return name
    return name[:31] + "-" + _digest(text)


def controller_slug(spec: str) -> str:
    """`slug` of a controller spec, a `py:FILE.py:FACTORY` named by the file's stem and its factory, not its path:
    `py:../lab/lqf.py:make` is `py-lqf-make`. Two files of one stem in one comparison are told apart by
    `distinct_slugs`, and a run beside another of the same name takes the next free one (`new_run_dir`)."""
    kind, _, rest = spec.partition(":")
    path, _, factory = rest.rpartition(":")
    if kind == "py" and path.endswith(".py"):
        return slug(f"py-{Path(path).stem}-{factory}")
    return slug(spec)


def _digest(text: str) -> str:
    """Eight hex digits that tell two texts apart in a directory name."""
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:8]


def distinct_slugs(texts: list[str]) -> dict[str, str]:
    """`controller_slug` of each controller spec, with a hash added where two would make one name (ql:x-y/model and
    ql:x/y-model, py:a/ctl.py:make and py:b/ctl.py:make): the runs of one comparison never share a directory."""
    from collections import Counter

    names = {t: controller_slug(t) for t in texts}
    taken = Counter(names.values())
    return {t: n if taken[n] == 1 else f"{n}-{_digest(t)}" for t, n in names.items()}


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
