"""The control loop: source -> Observation -> Controller -> Shield -> sink.

Per simulation step, for each intersection: ask its controller when it is
due (and only then read what it needs from the source), check the data's
age and plausibility, pass the proposal and its observation to the shield,
tick the shield, and write the resulting signal state to the sink.
Everything that SUMO can measure itself (trips, emissions, per-edge
intervals, detector passages) is left to SUMO's own outputs and read after
the run.

The source and the sink are interfaces (`ObservationSource`, `SignalSink`):
SUMO is both in an offline run; a fault-injecting wrapper, a detector feed or
a shadow sink plug in the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..control.actuated import PASSAGE_DEFAULT_KEY
from ..control.base import ControlContext, Controller, check_usable, make
from ..control.shield import IntersectionShield, ShieldConfig, covering_phases
from ..control.webster import PLANNING_PERIOD_S, fallback_plan
from ..core.health import detector_fault, lanes_fault
from ..core.names import BASELINE_CONTROLLER
from ..core.timing import ceil_to_step
from ..core.types import (
    Decision,
    EmergencyApproach,
    Intersection,
    Intervention,
    Observation,
    ObservationNeed,
    SignalEvent,
    SourceHealth,
)
from ..sim.approach import compass_approach
from ..sim.backend import DETECTORS_SOURCE, LANES_SOURCE, SimulationError, SumoBackend, SumoOptions
from ..sim.detectors import DetectorLayout, place_detectors
from ..sim.lane_zones import listed_lanes
from ..sim.outputs import write_meandata_file
from ..sim.replay import ReplayProcess, spare_cores, writes_own_outputs
from ..sim.scenario import (
    Scenario,
    ScenarioError,
    from_files,
    from_sumocfg,
    load,
    nominal_lane_flows,
    unapplied_note,
)
from ..sim.signal_model import RefusedSignal, ite_timing, link_geometry
from .config import RunConfig, owned_sumo_option
from .controller_faults import ControllerFaults
from .evidence import REPLAYED_FILES, EvidenceReplay, replay_digest

log = logging.getLogger("signalwise.runtime")

Progress = Callable[[float, float], None]  # (simulated seconds done, total)

#: controllers that never read detectors live: SUMO is spared their loops (~10% of a step). Not the learning
#: ones: a phase-score model may weigh `hold_gap`, read from the loops' idle times (the shipped corridor's does)
NO_LIVE_DETECTORS = frozenset({BASELINE_CONTROLLER, "coordinated", "max-pressure"})
#: a vehicle standing inside a junction this long is locked in (SUMO's own default --time-to-teleport)
LOCKED_AFTER_S = 300.0

#: SUMO's tripinfo rows for the vehicles still driving and those never inserted at the end: RESCO's delay, and
#: every figure of metrics.json's `network`, counts every vehicle due in the window
TRIPINFO_ARGS = ("--tripinfo-output.write-unfinished", "true", "--tripinfo-output.write-undeparted", "true")


#: `LoopStepper._observe` builds an Observation field by field: a field added to it must be added there too
_OBSERVATION_FIELDS = ("time_s", "intersection_id", "lanes", "detector_idle_s", "signal", "detector_counts_veh",
                       "emergency", "sources")
assert tuple(f.name for f in dataclasses.fields(Observation)) == _OBSERVATION_FIELDS, "see LoopStepper._observe"


class ObservationSource(Protocol):
    """Where observations come from: SUMO, a detector feed, camera zones."""

    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation: ...

    @property
    def emergency_active(self) -> bool: ...

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]: ...


class SignalSink(Protocol):
    """Where the shield's signal states go: SUMO, a shadow recorder, a field controller."""

    def set_signal_state(self, tls_id: str, state: str) -> None: ...


#: builds the controller of one intersection; None = proposals come from outside, through `LoopStepper.propose`
ControllerFactory = Callable[[Intersection, ControlContext], Controller | None]


@dataclass
class LoopResult:
    """What the loop itself produced; SUMO's files are read afterwards."""

    scenario: Scenario
    intersections: list[Intersection]
    refused: list[RefusedSignal]
    detectors: DetectorLayout | None
    events: list[SignalEvent]
    interventions: list[Intervention]
    signal_states: list[tuple[float, str, str]]
    queue_samples: list[tuple[float, str, int]]  # (time, intersection, halting vehicles on approaches)
    fallback_fraction: dict[str, float]
    begin_s: float
    end_s: float
    wall_s: float
    steps: int
    files: dict[str, Path]
    controller_errors: int = 0
    #: each kind of error the controllers raised and of proposal the shield could not follow, with its count
    controller_faults: ControllerFaults | None = None
    emergency_ids: set[str] = field(default_factory=set)
    approach_direction: dict[str, str] = field(default_factory=dict)  # incoming lane -> north/south/east/west
    webster_plans: dict[str, list] = field(default_factory=dict)
    #: the replay computing the emissions in another process (`sim.replay`); None: the run's own SUMO did
    evidence_replay: EvidenceReplay | None = None
    #: per junction, the vehicles standing inside it for `LOCKED_AFTER_S` or longer at the end (a lock)
    junction_locks: dict[str, int] = field(default_factory=dict)
    #: every vehicle type of the run -> its SUMO vClass, as the simulator knew them at the end (`vtype_classes`)
    vtype_classes: dict[str, str] = field(default_factory=dict)
    #: every vehicle type of the run -> its emission class, as the simulator knew them at the end
    emission_classes: dict[str, str] = field(default_factory=dict)
    #: wall seconds of each decision (`LoopStepper.decide_s`)
    decide_s: Sequence[float] = ()
    #: why the plans made before any count assumed a demand (`sim.scenario.demand_unread_note`); None: they did not
    demand_unread: str | None = None


