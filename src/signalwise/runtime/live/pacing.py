"""Pacing a loop against the wall clock: `speed` simulated seconds per wall second, or unpaced.

Deadlines are absolute (start + sim time / speed), so a late tick does not
push every later one back; how late each tick started is what the profiler
reports as pacing lateness.
"""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, speed: float | None, start_sim_s: float, clock=time.monotonic, sleep=time.sleep):
        """`speed` None = as fast as possible (`--speed max`)."""
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or 'max', not {speed}")
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self.rebase(start_sim_s)

    def rebase(self, sim_s: float) -> None:
        """Restart the schedule at `sim_s` now (after a pause, a recovery rewind or a speed change)."""
        self._origin_wall = self._clock()
        self._origin_sim = sim_s

    def set_speed(self, speed: float | None, sim_s: float) -> None:
        self.speed = speed
        self.rebase(sim_s)

    def deadline(self, sim_s: float) -> float:
        return self._origin_wall + (sim_s - self._origin_sim) / self.speed

    def wait_until(self, sim_s: float) -> float:
        """Sleep until simulated time `sim_s` is due; returns how late the next tick starts, seconds (>= 0).

        Late because the tick's work overran its slot, or because the sleep
        woke up late: both delay the next tick.
        """
        if self.speed is None:
            return 0.0
        due = self.deadline(sim_s)
        now = self._clock()
        if now < due:
            self._sleep(due - now)
            now = self._clock()
        return max(0.0, now - due)
