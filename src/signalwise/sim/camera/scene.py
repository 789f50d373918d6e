"""What a camera file says about an intersection, read from the running simulation.

Stop lines are the ends of the lanes that a signal controls, grouped the way
the signal treats them: adjacent lanes of one approach whose links turn red
in the same phases share one line (the through and right-turn lanes), a
protected left-turn lane gets its own. Each line lists its links, indices
into the signal's state string, so a reader of the camera file can tell the
line's signal from a state string alone. Approach zones cover an approach's
lanes from the stop line upstream, as far as the camera sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..approach import compass_approach
from .views import CameraView

#: how far upstream of its stop line an approach zone reaches, at most
ZONE_LENGTH_M = 60.0


@dataclass(frozen=True)
class StopLine:
    name: str
    approach: str
    lanes: tuple[str, ...]
    links: tuple[int, ...]
    ends_m: tuple[tuple[float, float], tuple[float, float]]  # the line across the lanes' ends
    heading_m: tuple[float, float]  # unit vector of travel across the line


@dataclass(frozen=True)
class Approach:
    name: str  # north | south | east | west
    lanes: tuple[str, ...]
    stop_lines: tuple[StopLine, ...]
    speed_limit_mps: float


@dataclass(frozen=True)
class Scene:
    """The controlled lanes of one signal and how they are drawn on the ground."""

    device_id: str
    junction_id: str  # the junction the signal's incoming lanes lead to
    approaches: tuple[Approach, ...]
    link_of: dict[tuple[str, str], int]  # (incoming lane, first internal lane) -> link index

    @property
    def stop_lines(self) -> tuple[StopLine, ...]:
        return tuple(sl for a in self.approaches for sl in a.stop_lines)

    def stop_line_of_lane(self) -> dict[str, StopLine]:
        return {lane: sl for sl in self.stop_lines for lane in sl.lanes}

    def approach_of_lane(self) -> dict[str, str]:
        return {lane: a.name for a in self.approaches for lane in a.lanes}

    @property
    def speed_limit_mps(self) -> float:
        return max(a.speed_limit_mps for a in self.approaches)


def read_scene(api, tls_id: str) -> Scene:
    """The stop lines and approaches of signal `tls_id` from a running SUMO (`traci` or `libsumo`)."""
    links = api.trafficlight.getControlledLinks(tls_id)
    phases = [p.state for logic in api.trafficlight.getAllProgramLogics(tls_id)[:1] for p in logic.phases]
    lanes_links: dict[str, list[int]] = {}
    link_of: dict[tuple[str, str], int] = {}
    for index, group in enumerate(links):
        for in_lane, _out_lane, via in group:
            if in_lane.startswith(":"):
                continue  # a crosswalk (from a walking area)
            lanes_links.setdefault(in_lane, []).append(index)
            link_of[(in_lane, via)] = index
    by_edge: dict[str, list[str]] = {}
    for lane in lanes_links:
        by_edge.setdefault(lane.rsplit("_", 1)[0], []).append(lane)
    approaches = []
    for _edge, lanes in sorted(by_edge.items()):
        lanes.sort(key=lambda lane: int(lane.rsplit("_", 1)[1]))
        name = compass_approach(api.lane.getShape(lanes[0]))
        groups: list[list[str]] = []
        for lane in lanes:
            pattern = _red_pattern(phases, lanes_links[lane])
            if groups and _red_pattern(phases, lanes_links[groups[-1][-1]]) == pattern:
                groups[-1].append(lane)
            else:
                groups.append([lane])
        lines = []
        used: set[str] = set()
        for group in groups:
            dirs = {link[6] for lane in group for link in api.lane.getLinks(lane, True) if link[4]}
            line_name = _line_name(name, dirs, used)
            used.add(line_name)
            ends, heading = _lane_ends(api, group)
            lines.append(StopLine(line_name, name, tuple(group),
                                  tuple(sorted({i for lane in group for i in lanes_links[lane]})), ends, heading))
        limit = max(api.lane.getMaxSpeed(lane) for lane in lanes)
        approaches.append(Approach(name, tuple(lanes), tuple(lines), limit))
    junction = api.edge.getToJunction(next(iter(by_edge)))
    return Scene(tls_id, junction, tuple(approaches), link_of)


def _red_pattern(phases: list[str], link_indices: list[int]) -> tuple[bool, ...]:
    """In which phases the lane's links are all red: adjacent lanes with the same pattern share a stop line."""
    return tuple(all(state[i] == "r" for i in link_indices) for state in phases)


def _line_name(approach: str, dirs: set[str], used: set[str]) -> str:
    base = approach[0]
    if "s" in dirs or not dirs:
        name = base
    elif dirs <= {"l", "L", "t"}:
        name = f"{base}-left"
    elif dirs <= {"r", "R"}:
        name = f"{base}-right"
    else:
        name = f"{base}-" + "".join(sorted(dirs))
    k, unique = 1, name
    while unique in used:
        k += 1
        unique = f"{name}{k}"
    return unique


