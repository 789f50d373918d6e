"""`signalwise detectors`: a run's detector plan, before the run starts.

A city wiring its loops, radar or MQTT devices into `signalwise live --field none` must know, per signal
(`device_id`), which channel is which detector: its lane and approach, stop bar or advance, how far from
the stop bar, the phase it calls, and the topic the device publishes on. A camera file's zones name the
same channels. The run writes that plan as `detectors.csv` only once it has started; this reads it the
way the run does (`runtime.live.runtime.LiveRuntime._open_without_simulator`): SUMO loads the network
without routes (with the additional files that hold signal programs) and runs no step, for the signal
model, and the detectors are placed from the network
file (`sim.detectors.plan_detectors`). `--out FILE` writes the file the run will write, byte for byte.

A camera file's `stop_lines[].links` name the signal's links (positions in its state string) a stop line
holds back: the table and JSON give each detector lane's links, and per approach the links of all its lanes
(`approach_links`), so a camera file can be written before any run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..core.types import Intersection
from .commands import ScenarioOpt, _fail, friendly_errors, read_config_file
from .config import RunConfig

#: the topic a device publishes its detector messages on (`runtime.live.mqtt.MqttFeed`; the prefix is the run
#: configuration's `mqtt_topic_prefix`, "signalwise" by default)
MQTT_TOPIC = "{prefix}/{device_id}/detectors"
#: characters an MQTT topic level cannot hold: such a device sends over HTTP
NOT_IN_A_TOPIC_LEVEL = ("/", "+", "#")
FORMATS = ("table", "csv", "json")
#: known signals an unknown `--intersection` error names before it says how many more there are
SHOWN_SIGNALS = 30


@dataclass(frozen=True)
class DetectorPlan:
    """The signals a run controls with the detectors it gives them, and the signals it leaves alone."""

    scenario: str
    intersections: list[Intersection]  # with their detectors, in the run's order
    refused: list  # `sim.signal_model.RefusedSignal`: left to their own program, no detector channels
    approach_of_lane: dict[str, str]  # incoming lane -> the compass direction its traffic comes from
    topic_prefix: str = "signalwise"  # the run configuration's mqtt_topic_prefix

    @property
    def signal_ids(self) -> list[str]:
        return [i.id for i in self.intersections] + [r.id for r in self.refused]

    def only(self, ids: list[str]) -> DetectorPlan:
        """The plan of these signals alone, in the plan's own order."""
        keep = set(ids)
        return dataclasses.replace(self, intersections=[i for i in self.intersections if i.id in keep],
                                   refused=[r for r in self.refused if r.id in keep])


def read_detector_plan(cfg: RunConfig) -> DetectorPlan:
    """The detector plan of a `signalwise live --field none` run of `cfg`, read as that run reads it.

    SUMO (libsumo, in this process) loads the network for the signal model and is closed before any step; a
    network the run refuses (no signal it can control, a `timing.per_intersection` or `partition` naming
    a signal it lacks) raises the run's own error.
    """
    import sumolib

    from ..sim.approach import compass_approach
    from ..sim.detectors import plan_detectors
    from .loop import open_field, resolve_scenario, sumo_options

    cfg = cfg.model_copy(update={"gui": False, "remote_port": None})  # the network only: no window, no other SUMO
    scenario = resolve_scenario(cfg)
    probe = open_field(cfg, scenario, sumo_options(cfg, scenario, with_routes=False, end_s=scenario.begin_s + 1))
    probe.backend.close()
    net = sumolib.net.readNet(str(scenario.net_file), withInternal=False)  # once, for detectors and approaches
    by_tls = plan_detectors(scenario.net_file, net)
    inters = [dataclasses.replace(i, detectors=by_tls.get(i.id, ())) for i in probe.intersections]
    approach = {lane: compass_approach(net.getLane(lane).getShape()) for i in inters for lane in i.in_lanes}
    return DetectorPlan(cfg.scenario_label, inters, list(probe.refused), approach, cfg.mqtt_topic_prefix)


def mqtt_topic(device_id: str, prefix: str = "signalwise") -> str | None:
    """The topic the device publishes on; None when its id cannot be a topic level (it sends over HTTP)."""
    if any(c in device_id for c in NOT_IN_A_TOPIC_LEVEL):
        return None
    return MQTT_TOPIC.format(prefix=prefix, device_id=device_id)


