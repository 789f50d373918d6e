"""A straight road through a junction, seen from above, with vehicles at constant, known speeds: for grading
speeding calls.

Where `synthetic.Scene` is an intersection with queues and signals, this is a
speed trap's test: each vehicle drives the whole view at one speed, in both
directions (up the image, `north`, and down it, `south`), entering and leaving
at the frame's edges as a real vehicle does, its box cut off there. Vehicles
are solid rectangles on grey asphalt with pixel noise, drawn at whole pixels;
the speeds are exact, so a call on a vehicle under the threshold is a false
ticket and a call's speed can be checked against the truth.

`write_speed_clip` writes the video and returns its vehicles, `camera_config`
gives its camera file (calibration, a stop line and zone per approach, the
speed limit), and `match_calls` pairs `violations.csv` rows with the vehicles
they name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

LENGTH_M, WIDTH_M = 4.5, 1.8
#: lane centres either side of the road's axis, m
LANE_OFFSET_M = 2.5
#: seconds of empty road before the first vehicle (the blob detector learns the road) and after the last
LEAD_S, TAIL_S = 2.0, 1.0


@dataclass(frozen=True)
class RoadVehicle:
    index: int
    direction: str  # north: up the image; south: down it
    speed_mps: float
    enters_s: float  # its front at the frame's edge
    leaves_s: float  # its rear past the other edge

    def in_view(self, time_s: float) -> bool:
        return self.enters_s <= time_s <= self.leaves_s


def road_vehicles(speeds: Sequence[float], height_px: int, px_per_m: float) -> list[RoadVehicle]:
    """Each speed driven twice, north then south, one vehicle per lane at a time; a lane's next vehicle enters
    when the one before left, and the south lane runs half a crossing behind the north one (they meet mid-view)."""
    view_m = height_px / px_per_m + LENGTH_M
    out, t = [], LEAD_S
    for k, v in enumerate(speeds):
        cross = view_m / v
        out.append(RoadVehicle(2 * k, "north", float(v), t, t + cross))
        out.append(RoadVehicle(2 * k + 1, "south", float(v), t + cross / 2, t + cross / 2 + cross))
        t += cross + 0.2
    return out


def camera_config(width_px: int, height_px: int, px_per_m: float, speed_limit_mps: float = 13.89,
                  speed_tolerance_mps: float = 2.0) -> dict:
    """The camera file of the view: image (0, 0) is road (0, height_m), y north. A cross street runs through the
    middle third; each lane has a stop line before it and a zone upstream of that."""
    w_m, h_m = width_px / px_per_m, height_px / px_per_m
    pairs = [{"px": [0, 0], "m": [0.0, h_m]}, {"px": [width_px, 0], "m": [w_m, h_m]},
             {"px": [width_px, height_px], "m": [w_m, 0.0]}, {"px": [0, height_px], "m": [0.0, 0.0]},
             {"px": [width_px / 2, height_px / 2], "m": [w_m / 2, h_m / 2]}]
    cx, lane = width_px / 2, LANE_OFFSET_M * px_per_m
    top, bottom = _cross_street(height_px)
    edge = round(height_px / 30)
    return {"camera_id": "road-1", "device_id": "R1", "calibration": pairs,
            "stop_lines": [{"name": "n", "approach": "north", "px": [[cx, top + 2 * px_per_m],
                                                                       [cx + 2 * lane, top + 2 * px_per_m]],
                            "links": [0]},
                           {"name": "s", "approach": "south", "px": [[cx - 2 * lane, bottom - 2 * px_per_m],
                                                                       [cx, bottom - 2 * px_per_m]],
                            "links": [1]}],
            "zones": [{"name": "n-queue", "approach": "north",
                       "px": [[cx, edge], [cx + 2 * lane, edge], [cx + 2 * lane, top], [cx, top]]},
                      {"name": "s-queue", "approach": "south",
                       "px": [[cx - 2 * lane, bottom], [cx, bottom], [cx, height_px - edge],
                              [cx - 2 * lane, height_px - edge]]}],
            "speed_limit_mps": speed_limit_mps, "speed_tolerance_mps": speed_tolerance_mps}


def _cross_street(height_px: int) -> tuple[int, int]:
    """The cross street's top and bottom rows: the middle third of the view."""
    return round(height_px / 3), round(2 * height_px / 3)


