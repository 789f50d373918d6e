"""Read SUMO's own output files: trips, per-edge intervals, detector passages, discarded vehicles, route-file
entries SUMO ignored, teleports.

The ground truth of a run comes from SUMO, not from our controller's view:
tripinfo (with the emissions device) for delay, stops, CO2 and fuel;
edgeData for per-interval, per-approach traffic; instant induction loops for
every vehicle's passage over every detector; the statistic output for the
teleports, which no other output counts.
"""

from __future__ import annotations

import re
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
    #: the time it stood over its walk stages (SUMO's waitingTime of each `walk`, added up): at a signal, the wait
    #: at its crosswalks for the walk; a ride's wait for its vehicle is not in it
    walk_wait_s: float = 0.0


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
            loss = wait = walk_wait = 0.0
            arrival = -1.0
            for stage in el:
                stage_wait = float(stage.get("waitingTime", 0) or 0)
                # SUMO writes a stage still under way at the end with timeLoss 0, however long it has stood: its
                # waiting so far is the part of its loss SUMO does give (a lower bound), not nothing
                unfinished = float(stage.get("arrival", 0) or 0) < 0
                loss += stage_wait if unfinished else float(stage.get("timeLoss", 0) or 0)
                wait += stage_wait
                walk_wait += stage_wait if stage.tag == "walk" else 0.0
                arrival = float(stage.get("arrival", arrival) or arrival)
            persons.append(PersonTrip(el.get("id"), float(el.get("depart", -1)), arrival, loss, wait, walk_wait))
            el.clear()
    return trips, persons


def read_arrivals(path: Path, lanes: Iterable[str] | None = None) -> dict[str, tuple[float, str]]:
    """Each arrived vehicle's (arrival time s, arrival lane) from tripinfo; `lanes`: only those that arrived on
    one of these. A vehicle still running at the end (arrival -1) or never inserted has none."""
    wanted = None if lanes is None else frozenset(lanes)
    found: dict[str, tuple[float, str]] = {}

    def arrived(veh: str, arrival: str, lane: str) -> None:
        if lane and (wanted is None or lane in wanted) and float(arrival) >= 0:
            found[veh] = (float(arrival), lane)

    if not Path(path).exists():
        return found
    rows = _sumo_rows(path, _TRIP_ARRIVAL, "<tripinfo ")
    if rows is None:
        _parse_elements(path, lambda tag, a: arrived(a.get("id"), a.get("arrival", "-1"), a.get("arrivalLane", ""))
                        if tag == "tripinfo" else None)
    else:
        for veh, arrival, lane in rows:
            arrived(veh, arrival, lane)
    return found


#: SUMO's error when a vehicle cannot depart at the speed its route file gives (`MSLane::isInsertionSuccess`): it
#: is then descheduled, and no tripinfo (nor any other output) ever names it
_DISCARDED = re.compile(r"Vehicle '(?P<id>.+?)' will not be able to depart\b(?:[^(]*\((?P<why>[^)]*)\))?"
                        r"(?:.*\btime=(?P<t>-?\d+(?:\.\d+)?))?")


def read_discarded(error_log: Path) -> list[tuple[str, float | None, str]]:
    """(vehicle id, simulated time s, SUMO's reason or "") of each vehicle SUMO discarded before it departed, from
    its `--error-log` (the reason: "tlLogic 'C' link 12 never switches to 'G'", "slow lane ahead", ...).

    The log is the only trace of them: a run's delay, like SUMO's tripinfo and the reference script's, leaves
    them out, so the run reports them instead of losing them silently. A missing log reads as none."""
    try:
        lines = Path(error_log).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        m = _DISCARDED.search(line)
        if m:
            found.append((m["id"], float(m["t"]) if m["t"] else None, m["why"] or ""))
    return found


#: the vClass of the vTypes SUMO defines itself, which a route file may use without defining them
#: (https://sumo.dlr.de/docs/Vehicle_Type_Parameter_Defaults.html)
SUMO_DEFAULT_VTYPES = {"DEFAULT_VEHTYPE": "passenger", "DEFAULT_PEDTYPE": "pedestrian", "DEFAULT_BIKETYPE": "bicycle",
                       "DEFAULT_TAXITYPE": "taxi", "DEFAULT_RAILTYPE": "rail", "DEFAULT_CONTAINERTYPE": "ignoring"}