@dataclass
class Field:
    """A started simulation and the signals it lets us control."""

    backend: SumoBackend
    scenario: Scenario
    intersections: list[Intersection]
    refused: list[RefusedSignal]
    layout: DetectorLayout | None = None


def resolve_scenario(cfg: RunConfig) -> Scenario:
    if cfg.sumocfg is not None:
        return from_sumocfg(cfg.sumocfg)
    if cfg.net is not None:
        return from_files(cfg.net, tuple(cfg.routes))
    return load(cfg.scenario)


def timing_defaults(cfg: RunConfig) -> dict[str, float | None]:
    """The configuration's timing defaults as the signal model reads them (per-intersection overrides apart),
    with the step the signals are shown at: a cycle bound raised to fit every phase counts whole steps."""
    return {**cfg.timing.model_dump(exclude={"per_intersection", "profile"}), "step_length_s": cfg.step_length_s}


def shield_config(cfg: RunConfig) -> ShieldConfig:
    return ShieldConfig(**cfg.shield.model_dump(), step_length_s=cfg.step_length_s)


def applied_sumo_options(cfg: RunConfig, scenario: Scenario) -> dict[str, object]:
    """The SUMO options a run starts with beyond the ones it sets itself: with `sumocfg_options: apply` the
    .sumocfg's own settings (but those a run owns, which stay named as left out), then `sumo_options`, which win."""
    options: dict[str, object] = {}
    if cfg.sumocfg_options == "apply":
        options = {name: value for name, value in scenario.sumocfg_settings if owned_sumo_option(name) is None}
    return {**options, **cfg.sumo_options}


def sumocfg_note(cfg: RunConfig, scenario: Scenario) -> str | None:
    """The warning naming what of the scenario's .sumocfg the run leaves out; None when nothing."""
    # an option the run sets itself to the value the config gives it is applied in effect: not named
    run_values = {"time-to-teleport": cfg.time_to_teleport_s, "step-length": cfg.step_length_s, "seed": cfg.seed,
                  "scale": cfg.demand_scale}
    return unapplied_note(scenario, applied_sumo_options(cfg, scenario), cfg.sumocfg_options == "apply", run_values)


def sumo_options(cfg: RunConfig, scenario: Scenario, seed: int | None = None, end_s: float | None = None,
                 with_routes: bool = True, **more) -> SumoOptions:
    """How SUMO starts for this configuration: the same traffic for the same seed, whoever starts it.

    `with_routes=False` (the signal model without traffic) keeps the additional files that hold signal programs."""
    return SumoOptions(net_file=scenario.net_file, route_files=scenario.route_files if with_routes else (),
                       additional_files=(tuple(scenario.additional_files) if with_routes
                                         else scenario.signal_program_files),
                       begin_s=scenario.begin_s, end_s=end_s, seed=cfg.seed if seed is None else seed,
                       step_length_s=cfg.step_length_s, time_to_teleport_s=cfg.time_to_teleport_s, demand_scale=cfg.demand_scale, gui=cfg.gui, remote_port=cfg.remote_port,
                       client_order=cfg.client_order, sumo_options=applied_sumo_options(cfg, scenario), **more)