def lane_links(inter: Intersection, lane: str) -> list[int]:
    """The signal's vehicle links (positions in its state string) from `lane`, in order."""
    return sorted({m.link_index for m in inter.movements if m.in_lane == lane and not m.is_crosswalk})


def approach_links(plan: DetectorPlan, inter: Intersection) -> dict[str, list[dict]]:
    """Approach -> its lane groups by the phase that serves them: [{"phase", "lanes", "links"}], in link order. A
    camera's stop line takes one group's links: a line over lanes of two phases (a left-turn lane beside the through
    lanes) has links that disagree and judges no red light."""
    from .detector_config import primary_phase

    groups: dict[tuple[str, int | None], dict] = {}
    for m in sorted(inter.movements, key=lambda m: m.link_index):
        approach = plan.approach_of_lane.get(m.in_lane)
        if approach is None or m.is_crosswalk:
            continue
        g = groups.setdefault((approach, primary_phase(inter, m.in_lane)), {"lanes": [], "links": []})
        if m.in_lane not in g["lanes"]:
            g["lanes"].append(m.in_lane)
        g["links"].append(m.link_index)
    out: dict[str, list[dict]] = {}
    for (approach, phase), g in groups.items():
        out.setdefault(approach, []).append({"phase": phase, **g})
    return out


def plan_as_dict(plan: DetectorPlan) -> dict:
    """The plan as JSON: per signal its topic, channels and links per approach, and the signals the run leaves
    alone."""
    from .detector_config import primary_phase

    return {
        "scenario": plan.scenario,
        "signals": [{
            "device_id": i.id, "mqtt_topic": mqtt_topic(i.id, plan.topic_prefix), "approach_speed_mps": round(i.approach_speed_mps, 2),
            "detectors": [{"channel": d.channel, "kind": d.kind, "lane": d.lane,
                           "approach": plan.approach_of_lane.get(d.lane), "distance_to_stopbar_m": d.distance_to_stopbar_m,
                           "phase": primary_phase(i, d.lane), "detector_id": d.id, "links": lane_links(i, d.lane)}
                          for d in i.detectors],
            "approach_links": approach_links(plan, i),
        } for i in plan.intersections],
        "refused": [{"device_id": r.id, "reason": r.reason} for r in plan.refused],
    }


def print_plan_table(plan: DetectorPlan) -> None:
    """One table per signal, titled with its MQTT topic; a refused signal is one line saying why."""
    from rich.markup import escape
    from rich.table import Table

    from ..consoles import table_console
    from .detector_config import primary_phase

    console = table_console()
    channels = sum(len(i.detectors) for i in plan.intersections)
    console.print(f"detector plan of {escape(plan.scenario)} for `signalwise live --field none`: "
                  f"{len(plan.intersections)} signal(s), {channels} detector channel(s); a feed message names a "
                  "channel by device_id and channel", soft_wrap=True)
    for inter in plan.intersections:
        topic = mqtt_topic(inter.id, plan.topic_prefix)
        where = f"MQTT topic {topic}" if topic else "no MQTT topic (its id holds / + or #): send over HTTP"
        t = Table(title=escape(f"{inter.id}: {where}"), title_justify="left", padding=(0, 1))
        for name, justify in (("channel", "right"), ("kind", "left"), ("lane", "left"), ("approach", "left"),
                              ("to stop bar", "right"), ("phase", "right"), ("links", "left")):
            t.add_column(name, justify=justify, overflow="fold")
        for d in inter.detectors:
            phase = primary_phase(inter, d.lane)
            t.add_row(str(d.channel), "stop bar" if d.kind == "stopbar" else "advance", escape(d.lane),
                      plan.approach_of_lane.get(d.lane) or "—", f"{d.distance_to_stopbar_m:g} m",
                      str(phase) if phase else "none", ",".join(map(str, lane_links(inter, d.lane))) or "—")
        console.print(t)
        per_approach = "; ".join(
            f"{a} " + ", ".join(f"[{', '.join(map(str, g['links']))}] (phase {g['phase'] or 'none'})" for g in groups)
            for a, groups in approach_links(plan, inter).items())
        if per_approach:
            console.print(escape(f"{inter.id}: a camera file's stop_lines[].links, one group per stop line: "
                                 f"{per_approach}"), soft_wrap=True)
    for r in plan.refused:
        console.print(escape(f"{r.id}: not controlled by the run, so no detector channels: {r.reason}"),
                      soft_wrap=True)