def _lane_ends(api, lanes: list[str]):
    """The line across the ends of adjacent lanes, and the direction of travel over it."""
    points = []
    heading = np.zeros(2)
    for lane in lanes:
        shape = np.asarray(api.lane.getShape(lane), dtype=float)
        d = shape[-1] - shape[-2]
        d /= np.linalg.norm(d)
        heading += d
        left = np.array([-d[1], d[0]])
        half = api.lane.getWidth(lane) / 2
        points += [shape[-1] + left * half, shape[-1] - left * half]
    heading /= np.linalg.norm(heading)
    across = np.array([-heading[1], heading[0]])
    pts = np.array(points)
    proj = pts @ across
    a, b = pts[np.argmax(proj)], pts[np.argmin(proj)]
    return (tuple(a.round(3)), tuple(b.round(3))), tuple(heading.round(6))


def approach_zone_m(approach: Approach, view: CameraView) -> np.ndarray | None:
    """The approach's lanes from the stop line upstream, shortened to what the view sees (4 corners, metres)."""
    ends = np.array([p for sl in approach.stop_lines for p in sl.ends_m])
    heading = np.mean([sl.heading_m for sl in approach.stop_lines], axis=0)
    heading /= np.linalg.norm(heading)
    across = np.array([-heading[1], heading[0]])
    proj = ends @ across
    return _zone_in_view(ends[np.argmax(proj)], ends[np.argmin(proj)], heading, ZONE_LENGTH_M, view)


def stop_line_zone_m(line: StopLine, view: CameraView, length_m: float) -> np.ndarray | None:
    """The lanes of one stop line from the line upstream, shortened to what the view sees (4 corners, metres)."""
    return _zone_in_view(np.array(line.ends_m[0]), np.array(line.ends_m[1]), np.array(line.heading_m), length_m, view)


def _zone_in_view(a: np.ndarray, b: np.ndarray, heading: np.ndarray, length_m: float,
                  view: CameraView) -> np.ndarray | None:
    """The quadrilateral from the line a-b upstream (against `heading`), `length_m` long or shortened a metre
    at a time until the view sees all of it; None when even 5 m is out of view."""
    length = length_m
    while length >= 5.0:
        poly = np.array([a, b, b - heading * length, a - heading * length])
        if view.inside(view.to_px(poly), margin_px=1.0).all():
            return poly
        length -= 1.0
    return None


def stop_line_zones(scene: Scene, view: CameraView, channel_of_lane: dict[str, int],
                    length_m: float = 30.0) -> list[dict]:
    """A zone per stop line (instead of per approach), each with the detector channel of its first lane.

    What a controller reading presence per lane group (actuated: extend a
    phase while its detectors see traffic) needs from a camera: each zone
    stands in for the stop-bar loop whose channel it carries.
    """
    zones = []
    for line in scene.stop_lines:
        poly = stop_line_zone_m(line, view, length_m)
        channel = next((channel_of_lane[lane] for lane in line.lanes if lane in channel_of_lane), None)
        if poly is None or channel is None:
            continue
        px = view.to_px(poly)
        zones.append({"name": f"{line.name}-presence", "approach": line.approach, "channel": channel,
                      "px": [[round(float(x), 2), round(float(y), 2)] for x, y in px]})
    return zones


def camera_file(scene: Scene, view: CameraView, camera_id: str, speed_tolerance_mps: float = 2.0,
                speed_sustain_s: float = 1.0) -> dict:
    """The camera file (the keys `signalwise vision run --camera` reads) for one rendered view."""
    calibration = []
    xs = np.linspace(0.15, 0.85, 3) * view.width_px
    ys = np.linspace(0.2, 0.85, 3) * view.height_px
    for y in ys:
        for x in xs:
            m = view.to_m([x, y])[0]
            calibration.append({"px": [round(float(x), 2), round(float(y), 2)],
                                "m": [round(float(m[0]), 3), round(float(m[1]), 3)]})
    stop_lines = []
    for sl in scene.stop_lines:
        px = view.to_px(np.array(sl.ends_m))
        stop_lines.append({"name": sl.name, "approach": sl.approach,
                           "px": [[round(float(x), 2), round(float(y), 2)] for x, y in px], "links": list(sl.links)})
    zones = []
    for approach in scene.approaches:
        poly = approach_zone_m(approach, view)
        if poly is None:
            continue
        px = view.to_px(poly)
        zones.append({"name": f"{approach.name[0]}-queue", "approach": approach.name,
                      "px": [[round(float(x), 2), round(float(y), 2)] for x, y in px]})
    return {
        "camera_id": camera_id,
        "device_id": scene.device_id,
        "calibration": calibration,
        "stop_lines": stop_lines,
        "zones": zones,
        "speed_limit_mps": round(scene.speed_limit_mps, 2),
        "speed_tolerance_mps": speed_tolerance_mps,
        # extra keys the pipeline reads: the truth's own speeding rule, and a box's centre stands for the vehicle
        # (the rendered world is flat, so the centre of a box is the vehicle's centre in every view)
        "speed_sustain_s": speed_sustain_s,
        "anchor": "center",
        "frame_size": [view.width_px, view.height_px],
        "rendered_by": "signalwise vision render: every value above follows from the view's known homography",
    }