def open_field(cfg: RunConfig, scenario: Scenario, opts: SumoOptions, layout: DetectorLayout | None = None,
               backend_factory: Callable[[SumoOptions], SumoBackend] = SumoBackend) -> Field:
    """Start SUMO and read its signal model; refuse a network with no signal we can control.

    The one place that starts a simulation for the loop, the environments,
    model checks and the live runtime (whose `backend_factory` runs SUMO in a
    worker process). The caller closes `field.backend`.
    """
    backend = backend_factory(opts)
    backend.start()
    try:
        inters, refused = backend.read_signals(timing_defaults(cfg), cfg.timing.per_intersection, cfg.partition)
        known = {i.id for i in inters} | {r.id for r in refused}
        outside = sorted(set(cfg.partition or ()) - known)
        if outside:
            raise SimulationError(f"partition names {', '.join(outside)}, not a traffic light of this network")
        unknown = sorted(set(cfg.timing.per_intersection) - known - set(_all_signal_ids(backend, cfg)))
        if unknown:
            raise SimulationError(f"timing.per_intersection names {', '.join(unknown)}, not a traffic light of "
                                  f"this network (its traffic lights: {', '.join(sorted(known)) or 'none'})")
        passage = cfg.controller_options.get("passage_s")
        unknown = sorted(set(passage) - {PASSAGE_DEFAULT_KEY} - known) if isinstance(passage, Mapping) else []
        if unknown:  # each controller sees its own signal only, so a mistyped one would go unsaid
            raise SimulationError(f"controller_options.passage_s names {', '.join(map(str, unknown))}, not a "
                                  f"traffic light of this network (its traffic lights: "
                                  f"{', '.join(sorted(known)) or 'none'})")
        if not inters:
            raise SimulationError(f"no controllable traffic light ({grouped_refusals(refused)})")
    except BaseException:
        backend.close()
        raise
    if layout is not None:
        inters = [dataclasses.replace(i, detectors=layout.by_tls.get(i.id, ())) for i in inters]
    return Field(backend, scenario, inters, refused, layout)


def grouped_refusals(refused, shown: int = 4) -> str:
    """Each reason once, with the signals it refused: a generated network refuses dozens for the same one."""
    if not refused:
        return "the network has no traffic lights"
    by_reason: dict[str, list[str]] = {}
    for r in refused:
        by_reason.setdefault(r.reason, []).append(r.id)
    parts = []
    for reason, ids in by_reason.items():
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        parts.append(f"{', '.join(ids[:shown])}{more}: {reason}")
    return "; ".join(parts)


def _all_signal_ids(backend, cfg: RunConfig) -> list[str]:
    """Every traffic light of the network, when a partition hides some (overrides may name them)."""
    if cfg.partition is None:
        return []
    inters, refused = backend.read_signals(timing_defaults(cfg), cfg.timing.per_intersection)
    return [i.id for i in inters] + [r.id for r in refused]


def run_loop(cfg: RunConfig, run_dir: Path, progress: Progress | None = None,
             queue_sample_s: float = 5.0, controllers: ControllerFactory | None = None,
             source_wrapper: Callable[[ObservationSource], ObservationSource] | None = None,
             backend_factory: Callable[[SumoOptions], SumoBackend] = SumoBackend,
             on_start: Callable[[list], None] | None = None) -> LoopResult:
    """Run one simulation under `cfg.controller`, writing SUMO outputs into `run_dir`.

    `controllers` replaces the registry's controller for `cfg.controller`
    (training hands its learning controllers in this way); `source_wrapper`
    wraps the SUMO source (fault injection, delayed feeds, a camera that
    replaces it); `backend_factory` starts SUMO another way (sumo-gui
    filming every step for the camera in the loop); `on_start` is handed the
    signals the run controls once they are read, before the first step (the
    `run` command's warnings at start).
    """
    scenario = resolve_scenario(cfg)
    begin_s, end_s = run_window(cfg, scenario)
    (run_dir / "sumo").mkdir(parents=True, exist_ok=True)
    with _path_sumo_can_write(run_dir / "sumo") as sumo_dir:
        return _run_in(cfg, scenario, begin_s, end_s, sumo_dir, progress, queue_sample_s, controllers, source_wrapper,
                       backend_factory, on_start)


def run_window(cfg: RunConfig, scenario: Scenario) -> tuple[float, float]:
    """The run's begin and end in simulation seconds; a warm-up that leaves nothing to count is refused before
    SUMO starts (a scenario's own window is known only once it is read)."""
    begin_s = scenario.begin_s
    end_s = begin_s + (cfg.duration_s if cfg.duration_s is not None else scenario.duration_s)
    if cfg.warmup_s >= end_s - begin_s:
        raise ScenarioError(f"warmup_s (--warmup) {cfg.warmup_s:g} s leaves nothing of the run's "
                            f"{end_s - begin_s:g} s window ({begin_s:g}-{end_s:g} s) to count: give a shorter "
                            "--warmup, or a longer --duration where the window allows")
    return begin_s, end_s


@contextlib.contextmanager
def _path_sumo_can_write(directory: Path):
    """`directory`, or a colon-free link to it: SUMO reads `host:port` in an output path with a colon."""
    if ":" not in str(directory.resolve()):
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="signalwise-") as tmp:
        link = Path(tmp) / "sumo"
        link.symlink_to(directory.resolve(), target_is_directory=True)
        yield link


@contextlib.contextmanager
def network_read(net_file: Path) -> Iterator[None]:
    """Around a reading of `net_file` by sumolib: a network it cannot read is one SimulationError naming the file
    and what is wrong, where SUMO given the same file prints its parser's lines and then says only "Process
    Error"."""
    try:
        yield
    except Exception as exc:  # sumolib's parse errors are KeyErrors, SAXParseExceptions, ...
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise SimulationError(f"{net_file}: not a readable SUMO network ({type(exc).__name__}: {detail})") from None


