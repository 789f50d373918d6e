"""Place stop-bar and advance detectors on every incoming lane of every signal.

Two SUMO detectors at each spot: an induction loop (E1) the controllers read
live, and an instant induction loop that writes every vehicle's exact entry
and exit time to a file. The latter feeds the hi-res event log (82/81) with
no per-step Python cost.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..core.types import Detector

STOPBAR_SETBACK_M = 1.0  # loop this far upstream of the stop line
#: where a run records a stop-bar detector's presence: instant loops this far upstream of the stop line, the
#: detector occupied while any of them is. A queue's first vehicle stands with its front where the live loop is
#: (1 m before the lane's end) and would never switch one there on, so a red with a queue standing read empty and
#: no cycle could fail its split; the union of the three reads like a presence zone from 2 to 10 m plus a
#: vehicle's length, near the 40 ft (12.2 m) stop-bar zone ATSPM's split failures assume. The first counts.
STOPBAR_ZONE_SETBACKS_M = (2.0, 6.0, 10.0)
ADVANCE_DISTANCE_M = 100.0  # typical advance detector for 50 km/h approaches
MIN_ADVANCE_GAP_M = 15.0  # no advance loop unless this far from the stop bar loop
#: the counting period of the live loops controllers read (`Observation.detector_counts_veh`: the vehicles of the
#: last complete one), from the simulation's begin: Webster's planning period (`control.webster.PLANNING_PERIOD_S`),
#: HCM's 15-minute analysis period
COUNT_PERIOD_S = 900


@dataclass(frozen=True, slots=True)
class DetectorLayout:
    """Detectors per traffic light, the SUMO additional file of each kind of loop, and where passages go.

    The two kinds are apart so that they can be loaded by different SUMOs: the
    live loops by the one the controllers read, the instant loops by one that
    only records (`sim.replay`).
    """

    by_tls: dict[str, tuple[Detector, ...]]
    live_file: Path | None  # the induction loops controllers read during the run; None when left out
    instant_file: Path | None  # the instant loops that write every passage; None when left out
    passages_file: Path
    #: the simulation step: SUMO stamps an instant loop's events one step before the step the run's clock (and
    #: its signal events) gives the movement (a queue that starts on the green shown at t is stamped t - step)
    step_s: float = 1.0

    @property
    def additional_files(self) -> tuple[Path, ...]:
        """Both files, for a SUMO that both reads the loops and records their passages."""
        return tuple(f for f in (self.live_file, self.instant_file) if f is not None)


def live_id(det: Detector) -> str:
    return det.id


def instant_id(det: Detector) -> str:
    return "i_" + det.id


def zone_point_ids(det: Detector) -> tuple[str, ...]:
    """The instant loops that record a detector's presence: the first is `instant_id`, which counts vehicles;
    a stop-bar detector has one more for each of its zone's other points."""
    if det.kind != "stopbar":
        return (instant_id(det),)
    return (instant_id(det), *(f"{instant_id(det)}@{k}" for k in range(1, len(STOPBAR_ZONE_SETBACKS_M))))


def live_zone_ids(det: Detector) -> tuple[str, ...]:
    """The live loops that record a detector's presence in a live run (read each step, as a live run writes no
    passage file): a stop-bar detector's zone points (the first counts vehicles), or the detector's own loop.
    The controllers read the detector's own loop, `live_id`, whatever these are."""
    if det.kind != "stopbar":
        return (live_id(det),)
    return tuple(f"{det.id}@z{k}" for k in range(len(STOPBAR_ZONE_SETBACKS_M)))


def _instant_positions_m(det: Detector, lane_length_m: float) -> tuple[float, ...]:
    setbacks = STOPBAR_ZONE_SETBACKS_M if det.kind == "stopbar" else (det.distance_to_stopbar_m,)
    return tuple(max(0.1, lane_length_m - d) for d in setbacks)


