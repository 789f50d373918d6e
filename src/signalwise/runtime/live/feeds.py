"""An external detector feed as an observation source: messages in, `Observation`s out.

A field detector system (loops, radar, a camera vendor's zones) reports what
its detectors see, addressed the way the run's ATSPM detector configuration
numbers them (`detectors.csv`: DeviceId = intersection id, Parameter =
detector channel). Each message is EITHER an on/off event at a time OR a
count and occupancy over an interval. `DetectorFeed` keeps the latest of each
per (device, channel), refuses what cannot be true (an unknown device or
channel, an occupancy of 3, a count no lane can pass), and answers the loop's
`observe` like any other source, with its age and health so that the shield
falls back when the feed goes silent or sends garbage.

Transports (MQTT in `mqtt.py`, HTTP in `api/routers/live_feeds.py`) only
parse and hand messages to `accept`; neither ever blocks the loop: the store
takes one lock for a few dictionary updates and never does I/O under it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ...core.types import (
    Detector,
    EmergencyApproach,
    EventCode,
    Intersection,
    LaneState,
    Observation,
    ObservationNeed,
    SignalEvent,
    SourceHealth,
)

#: the name this feed's data go by in an observation's `sources`
SOURCE = "feed:detectors"

log = logging.getLogger("signalwise.live.feeds")

#: one lane passes fewer vehicles than this per second (saturation flow is ~0.5 veh/s; twice that is a fault)
MAX_LANE_FLOW_VEH_PER_S = 1.0
#: a standing vehicle and the gap to the next one, for turning "the queue reaches this detector" into vehicles
JAM_SPACING_M = 7.5
#: a detector continuously on for this long has a vehicle standing on it (a moving car passes a loop in < 1 s)
STANDING_ON_S = 2.0
#: without on/off events: a last interval this occupied had vehicles standing on the detector
STANDING_OCCUPANCY = 0.9
#: a detector on for longer than this is stuck (a field controller's "max presence" diagnostic): no vehicle waits
#: so long at a signal whose cycle bound is minutes; its on/off data are left out of observations until it goes off
MAX_PRESENCE_S = 300.0
#: a count whose interval ended more than this many of its intervals ago is left out: the channel stopped counting
#: (a feed sends counts every interval, 0 included), and its last count would otherwise stand for ever
COUNT_STALE_INTERVALS = 3
#: a count-only channel whose intervals are this occupied, one after another for more than MAX_PRESENCE_S, is
#: stuck on as a loop sending events would be
STUCK_OCCUPANCY = 0.95
#: on/off events remembered per detector to know a redelivered one (QoS 1 resends a whole payload, pairs included)
RECENT_EVENTS = 32
#: a message whose time is more than this behind the run's clock when it arrives is late (the shield's default
#: `max_observation_age_s`: data that old steer no decision); the runtime may set `DetectorFeed.late_after_s`
LATE_AFTER_S = 10.0
#: at most one log line per this many (monotonic) seconds for count corrections, saying how many were not logged
LOG_EVERY_S = 10.0

_COUNT_FIELDS = ("count_veh", "occupancy", "interval_s")


# ---------------------------------------------------------------------------
# The message, as both transports and the OpenAPI schema show it.
# ---------------------------------------------------------------------------


_ISO_TIME_HELP = ("time must be ISO 8601 text with a zone (e.g. 2025-06-01T08:00:00+02:00); "
                  "for simulation seconds use sim_time_s")


def _iso_text(value: Any) -> Any:
    """`time` is ISO 8601 text (or a datetime from Python), never a number someone meant as simulation seconds:
    neither a bare one nor one in text ("1700000000"), which pydantic would otherwise read as epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(_ISO_TIME_HELP)
    if isinstance(value, str) and _is_number(value):
        raise ValueError(f"{value!r} is a number, not a time: {_ISO_TIME_HELP}")
    return value


def _channel_number(value: Any) -> Any:
    """`channel` is a JSON number: a number in text ("1") is refused with what to send rather than read as one
    (pydantic's lax mode would), so a sender's wrong type is found in its first message, not the day its gateway
    sends "01" or "1a"; other text fails the integer check with pydantic's own words."""
    if isinstance(value, str) and _is_number(value):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not text: send {number}, not {text}",
                                  {"number": value.strip(), "text": f'"{value}"'})
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: an occupancy above 1 up to this reads as a percentage: its refusal says what to send instead
PERCENT_MAX = 100.0


