"""The evidence SUMO records during a run, read back: per-edge intervals, emissions, detector passages.

A full record asks SUMO for per-edge traffic intervals (edgeData), the
emissions of every vehicle (HBEFA) and every vehicle's passage over every
detector (instant loops). On a machine with a core to spare, a second SUMO
that replays the run's signal states records them instead of the run's own
(`sim.replay`), and reads them back in its own process too (`read_evidence`
as the replay's digest): the run only receives the rows. `EvidenceReplay`
waits for that replay where the run needs its rows, and stands in for it
when it fails.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.types import Detector, EventCode
from ..sim.backend import SumoOptions
from ..sim.detectors import DetectorLayout, zone_point_ids
from ..sim.outputs import Passage, read_arrivals, read_edgedata, read_passages
from ..sim.replay import ReplayProcess, StateChange, replay_signal_states, same_traffic

log = logging.getLogger("signalwise.runtime")

#: what the metrics and the time series read of SUMO's per-edge intervals and emissions
EDGE_FIELDS = ("timeLoss", "waitingTime", "left", "entered", "departed", "sampledSeconds", "speed")
EMISSION_FIELDS = ("CO2_abs", "fuel_abs")

#: the evidence files a full run asks SUMO for (names in `LoopResult.files`)
EVIDENCE_FILES = ("edgedata", "emissions", "passages")
#: the files a replay records in the run's place, when the run asked for them
REPLAYED_FILES = ("emissions",)


@dataclass
class SumoEvidence:
    """SUMO's recorded evidence as rows: what the run directory and the metrics are made of."""

    edgedata: list[dict] = field(default_factory=list)
    emissions: list[dict] = field(default_factory=list)
    #: detector on (82) / off (81) events as `core.eventlog.event_row`s
    detector_event_rows: list[tuple[int, str, int, int]] = field(default_factory=list)
    #: one row per vehicle over a detector, as detector_passages.csv holds them
    passage_rows: list[tuple] = field(default_factory=list)


def read_evidence(files: dict[str, Path], detectors: DetectorLayout | None,
                  only: tuple[str, ...] | None = None) -> SumoEvidence:
    """The rows of the evidence files `files` names (a lean run names none of them); `only`: of these alone."""
    def named(name: str) -> Path | None:
        return files.get(name) if only is None or name in only else None

    edgedata = read_edgedata(named("edgedata"), EDGE_FIELDS) if named("edgedata") else []
    emissions = read_edgedata(named("emissions"), EMISSION_FIELDS) if named("emissions") else []
    passages_file = named("passages")
    arrivals = read_arrivals(files["tripinfo"], {d.lane for dets in detectors.by_tls.values() for d in dets}) \
        if passages_file is not None and detectors is not None and "tripinfo" in files else None
    events, passages = detector_events(passages_file, detectors, arrivals)
    return SumoEvidence(edgedata, emissions, events, passages)


def merged(a: SumoEvidence, b: SumoEvidence) -> SumoEvidence:
    """The rows of both, when each read other files."""
    passages = sorted(a.passage_rows + b.passage_rows, key=lambda r: (r[0], r[1])) \
        if a.passage_rows and b.passage_rows else a.passage_rows or b.passage_rows
    return SumoEvidence(a.edgedata + b.edgedata, a.emissions + b.emissions,
                        a.detector_event_rows + b.detector_event_rows, passages)


def detector_events(passages_file: Path | None, detectors: DetectorLayout | None,
                    arrivals: dict[str, tuple[float, str]] | None = None) \
        -> tuple[list[tuple[int, str, int, int]], list[tuple]]:
    """Detector on (82) / off (81) events from SUMO's instant loops, at 0.1 s, as `event_row`s; passage rows.

    A detector is on while any vehicle is over any of its loops (a stop-bar detector's zone has several,
    `sim.detectors.zone_point_ids`); a passage row is one vehicle over its counting loop. `arrivals` (each
    vehicle's arrival time and lane, `sim.outputs.read_arrivals`) leaves out the vehicles that ended their
    trip over a detector (`vanished`).
    """
    if detectors is None or passages_file is None:
        return [], []
    owner = {loop_id: (tls, d, k == 0) for tls, dets in detectors.by_tls.items() for d in dets
             for k, loop_id in enumerate(zone_point_ids(d))}
    occupied: dict[tuple[str, Detector], list[tuple[float, float]]] = {}
    rows: list[tuple] = []
    passages = [(p, owner[p.detector_id]) for p in read_passages(passages_file, detectors.step_s)
                if p.detector_id in owner]
    gone = vanished(passages, arrivals or {}, detectors.step_s)
    for p, (tls, det, counts) in passages:
        if (det.id, p.vehicle_id) in gone:
            continue
        occupied.setdefault((tls, det), []).append((p.enter_s, math.inf if p.leave_s is None else p.leave_s))
        if counts:
            rows.append((p.enter_s, det.id, tls, det.channel, det.lane, p.vehicle_id, p.vtype, p.enter_s, p.leave_s,
                         p.speed_mps))
    on, off = int(EventCode.DETECTOR_ON), int(EventCode.DETECTOR_OFF)
    events: list[tuple[int, str, int, int]] = []
    for (tls, det), spans in occupied.items():
        for start_ds, end_ds in _union_ds(spans):
            events.append((start_ds, tls, on, det.channel))
            if end_ds is not None:  # still occupied at the end: on without off, as the log of a field controller
                events.append((end_ds, tls, off, det.channel))
    rows.sort(key=lambda r: (r[0], r[1]))
    return events, rows


