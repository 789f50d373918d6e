"""The live runtime: the run loop paced against the wall clock, supervised, observable and changeable.

It drives the same `LoopStepper` as an offline run (so every decision passes
the shield in exactly the same way) and adds what operating a corridor needs:

- pacing: `speed` simulated seconds per wall second, or unpaced;
- a supervised field: SUMO in a worker process whose state is saved every
  `state_every_s`; when the process dies, a new one resumes from the last
  state, the loop's own state is restored beside it, every signal is set
  again, and a recovery marker goes into the event log;
- evidence written as the run goes (events, signal states, interventions,
  changes, alerts), flushed every tick, so Ctrl-C, SIGTERM or a crash loses nothing;
- immutable snapshots for readers, a profiler, alert rules;
- changes between ticks (timing, shield thresholds, alert rules, controller,
  operator overrides), validated first and recorded with who and when;
- a plan cycle that re-plans the Webster fallback from measured counts and
  swaps in a newly deployed controller at a phase boundary, never mid-clearance.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from ... import __version__
from ...control.base import ControlContext, ControllerUnavailable, check_usable, make
from ...control.coordinated import FREE, Pattern, controller_pattern, coordination_report, pattern_events
from ...core.eventlog import COLUMNS as EVENT_COLUMNS
from ...core.eventlog import TimeOrderedEvents, format_timestamp
from ...core.types import RECOVERY_STATE, EventCode, Observation, SignalEvent
from ...outdirs import process_identity
from ...provenance import models_run, provenance
from ...sim.backend import SimulationError, SumoBackend
from ...sim.detectors import live_zone_ids, place_detectors
from ...sim.outputs import read_vtype_classes
from ...sim.signal_model import (
    BELOW_ITE_NOTE,
    MAX_GREEN_RAISED_NOTE,
    PED_GUIDANCE_NOTE,
    below_ite_notes,
    pedestrian_warnings,
    short_ped_clearance,
    timing_warnings,
    unknown_phase_timing,
)
from ...termination import interrupts_deferred, stop_reason
from ..config import _LIVE_PROFILE, RunConfig
from ..detector_config import detector_rows, write_detector_config
from ..loop import (
    Field,
    LoopStepper,
    describe_intersections,
    dump_json,
    open_field,
    resolve_scenario,
    shield_config,
    timing_defaults,
)
from ..loop import sumo_options as _sumo_options
from ..step_rounding import clearance_rounding_warnings
from . import changes as ch
from .detector_alternation import DetectorAlternation
from .loosening import (
    CONFIG_INSTEAD,
    ITE_SOURCE,
    LOWER,
    SHIELD_LIMITS,
    clearance_floors,
    clearance_refusal,
    live_bound,
    shield_differences,
    shield_refusal,
)
from .pacing import Pacer
from .preemption_watch import PreemptionWatch
from .profiler import Profiler
from .records import LiveRecords, network_figures, store_record
from .snapshot import EMPTY, SignalView, Snapshot

log = logging.getLogger("signalwise.live")

#: interventions that note a proposal had to wait, or record a preemption call as it comes (or waits for another),
#: rather than override it (not counted for alerts)
NOTES = frozenset({"min_green", "fallback_end", "preempt_call", "preempt_queued", "preempt_lockout"})
#: wall seconds between two rewrites of controller_errors.csv while only the counts of its kinds grow (a new kind is
#: written at once): a controller failing at every decision costs a small file every few seconds, not one a tick
FAULTS_WRITE_EVERY_S = 5.0

@dataclass
class LiveOptions:
    """How the live loop runs (the run configuration says what it controls)."""

    speed: float | None = 1.0  # simulated seconds per wall second; None = unpaced ("max")
    duration_s: float | None = None  # simulated seconds to run; None = until stopped
    repeat_demand: bool = False  # repeat the scenario's demand so long runs keep traffic
    field: str = "sumo"  # "sumo": SUMO in a worker process; "none": no simulator, feeds only
    sink: str = "sumo"  # "sumo": actuate SUMO; "shadow": decide and record, actuate nothing
    in_process: bool = False  # run SUMO in this process (no crash isolation; for tests and benchmarks)
    state_every_s: float = 30.0  # simulated seconds between saved simulator states
    plan_every_s: float = 30.0  # simulated seconds between plan cycles
    snapshot_hz: float = 4.0  # snapshots published per wall second (at most one per tick)
    alerts_hz: float = 1.0  # alert evaluations per wall second


class LiveRuntime:
    """One live run. `open()` starts the field, `run()` loops until `stop()` or the duration."""

    def __init__(self, cfg: RunConfig, opts: LiveOptions, run_dir: Path, *, feed=None, store=None,
                 alerts=None, publish: Callable[[str, dict], None] | None = None,
                 resolve_options: Callable[[list[str]], dict] | None = None, camera_configs=(),
                 command_controller: str | None = None):
        self.cfg = cfg
        #: the shield settings the run started with (its --config's): a change at run time may not loosen a safety
        #: function past its limit, or past these where they are looser (`loosening.shield_refusal`)
        self._shield_started = cfg.shield
        #: per signal, each phase's (ITE's, starting) yellow and red clearance, made when the run opens: under the
        #: safety profile a change at run time keeps them at least the lower (`loosening.clearance_refusal`)
        self._clearance_floors: dict[str, dict] = {}
        #: the shield changes applied in this run, replayed ones too (who, when, what moved): the `shield_changed`
        #: alert's figure and subjects
        self._shield_changes: list[dict] = []
        #: the controller the command line named (`signalwise live -c`), None when it named none: it wins over
        #: the controller switches stored by earlier runs of the corridor (`lasting.py`), whose other lasting
        #: changes still apply
        self.command_controller = command_controller
        #: cameras an operator attaches at start (`signalwise live --camera`): checked against the run's signals
        #: when it opens (a camera that cannot be an input refuses the run), streamed once the API is up
        self.camera_configs = tuple(camera_configs)
        #: the run's camera inputs (`cameras.LiveCameras`), made when the run opens; camera streams attach here
        self.cameras = None
        #: a controller spec's options as the model registry says now (`ql:@active`): a deploy replayed at a
        #: restart runs what is active then, not what was active when it was made
        self.resolve_options = resolve_options
        self.opts = opts
        self.run_dir = Path(run_dir)
        self.feed = feed
        #: preemption calls from outside (REST, MQTT: `preempt.PreemptCalls`), made when the run opens
        self.preempt = None
        self.store = store
        self.alerts = alerts
        self.publish = publish
        self.profiler = Profiler()
        #: more figures for the alert rules, read each evaluation: name -> a callable giving flat figures (the
        #: API's camera streams add theirs, so one engine raises, stores and acknowledges every alert)
        self.figure_sources: dict[str, Callable[[], Mapping[str, float]]] = {}
        self.stepper: LoopStepper | None = None
        self.field: Field | None = None
        self._snapshot: Snapshot = EMPTY
        self._seq = 0
        self._confidence: dict[str, float] = {}  # per signal: the confidence of its latest proposal seen
        self._last_interval: dict | None = None  # the last closed interval, over the network
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        #: taken to hand a change to the loop and when the loop stops, so none is left waiting in the inbox
        self._inbox_lock = threading.Lock()
        self._stop = threading.Event()
        self.running = False
        #: the loop has ended (set before the flush): a signal handler tells a stop from a hurry by it
        self.loop_over = False
        self.restarts = 0
        self.last_recovery_s: float | None = None
        self.recoveries: list[dict] = []
        self.changes: list[dict] = []
        #: lines written to changes.jsonl: a recovery notes how many preceded it, so that a reader of a run killed
        #: later knows which overrides its rewind moved (`previous.overrides_in_force`)
        self.changes_logged = 0
        self.overrides: dict[str, ch.Override] = {}
        self._pending_controllers: dict[str, object] = {}
        self._registered_lanes: list[str] = []  # what a worker field returns with every step
        self._controller_since_s: dict[str, float] = {}  # when a deployed controller took over, per signal
        self.controller_spec = cfg.controller
        #: signals a change switched to another controller than the run's (`controller_spec`), by id
        self.signal_specs: dict[str, str] = {}
        self._files: dict[str, object] = {}
        self._writers: dict[str, csv.writer] = {}
        self._saved: tuple | None = None  # the last saved state: its file, the figures and feeds to restore with it
        #: when the loop's state last failed to be saved (`_state_not_saved`), None while it is saved
        self._unsaved_since_s: float | None = None
        #: per signal, the timing of each run-time change (revision k at k - 1): signal_model.json's
        #: `timing_revisions`, which the 131 a shield logs when it takes one names
        self._timing_revisions: dict[str, list[dict]] = {}
        #: timing changes applied (the revision in force, 0: the run's own timing), and per signal the revision
        #: that last changed its own values: what a change's `based_on_revision` is checked against
        self.timing_revision = 0
        self._own_timing_revision: dict[str, int] = {}
        #: (revision, timing) swapped as one reference when a timing change is applied: a reader in another
        #: thread never pairs a revision with another revision's timing
        self._timing_in_force: tuple[int, object] | None = None
        #: per signal, the coordination pattern its log names now (`coordinated.Pattern`): logged when the signal
        #: starts on `coordinated` or a swap changes it (`_pattern_change`); none at a signal never coordinated
        self._patterns: dict[str, Pattern] = {}
        #: per signal whose log names a pattern, its plan or why it runs Free, as a batch run's metrics.json
        #: `coordination` gives them (`_say_pattern`): run.json's and the status's `coordination`
        self._coordination: dict[str, dict] = {}
        #: per signal, the states it has shown since its current green opened (re-stated after a recovery)
        self._recent_states: dict[str, list[tuple[float, str, str]]] = {}
        self._started_wall = dt.datetime.now().astimezone()
        self._process = process_identity()  # in run.json: a run killed with SIGKILL is then shown `died`
        #: what made the run (run.json's `provenance`, as a batch run's): the software, the command, where it ran
        self._provenance = provenance()
        #: per learned controller that ran (from the start or switched to), the model directories it ran with their
        #: digests (run.json's `models`, as a batch run's: `provenance.models_run`)
        self._models: dict[str, list[dict]] = {}
        #: the store writer's `summary()` once the run closed it: rows written, rows still waiting and where
        self.store_summary: dict | None = None
        self.status_text = "starting"
        self.stopped_by: str | None = None  # what stopped the loop early: `interrupted` (Ctrl-C) or `terminated (SIGTERM)`
        self._interventions_total = 0  # overrides of a decision (not notes such as min_green), for alerts
        #: the preemptions the shields log (102/104/110): alert figures, /metrics, what a run ending says
        self.preemptions = PreemptionWatch()
        #: controller_errors.csv as last written: (kinds, faults counted), and when it may be rewritten for counts
        self._faults_written: tuple[int, int] = (0, 0)
        self._faults_due = 0.0
        self._faults_write_failed = False  # its failure to write was said (once)
        self.events_logged = 0  # rows written to events.csv (a recovery records how many preceded it)
        #: time.monotonic() at the end of the last tick; None before the first (the API's liveness probe)
        self.last_tick_monotonic: float | None = None
        self._event_order = TimeOrderedEvents()  # a feed's late events go into events.csv in time order
        #: a detector's on/off alternate in the log: a second on while on (or off while off) is counted, not logged
        self._alternation = DetectorAlternation()
        #: the wall time (with its zone, to the tenth of a second) at simulated t = 0 of live_events.csv, the
        #: store's events and the interval records; None until the loop's first tick starts it (`_start_wall_clock`)
        self._wall0: dt.datetime | None = None
        #: events logged before that (the signals' starting states): written to live_events.csv once it starts
        self._early_live: list[SignalEvent] = []
        #: the corridor's lock (`lasting.CorridorLock`), held from `open()` to the end of the run
        self._lock = None
        #: earlier runs of the corridor found dead at start (`previous.settle`), and what the command says of them
        self.dead_runs: list = []
        self.previous_run_lines: list[str] = []
        #: lines of the lasting-changes file that could not be read at start, each naming its line
        self.site_file_problems: list[str] = []

    # -- setup -------------------------------------------------------------------------
    def open(self) -> None:
        """Start the field, build the loop, and write the run's static evidence.

        A run that cannot start (a controller that cannot run here, a network SUMO refuses) leaves nothing:
        its simulator is closed and the run directory it made is removed, as a refused option leaves none."""
        made = not self.run_dir.exists()
        from .lasting import CorridorLock, corridor_lock_file

        # first: a second live run of the corridor is refused before it makes anything (`lasting.CorridorBusy`)
        self._lock = CorridorLock(corridor_lock_file(self.run_dir.parent, self.cfg.scenario_label))
        self._lock.acquire(self.run_dir)
        try:
            self._open()
        except BaseException:
            self._lock.release()
            for fh in self._files.values():
                fh.close()
            self._files.clear()
            if self.field is not None:
                try:
                    self.field.backend.close()
                except Exception:  # noqa: BLE001 - the reason it did not start is the error to show
                    log.debug("simulator not closed", exc_info=True)
            if made:
                import shutil

                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _open(self) -> None:
        cfg, opts = self.cfg, self.opts
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.scenario = resolve_scenario(cfg)
        begin_s = self.scenario.begin_s
        self.end_s = begin_s + opts.duration_s if opts.duration_s is not None else float("inf")
        sumo_end = None if self.end_s == float("inf") else self.end_s
        routes = self.scenario.route_files
        if opts.repeat_demand and opts.field == "sumo":
            from ...sim.demand import repeat_routes

            until = self.end_s if sumo_end is not None else begin_s + 7 * 86400.0
            routes = (repeat_routes(routes, self.scenario.duration_s, until, self.run_dir / "demand.rou.xml"),)
            self.scenario = dataclasses.replace(self.scenario, route_files=routes)
        if opts.field == "none":
            self.field = self._open_without_simulator()
        else:
            # live loops only: passages are read from them every step (no passage file grows for a day)
            layout = place_detectors(self.scenario.net_file, self.run_dir / "sumo", live=True, instant=False,
                                     live_zones=True)
            self._sumo_opts = _sumo_options(cfg, self.scenario, end_s=sumo_end)
            self._sumo_opts.additional_files = (*self._sumo_opts.additional_files, *layout.additional_files)
            # what the user's additional files write stays with the run, not beside those files
            self._sumo_opts.additional_outputs_dir = self.run_dir / "sumo" / "additional"
            self.field = open_field(cfg, self.scenario, self._sumo_opts, layout,
                                    backend_factory=self._backend_factory())
        sink = None
        if opts.sink == "shadow" or opts.field == "none":
            from .field_none import ShadowSink

            sink = ShadowSink()
        source = self.field.backend if opts.field == "none" else None  # the feed, and the cameras where they watch
        self.stepper = LoopStepper(cfg, self.field, self.end_s, source=source, sink=sink)
        self._attach_preempt_input()
        # the nominal demand the fallback plans are made from is read now, not in the tick that first falls back:
        # a live signal falls back when its data fail, and must not wait on reading the route files then
        len(self.stepper.context.nominal_lane_flow_vph)
        # a failure is told with the controller its signal runs, which a switch may have made another than -c's
        self.stepper.controller_faults.label_of = lambda tls: self.signal_specs.get(tls, self.controller_spec)
        self._refuse_unsaved_controllers()
        self._open_cameras()
        self.stepper.profiler = self.profiler
        #: each loop a detector's presence is read from (`live_zone_ids`): (signal, detector, whether it counts)
        self._presence_loops = {loop: (i.id, d, k == 0) for i in self.field.intersections for d in i.detectors
                                for k, loop in enumerate(live_zone_ids(d))}
        if opts.field != "none":
            # once the controllers say which zone lanes they read; building the stepper needs no registration
            # (it reads the network and sets signals, never the per-step reply)
            self._register(self.field.backend)
        self._ctx = dataclasses.replace(self.stepper.context, nominal_lane_flow_vph={})
        self._note_models(cfg.controller, self._ctx.options)
        self._planners = self._make_planners()
        self.pacer = Pacer(opts.speed, self.stepper.t)
        #: the (loop, vehicle) pairs over a presence loop now, as `_detector_tick` read them, with the vehicle type
        self._on_loop: dict[tuple[str, str], str] = {}
        #: after a recovery, until the first step read: the restored simulator may not know a vehicle is over a loop
        self._presence_restored = False
        #: per detector, the (loop, vehicle) pairs over it now: on while any is
        self._occupants: dict[str, set[tuple[str, str]]] = {}
        #: (loop, vehicle) -> exit time of each passage that ended in the last step read: SUMO reports a vehicle
        #: that left at a step's very end again in the next step's data, which logged its on and off once more
        self._left: dict[tuple[str, str], float] = {}
        # with --field none the vehicles are counted from the feed's (and cameras') stop-bar detectors
        stopbars = ({(i.id, d.channel): d.lane for i in self.field.intersections for d in i.detectors
                     if d.kind == "stopbar"} if opts.field == "none" else None)
        # until the first tick starts the run's wall clock (`_start_wall_clock`), the records count from now
        self.records = LiveRecords(self.stepper.intersections, self.stepper.approach_direction, cfg.interval_s,
                                   self.stepper.t, dt.datetime.now().astimezone() - dt.timedelta(seconds=self.stepper.t),
                                   self.run_dir.name, feed_stopbars=stopbars,
                                   # each vehicle type's vClass from the files that define it: asking SUMO before
                                   # the run changes its traffic, and during it costs a tick a second exchange
                                   vtype_classes=read_vtype_classes((*self.scenario.route_files,
                                                                     *self.scenario.additional_files))
                                   if stopbars is None else None)
        self._tell_webhooks_the_run()
        self._store_run()
        self._write_static()
        # the timing it starts with (its --config's), said as `signalwise run` says it; a replayed change says its own
        for line in timing_notes_warnings(self.stepper.intersections):
            log.warning("%s", line)
        for line in clearance_rounding_warnings(self.stepper.intersections, self.cfg.timing, self.cfg.step_length_s):
            log.warning("%s", line)
        self._clearance_floors = clearance_floors(self.stepper.intersections)  # before any change is applied
        self._replay_site_changes()
        self._start_on_replayed_timing()
        # the plan of each signal that starts on `coordinated` (131, 132, 133, or the Free pattern), then the signals'
        # opening events: a replayed revision's 131 before the first green's 1
        self._write_events([e for tls, ctrl in sorted(self.stepper.controllers.items())
                            for e in self._pattern_change(tls, ctrl, self.stepper.t)])
        self._drain()
        self._settle_dead_runs()
        self._save_state()
        self.status_text = "running"

    def _refuse_unsaved_controllers(self) -> None:
        """A controller the run's saved state cannot hold (`unsaved_reason`) is refused before the first tick, in
        one line: the first state save would end the run with a traceback."""
        if self.opts.field != "sumo":
            return
        for tls, ctrl in self.stepper.controllers.items():
            why = unsaved_reason(ctrl)
            if why:
                raise ControllerUnavailable(f"controller {self.cfg.controller!r} cannot run live at signal {tls!r}: "
                                            f"{why}")

    def _settle_dead_runs(self) -> None:
        """Earlier runs of this corridor killed without a word (SIGKILL, a power cut): marked died, their store
        buffers stored, said after the banner and raised as `previous_run_died` (`previous.py`)."""
        from .previous import previous_run_lines, settle

        self.dead_runs = settle(self.run_dir.parent, self.cfg.scenario_label, self.run_dir, self.store)
        self.previous_run_lines = previous_run_lines(self.dead_runs)
        from .previous import clear_open_alerts

        notifier = getattr(self.alerts, "on_raise", None) if self.alerts is not None else None
        for dead in self.dead_runs:  # its alerts left active: cleared in its alerts.jsonl and at the webhook
            clear_open_alerts(dead, self.run_dir, notifier if hasattr(notifier, "notify") else None)

    def _tell_webhooks_the_run(self) -> None:
        """An alert's webhook payload names the run (`simulation_id`, as the store keys it) and its scenario: a
        receiver that serves several corridors tells their alerts apart."""
        if self.alerts is None:
            return
        sim = getattr(self.store, "simulation_id", None) or self.run_dir.name
        for callback in (self.alerts.on_raise, self.alerts.on_clear, self.alerts.on_acknowledge):
            if hasattr(callback, "set_origin"):
                callback.set_origin(simulation_id=sim, scenario=self.cfg.scenario_label)

    def _open_cameras(self) -> None:
        """The run's camera inputs; the cameras given at start are checked against its signals now."""
        from .cameras import LiveCameras

        st = self.stepper
        self.cameras = LiveCameras(st.intersections, st.approach_direction, feeds_loop=self.opts.field == "none",
                                   speed=self.opts.speed, now=lambda: st.t)
        self._feed_follows_shield()
        if self.opts.field == "none":
            self.field.backend.feed.cameras = self.cameras
            self.cameras.feed = self.feed  # a detector the feed reports logs its own 82/81
        for camera in self.camera_configs:
            self.cameras.check(camera)

    def _backend_factory(self):
        if self.opts.in_process:
            return SumoBackend
        from ...sim.worker import SumoProcess

        return SumoProcess

    def _register(self, backend) -> None:
        """Tell a worker-process field what to return with every step (one exchange per tick)."""
        if not hasattr(backend, "register_lanes"):
            return
        inters = self.field.intersections
        self._registered_lanes = self._lanes_read()
        backend.register_lanes(self._registered_lanes)
        # the controllers' loops and the presence loops the event log reads (`_detector_tick`)
        backend.register_detectors(sorted({d.id for i in inters for d in i.detectors} | set(self._presence_loops)))
        backend.register_intersections({i.id: i for i in inters}, self.cfg.shield.preempt_distance_m)

    def _lanes_read(self) -> list[str]:
        """The signals' own lanes and the measuring zones of the controllers in place."""
        lanes = {lane for i in self.field.intersections for lane in (*i.in_lanes, *i.out_lanes)}
        lanes.update(lane for c in self.stepper.controllers.values() if c is not None
                     for lane in getattr(c, "zone_lane_ids", ()))
        return sorted(lanes)

    def _register_zones_again(self) -> None:
        """After a controller was replaced: a worker field returns the lanes the new one reads with every step
        (else each decision reads its zone lanes in requests of their own), when they are other lanes."""
        backend = self.field.backend
        if not hasattr(backend, "register_lanes"):
            return
        lanes = self._lanes_read()
        if lanes != self._registered_lanes:
            backend.register_lanes(lanes)
            self._registered_lanes = lanes

    def _open_without_simulator(self) -> Field:
        """`--field none`: read the signal model once from the network file, then run on the feeds alone."""
        from ...sim.detectors import plan_detectors
        from ..loop import sumo_options
        from .field_none import FeedField, read_lane_network

        probe = open_field(self.cfg, self.scenario, sumo_options(self.cfg, self.scenario, with_routes=False,
                                                                 end_s=self.scenario.begin_s + 1))
        probe.backend.close()
        by_tls = plan_detectors(self.scenario.net_file)
        inters = [dataclasses.replace(i, detectors=by_tls.get(i.id, ())) for i in probe.intersections]
        if self.feed is None:
            from .feeds import DetectorFeed, wall_clock

            # wall-clock messages land on the loop's clock; messages from the future are refused on arrival
            self.feed = DetectorFeed(inters, clock=wall_clock((self.scenario.begin_s, time.time()), self.opts.speed),
                                     now=lambda: self.stepper.t if self.stepper is not None else self.scenario.begin_s)
        self._feed_follows_shield()
        from .cameras import FeedsAndCameras

        # the loop's source: the feed, and the cameras where they watch (`_open_cameras` gives it the cameras)
        fld = FeedField(FeedsAndCameras(self.feed), self.cfg.step_length_s, self.scenario.begin_s,
                        read_lane_network(self.scenario.net_file))
        return Field(fld, self.scenario, inters, probe.refused)

    def _attach_preempt_input(self) -> None:
        """The preemption input: external calls join the loop's source as emergency vehicles (`preempt`), beside
        SUMO's own with --field sumo; the source is read through the field, which a recovery gives a new backend."""
        from .preempt import PreemptCalls, WithPreemptCalls

        st = self.stepper
        self.preempt = PreemptCalls(st.by_id, st.approach_direction, lambda tls: bool(st.shields[tls].cfg.preempt),
                                    lambda: st.t, self.opts.speed)
        inner = st.source
        st.source = WithPreemptCalls((lambda: self.field.backend) if inner is self.field.backend else (lambda: inner),
                                     self.preempt)

    def _feed_follows_shield(self) -> None:
        """A feed message is late (said so in its HTTP answer, counted in `late_messages`) when older than the
        shield lets data be (`max_observation_age_s`): the limit in force, a shield change's included."""
        if self.feed is not None and hasattr(self.feed, "late_after_s"):
            self.feed.late_after_s = self.cfg.shield.max_observation_age_s
        if self.cameras is not None:  # a late camera close stays inside events.csv's hold for late events
            from .cameras import CLOSE_BEHIND_S

            self.cameras.close_behind_s = min(CLOSE_BEHIND_S, self.cfg.shield.max_observation_age_s / 2)

    def _make_planners(self) -> dict:
        """A Webster planner per signal: fed measured counts each plan cycle, it re-times the fallback plan."""
        if self.opts.field == "none":
            return {}
        return {i.id: make("webster", i, self._ctx) for i in self.field.intersections}

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Loop until `stop()`, the duration, or an error that recovery cannot mend."""
        st = self.stepper
        try:  # from its first line: a Ctrl-C landing anywhere in it still ends the run through `_finish`
            with self._inbox_lock:  # after a change being applied before the loop started (`submit`) is done
                self.running = True
            next_snapshot = next_alerts = 0.0
            next_state = st.t + self.opts.state_every_s
            next_plan = st.t + self.opts.plan_every_s
            clock = time.perf_counter
            # the schedule starts now, not when `open()` built the pacer: the API, the feeds and the first map
            # start in between, and counting that second as the first tick's lateness raised a false alert
            self.pacer.rebase(st.t)
            wall_s = time.time()
            self._rebase_feed_clock(wall_s)
            self._start_wall_clock(wall_s)
            while not self._stop.is_set() and st.t < self.end_s - 1e-9:
                t0 = clock()
                self._apply_changes()
                try:  # the simulator can die during any call of the tick, not only its step
                    t = st.step()
                    t1 = clock()
                    self._detector_tick()
                    self._drain()
                    closed = t >= self.records.interval_end_s - 1e-9
                    if closed:
                        self._close_records(t)
                    self._expire_overrides(t)
                    self._swap_pending()
                    t2 = clock()
                    self.profiler.add("record", t2 - t1)
                    if t >= next_state or closed:  # a recovery never replays into an interval already stored
                        self._save_state()
                        next_state = t + self.opts.state_every_s
                    if t >= next_plan:
                        self._plan_cycle(t)
                        next_plan = t + self.opts.plan_every_s
                except SimulationError as exc:
                    if self.opts.field != "sumo":
                        raise
                    self._recover(exc)
                    next_state = st.t + self.opts.state_every_s
                    continue
                wall = time.monotonic()
                self.last_tick_monotonic = wall  # the liveness probe's age of the last tick (`/health/live`)
                self._beat()
                self._keep_controller_errors(wall)
                if wall >= next_snapshot:
                    self._publish_snapshot()
                    next_snapshot = next_snapshot_due(next_snapshot, wall, self._snapshot_every_s())
                if self.alerts is not None and wall >= next_alerts:
                    self._evaluate_alerts(t)
                    next_alerts = wall + 1.0 / self.opts.alerts_hz
                self.profiler.add("publish", clock() - t2)
                self.profiler.add("tick", clock() - t0)
                self.profiler.add("lateness", self.pacer.wait_until(t))
            self.status_text = "complete" if st.t >= self.end_s - 1e-9 else "stopped"
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`sigterm_as_interrupt`)
            self.status_text = "stopped"  # a clean stop: evidence flushed below
            self.stopped_by = stop_reason(exc)
            raise
        except BaseException as exc:
            self.status_text = f"failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
            raise
        finally:
            with self._inbox_lock:
                self.running = False
            self.loop_over = True
            self._refuse_waiting_changes()
            self._finish()

    def stop(self) -> None:
        self._stop.set()

    def _rebase_feed_clock(self, wall_s: float) -> None:
        """The loop starts now (epoch `wall_s`): a detector feed maps wall-clock times from this moment (as the pacer
        does, and `_start_wall_clock` the run's rows), and a feed attached after `open()` (by a program that embeds
        the runtime) learns the loop's clock, so a `sim_time_s` from the run's future is refused on arrival instead
        of going into events.csv at a time the run never reached."""
        if self.cameras is not None:  # camera frames are stamped from this moment too
            self.cameras.rebase(self.stepper.t)
        feed = self.feed
        if feed is None:
            return
        from .feeds import WallClock, wall_clock

        if isinstance(getattr(feed, "clock", None), WallClock):
            feed.set_clock(wall_clock((self.stepper.t, wall_s), self.opts.speed))
        if hasattr(feed, "set_now") and not feed.has_now:
            feed.set_now(lambda: self.stepper.t)

    def _start_wall_clock(self, wall_s: float) -> None:
        """live_events.csv, the store's events and the interval records take their wall clock from the loop's first
        tick (epoch `wall_s`), where a detector feed's starts: at speed 1 a feed event sent with its own `time` is
        logged at that time, not at the seconds `open()` took before the loop started. The origin is kept to the
        tenth of a second, the log's resolution; the rows logged before (the signals' starting states) go in now."""
        tenths = round((wall_s - self.stepper.t) * 10)
        self._wall0 = (dt.datetime.fromtimestamp(tenths // 10).astimezone()
                       + dt.timedelta(milliseconds=100 * (tenths % 10)))
        if self.store is not None and hasattr(self.store, "events_start"):
            self.store.events_start = self._wall0.replace(tzinfo=None)  # its events carry what live_events.csv says
        self.records.start_wall_clock(self._wall0)
        early, self._early_live = self._early_live, []
        self._write_live(early)
        fh = self._files.get("live_events")
        if fh is not None:
            fh.flush()

    def _snapshot_every_s(self) -> float:
        """Seconds to the next snapshot: the configured rate, lowered while the loop runs late.

        Snapshots are the bulky data; under pressure they thin out (down to one every 4 s) while
        signal changes, alerts and preemption still go out as they happen (`signal`, `alert`).
        """
        base = 1.0 / self.opts.snapshot_hz
        late = self.profiler.recent("lateness")
        slot = self.cfg.step_length_s / self.opts.speed if self.opts.speed else None
        if slot is not None and late is not None and late > 0.5 * slot:
            self._snapshot_backoff = min(16.0, getattr(self, "_snapshot_backoff", 1.0) * 2)
        else:
            self._snapshot_backoff = max(1.0, getattr(self, "_snapshot_backoff", 1.0) / 2)
        return min(4.0, base * self._snapshot_backoff)

    # -- evidence ----------------------------------------------------------------------
    def _write_static(self) -> None:
        cfg = self.cfg.with_absolute_paths()
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False))
        (self.run_dir / "live.yaml").write_text(yaml.safe_dump(dataclasses.asdict(self.opts), sort_keys=False))
        self._write_signal_model()
        write_detector_config(self.run_dir / "detectors.csv", self.stepper.intersections)  # for `signalwise atspm`
        self._open_csv("events", "events.csv", EVENT_COLUMNS)
        self._open_csv("live_events", "live_events.csv", ("TimeStamp", "DeviceId", "EventId", "Parameter", "sim_time_s"))
        self._open_csv("states", "signal_states.csv", ("time_s", "device_id", "state"))
        self._open_csv("interventions", "interventions.csv", ("time_s", "device_id", "rule", "detail"))
        from .preempt import CSV_COLUMNS as PREEMPT_CALL_COLUMNS

        self._open_csv("preempt_calls", "preempt_calls.csv", PREEMPT_CALL_COLUMNS)
        self._files["changes"] = open(self.run_dir / "changes.jsonl", "a")
        self._files["records"] = open(self.run_dir / "records.jsonl", "a")
        #: every alert raised, cleared or acknowledged: what a run killed with SIGKILL left open is read from it
        self._files["alerts"] = open(self.run_dir / "alerts.jsonl", "a")
        self._write_controller_errors()  # its header from the start, as a batch run's directory always has it
        from .previous import HEARTBEAT

        self._files["heartbeat"] = heartbeat = open(self.run_dir / HEARTBEAT, "w")
        heartbeat.write("touched at the end of every tick while the run goes: a run killed with SIGKILL was last "
                        "seen alive at its modification time\n")
        heartbeat.flush()
        # run.json says `running` only once every evidence file holds its header: a run killed from then on
        # leaves files the audit can read up to where it died
        self._write_run_json()

    def _write_signal_model(self) -> None:
        """The signals as the run started, with the timing revisions of the changes made since (the audit's
        rules for the greens after each 131), replaced whole so a reader never sees half a file."""
        model = describe_intersections(self.stepper.intersections, self.stepper.approach_direction,
                                       self.cfg.step_length_s)
        for device in model:
            revisions = self._timing_revisions.get(device["id"])
            if revisions:
                device["timing_revisions"] = revisions
        partial = self.run_dir / "signal_model.json.partial"
        dump_json(partial, model)
        partial.replace(self.run_dir / "signal_model.json")

    def _store_run(self) -> None:
        """The run's own row in the store, with what an offline `signalwise run --db` stores about its run."""
        if self.store is None or not hasattr(self.store, "put_run"):
            return
        config = json.loads(self.cfg.with_absolute_paths().model_dump_json())
        config.update(run_dir=str(self.run_dir.resolve()), live=dataclasses.asdict(self.opts))
        self.store.put_run(self.scenario.name, self.cfg.controller, self.cfg.seed, config, self._started_wall)
        if hasattr(self.store, "put_detector_config"):  # after its run: the API's detector measures read it
            self.store.put_detector_config(detector_rows(self.stepper.intersections))

    def _close_store(self) -> None:
        """The run's end closes its store writer (a later `close()` by its owner does nothing), so run.json and
        the status can say what was stored and what still waits in the buffer, where, and how it gets stored."""
        store = self.store
        if store is None or not hasattr(store, "summary"):
            return
        try:
            store.close()
            self.store_summary = store.summary()
            message = store.waiting_message()
        except Exception:  # noqa: BLE001 - run.json must still say how the run ended
            log.exception("could not close the store writer")
            return
        if message:  # `signalwise live` ends with this line and exit 1; an embedding caller finds it in the log
            log.info("%s", message)

    def _write_run_json(self, **extra) -> None:
        dump_json(self.run_dir / "run.json", {
            "status": "running" if self.status_text in ("starting", "running") else self.status_text,
            "live": True, "started": self._started_wall.isoformat(timespec="seconds"), "signalwise": __version__,
            "step_length_s": self.cfg.step_length_s, "scenario": self.cfg.scenario_label,
            "controller": self.controller_spec, "signal_controllers": dict(sorted(self.signal_specs.items())),
            "restarts": self.restarts, "recoveries": self.recoveries,
            **({"coordination": dict(sorted(self._coordination.items()))} if self._coordination else {}),
            "process": self._process, "provenance": self._provenance,
            **({"models": self._models} if self._models else {}), **extra})

    def _note_models(self, spec: str, options: Mapping) -> None:
        """Keep the model directories a learned controller `spec` runs with (built with `options`), each once."""
        for name, models in models_run([spec], dict(options)).items():
            kept = self._models.setdefault(name, [])
            kept.extend(m for m in models if m not in kept)

    def _beat(self) -> None:
        """Touch the heartbeat file (one `futimens`, a few microseconds): a run killed with SIGKILL is then known to
        have been alive until within a tick of the kill (`previous.last_seen_alive`)."""
        fh = self._files.get("heartbeat")
        if fh is None:
            return
        try:
            os.utime(fh.fileno())
        except OSError:  # a diagnostic must not stop the signals; `died_at` then falls back to the other files
            pass

    def _keep_controller_errors(self, wall_s: float) -> None:
        """controller_errors.csv follows the controllers' faults while the run goes (a run may be killed): rewritten
        at once when a new kind appears, and when only counts grew at most every `FAULTS_WRITE_EVERY_S`. A tick
        without a new kind reads one length; the counts are summed only when a rewrite is due."""
        faults = self.stepper.controller_faults
        kinds = len(faults.kinds)
        if kinds == self._faults_written[0] and (not kinds or wall_s < self._faults_due):
            return
        if kinds == self._faults_written[0] and sum(f.count for f in faults.kinds.values()) == self._faults_written[1]:
            self._faults_due = wall_s + FAULTS_WRITE_EVERY_S
            return
        try:
            self._write_controller_errors()
        except OSError as exc:  # a diagnostic file must not stop the signals: said once, tried again when due
            if not self._faults_write_failed:
                log.warning("controller_errors.csv not written (%s); the run goes on and tries again every %g s",
                            exc, FAULTS_WRITE_EVERY_S)
            self._faults_write_failed = True
        self._faults_due = wall_s + FAULTS_WRITE_EVERY_S

    def _write_controller_errors(self) -> None:
        """Each kind of error the controllers raised and of proposal the shield could not follow, once with its
        count (`CSV_COLUMNS`, as a batch run writes it), replaced whole so a reader never sees half a file."""
        from ..controller_faults import CSV_COLUMNS

        faults = self.stepper.controller_faults
        partial = self.run_dir / "controller_errors.csv.partial"
        with open(partial, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            w.writerows(faults.rows())
        partial.replace(self.run_dir / "controller_errors.csv")
        self._faults_written = (len(faults.kinds), sum(f.count for f in faults.kinds.values()))

    def _open_csv(self, key: str, name: str, header) -> None:
        fh = open(self.run_dir / name, "w", newline="")
        self._files[key] = fh
        self._writers[key] = csv.writer(fh)
        self._writers[key].writerow(header)
        fh.flush()

    def _wall_stamp(self, sim_s: float) -> str:
        """A live event's wall-clock local time, as a field controller logs it (0.1 s)."""
        wall0 = self._wall0  # on the tenth: its tenths go with the event's, whole seconds are the start's
        return format_timestamp(sim_s + wall0.microsecond / 1e6, wall0.replace(tzinfo=None, microsecond=0))

    def _drain(self) -> None:
        """Move what the loop produced since the last tick into the evidence files (and the store)."""
        st = self.stepper
        events: list[SignalEvent] = []
        for sh in st.shields.values():
            if sh.events:
                events.extend(sh.events)
                sh.events.clear()
            if sh.interventions:
                w = self._writers["interventions"]
                for iv in sh.interventions:
                    w.writerow((iv.time_s, iv.intersection_id, iv.rule, iv.detail))
                self._interventions_total += sum(1 for iv in sh.interventions if iv.rule not in NOTES)
                sh.interventions.clear()
        if self.preempt is not None:
            calls = self.preempt.drain_rows()
            if calls:
                self._writers["preempt_calls"].writerows(calls)
        if self.feed is not None and hasattr(self.feed, "drain_events"):
            fed = self.feed.drain_events()
            self._feed_to_records(fed, getattr(self.feed, "drain_counts", list)())
            events.extend(fed)
        if self.cameras is not None and self.cameras.feeds_loop:  # with --field sumo, SUMO's detectors are logged
            seen = self.cameras.drain_events()
            self._feed_to_records(seen, (), approach_wide=True)
            events.extend(seen)
        if events:
            self.preemptions.observe(events)
            self._write_events(events)
        if st.signal_states:
            self._writers["states"].writerows(st.signal_states)
            for t, tls, state in st.signal_states:
                self.records.state(t, tls, state)
                if self.publish is not None:  # priority data: every change goes out, whatever the snapshot rate
                    sh = st.shields[tls]
                    self.publish("signal", {"intersection_id": tls, "sim_time_s": t, "state": state,
                                            "phase_number": sh.phase + 1, "interval": sh.interval,
                                            "preempted": sh.preempt_active})
            for row in st.signal_states:
                recent = self._recent_states.setdefault(row[1], [])
                recent.append(row)
                opened = st.shields[row[1]].green_start_s
                while len(recent) > 1 and recent[1][0] <= opened:
                    recent.pop(0)  # keep the states shown since the current green opened
            st.signal_states.clear()
        st.queue_samples.clear()
        for fh in self._files.values():
            fh.flush()

    def _detector_tick(self) -> None:
        """Detector on (82) / off (81) events and stop-bar passages from the live loops' last step. A detector is
        on while a vehicle is over any of its presence loops (a stop-bar detector's zone, as an offline run
        records it: `sim.detectors.STOPBAR_ZONE_SETBACKS_M`); its first zone loop counts the vehicles. A vehicle
        whose trip ends on a stop-bar detector's edge is not seen by it: SUMO drives it to the line and removes it
        there, which the zone would log as a vehicle leaving on red (an offline run leaves it out too)."""
        data = getattr(self.field.backend, "detector_vehicle_data", None)
        if data is None or not self._presence_loops:
            return
        changes = []  # (time, 0 = enters / 1 = leaves, loop, vehicle, vtype): in time order, entries first
        left, self._left = self._left, {}
        seen: set[tuple[str, str]] = set()
        for loop, veh, vtype, entry, leave, ends_over in data(self._presence_loops):
            if ends_over and self._presence_loops[loop][1].kind == "stopbar":
                continue
            key = (loop, veh)
            if key in left and entry <= left[key]:  # a passage ended and read already, reported again
                self._left[key] = left[key]
                continue
            seen.add(key)
            if key not in self._on_loop:
                self._on_loop[key] = vtype
                changes.append((entry, 0, loop, veh, vtype))
            if leave >= 0:
                del self._on_loop[key]
                self._left[key] = leave
                changes.append((leave, 1, loop, veh, vtype))
        if self._presence_restored:
            # SUMO restores a vehicle standing over a loop as one entering it at the resume time, but not always
            # one moving over it: it would never report that one leaving, and its detector would stay on. A
            # vehicle the first step does not report left during it (stamped at its end, within a step)
            self._presence_restored = False
            for key in [k for k in self._on_loop if k not in seen]:
                changes.append((self.stepper.t, 1, *key, self._on_loop.pop(key)))
        events = []
        for t, leaves, loop, veh, vtype in sorted(changes):
            tls, det, counts = self._presence_loops[loop]
            over = self._occupants.setdefault(det.id, set())
            if not leaves:
                if not over:
                    events.append(SignalEvent(round(t, 1), tls, int(EventCode.DETECTOR_ON), det.channel))
                over.add((loop, veh))
                continue
            over.discard((loop, veh))
            if not over:
                events.append(SignalEvent(round(t, 1), tls, int(EventCode.DETECTOR_OFF), det.channel))
            if counts and det.kind == "stopbar":
                self.records.passage(tls, det.lane, vtype)
        if events:
            self._write_events(events)

    def _feed_to_records(self, events: list[SignalEvent], counts, approach_wide: bool = False) -> None:
        """A feed run's vehicles: the feed's counts and the on-events (82) of its and the cameras' detectors
        (the records take them at stop-bar detectors only, and only in a run without a simulator)."""
        for c in counts:
            self.records.feed_count(c.device_id, c.channel, c.count_veh, c.time_s)
        for e in events:
            if e.event_code == EventCode.DETECTOR_ON:
                self.records.feed_on(e.device_id, e.parameter, e.time_s, approach_wide=approach_wide)

    def _close_records(self, t: float) -> None:
        """The interval ends: queues at its end, then every intersection's record to the file and the store."""
        from ...core.types import ObservationNeed

        st = self.stepper
        for inter in st.intersections:
            try:
                lanes = st.source.observe(inter, t, ObservationNeed(inter.in_lanes, "full")).lanes
            except Exception:  # noqa: BLE001 - a field that just died: the record goes without queues
                lanes = {}
            queue: dict[str, int] = {}
            waiting: dict[str, float] = {}
            vehicles: dict[str, int] = {}
            speeds = []
            for lane, ls in lanes.items():
                d = st.approach_direction.get(lane, "?")
                queue[d] = queue.get(d, 0) + ls.queue_veh
                waiting[d] = waiting.get(d, 0.0) + ls.wait_s
                vehicles[d] = vehicles.get(d, 0) + ls.count_veh
                if ls.count_veh:
                    speeds.append(ls.mean_speed_mps)
            # the mean time the vehicles standing on each approach have waited so far
            self.records.queues(inter.id, queue, {d: waiting[d] / vehicles[d] for d in waiting if vehicles[d]})
            if speeds:
                self.records.speed(inter.id, sum(speeds) / len(speeds))
        end_s = self.records.interval_end_s
        rows = self.records.close_interval()
        if rows:  # what the next snapshots carry to the dashboard's delay and throughput charts
            self._last_interval = network_figures(rows, self.records.interval_s, end_s)
        fh = self._files.get("records")
        if fh is not None:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        stored = [r for r in map(store_record, rows) if r is not None]
        if self.store is not None and stored:
            self.store.put_records(stored)

    def _write_events(self, events: list[SignalEvent], *, held_too: bool = False) -> None:
        for e in events:
            if e.event_code == EventCode.PREEMPT_CALL_ON:
                self.records.preempt(e.device_id)
        # a feed run's events wait out the lateness its data may have (docs/live-feeds.md), then go in time order;
        # `held_too` (the run's end) writes every event held
        hold_s = self.cfg.shield.max_observation_age_s if self.opts.field == "none" and not held_too else None
        events = self._alternation.keep(self._event_order.release(events, self.stepper.t, hold_s))
        self.events_logged += len(events)
        ev = self._writers["events"]
        for e in events:
            ev.writerow((format_timestamp(e.time_s), e.device_id, e.event_code, e.parameter))
        if self._wall0 is None:  # before the first tick, whose wall clock they take (`_start_wall_clock`)
            self._early_live.extend(events)
        else:
            self._write_live(events)

    def _write_live(self, events: list[SignalEvent]) -> None:
        """Events on the run's wall clock: live_events.csv and the store."""
        live = self._writers["live_events"]
        for e in events:
            live.writerow((self._wall_stamp(e.time_s), e.device_id, e.event_code, e.parameter, e.time_s))
        if self.store is not None:
            self.store.put_events(events)

    def _close_camera_zones(self) -> None:
        """The run ends: every camera zone still on is closed (an 81 at its camera's newest frame) for the last
        drain, as a stream that ends closes its own, so the log shows no detector held on past the run."""
        if self.cameras is None or not self.cameras.feeds_loop:
            return
        for camera_id in self.cameras.cameras:
            self.cameras.end(camera_id, "the run ended")

    def _stop_mqtt_intake(self) -> None:
        """The detector feed's MQTT client stops before the last drain (`MqttFeed.stop`, STOP_WAIT_S at most): what
        it received is in events.csv or counted as discarded, not taken by the feed after the log was closed."""
        client = getattr(self.feed, "mqtt", None)
        if client is not None:
            try:
                client.stop()
            except Exception:  # noqa: BLE001 - the last evidence is written all the same
                log.exception("could not stop the detector feed's MQTT client")

    def _end_alerts(self) -> None:
        """The alerts still active when the run ends are cleared, saying so: nothing watches their figures any more,
        and a webhook's receiver would keep them open (alerts.jsonl, the store and the stream get the clears)."""
        if self.alerts is None or not hasattr(self.alerts, "end_run"):
            return
        from .alerts import RUN_ENDED_REASON

        how = f" ({self.stopped_by})" if self.stopped_by else ""
        for event in self.alerts.end_run(f"{RUN_ENDED_REASON}{how}: its figures are no longer watched",
                                         at_s=self.stepper.t if self.stepper is not None else None):
            self._emit_alert(event)

    def _finish(self) -> None:
        """Flush the evidence, close the field, and say in run.json how the run ended, whatever else fails:
        a second Ctrl-C or SIGTERM waits (`interrupts_deferred`), a simulator that will not close is logged."""
        with interrupts_deferred():
            self._close()

    def _close(self) -> None:
        try:
            if self._wall0 is None and self.stepper is not None:  # stopped before its first tick could start it
                self._start_wall_clock(time.time())  # the signals' starting states go into live_events.csv
            self._close_camera_zones()
            self._stop_mqtt_intake()
            self._drain()
            self._write_events([], held_too=True)
            self._end_alerts()
            if self.stepper is not None:  # the counts since the last rewrite, and each kind's total on stderr
                self._write_controller_errors()
                self.stepper.controller_faults.log_totals()
        except Exception:  # noqa: BLE001 - closing must not hide the reason we stopped
            log.exception("could not write the last evidence")
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        try:
            self._publish_snapshot()  # the last one, `running: false`, while the field can still be read
            if self.field is not None:
                self.field.backend.close()
        except Exception:  # noqa: BLE001 - run.json below must still say how the run ended
            log.exception("could not close the simulator")
        self._close_store()
        self._write_run_json(finished=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                             sim_time_s=self.stepper.t if self.stepper else None,
                             profiler=self.profiler.figures(),
                             # as a batch run's metrics.json: the decisions, errors, invalid proposals, each kind
                             **({"controller_faults": self.stepper.controller_faults.as_metrics()}
                                if self.stepper is not None else {}),
                             **({"reason": self.stopped_by} if self.stopped_by else {}),
                             **({"store": self.store_summary} if self.store_summary is not None else {}),
                             **({"preemptions_in_force": self.preemptions_in_force()}
                                if self.stepper is not None and self.preemptions.active else {}),
                             **({"feeds": self._feeds_status()} if self.feed is not None else {}))
        if self._lock is not None:
            self._lock.release()  # the next run of the corridor may start

    # -- recovery ------------------------------------------------------------------------
    #: new simulator processes tried, one after another, before a crash fails the run
    RECOVERY_ATTEMPTS = 3

    def _save_state(self) -> None:
        """Save the simulator's state and the loop's beside it (the last pair is kept)."""
        if self.opts.field != "sumo":
            return
        path = self.run_dir / "state" / "last.xml"
        fresh = path.with_name("next.xml")
        # written aside, then put in place: a simulator killed mid-save must leave the last good state whole
        self.field.backend.save_state(fresh)
        try:
            checkpoint = self.stepper.checkpoint()
        except Exception as exc:  # noqa: BLE001 - a controller that cannot be copied any more must not end the run
            fresh.unlink(missing_ok=True)
            self._state_not_saved(exc)
            return
        if self._unsaved_since_s is not None:
            log.warning("the run's state is saved again at t=%.0f s: a lost simulator is recovered", self.stepper.t)
            self._unsaved_since_s = None
        fresh.replace(path)
        # beside the copies, the live controllers and timing then in force: what changed since is made again;
        # the interval's records so far, so the seconds a recovery replays are not counted twice; the vehicles
        # over the detectors, so the replay logs their events as a run that never crashed does
        self._saved = (path, checkpoint, [r for rows in self._recent_states.values() for r in rows],
                       dict(self.stepper.controllers), self.cfg.timing, copy.deepcopy(self.records),
                       copy.deepcopy((self._on_loop, self._occupants, self._left)), dict(self._patterns))

    def _state_not_saved(self, exc: Exception) -> None:
        """The loop's state could not be copied (a controller that opened a lock or a client since it was checked):
        the run goes on without recovery, since the last saved state is older than the records already stored
        (a recovery from it would count their seconds twice), and says so once, naming the signal."""
        self._saved = None
        if self._unsaved_since_s is not None:
            return
        self._unsaved_since_s = self.stepper.t
        where = next(((tls, why) for tls, c in self.stepper.controllers.items() if (why := unsaved_reason(c))),
                     None)
        what = (f"the controller {self.controller_at(where[0])!r} at signal {where[0]!r}: {where[1]}"
                if where else f"{type(exc).__name__}: {exc}")
        log.error("the run's state cannot be saved at t=%.0f s (%s); until it can, a lost simulator ends the run "
                  "instead of being recovered", self.stepper.t, what)

    def _recover(self, exc: BaseException) -> None:
        """The simulator died: resume from the last saved state in a new process, with the loop's state."""
        began = time.monotonic()
        crashed_at = self.stepper.t
        log.error("simulator lost at t=%.0f s: %s; recovering", crashed_at, exc)
        self._drain()  # everything logged before the crash is on disk before we acknowledge
        for fh in self._files.values():
            fh.flush()
        if self._saved is None:
            raise exc
        path, checkpoint, shown, controllers_saved, timing_saved, records, presence, patterns_saved = self._saved
        controllers_now = dict(self.stepper.controllers)
        self.field.backend.close()
        # a directory of its own for what the user's additional files write: SUMO empties each file it opens
        opts = dataclasses.replace(self._sumo_opts, load_state=path, begin_s=None,
                                   additional_outputs_subdir=f"recovery-{len(self.recoveries) + 1}")
        for attempt in range(1, self.RECOVERY_ATTEMPTS + 1):
            backend = self._backend_factory()(opts)
            try:
                backend.start()
                self._register_backend(backend)
                self.stepper.restore(checkpoint, backend)
                break
            except SimulationError as again:  # the new process died too (killed again, or out of memory)
                try:
                    backend.close()
                except Exception:  # noqa: BLE001 - it is gone already
                    pass
                if attempt == self.RECOVERY_ATTEMPTS:
                    raise SimulationError(f"recovery failed {attempt} times in a row; last: {again}") from None
                log.error("the simulator started to recover was lost too (%s); starting another (%d of %d)",
                          again, attempt + 1, self.RECOVERY_ATTEMPTS)
        self._reassert_changes(controllers_now, controllers_saved, timing_saved)
        rewound = crashed_at - self.stepper.t
        for tls, override in self.overrides.items():  # its seconds are of signal operation: those rewound run again
            override.until_s -= rewound
            if rewound > 0:  # its shown end moves: said, so an operator who noted the old one knows why
                log.warning("override on %s now until t=%.0f s (was t=%.0f s): the simulator was restored to "
                            "t=%.0f s, and the override keeps the %.0f s it had left", tls, override.until_s,
                            override.until_s + rewound, self.stepper.t, override.until_s - self.stepper.t)
        resumed = self.stepper.t
        logged_before = self.events_logged  # all on disk (drained and flushed above)
        marker = [SignalEvent(resumed, tls, int(EventCode.RUNTIME_RECOVERY), int(round(rewound)))
                  for tls in self.stepper.shields]
        self._alternation.reset()  # the replay is a timeline of its own, as the audit reads it
        # the vehicles over the detectors at the resume time: the restored simulator reports those standing on a
        # loop as entering it at that time, which would log an on while on (or, with the crash time's vehicles
        # kept, no on for a vehicle until that one passes again); a copy, as the same state may be restored again
        self._on_loop, self._occupants, self._left = copy.deepcopy(presence)
        self._presence_restored = True
        opening = [e for sh in self.stepper.shields.values() for e in sh.opening_events()]
        # a pattern logged at or before the resume time is the replay's too (the saved controllers run it); one a
        # swap logged since is in force again from the resume time, where the controller it came with runs again
        # (`_reassert_changes`): logged there, once, as the log before the marker after that time is superseded
        moved = [e for tls, pattern in sorted(self._patterns.items()) if pattern != patterns_saved.get(tls)
                 for e in pattern_events(tls, pattern, resumed)]
        self._write_events(marker + opening + moved)
        states = self._writers["states"]
        states.writerows((resumed, tls_id, RECOVERY_STATE) for tls_id in self.stepper.shields)
        states.writerows(sorted(shown))  # what each signal showed since its current green opened
        states.writerows((resumed, tls_id, sh.state) for tls_id, sh in self.stepper.shields.items())
        self._recent_states = {}
        for row in shown:
            self._recent_states.setdefault(row[1], []).append(row)
        self._drain()
        # after the marker and the re-stated intervals, which the saved records counted already; a copy, as the
        # same state may be restored again
        self.records = copy.deepcopy(records)
        self.records.start_wall_clock(self._wall0)  # a copy saved before the first tick has the clock of `open()`
        self.pacer.rebase(self.stepper.t)
        if self.cameras is not None:  # frames are stamped from the resumed clock, as the pacer counts
            self.cameras.rebase(self.stepper.t)
        self.restarts += 1
        self.last_recovery_s = round(time.monotonic() - began, 3)
        self.recoveries.append({"crashed_at_s": crashed_at, "resumed_at_s": self.stepper.t,
                                "events_logged_before": logged_before, "changes_logged_before": self.changes_logged,
                                "rewound_s": rewound, "took_s": self.last_recovery_s, "reason": str(exc)[:200]})
        self._write_run_json()
        log.warning("recovered in %.2f s, rewound %.0f s of simulated time", self.last_recovery_s, rewound)

    def _reassert_changes(self, controllers_now: dict, controllers_saved: dict, timing_saved) -> None:
        """After a restore, the changes made since the state was saved hold again: the runtime's record of them
        (overrides, settings, the change log) is not rewound, so the loop's copy must not be either.

        A controller put in place since (an override, a switch, the one back from an override) runs again, an
        override in force is the object the runtime expires (not the saved copy, which would never expire),
        and the shields take the shield settings and timing in force."""
        st = self.stepper
        for tls, ctrl in controllers_now.items():
            if tls in self.overrides or ctrl is not controllers_saved.get(tls):
                st.replace_controller(tls, ctrl)
        settings = shield_config(self.cfg)
        for sh in st.shields.values():
            sh.cfg = settings
        if self.cfg.timing is not timing_saved:
            self._retime_shields()

    def _register_backend(self, backend) -> None:
        self.field.backend = backend
        self._register(backend)

    # -- changes -------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        """Whether the run is over (complete, stopped or failed): nothing can change it any more."""
        return self.status_text not in ("starting", "running")

    #: how long a change waits for the loop to take it before it is refused (`LoopBusy`: nothing applied)
    change_wait_s = 10.0

    def submit(self, change, who: str = "local", timeout_s: float | None = None) -> dict:
        """Validate a change now (refused whole, with its reason) and have the loop apply it between ticks.

        A run that has ended (complete, stopped, failed) refuses every change: nothing would carry it out. One the
        loop does not take within `timeout_s` (default `change_wait_s`) is refused with `LoopBusy`."""
        if timeout_s is None:
            timeout_s = self.change_wait_s
        self._refuse_if_ended()
        self._validate(change)
        done = threading.Event()
        box: dict = {}
        with self._inbox_lock:  # the loop, stopping, refuses what is left in the inbox under the same lock
            self._refuse_if_ended()
            if not self.running:  # opened, not looping yet: applied here, whole, before the loop can start
                return self._apply_guarded(change, who)
            self._inbox.put((change, who, done, box))
        if not done.wait(timeout_s):
            with self._inbox_lock:  # withdrawn, unless the loop has begun applying it: then its answer is near
                taken = box.get("taken", False)
                box["withdrawn"] = not taken
            if not taken:  # refused now, so never applied later behind the answer's back
                raise ch.LoopBusy(f"the loop did not take the change within {timeout_s:g} s (it is busy "
                                  "or waiting on the simulator); nothing of it was applied: send it again later")
            done.wait()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _refuse_if_ended(self) -> None:
        if self.ended:
            raise ch.ChangeRefused(f"the live run has ended ({self.status_text}); nothing of it can change now")

    def _apply_guarded(self, change, who: str) -> dict:
        """`_apply`, with a failure nobody foresaw turned into a refusal: it must never end the loop."""
        try:
            return self._apply(change, who)
        except ch.ChangeRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - a change that breaks is refused; the signals keep running
            log.exception("a %s change could not be applied", getattr(change, "kind", "?"))
            raise ch.ChangeRefused(f"could not be applied: {type(exc).__name__}: {exc}") from None

    def _apply_changes(self) -> None:
        while True:
            try:
                change, who, done, box = self._inbox.get_nowait()
            except queue.Empty:
                return
            with self._inbox_lock:
                if box.get("withdrawn"):  # its caller was answered already: refused, as it waited too long
                    continue
                box["taken"] = True
            try:
                box["result"] = self._apply_guarded(change, who)
            except ch.ChangeRefused as exc:
                box["error"] = exc
            finally:
                done.set()

    def _refuse_waiting_changes(self) -> None:
        """The loop has stopped: the changes still waiting for it are refused at once (not left to time out)."""
        while True:
            try:
                _change, _who, done, box = self._inbox.get_nowait()
            except queue.Empty:
                return
            box["error"] = ch.ChangeRefused(f"the live run ended ({self.status_text}) before the change was applied")
            done.set()

    def _validate(self, change) -> None:
        st = self.stepper
        if isinstance(change, (ch.OverrideChange, ch.CancelOverrideChange)):
            if change.intersection_id not in st.by_id:  # 404, as the timing routes answer an unknown signal
                raise ch.UnknownIntersection(f"unknown intersection {change.intersection_id!r}; "
                                             f"signals: {', '.join(sorted(st.by_id))}")
            if isinstance(change, ch.CancelOverrideChange) and change.intersection_id not in self.overrides:
                held = ", ".join(sorted(self.overrides)) or "none"
                raise ch.ChangeRefused(f"no override in force at {change.intersection_id} (overrides in force: "
                                       f"{held})")
            if isinstance(change, ch.OverrideChange):
                n = len(st.by_id[change.intersection_id].phases)
                if change.phase_number > n:
                    raise ch.ChangeRefused(f"{change.intersection_id} has phases 1..{n}, not {change.phase_number}")
        elif isinstance(change, ch.ControllerChange):
            if change.intersections is not None and not change.intersections:
                # an empty list is not "every signal" (that is leaving it out): switching all of them by mistake
                raise ch.ChangeRefused("intersections is empty: name the signals to switch, or leave it out to "
                                       "switch every signal")
            unknown = sorted(set(change.intersections or ()) - set(st.by_id))
            if unknown:
                raise ch.UnknownIntersection(f"unknown intersection(s) {', '.join(unknown)}; "
                                             f"signals: {', '.join(sorted(st.by_id))}")
            try:
                RunConfig.model_validate({**self.cfg.model_dump(), "controller": change.controller})
                ctx = self._ctx_for(change)
                # a passage per signal and phase names this run's signals and their phases: checked at every one
                why = ch.passage_refusal(ctx.options, [st.by_id[t] for t in change.intersections or st.by_id],
                                         set(st.by_id))
                if why:
                    raise ControllerUnavailable(why)
                for tls_id in change.intersections or list(st.by_id)[:1]:
                    built = make(change.controller, st.by_id[tls_id], ctx)
                    check_usable(built, tls_id)
                    why = unsaved_reason(built) if self.opts.field == "sumo" else None
                    if why:
                        raise ControllerUnavailable(why)
            except ValidationError as exc:  # the run configuration's own words, not pydantic's link to its docs
                why = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ch.ChangeRefused(f"controller {change.controller!r} cannot run here: {why}") from None
            except Exception as exc:  # noqa: BLE001 - any failure to build is the reason to refuse
                raise ch.ChangeRefused(f"controller {change.controller!r} cannot run here: "
                                       f"{str(exc).strip().splitlines()[-1]}") from None
        elif isinstance(change, (ch.TimingChange, ch.SignalTimingChange)):
            # stale first: a change made from an old revision that no longer fits the timing in force is the
            # writer's stale read (409: read again), not a fault of its values (422). The loop checks again.
            self._check_based_on(change)
            self._timing_after(change)
        elif isinstance(change, ch.ShieldChange):
            try:
                asked = RunConfig.model_validate({**self.cfg.model_dump(), "shield": {
                    **self.cfg.shield.model_dump(), **change.shield}}).shield
            except Exception as exc:  # noqa: BLE001
                raise ch.ChangeRefused(_first_error(exc)) from None
            # preemption and the confidence fallback are not switched off at run time (as a safety alert is not
            # loosened past its limits): the --config does it, read when the run starts
            why = shield_refusal(self._shield_started, asked)
            if why:
                raise ch.ChangeRefused(why)
        elif isinstance(change, ch.AlertRulesChange):
            if self.alerts is None:
                raise ch.ChangeRefused("this run has no alert engine")
            self.alerts.operator_rules(change.rules, self.reported_figures())  # an AlertConfigError refuses it

    def _apply(self, change, who: str, replayed: dict | None = None) -> dict:
        """Apply a validated change and log it. `replayed`: the stored entry of an earlier runtime's change being
        applied again at start (the log names this runtime as who applied it, and who made it and when)."""
        st = self.stepper
        raised: dict[str, tuple[float, str]] = {}  # a timing change's cycle bounds longer than asked
        # a timing change's clearances below ITE, and those the step shows longer, as `signalwise run` warns of them
        below: list[str] = []
        outlook: tuple[list[str], dict] | None = None  # an override's: what the shield will do with it
        moved: list[str] = []  # a shield change's settings, `name old -> new`
        if isinstance(change, ch.OverrideChange):
            tls = change.intersection_id
            replaced = self.overrides.get(tls)
            inner = replaced.inner if replaced is not None else st.controllers[tls]
            ov = ch.Override(st.by_id[tls], inner, change.action, change.phase_number - 1, st.t + change.duration_s,
                             made_s=st.t)
            if replaced is not None:  # its end in the log, as override_expired and override_served end the others
                self._log_change(ch.replaced_record(replaced, ov, tls, st.t))
            self.overrides[tls] = ov
            st.replace_controller(tls, ov)
            self._register_zones_again()
            outlook = ch.override_outlook(ov, st.shields[tls].outlook(ov.phase_index, st.t), replaced)
        elif isinstance(change, ch.CancelOverrideChange):
            self._end_override(change.intersection_id)
        elif isinstance(change, ch.ControllerChange):
            ctx = self._ctx_for(change)
            targets = change.intersections or list(st.by_id)
            for tls in targets:
                self._pending_controllers[tls] = make(change.controller, st.by_id[tls], ctx)
            # the run's controller changes when every signal has the new one; a change at some signals is theirs
            self.signal_specs.update(dict.fromkeys(targets, change.controller))
            self._note_models(change.controller, ctx.options)  # built at every target: it runs from their next green
            if all(self.signal_specs.get(tls) == change.controller for tls in st.by_id):
                self.controller_spec = change.controller
            self.signal_specs = {t: c for t, c in self.signal_specs.items() if c != self.controller_spec}
            if self._files:  # opened: run.json names the controllers in force, even for a run killed later
                self._write_run_json()
        elif isinstance(change, ch.ShieldChange):
            # validated again, not copied as sent: "0.7" passes validation as 0.7, and the shield compares numbers
            settings = type(self.cfg.shield).model_validate({**self.cfg.shield.model_dump(), **change.shield})
            moved = shield_differences(self.cfg.shield, settings)
            if hasattr(self.field.backend, "register_intersections"):  # a worker answers for this distance
                self.field.backend.register_intersections(st.by_id, settings.preempt_distance_m)
            self.cfg = st.cfg = self.cfg.model_copy(update={"shield": settings})  # the loop reads preempt_distance_m
            new = shield_config(self.cfg)
            for sh in st.shields.values():
                sh.cfg = new
            if self.opts.field == "none":
                self._feed_follows_shield()
        elif isinstance(change, (ch.TimingChange, ch.SignalTimingChange)):
            if replayed is None:  # a replay is applied over what it was made over: the runs before this one
                self._check_based_on(change)
            raised, notes, timings = self._retime(self._timing_after(change))
            if isinstance(change, ch.SignalTimingChange):  # what it asked for: that signal's timing, not the others'
                raised = {tls: v for tls, v in raised.items() if tls == change.intersection_id}
                notes = {change.intersection_id: notes.get(change.intersection_id, [])}
            below = timing_notes_warnings([st.by_id[tls] for tls in sorted(notes)], notes)
            # a configured clearance the step shows longer (4.5 s at 1 s steps runs 5 s), as a run's start says it
            below += clearance_rounding_warnings(
                [dataclasses.replace(st.by_id[tls], timing=timings[tls]) for tls in sorted(notes) if tls in timings],
                self.cfg.timing, self.cfg.step_length_s)
        elif isinstance(change, ch.AlertRulesChange):
            for event in self.alerts.apply_operator_rules(change.rules, self.reported_figures(), at_s=st.t,
                                                          why=f"alert rules changed by {who}"):
                self._emit_alert(event)  # cleared with its rule: the store and the stream must see it end
            sent = {r.get("name") for r in change.rules}
            rules = [r for r in self.alerts.rules if r.name in sent]
        entry = ch.record(change, who, "applied")
        if isinstance(change, ch.AlertRulesChange):
            entry["reason"] = self._unseen_figures(rules)
        if outlook is not None:  # "applied": in force; the reason says when its phase is green, and what ends it
            entry["reason"] = "; ".join(outlook[0])
            entry["shield"] = outlook[1]
        if raised:  # what is in force differs from what was asked: the answer, the log and stderr say so
            entry["reason"] = raised_cycle_reason(raised)
            entry["in_force"] = {tls: {"cycle_max_s": bound_s} for tls, (bound_s, _) in sorted(raised.items())}
        if below:  # runs as given, and is said as `signalwise run` says it (docs/configuration.md, timing.all_red_s)
            entry["reason"] = "; ".join([entry["reason"], *below] if entry["reason"] else below)
        if raised or below:
            log.warning("%s change by %s: %s", change.kind, who, entry["reason"])
        if isinstance(change, ch.ShieldChange):
            self._say_shield_change(entry, moved, who, replayed)
        entry["sim_time_s"] = st.t
        if replayed is not None:
            # applied again at start: made by an earlier runtime of this corridor, by someone at another time
            entry.update(replayed=True, made_by=replayed.get("who"), made_at=replayed.get("at"))
            if replayed.get("field") not in (None, self.opts.field):
                entry["made_on_field"] = replayed["field"]
        self._log_change(entry, replayed is not None)
        return entry

    def _say_shield_change(self, entry: dict, moved: list[str], who: str, replayed: dict | None) -> None:
        """A shield change applied: its answer's `reason` and stderr (a warning) say what moved, old -> new, and who
        made it; a restart applying a stored one again says so, with who made it and when. It raises the
        `shield_changed` alert (info, until acknowledged), which the dashboard shows."""
        said = "; ".join(moved) or "nothing moved (the values in force)"
        entry["reason"] = f"shield settings changed: {said}"
        if replayed is not None:
            log.warning("shield change applied again at start from %s (made by %s at %s): %s", self.site_changes_file,
                        replayed.get("who"), replayed.get("at"), said)
        else:
            log.warning("shield change by %s: %s", who, said)
        if moved:
            self._shield_changes.append({"who": replayed.get("who") if replayed is not None else who,
                                         "at_s": self.stepper.t, "moved": said, "replayed": replayed is not None})

    #: changes that outlive the run: applied again when the runtime starts over (overrides expire instead)
    LASTING = ("timing", "signal_timing", "shield", "alerts", "controller")

    @property
    def site_changes_file(self) -> Path:
        """Where this corridor's lasting changes are kept across restarts: beside its run directories."""
        from .lasting import site_changes_file

        return site_changes_file(self.run_dir.parent, self.cfg.scenario_label)

    def _replay_site_changes(self) -> None:
        """Apply again, in order, the lasting changes an earlier runtime of this corridor made.

        A stored controller switch is not applied when the command line named the controller (it wins), nor when
        it names a `py:` module other than the run's own controller (`lasting.stored_module_refusal`: checked
        before anything imports it), and one of every signal that cannot run here any more (its model gone, a
        controller the run's state cannot hold) leaves the run on the controller it started with; each is logged
        as refused, with why. The run may have started with the controller the file leaves in force
        (`lasting.stored_controller`, chosen before the run was named): the signals already running it are not
        handed a new one at their first green."""
        path = self.site_changes_file
        if not path.is_file():
            return
        from pydantic import TypeAdapter

        from .lasting import held_back_reason, read_changes, stored_module_refusal

        adapter = TypeAdapter(ch.Change)
        entries, problems = read_changes(path)  # a torn line (a power cut) is skipped; the lines after it are read
        for problem in problems:
            log.warning("%s", problem)
        self.site_file_problems = problems
        for n, entry in entries:
            line = json.dumps(entry)
            try:
                change = adapter.validate_python(entry["payload"])
            except Exception as exc:  # noqa: BLE001 - one bad stored line must not keep the corridor from starting
                problem = f"{path}:{n}: skipped, not a change this version can apply ({_first_error(exc)})"
                log.warning("%s", problem)
                self.site_file_problems.append(problem)
                continue
            if isinstance(change, ch.ControllerChange) and self.command_controller is not None:
                self._log_replay_refused(change, entry, held_back_reason(self.command_controller))
                continue
            try:
                if isinstance(change, ch.ControllerChange):  # before anything imports it
                    why = stored_module_refusal(change.controller, self.cfg.controller)
                    if why:
                        raise ch.ChangeRefused(why)
                if isinstance(change, ch.ControllerChange) and change.controller_options and self.resolve_options:
                    change = change.model_copy(update={"controller_options": self.resolve_options([change.controller])})
                self._validate(change)
                self._apply(change, "restart", replayed=entry)
            except Exception as exc:  # noqa: BLE001 - nor one stored change that fails
                log.warning("a stored change could not be applied again (%s): %s", exc, line[:200])
                self._log_replay_refused(change, entry, str(exc).strip().splitlines()[-1] if str(exc).strip()
                                         else type(exc).__name__)
                if isinstance(change, ch.ControllerChange) and change.intersections is None:
                    # it would have replaced every signal's controller: the run keeps the one it started with
                    self._pending_controllers.clear()
                    self.signal_specs = {}
                    self.controller_spec = self.cfg.controller
        # a signal left on the controller it already runs keeps its controller (and what it learned so far)
        for tls in list(self._pending_controllers):
            if self.signal_specs.get(tls, self.controller_spec) == self.cfg.controller:
                del self._pending_controllers[tls]

    def _start_on_replayed_timing(self) -> None:
        """Before the first tick: each signal starts on the timing the replayed changes left (a fresh run has no
        green in progress to finish, so its first green and the clearance that ends it run the latest revision)."""
        for sh in self.stepper.shields.values():
            sh.start_on_pending()

    def _log_replay_refused(self, change, entry: dict, reason: str) -> None:
        """A stored change not applied at start: in the run's change log (not the corridor's file), with why."""
        logged = ch.record(change, "restart", "refused", reason)
        logged.update(sim_time_s=self.stepper.t, replayed=True, made_by=entry.get("who"), made_at=entry.get("at"))
        self._log_change(logged, replayed=True)

    def _ctx_for(self, change) -> ControlContext:
        """The controllers' context, with the options a change brings (a deploy: the registry's models), and
        for a bare `ql` on a built-in scenario the model shipped for it, as `--controller ql` runs it."""
        extra = {**self._shipped_model(getattr(change, "controller", "")),
                 **(getattr(change, "controller_options", None) or {})}
        if not extra:
            return self._ctx
        return dataclasses.replace(self._ctx, options={**self._ctx.options, **extra})

    def _shipped_model(self, spec: str) -> dict:
        """`{"model": path}` when `spec` is a bare `ql` with no model in the run's options and the run's
        scenario has a shipped model; else nothing (a learned controller never runs a model nobody chose)."""
        if spec != "ql":
            return {}
        from ...control.learning.shipped import shipped_model_path, uses_shipped_model

        cfg = self.cfg
        path = shipped_model_path(cfg.scenario if cfg.sumocfg is None and cfg.net is None else None)
        return {"model": str(path)} if path is not None and uses_shipped_model(spec, self._ctx.options) else {}

    def _log_change(self, entry: dict, replayed: bool = False) -> None:
        # strict JSON, in every log alike: a NaN a refused body held is the text "NaN" (a bare NaN is no JSON, and
        # jq, JSON.parse and PostgreSQL's json refuse the line); the entry itself too, so the list says the same
        entry.update(ch.json_safe(entry))
        line = json.dumps(entry, allow_nan=False)  # first: an entry that cannot be written is in none of the logs
        self.changes.append(entry)
        fh = self._files.get("changes")
        if fh is not None:
            fh.write(line + "\n")
            fh.flush()
            self.changes_logged += 1
        if not replayed and entry.get("result") == "applied" and entry.get("kind") in self.LASTING:
            from .lasting import append_change

            # the field mode it was made on: a run of the other mode replaying it says so
            append_change(self.site_changes_file, {**entry, "field": self.opts.field})
        if self.store is not None and hasattr(self.store, "put_change"):
            self.store.put_change(entry)

    def refuse(self, change, who: str, reason: str) -> None:
        """Record a refused change (the API calls this when validation fails)."""
        self._log_refusal(ch.record(change, who, "refused", reason))

    def refuse_request(self, kind: str, payload, who: str, reason: str) -> None:
        """Record a request refused before it became a change (its body failed the route's check, or the
        registry knew no such version): the change log holds every attempt, not only the well-formed ones. The
        payload as JSON has it (a body's bytes as text), so the list, the file and the store hold the same."""
        payload = json.loads(json.dumps(payload, default=_as_text))
        self._log_refusal({"at": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "who": who,
                           "kind": kind, "payload": payload, "result": "refused", "reason": reason})

    def _log_refusal(self, entry: dict) -> None:
        entry["sim_time_s"] = self.stepper.t if self.stepper is not None else None
        if self.ended:  # its files and store are closed: the answer and GET /changes say it
            self.changes.append(entry)
            return
        self._log_change(entry)

    def timing_in_force(self) -> tuple[int, object]:
        """(timing revision, the run configuration's `timing`) in force, one consistent pair from any thread."""
        return self._timing_in_force or (0, self.cfg.timing)

    def _timing_after(self, change) -> object:
        """The `timing` a timing change would put in force, made from the one in force now and validated as a run
        configuration is (refused whole, with the reason). The loop calls it again when it applies the change,
        one change at a time, so a signal's values merge into the map in force then, not the map read before.

        A whole change's keys replace those in force (its `per_intersection` every signal's own values); one
        signal's change replaces only that signal's own values."""
        st = self.stepper
        now = self.cfg.timing.model_dump()
        if isinstance(change, ch.SignalTimingChange):
            tls = change.intersection_id
            if tls not in st.by_id:
                raise ch.UnknownIntersection(f"unknown intersection {tls!r}; signals: {', '.join(sorted(st.by_id))}")
            own = dict(now["per_intersection"])
            if change.timing is None:
                if tls not in own:
                    having = ", ".join(sorted(own)) or "none"
                    raise ch.ChangeRefused(f"{tls} has no timing of its own to remove: it runs the defaults "
                                           f"(signals with their own: {having})")
                del own[tls]
            elif not change.timing:  # {} is not "back on the defaults" (that is null): a form sent by mistake
                raise ch.ChangeRefused(f"timing is empty: give {tls}'s own values, or remove them (DELETE) to put "
                                       "it back on the defaults")
            else:
                own[tls] = change.timing
            value = {**now, "per_intersection": own}
        else:
            profile = self.cfg.timing.profile
            if "profile" in change.timing and change.timing["profile"] != profile:
                # the profile decides which safety rules hold (safety: ITE clearances, pedestrian intervals,
                # bounds): leaving it at run time would let 2 s yellows and no all-red through
                raise ch.ChangeRefused(f"timing.profile cannot change while the run goes on: it runs {profile!r}, "
                                       f"whose rules hold for the whole run; start a run under that profile "
                                       f"(timing: {{profile: {change.timing['profile']}}} in its --config file) "
                                       "for its rules")
            value = {**now, **change.timing}
        _profile_bounds_first(value, self.cfg.timing.profile)
        try:
            timing = RunConfig.model_validate({**self.cfg.model_dump(), "timing": value}).timing
        except Exception as exc:  # noqa: BLE001
            raise ch.ChangeRefused(_first_error(exc)) from None
        unknown = sorted(set(timing.per_intersection) - set(st.by_id))
        if unknown:
            raise ch.ChangeRefused(f"timing.per_intersection names {', '.join(unknown)}, not a signal here")
        # a pedestrian clearance shorter than a signal's crossings need is refused at run time as at start
        defaults = timing_defaults(self.cfg.model_copy(update={"timing": timing}))
        for tls, inter in st.by_id.items():
            short = short_ped_clearance(tls, inter.crosswalks, defaults, timing.per_intersection.get(tls) or {})
            if short is not None:
                raise ch.ChangeRefused(short)
            # a phase's own values name a phase of the signal, refused before any signal takes them
            unknown = unknown_phase_timing(tls, inter.phases, timing.per_intersection.get(tls) or {})
            if unknown is not None:
                raise ch.ChangeRefused(unknown)
        self._refuse_below_floors(timing, defaults)
        return timing

    def _refuse_below_floors(self, timing, defaults) -> None:
        """Under the safety profile, a yellow or red clearance below ITE's for a signal's geometry is not applied at
        run time (`loosening.clearance_refusal`): refused whole, naming each signal, phase, value and minimum. A
        run's --config may set it (it runs as given and is said), read when the run starts; a clearance the run
        started with below ITE's may be kept, not shortened further."""
        from ...sim.signal_model import retimed, safety_rules
        from ..profiles import SAFETY

        if timing.profile != SAFETY or not safety_rules(defaults):
            return

        st = self.stepper
        said = []
        for tls in sorted(self._clearance_floors):
            inter = st.by_id[tls]
            why = clearance_refusal(tls, inter.phases, retimed(inter, defaults, timing.per_intersection.get(tls), []),
                                    self._clearance_floors[tls])
            if why:
                said.append(why)
        if said:
            raise ch.ChangeRefused(f"timing: {'; '.join(said)} ({ITE_SOURCE}): under {_LIVE_PROFILE}, a "
                                   f"clearance below ITE's is not applied at run time; {CONFIG_INSTEAD}")

    def _check_based_on(self, change) -> None:
        """Refuse a change made from a timing that is no longer in force (optimistic concurrency): a whole change
        when any timing change came since, one signal's when that signal's own values changed since."""
        read = change.based_on_revision
        if read is None:
            return
        now = self.timing_revision
        if isinstance(change, ch.SignalTimingChange):
            changed_at = self._own_timing_revision.get(change.intersection_id, 0)
            if read <= now and changed_at <= read:
                return
            why = (f"{change.intersection_id}'s own timing was changed at revision {changed_at}, after revision "
                   f"{read}" if read <= now else f"revision {read} has not been made")
        else:
            if read == now:
                return
            why = f"the timing was changed after revision {read}" if read < now else f"revision {read} has not been made"
        raise ch.StaleTimingRevision(f"{why} (timing revision {now} in force); nothing was applied: read the "
                                     "timing in force again (GET /api/v1/live/config) and send the change from it", now)

    def _retime(self, timing) -> tuple[dict[str, tuple[float, str]], dict[str, list[str]], dict[str, object]]:
        """New timing (validated: `_timing_after`), read per signal from the field, applied at each next green.
        Returns the signals whose cycle bound in force is longer than the one asked, each signal's notes on
        its clearances below ITE, and each signal's new timing (`_retime_shields`)."""
        before = self.cfg.timing.per_intersection
        self.cfg = self.stepper.cfg = self.cfg.model_copy(update={"timing": timing})
        self.timing_revision += 1
        for tls in set(before) | set(timing.per_intersection):
            if before.get(tls) != timing.per_intersection.get(tls):
                self._own_timing_revision[tls] = self.timing_revision
        self._timing_in_force = (self.timing_revision, timing)
        return self._retime_shields(new_revision=True)

    def _retime_shields(self, new_revision: bool = False) -> tuple[dict[str, tuple[float, str]],
                                                                     dict[str, list[str]], dict[str, object]]:
        """Every shield takes the run configuration's timing at its next green. A new revision is written into
        signal_model.json first, so the 131 that names it is never in the log before its timing is on disk.

        Returns, per signal whose phases' minimum greens and clearances need a longer cycle than the `cycle_max_s`
        asked, the bound in force and the derivation's note saying why (`CYCLE_RAISED_NOTE`); and per signal, its
        notes on a configured yellow or red clearance shorter than ITE's for its geometry (`below_ite_notes`, as
        the signal's notes have them when a run starts with that timing), on walk + pedestrian clearance below
        MUTCD 4E.06's guidance and on a maximum green raised to the minimum (`SAID_TIMING_NOTES`); and per
        signal, the `Timing` it takes."""
        st = self.stepper
        from ...sim.signal_model import CYCLE_RAISED_NOTE, retimed
        defaults = timing_defaults(self.cfg)
        own = self.cfg.timing.per_intersection
        notes: dict[str, list[str]] = {tls: [] for tls in st.shields}
        timings = {tls: retimed(st.by_id[tls], defaults, own.get(tls), notes[tls]) for tls in st.shields}
        raised = {tls: (timings[tls].cycle_max_s, note.removeprefix(CYCLE_RAISED_NOTE))
                  for tls, said in notes.items() for note in said if note.startswith(CYCLE_RAISED_NOTE)}
        below = {tls: below_ite_notes(tls, st.by_id[tls].phases, st.by_id[tls].approach_speed_mps,
                                      st.by_id[tls].width_m, timings[tls], defaults, own.get(tls) or {})
                 + [n for n in notes[tls] if n.startswith((PED_GUIDANCE_NOTE, MAX_GREEN_RAISED_NOTE))]
                 for tls in st.shields}
        if new_revision:
            for tls, timing in timings.items():
                self._timing_revisions.setdefault(tls, []).append(dataclasses.asdict(timing))
            if self._files:  # opened: the run directory holds the model the audit reads
                self._write_signal_model()
        for tls, sh in st.shields.items():
            sh.retime(timings[tls], len(self._timing_revisions.get(tls, ())) or None)
        return raised, below, timings

    def _end_override(self, tls: str) -> None:
        ov = self.overrides.pop(tls, None)
        if ov is not None:
            self._pending_controllers.setdefault(tls, ov.inner)

    def _expire_overrides(self, t: float) -> None:
        for tls, ov in list(self.overrides.items()):
            ending = ov.ending(t)
            if ending is not None:  # override_served (a call whose phase went green) or override_expired
                self._end_override(tls)
                self._log_change({"at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                                  "who": "runtime", "kind": ending[0], "sim_time_s": t,
                                  "payload": {"intersection_id": tls, "override": ov.describe()},
                                  "result": "applied", "reason": ending[1]})

    def _swap_pending(self) -> None:
        """Deployed controllers take over at a safe point: while green, never mid-clearance."""
        st = self.stepper
        swapped = False
        plans: list[SignalEvent] = []
        for tls, ctrl in list(self._pending_controllers.items()):
            if tls in self.overrides and ctrl is not self.overrides[tls].inner:
                self.overrides[tls].inner = ctrl  # the override stays; the new controller follows it
                del self._pending_controllers[tls]
                continue
            if st.shields[tls].interval == "green":
                st.replace_controller(tls, ctrl)
                self._controller_since_s[tls] = st.t
                del self._pending_controllers[tls]
                swapped = True
                plans.extend(self._pattern_change(tls, ctrl, st.t))
        if plans:  # the coordination pattern changes with the controller, as it takes over
            self._write_events(plans)
        if swapped:
            self._register_zones_again()

    def _pattern_change(self, tls: str, controller, t: float) -> list[SignalEvent]:
        """The events of the coordination pattern `controller` runs at signal `tls` from `t` (131, 132, 133), when it
        is not the pattern the log names there now; none otherwise. A controller that runs no pattern (not
        `coordinated`) is the Free pattern at a signal whose log named one, and nothing at a signal never
        coordinated. An override is never passed here: it holds a phase within the pattern in force, which a field
        controller does not log as a pattern change; the controller after it is (`_swap_pending`)."""
        pattern = controller_pattern(controller)
        logged = self._patterns.get(tls)
        if pattern is None:
            if logged is None:
                return []
            pattern = FREE
        if pattern == logged:
            return []
        self._patterns[tls] = pattern
        self._say_pattern(tls, controller, pattern, t)
        return pattern_events(tls, pattern, t)

    def _say_pattern(self, tls: str, controller, pattern: Pattern, t: float) -> None:
        """Keep signal `tls`'s plan, or why it runs Free, as `signalwise run -c coordinated` gives them
        (`coordination_report`: metrics.json's `coordination` and its warning), and say a Free one in the log, as
        that run says it in its warnings: run.json and the status give `coordination`. A signal `coordinated` cannot
        coordinate gets the batch run's reason; one whose controller is no longer `coordinated`, that."""
        if pattern != FREE:
            self._coordination[tls] = controller.plan.as_dict()
        elif controller_pattern(controller) == FREE:  # `coordinated`, with no plan the signal's splits can hold
            plans, said = coordination_report([self.stepper.by_id[tls]], self.cfg.step_length_s)
            self._coordination[tls] = plans[tls]
            log.warning("%s", said[0])
        else:
            why = f"its controller {self.controller_at(tls)!r} runs no coordination pattern"
            self._coordination[tls] = {"not_coordinated": why}
            log.warning("signal %r runs the Free pattern (254) from t=%.0f s: %s", tls, t, why)
        if self._files:  # opened: run.json says it at once, as it names the controllers in force
            self._write_run_json()

    def _plan_cycle(self, t: float) -> None:
        """Re-plan each signal's Webster fallback from its stop-bar counts (when the field measures them)."""
        st = self.stepper
        from ...core.types import ObservationNeed

        for tls, planner in self._planners.items():
            inter = st.by_id[tls]
            stopbars = tuple(d.id for d in inter.detectors if d.kind == "stopbar")
            if not stopbars or t < planner.needs_counts_at:
                continue
            obs = st.source.observe(inter, t, ObservationNeed(inter.in_lanes, "counts", (), stopbars))
            planner.decide(dataclasses.replace(obs, signal=st.shields[tls].status(t)))
            fb = st.shields[tls].fallback
            if hasattr(fb, "set_plan"):
                fb.set_plan(planner.green_s)

    # -- readers -------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def model_paths(self) -> dict[str, list[str]]:
        """Intersection -> the model directories its controllers run or will take at the next green (and
        the one an override holds back): what removing a registry version must not delete under it."""
        st = self.stepper
        held = list(st.controllers.items()) if st is not None else []
        held += list(self._pending_controllers.items()) + [(i, ov.inner) for i, ov in list(self.overrides.items())]
        out: dict[str, list[str]] = {}
        for inter, ctrl in held:
            path = getattr(ctrl, "model_path", None)
            if path:
                out.setdefault(inter, []).append(path)
        return out

    def _publish_snapshot(self) -> None:
        st = self.stepper
        if st is None:
            return
        self._seq += 1
        t = st.t
        lanes = [lane for i in st.intersections for lane in i.in_lanes]
        halting = self._halting_by_lane(lanes)
        emergency = self._emergency_approaches()
        views = []
        total_queue = 0
        fallback = 0
        observed = False  # any lane's queue known: else the network's queue is unknown too, not 0
        for inter in st.intersections:
            sh = st.shields[inter.id]
            # an approach none of whose lanes has a queue known (a feed run's silent detectors, a field that just
            # died) is None, "no data", never 0, which would read as an empty road
            per_approach: dict[str, int | None] = {}
            for lane in inter.in_lanes:
                d = st.approach_direction.get(lane, "?")
                q = halting.get(lane)
                per_approach[d] = per_approach.get(d) if q is None else (per_approach.get(d) or 0) + q
            known = [q for q in per_approach.values() if q is not None]
            observed = observed or bool(known)
            total_queue += sum(known)
            fallback += sh.in_fallback
            ctrl = st.controllers[inter.id]
            ov = self.overrides.get(inter.id)
            evs = tuple((e.vehicle_id, e.in_lane, st.approach_direction.get(e.in_lane, "?"), round(e.distance_m, 1))
                        for e in emergency.get(inter.id, ()))
            if sh.proposal is not None:  # the shield lets a proposal go once its phase is served: remember it
                self._confidence[inter.id] = round(float(sh.proposal.confidence), 3)
            views.append(SignalView(inter.id, sh.phase + 1, sh.interval, round(t - sh.interval_start_s, 3),
                                    None if sh.next_phase is None else sh.next_phase + 1, sh.state, sh.preempt_active,
                                    sh.in_fallback, getattr(ov.inner if ov else ctrl, "name", "?"),
                                    ov.describe() if ov else None, tuple(sorted(per_approach.items())),
                                    getattr(ov.inner if ov else ctrl, "model_path", None),
                                    round(sh.fallback_fraction, 4), self._controller_since_s.get(inter.id),
                                    round(t - sh.green_start_s, 3), self._confidence.get(inter.id), evs))
        n = max(1, len(views))
        self._snapshot = Snapshot(self._seq, t, dt.datetime.now().astimezone().isoformat(timespec="milliseconds"),
                                  self.running, self.cfg.scenario_label, self.controller_spec, self.opts.speed,
                                  tuple(views), total_queue if observed else None, round(fallback / n, 4),
                                  len(self.alerts.active()) if self.alerts is not None else 0, self._last_interval,
                                  self._store_status() if self.store is not None else None,
                                  self._controller_fault_counts())
        if self.publish is not None:
            self.publish("snapshot", self._snapshot.as_dict())

    def _controller_fault_counts(self) -> dict:
        """The snapshot's `controller_faults`: decisions asked for, errors raised, proposals not followed as given."""
        faults = self.stepper.controller_faults
        return {"decisions": faults.decisions, "errors": faults.errors, "invalid_proposals": faults.invalid}

    def _emergency_approaches(self) -> dict:
        """Emergency vehicles within the preemption distance, as the loop's last step saw them (the
        simulator worker answers this tick's question from its cache)."""
        st = self.stepper
        try:
            if not st.source.emergency_active:
                return {}
            return st.source.emergency_approaches(st.by_id, st.cfg.shield.preempt_distance_m)
        except Exception:  # noqa: BLE001 - a field that just died has none; recovery follows
            return {}

    def _halting_by_lane(self, lanes: list[str]) -> dict[str, int]:
        backend = self.field.backend
        try:
            if hasattr(backend, "halting_by_lane"):
                return backend.halting_by_lane(lanes)
            return {lane: backend.halting_veh((lane,)) for lane in lanes}
        except Exception:  # noqa: BLE001 - a field that just died has no queues; recovery follows
            return {}

    def _unseen_figures(self, rules) -> str:
        """What an applied rule set should know: the rules whose figure this run does not report (a typo, or a
        camera not added yet), which wait silently until it does. '' when every rule reads a figure."""
        from .alerts import RATE_SUFFIX

        try:
            figures = self.metrics()
        except Exception:  # noqa: BLE001 - before the first tick there may be nothing to read yet
            return ""
        # a wildcard (`queue_spillback.*`) covers figures that come and go (signals, cameras): not judged here
        unseen = sorted({r.metric for r in rules if not r.wildcard and r.metric not in figures
                         and not (r.metric.endswith(RATE_SUFFIX) and r.metric.removesuffix(RATE_SUFFIX) in figures)})
        if not unseen:
            return ""
        return (f"applied; no figure named {', '.join(unseen)} is reported now, so those rules wait for one "
                f"(figures: {', '.join(sorted(figures)[:12])}{', …' if len(figures) > 12 else ''})")

    def metrics(self) -> dict[str, float]:
        """The flat figures alert rules read (see `alerts.BUILTIN_RULES`)."""
        st = self.stepper
        snap = self._snapshot
        prof = self.profiler.figures()
        out: dict[str, float] = {
            "fallback_share": snap.fallback_share,
            "stale_sources": float(len(self.stale_signals())),
            "decision_latency_p99_ms": prof.get("decision_path", {}).get("p99_ms") or 0.0,
            "pacing_lateness_p99_ms": prof.get("lateness", {}).get("p99_ms") or 0.0,
            "simulator_restarts": float(self.restarts),
            "shield_interventions": float(self._interventions_total),
            # counts that only grow (a recovery does not rewind them): their alerts wait for an acknowledgement
            "controller_errors": float(st.controller_faults.errors),
            "controller_invalid_proposals": float(st.controller_faults.invalid),
        }
        for inter in st.intersections:
            adv = [d for d in inter.detectors if d.kind == "advance"]
            view = next((v for v in snap.signals if v.intersection_id == inter.id), None)
            if adv and view is not None:
                reach = min(d.distance_to_stopbar_m for d in adv) / 7.5  # vehicles standing to the advance loop
                lanes = max(1, len({d.lane for d in adv}))
                known = [q for _a, q in view.queue_veh if q is not None]
                if known:  # no queue known: no figure (an alert stays as it was), not an empty approach
                    out[f"queue_spillback.{inter.id}"] = float(sum(known) / lanes >= reach)
        if self.store is not None and hasattr(self.store, "stats"):
            stats = self.store.stats()
            out["store_buffer_overflow"] = float(stats.get("overflow_rows", 0))
            out["store_unavailable_s"] = float(stats.get("unavailable_s") or 0.0)
            out["store_buffered_rows"] = float(stats.get("queued", 0) + stats.get("buffered_on_disk", 0))
        out["previous_run_died"] = float(bool(self.dead_runs))
        out["shield_changes"] = float(len(self._shield_changes))  # grows only: its alert waits for an acknowledgement
        out.update(self.preemptions.figures(st.t))
        mqtt = getattr(self.feed, "mqtt", None)  # `--mqtt`: the feed's broker connection (`mqtt.MqttFeed`)
        if mqtt is not None:
            out.update(mqtt.figures())
        try:
            from .alerts import process_figures

            out.update(process_figures())
        except ImportError:
            pass
        for name, figures in list(self.figure_sources.items()):
            try:
                out.update(figures())
            except Exception:  # noqa: BLE001 - a broken source of figures must not stop the loop's alerts
                log.debug("figures of %s not read", name, exc_info=True)
        return out

    def reported_figures(self) -> list[str]:
        """The figures reported now, against which an operator's alert rules are checked, and each signal's that
        comes with the first snapshot (a change replayed at start is checked before there is one)."""
        spill = [f"queue_spillback.{i.id}" for i in self.stepper.intersections
                 if any(d.kind == "advance" for d in i.detectors)]
        try:
            return [*self.metrics(), *spill]
        except Exception:  # noqa: BLE001 - before the first tick there may be nothing to read yet
            return spill

    def stale_signals(self) -> dict[str, str]:
        """The signals whose data are stale or unhealthy now, and why: what their shield refused a proposal for,
        and, in a feed-driven run (`--field none`), every signal whose detectors the feed has gone silent on or
        sends refused messages for, checked at every reading whatever its controller reads. A `fixed` plan or an
        operator's hold asks for no data, so its shield never sees the feed die, and a controller that decides
        every few seconds sees it only at its next decision: the detectors' loss (and the ATSPM data with them)
        is an alert all the same, as soon as the feed is older than `max_observation_age_s` (or has sent nothing
        yet: a signal whose detectors never spoke is unhealthy from the first tick; the alert's hold comes on top)."""
        st = self.stepper
        stale = {tls: sh.data_fault for tls, sh in st.shields.items() if sh.data_fault is not None}
        feed = self.feed
        if self.opts.field != "none" or feed is None or not hasattr(feed, "source_health"):
            return stale
        max_age_s = self.cfg.shield.max_observation_age_s
        reports = getattr(feed, "reports", None)
        for inter in st.intersections:
            if inter.id in stale or not inter.detectors:
                continue
            watched = self.cameras is not None and self.cameras.cameras_of(inter.id)
            if watched and (reports is None or not reports(inter.id)):
                continue  # a camera is its source, and the feed never spoke for it (`cameras.FeedsAndCameras`)
            fault = Observation(st.t, inter.id, {}, sources=(feed.source_health(inter.id, st.t),)).data_fault(max_age_s)
            if fault is not None:
                stale[inter.id] = fault
        return stale

    def _runs_meanwhile(self, tls: str) -> str:
        """What a signal whose data are stale runs on meanwhile, as its `stale_data` alert says it: its fallback
        plan only when its shield is on it; an operator's hold or call, or a plan that reads no data (`fixed`,
        `coordinated`), keeps running, and another controller falls back at its next decision."""
        st = self.stepper
        shield = st.shields.get(tls)
        if shield is not None and shield.preempt_active:
            return "a preemption holds it"
        if shield is not None and shield.in_fallback:
            return "its shield is on the fallback plan"
        override = self.overrides.get(tls)
        if override is not None:
            return f"it runs the operator's {override.describe()}, which reads no data"
        controller = st.controllers.get(tls)
        if getattr(controller, "observation", None) == "none":
            return f"its {getattr(controller, 'name', 'plan')} controller reads no data and keeps running"
        return "its controller falls back to the Webster plan at its next decision"

    def _figure_subjects(self) -> dict[str, dict[str, str]]:
        """What the counting figures count, for their alerts to name: the signals whose data are stale and why,
        the signals on their fallback plan, the MQTT broker not connected and why."""
        stale = {tls: f"{why}; {self._runs_meanwhile(tls)}" for tls, why in self.stale_signals().items()}
        fallback = {v.intersection_id: "" for v in self._snapshot.signals if v.fallback} if self._snapshot else {}
        mqtt = getattr(self.feed, "mqtt", None)
        store = {}
        if self.store is not None and hasattr(self.store, "stats"):
            store = {"store_unavailable_s": {getattr(self.store, "shown_url", "the database"):
                                             self.store.stats().get("last_error") or ""}}
        return {"stale_sources": stale, "fallback_share": fallback, **store, **self._fault_subjects(),
                "previous_run_died": {d.run_dir.name: d.describe() for d in self.dead_runs},
                "shield_changes": self._shield_change_subjects(),
                **self.preemptions.subjects(self.stepper.t),
                **(mqtt.figure_subjects() if mqtt is not None else {})}

    def _shield_change_subjects(self) -> dict[str, str]:
        """The latest shield change, for its alert to name: who made it, when, and what moved (old -> new)."""
        if not self._shield_changes:
            return {}
        c = self._shield_changes[-1]
        again = " (applied again at start)" if c["replayed"] else ""
        return {str(c["who"]): f"{c['moved']} at t={c['at_s']:.0f} s{again}"}

    def preemptions_in_force(self) -> list[str]:
        """The preemptions on now, a line each: at the end of a run, those its log leaves without a 104 (its end
        message and run.json's `preemptions_in_force` say them)."""
        return self.preemptions.in_force(self.stepper.t) if self.stepper is not None else []

    def shield_floors(self) -> dict[str, float]:
        """The lowest value a change at run time may give each numeric shield setting `loosening.SHIELD_LIMITS`
        bounds (`confidence_threshold`): what `GET /api/v1/live/config`'s `limits` say."""
        return {name: float(live_bound(limit, getattr(self._shield_started, name), looser))
                for name, (limit, looser, _why) in SHIELD_LIMITS.items()
                if not isinstance(limit, bool) and looser == LOWER}  # a maximum is the configuration's own `le`

    def _fault_subjects(self) -> dict[str, dict[str, str]]:
        """The signals the controller-fault figures count at, each with its most frequent kind there (its type,
        message, file and line), for the alert to name where and what."""
        from ..controller_faults import RAISED

        out: dict[str, dict[str, str]] = {"controller_errors": {}, "controller_invalid_proposals": {}}
        for fault in sorted(self.stepper.controller_faults.kinds.values(), key=lambda f: -f.count):
            figure = out["controller_errors" if fault.kind == RAISED else "controller_invalid_proposals"]
            for tls in fault.signals:
                figure.setdefault(tls, fault.text)
        return out

    def _evaluate_alerts(self, t: float) -> None:
        # rules hold "for N seconds" of wall time: at --speed max a simulated minute is a blink; alerts are
        # stamped with the run's simulated seconds `t`, as its changes and interventions are
        for event in self.alerts.evaluate(time.monotonic(), self.metrics(), run_time_s=t,
                                          subjects=self._figure_subjects()):
            self._emit_alert(event)

    def _emit_alert(self, event) -> dict:
        """An alert raised, cleared or acknowledged, to the store and the `alert` stream; its row."""
        row = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(event)
        fh = self._files.get("alerts")
        if fh is not None:
            try:
                fh.write(json.dumps(row, default=str) + "\n")
                fh.flush()
            except ValueError:  # closed by the run's end meanwhile (an acknowledgement from the API)
                pass
        if self.store is not None and hasattr(self.store, "put_alert"):
            self.store.put_alert(row)
        if self.publish is not None:
            self.publish("alert", row)
        return row

    def acknowledge_alert(self, alert_id: str, who: str):  # noqa: ANN201 - an AlertEvent
        """`who` acknowledges an alert (KeyError, `AlreadyAcknowledged` as the engine raises them). The alert as it
        is now, acknowledged and perhaps cleared with it (`until_acknowledged`), goes to the store and the `alert`
        stream as a raise or a clear does: a console following the stream, or the database, kept it active."""
        event = self.alerts.acknowledge(alert_id, who, at_s=self.stepper.t if self.stepper is not None else None)
        self._emit_alert(event)
        return event

    def controller_at(self, tls: str) -> str:
        """The controller spec in force at signal `tls` (the run's, unless a change switched that signal)."""
        return self.signal_specs.get(tls, self.controller_spec)

    def status(self) -> dict:
        st = self.stepper
        backend = self.field.backend if self.field is not None else None
        return {"running": self.running, "status": self.status_text, "scenario": self.cfg.scenario_label,
                "controller": self.controller_spec, "signal_controllers": dict(sorted(self.signal_specs.items())),
                "sim_time_s": st.t if st else None, "speed": self.opts.speed, "step_length_s": self.cfg.step_length_s,
                "sim_pid": getattr(backend, "pid", None) if self.opts.field == "sumo" else None,
                "field": self.opts.field, "sink": self.opts.sink, "restarts": self.restarts,
                "last_recovery_s": self.last_recovery_s, "run_dir": str(self.run_dir), "store": self._store_status(),
                # a copy first: the loop starts and ends overrides while the API reads (a copy is one step)
                "overrides": {k: v.describe() for k, v in list(self.overrides.items())},
                # a switch applied takes over at the signal's next green, never mid-clearance (`_swap_pending`)
                "pending_controllers": {tls: self.controller_at(tls) for tls in sorted(self._pending_controllers)},
                # each signal whose log names a pattern: its plan, or why it runs Free (`_say_pattern`); a copy
                "coordination": dict(sorted(list(self._coordination.items()))),
                "feeds": self._feeds_status(), "alerts_webhook": self._webhook_status()}

    def _store_status(self) -> dict | None:
        """With `--db`: while the run goes, the writer's figures (rows buffered, whether the database takes writes
        and for how long it has not); once ended, what was stored and what still waits (`store_summary`)."""
        if self.store_summary is not None or self.store is None or not hasattr(self.store, "stats"):
            return self.store_summary
        s = self.store.stats()
        return {"database": getattr(self.store, "shown_url", None), "written": s.get("written"),
                "buffered_rows": s.get("queued", 0) + s.get("buffered_on_disk", 0),
                "buffered_on_disk": s.get("buffered_on_disk"), "db_ok": s.get("db_ok"),
                "unavailable_s": s.get("unavailable_s"), "overflow_rows": s.get("overflow_rows"),
                "last_error": s.get("last_error"), "last_error_at": s.get("last_error_at"),
                "previous_error": s.get("previous_error"), "previous_error_at": s.get("previous_error_at"),
                "recovered_at": s.get("recovered_at"), "rejected_rows": s.get("rejected_rows"),
                "last_rejection": s.get("last_rejection"), "buffer_dir": str(getattr(self.store, "buffer_dir", ""))}

    def _feeds_status(self) -> dict:
        """The detector feed's inputs (a `--field none` run): the MQTT broker's connection, and the messages
        taken and refused (by code), so an operator sees a broker away in the status, not only in an alert or a
        gauge; and of those taken, the repeats, count corrections and late messages, so a gateway that resends,
        corrects or buffers is seen without reading the logs. `preempt`: the preemption input's calls (any run)."""
        calls = {"preempt": self.preempt.stats()} if self.preempt is not None else {}
        if self.feed is None:
            return calls
        mqtt = getattr(self.feed, "mqtt", None)
        taken = self.feed.stats()
        last = taken.get("last_rejection") or {}
        out = {"detectors": {"accepted": taken.get("accepted"), "rejected": taken.get("rejected"),
                             "last_rejected_reason": last.get("reason"),
                             **{k: taken.get(k) for k in ("rejected_by_code", "repeated_events", "repeated_counts",
                                                          "corrected_counts", "late_corrections", "late_messages",
                                                          "faulty_detectors")},
                             "repeated_state": self._alternation.repeated_state}}
        if mqtt is not None:
            s = mqtt.stats()
            out["mqtt"] = {k: s[k] for k in ("broker", "connected", "connection_error", "received",
                                             "messages_received", "accepted", "rejected", "retained", "queued",
                                             "dropped", "handled", "discarded_at_stop")}
        return out | calls

    def _webhook_status(self) -> dict | None:
        """The alert webhook's deliveries (sent, failed, dropped, queued, last_error), null without one: a receiver
        that is down shows here, not only in the log."""
        notifier = getattr(self.alerts, "on_raise", None) if self.alerts is not None else None
        return notifier.stats() | {"url": notifier.url} if hasattr(notifier, "stats") else None


def unsaved_reason(controller) -> str | None:  # noqa: ANN001 - any controller
    """Why `controller` cannot be part of the run's saved state, or None. The state a recovery from a lost
    simulator resumes from holds a deep copy of every controller (`LoopStepper.checkpoint`), and a controller
    holding a lock, a socket or a model server's client cannot be copied without its own `__deepcopy__`."""
    try:
        copy.deepcopy(controller)
    except Exception as exc:  # noqa: BLE001 - whatever the copy raised is the reason
        text = " ".join(str(exc).split())
        return (f"it cannot be saved with the run's state, which a recovery from a lost simulator resumes from "
                f"(copy.deepcopy: {type(exc).__name__}{': ' + text if text else ''}); give its class a "
                "__deepcopy__ (docs/controllers.md)")
    return None


#: the notes of a signal's timing a live run says as `signalwise run` warns of them, at start and in a timing
#: change's answer: a clearance below ITE's, walk + pedestrian clearance below MUTCD 4E.06's guidance, a maximum
#: green raised to the minimum (the value asked for is not what runs)
SAID_TIMING_NOTES = (BELOW_ITE_NOTE, PED_GUIDANCE_NOTE, MAX_GREEN_RAISED_NOTE)


def timing_notes_warnings(intersections, notes: Mapping[str, list[str]] | None = None) -> list[str]:
    """The warnings `signalwise run` gives (`timing_warnings`, `pedestrian_warnings`) on the notes of
    `SAID_TIMING_NOTES`: from each signal's own notes (the timing it started with), or from `notes` (a timing
    change's, by signal) where given. Nothing else of those warnings: only these lines."""
    notes = notes or {}
    kept = [dataclasses.replace(i, notes=tuple(n for n in notes.get(i.id, i.notes) if n.startswith(SAID_TIMING_NOTES)))
            for i in intersections]
    return timing_warnings(kept) + pedestrian_warnings(kept)


def raised_cycle_reason(raised: dict[str, tuple[float, str]]) -> str:
    """A timing change's answer when a signal's cycle bound in force is longer than the one asked: which, by how
    much and why. The change is applied (docs/live.md#timing-revisions): refusing it would leave the signal on
    its old timing, and the bound is what the minimums asked for take."""
    said = "; ".join(f"at {tls} ({note})" for tls, (_bound_s, note) in sorted(raised.items()))
    return (f"applied, with a longer cycle bound than asked {said}; a shorter bound needs shorter minimum greens "
            "or clearances")


def _as_text(value: object) -> str:
    """A value JSON cannot hold, as text: bytes decoded (what a client sent), anything else as `str` gives it."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _profile_bounds_first(value: dict, profile: str) -> None:
    """Refuse a timing value outside the safety profile's limits with that limit, before the run configuration's
    field bound, which is looser (yellow_s: at least 2 for every profile, at least 3 under safety). Checked first,
    the field's bound was said first: `yellow_s` 1 was refused as below 2, then 2.5 as below 3."""
    from types import SimpleNamespace

    from ..config import _check_safety
    from ..profiles import SAFETY, SAFETY_LIMITS

    if profile != SAFETY:
        return
    sections = [("", value)] + [(f"per_intersection.{tls}: ", own)
                                for tls, own in (value.get("per_intersection") or {}).items() if isinstance(own, dict)]
    sections += [(f"per_intersection.{tls}.phases.{number}: ", values)  # a phase's own maximum green too
                 for tls, own in (value.get("per_intersection") or {}).items() if isinstance(own, dict)
                 and isinstance(own.get("phases"), dict)
                 for number, values in own["phases"].items() if isinstance(values, dict)]
    for where, values in sections:
        numbers = {name: values.get(name) for name in SAFETY_LIMITS}
        numbers = {name: (v if isinstance(v, int | float) and not isinstance(v, bool) else None)
                   for name, v in numbers.items()}
        # the profile's switches too (`false` only: anything else the run configuration refuses as it is)
        switches = {name: where != "" or values.get(name) is not False for name in ("ped_intervals",
                                                                                     "protected_yellow")}
        try:  # said to an operator, who cannot leave the profile: where each limit comes from, no other profile
            _check_safety(SimpleNamespace(**numbers, **switches), where, live=True)
        except ValueError as exc:
            raise ch.ChangeRefused(f"timing: {exc}") from None


def _first_error(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    return str(exc).strip().splitlines()[-1]


def next_snapshot_due(due_s: float, wall_s: float, every_s: float) -> float:
    """When the snapshot after one published at `wall_s` (it was due at `due_s`) is due.

    Snapshots go out on loop ticks, which are coarse (at --speed 5, one every 0.2 s): counting from
    the tick would round every gap up to a tick (2 Hz became 1.7 Hz), so the cadence counts from when
    the snapshot was due. A loop running a whole gap late starts over from now instead of bursting."""
    return due_s + every_s if wall_s - due_s < every_s else wall_s + every_s