def _run_in(cfg: RunConfig, scenario: Scenario, begin_s: float, end_s: float, sumo_dir: Path,
            progress: Progress | None, queue_sample_s: float, controllers: ControllerFactory | None,
            source_wrapper, backend_factory: Callable[[SumoOptions], SumoBackend] = SumoBackend,
            on_start: Callable[[list], None] | None = None) -> LoopResult:
    layout = None
    additional = []
    lean = cfg.record == "lean"
    emissions = cfg.emissions and not lean
    replay = emissions and _replays_evidence(cfg, scenario, backend_factory)
    kind = cfg.controller.split(":", 1)[0]
    if cfg.remote_port is None and not (lean and kind in NO_LIVE_DETECTORS):
        with network_read(scenario.net_file):
            layout = place_detectors(scenario.net_file, sumo_dir, live=kind not in NO_LIVE_DETECTORS,
                                     instant=not lean, step_s=cfg.step_length_s)
    # what only records goes to the replay's SUMO when there is one (the dear part of it: `REPLAYED_FILES`); the
    # live loops a controller reads, and the cheap records the run reads while the replay ends, stay here
    files = {"tripinfo": sumo_dir / "tripinfo.xml", "statistics": sumo_dir / "statistics.xml",
             "errors": sumo_dir / "errors.log"}  # SUMO's errors: the only trace of vehicles it discards
    recorders: dict[str, Path] = {}  # evidence file -> the additional file that asks SUMO for it
    if layout is not None:
        additional.extend([layout.live_file] if layout.live_file is not None else [])
        if layout.instant_file is not None and not lean:
            files["passages"] = layout.passages_file
            recorders["passages"] = layout.instant_file
    if not lean:
        files["edgedata"] = sumo_dir / "edgedata.xml"
        recorders["edgedata"] = write_meandata_file(sumo_dir / "meandata.add.xml", cfg.interval_s,
                                                    files["edgedata"], None)
        if emissions:
            files["emissions"] = sumo_dir / "emissions.xml"
            recorders["emissions"] = write_meandata_file(sumo_dir / "emissions.add.xml", cfg.interval_s, None,
                                                         files["emissions"])
    replayed = tuple(name for name in REPLAYED_FILES if name in recorders) if replay else ()
    additional.extend(add for name, add in recorders.items() if name not in replayed)
    extra = list(TRIPINFO_ARGS)
    emission_args = ["--emissions.volumetric-fuel", "true"]  # fuel in ml; computed once, by the edgeData
    opts = sumo_options(cfg, scenario, end_s=end_s, extra_args=extra,
                        outputs={"tripinfo-output": files["tripinfo"], "statistic-output": files["statistics"],
                                 "error-log": files["errors"]})
    replay_opts = None
    if replay:
        files["replay_tripinfo"] = sumo_dir / "replay-tripinfo.xml"
        replay_opts = dataclasses.replace(
            opts, additional_files=(*opts.additional_files, *(recorders[name] for name in replayed)),
            extra_args=[*extra, *emission_args], outputs={"tripinfo-output": files["replay_tripinfo"]})
    elif emissions:
        opts.extra_args = [*extra, *emission_args]
    opts.additional_files = (*opts.additional_files, *additional)
    # the files as the run directory holds them, not through a temporary link
    real = sumo_dir.resolve()
    real_files = {name: real / path.name for name, path in files.items()}

    wall0 = time.perf_counter()
    # forked before this process starts SUMO; it reads what its SUMO recorded there too
    recorder = ReplayProcess(replay_opts, end_s, functools.partial(replay_digest, real_files, layout, replayed)) \
        if replay else None
    try:
        fld = open_field(cfg, scenario, opts, layout, backend_factory)
        try:
            source = fld.backend if source_wrapper is None else source_wrapper(fld.backend)
            stepper = LoopStepper(cfg, fld, end_s, controllers=controllers, source=source,
                                  queue_sample_s=queue_sample_s, keep_notes=True)
            if on_start is not None:
                on_start(list(stepper.intersections))
            result = _drive(stepper, files, progress, wall0, recorder)
        except Exception as exc:
            if _from_sumo(exc):  # SUMO died or refused a command: one line, not a traceback
                raise SimulationError(f"SUMO stopped during the run: {str(exc).strip().splitlines()[-1]}") from None
            raise
        finally:
            fld.backend.close()
    except BaseException:
        if recorder is not None:
            recorder.stop()
        raise
    result.files = real_files
    if recorder is not None:
        recorder.close_input(result.end_s, result.signal_states)
        result.evidence_replay = EvidenceReplay(recorder, replay_opts, end_s, replayed)
    return result