def read_vtype_classes(files: Iterable[Path]) -> dict[str, str]:
    """{vType id: SUMO vClass} of every vType the given route or additional files define (those inside a
    vTypeDistribution too), with SUMO's own default types; a vType with no vClass is SUMO's default, "passenger".

    What a vehicle is (a bus, an emergency vehicle that may preempt) is its type's vClass: a vType's id is any name
    ("articulated", "emergency_shuttle"), and tripinfo and the detector outputs give only that id."""
    found = dict(SUMO_DEFAULT_VTYPES)

    def element(tag: str, a: dict) -> None:
        if tag == "vType" and a.get("id"):
            found[a["id"]] = a.get("vClass", "passenger")

    for path in files:
        _parse_elements(Path(path), element)
    return found


#: SUMO's warning for a vehicle, flow, person or personFlow that comes after one departing later in its route file
#: (`MSRouteHandler`): SUMO reads a route file in departure order and skips it, whole, with no other trace
_UNSORTED = re.compile(r"Route file should be sorted by departure time, ignoring '(?P<id>.+?)'!")


def read_unsorted_ignored(error_log: Path) -> list[str]:
    """The ids of the route-file entries (vehicles, flows, persons, personFlows) SUMO ignored because they come after
    an entry that departs later in their file, in the order SUMO named them, from its `--error-log`.

    None of their vehicles or persons is ever loaded: no tripinfo row, no undeparted row, no delay names them. A
    missing log reads as none."""
    try:
        text = Path(error_log).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [m["id"] for m in _UNSORTED.finditer(text)]


@dataclass(frozen=True, slots=True)
class Teleports:
    """SUMO's count of teleports in a run, by why the vehicle stood (its statistic output's `<teleports>`).

    A count of teleports, not of vehicles: one vehicle may teleport more than once."""

    total: int
    jam: int  # its next lane stood full
    yield_: int  # it waited for right of way (at a red light too) past --time-to-teleport
    wrong_lane: int  # it could not change onto the lane its route goes on

    def by_kind(self) -> dict[str, int]:
        return {"jam": self.jam, "yield": self.yield_, "wrong_lane": self.wrong_lane}


def read_teleports(statistics: Path) -> Teleports | None:
    """The teleports of a run from SUMO's `--statistic-output`, written once when SUMO closes.

    Read here rather than counted each step through libsumo (`simulation.getStartingTeleportNumber`): the file
    costs the loop nothing, works the same over TraCI, and is the only source that gives the kinds. None when
    there is no such file or it has no count (a SUMO started elsewhere, a run that stopped before SUMO closed):
    unknown, never 0."""
    root = _statistics_root(statistics)
    el = None if root is None else root.find("teleports")
    if el is None or el.get("total") is None:
        return None

    def count(key: str) -> int:
        return int(float(el.get(key, 0)))

    return Teleports(count("total"), count("jam"), count("yield"), count("wrongLane"))


def read_pedestrians_jammed(statistics: Path) -> int | None:
    """How many times a person stood jammed in a run, SUMO's count (`<persons jammed=...>` of its
    `--statistic-output`): a pedestrian who waits `--time-to-teleport` (a crosswalk that never shows a walk, a
    crowd blocking a walking area) is jammed and then walks on through whoever is in the way. None when SUMO wrote
    no such count: unknown, never 0."""
    root = _statistics_root(statistics)
    el = None if root is None else root.find("persons")
    if el is None or el.get("jammed") is None:
        return None
    return int(float(el.get("jammed")))


def _statistics_root(statistics: Path):
    """SUMO's statistic output, parsed; None when there is none (or it is broken: a SUMO that did not close)."""
    try:
        return ET.parse(statistics).getroot()
    except (FileNotFoundError, ET.ParseError):
        return None


def read_passages(path: Path, shift_s: float = 0.0) -> Iterator[Passage]:
    """Pair each vehicle's 'enter' with its 'leave' at each detector; `shift_s` is added to SUMO's times (an
    instant loop stamps its events one simulation step early against TraCI's clock: `DetectorLayout.step_s`)."""
    if not Path(path).exists():
        return
    open_: dict[tuple[str, str], tuple[float, float, str]] = {}
    done: list[Passage] = []

    def element(tag: str, a: dict) -> None:
        if tag == "instantOut":
            passage(a.get("id"), a.get("vehID"), a.get("state"), a.get("time"), a.get("speed", 0), a.get("type", ""))

    def passage(det: str, veh: str, state: str, time: str, speed: str, vtype: str) -> None:
        if state == "enter":
            open_[det, veh] = (float(time) + shift_s, float(speed), vtype)
        elif state == "leave":
            t = float(time) + shift_s
            start = open_.pop((det, veh), None)
            if start is None:  # entered before the run began recording
                start = (t, float(speed), vtype)
            done.append(Passage(det, veh, start[2], start[0], t, start[1]))

    rows = _sumo_rows(path, _INSTANT_OUT, "<instantOut", skipped=' state="stay" ')
    if rows is None:
        _parse_elements(path, element)
    else:
        for det, time, state, veh, speed, vtype in rows:
            passage(det, veh, state, time, speed, vtype)
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
    if wanted is not None:
        found = _sumo_rows(path, _INTERVAL_OR_EDGE, "<interval ", "<edge ")
        if found is not None:
            return _edge_rows(found, wanted)
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


