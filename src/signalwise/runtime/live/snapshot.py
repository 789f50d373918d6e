"""What readers (API, streams, dashboard) see of the live loop: immutable snapshots.

The loop builds a whole `Snapshot` after a tick and publishes it by swapping
one reference; a reader holds whichever snapshot it took, complete and
consistent (a phase and its timers come from the same tick). No lock is held
across I/O, and no reader ever sees the loop's own mutable state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalView:
    """One signal at the snapshot's tick."""

    intersection_id: str
    phase_number: int  # current green phase, or the phase being cleared (1-based)
    interval: str  # green | yellow | all_red
    elapsed_s: float  # time in the current interval
    next_phase_number: int | None  # during clearance: the phase that comes next
    state: str  # SUMO link state string the signal shows
    preempted: bool
    fallback: bool  # the shield's Webster fallback is serving
    controller: str
    override: str | None  # an operator's override in force, described
    queue_veh: tuple[tuple[str, int | None], ...]  # (approach, halting vehicles; None: no lane of it observed)
    model_path: str | None = None  # the model directory a learning controller runs here (ql), else None
    fallback_share: float = 0.0  # of this signal's ticks since the run began, the share the fallback served
    controller_since_s: float | None = None  # simulated time its controller took over (None: from the start)
    phase_elapsed_s: float | None = None  # since the current phase's green began (clearance included)
    confidence: float | None = None  # of the controller's latest proposal; None before the first
    #: emergency vehicles heading for this signal within the preemption distance:
    #: (vehicle id, incoming lane, approach, metres to the stop line)
    emergency: tuple[tuple[str, str, str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    sim_time_s: float
    wall_time: str  # ISO 8601, local time with zone
    running: bool
    scenario: str
    controller: str
    speed: float | None  # simulated seconds per wall second; None = unpaced
    signals: tuple[SignalView, ...]
    network_queue_veh: int | None  # halting vehicles on the approaches whose queue is known; None: none is
    fallback_share: float  # of the signals, the share whose fallback serves now
    active_alerts: int
    #: the last closed interval summed over the network (`records.network_figures`); None before the first
    interval: dict | None = None
    #: with `--db`: the store writer's figures (`buffered_rows`, `db_ok`, `unavailable_s`, ...); None without
    store: dict | None = None
    #: what the controllers did wrong since the run began: `decisions` asked for, `errors` their `decide` raised
    #: (the Webster fallback served), `invalid_proposals` the shield could not follow as given
    #: (`ControllerFaults`); None before the loop exists
    controller_faults: dict | None = None

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["signals"] = [{**dataclasses.asdict(s), "queue_veh": dict(s.queue_veh),
                           "emergency": [{"vehicle_id": v, "in_lane": lane, "approach": a, "distance_m": d}
                                         for v, lane, a, d in s.emergency]}
                          for s in self.signals]
        return out


EMPTY = Snapshot(0, 0.0, "", False, "", "", None, (), 0, 0.0, 0)