def _replays_evidence(cfg: RunConfig, scenario: Scenario, backend_factory) -> bool:
    """Whether the emissions are computed by a replay in another process (`RunConfig.evidence`)."""
    if cfg.evidence == "inline":
        return False
    in_process = not cfg.gui and cfg.remote_port is None and backend_factory is SumoBackend
    own_outputs = writes_own_outputs(scenario.additional_files)
    if cfg.evidence == "replay":
        if not in_process:
            raise SimulationError("evidence: replay needs SUMO in this process (libsumo): not with --gui, "
                                  "--remote-port or a camera in the loop; use evidence: inline")
        if own_outputs:
            raise SimulationError(f"evidence: replay cannot run this network: {own_outputs[0]} makes SUMO write "
                                  "files, and two SUMOs would write them at once; use evidence: inline")
        return True
    return in_process and not own_outputs and spare_cores() >= 0.5


def _from_sumo(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("libsumo", "traci"))


def _drive(stepper: LoopStepper, files: dict[str, Path], progress: Progress | None, wall0: float,
           recorder: ReplayProcess | None = None) -> LoopResult:
    total = stepper.end_s - stepper.t0
    next_progress = stepper.t0
    while not stepper.done:
        t = stepper.step()
        if recorder is not None:
            recorder.send(t, stepper.signal_states)
        if progress is not None and t >= next_progress:
            progress(t - stepper.t0, total)
            next_progress = t + 60.0
    if progress is not None:
        progress(total, total)
    stepper.controller_faults.log_totals()
    result = stepper.result(files, wall0)
    result.junction_locks = stepper.backend.standing_in_junctions(LOCKED_AFTER_S)
    result.vtype_classes = stepper.backend.vtype_classes()
    result.emission_classes = stepper.backend.vtype_emission_classes()
    return result


def checked(obs: Observation) -> Observation:
    """The observation with any implausible lane or detector values marked as its source's fault.

    Whatever the source (SUMO, a feed, a camera zone), garbage must reach the
    shield as unhealthy data, never as a queue of -3 vehicles.
    """
    faults = []
    why = lanes_fault(obs.lanes)
    if why is not None:
        faults.append((LANES_SOURCE, why))
    why = detector_fault(obs.detector_idle_s, obs.detector_counts_veh)
    if why is not None:
        faults.append((DETECTORS_SOURCE, why))
    if not faults:
        return obs
    names = {name for name, _ in faults}
    age = {s.source: s.age_s for s in obs.sources}
    sources = tuple(s for s in obs.sources if s.source not in names) + tuple(
        SourceHealth(name, age.get(name, 0.0), False, why) for name, why in faults)
    return dataclasses.replace(obs, sources=sources)


class _Deferred(Mapping):
    """A mapping worked out by `compute` the first time it is read. The nominal demand is read for Webster and for
    the shields' fallback plans, which most runs never follow: reading it from a network's route files took
    30-50 ms of a run's start on resco:cologne8 (its network parsed by sumolib), for nothing."""

    def __init__(self, compute: Callable[[], Mapping]):
        self._compute: Callable[[], Mapping] | None = compute
        self._value: Mapping | None = None

    def _mapping(self) -> Mapping:
        if self._value is None:
            self._value, self._compute = self._compute(), None
        return self._value

    def __getitem__(self, key):
        return self._mapping()[key]

    def __iter__(self):
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