def _occupancy_hint(value: Any, handler: ValidatorFunctionWrapHandler, _info: ValidationInfo) -> Any:
    """The field's own check (0..1), and for an occupancy that looks like a percentage (1 < value <= 100) the
    share to send instead: a feed sending 18 for 18 % would otherwise fail with no clue why."""
    try:
        return handler(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        try:
            percent = float(err["input"]) if err["type"] == "less_than_equal" else math.nan
        except (TypeError, ValueError, OverflowError):
            percent = math.nan
        if not 1.0 < percent <= PERCENT_MAX:
            raise
        raise PydanticCustomError(
            "less_than_equal",
            "Input should be less than or equal to 1 (occupancy is a share of the interval: send {share} for "
            "{percent} %)",
            {"le": 1.0, "share": f"{percent / 100:g}", "percent": f"{percent:g}"}) from None


class DetectorMessage(BaseModel):
    """One detector's news: an on/off event at a time, or a count and occupancy over an interval.

    The detector is addressed as in the run's ATSPM detector configuration
    (`detectors.csv`): `device_id` is the intersection (DeviceId) and
    `channel` the detector channel (Parameter). The time is given once, either
    as wall-clock `time` (ISO 8601 with a zone) or as `sim_time_s` on the
    run's own clock.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"device_id": "B1", "channel": 3, "event": "on", "time": "2025-06-01T08:00:01.300+02:00"},
        {"device_id": "B1", "channel": 3, "event": "off", "sim_time_s": 1802.6},
        {"device_id": "B1", "channel": 1, "count_veh": 7, "occupancy": 0.18, "interval_s": 60,
         "time": "2025-06-01T08:01:00+02:00"},
    ]})

    device_id: str = Field(min_length=1, max_length=200,
                           description="the intersection (traffic light) id: DeviceId in the run's detectors.csv")
    channel: Annotated[int, BeforeValidator(_channel_number)] = Field(
        ge=1, description="the detector channel, 1-based: Parameter in the run's detectors.csv (a JSON number, not "
                          "text)")
    event: Literal["on", "off"] | None = Field(
        None, description="an on/off event: 'on' when a vehicle arrives over the detector, 'off' when it leaves "
                          "(hi-res codes 82 / 81). Not with a count.")
    count_veh: int | None = Field(None, ge=0, description="vehicles counted over the interval (with occupancy and "
                                                          "interval_s; not with an event)")
    occupancy: Annotated[float | None, WrapValidator(_occupancy_hint)] = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False,
        description="share of the interval the detector was occupied, 0..1 (0.18 for 18 %)")
    interval_s: float | None = Field(None, gt=0.0, le=3600.0, allow_inf_nan=False,
                                     description="length of the counting interval, seconds (at most an hour)")
    time: Annotated[AwareDatetime | None, BeforeValidator(_iso_text)] = Field(
        None, description="when the event happened, or when the counting interval ended: ISO 8601 with a zone "
                          "(wall clock), not before the run started nor more than 5 s ahead of the server's "
                          "clock. Exactly one of time / sim_time_s.")
    sim_time_s: float | None = Field(
        None, ge=0.0, allow_inf_nan=False,
        description="the same instant on the run's simulation clock, seconds. Exactly one of time / sim_time_s.")

    @model_validator(mode="after")
    def _either_event_or_count(self) -> DetectorMessage:
        given = [name for name in _COUNT_FIELDS if getattr(self, name) is not None]
        if self.event is not None and given:
            raise ValueError(f"a message is either an on/off event or a count, not both: it has event and "
                             f"{', '.join(given)}")
        if self.event is None and not given:
            raise ValueError("a message carries either an on/off event (event) or a count over an interval "
                             "(count_veh, occupancy, interval_s); this one has neither")
        if self.event is None and len(given) < len(_COUNT_FIELDS):
            missing = [name for name in _COUNT_FIELDS if name not in given]
            raise ValueError(f"a count needs count_veh, occupancy and interval_s together; missing "
                             f"{', '.join(missing)}")
        if (self.time is None) == (self.sim_time_s is None):
            raise ValueError("give the time exactly once: time (ISO 8601 with a zone) or sim_time_s "
                             "(simulation seconds)")
        return self

    @property
    def kind(self) -> str:
        """'event' or 'count'."""
        return "event" if self.event is not None else "count"


# ---------------------------------------------------------------------------
# What accepting a batch did.
# ---------------------------------------------------------------------------

#: why a message was refused: the message's shape, its address, its topic, its values, its time
REJECTION_CODES = ("invalid", "unknown_device", "unknown_channel", "wrong_topic", "implausible", "time")


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused message: where it sat in its batch, what it addressed, and why."""

    index: int  # position in the batch (0 for a payload refused as a whole)
    device_id: str | None
    channel: int | None
    code: str  # one of REJECTION_CODES
    reason: str  # one line, for people
    field: str | None = None  # the offending field, when one is to blame


@dataclass(frozen=True, slots=True)
class Late:
    """One accepted message that was late: its time was `behind_s` seconds behind the run's clock on arrival."""

    index: int  # position in the batch
    device_id: str
    channel: int
    behind_s: float
    note: str  # one line, for people: how late, and what was done with it


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What `accept` did with a batch: how many messages were taken, which were refused, and which of those taken
    were late (for the sender's answer: the HTTP route's)."""

    accepted: int
    rejected: tuple[Rejection, ...] = ()
    late: tuple[Late, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.rejected


@dataclass(slots=True)
class _DetectorState:
    """The latest of one detector, on the simulation clock."""

    on: bool | None = None  # None: no on/off event yet
    event_time_s: float | None = None  # time of the latest on/off event
    on_since_s: float | None = None
    last_off_s: float | None = None
    count_veh: int | None = None  # the latest interval's
    occupancy: float | None = None
    interval_s: float | None = None
    count_time_s: float | None = None  # end of the latest interval
    #: start of the latest run of intervals at least STUCK_OCCUPANCY occupied (a count-only channel held on)
    full_since_s: float | None = None
    #: its latest logged (time, on) events: one delivered again is taken but not logged twice
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    #: its latest (interval end, interval_s, count_veh) counted in the records: one delivered again is not
    #: counted twice (`drain_counts`)
    recent_counts: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    #: (interval end, interval_s) -> the count the records hold for that interval, for its latest RECENT_EVENTS
    #: intervals: another value for one of them is a correction, which replaces it (`_count_volume`)
    counted: dict = field(default_factory=dict)
    first_s: float | None = None  # data time of the earliest message taken for it (None: it never reported)


def _stuck_s(st: _DetectorState, time_s: float) -> float | None:
    """For how long it has been stuck on, when longer than MAX_PRESENCE_S: on without an off (events), or
    intervals STUCK_OCCUPANCY occupied one after another (counts only); else None."""
    if st.on is not None:
        held = time_s - st.on_since_s if st.on else 0.0
    else:
        held = st.count_time_s - st.full_since_s if st.full_since_s is not None else 0.0
    return held if held > MAX_PRESENCE_S else None


def _events_usable(st: _DetectorState, time_s: float) -> bool:
    """It has sent on/off events and is not stuck on."""
    return st.on is not None and _stuck_s(st, time_s) is None


def _count_stale(st: _DetectorState, time_s: float) -> bool:
    """Its latest count's interval ended more than COUNT_STALE_INTERVALS intervals before `time_s`."""
    return time_s - st.count_time_s > COUNT_STALE_INTERVALS * st.interval_s


def _count_usable(st: _DetectorState, time_s: float) -> bool:
    """It has a count that is not stale, and is not stuck on (a loop held on counts nothing and reads full)."""
    return st.count_veh is not None and not _count_stale(st, time_s) and _stuck_s(st, time_s) is None


def _fault(st: _DetectorState, time_s: float) -> str | None:
    """Why a detector's data are left out at `time_s`, or None."""
    stuck = _stuck_s(st, time_s)
    if stuck is not None:
        return f"stuck on: on for {stuck:.0f} s (more than {MAX_PRESENCE_S:g} s)"
    if st.count_veh is not None and _count_stale(st, time_s):
        return (f"stopped counting: its last {st.interval_s:g} s interval ended {time_s - st.count_time_s:.0f} s "
                f"ago")
    return None


@dataclass(frozen=True, slots=True)
class FeedCount:
    """One accepted count message, as the live records take it: `count_veh` vehicles over the `interval_s`
    seconds that ended at `time_s` (simulation clock) on detector `channel` of intersection `device_id`. A
    correction of a count the records took already carries the difference (negative for a lower value, which
    the records take only where they counted the first value: `LiveRecords.feed_count`)."""

    time_s: float
    device_id: str
    channel: int
    count_veh: int
    interval_s: float


@dataclass(slots=True)
class _DeviceHealth:
    newest_s: float | None = None  # data time of the newest accepted message
    streak: int = 0  # rejections in a row since the last accepted message
    last_reason: str = ""
    #: (monotonic arrival, seconds its time was behind the run's clock) of its latest accepted messages
    lags: deque = field(default_factory=lambda: deque(maxlen=CLOCK_LAG_SAMPLES))


#: messages per intersection whose lag behind the run's clock on arrival is remembered (`_clock_behind_s`)
CLOCK_LAG_SAMPLES = 20
#: a sender's clock is said to be behind when at least this many of them arrived within CLOCK_RECENT_S ...
CLOCK_LAG_MIN_SAMPLES = 5
CLOCK_RECENT_S = 30.0
#: ... all lagging by about the same (within this many seconds of each other: a buffering gateway's lags spread)
CLOCK_LAG_SPREAD_S = 2.0


def _clock_behind_s(health: _DeviceHealth, late_after_s: float, now_mono: float) -> float | None:
    """How far the sender's clock seems behind the run's: its messages keep arriving (CLOCK_LAG_MIN_SAMPLES within
    CLOCK_RECENT_S, the latest within 5 s), each lagging about the same (CLOCK_LAG_SPREAD_S) and more than
    `late_after_s`; else None. Data that old are stale whatever the cause, but a steady lag of a steadily
    sending device is a clock, not a network: said so, the operator checks the sender's NTP."""
    recent = [lag for at, lag in health.lags if now_mono - at <= CLOCK_RECENT_S]
    if len(recent) < CLOCK_LAG_MIN_SAMPLES or now_mono - health.lags[-1][0] > 5.0:
        return None
    if max(recent) - min(recent) > CLOCK_LAG_SPREAD_S or min(recent) <= late_after_s:
        return None
    return sorted(recent)[len(recent) // 2]


# ---------------------------------------------------------------------------
# The store and observation source.
# ---------------------------------------------------------------------------


class DetectorFeed:
    """The latest data per (device, channel) from an external feed; an `ObservationSource` for the loop.

    Built from the run's intersections and their `Detector`s, so it knows
    every valid address and refuses any other by name. `clock` maps wall-clock
    epoch seconds to the loop's simulation seconds (messages with `time`);
    without one, only `sim_time_s` messages are taken. `now` (optional) gives
    the loop's current simulation time, so a message from the future is
    refused on arrival; messages more than `max_ahead_s` ahead of the loop
    also make the source unhealthy when observed. A message from before the
    run started (a `WallClock` says when; any other clock: one it maps below
    simulation second 0) is refused too: the run has no time to place it at.
    After `unhealthy_after` rejections in a row for an intersection, its
    source is unhealthy until an accepted message arrives. Thread-safe:
    transports call `accept` from their own threads while the loop calls
    `observe`.
    """

    def __init__(self, intersections: Iterable[Intersection], clock: Callable[[float], float] | None = None, *,
                 now: Callable[[], float] | None = None, unhealthy_after: int = 5, max_ahead_s: float = 5.0,
                 max_pending_events: int = 100_000, late_after_s: float = LATE_AFTER_S):
        if unhealthy_after < 1:
            raise ValueError("unhealthy_after must be at least 1")
        self._clock = clock
        self._now = now
        self.unhealthy_after = unhealthy_after
        self.max_ahead_s = max_ahead_s
        self.late_after_s = late_after_s
        #: device -> channel -> detector; read-only after construction, so checked without the lock
        self._channels: dict[str, dict[int, Detector]] = {}
        self._ids: dict[str, dict[str, int]] = {}  # device -> detector id -> channel
        self._lanes: dict[str, list[tuple[str, Detector]]] = {}  # lane -> [(device, detector)]
        for inter in intersections:
            by_channel = {d.channel: d for d in inter.detectors}
            self._channels[inter.id] = by_channel
            self._ids[inter.id] = {d.id: d.channel for d in inter.detectors}
            for d in inter.detectors:
                self._lanes.setdefault(d.lane, []).append((inter.id, d))
        self._lock = threading.Lock()
        self._state: dict[tuple[str, int], _DetectorState] = {
            (dev, ch): _DetectorState() for dev, chans in self._channels.items() for ch in chans}
        self._health: dict[str, _DeviceHealth] = {dev: _DeviceHealth() for dev in self._channels}
        self._events: deque[tuple[float, SignalEvent]] = deque(maxlen=max_pending_events)  # (own time, event)
        self._events_dropped = 0
        #: accepted counts not yet drained into the live records (`drain_counts`), as bounded as the events
        self._counts: deque[FeedCount] = deque(maxlen=max_pending_events)
        self._counts_dropped = 0
        self._count_repeats = 0  # exact repeats of a detector's recent count, taken but not counted again
        self._repeats = 0  # exact repeats of a detector's latest event, taken but not logged again
        self._corrections = 0  # counts that replaced another value for the same detector and interval
        self._late_corrections = 0  # of those, the ones whose earlier value the records had taken already
        self._late = 0  # messages more than late_after_s behind the run's clock on arrival
        self._log_at = -math.inf  # when a correction was last logged (monotonic)
        self._unlogged = 0  # corrections since, not logged
        self._accepted = 0
        self._rejected: Counter[str] = Counter()
        self._accepted_via: Counter[str] = Counter()  # per transport: one store serves HTTP and MQTT both
        self._rejected_via: Counter[tuple[str, str]] = Counter()  # (transport, code)
        #: the `MqttFeed` feeding this store, if any (it sets this): /metrics reads its connection from here
        self.mqtt = None
        self._last_rejection: Rejection | None = None
        self._first_observe_s: float | None = None
        self._loop_time_s: float | None = None
        #: (device, channel) -> why its data were left out, as last logged (`_fault_changes_locked`)
        self._faults_said: dict[tuple[str, int], str] = {}

    # -- what the feed knows --------------------------------------------------------
    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def channels(self, device_id: str) -> tuple[int, ...]:
        return tuple(sorted(self._channels.get(device_id, {})))

    def set_clock(self, clock: Callable[[float], float] | None) -> None:
        """Map wall-clock epoch seconds to simulation seconds from now on (the runtime knows its pacing)."""
        self._clock = clock

    @property
    def clock(self) -> Callable[[float], float] | None:
        return self._clock

    @property
    def has_now(self) -> bool:
        """Whether the feed knows the loop's clock (and so refuses messages from its future on arrival)."""
        return self._now is not None

    def set_now(self, now: Callable[[], float] | None) -> None:
        """Give the feed the loop's current simulation time (a feed built before the loop, e.g. for MQTT)."""
        self._now = now

    # -- messages in -------------------------------------------------------------------
    def accept(self, messages: DetectorMessage | Mapping | Iterable[DetectorMessage | Mapping], *,
               expect_device: str | None = None, all_or_none: bool = False, transport: str = "http") -> FeedResult:
        """Take a batch (models or their JSON dicts); refuse what cannot be true, store the rest.

        `expect_device` is the device a transport's address names (the MQTT
        topic): a message for another device is refused. With `all_or_none`,
        one refusal refuses the batch (the HTTP route: nothing half-applied);
        only the faulty messages count as rejections. `transport` names who
        delivered the batch in the per-transport counters (`stats()`).
        Validation, address checks and clock conversion run before the lock
        is taken.
        """
        if isinstance(messages, (DetectorMessage, Mapping)):
            messages = [messages]
        checked: list[tuple[int, DetectorMessage, float] | Rejection] = []
        wall_now = time.time()
        for index, raw in enumerate(messages):
            checked.append(self._check(index, raw, expect_device, wall_now))
        refused = tuple(c for c in checked if isinstance(c, Rejection))
        if all_or_none and refused:
            checked = list(refused)
        accepted = 0
        late: list[Late] = []
        notes: list[str] = []
        arrived = time.monotonic()
        with self._lock:
            fed: set[str] = set()
            loop_s = self._now() if self._now is not None else self._loop_time_s
            for item in checked:
                if isinstance(item, Rejection):
                    self._count_rejection(item, expect_device, transport)
                else:
                    note = self._apply(*item)
                    if note is not None:
                        notes.append(note)
                    fed.add(item[1].device_id)
                    accepted += 1
                    if loop_s is not None:
                        self._health[item[1].device_id].lags.append((arrived, loop_s - item[2]))
                    if loop_s is not None and loop_s - item[2] > self.late_after_s:
                        late.append(self._late_note(*item, loop_s - item[2]))
            for dev in fed:  # a batch that fed an intersection clears its streak whatever order it came in
                self._health[dev].streak = 0
            self._accepted_via[transport] += accepted
            self._late += len(late)
            said = self._throttled_locked(len(notes))
        if said is not None:
            log.warning("detector feed: %s%s", notes[-1], said)
        return FeedResult(accepted, refused, tuple(late))

    def _late_note(self, index: int, msg: DetectorMessage, t: float, behind_s: float) -> Late:
        """What was done with a late message: logged and counted as any, too old to steer a decision."""
        done = ("logged in events.csv at its own time" if msg.event is not None else
                "counted in the records (in the interval open now when its own has closed)")
        return Late(index, msg.device_id, msg.channel, round(behind_s, 1),
                    f"its time (simulation second {t:.1f}) is {behind_s:.0f} s behind the run's clock, more than "
                    f"{self.late_after_s:g} s: {done}; too old to steer a decision")

    def _throttled_locked(self, n: int) -> str | None:
        """Whether to log now the last of `n` corrections just taken (at most one line every LOG_EVERY_S): None for
        no, else the suffix naming those not logged since the last line (under the lock)."""
        if not n:
            return None
        now = time.monotonic()
        if now - self._log_at < LOG_EVERY_S:
            self._unlogged += n
            return None
        skipped, self._unlogged, self._log_at = self._unlogged + n - 1, 0, now
        return f" ({skipped} more count corrections since the last)" if skipped else ""

    def reject(self, reason: str, device_id: str | None = None, code: str = "invalid", *,
               transport: str = "http") -> Rejection:
        """Count a payload refused before it became messages (not JSON, not an object or list)."""
        rej = Rejection(0, device_id, None, code, reason)
        with self._lock:
            self._count_rejection(rej, device_id, transport)
        return rej

    def _check(self, index: int, raw: Any, expect_device: str | None,
               wall_now: float) -> tuple[int, DetectorMessage, float] | Rejection:
        """(index, message, simulation time) for a message that can be true, else why not."""
        if isinstance(raw, DetectorMessage):
            msg = raw
        else:
            try:
                msg = DetectorMessage.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err.get("loc", ())) or None
                dev = raw.get("device_id") if isinstance(raw, Mapping) else None
                ch = raw.get("channel") if isinstance(raw, Mapping) else None
                more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
                return Rejection(index, dev if isinstance(dev, str) else None, ch if type(ch) is int else None,
                                 "invalid", f"{where or 'message'}: {err.get('msg', 'invalid')}{more}", where)
        dev, ch = msg.device_id, msg.channel
        if expect_device is not None and dev != expect_device:
            return Rejection(index, dev, ch, "wrong_topic",
                             f"the message is for device '{dev}' but was sent on the topic of device "
                             f"'{expect_device}'",
                             "device_id")
        chans = self._channels.get(dev)
        if chans is None:
            return Rejection(index, dev, ch, "unknown_device",
                             f"unknown device '{dev}': this run's intersections are {_names(self._channels)}",
                             "device_id")
        if ch not in chans:
            return Rejection(index, dev, ch, "unknown_channel",
                             f"device '{dev}' has no detector channel {ch} (its channels: {_ranges(chans)})",
                             "channel")
        if msg.count_veh is not None and msg.count_veh > MAX_LANE_FLOW_VEH_PER_S * msg.interval_s + 1:
            return Rejection(index, dev, ch, "implausible",
                             f"{msg.count_veh} vehicles in {msg.interval_s:g} s is more than one lane passes "
                             f"(at most {MAX_LANE_FLOW_VEH_PER_S:g} veh/s)", "count_veh")
        if msg.time is not None:
            ahead = msg.time.timestamp() - wall_now
            if ahead > self.max_ahead_s:
                return Rejection(index, dev, ch, "time", f"time {msg.time.isoformat()} is {ahead:.0f} s in the "
                                 "future (the sender's clock is wrong)", "time")
            if self._clock is None:
                return Rejection(index, dev, ch, "time", "wall-clock time given but this run maps no wall clock to "
                                 "its simulation clock: send sim_time_s", "time")
            try:
                t = float(self._clock(msg.time.timestamp()))
            except Exception as exc:  # a user's clock must not break a transport thread
                return Rejection(index, dev, ch, "time", f"the run's clock could not map {msg.time.isoformat()}: "
                                 f"{exc}", "time")
            if isinstance(self._clock, WallClock) and msg.time.timestamp() < self._clock.wall_s:
                began = dt.datetime.fromtimestamp(self._clock.wall_s, msg.time.tzinfo)
                return Rejection(index, dev, ch, "time", f"time {msg.time.isoformat(timespec='milliseconds')} is "
                                 f"before the run started ({began.isoformat(timespec='milliseconds')})", "time")
            if t < 0:
                return Rejection(index, dev, ch, "time", f"time {msg.time.isoformat(timespec='milliseconds')} is "
                                 f"before the run started: it maps to simulation second {t:.1f}, before 0", "time")
        else:
            t = float(msg.sim_time_s)
            if isinstance(self._clock, WallClock) and t < self._clock.sim_s:
                return Rejection(index, dev, ch, "time", f"sim_time_s {t:g} is before the run started (simulation "
                                 f"second {self._clock.sim_s:g})", "sim_time_s")
            if self._now is not None:
                ahead = t - self._now()
                if ahead > self.max_ahead_s:
                    return Rejection(index, dev, ch, "time", f"sim_time_s {t:g} is {ahead:.0f} s ahead of the "
                                     "run's clock", "sim_time_s")
        return index, msg, t

    def _apply(self, index: int, msg: DetectorMessage, t: float) -> str | None:
        """Store one accepted message (under the lock); a line to log when it corrected a count."""
        dev, ch = msg.device_id, msg.channel
        st = self._state[(dev, ch)]
        st.first_s = t if st.first_s is None else min(st.first_s, t)
        if msg.event is not None:
            on = msg.event == "on"
            repeat = (t, on) in st.recent  # delivered again (MQTT QoS 1 is at least once; a payload holds pairs)
            if st.event_time_s is None or t >= st.event_time_s:  # an older event is logged, not applied
                if on and not st.on:
                    st.on_since_s = t
                if not on:
                    st.last_off_s = t
                st.on, st.event_time_s = on, t
            code = EventCode.DETECTOR_ON if on else EventCode.DETECTOR_OFF
            if repeat:
                self._repeats += 1  # the hi-res log has it already: logged twice, ATSPM would count two vehicles
            else:
                st.recent.append((t, on))
                if len(self._events) == self._events.maxlen:
                    self._events_dropped += 1
                # with its own time: the log's tenth would sort an on and off of one tenth by code, off first
                self._events.append((t, SignalEvent(round(t, 1), dev, int(code), ch)))
        note = None
        if msg.event is None:
            note = self._count_volume(st, msg, t)
            if st.count_time_s is None or t >= st.count_time_s:  # an older interval is counted, not applied
                self._apply_count(st, msg, t)
        health = self._health[dev]
        health.newest_s = t if health.newest_s is None else max(health.newest_s, t)
        health.streak = 0
        self._accepted += 1
        return note

    @staticmethod
    def _apply_count(st: _DetectorState, msg: DetectorMessage, t: float) -> None:
        """The detector's latest interval is this one (under the lock)."""
        if msg.occupancy < STUCK_OCCUPANCY:
            st.full_since_s = None
        elif st.full_since_s is None:
            st.full_since_s = t - msg.interval_s  # full from this interval's start
        st.count_veh, st.occupancy, st.interval_s, st.count_time_s = msg.count_veh, msg.occupancy, msg.interval_s, t

    def _count_volume(self, st: _DetectorState, msg: DetectorMessage, t: float) -> str | None:
        """A count goes to the live records (`drain_counts`) once: one arriving late (an interval older than the
        detector's latest) is still vehicles that passed, but an exact repeat (QoS 1 redelivery, an HTTP retry)
        is not counted again. Under the lock; a line to log for a correction.

        Another value for an interval the detector already counted (same time and `interval_s`, one of its
        latest RECENT_EVENTS intervals) is a correction: it replaces the earlier value. While the earlier count
        waits for the loop's next drain it is replaced there; once drained (the records took it), the
        difference is counted, so the records hold the corrected value while the interval that counted the
        first is open; when that interval's record is written, the open one takes a higher value's difference
        as a late count, and leaves a lower one out. A value the interval had before (an old message redelivered after its correction) is a
        repeat, not a correction back."""
        key = (t, msg.interval_s, msg.count_veh)
        if key in st.recent_counts:
            self._count_repeats += 1
            return None
        st.recent_counts.append(key)
        slot = (t, msg.interval_s)
        before = st.counted.pop(slot, None)
        st.counted[slot] = msg.count_veh  # the newest last: the oldest slot goes first
        if len(st.counted) > RECENT_EVENTS:
            del st.counted[next(iter(st.counted))]
        if before is None:
            self._queue_count(FeedCount(t, msg.device_id, msg.channel, msg.count_veh, msg.interval_s))
            return None
        dev, ch = msg.device_id, msg.channel

        def same(c: FeedCount) -> bool:
            return (c.device_id, c.channel, c.time_s, c.interval_s) == (dev, ch, t, msg.interval_s)

        pending = sum(c.count_veh for c in self._counts if same(c))
        taken = before - pending  # what the records hold for it already
        if any(same(c) for c in self._counts):
            self._counts = deque((c for c in self._counts if not same(c)), maxlen=self._counts.maxlen)
        if msg.count_veh != taken:
            self._queue_count(FeedCount(t, dev, ch, msg.count_veh - taken, msg.interval_s))
        self._corrections += 1
        where = f"{dev} channel {ch}: the count of the {msg.interval_s:g} s interval ending at {t:.1f} s"
        if not taken:
            return f"{where} corrected from {before} to {msg.count_veh} vehicles (the records count {msg.count_veh})"
        self._late_corrections += 1
        return (f"{where} corrected from {before} to {msg.count_veh} vehicles after the records took {taken}: the "
                f"difference ({msg.count_veh - taken:+d}) is counted where the records took {taken} (in the interval open "
                "now if that record is written: a higher value only)")

    def _queue_count(self, count: FeedCount) -> None:
        """A count (or a correction's difference) for the next `drain_counts` (under the lock)."""
        if len(self._counts) == self._counts.maxlen:
            self._counts_dropped += 1
        self._counts.append(count)

    def _count_rejection(self, rej: Rejection, expect_device: str | None, transport: str) -> None:
        """Count one refusal (under the lock) against the intersection it came from, when known."""
        self._rejected[rej.code] += 1
        self._rejected_via[(transport, rej.code)] += 1
        self._last_rejection = rej
        # the topic's device when there is one (another device's topic speaks for that device, not for the one
        # its messages name), else the device the message names
        dev = expect_device if expect_device is not None else rej.device_id
        health = self._health.get(dev) if dev is not None else None
        if health is not None:
            health.streak += 1
            health.last_reason = rej.reason

    # -- observations out --------------------------------------------------------------
    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        """Idle times, counts and lane estimates for what `need` asks, with the feed's age and health.

        `detector_idle_s`: 0 while a detector is on, else seconds since its
        last off (detectors with no on/off event yet are left out).
        `detector_counts_veh`: the latest interval's count. `lanes`: estimated
        from each lane's detectors (`lane_estimate`); lanes with no data are
        left out. The source is reported only when something was asked.
        """
        dev = inter.id
        ids = self._ids.get(dev, {})
        with self._lock:
            if self._first_observe_s is None:
                self._first_observe_s = time_s
            if self._loop_time_s is None or time_s > self._loop_time_s:
                self._loop_time_s = time_s
            idle: dict[str, float] = {}
            for det_id in need.detector_idle_ids:
                st = self._state.get((dev, ids[det_id])) if det_id in ids else None
                if st is not None and _events_usable(st, time_s):
                    idle[det_id] = _idle_s(st, time_s)
            counts: dict[str, int] = {}
            for det_id in need.detector_count_ids:
                st = self._state.get((dev, ids[det_id])) if det_id in ids else None
                if st is not None and _count_usable(st, time_s):
                    counts[det_id] = st.count_veh
            lanes: dict[str, LaneState] = {}
            for lane in need.lane_ids:
                est = self._lane_locked(lane, time_s)
                if est is not None:
                    lanes[lane] = est
            asked = bool(need.lane_ids or need.detector_idle_ids or need.detector_count_ids)
            sources = (self._source_health_locked(dev, time_s),) if asked else ()
            faults = self._fault_changes_locked(dev, time_s)
        if faults:
            log.warning("detector feed: %s", faults)
        return Observation(time_s, dev, lanes, idle, detector_counts_veh=counts, sources=sources)

    def _fault_changes_locked(self, dev: str, time_s: float) -> str | None:
        """The detectors of `dev` whose data began or ceased to be left out since its last observation (stuck on,
        stopped counting: `_fault`), in one line for the log, or None (under the lock). A maintenance crew reads
        which channel and why; `stats()["faulty_detectors"]` lists those left out now."""
        said = []
        for ch in self._channels.get(dev, {}):
            why = _fault(self._state[(dev, ch)], time_s)
            before = self._faults_said.get((dev, ch))
            if why is not None and before is None:
                self._faults_said[(dev, ch)] = why
                said.append(f"{dev} channel {ch} left out of observations: {why}")
            elif why is None and before is not None:
                del self._faults_said[(dev, ch)]
                said.append(f"{dev} channel {ch} is used again (was: {before})")
        return "; ".join(said) or None

    def reports(self, device_id: str) -> bool:
        """Whether the feed speaks for this intersection: it has taken a message for it, or refused enough in a row
        to call it unhealthy. A camera-watched intersection the feed never spoke for is not held in fallback by
        the feed's silence (`cameras.FeedsAndCameras`)."""
        with self._lock:
            health = self._health.get(device_id)
            return health is not None and (health.newest_s is not None or health.streak >= self.unhealthy_after)

    def first_report_s(self, device_id: str, channel: int) -> float | None:
        """The data time of the earliest message taken for this detector, None while it never reported: from then
        on its channel in the hi-res log is the feed's alone (`cameras.LiveCameras.drain_events`)."""
        with self._lock:
            st = self._state.get((device_id, channel))
            return None if st is None else st.first_s

    def source_health(self, device_id: str, time_s: float) -> SourceHealth:
        """The feed's age and health for one intersection at `time_s`."""
        with self._lock:
            return self._source_health_locked(device_id, time_s)

    def _source_health_locked(self, dev: str, time_s: float) -> SourceHealth:
        health = self._health.get(dev)
        if health is None or not self._channels.get(dev):
            return SourceHealth(SOURCE, 0.0, False, f"intersection {dev} has no detectors in this feed")
        if health.newest_s is None:
            age = max(0.0, time_s - (self._first_observe_s if self._first_observe_s is not None else time_s))
        else:
            age = max(0.0, time_s - health.newest_s)
        if health.streak >= self.unhealthy_after:
            return SourceHealth(SOURCE, age, False,
                                f"{health.streak} messages in a row rejected; last: {health.last_reason}")
        if health.newest_s is None:
            return SourceHealth(SOURCE, age, False, "no message yet from this intersection's detectors")
        if health.newest_s - time_s > self.max_ahead_s:
            return SourceHealth(SOURCE, 0.0, False, f"newest message is {health.newest_s - time_s:.0f} s ahead of "
                                                    "the run's clock (the sender's clock is wrong)")
        if age > self.late_after_s and health.lags:
            behind = _clock_behind_s(health, self.late_after_s, time.monotonic())
            if behind is not None:
                return SourceHealth(SOURCE, age, False, f"messages keep arriving but each is ~{behind:.0f} s behind "
                                    f"the run's clock (newest {age:.0f} s old): the sender's clock may be behind by "
                                    f"~{behind:.0f} s; check its time (NTP)")
        return SourceHealth(SOURCE, age, True)

    def lane_estimate(self, lane: str, time_s: float) -> LaneState | None:
        """A lane's state estimated from its detectors, or None without data (see `_lane_locked`)."""
        with self._lock:
            return self._lane_locked(lane, time_s)

    def lane_queues(self, lanes: Iterable[str]) -> dict[str, int]:
        """Estimated halting vehicles per lane at the latest time the feed knows (for the live records)."""
        with self._lock:
            t = self._loop_time_s
            if t is None:
                t = max((h.newest_s for h in self._health.values() if h.newest_s is not None), default=0.0)
            out = {}
            for lane in lanes:
                est = self._lane_locked(lane, t)
                if est is not None:
                    out[lane] = est.queue_veh
            return out

    def _lane_locked(self, lane: str, time_s: float) -> LaneState | None:
        """The estimate (documented in docs/live-feeds.md):

        - queue_veh: the queue reaches the farthest detector with a vehicle
          standing on it (on for STANDING_ON_S, or, without events, a last
          interval at least STANDING_OCCUPANCY occupied): that distance over
          JAM_SPACING_M vehicles, at least 1;
        - count_veh: the last interval's count of the stop-bar detector (else
          the nearest detector with a count), at least the queue;
        - occupancy: that detector's last-interval occupancy, or without
          counts 1.0 while a detector on the lane is on, else 0.0;
        - mean_speed_mps and wait_s: 0.0, a point detector measures neither.
        """
        dets = self._lanes.get(lane)
        if not dets:
            return None
        states = [(d, self._state[(dev, d.channel)]) for dev, d in dets]
        # a stuck detector's events and a stopped channel's count are left out, as if never sent
        events = [(d, st) for d, st in states if _events_usable(st, time_s)]
        counts = [(d, st) for d, st in states if _count_usable(st, time_s)]
        if not events and not counts:
            return None
        queue = 0
        for d, st in events:
            if _standing(st, time_s):
                queue = max(queue, max(1, math.ceil(d.distance_to_stopbar_m / JAM_SPACING_M)))
        for d, st in counts:
            if st.on is None and _standing(st, time_s):
                queue = max(queue, max(1, math.ceil(d.distance_to_stopbar_m / JAM_SPACING_M)))
        counted = sorted(((d.kind != "stopbar", d.distance_to_stopbar_m, st) for d, st in counts),
                         key=lambda x: (x[0], x[1]))
        if counted:
            st = counted[0][2]
            count, occupancy = st.count_veh, st.occupancy
        else:
            count, occupancy = 0, 1.0 if any(st.on for _d, st in events) else 0.0
        return LaneState(queue_veh=queue, count_veh=max(count, queue), occupancy=occupancy, mean_speed_mps=0.0,
                         wait_s=0.0)

    # -- what the loop's source protocol also asks ------------------------------------
    @property
    def emergency_active(self) -> bool:
        return False  # a detector feed carries no vehicles

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        return {}

    # -- the hi-res log and counters ------------------------------------------------------
    def drain_events(self) -> list[SignalEvent]:
        """Detector on/off events (82 / 81, parameter = channel) accepted since the last drain, in time order: by
        each event's own time, then as they arrived. Not by the logged tenth and the event code: a pulse on at
        .01 s and off at .04 s is logged in one tenth, and sorted by code the off (81) would come before the on (82),
        leaving the detector on in the log until its next off."""
        with self._lock:
            timed = list(self._events)
            self._events.clear()
        timed.sort(key=lambda pair: pair[0])  # stable: one time's events stay in the order they came
        return [e for _t, e in timed]

    def drain_counts(self) -> list[FeedCount]:
        """Count messages accepted since the last drain (repeats left out), in time order: the vehicles the live
        records count in a run fed by this feed (`records.LiveRecords.feed_count`)."""
        with self._lock:
            counts = list(self._counts)
            self._counts.clear()
        counts.sort(key=lambda c: (c.time_s, c.device_id, c.channel))
        return counts

    def _faulty_locked(self) -> list[dict]:
        """The detectors whose data observations leave out now (at the loop's latest time), and why."""
        t = self._loop_time_s
        if t is None:
            return []
        return [{"device_id": dev, "channel": ch, "reason": why} for (dev, ch), st in sorted(self._state.items())
                if (why := _fault(st, t)) is not None]

    def stats(self) -> dict:
        """Counters for people and metrics: accepted, rejected (by code, also per transport), the last refusal,
        pending events, repeats (taken, not counted again), count corrections (and of those the ones whose
        earlier value the records had taken), and late messages (more than `late_after_s` behind the run)."""
        with self._lock:
            last = self._last_rejection
            by_transport: dict[str, dict] = {}
            for t, n in self._accepted_via.items():
                by_transport.setdefault(t, {"accepted": 0, "rejected_by_code": {}})["accepted"] = n
            for (t, code), n in self._rejected_via.items():
                by_transport.setdefault(t, {"accepted": 0, "rejected_by_code": {}})["rejected_by_code"][code] = n
            return {
                "accepted": self._accepted,
                "rejected": sum(self._rejected.values()),
                "rejected_by_code": dict(self._rejected),
                "last_rejection": dataclasses.asdict(last) if last is not None else None,
                "pending_events": len(self._events),
                "events_dropped": self._events_dropped,
                "repeated_events": self._repeats,
                "repeated_counts": self._count_repeats,
                "corrected_counts": self._corrections,
                "late_corrections": self._late_corrections,
                "late_messages": self._late,
                "counts_dropped": self._counts_dropped,
                "faulty_detectors": self._faulty_locked(),
                "by_transport": by_transport,
            }


def _idle_s(st: _DetectorState, time_s: float) -> float:
    """0 while on; seconds since the last off otherwise (0 for an off stamped after `time_s`)."""
    if st.on:
        return 0.0
    return max(0.0, time_s - st.last_off_s)


def _standing(st: _DetectorState, time_s: float) -> bool:
    if st.on is not None:
        return bool(st.on) and time_s - st.on_since_s >= STANDING_ON_S
    return st.occupancy is not None and st.occupancy >= STANDING_OCCUPANCY


def _names(devices: Mapping[str, Any], limit: int = 12) -> str:
    names = sorted(devices)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


def _ranges(channels: Iterable[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out: list[str] = []
    for ch in sorted(channels):
        if out and out[-1].split("-")[-1] == str(ch - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{ch}"
        else:
            out.append(str(ch))
    return ", ".join(out) or "none"


@dataclass(frozen=True, slots=True)
class WallClock:
    """Wall epoch seconds -> simulation seconds for a run that began at simulation second `sim_s`, wall epoch
    second `wall_s`, paced at `speed` (None: unpaced, where a wall time has no meaning and is refused).

    A class rather than a bare function so the feed also knows when the run began: a message from before that
    is refused, not logged at a time the run never had (a negative one, or before its first step)."""

    sim_s: float
    wall_s: float
    speed: float | None = 1.0

    def __call__(self, wall_s: float) -> float:
        if self.speed is None:
            raise ValueError("the run is unpaced: its clock does not follow the wall clock")
        return self.sim_s + (wall_s - self.wall_s) * self.speed


def wall_clock(sim_at_wall: tuple[float, float], speed: float | None = 1.0) -> WallClock:
    """A `clock` for `DetectorFeed`: the simulation second `sim_s` was at wall epoch second `wall_s`, paced at `speed`.

    `wall_clock((sim_s, wall_s))` for a run paced in real time, started then; with no pacing
    (speed None) wall-clock messages have no meaning and are refused.
    """
    sim0, wall0 = sim_at_wall
    return WallClock(float(sim0), float(wall0), speed)

