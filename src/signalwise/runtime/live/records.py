"""Per-interval records of a live run, built as it goes, in the store's ingestion format.

An offline run's records are built after the run from SUMO's files
(`runtime/records.py`); a live run has no "after", so the same record is
accumulated tick by tick from what the loop already has: the signal states
it sent, the stop-bar passages the field reports each step (with vehicle
types), the queues on each approach, and preemptions. At each interval's end
the records of every intersection are handed to the store writer, so
`/api/v1/dashboard/live-metrics` follows the run.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from ...core.types import Intersection
from ..records import vehicle_class

CLASSES = ("car", "bus", "truck", "bike", "rickshaw")


class LiveRecords:
    """Accumulates one interval per intersection and approach; `close_interval` returns the records."""

    def __init__(self, intersections: list[Intersection], approach_direction: dict[str, str], interval_s: float,
                 begin_s: float, wall0: dt.datetime, simulation_id: str):
        self.interval_s = interval_s
        self.simulation_id = simulation_id
        self._wall0 = wall0  # naive local wall time at simulated t = 0
        self._start_s = begin_s
        self._dirs: dict[str, dict[str, list[int]]] = {}
        self._lane_dir = approach_direction
        for inter in intersections:
            by_dir: dict[str, list[int]] = defaultdict(list)
            for m in inter.movements:
                d = approach_direction.get(m.in_lane)
                if d and not m.is_crosswalk:
                    by_dir[d].append(m.link_index)
            self._dirs[inter.id] = dict(by_dir)
        self._state: dict[str, tuple[float, str]] = {}  # last state sent and since when
        self._status_since: dict[tuple[str, str], tuple[str, float]] = {}
        self._reset()

    def _reset(self) -> None:
        self._green_s: dict[tuple[str, str], float] = defaultdict(float)
        self._counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(CLASSES, 0))
        self._emergency: set[tuple[str, str]] = set()
        self._wait_sum: dict[tuple[str, str], float] = defaultdict(float)
        self._wait_samples: dict[tuple[str, str], int] = defaultdict(int)
        self._speed_sum: dict[str, float] = defaultdict(float)
        self._speed_samples: dict[str, int] = defaultdict(int)
        self._preempts: dict[str, int] = defaultdict(int)
        self._queue_end: dict[str, int] = defaultdict(int)

    @property
    def interval_end_s(self) -> float:
        return self._start_s + self.interval_s

    def state(self, time_s: float, tls: str, state: str) -> None:
        """A signal state sent at `time_s` (green seconds accrue until the next one)."""
        self._accrue(tls, time_s)
        self._state[tls] = (time_s, state)
        for d, links in self._dirs.get(tls, {}).items():
            status = _status(state, links)
            if self._status_since.get((tls, d), ("", 0.0))[0] != status:
                self._status_since[(tls, d)] = (status, time_s)

    def _accrue(self, tls: str, until_s: float) -> None:
        prev = self._state.get(tls)
        if prev is None:
            return
        since, state = prev
        seconds = max(0.0, until_s - max(since, self._start_s))
        for d, links in self._dirs.get(tls, {}).items():
            if _status(state, links) == "GREEN":
                self._green_s[(tls, d)] += seconds
        self._state[tls] = (max(since, until_s), state)

    def passage(self, tls: str, lane: str, vtype: str) -> None:
        """A vehicle crossed a stop-bar loop."""
        d = self._lane_dir.get(lane)
        if d is None:
            return
        self._counts[(tls, d)][vehicle_class(vtype)] += 1
        if "emergency" in vtype.lower():
            self._emergency.add((tls, d))

    def queues(self, tls: str, queue_by_dir: dict[str, int], wait_s_by_dir: dict[str, float] | None = None) -> None:
        """A sample of each approach's halting vehicles (and their accumulated waiting)."""
        self._queue_end[tls] = sum(queue_by_dir.values())
        for d, w in (wait_s_by_dir or {}).items():
            self._wait_sum[(tls, d)] += w
            self._wait_samples[(tls, d)] += 1

    def speed(self, tls: str, mean_speed_mps: float) -> None:
        self._speed_sum[tls] += mean_speed_mps
        self._speed_samples[tls] += 1

    def preempt(self, tls: str) -> None:
        self._preempts[tls] += 1

    def stamp_at(self, time_s: float) -> str:
        """The `timestamp` a record of an interval beginning at simulated `time_s` carries (UTC, ISO 8601)."""
        stamp = (self._wall0 + dt.timedelta(seconds=time_s)).astimezone(dt.UTC).replace(microsecond=0)
        return stamp.isoformat().replace("+00:00", "Z")

    def close_interval(self) -> list[dict]:
        """The records of the interval that ends now; the next interval begins."""
        end = self.interval_end_s
        out = []
        stamp = self.stamp_at(self._start_s)
        for tls, dirs in self._dirs.items():
            self._accrue(tls, end)
            signals = []
            for d in sorted(dirs):
                counts = self._counts[(tls, d)]
                crossed = sum(counts.values())
                status, since = self._status_since.get((tls, d), ("RED", self._start_s))
                n = self._wait_samples[(tls, d)]
                signals.append({
                    "direction": d, "vehicle_counts": dict(counts),
                    "emergency_vehicle_present": (tls, d) in self._emergency, "signal_status": status,
                    "signal_timer": round(max(0.0, end - since), 1), "vehicles_crossed": crossed,
                    "avg_wait_time": round(self._wait_sum[(tls, d)] / n, 2) if n else 0.0,
                    "green_time_allocated": round(min(self.interval_s, self._green_s[(tls, d)]), 1),
                })
            if not signals:
                continue
            passed = sum(s["vehicles_crossed"] for s in signals)
            queue = self._queue_end[tls]
            waits = [s["avg_wait_time"] for s in signals]
            k = self._speed_samples[tls]
            out.append({
                "simulation_id": self.simulation_id, "timestamp": stamp,
                "intersection_id": tls, "signals": signals,
                "metrics": {
                    "total_vehicles_passed": passed,
                    "avg_wait_time_all_sides": round(sum(waits) / len(waits), 2),
                    "throughput": round(passed / (passed + queue), 4) if passed + queue else 1.0,
                    "avg_speed": round(self._speed_sum[tls] / k * 3.6, 2) if k else 0.0,  # km/h
                    "fuel_saved": 0.0, "co2_saved": 0.0,  # no baseline runs beside a live corridor
                    "emergency_overrides": self._preempts[tls],
                },
            })
        self._start_s = end
        self._reset()
        return out


def network_figures(rows: list[dict], interval_s: float, end_s: float | None) -> dict:
    """One interval's records summed over the network, as the dashboard charts them: vehicles over the stop
    bars (and per hour), and the delay proxy: over the signals, the mean time the vehicles standing on the
    approaches at the interval's end had waited (the records' `avg_wait_time_all_sides`)."""
    passed = sum(int(r["metrics"].get("total_vehicles_passed") or 0) for r in rows)
    waits = [float(r["metrics"].get("avg_wait_time_all_sides") or 0.0) for r in rows]
    return {"timestamp": rows[0]["timestamp"] if rows else None, "end_s": end_s, "signals": len(rows),
            "vehicles_passed": passed, "flow_vph": round(passed * 3600.0 / interval_s, 1),
            "mean_wait_s": round(sum(waits) / len(waits), 2) if waits else 0.0}


def _status(state: str, links: list[int]) -> str:
    chars = {state[i] for i in links if i < len(state)}
    if chars & {"G", "g"}:
        return "GREEN"
    if "y" in chars or "Y" in chars:
        return "YELLOW"
    return "RED"
