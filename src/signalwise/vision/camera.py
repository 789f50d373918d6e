"""The camera file: where a camera looks, how its pixels map to the road, and its virtual detectors.

```yaml
camera_id: cam-1
device_id: B1                  # the intersection whose signal states apply
calibration:                   # image pixels -> road metres, at least 4 pairs
  - {px: [112.0, 80.0], m: [180.0, 220.0]}
stop_lines:                    # in pixels; links = indices into the state string
  - {name: n, approach: north, px: [[300, 120], [340, 120]], links: [0, 1, 2]}
zones:                         # optional: approach polygons for counts and occupancy
  - {name: n-queue, approach: north, px: [[290, 20], [345, 20], [345, 118], [290, 118]]}
speed_limit_mps: 13.89
speed_tolerance_mps: 2.0
```

Outside tools write these files, so these keys work exactly as written and
extra keys are allowed. Optional keys of ours are documented in
docs/vision.md (`channel` per zone or stop line, `frame_size`,
`speed_sustain_s`, `red_grace_s`, `red_entry_m`, `anchor`, `background_image`, `max_plausible_speed_mps`). Every error
names the file and the key path, and a zone, stop line or approach by name.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..core.names import MAX_INTERSECTION_ID_CHARS
from .calibration import CalibrationError, Homography

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
#: the signal whose states apply: as long as SUMO makes a signal's id
SignalName = Annotated[str, Field(min_length=1, max_length=MAX_INTERSECTION_ID_CHARS, pattern=r"^[^\x00-\x1f]+$")]
Point = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=2, max_length=2)]

#: a zone with less area (square pixels) holds no vehicle's anchor: it would never turn on
MIN_ZONE_AREA_PX2 = 1.0
#: a stop line shorter than this (pixels) has no sides: nothing would ever cross it
MIN_STOP_LINE_PX = 1.0
#: no road with traffic signals is posted above this (144 km/h); a larger `speed_limit_mps` is a limit written in
#: km/h or mph, which would silently never flag a speeder
MAX_SPEED_LIMIT_MPS = 40.0
#: no vehicle at a signalised junction goes faster than this (252 km/h): a track measured faster is a wrong frame rate
#: or calibration (a 5 frame/s stream read as 25 frame/s measures five times the speed), not a speeder
MAX_PLAUSIBLE_SPEED_MPS = 70.0
#: how far past the stop line (metres) a vehicle's front must go on red to be called: longer than the 3 m a driver
#: who brakes late overshoots by, and about a car length, so the vehicle is in the junction, as a red-light camera's
#: second loop or second photograph shows it
RED_ENTRY_M = 5.0
#: where a zone's or stop line's traffic comes from: the approaches an intersection has are these (a lane's
#: compass direction, `sim.approach.compass_approach`), so any other name matches no intersection's lanes
APPROACHES = ("north", "east", "south", "west")


class CameraFileError(ValueError):
    """A camera file that cannot be used: one line naming the file, the key and what is wrong."""


class CalibrationPair(BaseModel):
    model_config = ConfigDict(extra="allow")
    px: Point
    m: Point


class StopLine(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Name
    approach: Name
    px: Annotated[list[Point], Field(min_length=2, max_length=2)]
    links: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    channel: Annotated[int, Field(ge=1)] | None = None  # detector channel for its passage count


class Zone(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Name
    approach: Name
    px: Annotated[list[Point], Field(min_length=3)]
    channel: Annotated[int, Field(ge=1)] | None = None  # detector channel of its on/off events (82/81)


class CameraConfig(BaseModel):
    """A validated camera file (`load_camera`)."""

    model_config = ConfigDict(extra="allow")

    camera_id: Name
    device_id: SignalName
    calibration: list[CalibrationPair]
    stop_lines: list[StopLine] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    speed_limit_mps: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    speed_tolerance_mps: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    #: a track measured faster than this is implausible: its speed calls no speeding violation and is counted apart
    #: (`Pipeline.implausible_tracks`), as a sign of a wrong fps or calibration
    max_plausible_speed_mps: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = MAX_PLAUSIBLE_SPEED_MPS
    #: speed above limit + tolerance for this long makes a speeding violation
    speed_sustain_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 1.0
    #: a crossing this soon after the movement turned red is not a violation (0: none)
    red_grace_s: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.0
    #: a vehicle whose front crossed on red is called once it has gone this much further (road metres) while the
    #: light is still red: it went on into the junction. A driver who braked late and stopped past the line, then
    #: left on green, is not (0: called at the crossing, as a single-trigger camera does)
    red_entry_m: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] = RED_ENTRY_M
    #: the point of a box that stands for the vehicle on the road: `bottom` centre (where it touches the road in
    #: an oblique view), `center`, or `front` (the box edge it moves towards: a top-down view, where a stop line
    #: is crossed when the front bumper is)
    anchor: Literal["bottom", "center", "front"] = "bottom"
    frame_size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] | None = None
    #: a frame whose grey levels spread less than this (standard deviation, 0-255) is blank; None: the default
    #: (`monitoring.BLANK_STD`). A camera whose night scene is dark but still a picture may need it lower, one
    #: whose failed IR shows a noisy grey higher
    blank_below_std: Annotated[float, Field(ge=0, le=128, allow_inf_nan=False)] | None = None
    #: a picture blank or frozen for this long (its frames' seconds) is reported; None: the default
    #: (`monitoring.IMAGE_BAD_AFTER_S`)
    image_bad_after_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    #: an empty-road frame, relative to the camera file; a stream added over the API takes only a regular file inside
    #: the cameras directory (an inline camera's relative to that directory: `api/routers/cameras.background_file`)
    background_image: str | None = None
    _homography: Homography | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _unique(self) -> CameraConfig:
        for key, items in (("stop_lines", self.stop_lines), ("zones", self.zones)):
            seen: set[str] = set()
            for i, it in enumerate(items):
                if it.name in seen:
                    raise ValueError(f"{key}[{i}]: name {it.name!r} is used twice")
                seen.add(it.name)
        channels: dict[int, str] = {}
        for it in (*self.zones, *self.stop_lines):
            if it.channel is not None:
                if it.channel in channels:
                    raise ValueError(f"channel {it.channel} is given to both {channels[it.channel]!r} and "
                                     f"{it.name!r}")
                channels[it.channel] = it.name
        return self

    @model_validator(mode="after")
    def _approach_names(self) -> CameraConfig:
        for key, items in (("stop_lines", self.stop_lines), ("zones", self.zones)):
            for i, it in enumerate(items):
                if it.approach not in APPROACHES:
                    raise ValueError(f"{key}[{i}] ({it.name}): approach {it.approach!r} is not an approach of any "
                                     f"intersection (approaches: {', '.join(APPROACHES)}, where its traffic comes "
                                     "from)")
        return self

    @model_validator(mode="after")
    def _speed_in_mps(self) -> CameraConfig:
        limit = self.speed_limit_mps
        if limit is not None and limit > MAX_SPEED_LIMIT_MPS:
            raise ValueError(f"speed_limit_mps: {limit:g} m/s is {limit * 3.6:.0f} km/h, above any signalised road "
                             f"(at most {MAX_SPEED_LIMIT_MPS:g} m/s); the key is metres per second: "
                             f"{limit:g} km/h is {limit / 3.6:.2f}, {limit:g} mph is {limit * 0.44704:.2f}")
        plausible = self.max_plausible_speed_mps
        if limit is not None and plausible <= limit + self.speed_tolerance_mps:
            raise ValueError(f"max_plausible_speed_mps: {plausible:g} m/s is not above speed_limit_mps + "
                             f"speed_tolerance_mps ({limit + self.speed_tolerance_mps:g} m/s): no speeder could be "
                             "called")
        return self

    @model_validator(mode="after")
    def _shapes(self) -> CameraConfig:
        """A stop line with two ends and zones that enclose an area: a degenerate one detects nothing, silently."""
        for i, s in enumerate(self.stop_lines):
            (x0, y0), (x1, y1) = s.px
            if math.hypot(x1 - x0, y1 - y0) < MIN_STOP_LINE_PX:
                raise ValueError(f"stop_lines[{i}] ({s.name}): its two ends are the same point")
        for i, z in enumerate(self.zones):
            if _edges_cross(z.px):
                raise ValueError(f"zones[{i}] ({z.name}): its edges cross; list the corners in order around the zone")
            if _area_px2(z.px) < MIN_ZONE_AREA_PX2:
                raise ValueError(f"zones[{i}] ({z.name}): the polygon has no area (its points are on one line)")
        return self

    # -- derived -------------------------------------------------------------------------------
    @property
    def homography(self) -> Homography:
        if self._homography is None:
            self._homography = Homography.from_pairs([p.px for p in self.calibration],
                                                     [p.m for p in self.calibration])
        return self._homography

    @property
    def approaches(self) -> list[str]:
        """Every approach the camera's stop lines and zones name, in file order."""
        seen: dict[str, None] = {}
        for it in (*self.stop_lines, *self.zones):
            seen.setdefault(it.approach, None)
        return list(seen)

    def zone_channels(self) -> dict[str, int]:
        """Zone name -> the channel its 82/81 events carry: the given one, else the next free number from 1 in file
        order. These defaults name no detector; a run's camera source (`source.CameraObservationSource`) maps each
        zone to the detectors of its approach and logs their channels instead."""
        used = {z.channel for z in self.zones if z.channel is not None} | {
            s.channel for s in self.stop_lines if s.channel is not None}
        out, nxt = {}, 1
        for z in self.zones:
            if z.channel is not None:
                out[z.name] = z.channel
                continue
            while nxt in used:
                nxt += 1
            out[z.name] = nxt
            used.add(nxt)
        return out

    # -- checks against what the camera sees and what the intersection has ----------------------
    def check_frame(self, width_px: int, height_px: int, where: str = "camera") -> None:
        """Every stop line and zone point inside the frame, else CameraFileError naming it."""
        for key, items in (("stop_lines", self.stop_lines), ("zones", self.zones)):
            for i, it in enumerate(items):
                for x, y in it.px:
                    if not (0 <= x <= width_px and 0 <= y <= height_px):
                        raise CameraFileError(f"{where}: {key}[{i}] ({it.name}): point [{x:g}, {y:g}] is outside "
                                              f"the {width_px}x{height_px} frame")

    def check_intersection(self, approaches: set[str] | None, n_links: int | None, where: str = "camera") -> None:
        """Approaches the intersection has and link indices its state string holds, else CameraFileError."""
        dev = self.device_id
        if approaches is not None:
            for key, items in (("stop_lines", self.stop_lines), ("zones", self.zones)):
                for i, it in enumerate(items):
                    if it.approach not in approaches:
                        raise CameraFileError(f"{where}: {key}[{i}] ({it.name}): approach {it.approach!r} is not an "
                                              f"approach of {dev} (its approaches: {', '.join(sorted(approaches))})")
        if n_links is not None:
            for i, s in enumerate(self.stop_lines):
                bad = [k for k in s.links if k >= n_links]
                if bad:
                    raise CameraFileError(f"{where}: stop_lines[{i}] ({s.name}): links {bad} are not in {dev}'s "
                                          f"state string of {n_links} links (0-{n_links - 1})")