class LoopStepper:
    """One simulation under the shields, advanced one step at a time.

    `run_loop` drives it to the end; the Gymnasium / PettingZoo environment
    (`signalwise.envs`) drives it a decision period at a time and proposes for
    its agents through `propose` (their controller is None). Keeping the step
    here means both follow exactly the same observe → decide → shield →
    actuate order.
    """

    def __init__(self, cfg: RunConfig, fld: Field, end_s: float, controllers: ControllerFactory | None = None,
                 source: ObservationSource | None = None, sink: SignalSink | None = None,
                 queue_sample_s: float = 5.0, keep_notes: bool = False):
        self.cfg = cfg
        #: `keep_notes`: what the run should say of itself is kept for its warnings (`LoopResult`), not logged
        self.demand_unread: str | None = None
        self.field = fld
        self.backend = fld.backend
        self.source = fld.backend if source is None else source
        self.sink = fld.backend if sink is None else sink
        self.scenario = fld.scenario
        self.layout = fld.layout
        self.end_s = end_s
        self.queue_sample_s = queue_sample_s
        inters = fld.intersections
        self.intersections = inters
        self.refused = fld.refused
        self.by_id = {i.id: i for i in inters}
        shapes = self.backend.lane_shapes(dict.fromkeys(lane for i in inters for lane in i.in_lanes))
        self.approach_direction = {lane: compass_approach(shape) for lane, shape in shapes.items()}
        all_movements = [m for i in inters for m in i.movements]
        roads = [m for m in all_movements if not m.is_crosswalk]
        # every field knows its network: SUMO loaded it, a feed-only field read it from the network file
        in_lanes = sorted({m.in_lane for m in roads if m.in_lane})
        upstream, downstream = self.backend.lane_zones(in_lanes, sorted({m.out_lane for m in roads if m.out_lane}))
        split = self.backend.lane_split_zones(in_lanes)
        lanes = {lane for m in roads for lane in (m.in_lane, m.out_lane) if lane}
        lanes |= listed_lanes(upstream, downstream) | {lane for zone in split.values() for lane, _, _ in zone}
        t0 = self.backend.time_s()
        # Webster's nominal demand over its first planning period, which counts from the run's begin; a Webster
        # run says where its network's route files do not give it. Read when first asked for (`_Deferred`)
        nominal = _Deferred(functools.partial(nominal_lane_flows, self.scenario, all_movements, t0,
                                              min(PLANNING_PERIOD_S, end_s - t0),
                                              say_unread=cfg.controller == "webster",
                                              on_unread=self._keep_demand_unread if keep_notes else None))
        # a worker field answers these lengths from its zone replies, not with a request per lane
        ctx = ControlContext(cfg.step_length_s, nominal, cfg.seed,
                             dict(cfg.controller_options), {lane: self.backend.lane_length_m(lane) for lane in lanes},
                             upstream, downstream, split, begin_s=t0)
        #: what the controllers were built with (a live runtime builds replacements from it)
        self.context = ctx
        shield_cfg = shield_config(cfg)
        self.t0 = t0
        self.t = t0
        if controllers is None:
            controllers = lambda inter, c: make(cfg.controller, inter, c)  # noqa: E731
        self.controllers = {i.id: controllers(i, ctx) for i in inters}
        for tls_id, ctrl in self.controllers.items():  # a controller that cannot run is an error, not a result
            check_usable(ctrl, f"controller {cfg.controller!r} cannot run at signal {tls_id!r}")
        self.shields = {i.id: IntersectionShield(i, fallback_plan(i, ctx), shield_cfg, start_s=t0) for i in inters}
        self.signal_states: list[tuple[float, str, str]] = []
        for tls_id, sh in self.shields.items():
            self.sink.set_signal_state(tls_id, sh.state)
            self.signal_states.append((t0, tls_id, sh.state))

        self._plan = [self._plan_row(i) for i in inters]
        self._next_decision = {i.id: t0 for i in inters}
        self._approach_lanes = {i.id: i.in_lanes for i in inters}
        self.queue_samples: list[tuple[float, str, int]] = []
        self._next_queue_sample = t0
        self.controller_errors = 0
        self.controller_faults = ControllerFaults(cfg.controller, seed=cfg.seed)
        self.steps = 0
        #: a live runtime's profiler (`runtime.live.profiler.Profiler`); None offline, where only `decide` is timed
        self.profiler = None
        #: wall seconds of each decision offline (`decide`, and handing its proposal to the shield), for the run's
        #: summary (`decision_times`); a live run times it in its profiler instead
        self.decide_s = array("d")

    @property
    def done(self) -> bool:
        return self.t >= self.end_s - 1e-9

    def propose(self, tls_id: str, decision: Decision) -> None:
        """Hand an outside proposal (an RL agent's) to the intersection's shield; it decides."""
        self.shields[tls_id].propose(decision)

    def step(self) -> float:
        """One step: ask due controllers, tick every shield, write changed states; returns the new time."""
        if self.profiler is not None:
            return self._step_timed()
        source = self.source
        t = self.backend.step()
        self.t = t
        self.steps += 1
        emergency = source.emergency_approaches(self.by_id, self.cfg.shield.preempt_distance_m) \
            if source.emergency_active else {}
        next_decision = self._next_decision
        clock, timed = time.perf_counter, self.decide_s.append
        for tls_id, inter, ctrl, sh, need, counts_need in self._plan:
            obs = None
            if ctrl is not None and sh.interval == "green" and t >= next_decision[tls_id]:
                obs = self._observe(inter, ctrl, sh, t, need, counts_need, emergency)
                began = clock()
                self._decide(tls_id, ctrl, sh, obs, t)
                timed(clock() - began)
            elif tls_id in emergency:
                obs = Observation(t, tls_id, {}, emergency=tuple(emergency[tls_id]))
            new_state = sh.tick(t, obs)
            if new_state is not None:
                self.sink.set_signal_state(tls_id, new_state)
                self.signal_states.append((t, tls_id, new_state))
        self._sample_queues(t)
        return t

    def _observe(self, inter, ctrl, sh, t, need, counts_need, emergency) -> Observation:
        due = counts_need if counts_need is not None and t >= ctrl.needs_counts_at else need
        o = self.source.observe(inter, t, due)
        # built field by field: dataclasses.replace looks the fields up on every call, at every decision
        return checked(Observation(o.time_s, o.intersection_id, o.lanes, o.detector_idle_s, sh.status(t),
                                   o.detector_counts_veh, tuple(emergency.get(inter.id, ())), o.sources))

    def _decide(self, tls_id, ctrl, sh, obs, t) -> None:
        """Ask the controller, hand the shield its proposal. Only `decide` is guarded: an error of the shield's
        is no controller error, nor a reason to fall back. A user's controller keeps its `period_s` usable itself
        (`control.plugins.UserController`), so reading it here costs a built-in nothing."""
        faults = self.controller_faults
        faults.decisions += 1
        try:
            decision = ctrl.decide(obs)
        except Exception as exc:  # a broken controller must never freeze the signal
            self.controller_errors += 1
            faults.raised(exc, tls_id, t)  # logged once per kind, then counted
            sh.propose(None, obs, failed=True)
        else:
            sh.propose(decision, obs)
            faults.proposed(sh.proposal, sh.malformed, len(sh.inter.phases), tls_id, t)
        self._next_decision[tls_id] = t + ctrl.period_s

    def _step_timed(self) -> float:
        """`step` with each stage timed for the live profiler; same order, same decisions.

        `decision_path` runs from the observation in hand to the actuation
        command issued (the shield's state written to the sink), per
        intersection that decided; `field_step` is the simulator's own step.
        """
        prof, clock = self.profiler, time.perf_counter
        source = self.source
        c0 = clock()
        t = self.backend.step()
        c1 = clock()
        prof.add("field_step", c1 - c0)
        self.t = t
        self.steps += 1
        emergency = source.emergency_approaches(self.by_id, self.cfg.shield.preempt_distance_m) \
            if source.emergency_active else {}
        for tls_id, inter, ctrl, sh, need, counts_need in self._plan:
            obs = None
            decided = False
            if ctrl is not None and sh.interval == "green" and t >= self._next_decision[tls_id]:
                a = clock()
                obs = self._observe(inter, ctrl, sh, t, need, counts_need, emergency)
                b = clock()
                self._decide(tls_id, ctrl, sh, obs, t)
                c = clock()
                prof.add("observe", b - a)
                prof.add("decide", c - b)
                decided = True
            elif tls_id in emergency:
                obs = Observation(t, tls_id, {}, emergency=tuple(emergency[tls_id]))
            d = clock()
            new_state = sh.tick(t, obs)
            e = clock()
            if new_state is not None:
                self.sink.set_signal_state(tls_id, new_state)
                self.signal_states.append((t, tls_id, new_state))
            f = clock()
            prof.add("shield", e - d)
            if new_state is not None:
                prof.add("actuate", f - e)
            if decided:
                prof.add("decision_path", f - b)
        self._sample_queues(t)
        return t

    def _sample_queues(self, t: float) -> None:
        if t >= self._next_queue_sample:
            self._next_queue_sample = t + self.queue_sample_s
            halting = self.backend.halting_veh
            for tls_id, lanes in self._approach_lanes.items():
                self.queue_samples.append((t, tls_id, halting(lanes)))

    def replace_controller(self, tls_id: str, controller: Controller | None) -> None:
        """Swap one intersection's controller (a deploy, a rollback, an override); it is asked at once."""
        self.controllers[tls_id] = controller
        self._plan = [self._plan_row(row[1]) if row[0] == tls_id else row for row in self._plan]
        self._next_decision[tls_id] = self.t

    def _plan_row(self, inter: Intersection) -> tuple:
        """(id, intersection, controller, shield, what it needs, what it needs when counts are due)."""
        ctrl = self.controllers[inter.id]
        return (inter.id, inter, ctrl, self.shields[inter.id], _need(inter, ctrl), _counts_need(inter, ctrl))

    def checkpoint(self) -> dict:
        """The loop's own state (shields, controllers, schedules), to resume from with a saved simulation."""
        import copy

        return copy.deepcopy({"t": self.t, "shields": self.shields, "controllers": self.controllers,
                              "next_decision": self._next_decision, "next_queue_sample": self._next_queue_sample,
                              "steps": self.steps})

    def restore(self, state: dict, backend) -> None:
        """Resume from `checkpoint()` on a field restored to the same time; re-send every signal state.

        SUMO ignores the states set through TraCI before a state load, so each
        signal is set again from its shield.
        """
        import copy

        state = copy.deepcopy(state)
        # the stepper's own previous backend: the caller may already have put the new one in `field`
        old, self.backend = self.backend, backend
        if self.source is old:
            self.source = backend
        if self.sink is old:
            self.sink = backend
        self.field.backend = backend
        self.t = state["t"]
        self.shields = state["shields"]
        self.controllers = state["controllers"]
        self._next_decision = state["next_decision"]
        self._next_queue_sample = state["next_queue_sample"]
        self.steps = state["steps"]
        self._plan = [self._plan_row(i) for i in self.intersections]
        for tls_id, sh in self.shields.items():
            self.sink.set_signal_state(tls_id, sh.state)

    def events(self) -> list[SignalEvent]:
        """Every shield's hi-res events so far, intersection by intersection."""
        return [e for sh in self.shields.values() for e in sh.events]

    def result(self, files: dict[str, Path], wall0: float) -> LoopResult:
        interventions: list[Intervention] = []
        for sh in self.shields.values():
            interventions.extend(sh.interventions)
        # a plan made at the run's end (the last step's re-plan) never ran: the record holds the plans that did
        plans = {tls: [(ts, dataclasses.asdict(p)) for i, (ts, p) in enumerate(c.plans) if i == 0 or ts < self.end_s]
                 for tls, c in self.controllers.items() if hasattr(c, "plans")}
        return LoopResult(self.scenario, self.intersections, self.refused, self.layout, self.events(), interventions,
                          self.signal_states, self.queue_samples,
                          {tls: sh.fallback_fraction for tls, sh in self.shields.items()}, self.t0, self.end_s,
                          time.perf_counter() - wall0, self.steps, files, controller_errors=self.controller_errors,
                          controller_faults=self.controller_faults,
                          webster_plans=plans, emergency_ids=set(self.backend.emergency_seen),
                          approach_direction=self.approach_direction, decide_s=self.decide_s,
                          demand_unread=self.demand_unread)

    def _keep_demand_unread(self, note: str) -> None:
        self.demand_unread = note