def road_vehicle(index: int, direction: str, speed_mps: float, enters_s: float, height_px: int,
                 px_per_m: float) -> RoadVehicle:
    """One vehicle driving the whole view at `speed_mps`, its front at the frame's edge at `enters_s`."""
    return RoadVehicle(index, direction, float(speed_mps), enters_s,
                       enters_s + (height_px / px_per_m + LENGTH_M) / speed_mps)


def write_speed_clip(path, speeds: Sequence[float], fps: float, *, width_px: int = 400, height_px: int = 400,
                     px_per_m: float = 8.0, seed: int = 3, fourcc: str = "mp4v") -> list[RoadVehicle]:
    """Write the clip (`road_vehicles(speeds, ...)` at `fps`) to `path`; returns its vehicles."""
    vehicles = road_vehicles(speeds, height_px, px_per_m)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width_px, height_px))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write a {fourcc} video here")
    try:
        for frame, _t in road_frames(vehicles, fps, width_px=width_px, height_px=height_px, px_per_m=px_per_m,
                                     seed=seed):
            writer.write(frame)
    finally:
        writer.release()
    return vehicles


def road_frames(vehicles: Sequence[RoadVehicle], fps: float, *, width_px: int = 400, height_px: int = 400,
                px_per_m: float = 8.0, seed: int = 3, hidden: Iterable[tuple[int, float, float]] = ()):
    """(BGR frame, time_s) of the road with `vehicles`, to `TAIL_S` after the last left. `hidden`: (vehicle index,
    from_s, to_s): the vehicle is not drawn then (an occlusion, or a run of frames the detector missed it in), so
    its track breaks and a new one picks it up."""
    hidden = list(hidden)
    rng = np.random.default_rng(seed)
    road = np.full((height_px, width_px, 3), (40, 90, 40), np.uint8)
    cx = width_px / 2
    road[:, round(cx - 10 * px_per_m):round(cx + 10 * px_per_m)] = (85, 85, 85)
    top, bottom = _cross_street(height_px)
    road[top:bottom, :] = (85, 85, 85)
    length, width = LENGTH_M * px_per_m, WIDTH_M * px_per_m
    end_s = max(v.leaves_s for v in vehicles) + TAIL_S
    for i in range(int(end_s * fps)):
        t = i / fps
        frame = road.copy()
        for v in vehicles:
            if not v.in_view(t) or any(k == v.index and a <= t < b for k, a, b in hidden):
                continue
            gone_px = v.speed_mps * px_per_m * (t - v.enters_s)  # how far its front is into the view
            if v.direction == "north":
                x, top = cx - LANE_OFFSET_M * px_per_m, height_px - gone_px
                colour = (255, 255, 255)
            else:
                x, top = cx + LANE_OFFSET_M * px_per_m, gone_px - length
                colour = (0, 0, 220)
            cv2.rectangle(frame, (round(x - width / 2), round(top)), (round(x + width / 2), round(top + length)),
                          colour, -1)
        noisy = frame.astype(np.float32) + rng.normal(0.0, 3.0, frame.shape)
        yield np.clip(noisy, 0, 255).astype(np.uint8), t


def match_calls(rows: Iterable[dict], vehicles: Sequence[RoadVehicle]) -> list[tuple[dict, RoadVehicle | None]]:
    """Each speeding row of a `vision run` (violations.csv as dicts) with the vehicle it names: the one in view at
    its time in the lane its approach says (a `north` approach is the lane driven south, as the zones say)."""
    out = []
    for row in rows:
        if row["kind"] != "speeding":
            continue
        direction = "south" if row["approach"] == "north" else "north"
        t = float(row["time_s"])
        named = [v for v in vehicles if v.direction == direction and v.in_view(t)]
        out.append((row, named[0] if len(named) == 1 else None))
    return out
