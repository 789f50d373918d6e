"""The control loop: SUMO -> Observation -> Controller -> Shield -> SUMO.

Per simulation step, for each intersection: ask its controller when it is
due (and only then read lane data), pass the proposal to the shield, tick
the shield, and write the resulting signal state into SUMO. Everything that
SUMO can measure itself (trips, emissions, per-edge intervals, detector
passages) is left to SUMO's own outputs and read after the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..control.base import ControlContext, Controller, make
from ..control.shield import IntersectionShield, ShieldConfig
from ..control.webster import fallback_plan
from ..core.timing import TimingDefaults
from ..core.types import Decision, Intersection, Intervention, SignalEvent
from ..sim.backend import SimulationError, SumoBackend, SumoOptions
from ..sim.detectors import DetectorLayout, place_detectors
from ..sim.outputs import write_meandata_file
from ..sim.scenarios import Scenario, from_files, from_sumocfg, load, nominal_lane_flows
from ..sim.signal_model import RefusedSignal, read_all
from .config import RunConfig

log = logging.getLogger("signalwise.runtime")

Progress = Callable[[float, float], None]  # (simulated seconds done, total)

#: controllers that never read detectors live: SUMO is spared their loops (~10% of a step)
NO_LIVE_DETECTORS = frozenset({"fixed", "max-pressure"})


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
    emergency_ids: set[str] = field(default_factory=set)
    approach_direction: dict[str, str] = field(default_factory=dict)  # incoming lane -> north/south/east/west
    webster_plans: dict[str, list] = field(default_factory=dict)


def resolve_scenario(cfg: RunConfig) -> Scenario:
    if cfg.sumocfg is not None:
        return from_sumocfg(cfg.sumocfg)
    if cfg.net is not None:
        return from_files(cfg.net, tuple(cfg.routes))
    return load(cfg.scenario)


def timing_defaults(cfg: RunConfig) -> TimingDefaults:
    t = cfg.timing
    return TimingDefaults(t.yellow_s, t.all_red_s, t.min_green_s, t.max_green_s, t.ped_walk_s, t.ped_clearance_s,
                          t.cycle_min_s, t.cycle_max_s)


def run_loop(cfg: RunConfig, run_dir: Path, progress: Progress | None = None,
             queue_sample_s: float = 5.0) -> LoopResult:
    """Run one simulation under `cfg.controller`, writing SUMO outputs into `run_dir`."""
    scenario = resolve_scenario(cfg)
    begin_s = scenario.begin_s
    end_s = begin_s + (cfg.duration_s if cfg.duration_s is not None else scenario.duration_s)
    sumo_dir = run_dir / "sumo"
    sumo_dir.mkdir(parents=True, exist_ok=True)

    layout = None
    additional = list(scenario.additional_files)
    if cfg.remote_port is None:
        try:
            layout = place_detectors(scenario.net_file, sumo_dir,
                                     live=cfg.controller.split(":", 1)[0] not in NO_LIVE_DETECTORS)
        except Exception as exc:  # sumolib's parse errors are KeyErrors, SAXParseExceptions, ...
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise SimulationError(f"{scenario.net_file}: not a readable SUMO network ({type(exc).__name__}: "
                                  f"{detail})") from None
        additional.append(layout.additional_file)
    files = {
        "tripinfo": sumo_dir / "tripinfo.xml",
        "edgedata": sumo_dir / "edgedata.xml",
        "statistics": sumo_dir / "statistics.xml",
    }
    if cfg.emissions:
        files["emissions"] = sumo_dir / "emissions.xml"
    meandata = write_meandata_file(sumo_dir / "meandata.add.xml", cfg.interval_s, files["edgedata"],
                                   files.get("emissions"))
    additional.append(meandata)
    if layout is not None:
        files["passages"] = layout.passages_file
    extra = ["--tripinfo-output.write-unfinished", "true", "--tripinfo-output.write-undeparted", "true"]
    if cfg.emissions:
        extra += ["--emissions.volumetric-fuel", "true"]  # fuel in ml; computed once, by the edgeData above
    opts = SumoOptions(net_file=scenario.net_file, route_files=scenario.route_files,
                       additional_files=tuple(additional), begin_s=begin_s, end_s=end_s, seed=cfg.seed,
                       step_length_s=cfg.step_length_s, gui=cfg.gui, remote_port=cfg.remote_port,
                       extra_args=extra,
                       outputs={"tripinfo-output": files["tripinfo"], "statistic-output": files["statistics"]})

    backend = SumoBackend(opts)
    wall0 = time.perf_counter()
    backend.start()
    try:
        return _drive(cfg, backend, scenario, layout, begin_s, end_s, files, progress, queue_sample_s, wall0)
    except Exception as exc:
        if _from_sumo(exc):  # SUMO died or refused a command: one line, not a traceback
            raise SimulationError(f"SUMO stopped during the run: {str(exc).strip().splitlines()[-1]}") from None
        raise
    finally:
        backend.close()


def _from_sumo(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("libsumo", "traci"))


def _drive(cfg: RunConfig, backend: SumoBackend, scenario: Scenario, layout: DetectorLayout | None,
           begin_s: float, end_s: float, files: dict[str, Path], progress: Progress | None,
           queue_sample_s: float, wall0: float) -> LoopResult:
    stepper = LoopStepper(cfg, backend, scenario, layout, end_s, queue_sample_s=queue_sample_s)
    total = end_s - stepper.t0
    next_progress = stepper.t0
    while not stepper.done:
        t = stepper.step()
        if progress is not None and t >= next_progress:
            progress(t - stepper.t0, total)
            next_progress = t + 60.0
    if progress is not None:
        progress(total, total)
    return stepper.result(files, wall0)


#: builds the controller of one intersection; None = proposals come from outside, through `LoopStepper.propose`
ControllerFactory = Callable[[Intersection, ControlContext], Controller | None]


class LoopStepper:
    """One simulation under the shields, advanced one SUMO step at a time.

    `run_loop` drives it to the end; the Gymnasium / PettingZoo environment
    (`signalwise.envs`) drives it a decision period at a time and proposes for
    its agents through `propose` (their controller is None). Keeping the step
    here means both follow exactly the same observe → decide → shield →
    actuate order.
    """

    def __init__(self, cfg: RunConfig, backend: SumoBackend, scenario: Scenario, layout: DetectorLayout | None,
                 end_s: float, controller_for: ControllerFactory | None = None, queue_sample_s: float = 5.0):
        self.cfg = cfg
        self.backend = backend
        self.scenario = scenario
        self.layout = layout
        self.end_s = end_s
        self.queue_sample_s = queue_sample_s
        api = backend.api
        inters, refused = read_all(api, timing_defaults(cfg), cfg.timing.per_intersection)
        if not inters:
            reasons = "; ".join(f"{r.id}: {r.reason}" for r in refused) or "the network has no traffic lights"
            raise SimulationError(f"no controllable traffic light ({reasons})")
        if layout is not None:
            inters = [dataclasses.replace(i, detectors=layout.by_tls.get(i.id, ())) for i in inters]
        self.intersections = inters
        self.refused = refused
        self.by_id = {i.id: i for i in inters}
        self.approach_direction = {lane: compass_approach(api.lane.getShape(lane))
                                   for i in inters for lane in i.in_lanes}
        all_movements = [m for i in inters for m in i.movements]
        ctx = ControlContext(cfg.step_length_s, nominal_lane_flows(scenario, all_movements), cfg.seed,
                             dict(cfg.controller_options))
        shield_cfg = ShieldConfig(cfg.shield.confidence_threshold, cfg.shield.max_observation_age_s,
                                  cfg.shield.preempt_distance_m, cfg.shield.preempt_max_dwell_s, cfg.step_length_s)
        t0 = backend.time_s()
        self.t0 = t0
        self.t = t0
        if controller_for is None:
            controller_for = lambda inter, c: make(cfg.controller, inter, c)  # noqa: E731
        self.controllers = {i.id: controller_for(i, ctx) for i in inters}
        self.shields = {i.id: IntersectionShield(i, fallback_plan(i, ctx), shield_cfg, start_s=t0) for i in inters}
        self.signal_states: list[tuple[float, str, str]] = []
        for tls_id, sh in self.shields.items():
            backend.set_signal_state(tls_id, sh.state)
            self.signal_states.append((t0, tls_id, sh.state))

        # per intersection: (id, inter, controller, shield, detector ids, lane mode, webster counts?)
        self._plan = []
        for i in inters:
            c = self.controllers[i.id]
            dets = tuple(d.id for d in i.detectors) if getattr(c, "wants_detectors", False) else ()
            counts_dets = tuple(d.id for d in i.detectors if d.kind == "stopbar") if hasattr(c, "needs_counts_at") else ()
            self._plan.append((i.id, i, c, self.shields[i.id], dets, getattr(c, "observation", "full"), counts_dets))
        self._next_decision = {i.id: t0 for i in inters}
        self._approach_lanes = {i.id: i.in_lanes for i in inters}
        self._halting = api.lane.getLastStepHaltingNumber
        self.queue_samples: list[tuple[float, str, int]] = []
        self._next_queue_sample = t0
        self.controller_errors = 0
        self.steps = 0

    @property
    def done(self) -> bool:
        return self.t >= self.end_s - 1e-9

    def propose(self, tls_id: str, decision: Decision) -> None:
        """Hand an outside proposal (an RL agent's) to the intersection's shield; it decides."""
        self.shields[tls_id].propose(decision)

    def step(self) -> float:
        """One SUMO step: ask due controllers, tick every shield, write changed states; returns the new time."""
        backend = self.backend
        cfg = self.cfg
        t = backend.step()
        self.t = t
        self.steps += 1
        emergency = backend.emergency_approaches(self.by_id, cfg.shield.preempt_distance_m) \
            if backend.emergency_active else {}
        next_decision = self._next_decision
        for tls_id, inter, ctrl, sh, dets, lanes_mode, counts_dets in self._plan:
            if ctrl is not None and sh.interval == "green" and t >= next_decision[tls_id]:
                obs = backend.observe(inter, t, dets, lanes_mode)
                obs = dataclasses.replace(obs, signal=sh.status(t))
                if counts_dets and t >= ctrl.needs_counts_at:
                    obs = dataclasses.replace(obs, detector_counts_veh=backend.detector_interval_counts(counts_dets),
                                              lanes=backend.lane_counts(inter.in_lanes))
                try:
                    sh.propose(ctrl.decide(obs))
                except Exception as exc:  # a broken controller must never freeze the signal
                    self.controller_errors += 1
                    log.warning("controller %s failed at %s t=%.0f: %s", cfg.controller, tls_id, t, exc)
                    sh.propose(None, failed=True)
                next_decision[tls_id] = t + ctrl.period_s
            new_state = sh.tick(t, emergency.get(tls_id, ()))
            if new_state is not None:
                backend.set_signal_state(tls_id, new_state)
                self.signal_states.append((t, tls_id, new_state))
        if t >= self._next_queue_sample:
            self._next_queue_sample = t + self.queue_sample_s
            halting = self._halting
            for tls_id, lanes in self._approach_lanes.items():
                self.queue_samples.append((t, tls_id, sum(halting(lane) for lane in lanes)))
        return t

    def events(self) -> list[SignalEvent]:
        """Every shield's hi-res events so far, intersection by intersection."""
        return [e for sh in self.shields.values() for e in sh.events]

    def result(self, files: dict[str, Path], wall0: float) -> LoopResult:
        interventions: list[Intervention] = []
        for sh in self.shields.values():
            interventions.extend(sh.interventions)
        plans = {tls: [(ts, dataclasses.asdict(p)) for ts, p in c.plans] for tls, c in self.controllers.items()
                 if hasattr(c, "plans")}
        return LoopResult(self.scenario, self.intersections, self.refused, self.layout, self.events(), interventions,
                          self.signal_states, self.queue_samples,
                          {tls: sh.fallback_fraction for tls, sh in self.shields.items()}, self.t0, self.end_s,
                          time.perf_counter() - wall0, self.steps, files, controller_errors=self.controller_errors,
                          webster_plans=plans, emergency_ids=set(self.backend.emergency_seen),
                          approach_direction=self.approach_direction)


def compass_approach(shape) -> str:
    """Where traffic on a lane comes from: a lane heading south is the north approach."""
    (x0, y0), (x1, y1) = shape[-2], shape[-1]
    dx, dy = x1 - x0, y1 - y0
    if abs(dy) >= abs(dx):
        return "north" if dy < 0 else "south"
    return "west" if dx > 0 else "east"


def describe_intersections(inters: list[Intersection], approach_direction: dict[str, str] | None = None) -> list[dict]:
    """The signal model as JSON: phases, links, timing — what the checker and ATSPM need."""
    out = []
    for i in inters:
        out.append({
            "id": i.id,
            "n_links": i.n_links,
            "phases": [{"index": p.index, "number": p.number, "green_state": p.green_state,
                        "green_links": sorted(p.green_links)} for p in i.phases],
            "links": [{"index": m.link_index, "in_lane": m.in_lane, "out_lane": m.out_lane,
                       "crosswalk": m.is_crosswalk} for m in i.movements],
            "crosswalks": [{"id": c.id, "links": list(c.link_indices), "length_m": c.length_m} for c in i.crosswalks],
            "timing": dataclasses.asdict(i.timing),
            "approach_speed_mps": i.approach_speed_mps,
            "program_green_s": list(i.program_green_s),
            "approaches": {lane: (approach_direction or {}).get(lane) for lane in i.in_lanes},
            "notes": list(i.notes),
        })
    return out


def dump_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
