"""One episode of an environment: SUMO under the shields, advanced a decision period at a time.

It reuses the run loop's own step (`runtime.loop.LoopStepper`) with no
controllers: the agents' proposals come in through `propose`, and the
shields decide exactly as in `signalwise run`. SUMO writes one output file,
its tripinfo (every vehicle, those still driving or never inserted at the
end too), into a temporary directory: when the episode ends it is read into
the same network figures `signalwise run` writes to metrics.json
(`sim.metrics.network_metrics`, RESCO's delay), then removed. The hi-res
events and the signal states SUMO was given stay in memory so the
independent checker can audit the episode.

libsumo is one simulation per process, so at most one episode may be open
per process; opening a second one while another is running is refused with
a message rather than silently taking over the first one's simulation.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from ..analytics.safety_audit import AuditReport, audit
from ..core.types import Decision, Intersection, LaneState, SignalEvent
from ..runtime.config import RunConfig
from ..runtime.loop import (
    TRIPINFO_ARGS,
    LoopStepper,
    applied_sumo_options,
    describe_intersections,
    open_field,
    sumo_options,
)
from ..sim.backend import SimulationError
from ..sim.metrics import NetworkMetrics, after_warmup, network_metrics
from ..sim.outputs import read_tripinfo
from ..sim.scenario import Scenario

#: the episode currently holding this process's libsumo simulation
_open_libsumo: weakref.ref | None = None


def _uses_libsumo(cfg: RunConfig) -> bool:
    return not cfg.gui and cfg.remote_port is None


def _claim_libsumo(owner: object) -> None:
    global _open_libsumo
    holder = _open_libsumo() if _open_libsumo is not None else None
    if holder is not None and holder is not owner:
        raise SimulationError("libsumo runs one simulation per process and another signalwise environment "
                              "has one open: close() it first, or run each environment in its own process")
    _open_libsumo = weakref.ref(owner)


def _release_libsumo(owner: object) -> None:
    global _open_libsumo
    if _open_libsumo is not None and _open_libsumo() is owner:
        _open_libsumo = None


class _Probe:
    """Stands for the short-lived network-only simulation in the libsumo claim."""


#: (each file read: path, mtime and size; scenario, run settings but seed and duration) -> what `probe_network` read
_PROBED: dict[tuple, tuple[list[Intersection], dict[str, float]]] = {}


def probe_network(cfg: RunConfig, scenario: Scenario) -> tuple[list[Intersection], dict[str, float]]:
    """The controllable signals and their incoming lanes' lengths, from SUMO loading the network alone.

    Agents and spaces must be known before the first reset (PettingZoo's
    `possible_agents`); loading only the network takes a fraction of a second.
    Remembered per network file, scenario and run settings (all but the seed
    and duration, which shape no signal: the timing, a partition, SUMO's
    options and additional files do), so a second environment on the same
    network (Gymnasium's checker makes one) needs no simulation while the
    first one holds libsumo. A file edited since (the network, or a signal
    program in an additional file) is probed again.
    """
    key = (_files_read(cfg, scenario), repr(scenario), cfg.model_dump_json(exclude={"seed", "duration_s"}))
    if key not in _PROBED:
        _PROBED[key] = _probe(cfg, scenario)
    inters, lengths = _PROBED[key]
    return list(inters), dict(lengths)


def _files_read(cfg: RunConfig, scenario: Scenario) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every file the probe's answer comes from: the network, the additional files (their
    signal programs) and any file a SUMO option the run applies names. The scenario names them, not their
    contents: a user edits a program in place and runs again."""
    named = [part.strip() for value in applied_sumo_options(cfg, scenario).values() for part in str(value).split(",")]
    files = [scenario.net_file, *scenario.additional_files, *(Path(p) for p in named if p and Path(p).is_file())]
    stats = []
    for f in files:
        path = Path(f).resolve()
        st = path.stat()
        stats.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(stats)


def _probe(cfg: RunConfig, scenario: Scenario) -> tuple[list[Intersection], dict[str, float]]:
    owner = _Probe()
    if _uses_libsumo(cfg):
        _claim_libsumo(owner)
    try:
        fld = open_field(cfg, scenario, sumo_options(cfg, scenario, cfg.seed, scenario.begin_s + 1.0,
                                                     with_routes=False))
        try:
            lengths = {lane: fld.backend.lane_length_m(lane) for i in fld.intersections for lane in i.in_lanes}
            return fld.intersections, lengths
        finally:
            fld.backend.close()
    finally:
        _release_libsumo(owner)


def episode_summary(net: NetworkMetrics) -> dict[str, float | int]:
    """The figures of `signalwise run`'s metrics.json `network` an episode reports, units in the names."""
    return {"avg_delay_s": net.avg_delay_s, "avg_wait_s": net.avg_wait_s, "vehicles_total_veh": net.vehicles_total,
            "throughput_veh": net.throughput_veh, "running_at_end_veh": net.running_at_end,
            "never_inserted_veh": net.never_inserted}


def _discard(backend, outputs: Path) -> None:
    """Close SUMO, then remove the directory it wrote into (an episode dropped without close())."""
    if backend is not None:
        backend.close()
    shutil.rmtree(outputs, ignore_errors=True)


class Episode:
    """A running simulation whose signals only the shields drive, on the agents' proposals."""

    def __init__(self, cfg: RunConfig, scenario: Scenario, seed: int, end_s: float):
        self.cfg = cfg
        self.seed = seed
        #: the episode's traffic figures (`episode_summary`), once it has run to its end and closed; None before,
        #: and for a SUMO started elsewhere (`remote_port`), which writes its own outputs, not ours
        self.summary: dict[str, float | int] | None = None
        self._libsumo = _uses_libsumo(cfg)
        if self._libsumo:
            _claim_libsumo(self)
        self.backend = None
        self._outputs = Path(tempfile.mkdtemp(prefix="signalwise-env-"))
        self._tripinfo = self._outputs / "tripinfo.xml"
        try:
            fld = open_field(cfg, scenario, sumo_options(cfg, scenario, seed, end_s, extra_args=TRIPINFO_ARGS,
                                                         outputs={"tripinfo-output": self._tripinfo}))
            self.backend = fld.backend
            # queue samples every step: they are the reward's halting counts
            self.stepper = LoopStepper(cfg, fld, end_s, controllers=lambda inter, ctx: None,
                                       queue_sample_s=cfg.step_length_s)
        except BaseException:
            self.close()
            raise
        self._finalizer = weakref.finalize(self, _discard, self.backend, self._outputs)
        self.intersections = self.stepper.intersections
        self.shields = self.stepper.shields

    @property
    def time_s(self) -> float:
        return self.stepper.t

    @property
    def done(self) -> bool:
        return self.stepper.done

    def propose(self, tls_id: str, phase_index: int) -> None:
        self.stepper.propose(tls_id, Decision(tls_id, phase_index, "agent", 1.0))

    def advance(self, period_s: float) -> list[tuple[float, str, int]]:
        """Step SUMO for `period_s` (or to the end); returns the per-step halting samples taken meanwhile."""
        first = len(self.stepper.queue_samples)
        until = self.stepper.t + period_s - 1e-9
        while not self.stepper.done and self.stepper.t < until:
            self.stepper.step()
        return self.stepper.queue_samples[first:]

    def lane_counts(self, lanes) -> dict[str, LaneState]:
        return self.backend.lane_counts(lanes)

    def events(self) -> list[SignalEvent]:
        return self.stepper.events()

    def audit(self) -> AuditReport:
        """The independent checker's verdict on this episode's event log and signal states so far."""
        return audit(self.events(), describe_intersections(self.intersections), self.stepper.signal_states,
                     self.cfg.step_length_s, end_s=self.stepper.t)

    def close(self) -> None:
        """Close SUMO (safe to call twice); the in-memory record is kept, and at the episode's end its `summary`
        (SUMO writes the rows of the vehicles still driving or never inserted as it closes)."""
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
        if self._libsumo:
            _release_libsumo(self)
        if self.summary is None and getattr(self, "stepper", None) is not None and self.done:
            self.summary = self._summarise()
        shutil.rmtree(self._outputs, ignore_errors=True)

    def _summarise(self) -> dict[str, float | int] | None:
        """The network figures of `signalwise run`, from the same code: the trips due from the end of the
        configuration's warm-up on, RESCO's delay (timeLoss + departDelay) over every one of them."""
        if not self._tripinfo.is_file():
            return None
        trips, persons = read_tripinfo(self._tripinfo)
        counted = after_warmup(self.stepper.t0 + self.cfg.warmup_s, self.stepper.end_s, trips, persons, [], [], [])
        return episode_summary(network_metrics(counted.trips, counted.persons, [], self.backend.emergency_seen))
