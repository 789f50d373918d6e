"""SUMO as a signalwise backend: step, observe lanes and detectors, set signals.

libsumo by default (SUMO in-process, 10-40x faster than a socket); TraCI for
sumo-gui or a SUMO already running elsewhere. Both modules expose the same
API, so everything below takes `self.api` and does not care which it is.
libsumo allows one simulation per process: parallel runs use worker processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.types import (
    EmergencyApproach,
    Intersection,
    LaneState,
    Observation,
    ObservationNeed,
    SourceHealth,
)
from .additionals import ADDITIONAL_DIR, LoadedAdditionals, outputs_named, with_outputs_in
from .detectors import COUNT_PERIOD_S
from .heap_layout import fresh_heap, return_free_memory
from .lane_zones import ZONE_REACH_M, lane_zones, split_zones
from .signal_model import RefusedSignal, TimingDefaults, read_all
from .sumo_home import import_libsumo, sumo_binary

log = logging.getLogger("signalwise.sim")

#: what SUMO's own measures are called in an observation's source health
LANES_SOURCE, DETECTORS_SOURCE = "lanes", "detectors"
#: (lanes read, detectors read) -> the sources of an observation SUMO answers: its data are never old or unsound.
#: Built once (they are frozen): one per decision was a measurable part of the loop
_SOUND_SOURCES = {(lanes, dets): ((SourceHealth(LANES_SOURCE),) if lanes else ()) + (
    (SourceHealth(DETECTORS_SOURCE),) if dets else ()) for lanes in (False, True) for dets in (False, True)}
#: below this speed SUMO counts a vehicle as halting (`getLastStepHaltingNumber`, SUMO_const_haltingSpeed)
HALTING_SPEED_MPS = 0.1
#: how far outside 0..1 a lane occupancy SUMO reports may lie and still be taken as its bound: SUMO sums the
#: vehicles' shares of the lane in floating point, and a lane just emptied can come out at -2.8e-19. Anything
#: further out is left as it is, for the health check (`core.health`) to refuse
OCCUPANCY_ROUNDING = 1e-9


def sumo_occupancy(percent: float) -> float:
    """SUMO's lane occupancy (percent) as a share 0..1, a floating-point rounding past either bound
    (`OCCUPANCY_ROUNDING`) taken as the bound: a lane is not unhealthy for -2.8e-19."""
    share = percent / 100.0
    if 0.0 <= share <= 1.0:
        return share
    if -OCCUPANCY_ROUNDING < share < 0.0:
        return 0.0
    if 1.0 < share < 1.0 + OCCUPANCY_ROUNDING:
        return 1.0
    return share


def read_files(opts: SumoOptions) -> str:
    """The files SUMO was given, for a refusal whose own line names only an edge or a route."""
    named = [("net", [opts.net_file] if opts.net_file is not None else []), ("routes", list(opts.route_files)),
             ("additional", list(opts.additional_files))]
    return "; ".join(f"{what} {', '.join(str(f) for f in files)}" for what, files in named if files) or "no files"


class SimulationError(RuntimeError):
    """SUMO refused the input or died: one line saying what and where."""


class FieldLost(SimulationError):
    """The process running SUMO is gone (killed, crashed, or SUMO failed mid-step): start a new one."""


#: seconds (one try a second) a run waits for a SUMO started elsewhere to answer on its --remote-port
REMOTE_CONNECT_TRIES = 10


@dataclass
class SumoOptions:
    """How to start SUMO for one run."""

    sumocfg: Path | None = None
    net_file: Path | None = None
    route_files: Sequence[Path] = ()
    additional_files: Sequence[Path] = ()
    begin_s: float | None = None
    end_s: float | None = None
    seed: int = 1
    step_length_s: float = 1.0
    #: a vehicle stuck this long jumps ahead (SUMO's --time-to-teleport); -1 = never
    time_to_teleport_s: float = 300.0
    #: the demand times this (SUMO's --scale); 1 = the route files as written
    demand_scale: float = 1.0
    gui: bool = False
    remote_port: int | None = None  # connect to a SUMO started elsewhere with --remote-port
    #: with a SUMO shared by several clients (`--num-clients N`), this client's place in each step
    client_order: int | None = None
    extra_args: Sequence[str] = ()
    #: SUMO options by name (RunConfig.sumo_options), kept apart from `extra_args` so that a replay of the run,
    #: which sets its own extra arguments, starts SUMO with them too
    sumo_options: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)  # option name -> file
    #: where the outputs the additional files ask for (a detector's `file`, a calibrator's `output`, a timed
    #: event's `dest`) are written instead of beside those files (`sim.additionals`); None: `additional/` beside
    #: the run's own `outputs`, or, without any, a temporary directory removed when SUMO closes
    additional_outputs_dir: Path | None = None
    #: a directory of this SUMO's own inside that one, for another SUMO of the same run (its evidence replay, a live
    #: run's restart after a crash): SUMO empties every output file it opens, which would lose what the first wrote
    additional_outputs_subdir: str | None = None
    #: resume from a state written by `SumoBackend.save_state` (SUMO starts at the state's time; the
    #: signal states set through TraCI before the save are not restored: the caller sets them again)
    load_state: Path | None = None


#: sumo-gui options that make a `--gui` run start and end as one without it does: the run's evidence is
#: written when SUMO exits; a `sumo_options` entry of the same name wins
GUI_RUNS_ON_ITS_OWN = ("start", "quit-on-end")


def build_command(opts: SumoOptions) -> list[str]:
    cmd = [sumo_binary("sumo-gui" if opts.gui else "sumo")]
    if opts.sumocfg is not None:
        cmd += ["-c", str(opts.sumocfg)]
    if opts.net_file is not None:
        cmd += ["-n", str(opts.net_file)]
    if opts.route_files:
        cmd += ["-r", ",".join(str(p) for p in opts.route_files)]
    if opts.additional_files:
        # appended to any additional files the .sumocfg names
        cmd += ["--additional-files", ",".join(str(p) for p in opts.additional_files)]
    if opts.begin_s is not None:
        cmd += ["-b", f"{opts.begin_s:g}"]
    if opts.end_s is not None:
        cmd += ["-e", f"{opts.end_s:g}"]
    cmd += ["--seed", str(opts.seed), "--step-length", f"{opts.step_length_s:g}",
            "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true",
            "--time-to-teleport", f"{opts.time_to_teleport_s:g}", "--collision.action", "warn", "--save-state.rng", "true", "--save-state.precision", "6"]
    if opts.demand_scale != 1.0:
        cmd += ["--scale", f"{opts.demand_scale:g}"]
    if opts.load_state is not None:
        cmd += ["--load-state", str(opts.load_state)]
    if opts.gui:  # sumo-gui otherwise waits for its play button, and at the end for its window to be closed
        cmd += [arg for option in GUI_RUNS_ON_ITS_OWN if option not in opts.sumo_options
                for arg in (f"--{option}", "true")]
    for option, value in opts.sumo_options.items():
        cmd += [f"--{option}", str(value).lower() if isinstance(value, bool) else str(value)]
    for option, path in opts.outputs.items():
        cmd += [f"--{option}", str(path)]
    cmd += list(opts.extra_args)
    return cmd


class SumoBackend:
    """One running SUMO simulation."""

    def __init__(self, opts: SumoOptions):
        self.opts = opts
        self.api = None
        self._emergency_ids: set[str] = set()
        self.emergency_seen: set[str] = set()  # every emergency vehicle that entered
        self._emergency_classes = {"emergency"}
        self._closed = True
        #: this step's lane counts, so a lane two intersections share (one's exit, the other's approach) and the
        #: queue samples are read from SUMO once per step; emptied whenever the simulation moves
        self._counts_now: dict[str, LaneState] = {}
        #: one `LaneState` per (queue, count) pair: frozen, so shared, and building one costs more than reading it
        self._count_states: dict[tuple[int, int], LaneState] = {}
        #: per lane, the vehicles an observation saw halting there that have not left it (`lane_stopped`)
        self._stopped_ids: dict[str, set[str]] = {}
        #: the lanes each lane feeds and the lanes at a signal: the network does not change while it runs
        self._lane_graph_read: tuple[dict[str, list[str]], set[str]] | None = None
        #: the edge each induction loop lies on, and the last edge of each vehicle's route (`ends_over`)
        self._loop_edge: dict[str, str] = {}
        self._route_end: dict[str, str] = {}
        #: the additional files as SUMO was given them, their outputs redirected into the run (`sim.additionals`)
        self.additionals = LoadedAdditionals(tuple(opts.additional_files))
        self._scratch: Path | None = None  # the temporary directory holding them, when the run has none
        #: when the live loops' first whole counting period ends (`COUNT_PERIOD_S` after SUMO's begin, or after a
        #: state loaded: `load_state`): their counts before then are SUMO's zeros for "no period done yet" (a saved
        #: state keeps no counts), which an observation leaves out rather than pass as none
        self._counts_from_s = math.inf

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        opts = self._with_outputs_in_run()
        try:
            self._start(build_command(opts))
        except BaseException:
            self._remove_scratch()
            raise
        self._closed = False
        if self.opts.load_state is not None:
            self._find_emergency_vehicles()  # resumed: emergency vehicles may already be on the road
        self._counts_from_s = self._first_whole_period_end_s()

    def _first_whole_period_end_s(self) -> float:
        """When the loops' first whole counting period ends, for a SUMO just started or connected to.

        SUMO's loops count in periods from its begin, which is the saved state's time for a SUMO started with
        `--load-state` (the state holds no counts: its loops start empty there). A SUMO started elsewhere
        (`remote_port`) has counted since its own begin, whenever this connects; for one whose begin cannot be read,
        the counts wait a whole period from connecting, by when one of its periods has ended whole."""
        now = self.time_s()
        try:
            begin = float(self.api.simulation.getOption("begin"))
        except Exception:  # noqa: BLE001 - an older SUMO, or a begin written as 07:00:00
            begin = now if self.opts.remote_port is None else math.nan
        if math.isnan(begin) or begin > now:
            begin = now
        return begin + COUNT_PERIOD_S - 1e-6

    def _start(self, cmd: list[str]) -> None:
        if self.opts.gui and not _display_available():
            raise SimulationError("--gui needs a display, and none is set (DISPLAY / WAYLAND_DISPLAY are empty): "
                                  "run it in a desktop session, over ssh -X, or under xvfb-run")
        if self.opts.gui or self.opts.remote_port is not None:
            import traci

            self.api = traci
            try:
                if self.opts.remote_port is not None:
                    try:  # TraCI prints each failed try on stdout: the one line below says it
                        with contextlib.redirect_stdout(io.StringIO()):
                            traci.init(self.opts.remote_port, numRetries=REMOTE_CONNECT_TRIES)
                    except traci.exceptions.FatalTraCIError:
                        raise SimulationError(
                            f"nothing answered on port {self.opts.remote_port} for {REMOTE_CONNECT_TRIES} s: start "
                            f"SUMO there first (sumo -c CFG --remote-port {self.opts.remote_port})") from None
                    if self.opts.client_order is not None:
                        traci.setOrder(self.opts.client_order)
                else:
                    traci.start(cmd)
            except SimulationError:
                raise
            except Exception as exc:  # traci raises several types for a dead SUMO
                raise SimulationError(f"could not start SUMO: {_one_line(exc)}") from None
        else:
            libsumo = import_libsumo()
            self.api = libsumo
            refused = None
            with _stderr_kept() as said:
                try:
                    with fresh_heap():  # SUMO's traffic depends on where its network lands in memory
                        libsumo.start(cmd)
                except Exception as exc:  # noqa: BLE001 - libsumo's TraCIException; said again below in one line
                    refused = exc
            if refused is not None:
                reason = _sumo_reason(_naming_user_files(said, self.additionals.originals))
                # a start that fails part way (a route file read after the network) leaves the simulation
                # loaded in this process, where the next start would find it
                with contextlib.suppress(Exception):
                    if libsumo.simulation.isLoaded():
                        libsumo.close()
                raise SimulationError(f"SUMO refused the input: {reason or _one_line(refused)} "
                                      f"({read_files(self.opts)})") from None

    def close(self) -> None:
        """Close SUMO; safe to call twice and on every error path."""
        if self._closed or self.api is None:
            self._remove_scratch()
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.api.close()
        if not (self.opts.gui or self.opts.remote_port is not None):  # libsumo: SUMO's memory was this process's
            return_free_memory()
        self._remove_scratch()

    def _with_outputs_in_run(self) -> SumoOptions:
        """The options SUMO starts with: the additional files' outputs written into the run (`sim.additionals`).

        Outside the run they would land beside the user's files, over what is there, and a comparison's parallel
        runs would write the same file. A SUMO started elsewhere (`remote_port`) loads its own files."""
        opts = self.opts
        if opts.remote_port is not None or not opts.additional_files:
            return opts
        out_dir, own_dir = _additional_outputs_dir(opts)
        if out_dir is None:
            self._scratch = out_dir = scratch_directory()
        try:
            self.additionals = with_outputs_in(opts.additional_files, out_dir, keep_under=own_dir)
        except OSError as exc:
            self._remove_scratch()
            raise SimulationError(f"could not write the additional files' copies into {out_dir}: "
                                  f"{exc.strerror or exc}") from None
        if not self.additionals.redirected:
            self._remove_scratch()
            return opts
        return dataclasses.replace(opts, additional_files=self.additionals.files)

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> SumoBackend:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- stepping --------------------------------------------------------------
    def step(self) -> float:
        """Advance one step; returns the new simulation time in seconds."""
        self._counts_now = {}
        try:
            self.api.simulationStep()
            departed = self.api.simulation.getDepartedIDList()
            if departed:
                vclass = self.api.vehicle.getVehicleClass
                for vid in departed:
                    if vclass(vid) in self._emergency_classes:
                        self._emergency_ids.add(vid)
                        self.emergency_seen.add(vid)
            if self._emergency_ids:
                arrived = self.api.simulation.getArrivedIDList()
                if arrived:
                    self._emergency_ids.difference_update(arrived)
            return self.api.simulation.getTime()
        except Exception as exc:
            raise SimulationError(f"SUMO stopped during the run: {_one_line(exc)}") from None

    def time_s(self) -> float:
        return self.api.simulation.getTime()

    def end_s(self) -> float:
        return self.api.simulation.getEndTime()

    def vehicles_pending(self) -> int:
        """Vehicles running or waiting to enter (0 means the demand is exhausted)."""
        return self.api.simulation.getMinExpectedNumber()

    @property
    def emergency_active(self) -> bool:
        """An emergency vehicle is in the network (so preemption needs a look)."""
        return bool(self._emergency_ids)

    # -- signals -----------------------------------------------------------------
    def set_signal_state(self, tls_id: str, state: str) -> None:
        self.api.trafficlight.setRedYellowGreenState(tls_id, state)

    def signal_state(self, tls_id: str) -> str:
        return self.api.trafficlight.getRedYellowGreenState(tls_id)

    # -- observation ---------------------------------------------------------------
    def lane_state(self, lane: str) -> LaneState:
        la = self.api.lane
        return LaneState(
            queue_veh=la.getLastStepHaltingNumber(lane),
            count_veh=la.getLastStepVehicleNumber(lane),
            occupancy=sumo_occupancy(la.getLastStepOccupancy(lane)),
            mean_speed_mps=la.getLastStepMeanSpeed(lane),
            wait_s=la.getWaitingTime(lane),
        )

    def lane_counts(self, lanes: Iterable[str]) -> dict[str, LaneState]:
        """Queue and count only: the two values pressure-based control needs, cheaply."""
        now, shared = self._counts_now, self._count_states
        out = {}
        halting = number = None
        for lane in lanes:
            s = now.get(lane)
            if s is None:
                if halting is None:
                    la = self.api.lane
                    halting, number = la.getLastStepHaltingNumber, la.getLastStepVehicleNumber
                key = (halting(lane), number(lane))
                s = shared.get(key)
                if s is None:
                    s = shared[key] = LaneState(key[0], key[1], 0.0, 0.0, 0.0)
                now[lane] = s
            out[lane] = s
        return out

    def lane_stopped(self, lanes: Iterable[str]) -> dict[str, LaneState]:
        """Queue, count, and the vehicles seen halting since they entered each lane (`LaneState.stopped_veh`).

        A vehicle is marked when a reading finds it below SUMO's halting speed and forgotten once it has left
        the lane, so a lane read at each decision marks what each decision saw, as RESCO's signals do. SUMO
        keeps no such count (its waiting time resets when a vehicle moves off), so the lane's vehicles are
        read one by one: dearer than `lane_counts`, and only for a controller that asks for it.
        """
        now, marked = self._counts_now, self._stopped_ids
        vehicles_on, speed = self.api.lane.getLastStepVehicleIDs, self.api.vehicle.getSpeed
        out = {}
        for lane in lanes:
            s = now.get(lane)
            if s is None or s.stopped_veh is None:
                ids = vehicles_on(lane)
                seen = marked.get(lane)
                seen = marked[lane] = seen.intersection(ids) if seen else set()
                halting = 0
                for v in ids:
                    if speed(v) < HALTING_SPEED_MPS:
                        halting += 1
                        seen.add(v)
                s = now[lane] = LaneState(halting, len(ids), 0.0, 0.0, 0.0, len(seen))
            out[lane] = s
        return out

    def detector_idle_s(self, detector_ids: Iterable[str]) -> dict[str, float]:
        """Seconds since each live loop last saw a vehicle (0 while occupied)."""
        since = self.api.inductionloop.getTimeSinceDetection
        return {d: since(d) for d in detector_ids}

    def detector_interval_counts(self, detector_ids: Iterable[str]) -> dict[str, int]:
        """Vehicles counted by each live loop in its last complete period."""
        count = self.api.inductionloop.getLastIntervalVehicleNumber
        return {d: count(d) for d in detector_ids}

    def detector_vehicle_data(self, detector_ids: Iterable[str]) -> list[tuple[str, str, str, float, float, bool]]:
        """Vehicles over each loop during the last step: (detector, vehicle, type, entry s, exit s or -1, whether
        the vehicle's trip ends on the loop's edge: `ends_over`)."""
        data = self.api.inductionloop.getVehicleData
        return [(d, veh, vtype, entry, leave, self.ends_over(d, veh))
                for d in detector_ids for veh, _len, entry, leave, vtype in data(d)]

    def vtype_classes(self) -> dict[str, str]:
        """Every vehicle type SUMO knows now -> its vClass: its default types, the route and additional files'
        types and those drawn from their distributions (a run's records read them: `runtime.records`). Asked at a
        run's end: asked before it, SUMO's traffic comes out otherwise (a live run reads the files instead)."""
        vclass = self.api.vehicletype.getVehicleClass
        return {vtype: vclass(vtype) for vtype in self.api.vehicletype.getIDList()}

    def vtype_emission_classes(self) -> dict[str, str]:
        """Every vehicle type SUMO knows now -> its emission class ("HBEFA4/PC_petrol_Euro-4"): the type's own, or
        SUMO's default for its vClass, which changes with the SUMO version (the report names them). Asked at a
        run's end, as `vtype_classes`."""
        emission = self.api.vehicletype.getEmissionClass
        return {vtype: emission(vtype) for vtype in self.api.vehicletype.getIDList()}

    def ends_over(self, loop_id: str, vehicle_id: str) -> bool:
        """Whether the vehicle's route ends on the edge of this loop: SUMO drives it to the edge's end and removes
        it there, so over a loop near the stop line it leaves on red without crossing it. Cached per loop and
        per vehicle (a route's last edge is read once; the cache is emptied past 100,000 vehicles)."""
        edge = self._loop_edge.get(loop_id)
        if edge is None:
            edge = self._loop_edge[loop_id] = self.api.lane.getEdgeID(self.api.inductionloop.getLaneID(loop_id))
        last = self._route_end.get(vehicle_id)
        if last is None:
            if len(self._route_end) >= 100_000:
                self._route_end.clear()
            try:
                route = self.api.vehicle.getRoute(vehicle_id)
            except Exception:  # noqa: BLE001 - gone within the step it first crossed the loop
                # a vehicle that drove on past the line is still in the network: one over a loop that is gone at
                # the step's end arrived there (a trip ending at the line, at speed), or teleported
                return True
            last = self._route_end[vehicle_id] = route[-1] if route else ""
        return last == edge

    def emergency_approaches(self, intersections: dict[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        """Emergency vehicles whose next signal is one of ours, within `within_m`."""
        found: dict[str, list[EmergencyApproach]] = {}
        if not self._emergency_ids:
            return found
        veh = self.api.vehicle
        for vid in list(self._emergency_ids):
            try:
                upcoming = veh.getNextTLS(vid)
            except Exception:
                self._emergency_ids.discard(vid)  # teleported away or left
                continue
            if not upcoming:
                continue
            tls_id, link_index, dist_m, _state = upcoming[0]
            if tls_id in intersections and dist_m <= within_m:
                found.setdefault(tls_id, []).append(
                    EmergencyApproach(vid, veh.getLaneID(vid), float(dist_m), int(link_index)))
        return found

    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        """An `Observation` of one intersection with what `need` asks for; SUMO's data are never old."""
        if not need.lane_ids:
            lanes = {}
        elif need.lane_detail == "full":
            lanes = {lane: self.lane_state(lane) for lane in need.lane_ids}
        elif need.lane_detail == "stopped":
            lanes = self.lane_stopped(need.lane_ids)
        else:
            lanes = self.lane_counts(need.lane_ids)
        idle = self.detector_idle_s(need.detector_idle_ids) if need.detector_idle_ids else {}
        counts = self.detector_interval_counts(need.detector_count_ids) \
            if need.detector_count_ids and time_s >= self._counts_from_s else {}
        detectors = bool(need.detector_idle_ids or need.detector_count_ids)
        return Observation(time_s, inter.id, lanes, idle, detector_counts_veh=counts,
                           sources=_SOUND_SOURCES[bool(need.lane_ids), detectors])

    # -- the network as the simulation loaded it ---------------------------------------
    def read_signals(self, timing: TimingDefaults, overrides: dict[str, dict] | None = None,
                     only: list[str] | None = None) -> tuple[list[Intersection], list[RefusedSignal]]:
        """Every traffic light we can control (of `only`, when given), and those refused with their reason."""
        return read_all(self.api, timing, overrides, only)

    def lane_shapes(self, lanes: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
        """Each lane's centre line, upstream end first (the loop reads each approach's compass direction)."""
        return {lane: list(self.api.lane.getShape(lane)) for lane in lanes}

    def lane_length_m(self, lane: str) -> float:
        return self.api.lane.getLength(lane)

    def lane_zones(self, in_lanes: Iterable[str], out_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """The lanes upstream of each incoming lane and downstream of each outgoing one, within `reach_m`
        and not across another signal's stop line, with their distances (`sim.lane_zones`)."""
        successors, signal_lanes = self._lane_graph()
        return lane_zones(in_lanes, out_lanes, successors, signal_lanes, self.api.lane.getLength, reach_m)

    def lane_split_zones(self, in_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """Each incoming lane's upstream zone through lanes that feed several lanes, each lane with its
        distance and share (`sim.lane_zones.split_zones`)."""
        successors, signal_lanes = self._lane_graph()
        return split_zones(in_lanes, successors, signal_lanes, self.api.lane.getLength, reach_m)

    def _lane_graph(self) -> tuple[dict[str, list[str]], set[str]]:
        """The lanes each lane feeds (internal lanes left out), and the lanes that end at a signal; read once,
        for both kinds of zones."""
        if self._lane_graph_read is None:
            la = self.api.lane
            successors = {lane: [link[0] for link in la.getLinks(lane)]
                          for lane in la.getIDList() if not lane.startswith(":")}
            signal_lanes = {lane for tls in self.api.trafficlight.getIDList()
                            for lane in self.api.trafficlight.getControlledLanes(tls)}
            self._lane_graph_read = (successors, signal_lanes)
        return self._lane_graph_read

    def halting_veh(self, lanes: Iterable[str]) -> int:
        """Vehicles halting (below 0.1 m/s) on `lanes`: the ground-truth queue."""
        now = self._counts_now
        halting = self.api.lane.getLastStepHaltingNumber
        total = 0
        for lane in lanes:
            s = now.get(lane)
            total += halting(lane) if s is None else s.queue_veh
        return total

    def standing_in_junctions(self, min_wait_s: float) -> dict[str, int]:
        """Per junction, the vehicles that have stood on its internal lanes for at least `min_wait_s`.

        A vehicle inside a junction waits there for a gap or a free exit, for seconds. One standing for
        minutes is locked in, by vehicles of another phase in the same junction or by its own exit's
        queue, and the signal's state does not free it: SUMO moves it on only by teleport
        (`--time-to-teleport`), which RESCO's rules turn off. An internal lane is named
        `:JUNCTION_LINK_LANE`.
        """
        veh = self.api.vehicle
        lane_of, waited = veh.getLaneID, veh.getWaitingTime
        locked: dict[str, int] = {}
        for v in veh.getIDList():
            lane = lane_of(v)
            if lane.startswith(":") and waited(v) >= min_wait_s:
                junction = lane[1:].rsplit("_", 2)[0]
                locked[junction] = locked.get(junction, 0) + 1
        return locked

    def halting_by_lane(self, lanes: Iterable[str]) -> dict[str, int]:
        """Vehicles halting on each of `lanes` (queues per approach for the live records)."""
        halting = self.api.lane.getLastStepHaltingNumber
        return {lane: halting(lane) for lane in lanes}

    # -- state save / restore (crash recovery) --------------------------------------
    def save_state(self, path: Path) -> Path:
        """Write SUMO's full state (vehicles, signals, RNG) so a run can resume."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.api.simulation.saveState(str(path))
        return path

    def load_state(self, path: Path) -> float:
        """Restore a state written by `save_state`; returns the restored time."""
        if not Path(path).exists():
            raise SimulationError(f"no saved state at {path}")
        self._counts_now = {}
        self._stopped_ids = {}  # the vehicles on the road are the saved state's
        asked_at = self.time_s()
        try:
            self.api.simulation.loadState(str(path))
        except Exception as exc:
            raise SimulationError(f"could not load state {path}: {_one_line(exc)}") from None
        self._find_emergency_vehicles()
        now = self.api.simulation.getTime()
        # SUMO empties its loops at a load but keeps their periods going from the time the load was asked at: the
        # first one to end after the load ends there + COUNT_PERIOD_S (at the first step at the earliest) and holds
        # only the vehicles since the load; the next one is whole
        step = self.api.simulation.getDeltaT()
        first_end = now + step * max(1, math.ceil((asked_at + COUNT_PERIOD_S - now) / step - 1e-9))
        self._counts_from_s = first_end + COUNT_PERIOD_S - 1e-6
        return now

    def _find_emergency_vehicles(self) -> None:
        self._emergency_ids = {v for v in self.api.vehicle.getIDList()
                               if self.api.vehicle.getVehicleClass(v) in self._emergency_classes}


def writes_to_scratch(opts: SumoOptions) -> bool:
    """Whether SUMO started with `opts` writes outputs its additional files ask for into a temporary directory:
    they ask for some, and the options name no directory of a run (`SumoOptions.additional_outputs_dir`,
    `outputs`)."""
    return (bool(opts.additional_files) and opts.remote_port is None and _additional_outputs_dir(opts)[0] is None
            and bool(outputs_named(opts.additional_files)))


def scratch_directory() -> Path:
    """A new temporary directory for the outputs of a SUMO that has no run directory; its owner removes it."""
    return Path(tempfile.mkdtemp(prefix="signalwise-additional-"))


def _additional_outputs_dir(opts: SumoOptions) -> tuple[Path | None, Path | None]:
    """Where the additional files' outputs go, and the run's own directory, whose outputs stay where they are."""
    if opts.additional_outputs_dir is not None:
        out_dir = Path(opts.additional_outputs_dir)
        own_dir = out_dir.parent
    elif opts.outputs:
        own_dir = Path(next(iter(opts.outputs.values()))).parent
        out_dir = own_dir / ADDITIONAL_DIR
    else:
        return None, None
    return (out_dir / opts.additional_outputs_subdir if opts.additional_outputs_subdir else out_dir), own_dir


@contextlib.contextmanager
def _stderr_kept() -> Iterator[list[str]]:
    """The lines written to this process's standard error meanwhile (SUMO's own, from C++), in the list yielded
    once the block ends; they reach standard error as they are written too.

    libsumo refuses an additional file with a bare "Process Error" and writes the reason only there: the
    --error-log it is given stays empty, as a failed load never closes it. The copying is done by `tee`, a process
    of its own: libsumo holds the GIL while SUMO loads, so a thread here could copy nothing before SUMO is done (a
    SUMO that dies while loading would take its last lines with it), and SUMO writing more than a pipe holds would
    wait for it forever. Written by hand: the one library that does this (wurlitzer) copies in a thread."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no standard error to borrow: SUMO writes wherever it goes
        yield lines
        return
    try:
        with tempfile.TemporaryDirectory(prefix="signalwise-stderr-") as folder:
            kept = Path(folder) / "stderr.txt"
            copier = _tee_into(kept, saved)
            try:
                yield lines
            finally:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)  # the pipe's last writer here: `tee` reads to its end and exits
                if copier is not None:
                    _wait_for(copier)
                else:  # kept only: the lines reach standard error now
                    _write_kept(kept, saved)
                lines.extend(_kept_lines(kept))
    finally:
        os.close(saved)


#: seconds to wait for `tee` to copy the last lines: longer only when a process started meanwhile shares the pipe
#: as its standard error (`tee` then copies on for it, and the lines kept are those copied so far)
TEE_WAIT_S = 2.0
#: seconds `tee` may take to open the file it keeps the lines in (it creates it); past that, or once it says it
#: cannot, the lines are kept without it and reach standard error when the block ends
TEE_OPEN_S = 1.0
_warned: set[str] = set()  # the warnings given (`_warn_once`)


def _tee_into(kept: Path, stderr_fd: int) -> subprocess.Popen | None:
    """Point standard error (fd 2) at a `tee` that copies to `stderr_fd` and appends to `kept`, once it has
    opened `kept`; without `tee`, or with one that cannot write `kept`, at `kept` alone (None)."""
    started = _start_tee(kept, stderr_fd)
    if started is not None:
        copier, write_end = started
        problem = _tee_problem(copier, kept)
        if problem is None:
            os.dup2(write_end, 2)
            os.close(write_end)
            return copier
        os.close(write_end)  # its input ends, and so does it
        _reap(copier)
        _warn_once(f"SUMO's standard error is shown when it has started, not as it is written: tee {problem}")
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    return None


def _start_tee(kept: Path, stderr_fd: int) -> tuple[subprocess.Popen, int] | None:
    """A `tee` reading a new pipe, copying to `stderr_fd` and appending to `kept`, and the pipe's write end; what
    it says itself goes to a file beside `kept` (`_tee_problem` reads it). None without `tee`."""
    tee = _tee_program()
    if tee is None:
        return None
    read_end, write_end = os.pipe()
    try:
        with open(_tee_said(kept), "wb") as said:
            # its own session: a Ctrl-C at the terminal is for the run to handle, not for the copier to die of
            copier = subprocess.Popen([tee, "-a", str(kept)], stdin=read_end, stdout=stderr_fd, stderr=said,
                                      start_new_session=True)
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return copier, write_end


def _tee_said(kept: Path) -> Path:
    return kept.with_name("tee-said.txt")


def _tee_problem(copier: subprocess.Popen, kept: Path) -> str | None:
    """None once `tee` has created `kept` (it then appends there); else why not: what it said (GNU tee says it
    cannot open a file and copies on without it), that it ended, or that `TEE_OPEN_S` passed."""
    said, deadline = _tee_said(kept), time.monotonic() + TEE_OPEN_S
    while not kept.exists():
        if said.stat().st_size:
            return f"said: {said.read_text(errors='replace').strip().splitlines()[0]}"
        if copier.poll() is not None:
            return f"ended (exit {copier.returncode})"
        if time.monotonic() > deadline:
            return f"did not open its file within {TEE_OPEN_S:g} s"
        time.sleep(0.001)
    return None


@functools.cache
def _tee_program() -> str | None:
    return shutil.which("tee")


def _wait_for(copier: subprocess.Popen) -> None:
    """Wait for `tee` to copy the last lines and end; past `TEE_WAIT_S` (a process started in the block holds the
    pipe) go on without it, and reap it whenever it ends."""
    try:
        copier.wait(TEE_WAIT_S)
    except subprocess.TimeoutExpired:
        _warn_once(f"a process started while SUMO started shares its standard error: SUMO's lines were kept for "
                   f"{TEE_WAIT_S:g} s, and that process's reach standard error through tee (pid {copier.pid}) "
                   "until it ends")
        _reap(copier)


def _reap(copier: subprocess.Popen) -> None:
    """Wait for `copier` in a thread of its own: no zombie is left, and nothing here waits for it."""
    threading.Thread(target=copier.wait, name="signalwise-tee-reaper", daemon=True).start()


def _warn_once(message: str) -> None:
    """Log `message` the first time (a SUMO starts on every episode; the cause is the machine's or the run's)."""
    key = message.split(" (pid ")[0]
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


def _kept_lines(kept: Path) -> list[str]:
    try:
        return kept.read_bytes().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


def _write_kept(kept: Path, fd: int) -> None:
    with contextlib.suppress(OSError), open(fd, "wb", closefd=False) as out:
        out.write(kept.read_bytes())


#: SUMO's own error message (MsgHandler::build): `Error: ` and the message, whose further lines are indented by a
#: space (" In file '...'", " At line/column 2/84."); --log.timestamps and --log.processid put `[time] ` and
#: `[PID: n] ` before it
_SUMO_ERROR = re.compile(r"^(?:\[[^\]\n]+\] )?(?:\[PID: \d+\] )?Error: (\S[^\n]*(?:\n [^\n]*)*)", re.MULTILINE)


def _sumo_reason(said: list[str]) -> str | None:
    """SUMO's first error among the lines written while it started, in one line (None when it wrote none), and how
    many more there are: the lines themselves are on standard error above."""
    found = [" ".join(m.group(1).split()).rstrip(".") for m in _SUMO_ERROR.finditer("\n".join(said))]
    if not found:
        return None
    return f"{found[0]}, and {len(found) - 1} more error(s) above" if len(found) > 1 else found[0]


def _naming_user_files(lines: list[str], originals: dict[Path, Path]) -> list[str]:
    """SUMO's lines with the user's files named where they name the run's copies of them."""
    for copy, original in originals.items():
        lines = [line.replace(str(copy), str(original)) for line in lines]
    return lines


def _one_line(exc: BaseException) -> str:
    """SUMO's message in one line: what failed and where (its first line names the vehicle, edge or file)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip().removeprefix("Error: ") for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1].rstrip('.')})"



def _display_available() -> bool:
    """Whether sumo-gui can open a window: without one it retries for a minute before failing vaguely.

    The X / Wayland display is the operating system's, not a signalwise setting,
    so it is read from the environment here.
    """
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
