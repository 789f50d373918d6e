"""A synthetic top-down intersection with exact truth: for tests, benchmarks, and trying the pipeline.

Four approaches, one lane each way, a two-phase signal (north-south, then
east-west). Vehicles are coloured rectangles on a textured grey road; they
queue at the stop line on red and leave on green, some run the red and some
speed, as asked. Every frame comes with the truth: each vehicle's box,
road position, speed and whether it is moving, and the signal state.

World metres: origin at the junction centre, x east, y north. Image pixels:
`px = cx + x * px_per_m`, `py = cy - y * px_per_m`. `camera_config()` gives a
camera file (calibration, stop lines, approach zones) for this geometry, and
`warp` (a 3x3 homography applied to the image) gives an oblique view whose
truth is transformed with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

#: approach -> (heading unit vector (dx, dy) of travel, lane offset vector from the road axis)
APPROACHES = {
    "north": ((0.0, -1.0), (-1.75, 0.0)),  # comes from the north, drives south on the west half
    "east": ((-1.0, 0.0), (0.0, 1.75)),
    "south": ((0.0, 1.0), (1.75, 0.0)),
    "west": ((1.0, 0.0), (0.0, -1.75)),
}
#: link index of each approach in the signal state string
LINKS = {"north": 0, "east": 1, "south": 2, "west": 3}
LENGTH_M, WIDTH_M = 4.5, 1.8
STOP_LINE_M = 10.0  # distance of each stop line from the centre
MIN_GAP_M = 2.0
ACCEL_MPS2, DECEL_MPS2 = 2.5, 4.5


@dataclass
class Vehicle:
    id: int
    approach: str
    s_m: float  # distance travelled along its path; the stop line is at s = stop_s
    speed_mps: float
    desired_mps: float
    color: tuple[int, int, int]
    runs_red: bool = False
    crossed_at_s: float | None = None
    crossed_state: str | None = None


@dataclass(frozen=True)
class TruthVehicle:
    id: int
    approach: str
    box_px: tuple[float, float, float, float]
    x_m: float
    y_m: float
    speed_mps: float
    moving: bool


@dataclass(frozen=True)
class TruthCrossing:
    time_s: float
    vehicle_id: int
    approach: str
    state: str  # the approach's link character at the crossing


@dataclass
class Scene:
    width_px: int = 640
    height_px: int = 480
    px_per_m: float = 8.0
    fps: float = 25.0
    seed: int = 0
    arrivals_per_s: float = 0.12  # per approach
    speed_limit_mps: float = 13.89
    speeder_share: float = 0.0  # share of vehicles wanting limit + speeder_excess_mps
    speeder_excess_mps: float = 6.0
    red_runner_share: float = 0.0
    green_s: float = 20.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    noise: float = 4.0  # per-pixel noise (grey levels) on every frame
    warp: np.ndarray | None = None  # 3x3 homography applied to the rendered image (oblique views)
    vehicles: list[Vehicle] = field(default_factory=list)
    crossings: list[TruthCrossing] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 1
        self._next_arrival = {a: float(self._rng.exponential(1 / self.arrivals_per_s)) if self.arrivals_per_s else
                              math.inf for a in APPROACHES}
        self.time_s = 0.0
        self.frame_index = 0
        self._background = self._draw_background()
        self._noise = [self._rng.normal(0, self.noise, (self.height_px, self.width_px, 1)).astype(np.float32)
                       for _ in range(6)] if self.noise else []
        half_w = self.width_px / 2 / self.px_per_m
        half_h = self.height_px / 2 / self.px_per_m
        self._span_m = {"north": half_h, "south": half_h, "east": half_w, "west": half_w}

    # -- geometry --------------------------------------------------------------------------------
    @property
    def center_px(self) -> tuple[float, float]:
        return self.width_px / 2, self.height_px / 2

    def to_px(self, x_m, y_m):
        cx, cy = self.center_px
        return cx + np.asarray(x_m) * self.px_per_m, cy - np.asarray(y_m) * self.px_per_m

    def stop_s(self, approach: str) -> float:
        return self._span_m[approach] + LENGTH_M - STOP_LINE_M

    def _path_start_m(self, approach: str) -> float:
        return self._span_m[approach] + LENGTH_M  # distance from the centre where a vehicle starts

    def position_m(self, v: Vehicle) -> tuple[float, float]:
        """The vehicle's front centre in world metres."""
        (hx, hy), (ox, oy) = APPROACHES[v.approach]
        start = self._path_start_m(v.approach)
        d = v.s_m - start  # signed distance past the centre along the heading
        return ox + hx * d, oy + hy * d

    def centre_m(self, v: Vehicle) -> tuple[float, float]:
        (hx, hy), _ = APPROACHES[v.approach]
        fx, fy = self.position_m(v)
        return fx - hx * LENGTH_M / 2, fy - hy * LENGTH_M / 2

    def corners_m(self, v: Vehicle) -> np.ndarray:
        (hx, hy), _ = APPROACHES[v.approach]
        fx, fy = self.position_m(v)
        bx, by = fx - hx * LENGTH_M, fy - hy * LENGTH_M
        nx, ny = -hy * WIDTH_M / 2, hx * WIDTH_M / 2
        return np.array([[fx + nx, fy + ny], [fx - nx, fy - ny], [bx - nx, by - ny], [bx + nx, by + ny]])

    # -- the signal ------------------------------------------------------------------------------
    @property
    def cycle_s(self) -> float:
        return 2 * (self.green_s + self.yellow_s + self.all_red_s)

    def state_at(self, t: float) -> str:
        """4 links (north, east, south, west approaches): NS green first, then EW."""
        half = self.green_s + self.yellow_s + self.all_red_s
        u = t % self.cycle_s
        ns = u < half
        w = u if ns else u - half
        c = "G" if w < self.green_s else "y" if w < self.green_s + self.yellow_s else "r"
        pair = (c, "r") if ns else ("r", c)
        return f"{pair[0]}{pair[1]}{pair[0]}{pair[1]}"

    # -- the camera file for this geometry --------------------------------------------------------
    def camera_config(self, camera_id: str = "cam-1", device_id: str = "B1") -> dict:
        """Calibration pairs, stop lines and approach zones in (possibly warped) image pixels."""
        pts_m = [(-30.0, -25.0), (30.0, -25.0), (30.0, 25.0), (-30.0, 25.0), (0.0, 0.0), (15.0, -10.0)]
        pairs = [{"px": [round(float(p), 3) for p in self.image_px(*pm)], "m": list(pm)} for pm in pts_m]
        stop_lines, zones = [], []
        for a, ((hx, hy), (ox, oy)) in APPROACHES.items():
            # the stop line spans the approach lane, STOP_LINE_M before the centre
            cx_, cy_ = ox - hx * STOP_LINE_M, oy - hy * STOP_LINE_M
            nx, ny = -hy * 1.75, hx * 1.75
            line = [self.image_px(cx_ + nx, cy_ + ny), self.image_px(cx_ - nx, cy_ - ny)]
            stop_lines.append({"name": a[0], "approach": a, "links": [LINKS[a]],
                               "px": [[round(float(c), 2) for c in p] for p in line]})
            far = STOP_LINE_M + 20.0
            quad = [(cx_ + nx, cy_ + ny), (cx_ - nx, cy_ - ny),
                    (ox - hx * far - nx, oy - hy * far - ny), (ox - hx * far + nx, oy - hy * far + ny)]
            zones.append({"name": f"{a[0]}-queue", "approach": a, "channel": LINKS[a] + 1,
                          "px": [[round(float(c), 2) for c in self.image_px(*q)] for q in quad]})
        return {"camera_id": camera_id, "device_id": device_id, "calibration": pairs, "stop_lines": stop_lines,
                "zones": zones, "speed_limit_mps": self.speed_limit_mps, "speed_tolerance_mps": 2.0,
                "frame_size": [self.width_px, self.height_px]}

    def image_px(self, x_m: float, y_m: float) -> tuple[float, float]:
        px, py = self.to_px(x_m, y_m)
        if self.warp is None:
            return float(px), float(py)
        p = cv2.perspectiveTransform(np.array([[[px, py]]], np.float64), self.warp)[0, 0]
        return float(p[0]), float(p[1])

    # -- simulation ------------------------------------------------------------------------------
    def _spawn(self, t: float) -> None:
        for a in APPROACHES:
            while self._next_arrival[a] <= t:
                self._next_arrival[a] += float(self._rng.exponential(1 / self.arrivals_per_s))
                last = [v for v in self.vehicles if v.approach == a]
                if last and min(v.s_m for v in last) < LENGTH_M + MIN_GAP_M + 3:
                    continue  # no room at the edge: this arrival is lost
                speeder = self._rng.random() < self.speeder_share
                desired = self.speed_limit_mps + (self.speeder_excess_mps if speeder else
                                                  float(self._rng.uniform(-2.5, 0.5)))
                color = tuple(int(c) for c in self._rng.choice(PALETTE))
                self.vehicles.append(Vehicle(self._next_id, a, 0.0, desired, desired, color,
                                             runs_red=bool(self._rng.random() < self.red_runner_share)))
                self._next_id += 1

    def step(self, dt: float) -> None:
        t = self.time_s + dt
        self._spawn(t)
        state = self.state_at(t)
        for a in APPROACHES:
            lane = sorted((v for v in self.vehicles if v.approach == a), key=lambda v: -v.s_m)
            leader: Vehicle | None = None
            for v in lane:
                self._move(v, leader, state[LINKS[a]], dt)
                leader = v
        self.time_s = t
        self.vehicles = [v for v in self.vehicles if v.s_m < 2 * self._path_start_m(v.approach) + LENGTH_M]
        self.frame_index += 1

    def _move(self, v: Vehicle, leader: Vehicle | None, light: str, dt: float) -> None:
        stop = self.stop_s(v.approach)
        limit = math.inf
        if leader is not None:
            limit = leader.s_m - LENGTH_M - MIN_GAP_M
        if v.crossed_at_s is None and light in "ry" and not v.runs_red:
            gap = stop - v.s_m
            if light == "r" or gap > v.speed_mps ** 2 / (2 * DECEL_MPS2):  # yellow: stop when it can
                limit = min(limit, stop - 0.3)
        room = limit - v.s_m
        # the speed that still stops in the room left (v^2 = 2 b d), never above the desired speed
        safe = math.sqrt(max(0.0, 2 * DECEL_MPS2 * max(0.0, room - 0.5))) if room < math.inf else math.inf
        target = min(v.desired_mps, safe)
        if target > v.speed_mps:
            v.speed_mps = min(target, v.speed_mps + ACCEL_MPS2 * dt)
        else:
            v.speed_mps = max(target, v.speed_mps - 2 * DECEL_MPS2 * dt)
        if v.speed_mps < 0.05 and target < 0.05:
            v.speed_mps = 0.0
        before = v.s_m
        v.s_m += v.speed_mps * dt
        if v.crossed_at_s is None and before < stop <= v.s_m:
            frac = (stop - before) / max(1e-9, v.s_m - before)
            v.crossed_at_s = self.time_s + frac * dt
            v.crossed_state = self.state_at(v.crossed_at_s)[LINKS[v.approach]]
            self.crossings.append(TruthCrossing(v.crossed_at_s, v.id, v.approach, v.crossed_state))

    # -- rendering --------------------------------------------------------------------------------
    def _draw_background(self) -> np.ndarray:
        h, w = self.height_px, self.width_px
        rng = np.random.default_rng(self.seed + 1)
        img = np.full((h, w, 3), (70, 110, 75), np.float32)  # verge
        img += rng.normal(0, 6, (h, w, 1))
        cx, cy = self.center_px
        half = 3.5 * self.px_per_m
        asphalt = np.full(3, 92.0, np.float32)
        img[int(cy - half):int(cy + half)] = asphalt
        img[:, int(cx - half):int(cx + half)] = asphalt
        img[int(cy - half):int(cy + half)] += rng.normal(0, 5, (int(cy + half) - int(cy - half), w, 1))
        img[:, int(cx - half):int(cx + half)] += rng.normal(0, 5, (h, int(cx + half) - int(cx - half), 1))
        out = np.clip(img, 0, 255).astype(np.uint8)
        for (hx, hy), (ox, oy) in APPROACHES.values():  # stop lines, white
            sx, sy = ox - hx * STOP_LINE_M, oy - hy * STOP_LINE_M
            nx, ny = -hy * 1.75, hx * 1.75
            p0 = tuple(int(round(float(c))) for c in self.to_px(sx + nx, sy + ny))
            p1 = tuple(int(round(float(c))) for c in self.to_px(sx - nx, sy - ny))
            cv2.line(out, p0, p1, (225, 225, 225), 2)
        for k in range(0, max(w, h), 24):  # dashed centre lines outside the junction
            for (x0, y0, x1, y1) in ((cx, k, cx, k + 12), (k, cy, k + 12, cy)):
                if abs(x0 - cx) < half and abs(y0 - cy) < half and abs(x1 - cx) < 1 and abs(y1 - cy) < half:
                    continue
                cv2.line(out, (int(x0), int(y0)), (int(x1), int(y1)), (0, 200, 220), 1)
        return out

    def render(self) -> np.ndarray:
        img = self._background.copy()
        for v in self.vehicles:
            px, py = self.to_px(*self.corners_m(v).T)
            pts = np.stack([px, py], axis=1).round().astype(np.int32)
            cv2.fillConvexPoly(img, pts, v.color)
        if self._noise:
            n = self._noise[self.frame_index % len(self._noise)]
            img = np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)
        if self.warp is not None:
            img = cv2.warpPerspective(img, self.warp, (self.width_px, self.height_px), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=(70, 110, 75))
        return img

    def truth(self) -> list[TruthVehicle]:
        """Every vehicle wholly or partly in the image now."""
        out = []
        for v in self.vehicles:
            c = self.corners_m(v)
            px, py = self.to_px(c[:, 0], c[:, 1])
            if self.warp is not None:
                pts = cv2.perspectiveTransform(np.stack([px, py], 1)[None].astype(np.float64), self.warp)[0]
                px, py = pts[:, 0], pts[:, 1]
            x0, x1 = float(np.clip(px.min(), 0, self.width_px)), float(np.clip(px.max(), 0, self.width_px))
            y0, y1 = float(np.clip(py.min(), 0, self.height_px)), float(np.clip(py.max(), 0, self.height_px))
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            cx_m, cy_m = self.centre_m(v)
            out.append(TruthVehicle(v.id, v.approach, (x0, y0, x1, y1), cx_m, cy_m, v.speed_mps, v.speed_mps > 0.3))
        return out

    def frames(self, duration_s: float):
        """(image, time_s, truth, signal state) for every frame of `duration_s`."""
        dt = 1.0 / self.fps
        n = int(round(duration_s * self.fps))
        for _ in range(n):
            yield self.render(), self.time_s, self.truth(), self.state_at(self.time_s)
            self.step(dt)


PALETTE = np.array([(30, 30, 200), (200, 60, 30), (240, 240, 240), (20, 20, 20), (40, 180, 230),
                    (160, 40, 160), (30, 160, 40), (200, 200, 60), (120, 60, 20), (60, 60, 230)])


def write_video(path, scene: Scene, duration_s: float, fourcc: str = "mp4v") -> dict:
    """Render `duration_s` of the scene into a video file; returns its truth (vehicles per frame, crossings)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), scene.fps, (scene.width_px, scene.height_px))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write a {fourcc} video here")
    frames = []
    states = []
    try:
        for image, t, truth, state in scene.frames(duration_s):
            writer.write(image)
            frames.append((t, truth))
            states.append((t, state))
    finally:
        writer.release()
    return {"frames": frames, "crossings": list(scene.crossings), "states": states}
