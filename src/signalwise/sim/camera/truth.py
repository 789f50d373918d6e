"""The exact truth of every rendered frame: where each vehicle is, in metres and in each view's pixels.

Read from SUMO through one context subscription per step (every vehicle and
pedestrian near the signal in a single TraCI round trip). Besides the
per-frame rows it keeps the events a camera is graded on: each stop-line
crossing with the signal its link showed, red-light crossings, and
speeding (over the limit plus tolerance for at least `sustain_s`, while in
view).

Times: SUMO executes a signal switch at the start of a step and moves the
vehicles under it, so the state read after the step that ends at t held from
t - step; a signal state is stamped with that time (as a run's
`signal_states.csv` stamps the time it was set), a crossing with the moment
the front bumper passed the stop line, interpolated within the step.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .scene import Scene
from .views import CameraView, boxes_corners_m, pixel_boxes

#: below this a vehicle counts as stopped (it moves less than 2 pixels a second at 4 px/m)
STOPPED_BELOW_MPS = 0.5
#: how far from the signal vehicles and pedestrians are read: the view's half-diagonal plus a margin
SUBSCRIBE_MARGIN_M = 30.0

#: x_m, y_m: the vehicle's centre; front_x_m, front_y_m: the middle of its front bumper (SUMO's position), the road
#: point a `front` anchor stands for (the grader compares a track's anchor with the same point of the vehicle)
TRUTH_HEADER = ["frame", "time_s", "object_id", "kind", "vtype", "x_m", "y_m", "x_px", "y_px", "x1", "y1", "x2",
                "y2", "speed_mps", "stopped", "visible", "lane", "front_x_m", "front_y_m"]
CROSSINGS_HEADER = ["time_s", "vehicle_id", "device_id", "lane", "link_index", "stop_line", "approach",
                    "signal_state", "link_state", "speed_mps", "red"]
VIOLATIONS_HEADER = ["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s", "end_s", "injected"]


@dataclass
class _Speeding:
    over_since_s: float | None = None
    event: dict | None = None


@dataclass
class TruthRecorder:
    """Collects the truth of each frame, writes `truth.csv` per view and the run's event files."""

    api: object
    scene: Scene
    views: list[CameraView]
    out_dir: Path
    step_s: float
    speed_threshold_mps: float
    sustain_s: float = 1.0
    injected: dict[str, set[str]] = field(default_factory=lambda: {"red_light": set(), "speeding": set()})

    def __post_init__(self):
        self._writers = {}
        self._files = []
        for view in self.views:
            (self.out_dir / view.name).mkdir(parents=True, exist_ok=True)
            fh = open(self.out_dir / view.name / "truth.csv", "w", newline="")  # noqa: SIM115 - closed in close()
            self._files.append(fh)
            w = csv.writer(fh)
            w.writerow(TRUTH_HEADER)
            self._writers[view.name] = w
        self.crossings: list[list] = []
        self.violations: list[dict] = []
        self.signal_states: list[tuple[float, str, str]] = []
        self._prev: dict[str, tuple[str, float, float]] = {}  # vehicle -> (lane, lane position, speed)
        self._speeding: dict[str, _Speeding] = {}
        self._lane_length: dict[str, float] = {}
        self._stop_line_of = self.scene.stop_line_of_lane()
        self._approach_of = self.scene.approach_of_lane()
        self._route_approach: dict[str, str] = {}
        self.frames = 0
        self.rows = 0

    # -- subscriptions ---------------------------------------------------------------------------------
    def subscribe(self, radius_m: float) -> None:
        import traci.constants as tc

        api, tls = self.api, self.scene.device_id
        self._vehicle_vars = (tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED, tc.VAR_LANE_ID, tc.VAR_LANEPOSITION,
                              tc.VAR_LENGTH, tc.VAR_WIDTH, tc.VAR_TYPE)
        self._person_vars = (tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED, tc.VAR_LENGTH, tc.VAR_WIDTH)
        junction = self.scene.junction_id
        self._junction = junction
        api.junction.subscribeContext(junction, tc.CMD_GET_VEHICLE_VARIABLE, radius_m, self._vehicle_vars)
        api.junction.subscribeContext(junction, tc.CMD_GET_PERSON_VARIABLE, radius_m, self._person_vars)
        api.trafficlight.subscribe(tls, (tc.TL_RED_YELLOW_GREEN_STATE,))
        self._tc = tc

    def objects(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """This step's vehicles and pedestrians near the signal: id -> {variable: value}.

        Both context subscriptions sit on the junction, and TraCI files their
        results under it together: a vehicle is told apart by its lane.
        """
        results = self.api.junction.getContextSubscriptionResults(self._junction) or {}
        vehicles, persons = {}, {}
        for oid, values in results.items():
            (vehicles if self._tc.VAR_LANE_ID in values else persons)[oid] = values
        return vehicles, persons

    def signal_state(self) -> str:
        res = self.api.trafficlight.getSubscriptionResults(self.scene.device_id)
        return res[self._tc.TL_RED_YELLOW_GREEN_STATE]

    # -- per step ----------------------------------------------------------------------------------
    def track_signal(self, t: float) -> str:
        """Record the state that held during the step ending at `t`; returns it."""
        state = self.signal_state()
        if not self.signal_states or self.signal_states[-1][2] != state:
            self.signal_states.append((round(t - self.step_s, 3), self.scene.device_id, state))
        return state

    def record_events(self, t: float, vehicles: dict[str, dict], state: str) -> None:
        """Stop-line crossings and speeding, from this step's vehicles (call every step, recorded or not)."""
        tc = self.tc
        view = self.views[0]
        seen = set()
        ids = list(vehicles)
        in_view = np.zeros(len(ids), dtype=bool)
        if ids:
            corners = boxes_corners_m(np.array([vehicles[v][tc.VAR_POSITION] for v in ids]),
                                      np.array([vehicles[v][tc.VAR_ANGLE] for v in ids]),
                                      np.array([vehicles[v][tc.VAR_LENGTH] for v in ids]),
                                      np.array([vehicles[v][tc.VAR_WIDTH] for v in ids]))
            in_view = view.inside(view.to_px(corners.mean(axis=1)))
        for vid, visible in zip(ids, in_view, strict=True):
            v = vehicles[vid]
            lane, pos, speed = v[tc.VAR_LANE_ID], v[tc.VAR_LANEPOSITION], v[tc.VAR_SPEED]
            seen.add(vid)
            if lane in self._approach_of:
                self._route_approach[vid] = self._approach_of[lane]
            prev = self._prev.get(vid)
            if prev is not None and prev[0] in self._stop_line_of and lane not in self._stop_line_of:
                # over the line into the junction (a lane change on the approach is no crossing)
                self._crossed(vid, prev, lane, pos, speed, t, state)
            self._prev[vid] = (lane, pos, speed)
            self._speed_check(vid, t, speed, bool(visible))
        for vid in list(self._prev):
            if vid not in seen:  # left the subscription's range (or arrived)
                del self._prev[vid]
                self._speed_check(vid, t, 0.0, False)
                self._speeding.pop(vid, None)

    @property
    def tc(self):
        return self._tc

    def _crossed(self, vid, prev, lane, pos, speed, t, state) -> None:
        in_lane, prev_pos, prev_speed = prev
        length = self._lane_length.get(in_lane)
        if length is None:
            length = self._lane_length[in_lane] = self.api.lane.getLength(in_lane)
        before = max(length - prev_pos, 0.0)
        after = max(pos, 0.0) if lane.startswith(":") else 0.0
        share = before / (before + after) if before + after > 0 else 1.0
        t_cross = t - self.step_s + share * self.step_s
        line = self._stop_line_of[in_lane]
        link = self.scene.link_of.get((in_lane, lane))
        link_state = state[link] if link is not None else ""
        line_state = "".join(state[i] for i in line.links)
        speed_at = prev_speed + share * (speed - prev_speed)
        red = link_state == "r"
        self.crossings.append([round(t_cross, 3), vid, self.scene.device_id, in_lane,
                               "" if link is None else link, line.name, line.approach, line_state, link_state,
                               round(speed_at, 3), int(red)])
        if red:
            self.violations.append({"time_s": round(t_cross, 3), "vehicle_id": vid, "kind": "red_light",
                                    "approach": line.approach, "speed_mps": round(speed_at, 3),
                                    "start_s": round(t_cross, 3), "end_s": round(t_cross, 3),
                                    "injected": int(vid in self.injected["red_light"])})

    def _speed_check(self, vid: str, t: float, speed: float, in_view: bool) -> None:
        s = self._speeding.setdefault(vid, _Speeding())
        over = in_view and speed > self.speed_threshold_mps
        if not over:
            s.over_since_s = None
            return
        if s.over_since_s is None:
            s.over_since_s = t
        if s.event is not None:
            s.event["end_s"] = round(t, 3)
            s.event["speed_mps"] = max(s.event["speed_mps"], round(speed, 3))
        elif t - s.over_since_s >= self.sustain_s - 1e-9:
            s.event = {"time_s": round(t, 3), "vehicle_id": vid, "kind": "speeding",
                       "approach": self._approach_of_vehicle(vid), "speed_mps": round(speed, 3),
                       "start_s": round(s.over_since_s, 3), "end_s": round(t, 3),
                       "injected": int(vid in self.injected["speeding"])}
            self.violations.append(s.event)

    def _approach_of_vehicle(self, vid: str) -> str:
        """The approach a vehicle came in on (seen on it, else the first of its route's edges that is one)."""
        if vid not in self._route_approach:
            by_edge = {lane.rsplit("_", 1)[0]: a for lane, a in self._approach_of.items()}
            try:
                route = self.api.vehicle.getRoute(vid)
            except Exception:  # noqa: BLE001 - it has left
                route = ()
            self._route_approach[vid] = next((by_edge[e] for e in route if e in by_edge), "")
        return self._route_approach[vid]

    def record_frame(self, frame: int, t: float, vehicles: dict[str, dict], persons: dict[str, dict]) -> None:
        """One row per object visible in each view (all objects at once: about 60 near the signal)."""
        tc = self.tc
        objs = [(vid, "vehicle", v) for vid, v in vehicles.items()] + [(pid, "person", p) for pid, p in
                                                                          persons.items()]
        self.frames += 1
        if not objs:
            return
        fronts = np.array([v[tc.VAR_POSITION] for _o, _k, v in objs], dtype=float).reshape(-1, 2)
        corners = boxes_corners_m(fronts,
                                  np.array([v[tc.VAR_ANGLE] for _o, _k, v in objs]),
                                  np.array([v[tc.VAR_LENGTH] for _o, _k, v in objs]),
                                  np.array([v[tc.VAR_WIDTH] for _o, _k, v in objs]))
        centres = corners.mean(axis=1)
        speeds = np.array([v[tc.VAR_SPEED] for _o, _k, v in objs])
        source_visible = None
        for view in self.views:
            boxes = pixel_boxes(view, corners)
            if source_visible is None:
                source_visible = boxes[:, 4]  # the top-down screenshot every other view is warped from
            else:
                # a warped view shows only what the screenshot held: the rest of its frame is black
                boxes[:, 4] = np.minimum(boxes[:, 4], source_visible)
            centre_px = view.to_px(centres)
            rows = []
            for i in np.flatnonzero(boxes[:, 4] > 0.0):
                oid, kind, v = objs[i]
                x1, y1, x2, y2, visible = boxes[i]
                rows.append((frame, f"{t:.3f}", oid, kind, v.get(tc.VAR_TYPE, "person"), f"{centres[i, 0]:.3f}",
                             f"{centres[i, 1]:.3f}", f"{centre_px[i, 0]:.2f}", f"{centre_px[i, 1]:.2f}", f"{x1:.2f}",
                             f"{y1:.2f}", f"{x2:.2f}", f"{y2:.2f}", f"{speeds[i]:.3f}",
                             int(speeds[i] < STOPPED_BELOW_MPS), f"{visible:.3f}", v.get(tc.VAR_LANE_ID, ""),
                             f"{fronts[i, 0]:.3f}", f"{fronts[i, 1]:.3f}"))
            self._writers[view.name].writerows(rows)
            self.rows += len(rows)

    def mark_injected(self, kind: str, vid: str) -> None:
        self.injected[kind].add(vid)

    # -- files ------------------------------------------------------------------------------------
    def close(self, first_frame_s: float | None = None) -> None:
        """Write the event files; events over before `first_frame_s` (the warm-up's) are left out."""
        for fh in self._files:
            fh.close()
        self._files = []
        start = -np.inf if first_frame_s is None else first_frame_s - self.step_s - 1e-9
        self.crossings = [c for c in self.crossings if c[0] >= start]
        self.violations = [v for v in self.violations if v["end_s"] >= start]
        _write(self.out_dir / "crossings_truth.csv", CROSSINGS_HEADER, self.crossings)
        for v in self.violations:  # a speeder marked after its event began
            v["injected"] = int(v["vehicle_id"] in self.injected[v["kind"]])
        _write(self.out_dir / "violations_truth.csv", VIOLATIONS_HEADER,
               [[v[k] for k in VIOLATIONS_HEADER] for v in sorted(self.violations, key=lambda v: v["time_s"])])
        _write(self.out_dir / "signal_states.csv", ["time_s", "device_id", "state"], self.signal_states)


def _write(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