def detectors_command(
    scenario: ScenarioOpt = None,
    sumocfg: Annotated[Path | None, typer.Option(help="your own SUMO config (.sumocfg)")] = None,
    net: Annotated[Path | None, typer.Option(help="your own network (.net.xml); with --routes, as the run takes it")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of run settings, as the run takes it (its "
                                                     "partition, its network)")] = None,
    intersection: Annotated[list[str] | None, typer.Option(
        "--intersection", "-i", show_default=False, help="only this signal (its device_id); repeatable")] = None,
    out: Annotated[Path | None, typer.Option(show_default=False, help=(
        "write the plan to this file instead: the detectors.csv the run will write (or JSON with --format json)"))] = None,
    fmt: Annotated[str | None, typer.Option("--format", show_default=False, help=(
        "table: per signal, for people | csv: the run's detectors.csv | json: per signal its topic and channels "
        "[default: table; csv with --out]"))] = None,
) -> None:
    """The detector plan of a live run, before it starts: per signal (device_id) the MQTT topic its device
    publishes on, and each detector channel's lane, approach, kind (stop bar or advance), distance to the stop
    bar, the phase it calls and its lane's links (positions in the signal's state string; per approach too, for
    a camera file's stop_lines[].links).

    Wire field detectors (loops, radar, MQTT devices) and write camera files against it for a `signalwise
    live --field none` run of the same network and --config: its channels are the ones a feed message and a
    camera zone name. `--out FILE` writes the detectors.csv the run will write. SUMO reads the network and
    runs no step.
    """
    _detectors(scenario, sumocfg, net, routes, config, intersection or [], out, fmt)


@friendly_errors
def _detectors(scenario, sumocfg, net, routes, config, intersections: list[str], out: Path | None,
               fmt: str | None) -> None:
    fmt = fmt or ("csv" if out is not None else "table")
    if fmt not in FORMATS:
        _fail(f"--format must be {', '.join(FORMATS[:-1])} or {FORMATS[-1]}, not {fmt!r}")
    if out is not None:
        if fmt == "table":
            _fail("--out writes csv or json; the table is for reading")
        if out.is_dir():
            _fail(f"--out {out}: a directory; name the file to write (e.g. {out / 'detectors.csv'})")
        if not out.parent.is_dir():
            _fail(f"--out {out}: no such directory {out.parent}")
    data = read_config_file(config) if config is not None else {}
    data.pop("alerts", None)  # the live run's alert rules: nothing of its detectors
    given = {"scenario": scenario, "sumocfg": sumocfg, "net": net, "routes": routes or None}
    data.update({k: v for k, v in given.items() if v is not None})
    plan = read_detector_plan(RunConfig.model_validate(data))
    if intersections:
        unknown = list(dict.fromkeys(i for i in intersections if i not in plan.signal_ids))
        if unknown:
            known = plan.signal_ids
            shown = ", ".join(known[:SHOWN_SIGNALS]) + (f" and {len(known) - SHOWN_SIGNALS} more"
                                                          if len(known) > SHOWN_SIGNALS else "")
            _fail(f"--intersection {', '.join(unknown)}: not a signal of this run (its signals: {shown})")
        plan = plan.only(intersections)
    if fmt == "table":
        print_plan_table(plan)
        return
    if fmt == "csv":
        for r in plan.refused:  # the csv has no row for it, as the run's detectors.csv has none
            typer.echo(f"{r.id}: not controlled by the run, so no detector channels: {r.reason}", err=True)
    if out is None:
        _write(sys.stdout, plan, fmt)
        return
    partial = out.with_name(out.name + ".partial")  # nothing half-written at `out`
    with open(partial, "w", newline="") as fh:
        _write(fh, plan, fmt)
    partial.replace(out)
    channels = sum(len(i.detectors) for i in plan.intersections)
    typer.echo(f"wrote the detector plan of {plan.scenario} ({len(plan.intersections)} signal(s), {channels} "
               f"channel(s)) to {out}", err=True)


def _write(fh, plan: DetectorPlan, fmt: str) -> None:
    from .detector_config import write_detector_csv

    if fmt == "csv":
        write_detector_csv(fh, plan.intersections)
    else:
        fh.write(json.dumps(plan_as_dict(plan), indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command("detectors")(detectors_command)