def _need(inter: Intersection, ctrl: Controller | None) -> ObservationNeed:
    """What the controller reads at each decision: its lane detail, its detectors' idle times."""
    if ctrl is None:
        return ObservationNeed()
    mode = getattr(ctrl, "observation", "full")
    lanes = ()
    if mode in ("full", "counts", "stopped"):  # the controller's own lanes, then any zone lanes it reads besides
        lanes = tuple(dict.fromkeys((*inter.in_lanes, *inter.out_lanes, *getattr(ctrl, "zone_lane_ids", ()))))
    dets = tuple(d.id for d in inter.detectors) if getattr(ctrl, "wants_detectors", False) else ()
    return ObservationNeed(lanes, mode if lanes else "counts", dets)


def _counts_need(inter: Intersection, ctrl: Controller | None) -> ObservationNeed | None:
    """When a controller's counts are due (`needs_counts_at`): what it reads at every decision (`_need`: its
    lanes at its detail, its zone lanes, its detectors' idle times), the approach lanes' counts where it reads no
    lanes (Webster's re-plan reads the vehicles stored on them), and the stop-bar counts. Never less than `_need`:
    a controller reading `stopped_veh` or an outgoing lane finds them at this decision too."""
    if ctrl is None or not hasattr(ctrl, "needs_counts_at"):
        return None
    base = _need(inter, ctrl)
    counts = tuple(d.id for d in inter.detectors if d.kind == "stopbar")
    if not counts:
        return None
    if not base.lane_ids:  # "none": the approach lanes' counts, the cheapest detail
        return ObservationNeed(inter.in_lanes, "counts", base.detector_idle_ids, counts)
    # its own lanes hold every approach lane already (`_need`), at a detail at least as rich as "counts"
    return dataclasses.replace(base, detector_count_ids=counts)


