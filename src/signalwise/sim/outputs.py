"""Read SUMO's own output files: trips, per-edge intervals, detector passages.

The ground truth of a run comes from SUMO, not from our controller's view:
tripinfo (with the emissions device) for delay, stops, CO2 and fuel;
edgeData for per-interval, per-approach traffic; instant induction loops for
every vehicle's passage over every detector.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat


@dataclass(frozen=True, slots=True)
class Trip:
    vehicle_id: str
    vtype: str
    depart_s: float  # -1 for vehicles never inserted
    arrival_s: float  # -1 for vehicles still running at the end
    duration_s: float
    route_length_m: float
    waiting_s: float
    stops: int
    time_loss_s: float
    depart_delay_s: float
    co2_mg: float
    fuel_ml: float
    status: str  # "arrived" | "running" | "undeparted"

    @property
    def delay_s(self) -> float:
        """RESCO's delay: time lost while driving plus time waiting to enter."""
        return self.time_loss_s + self.depart_delay_s


@dataclass(frozen=True, slots=True)
class PersonTrip:
    person_id: str
    depart_s: float
    arrival_s: float
    time_loss_s: float
    waiting_s: float


@dataclass(frozen=True, slots=True)
class Passage:
    """One vehicle over one detector (from an instant induction loop)."""

    detector_id: str
    vehicle_id: str
    vtype: str
    enter_s: float
    leave_s: float | None
    speed_mps: float


def read_tripinfo(path: Path) -> tuple[list[Trip], list[PersonTrip]]:
    trips: list[Trip] = []
    persons: list[PersonTrip] = []
    if not Path(path).exists():
        return trips, persons
    for _event, el in ET.iterparse(path, events=("end",)):
        if el.tag == "tripinfo":
            em = el.find("emissions")
            co2 = float(em.get("CO2_abs", 0)) if em is not None else 0.0
            fuel = float(em.get("fuel_abs", 0)) if em is not None else 0.0
            depart = float(el.get("depart", -1))
            arrival = float(el.get("arrival", -1))
            status = "undeparted" if depart < 0 else ("running" if arrival < 0 else "arrived")
            trips.append(Trip(el.get("id"), el.get("vType", ""), depart, arrival, float(el.get("duration", 0)),
                              float(el.get("routeLength", 0)), float(el.get("waitingTime", 0)),
                              int(float(el.get("waitingCount", 0))), float(el.get("timeLoss", 0)),
                              float(el.get("departDelay", 0)), co2, fuel, status))
            el.clear()
        elif el.tag == "personinfo":
            loss = wait = 0.0
            arrival = -1.0
            for stage in el:
                loss += float(stage.get("timeLoss", 0) or 0)
                wait += float(stage.get("waitingTime", 0) or 0)
                arrival = float(stage.get("arrival", arrival) or arrival)
            persons.append(PersonTrip(el.get("id"), float(el.get("depart", -1)), arrival, loss, wait))
            el.clear()
    return trips, persons


def read_passages(path: Path) -> Iterator[Passage]:
    """Pair each vehicle's 'enter' with its 'leave' at each detector."""
    if not Path(path).exists():
        return
    open_: dict[tuple[str, str], tuple[float, float, str]] = {}
    done: list[Passage] = []

    def element(tag: str, a: dict) -> None:
        if tag != "instantOut":
            return
        state = a.get("state")
        key = (a.get("id"), a.get("vehID"))
        t = float(a.get("time"))
        if state == "enter":
            open_[key] = (t, float(a.get("speed", 0)), a.get("type", ""))
        elif state == "leave":
            start = open_.pop(key, None)
            if start is None:  # entered before the run began recording
                start = (t, float(a.get("speed", 0)), a.get("type", ""))
            done.append(Passage(key[0], key[1], start[2], start[0], t, start[1]))

    _parse_elements(path, element)
    yield from done
    for (det, veh), (t, speed, vtype) in open_.items():
        yield Passage(det, veh, vtype, t, None, speed)


def read_edgedata(path: Path, fields: Iterable[str] | None = None) -> list[dict]:
    """Rows of (interval begin, end, edge id, attributes) from an edgeData meandata file.

    `fields`: only these attributes (those an edge lacks stay out of its row, as
    they do with all of them); reading a city's emissions, converting the
    two that are used instead of all twenty-odd is most of the time.
    """
    rows: list[dict] = []
    if not Path(path).exists():
        return rows
    wanted = None if fields is None else frozenset(fields) - {"id"}
    interval = [0.0, 0.0]

    def element(tag: str, a: dict) -> None:
        if tag == "interval":
            interval[:] = float(a.get("begin")), float(a.get("end"))
        elif tag == "edge":
            row = {"begin_s": interval[0], "end_s": interval[1], "edge": a.get("id")}
            for k in (a if wanted is None else wanted & a.keys()):
                if k != "id":
                    try:
                        row[k] = float(a[k])
                    except ValueError:
                        pass
            rows.append(row)

    _parse_elements(path, element)
    return rows


def _parse_elements(path: Path, on_element) -> None:
    """Call `on_element(tag, attributes)` for every element of an XML file, in document order.

    SUMO's outputs are flat lists of elements whose data are all in their
    attributes: expat's callbacks read them without building a tree (several
    times faster than ElementTree on a city's detector passages). A malformed
    file raises ElementTree's `ParseError`, as reading it with ElementTree would.
    """
    parser = expat.ParserCreate()
    parser.StartElementHandler = on_element
    with open(path, "rb") as fh:
        try:
            parser.ParseFile(fh)
        except expat.ExpatError as exc:
            err = ET.ParseError(f"{path}: {exc}")
            err.code, err.position = exc.code, (exc.lineno, exc.offset)
            raise err from None


def write_meandata_file(path: Path, interval_s: float, edge_file: Path, emissions_file: Path | None) -> Path:
    """An additional file asking SUMO for per-interval edge traffic (and emissions)."""
    root = ET.Element("additional")
    ET.SubElement(root, "edgeData", id="sw_traffic", period=f"{interval_s:g}", file=str(edge_file.name),
                  excludeEmpty="true")
    if emissions_file is not None:
        # the one place emissions are computed (HBEFA, every vehicle, junctions included):
        # totals, per interval and per approach all come from here
        ET.SubElement(root, "edgeData", id="sw_emissions", type="emissions", period=f"{interval_s:g}",
                      file=str(emissions_file.name), excludeEmpty="true", withInternal="true")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