def vanished(passages: list[tuple[Passage, tuple[str, Detector, bool]]], arrivals: dict[str, tuple[float, str]],
             step_s: float) -> set[tuple[str, str]]:
    """(detector id, vehicle id) of each vehicle that ended its trip over that detector: it arrived on the
    detector's lane and left one of its loops when it arrived (within a simulation step).

    SUMO drives a vehicle whose route ends on a lane to the lane's end (its default arrival position) and removes
    it there, on red as on green and at speed: the stop-bar zone sees it leave on red without it ever crossing the
    stop line, which reads as red-light running. A real one would have parked or turned off before, so all its
    passages over that detector stay out of the detector's events and counts; an advance loop that a vehicle
    vanishes on (a route ending at a position on the lane) the same way. `passages` are on the run's clock
    (`DetectorLayout.step_s` later than SUMO's, as `read_passages` moves them)."""
    gone: set[tuple[str, str]] = set()
    for p, (_tls, det, _counts) in passages:
        arrived = arrivals.get(p.vehicle_id)
        if arrived is not None and p.leave_s is not None and arrived[1] == det.lane \
                and abs(p.leave_s - step_s - arrived[0]) <= step_s + 1e-6:
            gone.add((det.id, p.vehicle_id))
    return gone


def _deciseconds(t_s: float) -> int:
    """A time as the event log holds it: rounded to 0.1 s (first to one decimal, as a `SignalEvent` of it)."""
    return int(round(round(t_s, 1) * 10))


def _union_ds(spans: list[tuple[float, float]]) -> list[tuple[int, int | None]]:
    """Occupancies as the log shows them: at 0.1 s, overlapping or touching ones as one (a detector switches off
    only when nothing is over it); one shorter than the log can show (on and off at the same tenth: a fast
    motorcycle over a point loop) lasts one tenth, so it is still counted; None: still on at the end."""
    merged: list[list] = []
    for start_s, end_s in sorted(spans):
        start = _deciseconds(start_s)
        end = None if end_s == math.inf else max(_deciseconds(end_s), start + 1)
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            if merged[-1][1] is not None:
                merged[-1][1] = None if end is None else max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


@dataclass(frozen=True)
class ReplayDiffers:
    """A replay's digest when its traffic was not the run's: where the two first differ."""

    where: str


def replay_digest(files: dict[str, Path], detectors: DetectorLayout | None,
                  replayed: tuple[str, ...]) -> SumoEvidence | ReplayDiffers:
    """What the replay's process sends back: the rows of the files it recorded, if it drove the run's traffic."""
    differs = same_traffic(files["tripinfo"], files["replay_tripinfo"])
    if differs is not None:
        return ReplayDiffers(differs)
    return read_evidence(files, detectors, only=replayed)


@dataclass
class EvidenceReplay:
    """The replay recording a run's evidence in another process (`sim.replay`), awaited where it is read.

    If that process fails (killed, out of memory), the run replays its signal
    states here instead: it costs a second simulation in this process, and the
    run keeps its evidence. If the replay drove other traffic than the run,
    replaying again would too (SUMO is deterministic), so its files are
    dropped and the run says so.
    """

    recorder: ReplayProcess
    opts: SumoOptions  # the replay's, to replay here when the other process fails
    end_s: float
    replayed: tuple[str, ...]  # the evidence files the replay records (names in `LoopResult.files`)
    outcome: dict | None = None
    evidence: SumoEvidence | None = None

    def wait(self, files: dict[str, Path], states: list[StateChange],
             detectors: DetectorLayout | None) -> tuple[dict, SumoEvidence]:
        """The replay's verdict for metrics.json and its evidence; `files` loses the files that were dropped."""
        if self.outcome is not None:
            return self.outcome, self.evidence
        failed = self.recorder.wait()
        digest = self.recorder.result
        if failed is None and isinstance(digest, SumoEvidence):
            self.outcome, self.evidence = {"mode": "replay", "same_traffic": True}, digest
            return self.outcome, self.evidence
        if failed is None and isinstance(digest, ReplayDiffers):
            return self._drop(files, f"the replay's traffic differs from the run's ({digest.where})")
        why = failed or "the replay process sent no evidence"
        log.warning("evidence replay: %s; replaying the run's signal states in this process", why)
        replay_signal_states(self.opts, [(self.end_s, states)], self.end_s)
        digest = replay_digest(files, detectors, self.replayed)
        if isinstance(digest, ReplayDiffers):
            return self._drop(files, f"{why}; replayed here, the traffic differs from the run's ({digest.where})")
        self.outcome, self.evidence = {"mode": "replay", "same_traffic": True, "replayed_here": why}, digest
        return self.outcome, self.evidence

    def _drop(self, files: dict[str, Path], failed: str) -> tuple[dict, SumoEvidence]:
        log.warning("evidence replay: %s; its files are dropped", failed)
        for name in self.replayed:
            path = files.pop(name, None)
            if path is not None:
                path.unlink(missing_ok=True)
        self.outcome = {"mode": "replay", "same_traffic": False, "failed": failed}
        self.evidence = SumoEvidence()
        return self.outcome, self.evidence

    def stop(self) -> None:
        self.recorder.stop()