def describe_intersections(inters: list[Intersection], approach_direction: dict[str, str] | None = None,
                           step_s: float | None = None) -> list[dict]:
    """The signal model as JSON: phases, links, timing — what the checker and ATSPM need. With the run's
    `step_s`, each phase's yellow, all-red and pedestrian clearance as the signal shows them too: whole steps, so a
    3.3 s yellow shows 4 s at 1 s steps, and the event log's intervals are these. Each phase's pedestrian
    clearance is written beside `ped_clearance_s` (the longest)."""
    out = []
    for i in inters:
        timing = {**dataclasses.asdict(i.timing), **ite_timing(i)}  # ITE's clearances beside the ones in force
        phases = range(len(i.phases))
        timing["phase_ped_clearance_s"] = [i.timing.ped_clearance_of(p) for p in phases]
        if step_s is not None:
            timing["phase_yellow_shown_s"] = [ceil_to_step(i.timing.yellow_of(p), step_s) for p in phases]
            timing["phase_all_red_shown_s"] = [ceil_to_step(i.timing.all_red_of(p), step_s) for p in phases]
            timing["phase_ped_clearance_shown_s"] = [ceil_to_step(i.timing.ped_clearance_of(p), step_s)
                                                     for p in phases]
        out.append({
            "id": i.id,
            "n_links": i.n_links,
            "phases": [{"index": p.index, "number": p.number, "green_state": p.green_state,
                        "green_links": sorted(p.green_links)} for p in i.phases],
            "links": [{"index": m.link_index, "in_lane": m.in_lane, "out_lane": m.out_lane,
                       "crosswalk": m.is_crosswalk, **link_geometry(m, i)} for m in i.movements],
            "crosswalks": [{"id": c.id, "links": list(c.link_indices), "length_m": c.length_m} for c in i.crosswalks],
            "timing": timing,
            "approach_speed_mps": i.approach_speed_mps,
            "program_green_s": list(i.program_green_s),
            # the phases the cycle bound is kept on (together they serve every link); the others are optional
            "cycle_phases": [p + 1 for p in covering_phases(i)],
            "approaches": {lane: (approach_direction or {}).get(lane) for lane in i.in_lanes},
            "notes": list(i.notes),
        })
    return out


def dump_json(path: Path, data) -> None:
    """Written aside, then put in place: a reader (the API, an audit of a live run) never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, default=str))
    partial.replace(path)
