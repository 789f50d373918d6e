"""Per-interval records of a live run, built as it goes, in the store's ingestion format.

An offline run's records are built after the run from SUMO's files
(`runtime/records.py`); a live run has no "after", so the same record is
accumulated tick by tick from what the loop already has: the signal states
it sent, the stop-bar passages the field reports each step (with vehicle
types, classed by the vClass the simulator gives each type), the queues on
each approach, and preemptions. At each interval's end
the records of every intersection are handed to the store writer, so
`/api/v1/dashboard/live-metrics` follows the run.

A run with a simulator (`--field sumo`) counts vehicles from SUMO's stop-bar
loops (`passage`). A run fed by detector feeds and cameras (`--field none`)
has no vehicles to see: it counts them from what the feed says about its
stop-bar detectors (`feed_count`, `feed_on`), and what no feed measures (the
vehicles' waits, their speeds and classes) is None in its records, never a 0
that would read as "nobody waited". The two never add up: a feed run has no
SUMO passages, and a simulator run's records take no feed data.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping

from ...core.types import Intersection
from ...store.vehicle_classes import is_emergency, record_class

CLASSES = ("car", "bus", "truck", "bike", "rickshaw")


class LiveRecords:
    """Accumulates one interval per intersection and approach; `close_interval` returns the records."""

    def __init__(self, intersections: list[Intersection], approach_direction: dict[str, str], interval_s: float,
                 begin_s: float, wall0: dt.datetime, simulation_id: str, *,
                 feed_stopbars: Mapping[tuple[str, int], str] | None = None,
                 vtype_classes: Mapping[str, str] | None = None):
        """`feed_stopbars`: in a run fed by detector feeds (`--field none`), the stop-bar detectors whose data
        count the vehicles passed, (device id, channel) -> lane; None in a simulator's run, whose passages come
        from SUMO's loops (`passage`) and which takes no feed data (were both counted, one vehicle would be
        two). `vtype_classes`: each vehicle type's SUMO vClass, from the run's route and additional files
        (`sim.outputs.read_vtype_classes`: asking SUMO before the run changes its traffic); a type not among
        them (or without them) counts as SUMO's default, a passenger car."""
        self.interval_s = interval_s
        self._vclass_of: dict[str, str] = dict(vtype_classes or {})  # vehicle type -> its vClass
        self.feed_stopbars = dict(feed_stopbars) if feed_stopbars is not None else None
        self.simulation_id = simulation_id
        self._wall0 = wall0  # wall time (with its zone) at simulated t = 0; see `start_wall_clock`
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
        self._deferred: list[tuple[str, tuple]] = []  # feed data stamped after the open interval's end
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
        # feed runs: per stop-bar (device, channel), vehicles counted by count messages and on-events seen
        self._feed_counted: dict[tuple[str, int], int] = {}
        #: the counts this interval took, by (device, channel, their interval's end): a lowered correction of
        #: one of them is taken here; of one an interval already written, not
        self._counts_taken: set[tuple[str, int, float]] = set()
        self._feed_ons: dict[tuple[str, int], int] = defaultdict(int)
        self._onsets: set[tuple[str, str, float]] = set()  # (device, approach, time) of approach-wide onsets

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
        """A vehicle of type `vtype` crossed a stop-bar loop: counted in its type's class, by the type's vClass."""
        d = self._lane_dir.get(lane)
        if d is None:
            return
        vclass = self._vclass_of.get(vtype, "passenger")  # not in the files: SUMO's default type's class
        self._counts[(tls, d)][record_class(vclass)] += 1
        if is_emergency(vclass):
            self._emergency.add((tls, d))

    @property
    def feed_run(self) -> bool:
        """Whether the vehicles are counted from detector feeds (`--field none`), not from a simulator."""
        return self.feed_stopbars is not None

    def feed_count(self, tls: str, channel: int, count_veh: int, time_s: float) -> None:
        """A feed's count at a detector over an interval ending at `time_s`: at a stop-bar detector, that many
        vehicles passed. A channel that sends counts is counted by them alone in the interval (its on-events,
        if it sends both, are the same vehicles)."""
        if self._later(time_s, ("count", tls, channel, count_veh, time_s)):
            return
        if count_veh < 0 and (tls, channel, time_s) not in self._counts_taken:
            # a lowered correction (`feeds.DetectorFeed`) of a count an interval already written took: that
            # record stands, and taken from this one it would count vehicles this interval never lost (below 0,
            # a record the store refuses)
            return
        if self.feed_stopbars is not None and (tls, channel) in self.feed_stopbars:
            self._feed_counted[(tls, channel)] = max(0, self._feed_counted.get((tls, channel), 0) + count_veh)
            self._counts_taken.add((tls, channel, time_s))

    def feed_on(self, tls: str, channel: int, time_s: float, *, approach_wide: bool = False) -> None:
        """A detector went on (hi-res 82) at `time_s`: at a stop-bar detector, a vehicle arrived at the stop
        bar (ATSPM's volume is the count of on-events). `approach_wide`: the event stands for a zone that covers
        the whole approach and is logged once per lane's channel (a camera zone, `vision.source`): one vehicle
        per approach and moment, not one per lane."""
        if self._later(time_s, ("on", tls, channel, time_s, approach_wide)):
            return
        lane = self.feed_stopbars.get((tls, channel)) if self.feed_stopbars is not None else None
        if lane is None:
            return
        if approach_wide:
            onset = (tls, self._lane_dir.get(lane, "?"), round(time_s, 1))
            if onset in self._onsets:
                return
            self._onsets.add(onset)
        self._feed_ons[(tls, channel)] += 1

    def _later(self, time_s: float, item: tuple) -> bool:
        """Feed data stamped after the open interval's end (a sender may run up to 5 s ahead of the loop) wait
        for the interval they belong to; data stamped before its start (late) are counted in it."""
        if self.feed_stopbars is None or time_s <= self.interval_end_s:
            return False
        self._deferred.append(item)
        return True

    def _feed_vehicles(self, tls: str, direction: str) -> int | None:
        """Vehicles over the approach's stop bars from the feed, None when none of them reported in the
        interval (a silent feed is not "no vehicles")."""
        total, heard = 0, False
        for (dev, ch), lane in self.feed_stopbars.items():
            if dev != tls or self._lane_dir.get(lane) != direction:
                continue
            if (dev, ch) in self._feed_counted:
                total += self._feed_counted[(dev, ch)]
                heard = True
            elif (dev, ch) in self._feed_ons:
                total += self._feed_ons[(dev, ch)]
                heard = True
        return total if heard else None

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

    def start_wall_clock(self, wall0: dt.datetime) -> None:
        """The run's wall clock from the loop's first tick on (`wall0` at simulated t = 0), the one its
        live_events.csv and a detector feed's times follow: records stamp their intervals on it."""
        self._wall0 = wall0

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
                status, since = self._status_since.get((tls, d), ("RED", self._start_s))
                signal = {"direction": d, "signal_status": status, "signal_timer": round(max(0.0, end - since), 1),
                          "green_time_allocated": round(min(self.interval_s, self._green_s[(tls, d)]), 1)}
                signals.append({**signal, **(self._feed_approach(tls, d) if self.feed_run
                                             else self._field_approach(tls, d))})
            if not signals:
                continue
            metrics = self._feed_metrics(tls, signals) if self.feed_run else self._field_metrics(tls, signals)
            out.append({"simulation_id": self.simulation_id, "timestamp": stamp, "intersection_id": tls,
                        "signals": signals, "metrics": {**metrics, "emergency_overrides": self._preempts[tls]}})
        self._start_s = end
        self._reset()
        deferred, self._deferred = self._deferred, []
        for kind, *args in deferred:  # feed data stamped in the interval that begins now (or later)
            if kind == "count":
                self.feed_count(*args)
            else:
                self.feed_on(*args[:3], approach_wide=args[3])
        return out

    def _field_approach(self, tls: str, d: str) -> dict:
        """An approach as a simulator sees it: every vehicle, its class, and how long the standing ones waited."""
        counts = self._counts[(tls, d)]
        n = self._wait_samples[(tls, d)]
        return {"vehicle_counts": dict(counts), "emergency_vehicle_present": (tls, d) in self._emergency,
                "vehicles_crossed": sum(counts.values()),
                "avg_wait_time": round(self._wait_sum[(tls, d)] / n, 2) if n else 0.0}

    def _field_metrics(self, tls: str, signals: list[dict]) -> dict:
        passed = sum(s["vehicles_crossed"] for s in signals)
        queue = self._queue_end[tls]
        waits = [s["avg_wait_time"] for s in signals]
        k = self._speed_samples[tls]
        return {"total_vehicles_passed": passed,
                "avg_wait_time_all_sides": round(sum(waits) / len(waits), 2),
                "throughput": round(passed / (passed + queue), 4) if passed + queue else 1.0,
                "avg_speed": round(self._speed_sum[tls] / k * 3.6, 2) if k else 0.0,  # km/h
                "fuel_saved": 0.0, "co2_saved": 0.0}  # no baseline runs beside a live corridor

    def _feed_approach(self, tls: str, d: str) -> dict:
        """An approach as a detector feed sees it: vehicles over its stop bars, nothing of their classes, their
        waits or emergency vehicles among them (None: not measured, not none)."""
        return {"vehicle_counts": None, "emergency_vehicle_present": None,
                "vehicles_crossed": self._feed_vehicles(tls, d), "avg_wait_time": None}

    def _feed_metrics(self, tls: str, signals: list[dict]) -> dict:
        """Vehicles passed (the approaches that reported; None when none did), the share of the vehicles seen
        that were served (passed over passed plus the estimated queue at the interval's end, as offline), and
        None for what a point detector cannot measure: waits, speeds, and the fuel and CO2 they would give."""
        known = [s["vehicles_crossed"] for s in signals if s["vehicles_crossed"] is not None]
        passed = sum(known) if known else None
        queue = self._queue_end[tls]
        throughput = None if passed is None else round(passed / (passed + queue), 4) if passed + queue else 1.0
        return {"total_vehicles_passed": passed, "avg_wait_time_all_sides": None, "throughput": throughput,
                "avg_speed": None, "fuel_saved": None, "co2_saved": None}