def _area_px2(poly: list[list[float]]) -> float:
    """The polygon's area (shoelace formula)."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True))) / 2


def _edges_cross(poly: list[list[float]]) -> bool:
    """True when two edges that share no corner cross (corners listed out of order: a bow tie)."""
    def turn(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    n = len(poly)
    edges = [(poly[k], poly[(k + 1) % n]) for k in range(n)]
    for i, j in itertools.combinations(range(n), 2):
        if j - i in (1, n - 1):
            continue  # neighbours share a corner
        (a, b), (c, d) = edges[i], edges[j]
        if turn(a, b, c) * turn(a, b, d) < 0 and turn(c, d, a) * turn(c, d, b) < 0:
            return True
    return False


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())).lstrip(".")
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def camera_from_dict(data: dict, where: str = "camera") -> CameraConfig:
    """Validate a camera file's contents (and its calibration); CameraFileError names the key."""
    if not isinstance(data, dict):
        raise CameraFileError(f"{where}: a camera file is a mapping of keys (camera_id, device_id, calibration, ...)")
    try:
        cam = CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise CameraFileError(f"{where}: {_first_problem(exc)}") from None
    try:
        cam.homography  # noqa: B018 - fitted now so a bad calibration is refused at load
    except CalibrationError as exc:
        raise CameraFileError(f"{where}: {exc}") from None
    return cam


