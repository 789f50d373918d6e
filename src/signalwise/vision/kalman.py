"""A constant-velocity Kalman filter on a box (centre x, centre y, width, height), time-stepped in seconds.

ByteTrack's filter steps once per frame; ours steps by the time between
frames, so a dropped frame or a variable frame rate does not bend the
prediction. Velocities are pixels per second; noise scales with the box size.
"""

from __future__ import annotations

import numpy as np

#: measurement noise, a share of the box height (blob edges move by a few pixels)
MEASURE_STD = 0.05
#: process noise: position and velocity random walk per second, shares of the box height
POSITION_STD_PER_S = 0.1
VELOCITY_STD_PER_S = 1.5
#: the first velocity guess is this uncertain, box heights per second (a vehicle covers ~3 lengths a second)
INITIAL_VELOCITY_STD = 4.0

_H = np.hstack([np.eye(4), np.zeros((4, 4))])


def box_to_z(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = xyxy
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float64)


def z_to_box(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = z[:4]
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class BoxKalman:
    """State (cx, cy, w, h, vx, vy, vw, vh) with covariance."""

    __slots__ = ("x", "P")

    def __init__(self, xyxy: np.ndarray):
        z = box_to_z(xyxy)
        size = max(z[2], z[3], 1.0)
        self.x = np.concatenate([z, np.zeros(4)])
        pos = 2 * MEASURE_STD * size
        vel = INITIAL_VELOCITY_STD * size
        self.P = np.diag([pos, pos, pos, pos, vel, vel, vel * 0.1, vel * 0.1]) ** 2

    @property
    def box(self) -> np.ndarray:
        return z_to_box(self.x)

    @property
    def velocity_px_s(self) -> np.ndarray:
        return self.x[4:6]

    def predict(self, dt_s: float) -> None:
        dt = max(0.0, dt_s)
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * dt
        size = max(self.x[2], self.x[3], 1.0)
        q_pos = (POSITION_STD_PER_S * size) ** 2 * dt
        q_vel = (VELOCITY_STD_PER_S * size) ** 2 * dt
        self.x = F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = F @ self.P @ F.T + np.diag([q_pos] * 4 + [q_vel, q_vel, q_vel * 0.01, q_vel * 0.01])

    def update(self, xyxy: np.ndarray) -> None:
        z = box_to_z(xyxy)
        size = max(z[2], z[3], 1.0)
        R = np.eye(4) * (MEASURE_STD * size) ** 2
        S = _H @ self.P @ _H.T + R
        K = self.P @ _H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - _H @ self.x)
        self.P = (np.eye(8) - K @ _H) @ self.P
