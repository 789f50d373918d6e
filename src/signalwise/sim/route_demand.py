"""The nominal demand of a user's network, read from its route files: veh/h per movement (edge -> next edge).

Webster's first plan, and the shield's fallback plan, are made before anything is counted; a built-in scenario
carries its demand in its metadata, a user's network only in its route files. This reads those files over a
window (the run's first planning period) as SUMO would insert the vehicles:

- `<vehicle>` / `<trip>`: one vehicle at `depart` (`begin` is the window's begin; a vehicle `triggered` by a
  person or container, or departing `split` from another, is a ride, not an arrival at the signal, and is left out);
- `<flow>`: `vehsPerHour` (or `perHour`), `period` (`exp(λ)`: λ vehicles a second), `probability` (a
  vehicle a second with that chance) or `number` alone spread over `begin`..`end`; `number` with a rate ends
  the flow when that many are out; without `begin` it begins with the run, without `end` (or `number`) it
  lasts, as SUMO 1.28 runs them; the expected number of vehicles in the window counts, whatever their
  randomness;
- a route as its `edges`, named by `route=` (a `<route>` or a `<routeDistribution>`, whose routes count by
  their probabilities) or inside the element; `from`/`to` (with `via`) are routed on the network the fastest
  way for the vehicle's class, as SUMO routes a trip on an empty network (sumolib; the network is read only
  when some element needs it);
- `<interval begin end>` gives its flows their window; persons and containers are no vehicles and count
  nothing; a `<vTypeDistribution>` has the class of its first type;
- the vehicles, routes and types of the additional files too, as SUMO loads them (their other elements are
  passed over).

Each route's consecutive edges are its movements; the caller spreads a movement over the lanes whose
connections serve it (`scenario.nominal_lane_flows`). Vehicles of every class count, bicycles too: stop-bar
detectors count them as well.

What cannot be read this way (an origin or destination by TAZ, junction or coordinates, a route named but
defined nowhere in the route files, an element SUMO's route files do not hold, a file that is not XML) makes
`problem` say so, and no demand is given: half a demand would plan the signal for the half it knows. No
vehicle in the window is a problem too: a plan for no traffic at all is no plan. Files are read as SUMO
reads them, sorted by departure: reading stops `ROUTE_STEPS_S` past the window, as far as SUMO's own reading
ahead forgives a file that is not quite sorted.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from sumolib.miscutils import parseTime

#: SUMO's --route-steps default: how far ahead of the simulation it reads a route file
ROUTE_STEPS_S = 200.0
#: a flow's end when it has neither `end` nor `number`: it lasts (SUMO 1.28 inserts it past 24 h too)
FLOW_END_DEFAULT_S = math.inf
#: SUMO's default vehicle types and the class of each
DEFAULT_TYPES = {"DEFAULT_VEHTYPE": "passenger", "DEFAULT_BIKETYPE": "bicycle", "DEFAULT_PEDTYPE": "pedestrian",
                 "DEFAULT_TAXITYPE": "taxi", "DEFAULT_RAILTYPE": "rail_urban", "DEFAULT_CONTAINERTYPE": "ignoring"}
#: classes that never reach a stop bar as a vehicle
NOT_VEHICLES = frozenset({"pedestrian", "ignoring"})
VEHICLES = frozenset({"vehicle", "trip"})
FLOWS = frozenset({"flow"})
#: what an additional file may hold that a route file's reader takes
DEMAND_TAGS = frozenset({"vType", "vTypeDistribution", "route", "routeDistribution", "interval", *VEHICLES, *FLOWS})
#: travellers that are no vehicles, and elements that define nothing a vehicle counts by
IGNORED = frozenset({"person", "personFlow", "container", "containerFlow", "param", "include", "location"})
#: what names an origin or destination other than an edge
UNSUPPORTED_ENDS = ("fromTaz", "toTaz", "fromJunction", "toJunction", "fromXY", "toXY", "fromLonLat", "toLonLat")
#: departures that ride on another traveller, not arrivals at a stop bar
RIDES = frozenset({"triggered", "containerTriggered", "split"})


class _Unreadable(Exception):
    """Why the demand cannot be read: one sentence naming the file and element."""


@dataclass(frozen=True)
class RouteDemand:
    #: expected veh/h over the window per (edge, next edge) of the vehicles' routes
    movement_vph: dict[tuple[str, str], float] = field(default_factory=dict)
    #: why no demand could be read (then `movement_vph` is empty); None when it was
    problem: str | None = None


@dataclass
class _Traveller:
    """Expected vehicles in the window (`vehicles`) of one element, and how its route is known."""

    vehicles: float
    vclass: str
    where: str
    edges: tuple[str, ...] | None = None  # the route itself
    route_ref: str | None = None  # a <route> or <routeDistribution> id
    dist: tuple[tuple[tuple[str, ...], float], ...] | None = None  # (edges, probability) inside the element
    ends: tuple[str, ...] | None = None  # from, via..., to: routed on the network


def read_route_demand(net_file: Path, route_files: tuple[Path, ...], begin_s: float, window_s: float,
                      additional_files: tuple[Path, ...] = ()) -> RouteDemand:
    """The demand of `route_files` between `begin_s` and `begin_s + window_s`; read once per process for the same
    files (by their size and modification time) and window.

    SUMO loads vehicles and routes from additional files too: theirs count, and their other elements (detectors,
    stops, TAZ, programs) are passed over."""
    stamps = []
    for files in (route_files, additional_files):
        stamp = []
        for f in files:
            try:
                st = Path(f).stat()
            except OSError as exc:
                return RouteDemand(problem=f"{f}: not readable ({exc.strerror})")
            stamp.append((str(f), st.st_mtime_ns, st.st_size))
        stamps.append(tuple(stamp))
    return _read_cached(str(net_file), stamps[0], stamps[1], float(begin_s), float(window_s))


@functools.lru_cache(maxsize=8)
def _read_cached(net_file: str, routes: tuple, additional: tuple, begin_s: float, window_s: float) -> RouteDemand:
    if window_s <= 0:
        return RouteDemand(problem="the window is empty")
    try:
        travellers = _Reader(begin_s, window_s).read([Path(f) for f, _m, _s in routes],
                                                     [Path(f) for f, _m, _s in additional])
        flows = _movements(net_file, travellers, window_s)
    except _Unreadable as exc:
        return RouteDemand(problem=str(exc))
    except Exception as exc:  # noqa: BLE001 - every run reads this (the shield's fallback plan): an input this
        # reader did not foresee (a 'triggered' begin, a broken .gz) plans at the default, never stops the run;
        # SUMO says what is wrong with the file itself
        return RouteDemand(problem=f"the route files could not be read for a plan ({type(exc).__name__}: {exc})")
    if not flows:
        routed = any(t.ends is not None for t in travellers)
        return RouteDemand(problem=(f"no trip departing between {begin_s:g} s and {begin_s + window_s:g} s has a "
                                    "route on the network" if routed else
                                    f"no vehicle of the route files departs between {begin_s:g} s and "
                                    f"{begin_s + window_s:g} s"))
    return RouteDemand(flows)


class _Reader:
    """The travellers of route files in a window, with the definitions they name."""

    def __init__(self, begin_s: float, window_s: float):
        self.begin_s, self.end_s = begin_s, begin_s + window_s
        self.vclass = dict(DEFAULT_TYPES)
        self.routes: dict[str, tuple[str, ...]] = {}
        self.route_dists: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        self.travellers: list[_Traveller] = []

    def read(self, route_files: list[Path], additional_files: list[Path] = ()) -> list[_Traveller]:
        for path in additional_files:  # SUMO loads them first: their types and routes may serve the route files
            self._read_file(path, strict=False)
        for path in route_files:
            self._read_file(path)
        for t in self.travellers:
            if t.route_ref is not None:
                if t.route_ref in self.routes:
                    t.edges = self.routes[t.route_ref]
                elif t.route_ref in self.route_dists:
                    t.dist = tuple(self.route_dists[t.route_ref])
                else:
                    raise _Unreadable(f"{t.where} names route {t.route_ref!r}, which no route file defines")
        return self.travellers

    def _read_file(self, path: Path, strict: bool = True) -> None:
        """`strict`: an element a route file does not hold is a problem (an additional file's are passed over)."""
        depth = 0
        try:
            with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as fh:
                root = None
                for event, el in ET.iterparse(fh, events=("start", "end")):
                    if event == "start":
                        depth += 1
                        if root is None:
                            root = el
                        continue
                    depth -= 1
                    if depth != 1:
                        continue
                    start_s = self._element(path, el) if strict or el.tag in DEMAND_TAGS else None
                    root.clear()  # a big file is read in constant memory
                    if start_s is not None and start_s >= self.end_s + ROUTE_STEPS_S:
                        return  # sorted by departure, as SUMO reads it: nothing later departs in the window
        except (ET.ParseError, OSError, EOFError) as exc:
            raise _Unreadable(f"{path}: not a readable route file ({exc})") from None

    def _element(self, path: Path, el: ET.Element, interval: tuple[float, float] | None = None) -> float | None:
        """Take one top-level element; return its start (s) when it is a traveller, for the early stop."""
        tag = el.tag
        where = f"{path.name}: <{tag} id={el.get('id')!r}>" if el.get("id") else f"{path.name}: <{tag}>"
        if tag == "vType":
            self.vclass[el.get("id", "")] = el.get("vClass", "passenger")
        elif tag == "vTypeDistribution":
            kinds = [c.get("vClass", "passenger") for c in el if c.tag == "vType"]
            kinds += [self.vclass.get(name, "passenger") for name in (el.get("vTypes") or "").split()]
            for c in el:
                if c.tag == "vType":
                    self.vclass[c.get("id", "")] = c.get("vClass", "passenger")
            self.vclass[el.get("id", "")] = kinds[0] if kinds else "passenger"
        elif tag == "route":
            self.routes[el.get("id", "")] = tuple(el.get("edges", "").split())
        elif tag == "routeDistribution":
            self.route_dists[el.get("id", "")] = self._distribution(el, where)
        elif tag == "interval":
            b = _time(el.get("begin"), where, self.begin_s)
            e = _time(el.get("end"), where, FLOW_END_DEFAULT_S)
            starts = [self._element(path, c, (b, e)) for c in el]
            return min((s for s in starts if s is not None), default=None)
        elif tag in VEHICLES:
            return self._vehicle(el, where)
        elif tag in FLOWS:
            return self._flow(el, where, interval)
        elif tag not in IGNORED:
            raise _Unreadable(f"{where}: an element the route reader does not take")
        return None

    def _distribution(self, el: ET.Element, where: str) -> list[tuple[tuple[str, ...], float]]:
        out = []
        for c in el:
            if c.tag != "route":
                continue
            ref = c.get("refId")
            if ref is not None:
                if ref not in self.routes:
                    raise _Unreadable(f"{where} names route {ref!r} before any route file defines it")
                edges = self.routes[ref]
            else:
                edges = tuple(c.get("edges", "").split())
                if c.get("id"):
                    self.routes[c.get("id")] = edges
            out.append((edges, _number(c.get("probability", "1"), where, "probability")))
        total = sum(p for _e, p in out)
        return [(e, p / total) for e, p in out] if total > 0 else []

    def _vehicle(self, el: ET.Element, where: str) -> float | None:
        depart = (el.get("depart") or "").strip()
        if depart in RIDES:
            return None
        t = self.begin_s if depart in ("begin", "now") else _time(depart, where, None)
        if t is None:
            raise _Unreadable(f"{where}: no depart time")
        if self.begin_s <= t < self.end_s:
            self._add(el, where, 1.0)
        return t

    def _flow(self, el: ET.Element, where: str, interval: tuple[float, float] | None) -> float:
        b0, e0 = interval or (self.begin_s, FLOW_END_DEFAULT_S)  # SUMO begins a flow with the simulation
        b = _time(el.get("begin"), where, b0)
        end = _time(el.get("end"), where, None)
        number = el.get("number")
        rate = _rate_per_s(el, where)
        if rate is None:
            if number is None:
                raise _Unreadable(f"{where}: neither vehsPerHour, period, probability nor number")
            e = end if end is not None else e0
            if not math.isfinite(e):
                raise _Unreadable(f"{where}: a number of vehicles with neither an end nor a rate")
            rate = _number(number, where, "number") / (e - b) if e > b else 0.0
        else:
            e = end if end is not None else e0
            if number is not None and rate > 0:  # the flow ends when `number` are out
                e = min(e, b + _number(number, where, "number") / rate)
        overlap = min(e, self.end_s) - max(b, self.begin_s)
        if overlap > 0 and rate > 0:
            self._add(el, where, rate * overlap)
        return b

    def _add(self, el: ET.Element, where: str, vehicles: float) -> None:
        vclass = self.vclass.get(el.get("type", "DEFAULT_VEHTYPE"), "passenger")
        if vclass in NOT_VEHICLES:
            return
        t = _Traveller(vehicles, vclass, where)
        for name in UNSUPPORTED_ENDS:
            if el.get(name) is not None:
                raise _Unreadable(f"{where}: an origin or destination by {name}, which the route reader does not "
                                  "route (only edges)")
        inner_route = next((c for c in el if c.tag == "route"), None)
        inner_dist = next((c for c in el if c.tag == "routeDistribution"), None)
        if inner_route is not None:
            t.edges = tuple(inner_route.get("edges", "").split())
        elif inner_dist is not None:
            t.dist = tuple(self._distribution(inner_dist, where))
        elif el.get("route") is not None:
            t.route_ref = el.get("route")
        elif el.get("from") is not None and el.get("to") is not None:
            t.ends = (el.get("from"), *(el.get("via") or "").split(), el.get("to"))
        else:
            raise _Unreadable(f"{where}: no route, and no from and to edges")
        self.travellers.append(t)


def _time(text: str | None, where: str, default: float | None) -> float | None:
    if text is None or not text.strip():
        return default
    try:
        value = float(parseTime(text.strip()))
    except (ValueError, IndexError):
        raise _Unreadable(f"{where}: {text!r} is not a time") from None
    if not math.isfinite(value):
        raise _Unreadable(f"{where}: {text!r} is not a time")
    return value


def _rate_per_s(el: ET.Element, where: str) -> float | None:
    """Vehicles a second of a flow's rate attribute, None when it has none (then `number` spreads it)."""
    for name in ("vehsPerHour", "perHour"):
        if el.get(name) is not None:
            return _number(el.get(name), where, name) / 3600.0
    period = el.get("period")
    if period is not None:
        period = period.strip()
        if period.startswith("exp(") and period.endswith(")"):
            return _number(period[4:-1], where, "period")
        value = _number(period, where, "period")
        return 1.0 / value if value > 0 else 0.0
    if el.get("probability") is not None:
        return _number(el.get("probability"), where, "probability")  # a chance each second
    return None


def _number(text: str, where: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Unreadable(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _Unreadable(f"{where}: {name} {text!r} is not a number of 0 or more")
    return value


def _movements(net_file: str, travellers: list[_Traveller], window_s: float) -> dict[tuple[str, str], float]:
    """veh/h per (edge, next edge) of the travellers' routes; trips routed on the network where they need it."""
    per_hour = 3600.0 / window_s
    router = _Router(net_file) if any(t.ends is not None for t in travellers) else None
    flows: dict[tuple[str, str], float] = {}
    for t in travellers:
        if t.dist is not None:
            routes = list(t.dist)
        elif t.ends is not None:
            edges = router.route(t.ends, t.vclass)
            if edges is None:
                continue  # SUMO cannot route it either: it never enters
            routes = [(edges, 1.0)]
        else:
            routes = [(t.edges or (), 1.0)]
        for edges, share in routes:
            vph = t.vehicles * share * per_hour
            for a, b in itertools.pairwise(edges):
                flows[(a, b)] = flows.get((a, b), 0.0) + vph
    return flows


class _Router:
    """Fastest routes on the network, as SUMO routes a trip at an empty network's speeds (sumolib)."""

    def __init__(self, net_file: str):
        import sumolib

        try:
            self.net = sumolib.net.readNet(net_file, withPrograms=False, withLatestPrograms=False, withFoes=False,
                                           withPedestrianConnections=False, withInternal=False)
        except Exception as exc:  # noqa: BLE001 - sumolib raises what its parser raises
            raise _Unreadable(f"{net_file}: the network could not be read to route the trips ({exc})") from None
        self._cache: dict[tuple[tuple[str, ...], str], tuple[str, ...] | None] = {}

    def route(self, ends: tuple[str, ...], vclass: str) -> tuple[str, ...] | None:
        key = (ends, vclass)
        if key not in self._cache:
            self._cache[key] = self._route(ends, vclass)
        return self._cache[key]

    def _route(self, ends: tuple[str, ...], vclass: str) -> tuple[str, ...] | None:
        net = self.net
        if not all(net.hasEdge(e) for e in ends):
            return None
        path: list[str] = [ends[0]]
        for a, b in itertools.pairwise(ends):
            if a == b:
                continue
            leg, _cost = net.getFastestPath(net.getEdge(a), net.getEdge(b), vClass=vclass)
            if leg is None:
                return None
            path.extend(e.getID() for e in leg[1:])
        return tuple(path)
