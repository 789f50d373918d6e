"""Ground-truth metrics of a run, computed from SUMO's own outputs.

Delay follows the RESCO benchmark: per vehicle, timeLoss + departDelay,
averaged over every vehicle in the demand, including those still driving at
the end and those never inserted (SUMO writes both with
`--tripinfo-output.write-unfinished/undeparted`). Without the last two, a
controller that gridlocks the network looks good because its worst vehicles
never finish.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .outputs import PersonTrip, Trip


@dataclass(frozen=True)
class NetworkMetrics:
    avg_delay_s: float | None  # None: no vehicle was due in the window
    avg_wait_s: float | None  # None: no vehicle departed
    avg_travel_time_s: float | None  # None: no vehicle arrived
    stops_per_veh: float | None  # None: no vehicle departed
    throughput_veh: int
    vehicles_total: int
    running_at_end: int
    never_inserted: int
    avg_queue_veh: float
    max_queue_veh: int
    co2_kg: float
    fuel_l: float
    emergency_vehicles: int
    #: mean per emergency vehicle of RESCO's delay (time loss + wait to enter), s; None: no emergency vehicle
    emergency_delay_s: float | None
    #: mean times an emergency vehicle that entered came to a halt (SUMO tripinfo waitingCount), stops per vehicle
    emergency_stops_per_veh: float | None
    #: the most halts of one emergency vehicle, stops
    emergency_stops_max: int | None
    #: mean time an emergency vehicle that entered stood halted (tripinfo waitingTime: at a red, in a queue), s
    emergency_wait_s: float | None
    #: the longest one emergency vehicle stood halted in total, s
    emergency_wait_max_s: float | None
    pedestrians: int
    #: mean per pedestrian of SUMO's time loss over its whole walk ("pedestrians: time lost per walk (SUMO)" in
    #: the tables), s: not ATSPM's pedestrian delay, the wait at one crossing from the push to the walk
    #: (`analytics.atspm`). A walk still under way at the end counts the time it has stood so far (SUMO gives it
    #: no time loss)
    ped_delay_s: float | None  # None: no pedestrian
    walking_at_end: int
    #: per pedestrian, the time it stood over its walk (`PersonTrip.walk_wait_s`: at a signal, its wait at the
    #: crosswalks for the walk, added up where it crosses more than one; one still walking: so far): the mean, s
    ped_wait_s: float | None = None  # None: no pedestrian
    #: the 95th percentile of those waits (nearest rank: 95 % of the pedestrians waited this long or less), s
    ped_wait_p95_s: float | None = None
    #: the longest one pedestrian waited, s
    ped_wait_max_s: float | None = None
    #: pedestrians who waited longer than `LONG_PED_WAIT_S`
    ped_long_waits: int = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: a pedestrian's wait counted as long, s (`ped_long_waits`): this project's threshold, no standard's. One who
#: just misses a walk waits about a whole cycle for the next, and 60 s is a short cycle
LONG_PED_WAIT_S = 60.0


def ped_wait_figures(waits_s: list[float]) -> dict:
    """The mean, 95th percentile, maximum and count over `LONG_PED_WAIT_S` of the pedestrians' waits: the mean
    alone hides the pedestrian who arrives just after the walk and waits a whole cycle. The percentile is the
    nearest rank (numpy's "inverted_cdf"): a wait some pedestrian had, never one between two. None where there
    is no pedestrian."""
    if not waits_s:
        return {"ped_wait_s": None, "ped_wait_p95_s": None, "ped_wait_max_s": None, "ped_long_waits": 0}
    import numpy as np

    return {"ped_wait_s": round(sum(waits_s) / len(waits_s), 3),
            "ped_wait_p95_s": round(float(np.percentile(waits_s, 95, method="inverted_cdf")), 3),
            "ped_wait_max_s": round(max(waits_s), 3),
            "ped_long_waits": sum(1 for w in waits_s if w > LONG_PED_WAIT_S)}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _mean_or_none(xs: list[float], ndigits: int = 3) -> float | None:
    """The mean of a figure some runs have none of (no vehicle due, departed or arrived, no emergency vehicle, no
    pedestrian): None there, never 0 s, which a comparison would average in as the best value there is."""
    return round(sum(xs) / len(xs), ndigits) if xs else None


def emergency_vtypes(trips: Iterable[Trip], emergency_ids: set[str]) -> frozenset[str]:
    """The vehicle types of the emergency vehicles that entered (`emergency_ids`: those SUMO gave vClass
    "emergency", the vehicles preemption serves): a vClass is its vType's, so a vehicle of one of these types that
    never entered is an emergency vehicle too. Never read from the text of a type's id: "emergency_shuttle" may be
    a bus, and "ambulance" an emergency vehicle."""
    return frozenset(t.vtype for t in trips if t.vehicle_id in emergency_ids)


def network_metrics(trips: list[Trip], persons: list[PersonTrip], queue_samples: list[tuple[float, str, int]],
                    emergency_ids: Iterable[str], emissions: list[dict] | None = None,
                    emergency_types: Iterable[str] = ()) -> NetworkMetrics:
    """Network-wide metrics; CO2 and fuel from the emissions edgeData when given, else from trips.

    `emergency_types`: the vehicle types of vClass emergency as the simulator knew them (`vtype_classes.json`),
    so an emergency vehicle that never entered counts even when none of its type did."""
    emergency_ids = set(emergency_ids)
    departed = [t for t in trips if t.status != "undeparted"]
    arrived = [t for t in trips if t.status == "arrived"]
    ev_types = emergency_vtypes(trips, emergency_ids) | frozenset(emergency_types)
    ev = [t for t in trips if t.vehicle_id in emergency_ids or t.vtype in ev_types]
    ev_driven = [t for t in ev if t.status != "undeparted"]
    # SUMO writes every person it has loaded, those due after the end too (depart -1); its own statistics, like
    # the vehicles' undeparted rows, count only the ones due in the window, and a person's walk is never blocked
    walked = [p for p in persons if p.depart_s >= 0]
    per_time: dict[float, int] = defaultdict(int)
    for ts, _tls, q in queue_samples:
        per_time[ts] += q
    return NetworkMetrics(
        avg_delay_s=_mean_or_none([t.delay_s for t in trips]),
        avg_wait_s=_mean_or_none([t.waiting_s for t in departed]),
        avg_travel_time_s=_mean_or_none([t.duration_s for t in arrived]),
        stops_per_veh=_mean_or_none([float(t.stops) for t in departed], 4),
        throughput_veh=len(arrived),
        vehicles_total=len(trips),
        running_at_end=sum(1 for t in trips if t.status == "running"),
        never_inserted=sum(1 for t in trips if t.status == "undeparted"),
        avg_queue_veh=round(_mean([float(v) for v in per_time.values()]), 3),
        max_queue_veh=max(per_time.values(), default=0),
        co2_kg=round((sum(r.get("CO2_abs", 0.0) for r in emissions) if emissions else
                      sum(t.co2_mg for t in trips)) / 1e6, 4),
        fuel_l=round((sum(r.get("fuel_abs", 0.0) for r in emissions) if emissions else
                      sum(t.fuel_ml for t in trips)) / 1e3, 4),
        emergency_vehicles=len(ev),
        emergency_delay_s=_mean_or_none([t.delay_s for t in ev]),
        emergency_stops_per_veh=_mean_or_none([float(t.stops) for t in ev_driven]),
        emergency_stops_max=max((t.stops for t in ev_driven), default=None),
        emergency_wait_s=_mean_or_none([t.waiting_s for t in ev_driven]),
        emergency_wait_max_s=max((round(t.waiting_s, 3) for t in ev_driven), default=None),
        pedestrians=len(walked),
        ped_delay_s=_mean_or_none([p.time_loss_s for p in walked]),
        walking_at_end=sum(1 for p in walked if p.arrival_s < 0),
        **ped_wait_figures([p.walk_wait_s for p in walked]),
    )


def scheduled_depart_s(trip: Trip, end_s: float) -> float:
    """When a vehicle was due to enter: SUMO gives a vehicle that entered its entry time and wait to enter, and
    one that never entered its wait up to the end (`departDelay` counted to the time it wrote the row)."""
    if trip.status == "undeparted":
        return end_s - trip.depart_delay_s
    return trip.depart_s - trip.depart_delay_s


@dataclass(frozen=True)
class Counted:
    """What a run's summary figures count after a warm-up of the network."""

    trips: list[Trip]
    persons: list[PersonTrip]
    queue_samples: list[tuple[float, str, int]]
    edgedata: list[dict]
    emissions: list[dict]


def after_warmup(from_s: float, end_s: float, trips: list[Trip], persons: list[PersonTrip],
                 queue_samples: list[tuple[float, str, int]], edgedata: list[dict],
                 emissions: list[dict]) -> Counted:
    """The vehicles and pedestrians due from `from_s` on, and the samples and intervals from then: a vehicle
    that entered an empty network in the warm-up met no queue and would flatter any controller. A vehicle due
    after the warm-up counts whole, the part of its trip in a queue left from the warm-up included."""
    return Counted(
        trips=[t for t in trips if scheduled_depart_s(t, end_s) >= from_s - 1e-6],
        persons=[p for p in persons if p.depart_s >= from_s - 1e-6],  # a person due later than the end has -1
        queue_samples=[q for q in queue_samples if q[0] >= from_s - 1e-6],
        edgedata=[r for r in edgedata if r["begin_s"] >= from_s - 1e-6],
        emissions=[r for r in emissions if r["begin_s"] >= from_s - 1e-6],
    )


def intersection_metrics(edgedata: list[dict], emissions: list[dict], queue_samples: list[tuple[float, str, int]],
                         approach_edges: dict[str, set[str]]) -> dict[str, dict]:
    """Per intersection: delay and waiting per vehicle on its approaches, throughput, queues, CO2."""
    out: dict[str, dict] = {}
    edge_to_tls = {e: tls for tls, edges in approach_edges.items() for e in edges}
    agg: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in edgedata:
        tls = edge_to_tls.get(row["edge"])
        if tls is not None:
            a = agg[tls]
            a["time_loss_s"] += row.get("timeLoss", 0.0)
            a["waiting_s"] += row.get("waitingTime", 0.0)
            a["left_veh"] += row.get("left", 0.0)
            # every vehicle that was on the approach: the loss above counts those still on it at the end too
            a["on_veh"] += row.get("entered", 0.0) + row.get("departed", 0.0)
    co2: dict[str, float] = defaultdict(float)
    for row in emissions:
        tls = edge_to_tls.get(row["edge"])
        if tls is not None:
            co2[tls] += row.get("CO2_abs", 0.0)
    queues: dict[str, list[int]] = defaultdict(list)
    for _t, tls, q in queue_samples:
        queues[tls].append(q)
    for tls in approach_edges:
        a = agg.get(tls, {})
        left = a.get("left_veh", 0.0)
        on = a.get("on_veh", 0.0) or left  # files without entered/departed: those that left, as before
        out[tls] = {
            "delay_per_veh_s": round(a.get("time_loss_s", 0.0) / on, 3) if on else None,
            "wait_per_veh_s": round(a.get("waiting_s", 0.0) / on, 3) if on else None,
            "throughput_veh": int(left),
            "avg_queue_veh": round(_mean([float(q) for q in queues.get(tls, [])]), 3),
            "max_queue_veh": max(queues.get(tls, []), default=0),
            "co2_kg": round(co2.get(tls, 0.0) / 1e6, 4),
        }
    return out


def time_series(trips: list[Trip], edgedata: list[dict], emissions: list[dict],
                queue_samples: list[tuple[float, str, int]], approach_edges: dict[str, set[str]],
                begin_s: float, end_s: float, interval_s: float) -> list[dict]:
    """Rows per interval: network-wide (scope 'network') and per intersection."""
    n = max(1, int(-(-(end_s - begin_s) // interval_s)))

    def bin_of(t: float) -> int:
        return min(n - 1, max(0, int((t - begin_s) // interval_s)))

    net = [defaultdict(float) for _ in range(n)]
    for t in trips:
        if t.status == "arrived":
            b = net[bin_of(t.arrival_s)]
            b["arrived_veh"] += 1
            b["_delay_sum"] += t.delay_s
            b["_wait_sum"] += t.waiting_s
    queue_net: list[dict[float, int]] = [defaultdict(int) for _ in range(n)]
    queue_tls: dict[str, list[list[int]]] = defaultdict(lambda: [[] for _ in range(n)])
    for ts, tls, q in queue_samples:
        queue_net[bin_of(ts)][ts] += q
        queue_tls[tls][bin_of(ts)].append(q)
    for row in emissions:
        b = net[bin_of(row["begin_s"])]
        b["co2_kg"] += row.get("CO2_abs", 0.0) / 1e6
        b["fuel_l"] += row.get("fuel_abs", 0.0) / 1e3
    edge_to_tls = {e: tls for tls, edges in approach_edges.items() for e in edges}
    per_tls: dict[str, list[dict[str, float]]] = defaultdict(lambda: [defaultdict(float) for _ in range(n)])
    for row in edgedata:
        tls = edge_to_tls.get(row["edge"])
        if tls is None:
            continue
        b = per_tls[tls][bin_of(row["begin_s"])]
        b["_loss"] += row.get("timeLoss", 0.0)
        b["_wait"] += row.get("waitingTime", 0.0)
        b["left_veh"] += row.get("left", 0.0)
        b["_on"] += row.get("entered", 0.0) + row.get("departed", 0.0)  # on the approach in the interval
    for row in emissions:  # an intersection's CO2 and fuel: its approach edges', as metrics.json's co2_kg
        tls = edge_to_tls.get(row["edge"])
        if tls is not None:
            b = per_tls[tls][bin_of(row["begin_s"])]
            b["co2_kg"] += row.get("CO2_abs", 0.0) / 1e6
            b["fuel_l"] += row.get("fuel_abs", 0.0) / 1e3
    rows = []
    for k in range(n):
        b = net[k]
        arrived = b.get("arrived_veh", 0.0)
        qs = list(queue_net[k].values())
        rows.append({
            "begin_s": begin_s + k * interval_s, "scope": "network",
            "arrived_veh": int(arrived),
            "avg_delay_s": round(b["_delay_sum"] / arrived, 3) if arrived else None,
            "avg_wait_s": round(b["_wait_sum"] / arrived, 3) if arrived else None,
            "avg_queue_veh": round(_mean([float(q) for q in qs]), 3),
            "co2_kg": round(b.get("co2_kg", 0.0), 5),
            "fuel_l": round(b.get("fuel_l", 0.0), 5),
        })
    for tls in sorted(approach_edges):
        for k in range(n):
            b = per_tls[tls][k]
            left = b.get("left_veh", 0.0)
            on = b.get("_on", 0.0) or left  # files without entered/departed: those that left, as before
            qs = queue_tls[tls][k]
            rows.append({
                "begin_s": begin_s + k * interval_s, "scope": tls,
                "arrived_veh": int(left),
                "avg_delay_s": round(b["_loss"] / on, 3) if on else None,
                "avg_wait_s": round(b["_wait"] / on, 3) if on else None,
                "avg_queue_veh": round(_mean([float(q) for q in qs]), 3),
                "co2_kg": round(b.get("co2_kg", 0.0), 5) if emissions else None,
                "fuel_l": round(b.get("fuel_l", 0.0), 5) if emissions else None,
            })
    return rows
