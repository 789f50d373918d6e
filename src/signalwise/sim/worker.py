"""SUMO in a child process: the live runtime's field, isolated from it and batched.

`signalwise live` must outlive a SUMO crash and keep 100 intersections at
one tick per wall-clock second. `SumoProcess` runs libsumo in a child process
(a clean process from `processes.py`'s fork server: none of the runtime's
threads, sockets or SUMO) and has `SumoBackend`'s interface, so `open_field`
and `LoopStepper` take either. Offline runs keep the in-process backend.

One exchange per tick. Signal states set since the last step travel with the
next `step()`; the child applies them, steps, and answers in one reply: the
new time, the emergency vehicles that departed (and the emergency approaches
of the intersections given to `register_intersections`), the halting and
vehicle counts of every lane given to `register_lanes`, the idle time and the
passages of every detector given to `register_detectors`. `observe`,
`halting_veh`, `emergency_approaches` and `detector_vehicle_data` answer from
that reply while it is the current one; anything else (full lane detail,
lanes nobody registered, detector counts) is one synchronous request.
`lane_zones` brings back the lengths of the lanes it was given and of those
it lists, and `lane_length_m` answers them from there: the loop reads them
all as it starts, and nothing here changes a lane's length.
Messages are plain tuples and lists, never the network's objects.

A child that is gone (killed, crashed, or SUMO failed mid-step) makes the next
call raise `FieldLost` at once, never a hang: replies are awaited with `poll`
while the child's liveness is checked. The child exits when the parent dies
(its end of the pipe reads end-of-file; the parent pid is polled as well),
so no SUMO is left running behind a dead runtime.

To resume elsewhere: `save_state(path)`, then a new `SumoProcess` whose
options have `load_state=path` (SUMO loads it as it starts, at the saved
time). SUMO does not keep signal states set through TraCI across a state
load: the caller sets every signal's state again (`LoopStepper.restore`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..core.types import (
    EmergencyApproach,
    Intersection,
    LaneState,
    Observation,
    ObservationNeed,
    SourceHealth,
)
from .additionals import ADDITIONAL_DIR
from .backend import (
    DETECTORS_SOURCE,
    LANES_SOURCE,
    FieldLost,
    SimulationError,
    SumoBackend,
    SumoOptions,
    _one_line,
    read_files,
    scratch_directory,
    writes_to_scratch,
)
from .lane_zones import ZONE_REACH_M, listed_lanes
from .processes import fresh_process_context, in_callers_env
from .signal_model import RefusedSignal, TimingDefaults

__all__ = ["FieldLost", "SumoProcess"]

#: while awaiting a reply, how often the child's liveness is checked (a dead child is noticed within this)
_ALIVE_CHECK_S = 0.2
#: how long the child waits for a request before checking that its parent still lives
_PARENT_CHECK_S = 1.0


class SumoProcess:
    """One SUMO simulation in a child process, with `SumoBackend`'s interface.

    `reply_timeout_s` bounds a request to a child that is alive but stuck
    (it is then killed and the field is lost); `close_timeout_s` is how long
    `close()` lets SUMO write its outputs and exit before killing it.
    """

    def __init__(self, opts: SumoOptions, reply_timeout_s: float = 30.0, start_timeout_s: float = 120.0,
                 close_timeout_s: float = 2.0):
        self.opts = opts
        self.reply_timeout_s = reply_timeout_s
        self.start_timeout_s = start_timeout_s
        self.close_timeout_s = close_timeout_s
        self.emergency_seen: set[str] = set()  # every emergency vehicle that entered
        self.exchanges = 0  # requests sent to the child (a step is one)
        self._proc = None
        self._conn = None
        self._closed = True
        self._lost: str | None = None
        self._pending: dict[str, str] = {}  # signal states to send with the next request
        self._t = 0.0
        self._end = 0.0
        self._emergency = False
        # what the child returns with every step, and the last step's reply
        self._lane_index: dict[str, int] = {}
        self._detector_index: dict[str, int] = {}
        self._inter_ids: frozenset[str] = frozenset()
        self._within_m: float | None = None
        self._tick_t: float | None = None  # time of the cached reply; None: nothing cached is current
        self._halting: list[int] = []
        self._counts: list[int] = []
        self._idle: list[float] = []
        self._passages: dict[str, list] = {}
        self._approaches: dict[str, list] | None = None
        self._lane_length_m: dict[str, float] = {}  # lengths that came back with `lane_zones`
        #: the temporary directory the child's SUMO writes its additional files' outputs into, when the options
        #: name no run directory: made and removed here, so a killed child leaves none behind
        self._scratch: Path | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Start the child and SUMO in it; SUMO's refusal of the input is a one-line `SimulationError`."""
        ctx = fresh_process_context(__name__)
        parent_end, child_end = ctx.Pipe(duplex=True)
        opts = self.opts
        if writes_to_scratch(opts):
            self._scratch = scratch_directory()
            opts = dataclasses.replace(opts, additional_outputs_dir=self._scratch / ADDITIONAL_DIR)
        proc = ctx.Process(target=in_callers_env(_serve), args=(child_end, opts, os.getpid()), name="signalwise-sumo",
                           daemon=True)
        proc.start()
        child_end.close()  # only the child holds it now: its death reads as end-of-file here
        self._proc, self._conn = proc, parent_end
        self._closed, self._lost = False, None
        try:
            self._t, self._end, self._emergency = self._wait(self.start_timeout_s, 0)
        except FieldLost as exc:
            self.close()
            raise SimulationError(f"SUMO did not start: {exc}") from None
        except SimulationError:
            self.close()
            raise

    def close(self) -> None:
        """Stop SUMO and its process; safe to call twice, on a lost field and on every error path."""
        if self._closed:
            return
        self._closed = True
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if self._lost is None:
            try:
                conn.send(("close", -1, self._take_pending()))
            except (OSError, ValueError):
                pass
        proc.join(self.close_timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
        conn.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> SumoProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The OS pid of the process running SUMO."""
        return None if self._proc is None else self._proc.pid

    # -- stepping --------------------------------------------------------------
    def step(self) -> float:
        """Send pending signal states, advance one step, cache the reply; returns the new time."""
        t, active, departed, approaches, halting, counts, idle, passages = self._exchange("step", ())
        self._t = self._tick_t = t
        self._emergency = active
        if departed:
            self.emergency_seen.update(departed)
        self._approaches = approaches
        self._halting, self._counts, self._idle, self._passages = halting, counts, idle, passages
        return t

    def time_s(self) -> float:
        return self._t

    def end_s(self) -> float:
        return self._end

    def vehicles_pending(self) -> int:
        """Vehicles running or waiting to enter (0 means the demand is exhausted)."""
        return self._call("vehicles_pending")

    @property
    def emergency_active(self) -> bool:
        """An emergency vehicle was in the network at the last step."""
        return self._emergency

    # -- what every step returns -------------------------------------------------------
    def register_lanes(self, lanes: Iterable[str]) -> None:
        """Lanes whose halting and vehicle counts come back with every step (an unknown lane is refused)."""
        lanes = tuple(dict.fromkeys(lanes))
        self._call("register_lanes", lanes)
        self._lane_index = {lane: i for i, lane in enumerate(lanes)}
        self._tick_t = None  # the cached lists follow the old registration

    def register_detectors(self, detector_ids: Iterable[str]) -> None:
        """Induction loops whose idle time and passages come back with every step."""
        ids = tuple(dict.fromkeys(detector_ids))
        self._call("register_detectors", ids)
        self._detector_index = {d: i for i, d in enumerate(ids)}
        self._tick_t = None

    def register_intersections(self, intersections: Mapping[str, Intersection], within_m: float) -> None:
        """Signals whose approaching emergency vehicles (within `within_m`) come back with every step."""
        ids = tuple(intersections)
        self._call("register_intersections", ids, float(within_m))
        self._inter_ids, self._within_m = frozenset(ids), float(within_m)
        self._tick_t = None

    # -- signals -----------------------------------------------------------------
    def set_signal_state(self, tls_id: str, state: str) -> None:
        """Buffered: sent with the next step (or request), before SUMO does anything else."""
        if self._lost is not None:
            raise FieldLost(self._lost)
        self._pending[tls_id] = state

    def signal_state(self, tls_id: str) -> str:
        return self._call("signal_state", tls_id)

    # -- observation ---------------------------------------------------------------
    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        """An `Observation` of one intersection; from the last step's reply when it holds what `need` asks."""
        if time_s != self._tick_t or need.detector_count_ids or (need.lane_ids and need.lane_detail != "counts"):
            return self._call("observe", inter.id, time_s, need)
        try:
            lanes = self._cached_counts(need.lane_ids) if need.lane_ids else {}
            idle = self._cached_idle(need.detector_idle_ids) if need.detector_idle_ids else {}
        except KeyError:  # a lane or detector nobody registered
            return self._call("observe", inter.id, time_s, need)
        sources = (SourceHealth(LANES_SOURCE),) if need.lane_ids else ()
        if need.detector_idle_ids:
            sources = (*sources, SourceHealth(DETECTORS_SOURCE))
        return Observation(time_s, inter.id, lanes, idle, sources=sources)

    def lane_state(self, lane: str) -> LaneState:
        return self._call("lane_state", lane)

    def lane_counts(self, lanes: Iterable[str]) -> dict[str, LaneState]:
        lanes = tuple(lanes)
        if self._tick_t is not None:
            try:
                return self._cached_counts(lanes)
            except KeyError:
                pass
        return self._call("lane_counts", lanes)

    def detector_idle_s(self, detector_ids: Iterable[str]) -> dict[str, float]:
        ids = tuple(detector_ids)
        if self._tick_t is not None:
            try:
                return self._cached_idle(ids)
            except KeyError:
                pass
        return self._call("detector_idle_s", ids)

    def detector_interval_counts(self, detector_ids: Iterable[str]) -> dict[str, int]:
        return self._call("detector_interval_counts", tuple(detector_ids))

    def detector_vehicle_data(self, detector_ids: Iterable[str]) -> list[tuple[str, str, str, float, float, bool]]:
        """Vehicles over each loop during the last step: (detector, vehicle, type, entry s, exit s or -1, whether
        its trip ends on the loop's edge: `SumoBackend.ends_over`)."""
        if self._tick_t is not None:
            index, passages, out = self._detector_index, self._passages, []
            for d in detector_ids:
                if d not in index:
                    break
                rows = passages.get(d)
                if rows:
                    out.extend((d, *row) for row in rows)
            else:
                return out
        return self._call("detector_vehicle_data", tuple(detector_ids))

    def vtype_classes(self) -> dict[str, str]:
        """Every vehicle type SUMO knows now -> its vClass (`SumoBackend.vtype_classes`)."""
        return self._call("vtype_classes")

    def vtype_emission_classes(self) -> dict[str, str]:
        """Every vehicle type SUMO knows now -> its emission class (`SumoBackend.vtype_emission_classes`)."""
        return self._call("vtype_emission_classes")

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        """Emergency vehicles whose next signal is one of ours, within `within_m`."""
        if not self._emergency:
            return {}
        if (self._tick_t is not None and self._approaches is not None and within_m == self._within_m
                and intersections.keys() <= self._inter_ids):
            found = self._approaches
        else:
            found = self._call("emergency_approaches", tuple(intersections), float(within_m))
        return {tls: [EmergencyApproach(*a) for a in rows] for tls, rows in found.items() if tls in intersections}

    # -- the network as the simulation loaded it ---------------------------------------
    def read_signals(self, timing: TimingDefaults, overrides: dict[str, dict] | None = None,
                     only: list[str] | None = None) -> tuple[list[Intersection], list[RefusedSignal]]:
        """Every traffic light we can control (of `only`, when given), and those refused with their reason."""
        return self._call("read_signals", dict(timing), overrides, only)

    def standing_in_junctions(self, min_wait_s: float) -> dict[str, int]:
        return self._call("standing_in_junctions", min_wait_s)

    def lane_shapes(self, lanes: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
        """As `SumoBackend.lane_shapes`, in one exchange (the loop asks for every incoming lane at start-up)."""
        return self._call("lane_shapes", tuple(lanes))

    def lane_length_m(self, lane: str) -> float:
        length_m = self._lane_length_m.get(lane)
        return self._call("lane_length_m", lane) if length_m is None else length_m

    def lane_zones(self, in_lanes: Iterable[str], out_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """As `SumoBackend.lane_zones`; the lengths of the lanes given and listed come back in the same
        exchange (the loop reads every one of them next: one request each would be a round trip per lane)."""
        upstream, downstream, lengths_m = self._call("lane_zones", tuple(in_lanes), tuple(out_lanes), float(reach_m))
        self._lane_length_m.update(lengths_m)
        return upstream, downstream

    def lane_split_zones(self, in_lanes: Iterable[str], reach_m: float = ZONE_REACH_M):
        """As `SumoBackend.lane_split_zones`; the lengths of the lanes listed come back in the same exchange."""
        zones, lengths_m = self._call("lane_split_zones", tuple(in_lanes), float(reach_m))
        self._lane_length_m.update(lengths_m)
        return zones

    def halting_veh(self, lanes: Iterable[str]) -> int:
        """Vehicles halting (below 0.1 m/s) on `lanes`: the ground-truth queue."""
        lanes = tuple(lanes)
        if self._tick_t is not None:
            index, halting = self._lane_index, self._halting
            try:
                return sum(halting[index[lane]] for lane in lanes)
            except KeyError:
                pass
        return self._call("halting_veh", lanes)

    def halting_by_lane(self, lanes: Iterable[str]) -> dict[str, int]:
        """Vehicles halting on each of `lanes`."""
        lanes = tuple(lanes)
        if self._tick_t is not None:
            index, halting = self._lane_index, self._halting
            try:
                return {lane: halting[index[lane]] for lane in lanes}
            except KeyError:
                pass
        return self._call("halting_by_lane", lanes)

    # -- state save / restore (crash recovery) --------------------------------------
    def save_state(self, path: Path) -> Path:
        """Write SUMO's full state (vehicles, signals, RNG) so a new process can resume from it."""
        return Path(self._call("save_state", str(path)))

    def load_state(self, path: Path) -> float:
        """Restore a state written by `save_state`; returns the restored time (signal states: set them again)."""
        self._t, self._emergency = self._call("load_state", str(path))
        self._tick_t = None
        return self._t

    # -- the exchange ------------------------------------------------------------
    def _cached_counts(self, lanes: Iterable[str]) -> dict[str, LaneState]:
        index, halting, counts = self._lane_index, self._halting, self._counts
        return {lane: LaneState(halting[index[lane]], counts[index[lane]], 0.0, 0.0, 0.0) for lane in lanes}

    def _cached_idle(self, detector_ids: Iterable[str]) -> dict[str, float]:
        index, idle = self._detector_index, self._idle
        return {d: idle[index[d]] for d in detector_ids}

    def _take_pending(self) -> tuple:
        if not self._pending:
            return ()
        sets = tuple(self._pending.items())
        self._pending.clear()
        return sets

    def _call(self, op: str, *args):
        """One synchronous request; the signal states set since the last request are applied first."""
        return self._exchange(op, args)

    def _exchange(self, op: str, args: tuple):
        """Send (op, number, pending signal states, *args); the reply carries the same number."""
        if self._lost is not None:
            raise FieldLost(self._lost)
        if self._closed:
            raise SimulationError("the SUMO process is not running (not started, or closed)")
        self.exchanges += 1
        try:
            self._conn.send((op, self.exchanges, self._take_pending(), *args))
        except (OSError, ValueError):
            raise self._lose(f"the SUMO process is gone ({self._exit_text()})") from None
        return self._wait(self.reply_timeout_s, self.exchanges)

    def _wait(self, timeout_s: float, number: int):
        """The child's reply to request `number`; a child that dies or stops answering is a lost field, never a hang.

        Replies to older requests are dropped: a wait cut short (Ctrl-C while
        SUMO stepped) leaves its reply in the pipe, and it must not answer the
        next request.
        """
        conn, proc = self._conn, self._proc
        deadline = time.monotonic() + timeout_s
        while True:
            while not conn.poll(_ALIVE_CHECK_S):
                if not proc.is_alive():
                    if conn.poll(0):
                        break  # it answered before it went
                    raise self._lose(f"the SUMO process exited ({self._exit_text()})")
                if time.monotonic() > deadline:
                    proc.kill()
                    raise self._lose(f"the SUMO process did not answer within {timeout_s:g} s and was killed")
            try:
                status, answered, value = conn.recv()
            except (EOFError, OSError):
                raise self._lose(f"the SUMO process exited ({self._exit_text()})") from None
            if answered == number:
                break
        if status == "ok":
            return value
        if status == "lost":
            raise self._lose(value)
        raise SimulationError(value)

    def _lose(self, why: str) -> FieldLost:
        """Mark the field lost (every later call raises at once) and make sure the child is gone."""
        self._lost = why
        self._tick_t = None
        proc = self._proc
        proc.join(0.5)  # a child that said why it failed is closing SUMO on its own
        if proc.is_alive():
            proc.kill()
            proc.join(0.5)
        return FieldLost(why)

    def _exit_text(self) -> str:
        proc = self._proc
        proc.join(0.3)
        code = proc.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


# --------------------------------------------------------------------------- #
# the child


class _Named:
    """Stands for an `Intersection` where SUMO's backend only reads its id (no network objects cross the pipe)."""

    __slots__ = ("id",)

    def __init__(self, id: str):  # noqa: A002 - the attribute Intersection has
        self.id = id


class _Child:
    """The child's side: a `SumoBackend` in this process, and what each step returns."""

    def __init__(self, backend: SumoBackend):
        self.backend = backend
        self.api = backend.api
        self.lanes: tuple[str, ...] = ()
        self.detectors: tuple[str, ...] = ()
        self.intersections: dict[str, None] | None = None
        self.within_m = 0.0
        self.told: set[str] = set()  # emergency vehicles the parent knows about
        b = backend
        self.ops = {
            "vehicles_pending": b.vehicles_pending,
            "signal_state": b.signal_state,
            "observe": lambda inter_id, t, need: b.observe(_Named(inter_id), t, need),
            "lane_state": b.lane_state,
            "lane_counts": b.lane_counts,
            "detector_idle_s": b.detector_idle_s,
            "detector_interval_counts": b.detector_interval_counts,
            "detector_vehicle_data": b.detector_vehicle_data,
            "vtype_classes": b.vtype_classes,
            "vtype_emission_classes": b.vtype_emission_classes,
            "emergency_approaches": self.emergency_approaches,
            "read_signals": b.read_signals,
            "lane_shapes": b.lane_shapes,
            "lane_length_m": b.lane_length_m,
            "lane_zones": self.lane_zones,
            "lane_split_zones": self.lane_split_zones,
            "halting_veh": b.halting_veh,
            "halting_by_lane": b.halting_by_lane,
            "standing_in_junctions": b.standing_in_junctions,
            "save_state": lambda path: str(b.save_state(Path(path))),
            "load_state": lambda path: (b.load_state(Path(path)), b.emergency_active),
            "register_lanes": self.register_lanes,
            "register_detectors": self.register_detectors,
            "register_intersections": self.register_intersections,
        }

    def serve(self, conn, parent_pid: int) -> None:
        """Answer requests until told to close, or until the parent is gone."""
        poll, recv, send, ops = conn.poll, conn.recv, conn.send, self.ops
        set_state = self.api.trafficlight.setRedYellowGreenState
        while True:
            if not poll(_PARENT_CHECK_S):
                if not _alive(parent_pid):
                    return  # the runtime died without closing us
                continue
            try:
                message = recv()
            except (EOFError, OSError):
                return  # the parent's end closed: it is gone
            op, number, sets = message[0], message[1], message[2]
            try:
                for tls_id, state in sets:
                    set_state(tls_id, state)
                if op == "close":
                    return
                if op == "step":
                    try:
                        reply = ("ok", number, self.step())
                    except Exception as exc:  # SUMO failed mid-step: this simulation cannot go on
                        send(("lost", number, str(exc) if isinstance(exc, SimulationError) else
                              f"SUMO stopped during the run: {_one_line(exc)}"))
                        return
                else:
                    reply = ("ok", number, ops[op](*message[3:]))
            except Exception as exc:  # a refused request; the simulation is intact
                reply = ("error", number, str(exc) if isinstance(exc, SimulationError) else _one_line(exc))
            try:
                send(reply)
            except (OSError, ValueError):
                return

    def step(self) -> tuple:
        """Step, then everything the parent registered, in one tuple of lists."""
        b = self.backend
        t = b.step()
        active = b.emergency_active  # before the approaches, as the loop reads them
        seen = b.emergency_seen
        departed = ()
        if len(seen) != len(self.told):
            departed = tuple(seen - self.told)
            self.told.update(departed)
        approaches = None
        if active and self.intersections is not None:
            approaches = self.emergency_approaches(self.intersections, self.within_m)
        lane = self.api.lane
        halting, number = lane.getLastStepHaltingNumber, lane.getLastStepVehicleNumber
        lanes = self.lanes
        halting_veh = [halting(x) for x in lanes]
        count_veh = [number(x) for x in lanes]
        loop = self.api.inductionloop
        since, data = loop.getTimeSinceDetection, loop.getVehicleData
        idle, passages = [], {}
        for d in self.detectors:
            idle.append(since(d))
            rows = data(d)
            if rows:
                passages[d] = [(veh, vtype, entry, leave, b.ends_over(d, veh))
                               for veh, _len, entry, leave, vtype in rows]
        return t, active, departed, approaches, halting_veh, count_veh, idle, passages

    def emergency_approaches(self, intersections, within_m: float) -> dict[str, list[tuple]]:
        found = self.backend.emergency_approaches(dict.fromkeys(intersections), within_m)
        return {tls: [(a.vehicle_id, a.in_lane, a.distance_m, a.link_index) for a in rows]
                for tls, rows in found.items()}

    def lane_zones(self, in_lanes: tuple[str, ...], out_lanes: tuple[str, ...], reach_m: float) -> tuple:
        """The zones, and the length of every lane given or listed in them."""
        upstream, downstream = self.backend.lane_zones(in_lanes, out_lanes, reach_m)
        lanes = {*in_lanes, *out_lanes, *listed_lanes(upstream, downstream)}
        return upstream, downstream, {lane: self.backend.lane_length_m(lane) for lane in lanes}

    def lane_split_zones(self, in_lanes: tuple[str, ...], reach_m: float) -> tuple:
        """The split zones, and the length of every lane they list."""
        zones = self.backend.lane_split_zones(in_lanes, reach_m)
        lanes = {lane for zone in zones.values() for lane, _, _ in zone}
        return zones, {lane: self.backend.lane_length_m(lane) for lane in lanes}

    def register_lanes(self, lanes: tuple[str, ...]) -> None:
        unknown = sorted(set(lanes) - set(self.api.lane.getIDList()))
        if unknown:
            raise SimulationError(f"not lanes of this network: {', '.join(unknown[:5])}"
                                  f"{' ...' if len(unknown) > 5 else ''}")
        self.lanes = lanes

    def register_detectors(self, ids: tuple[str, ...]) -> None:
        unknown = sorted(set(ids) - set(self.api.inductionloop.getIDList()))
        if unknown:
            raise SimulationError(f"not induction loops of this simulation: {', '.join(unknown[:5])}"
                                  f"{' ...' if len(unknown) > 5 else ''}")
        self.detectors = ids

    def register_intersections(self, ids: tuple[str, ...], within_m: float) -> None:
        self.intersections = dict.fromkeys(ids)
        self.within_m = within_m


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (signal 0 checks without sending; a fork server, not the runtime, is
    this process's parent, so `getppid` cannot tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    return True


def _serve(conn, opts: SumoOptions, parent_pid: int) -> None:
    """The child process: start SUMO, say so (or why not), then serve until closed or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runtime's to handle; it closes us
    backend = SumoBackend(opts)
    try:
        try:
            backend.start()
            hello = ("ok", 0, (backend.time_s(), backend.end_s(), backend.emergency_active))
        except Exception as exc:
            conn.send(("error", 0, str(exc) if isinstance(exc, SimulationError) else
                       f"SUMO refused the input: {_one_line(exc)} ({read_files(opts)})"))
            return
        conn.send(hello)
        _Child(backend).serve(conn, parent_pid)
    except (OSError, ValueError):
        pass  # the parent went away while we answered
    finally:
        backend.close()
        conn.close()