def keys_like_ours(cam: CameraConfig) -> list[str]:
    """A line for each key of the file that signalwise does not read but whose name is close to one it does
    (`speed_limit_mp`, `stoplines`, `anchr`): extra keys are kept for other tools, so such a typo is no error,
    yet it silently leaves a check off (no speed limit: no speeding is judged) or a default in force."""
    import difflib

    out = []

    def check(model: BaseModel, where: str) -> None:
        for key in model.model_extra or {}:
            near = difflib.get_close_matches(str(key), list(type(model).model_fields), n=1, cutoff=0.8)
            if near:
                out.append(f"camera file key {where}{key} is not one signalwise reads (did you mean {near[0]}?): "
                           "kept and ignored")

    check(cam, "")
    for i, pair in enumerate(cam.calibration):
        check(pair, f"calibration[{i}].")
    for i, line in enumerate(cam.stop_lines):
        check(line, f"stop_lines[{i}].")
    for i, zone in enumerate(cam.zones):
        check(zone, f"zones[{i}].")
    return out


def load_camera(path: str | Path) -> CameraConfig:
    """Read and validate a camera file (YAML or JSON)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CameraFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CameraFileError(f"{path}: not a text (YAML) file") from None
    except ValueError as exc:  # a NUL byte in the name
        raise CameraFileError(f"{path!r}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        raise CameraFileError(f"{path}: not YAML: {str(exc).strip().splitlines()[0]}") from None
    cam = camera_from_dict(data, str(path))
    if cam.background_image is not None:
        bg = Path(cam.background_image)
        if not bg.is_absolute():
            cam.background_image = str(path.parent / bg)
    return cam