def network_figures(rows: list[dict], interval_s: float, end_s: float | None) -> dict:
    """One interval's records summed over the network, as the dashboard charts them: vehicles over the stop
    bars (and per hour), and the delay proxy: over the signals, the mean time the vehicles standing on the
    approaches at the interval's end had waited (the records' `avg_wait_time_all_sides`).

    A figure no record measured (a feed run's waits; its vehicles while no stop bar reported) is None, which
    the dashboard leaves out of its charts, not 0."""
    passed_known = [int(p) for r in rows if (p := r["metrics"].get("total_vehicles_passed")) is not None]
    passed = sum(passed_known) if passed_known else None
    waits = [float(w) for r in rows if (w := r["metrics"].get("avg_wait_time_all_sides")) is not None]
    return {"timestamp": rows[0]["timestamp"] if rows else None, "end_s": end_s, "signals": len(rows),
            "vehicles_passed": passed, "flow_vph": round(passed * 3600.0 / interval_s, 1) if passed is not None
            else None, "mean_wait_s": round(sum(waits) / len(waits), 2) if waits else None}


def store_record(record: dict) -> dict | None:
    """A record as the store's ingestion format (`store.schemas.IntersectionRecord`) can hold it, or None.

    What the record did not measure stays None (NULL in the store, left out of its averages and sums): a feed
    run's waits, speeds, vehicle classes, emergency vehicles, fuel and CO2, and the vehicles of an approach
    whose detectors were silent. A feed run's record with no vehicle count at all (no stop bar reported) is
    left out of the store: the store's vehicle counts and served shares are never NULL."""
    if record["metrics"]["total_vehicles_passed"] is None:
        return None
    return record


def _status(state: str, links: list[int]) -> str:
    chars = {state[i] for i in links if i < len(state)}
    if chars & {"G", "g"}:
        return "GREEN"
    if "y" in chars or "Y" in chars:
        return "YELLOW"
    return "RED"
