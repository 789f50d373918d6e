"""Turn a run directory into store records: one per intersection per interval.

Built only from the files a run leaves (never from a live simulation), so any
run directory, old or new, can be published again. Per approach direction:
vehicles over the stop bar by class (SUMO's own loop passages, each vehicle
type's class its SUMO vClass: `vtype_classes.json`), the signal
status at the end of the interval and how long it had been showing, green
seconds in the interval, waiting per vehicle (SUMO edgeData). Fuel and CO2
"saved" compare each intersection-interval with the `fixed` run of the same
scenario and seed when that run is published in the same call.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import datetime as dt
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..core.eventlog import DEFAULT_START
from ..core.names import BASELINE_CONTROLLER
from ..sim.outputs import read_edgedata

log = logging.getLogger(__name__)

#: the file in which a run leaves each vehicle type's SUMO vClass (`sim.backend.SumoBackend.vtype_classes`)
VTYPE_CLASSES_FILE = "vtype_classes.json"


def vehicle_class(vtype: str) -> str:
    """The record's class guessed from the text of a vehicle type's id (emergency vehicles count as cars).

    Only for a run directory written before runs left `vtype_classes.json`: its records cannot know a type's
    vClass, so an "articulated" type of vClass bus counts as a car there. Every other run is classed by SUMO's
    vClass (`store.vehicle_classes`)."""
    v = vtype.lower()
    if "bus" in v:
        return "bus"
    if any(k in v for k in ("truck", "trailer", "delivery", "lorry", "hgv")):
        return "truck"
    if any(k in v for k in ("bike", "bicycle", "cycl")):
        return "bike"
    if "rickshaw" in v:
        return "rickshaw"
    return "car"


def simulation_id(run_dir: Path) -> str:
    """A run's name in the store: its directory name, prefixed by the compare it belongs to. It is the run's id
    unless the store holds that name for another directory (`stored_simulation_id`)."""
    p = Path(run_dir).resolve()
    if p.name[:8].isdigit():  # a standalone run: <time>-<scenario>-<controller>-s<seed>
        return p.name[:128]
    return f"{p.parent.name}.{p.name}"[-128:]  # no "/": ids appear in URL paths


#: what separates a run's name from the digest of its directory's path, in the id of a run whose name the store
#: holds for another directory (`study2/cmp/fixed-s1` beside `study1/cmp/fixed-s1`: `cmp.fixed-s1~1a2b3c4d`)
DIRECTORY_MARK = "~"


def directory_simulation_id(run_dir: Path) -> str:
    """The run's name with the first 8 hex digits of the SHA-256 of its directory's absolute path: the id of a
    run whose name is taken by another directory, the same for the same directory every time."""
    import hashlib

    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{simulation_id(run_dir)[:128 - 1 - len(digest)]}{DIRECTORY_MARK}{digest}"


def stored_simulation_id(engine, run_dir: Path,  # noqa: ANN001 - an Engine
                         claimed: dict[str, str] | None = None) -> tuple[str, str | None]:
    """The id `publish_runs` stores a run directory under, and a note when that is not its name.

    Its name (`simulation_id`) while the store holds nothing under it or holds this same directory (publishing a
    directory again replaces it); when the store holds the name for another run directory, for a run that does not
    say which, or for an imported event log, the run is stored as `directory_simulation_id` instead, and the note
    says so: two comparisons in `study1/cmp` and `study2/cmp` are two runs each, never one replacing the other. A
    directory once stored under that id keeps it. `claimed`: ids given to other directories of the same call
    (id -> directory)."""
    claimed = {} if claimed is None else claimed
    here = str(Path(run_dir).resolve())
    name, own = simulation_id(run_dir), directory_simulation_id(run_dir)
    stored = _stored_holders(engine, [name, own])

    def holder(sim: str) -> str | None:
        return claimed.get(sim) or stored.get(sim)

    if holder(own) == here:  # stored under its own id before: the same id again
        return own, None
    other = holder(name)
    if other is None or other == here:
        return name, None
    if holder(own) is not None:
        raise RunFilesError(f"{here}: the store holds both {name} and {own} for other runs ({other}; "
                            f"{holder(own)}): forget one of them (signalwise db forget ID) before publishing it")
    return own, (f"{name} is stored already for {other}: {here} is stored as {own} (signalwise db forget {name} "
                 "removes the other)")


def _stored_holders(engine, ids: list[str]) -> dict[str, str]:  # noqa: ANN001 - an Engine
    """What the store holds under each of `ids` that holds anything: the run directory of a stored run, or words
    for a run that names none (stored by `register_run` with another configuration) or for hi-res events with no
    run (an imported log's `--simulation-id`)."""
    from sqlalchemy import select

    from ..store.tables import HiresEvent, Run

    runs, events = Run.__table__, HiresEvent.__table__
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for sim, config in conn.execute(select(runs.c.simulation_id, runs.c.config)
                                        .where(runs.c.simulation_id.in_(ids))):
            run_dir = (config or {}).get("run_dir") if isinstance(config, dict) else None
            out[sim] = str(run_dir) if run_dir else "a run that names no run directory"
        for sim in ids:
            if sim not in out and conn.execute(select(events.c.device_id).where(events.c.simulation_id == sim)
                                               .limit(1)).first() is not None:
                out[sim] = "hi-res events imported under that id"
    return out


def build_records(run_dir: Path, baseline_dir: Path | None = None, sim_id: str | None = None) -> Iterator[dict]:
    """Records in the issue's ingestion format for every intersection and interval of a run (`sim_id`: the id it
    is stored under, by default its name)."""
    run_dir = Path(run_dir)
    cfg = _read_yaml(run_dir / "config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    interval_s = float(cfg.get("interval_s", 60.0))
    model = json.loads((run_dir / "signal_model.json").read_text())
    begin_s = float(metrics["begin_s"]) if "begin_s" in metrics else _first_time(run_dir)
    end_s = begin_s + float(metrics["simulated_s"])
    n = max(1, int(-(-(end_s - begin_s) // interval_s)))
    sim_id = sim_id or simulation_id(run_dir)

    def bin_of(t: float) -> int:
        return _bin(t, begin_s, interval_s, n)

    lane_dir = {lane: d for dev in model for lane, d in (dev.get("approaches") or {}).items()}
    passages = _passages(run_dir / "detector_passages.csv", lane_dir, bin_of)
    classify = _vtype_classifier(run_dir)
    states = _states(run_dir / "signal_states.csv")
    edge_rows = read_edgedata(run_dir / "sumo" / "edgedata.xml", ("waitingTime", "left", "speed", "sampledSeconds"))
    emissions = _emissions_by_tls_interval(run_dir, model, bin_of)
    base_emissions = _emissions_by_tls_interval(baseline_dir, model, bin_of) if baseline_dir else {}
    queues = _queues(run_dir / "queues.csv", bin_of)
    preempts = _preempts(run_dir / "events.csv", bin_of)
    edge_stats = defaultdict(lambda: defaultdict(float))
    for row in edge_rows:
        k = (row["edge"], bin_of(row["begin_s"]))
        edge_stats[k]["wait"] += row.get("waitingTime", 0.0)
        edge_stats[k]["left"] += row.get("left", 0.0)
        edge_stats[k]["speed_x_s"] += row.get("speed", 0.0) * row.get("sampledSeconds", 0.0)
        edge_stats[k]["sampled_s"] += row.get("sampledSeconds", 0.0)

    for dev in model:
        tls = dev["id"]
        approaches: dict[str, str] = {lane: d for lane, d in (dev.get("approaches") or {}).items() if d}
        if not approaches:
            continue
        links_by_dir: dict[str, list[int]] = defaultdict(list)
        for link in dev["links"]:
            d = approaches.get(link["in_lane"])
            if d and not link["crosswalk"]:
                links_by_dir[d].append(link["index"])
        edges_by_dir: dict[str, set[str]] = defaultdict(set)
        for lane, d in approaches.items():
            edges_by_dir[d].add(lane.rsplit("_", 1)[0])
        dev_states = states.get(tls, [])
        for k in range(n):
            t0 = begin_s + k * interval_s
            t1 = min(end_s, t0 + interval_s)
            signals = []
            for d in sorted(links_by_dir):
                links = links_by_dir[d]
                counts = {"car": 0, "bus": 0, "truck": 0, "bike": 0, "rickshaw": 0}
                emergency = False
                for vtype in passages.get((tls, d, k), ()):
                    klass, is_emergency = classify(vtype)
                    counts[klass] += 1
                    emergency = emergency or is_emergency
                crossed = sum(counts.values())
                status, since = _status_at(dev_states, links, t1)
                green = _green_seconds(dev_states, links, t0, t1)
                wait = left = 0.0
                for e in edges_by_dir[d]:
                    s = edge_stats.get((e, k))
                    if s:
                        wait += s["wait"]
                        left += s["left"]
                signals.append({
                    "direction": d, "vehicle_counts": counts, "emergency_vehicle_present": emergency,
                    "signal_status": status, "signal_timer": round(max(0.0, t1 - since), 1),
                    "vehicles_crossed": crossed, "avg_wait_time": round(wait / left, 2) if left else 0.0,
                    "green_time_allocated": round(green, 1),
                })
            if not signals:
                continue
            passed = sum(s["vehicles_crossed"] for s in signals)
            wait_all = (sum(s["avg_wait_time"] * s["vehicles_crossed"] for s in signals) / passed) if passed else 0.0
            sx = ss = 0.0
            for d in edges_by_dir:
                for e in edges_by_dir[d]:
                    s = edge_stats.get((e, k))
                    if s:
                        sx += s["speed_x_s"]
                        ss += s["sampled_s"]
            queue_end = queues.get(tls, {}).get(k, 0)
            fuel_l, co2_kg = emissions.get((tls, k), (0.0, 0.0))
            base = base_emissions.get((tls, k))
            yield {
                "simulation_id": sim_id,
                "timestamp": _utc(t0),
                "intersection_id": tls,
                "signals": signals,
                "metrics": {
                    "total_vehicles_passed": passed,
                    "avg_wait_time_all_sides": round(wait_all, 2),
                    # share of the vehicles at the stop line that the interval served
                    "throughput": round(passed / (passed + queue_end), 4) if passed + queue_end else 1.0,
                    "avg_speed": round(sx / ss * 3.6, 2) if ss else 0.0,  # km/h
                    "fuel_saved": round(base[0] - fuel_l, 4) if base else 0.0,  # litres vs baseline
                    "co2_saved": round(base[1] - co2_kg, 4) if base else 0.0,  # kg vs baseline
                    "emergency_overrides": preempts.get((tls, k), 0),
                },
            }


def publish_runs(run_dirs: Iterable[Path], db_url: str | None = None,
                 say: Callable[[str], None] | None = None) -> int:
    """Register runs, their metrics, records, hi-res events and detector configuration (`detectors.csv`, when the
    directory has one) in the store; returns records written. Each run is stored under its name, or under
    `directory_simulation_id` when the store holds the name for another directory (`stored_simulation_id`):
    `say` gets a line for each such run (by default a logged warning), never a run replaced unsaid."""
    from ..core.eventlog import read_events
    from ..store import (
        bulk_insert_events,
        forget_run,
        get_engine,
        ingest_records,
        register_run,
        store_detector_config,
        write_run_metrics,
    )
    from ..store.queries import config_conditions_key

    engine = get_engine(db_url)
    run_dirs = [Path(d) for d in run_dirs]
    infos, configs = {}, {}
    for d in run_dirs:
        infos[d] = _read_json(d / "metrics.json")
        with _reading(d / "config.yaml"):
            configs[d] = _read_yaml(d / "config.yaml")

    def paired(d: Path) -> tuple:  # the baseline of a run is the one of the same scenario, seed and conditions
        return infos[d]["scenario"], infos[d]["seed"], config_conditions_key(configs[d])

    ids: dict[Path, str] = {}
    notes: list[str] = []  # said once every file has read: a refused directory stores nothing, says nothing else
    claimed: dict[str, str] = {}  # the ids of this call's directories so far: two of one name are two runs too
    for d in run_dirs:
        ids[d], note = stored_simulation_id(engine, d, claimed)
        claimed[ids[d]] = str(d.resolve())
        notes += [note] if note else []
    baselines = {paired(d): d for d, m in infos.items() if m["controller"] == BASELINE_CONTROLLER}
    # every file is read before anything is written: a directory whose events.csv or signal states are cut short
    # is refused whole, with the line it stops at, instead of stored as a run with its metrics and half its data
    prepared = []
    for d, m in infos.items():
        base = baselines.get(paired(d)) or _stored_baseline(engine, *paired(d))
        if base == d or not (_emissions_recorded(m) and base is not None and _emissions_recorded(
                infos.get(base) or _read_json(base / "metrics.json"))):  # read already, when published with it
            base = None  # fuel and CO2 "saved" need both runs' emissions: without them it is unknown, stored as 0
        with _reading(d):
            records = list(build_records(d, base, ids[d]))
            for _event in read_events(d / "events.csv"):
                pass
        detectors = _detector_config_rows(d / "detectors.csv")
        prepared.append((d, m, records, detectors))
    for note in notes:
        (say or log.warning)(note)
    total = 0
    for d, m, records, detectors in prepared:
        sim_id = ids[d]
        cfg = configs[d]
        started = json.loads((d / "run.json").read_text()).get("started")
        started_at = dt.datetime.fromisoformat(started).astimezone(dt.UTC) if started else None
        # what the store holds under this name is exactly this directory: a directory run again under the same
        # name is another run, whose last intervals, events and metrics must not outlive it
        forget_run(engine, sim_id)
        # where the run's files are, so a later publish of another controller finds its baseline's emissions
        register_run(engine, sim_id, m["scenario"], m["controller"], int(m["seed"]),
                     {**cfg, "run_dir": str(d.resolve())}, started_at)
        flat = {k: float(v) for k, v in m["network"].items() if isinstance(v, int | float)}
        if _emissions_recorded(m):  # the analytics API compares fuel and CO2 in these units
            flat["co2_g"] = flat.get("co2_kg", 0.0) * 1000.0
            flat["fuel_ml"] = flat.get("fuel_l", 0.0) * 1000.0
        else:  # a run without SUMO's emissions wrote 0 for them: unknown, so not stored (it "saved" all fuel)
            for key in EMISSION_METRICS:
                flat.pop(key, None)
        if "safety" in m:
            flat["safety_violations"] = float(m["safety"]["violations"])
        write_run_metrics(engine, sim_id, flat)
        total += ingest_records(engine, records)
        start = DEFAULT_START
        bulk_insert_events(engine, ((start + dt.timedelta(seconds=e.time_s), e.device_id, e.event_code, e.parameter)
                                    for e in read_events(d / "events.csv")), simulation_id=sim_id)
        if detectors is not None:  # the API's detector measures for this run read it (docs/atspm.md)
            store_detector_config(engine, sim_id, detectors)
    return total


def _detector_config_rows(path: Path) -> list[tuple] | None:
    """The rows of a run's `detectors.csv` in the store's columns (`store.detector_configs.COLUMNS`), read as
    `signalwise atspm` reads the file, so a file it would refuse is refused here, before anything is stored;
    None when the run wrote none (an older run directory)."""
    if not path.exists():
        return None
    from ..analytics.atspm.inputs import read_detectors
    from ..store.detector_configs import COLUMNS

    with _reading(path):
        frame = read_detectors(path).frame
    return list(frame[list(COLUMNS)].itertuples(index=False, name=None))


class RunFilesError(ValueError):
    """A run directory's files cannot be read (cut short, damaged): bad input, refused before anything is stored."""


@contextlib.contextmanager
def _reading(where: Path) -> Iterator[None]:
    """Errors reading the files at `where` (a file, or a run directory whose files name themselves) as one
    RunFilesError naming it (the database is not touched here)."""
    try:
        yield
    except RunFilesError:
        raise
    except ValueError as exc:  # the event log and the SUMO files name the file and line themselves
        raise RunFilesError(str(exc) if str(where) in str(exc) else f"{where}: {exc}") from None
    except (OSError, KeyError, TypeError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise RunFilesError(f"{where}: {what}") from None


def _read_json(path: Path) -> dict:
    with _reading(path):
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data


def _stored_baseline(engine, scenario: str, seed: int, conditions: str) -> Path | None:
    """The run directory of the baseline run of this scenario, seed and conditions (`queries.conditions_key`)
    published earlier, if still on disk.

    Without it a run published on its own stored fuel and CO2 "saved" as 0.
    """
    from sqlalchemy import select

    from ..store.queries import config_conditions_key
    from ..store.tables import Run

    t = Run.__table__
    with engine.connect() as conn:
        configs = conn.execute(select(t.c.config).where(t.c.scenario == scenario, t.c.seed == seed,
                                                        t.c.controller == BASELINE_CONTROLLER)
                               .order_by(t.c.id.desc())).scalars().all()
    run_dir = next(((c or {}).get("run_dir") for c in configs if config_conditions_key(c) == conditions), None)
    return Path(run_dir) if run_dir and (Path(run_dir) / "metrics.json").is_file() else None


#: a run's fuel and CO2 figures, which it has only when SUMO computed its emissions
EMISSION_METRICS = ("co2_kg", "fuel_l")


def _emissions_recorded(metrics: dict) -> bool:
    return bool(metrics.get("emissions_recorded", True))


# -- reading the run directory -------------------------------------------------------------------------

def _read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _vtype_classifier(run_dir: Path):
    """vtype -> (the record's class, whether an emergency vehicle), from the vClass of each type the run left in
    `vtype_classes.json` (a type it does not list is SUMO's default, a passenger car). A run directory written
    before runs left that file is classed by the text of the type ids (`vehicle_class`), as it was then."""
    from ..store.vehicle_classes import is_emergency, record_class

    path = run_dir / VTYPE_CLASSES_FILE
    if not path.exists():
        return lambda vtype: (vehicle_class(vtype), "emergency" in vtype.lower())
    with _reading(path):
        vclasses = json.loads(path.read_text())
        if not isinstance(vclasses, dict):
            raise ValueError("not a JSON object")

    def classify(vtype: str) -> tuple[str, bool]:
        vclass = vclasses.get(vtype, "passenger")
        return record_class(vclass), is_emergency(vclass)

    return classify


def _first_time(run_dir: Path) -> float:
    with open(run_dir / "signal_states.csv") as fh:
        r = csv.DictReader(fh)
        row = next(r, None)
    return float(row["time_s"]) if row else 0.0


def _bin(t: float, begin_s: float, interval_s: float, n: int) -> int:
    return min(n - 1, max(0, int((t - begin_s) // interval_s)))


def _utc(t_s: float) -> str:
    return (DEFAULT_START + dt.timedelta(seconds=t_s)).replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def _passages(path: Path, lane_dir: dict[str, str], bin_of) -> dict[tuple[str, str, int], list[str]]:
    """Stop-bar passages per (device, direction, interval) -> vehicle types: a vehicle counts in the interval it
    left the stop-bar loop (over the stop line), as a live run counts it (`live.records.passage`); one still on
    the loop when the run ended (no `leave_s`: queued at the stop line) has crossed nothing and is not counted.
    A vehicle that changes lane on the loops (it leaves one lane's loop the instant it enters the next's) crosses
    once, when it leaves the last: so the counts equal the vehicles that left the approach edges (metrics.json)."""
    out: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    if not path.exists():
        return out
    #: (device, direction, vehicle) -> (when it left the loop it is on, or None while it is on it, its type)
    on: dict[tuple[str, str, str], tuple[float | None, str]] = {}

    def crossed(key: tuple[str, str, str]) -> None:
        left, vtype = on.pop(key)
        if left is not None:
            out[(key[0], key[1], bin_of(left))].append(vtype)

    with open(path) as fh:
        for row in csv.DictReader(fh):
            d = lane_dir.get(row["lane"])
            if not row["detector_id"].startswith("sb_") or not d:
                continue
            key = (row["device_id"], d, row.get("vehicle_id", ""))
            if key in on and (on[key][0] is None or abs(float(row["enter_s"]) - on[key][0]) > 1e-6):
                crossed(key)  # an earlier passage of the approach, not a lane change onto this loop
            else:
                on.pop(key, None)  # a lane change: the loop it left was not the stop line
            on[key] = (float(row["leave_s"]) if row.get("leave_s") else None, row["vtype"])
    for key in list(on):
        crossed(key)
    return out


def _states(path: Path) -> dict[str, list[tuple[float, str]]]:
    out: dict[str, list[tuple[float, str]]] = defaultdict(list)
    with open(path) as fh:
        for row in csv.DictReader(fh):
            out[row["device_id"]].append((float(row["time_s"]), row["state"]))
    return out


def _status_of(state: str, links: list[int]) -> str:
    chars = {state[i] for i in links if i < len(state)}
    if chars & {"G", "g"}:
        return "GREEN"
    if "y" in chars:
        return "YELLOW"
    return "RED"


def _status_at(states: list[tuple[float, str]], links: list[int], t: float) -> tuple[str, float]:
    """Status of a group of links at time t and when that status began."""
    if not states:
        return "RED", t
    times = [s[0] for s in states]
    i = max(0, bisect.bisect_right(times, t) - 1)
    status = _status_of(states[i][1], links)
    since = states[i][0]
    while i > 0 and _status_of(states[i - 1][1], links) == status:
        i -= 1
        since = states[i][0]
    return status, since


def _green_seconds(states: list[tuple[float, str]], links: list[int], t0: float, t1: float) -> float:
    total = 0.0
    for j, (ts, st) in enumerate(states):
        te = states[j + 1][0] if j + 1 < len(states) else t1
        a, b = max(ts, t0), min(te, t1)
        if b > a and _status_of(st, links) == "GREEN":
            total += b - a
    return total


def _queues(path: Path, bin_of) -> dict[str, dict[int, int]]:
    """Halting vehicles at the last sample of each interval, per device."""
    out: dict[str, dict[int, int]] = defaultdict(dict)
    if not path.exists():
        return out
    with open(path) as fh:
        for row in csv.DictReader(fh):
            out[row["device_id"]][bin_of(float(row["time_s"]))] = int(row["halting_veh"])
    return out


def _preempts(path: Path, bin_of) -> dict[tuple[str, int], int]:
    from ..core.eventlog import read_events

    return dict(Counter((e.device_id, bin_of(e.time_s)) for e in read_events(path) if e.event_code == 102))


def _emissions_by_tls_interval(run_dir: Path | None, model: list[dict],
                               bin_of) -> dict[tuple[str, int], tuple[float, float]]:
    """(fuel litres, CO2 kg) on each signal's approaches per interval, from SUMO's emissions edgeData."""
    if run_dir is None or not (Path(run_dir) / "sumo" / "emissions.xml").exists():
        return {}
    edge_tls = {lane.rsplit("_", 1)[0]: dev["id"] for dev in model for lane in (dev.get("approaches") or {})}
    out: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in read_edgedata(Path(run_dir) / "sumo" / "emissions.xml", ("fuel_abs", "CO2_abs")):
        tls = edge_tls.get(row["edge"])
        if tls is None:
            continue
        acc = out[(tls, bin_of(row["begin_s"]))]
        acc[0] += row.get("fuel_abs", 0.0) / 1000.0
        acc[1] += row.get("CO2_abs", 0.0) / 1e6
    return {k: (v[0], v[1]) for k, v in out.items()}
