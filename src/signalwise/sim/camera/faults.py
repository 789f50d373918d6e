"""Injected violations: drivers who run red lights, drivers who speed.

A red-light runner is a free-flowing driver, alone on its lane, a short way
from a stop line whose light is red and will stay red until it arrives; we
tell SUMO to ignore the light for that vehicle (`setSpeedMode`: right of way
and red-light braking off) and hold its speed, then give it back its normal
behaviour once it is over the line. A speeder is a car entering the network
with a speed factor well over the limit plus tolerance (`setSpeedFactor`).
Every other vehicle keeps at least `ordinary_margin_mps` under the
threshold, so that "speeding" in the truth is never a matter of a few
centimetres a second.

The truth records what happened, not what was intended: a speeder stuck
behind a slow car never speeds, and is no event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .scene import Scene

#: vehicles that never run a red light for us: a red light does not bind them in an emergency
EXEMPT_CLASSES = frozenset({"emergency", "authority"})
#: SUMO's speed mode with every check on (its default)
SPEED_MODE_DEFAULT = 31
#: safe speed, acceleration and deceleration limits kept; right of way and braking for red lights off
SPEED_MODE_RUN_RED = 7


@dataclass(frozen=True)
class FaultPlan:
    """How often to inject each kind of violation (an interval of None injects none)."""

    red_light_every_s: float | None = 20.0
    speeder_every_s: float | None = 15.0
    speeder_factor: tuple[float, float] = (1.35, 1.6)
    #: ordinary vehicles are capped this far under the speeding threshold (None: leave them as SUMO drew them)
    ordinary_margin_mps: float | None = 1.0
    #: a runner is picked this far from its stop line (metres)
    red_light_distance_m: tuple[float, float] = (20.0, 60.0)
    red_light_min_speed_mps: float = 8.0


@dataclass
class FaultInjector:
    api: object
    scene: Scene
    plan: FaultPlan
    speed_threshold_mps: float
    seed: int = 1
    log: list[tuple[float, str, str, str]] = field(default_factory=list)  # (time, vehicle, kind, detail)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._next_red_s: float | None = None
        self._next_speeder_s: float | None = None
        self._running: dict[str, str] = {}  # runner -> the approach lane it was picked on
        self._stop_line_of = self.scene.stop_line_of_lane()
        self._lane_length: dict[str, float] = {}
        self.speeders: set[str] = set()
        self.runners: set[str] = set()
        self._exempt: set[str] = set()  # emergency vehicles: they may go through a red light

    def on_departed(self, t: float, vehicle_ids) -> None:
        """Pick speeders among the cars just entering; cap everyone else under the threshold."""
        if self._next_speeder_s is None:
            self._next_speeder_s = t
        limit = self.scene.speed_limit_mps
        for vid in vehicle_ids:
            vclass = self.api.vehicle.getVehicleClass(vid)
            if vclass in EXEMPT_CLASSES:
                self._exempt.add(vid)
            every = self.plan.speeder_every_s
            if every is not None and t >= self._next_speeder_s and vclass == "passenger":
                factor = self._rng.uniform(*self.plan.speeder_factor)
                self.api.vehicle.setSpeedFactor(vid, factor)
                self.speeders.add(vid)
                self.log.append((round(t, 3), vid, "speeding", f"speedFactor {factor:.3f}"))
                self._next_speeder_s = t + every * self._rng.uniform(0.7, 1.3)
                continue
            if self.plan.ordinary_margin_mps is not None:
                cap = (self.speed_threshold_mps - self.plan.ordinary_margin_mps) / limit
                if self.api.vehicle.getSpeedFactor(vid) > cap:
                    self.api.vehicle.setSpeedFactor(vid, cap)

    def on_step(self, t: float, vehicles: dict[str, dict], state: str, tc) -> None:
        """Release runners that are over their line; start a new one when one is due."""
        for vid in list(self._running):
            v = vehicles.get(vid)
            if v is None or v[tc.VAR_LANE_ID] not in self._stop_line_of:  # over its line (or gone)
                self._release(vid)
        every = self.plan.red_light_every_s
        if every is None:
            return
        if self._next_red_s is None:
            self._next_red_s = t
        if t < self._next_red_s:
            return
        vid = self._pick_runner(t, vehicles, state, tc)
        if vid is not None:
            self._next_red_s = t + every * self._rng.uniform(0.7, 1.3)

    def _pick_runner(self, t, vehicles, state, tc) -> str | None:
        lo, hi = self.plan.red_light_distance_m
        candidates = []
        for vid, v in vehicles.items():
            lane = v[tc.VAR_LANE_ID]
            line = self._stop_line_of.get(lane)
            if line is None or vid in self._running or v[tc.VAR_SPEED] < self.plan.red_light_min_speed_mps:
                continue
            if vid in self._exempt:
                continue
            if any(state[i] != "r" for i in line.links):
                continue
            dist = self._length(lane) - v[tc.VAR_LANEPOSITION]
            if lo <= dist <= hi:
                candidates.append((dist, vid, lane, v[tc.VAR_SPEED]))
        api = self.api
        for dist, vid, lane, speed in sorted(candidates):
            upcoming = api.vehicle.getNextTLS(vid)
            if not upcoming or upcoming[0][0] != self.scene.device_id or upcoming[0][3] not in "r":
                continue
            red_left_s = api.trafficlight.getNextSwitch(self.scene.device_id) - t
            if dist / speed + 1.5 > red_left_s:
                continue  # it would arrive on green or yellow
            leader = api.vehicle.getLeader(vid, dist + 10.0)
            if leader is not None and leader[0] and leader[1] < dist + 5.0:
                continue  # someone is queued or waiting ahead of it
            api.vehicle.setSpeedMode(vid, SPEED_MODE_RUN_RED)
            api.vehicle.setSpeed(vid, speed)
            self._running[vid] = lane
            self.runners.add(vid)
            self.log.append((round(t, 3), vid, "red_light",
                             f"{dist:.1f} m before stop line {self._stop_line_of[lane].name} at {speed:.1f} m/s, "
                             f"red for {red_left_s:.1f} s more"))
            return vid
        return None

    def _release(self, vid: str) -> None:
        self._running.pop(vid, None)
        try:
            self.api.vehicle.setSpeedMode(vid, SPEED_MODE_DEFAULT)
            self.api.vehicle.setSpeed(vid, -1)
        except Exception:  # noqa: BLE001 - it left the network: nothing to give back
            pass

    def _length(self, lane: str) -> float:
        length = self._lane_length.get(lane)
        if length is None:
            length = self._lane_length[lane] = self.api.lane.getLength(lane)
        return length