def _edge_rows(found: list[tuple[str, str]], wanted: frozenset[str]) -> list[dict]:
    """`read_edgedata`'s rows from (tag, attributes text) pairs: only the wanted attributes are looked up."""
    rows: list[dict] = []
    begin = end = 0.0
    keys = [(k, f' {k}="') for k in wanted]
    for tag, text in found:
        text = " " + text
        if tag == "interval":
            begin, end = float(_attribute(text, ' begin="')), float(_attribute(text, ' end="'))
            continue
        row = {"begin_s": begin, "end_s": end, "edge": _attribute(text, ' id="')}
        for k, key in keys:
            at = text.find(key)
            if at >= 0:
                at += len(key)
                try:
                    row[k] = float(text[at:text.index('"', at)])
                except ValueError:
                    pass
        rows.append(row)
    return rows


def _attribute(text: str, key: str) -> str | None:
    at = text.find(key)
    if at < 0:
        return None
    at += len(key)
    return text[at:text.index('"', at)]


#: SUMO's instant induction loop output, attributes in the order SUMO writes them; only the rows that open or
#: close a passage: a vehicle standing over a loop writes a "stay" row at every step (six in seven rows of a
#: full run's stop-bar zones on grid4x4), which no passage reads
_INSTANT_OUT = re.compile(r'<instantOut id="([^"]*)" time="([^"]*)" state="(enter|leave)" vehID="([^"]*)" '
                          r'speed="([^"]*)" length="[^"]*" type="([^"]*)"')
#: a trip's id, arrival time and lane, in the order SUMO writes a tripinfo's attributes
_TRIP_ARRIVAL = re.compile(r'<tripinfo id="([^"]*)"[^>]*? arrival="([^"]*)" arrivalLane="([^"]*)"')
_INTERVAL_OR_EDGE = re.compile(r"<(interval|edge) ([^>]*)>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FIRST_ELEMENT = re.compile(r"<([A-Za-z_][^\s/>]*)")


def _sumo_rows(path: Path, pattern: re.Pattern, *openings: str, skipped: str | None = None) -> list[tuple] | None:
    """Every match of `pattern` in a SUMO output, or None when only a real XML parser may read the file.

    A city's outputs are megabytes of one element written the same way each
    time: one regular expression over the text reads them several times faster
    than expat's callbacks. Only when it matched every element that opens with
    one of `openings`, in a file with no entity or character reference (an id
    with `&` in it) and that ends with its root's closing tag; anything else
    (another SUMO's attribute order, a file cut short) goes to expat, which
    reads it or says where it breaks. `skipped`: text that marks each element
    the pattern leaves out on purpose (and only those).
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "&" in text or "<![CDATA[" in text or text.count("=") != text.count('="'):
        return None  # a reference, or an attribute written `a = 'b'`: legal XML these patterns do not read
    if "<!--" in text:
        text = _COMMENT.sub("", text)
    if text.count("<") != text.count(">"):
        return None  # a `>` inside a value (legal, unlike `<`): the patterns would end its tag there
    # XML reads a line break or tab inside a tag (SUMO breaks its long emission rows) as a space
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    root = _FIRST_ELEMENT.search(text[text.index("?>") + 2:] if text.startswith("<?xml") else text)
    if root is None or not text.rstrip().endswith(f"</{root.group(1)}>"):
        return None
    rows = pattern.findall(text)
    if len(rows) != sum(text.count(opening) for opening in openings) - (text.count(skipped) if skipped else 0):
        return None
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


def write_meandata_file(path: Path, interval_s: float, edge_file: Path | None, emissions_file: Path | None) -> Path:
    """An additional file asking SUMO for per-interval edge traffic and/or emissions."""
    root = ET.Element("additional")
    if edge_file is not None:
        ET.SubElement(root, "edgeData", id="sw_traffic", period=f"{interval_s:g}", file=str(edge_file.name),
                      excludeEmpty="true")
    if emissions_file is not None:
        # the one place emissions are computed (HBEFA, every vehicle, junctions included):
        # totals, per interval and per approach all come from here
        ET.SubElement(root, "edgeData", id="sw_emissions", type="emissions", period=f"{interval_s:g}",
                      file=str(emissions_file.name), excludeEmpty="true", withInternal="true")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