def plan_detectors(net_file: Path, net=None) -> dict[str, tuple[Detector, ...]]:
    """Decide detector positions from the network file (no simulation needed); `net`: it, already read."""
    if net is None:
        net = _read_net(net_file)
    layout: dict[str, tuple[Detector, ...]] = {}
    claimed: set[str] = set()
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        lanes: list = []
        for in_lane, _out_lane, _index in tls.getConnections():
            if in_lane.getID() in claimed or in_lane in lanes:
                continue
            if in_lane.getEdge().getFunction() in ("walkingarea", "crossing"):
                continue
            if not _allows_vehicles(in_lane):
                continue
            lanes.append(in_lane)
        dets: list[Detector] = []
        channel = 1
        for lane in lanes:
            dets.append(Detector(f"sb_{lane.getID()}", lane.getID(), "stopbar", STOPBAR_SETBACK_M, channel))
            channel += 1
        for lane in lanes:
            length = lane.getLength()
            dist = min(ADVANCE_DISTANCE_M, length - 2.0)
            if dist - STOPBAR_SETBACK_M >= MIN_ADVANCE_GAP_M:
                dets.append(Detector(f"adv_{lane.getID()}", lane.getID(), "advance", round(dist, 1), channel))
                channel += 1
        claimed.update(lane.getID() for lane in lanes)
        layout[tls.getID()] = tuple(dets)
    return layout


def write_detector_file(by_tls: dict[str, tuple[Detector, ...]], lane_lengths_m: dict[str, float],
                        out_dir: Path, live: bool = True, instant: bool = True, step_s: float = 1.0,
                        live_zones: bool = False) -> DetectorLayout:
    """Write the SUMO additional file that creates the detectors.

    `live=False` leaves out the loops controllers read during the run (for
    controllers that never read them); `instant=False` leaves out the loops
    that write every passage to a file (the live runtime reads passages from
    the live loops each step instead, so a day-long run writes no such file).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    passages = out_dir / "detector_passages.xml"
    live_root, instant_root = ET.Element("additional"), ET.Element("additional")
    for dets in by_tls.values():
        for det in dets:
            pos = f"{max(0.1, lane_lengths_m[det.lane] - det.distance_to_stopbar_m):.2f}"
            ET.SubElement(live_root, "inductionLoop", id=live_id(det), lane=det.lane, pos=pos,
                          period=str(COUNT_PERIOD_S), file="NUL")
            if live_zones and det.kind == "stopbar":  # a live run's presence zone, beside the controllers' loop
                for loop_id, at_m in zip(live_zone_ids(det), _instant_positions_m(det, lane_lengths_m[det.lane]),
                                         strict=True):
                    ET.SubElement(live_root, "inductionLoop", id=loop_id, lane=det.lane, pos=f"{at_m:.2f}",
                                  period=str(COUNT_PERIOD_S), file="NUL")
            for loop_id, at_m in zip(zone_point_ids(det), _instant_positions_m(det, lane_lengths_m[det.lane]),
                                     strict=True):
                ET.SubElement(instant_root, "instantInductionLoop", id=loop_id, lane=det.lane, pos=f"{at_m:.2f}",
                              file=passages.name)
    live_file = _write_additional(live_root, out_dir / "detectors.add.xml") if live else None
    instant_file = _write_additional(instant_root, out_dir / "detectors-instant.add.xml") if instant else None
    return DetectorLayout(by_tls, live_file, instant_file, passages, step_s)


def _write_additional(root: ET.Element, path: Path) -> Path:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def place_detectors(net_file: Path, out_dir: Path, live: bool = True, instant: bool = True,
                    step_s: float = 1.0, live_zones: bool = False) -> DetectorLayout:
    net = _read_net(net_file)  # once: sumolib reads a city network in seconds
    by_tls = plan_detectors(net_file, net)
    lengths = {d.lane: net.getLane(d.lane).getLength() for dets in by_tls.values() for d in dets}
    return write_detector_file(by_tls, lengths, out_dir, live, instant, step_s, live_zones)


def _read_net(net_file: Path):
    import sumolib

    return sumolib.net.readNet(str(net_file), withPrograms=False, withInternal=False)


def _allows_vehicles(lane) -> bool:
    allowed = lane.getPermissions()
    return any(v in allowed for v in ("passenger", "truck", "bus", "emergency", "delivery", "bicycle"))
