"""Preemption calls from outside the loop: a fire department's dispatch or an emitter's gateway calls a signal.

A call names a signal, the approach the vehicle comes from (its compass name,
as the snapshot names approaches, or an incoming edge id) or the phase to
serve, `on` or `off`, and the caller's call id (the vehicle or device). It
comes over REST (`POST /api/v1/live/preempt`) or MQTT
(`{mqtt_topic_prefix}/{signal}/preempt`, `mqtt.MqttFeed`, when the run opts
in with `--mqtt-preempt`). While on, the
loop's source answers it as one more approaching emergency vehicle
(`EmergencyApproach`, its vehicle id the call id, on a link of the called
approach that the called phase serves): the shield takes it as it takes a
simulated emergency vehicle, so its rules (entry through minimum green and
clearances, max dwell), the event log (102/105/107/104, 110), the audit and
the dashboard see one kind of preemption. The preemption distance does not
apply: the sender decides when to call.

A call is a heartbeat. It lapses CALL_LAPSE_S of wall-clock time after its
last `on` unless that is sent again, so a lost `off` (a radio gone quiet, a
gateway that crashed) never holds a signal; the shield's `preempt_max_dwell_s`
still ends a call kept on for ever. The lapse follows the wall clock, as the
sender's repeats do, whatever the run's speed. A call for a signal whose
preemption is off is refused with the reason, never taken and ignored.

A call belongs to its sender (the API key, or the MQTT input as one sender:
the broker's ACL decides who may publish there): only the sender refreshes,
redirects or ends it. What one sender can hold is bounded (calls per signal,
per sender at a signal, per sender; ends remembered per signal; MQTT call
messages per signal per second), so a sender that floods the input can neither
grow the run's memory nor keep another sender's call from a signal.

Every call taken, ended, lapsed or refused is kept for the run's evidence
(`preempt_calls.csv`, drained by the runtime): a 102 in the log can be traced
to the call that made it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ...control.preempt_phase import phase_serving_link
from ...core.types import EmergencyApproach, Intersection
from .feeds import _iso_text

log = logging.getLogger("signalwise.live.preempt")

#: a call not sent again (`on`) within this many seconds of wall-clock time lapses, as if `off` had come: senders
#: repeat `on` every few seconds (docs/live-feeds.md says every 5 s); an emitter's optical or radio call drops as
#: soon as the signal stops receiving it, and 20 s leaves room for three lost repeats. Wall clock, not the run's:
#: a run at --speed 10 passes 50 simulated seconds between two repeats 5 s apart
CALL_LAPSE_S = 20.0
#: a call's time more than this many wall seconds ahead of now is refused (the sender's clock is wrong)
MAX_AHEAD_S = 5.0
#: calls in force at one signal, all senders together: a handful of vehicles approaching one intersection at once
MAX_CALLS_PER_SIGNAL = 8
#: one sender's calls in force at one signal: half the signal's, so one sender cannot take every place there
MAX_CALLS_PER_SENDER_AT_SIGNAL = 4
#: one sender's calls in force over all signals (a dispatch calling ahead along an engine's route)
MAX_CALLS_PER_SENDER = 32
#: `off`s remembered per signal (to refuse an `on` sent before them and delivered after): the latest this many,
#: each for as long as an `on` older than it could still be taken (CALL_LAPSE_S + MAX_AHEAD_S of wall time)
MAX_OFFS_PER_SIGNAL = 64
#: MQTT call messages per signal topic: a burst of this many, then this many a second (a sender repeating a few
#: calls every 5 s needs about one a second); the rest are refused (`flood`) unread
MQTT_BURST = 20
MQTT_PER_S = 5.0
#: why a call was refused
REFUSAL_CODES = ("invalid", "unknown_signal", "unknown_approach", "unknown_phase", "preempt_off", "late", "time",
                 "wrong_topic", "retained", "too_many", "other_sender", "flood")
#: the columns of the run's preempt_calls.csv
CSV_COLUMNS = ("time_s", "device_id", "call_id", "state", "approach", "phase", "channel", "via", "by", "detail")


def _call_text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class PreemptRequest(BaseModel):
    """A preemption call, as the REST route takes it and an MQTT message carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"intersection_id": "C", "approach": "west", "state": "on", "call_id": "engine-7"},
        {"intersection_id": "C", "phase": 2, "state": "on", "call_id": "engine-7", "channel": 1,
         "time": "2025-06-01T08:00:01+02:00"},
        {"intersection_id": "C", "state": "off", "call_id": "engine-7"},
    ]})

    intersection_id: str = Field(min_length=1, max_length=200, description="the signal (traffic light) id")
    state: Literal["on", "off"] = Field(description=(
        f"`on` places or refreshes the call (send it again every few seconds: a call not refreshed for "
        f"{CALL_LAPSE_S:g} s of wall-clock time lapses); `off` ends it. Only the call's sender refreshes or ends "
        "it"))
    call_id: Annotated[str, BeforeValidator(_call_text)] = Field(
        min_length=1, max_length=100, description="the vehicle or device calling: the id the shield's "
                                                  "interventions and the run's preempt_calls.csv record")
    approach: Annotated[str | None, BeforeValidator(_call_text)] = Field(
        None, min_length=1, max_length=200,
        description="where the vehicle comes from: north | south | east | west (as the snapshot names "
                    "approaches) or an incoming edge id of the signal; with `on`, this or `phase`")
    phase: int | None = Field(None, ge=1, le=64, description="the phase (1-based) to serve; with `on`, this or "
                                                             "`approach`")
    channel: int | None = Field(None, ge=1, le=255, description=(
        "the preemption input channel of the sender, kept with the call (GET, preempt_calls.csv)"))
    distance_m: float | None = Field(None, ge=0.0, le=100_000.0, allow_inf_nan=False, description=(
        "the vehicle's distance from the stop line when the sender knows it (shown in the snapshot; of calls "
        "that come at the same step the nearer is served first, otherwise calls are served in the order they "
        "came); default 0"))
    time: Annotated[AwareDatetime | None, BeforeValidator(_iso_text)] = Field(
        None, description="when the sender sent it, ISO 8601 with a zone; an `on` older than the lapse time "
                          "(wall clock) is refused as late. Over MQTT this or sim_time_s is required; over REST the arrival time "
                          "stands for it when neither is given")
    sim_time_s: float | None = Field(None, ge=0.0, allow_inf_nan=False,
                                     description="the same instant on the run's clock, seconds")

    @model_validator(mode="after")
    def _what_it_calls(self) -> PreemptRequest:
        if self.approach is not None and self.phase is not None:
            raise ValueError("give the approach or the phase, not both")
        if self.state == "on" and self.approach is None and self.phase is None:
            raise ValueError("a call `on` names the approach its vehicle comes from (approach) or the phase to "
                             "serve (phase)")
        if self.time is not None and self.sim_time_s is not None:
            raise ValueError("give the time at most once: time (ISO 8601 with a zone) or sim_time_s")
        return self


class CallRefused(Exception):
    """A call the input does not take: `status` (HTTP), `code` (REFUSAL_CODES) and a one-line reason."""

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


@dataclass(frozen=True, slots=True)
class Target:
    """Where a call goes at one signal: the approach, the phase the shield will serve, and the link that says so."""

    approach: str
    phase_index: int
    lane: str
    link_index: int


@dataclass(slots=True)
class Call:
    """A call in force."""

    device_id: str
    call_id: str
    target: Target
    channel: int | None
    distance_m: float
    placed_s: float
    refreshed_s: float
    via: str
    by: str
    #: who placed it (the API key's id, `mqtt`, ...): only this sender refreshes, redirects or ends it
    sender: str
    #: the latest `on`'s send time on the wall clock (time.monotonic's scale): the lapse runs from it
    refreshed_wall_s: float

    def view(self, wall_s: float) -> dict:
        return {"intersection_id": self.device_id, "call_id": self.call_id,
                "approach": self.target.approach, "phase": self.target.phase_index + 1,
                "channel": self.channel, "distance_m": self.distance_m, "placed_s": round(self.placed_s, 3),
                "refreshed_s": round(self.refreshed_s, 3),
                "lapses_in_s": round(max(0.0, self.refreshed_wall_s + CALL_LAPSE_S - wall_s), 3),
                "via": self.via, "by": self.by}



def approach_names(inter: Intersection, direction: Mapping[str, str]) -> dict[str, list[str]]:
    """Approach name -> its incoming lanes: the compass name (`north`, ...) and each incoming edge id."""
    out: dict[str, list[str]] = {}
    for lane in inter.in_lanes:
        for name in (direction.get(lane), lane.rsplit("_", 1)[0]):
            if name:
                out.setdefault(name, []).append(lane)
    return out


def resolve_target(inter: Intersection, direction: Mapping[str, str], approach: str | None,
                   phase: int | None) -> Target:
    """The link a call is placed on, or `CallRefused` (422) naming what the signal has.

    An approach is served by the phase that serves most of its movements (its through traffic, most often); a
    phase by a link it is the serving phase of."""
    links = [m for m in inter.movements if not m.is_crosswalk]
    served = {m.link_index: phase_serving_link(inter, m.link_index) for m in links}  # the shield's rule
    if approach is not None:
        names = approach_names(inter, direction)
        lanes = names.get(approach) or names.get(approach.lower())
        if not lanes:
            compass = sorted({direction[lane] for lane in inter.in_lanes if lane in direction})
            edges = sorted({lane.rsplit("_", 1)[0] for lane in inter.in_lanes})
            raise CallRefused(422, "unknown_approach",
                              f"signal {inter.id} has no approach {approach!r}: its approaches are "
                              f"{', '.join(compass) or 'none'} (incoming edges {', '.join(edges) or 'none'})")
        mine = [m for m in links if m.in_lane in lanes and served[m.link_index] is not None]
        if not mine:
            raise CallRefused(422, "unknown_approach", f"no phase of signal {inter.id} serves approach {approach!r}")
        votes = Counter(served[m.link_index] for m in mine)
        best = min(votes, key=lambda p: (-votes[p], p))
        m = next(m for m in mine if served[m.link_index] == best)
        return Target(direction.get(m.in_lane) or approach, best, m.in_lane, m.link_index)
    index = phase - 1
    if not 0 <= index < len(inter.phases):
        raise CallRefused(422, "unknown_phase", f"signal {inter.id} has no phase {phase}: its phases are 1-"
                                                f"{len(inter.phases)}")
    m = next((m for m in links if served[m.link_index] == index), None)
    if m is None:
        raise CallRefused(422, "unknown_phase", f"phase {phase} of signal {inter.id} is not the phase that serves "
                                                "any of its movements (each is served first by another): call by "
                                                "approach instead")
    return Target(direction.get(m.in_lane, m.in_lane.rsplit("_", 1)[0]), index, m.in_lane, m.link_index)


class PreemptCalls:
    """The calls in force, taken from any thread (HTTP routes, MQTT's), read by the loop's thread each step.

    `intersections`: the run's signals; `direction`: incoming lane -> compass approach (the loop's);
    `preempt_on(signal)`: whether the signal's shield takes preemption now; `now()`: the run's clock;
    `speed`: simulated seconds per wall second (None: unpaced, where a wall-clock `time` has no meaning);
    `wall()`: the wall clock the lapse runs on (time.monotonic).
    One lock around a few dictionary updates; nothing under it waits.
    """

    def __init__(self, intersections: Mapping[str, Intersection], direction: Mapping[str, str],
                 preempt_on: Callable[[str], bool], now: Callable[[], float], speed: float | None = 1.0,
                 wall: Callable[[], float] = time.monotonic):
        self.intersections = dict(intersections)
        self.direction = dict(direction)
        self.preempt_on = preempt_on
        self.now = now
        self.speed = speed
        self.wall = wall
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], Call] = {}  # (signal, call id) -> the call
        #: signal -> (sender, call id) -> (the `off`'s time on the run's clock, wall time it is forgotten at), oldest
        #: first: an `on` stamped before its call's last `off` is old (bounded: MAX_OFFS_PER_SIGNAL, time-bounded)
        self._offs: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
        #: signal topic (known signals; "" for any other) -> (tokens, wall time of the last refill, refusing now)
        self._mqtt_buckets: dict[str, list] = {}
        self._rows: list[tuple] = []
        self._accepted: Counter = Counter()  # via -> calls taken (on, refresh, off)
        self._refused: Counter = Counter()  # (via, code) -> refusals
        self._placed_total = 0
        self._ended = 0
        self._lapsed = 0
        self._last_refusal: str | None = None

    # -- calls in -------------------------------------------------------------------------
    def take(self, req: PreemptRequest, via: str = "rest", by: str = "local", sender: str | None = None) -> dict:
        """Place, refresh or end a call; the answer for the sender, or `CallRefused` (counted, recorded).
        `by`: the name recorded; `sender`: who owns the call (default `by`)."""
        try:
            return self._take(req, via, by, by if sender is None else sender)
        except CallRefused as exc:
            self.refused(exc.code, exc.reason, via, req.intersection_id, req.call_id, by)
            raise

    def _take(self, req: PreemptRequest, via: str, by: str, sender: str) -> dict:
        now, wall = self.now(), self.wall()
        inter = self.intersections.get(req.intersection_id)
        if inter is None:
            raise CallRefused(404, "unknown_signal", f"this run has no signal {req.intersection_id!r} "
                                                     f"(signals: {', '.join(sorted(self.intersections))})")
        sent_s, age_s = self._sent_s(req, now, via)
        key = (inter.id, req.call_id)
        if req.state == "off":
            with self._lock:
                call = self._calls.get(key)
                if call is not None and call.sender != sender:
                    raise self._not_yours(call, "end")
                self._calls.pop(key, None)
                self._remember_off(inter.id, (sender, req.call_id), sent_s, wall)
                self._accepted[via] += 1
                if call is not None:
                    self._ended += 1
                    self._row(now, call, "off", via, by, "")
            if call is None:
                return {"state": "off", "call": None,
                        "note": f"no call {req.call_id!r} was in force at {inter.id} (it had ended or lapsed, or was "
                                "never placed)"}
            log.warning("preemption call %s at %s ended (off, via %s, by %s)", req.call_id, inter.id, via, by)
            return {"state": "off", "call": call.view(wall)}
        if not self.preempt_on(inter.id):
            raise CallRefused(409, "preempt_off", f"preemption is off at signal {inter.id} in this run (shield."
                                                  "preempt: false), so the call would be ignored; a run that takes "
                                                  "calls keeps shield.preempt true")
        target = resolve_target(inter, self.direction, req.approach, req.phase)
        sent_wall = wall - max(age_s, 0.0)
        with self._lock:
            off = self._offs.get(inter.id, {}).get((sender, req.call_id))
            if off is not None and off[1] > wall and sent_s <= off[0]:
                raise CallRefused(409, "late", f"call {req.call_id!r} at {inter.id} was ended by an `off` sent after "
                                               "this `on` (a message delivered out of order or again): not placed")
            call = self._calls.get(key)
            if call is not None and call.sender != sender:
                raise self._not_yours(call, "refresh or redirect")
            if call is not None and call.target == target:  # a heartbeat
                call.refreshed_s = max(call.refreshed_s, min(sent_s, now))
                call.refreshed_wall_s = max(call.refreshed_wall_s, min(sent_wall, wall))
                call.distance_m = req.distance_m if req.distance_m is not None else call.distance_m
                call.channel = req.channel if req.channel is not None else call.channel
                self._accepted[via] += 1
                return {"state": "on", "placed": False, "call": call.view(wall)}
            if call is None:
                self._check_room(inter.id, sender)
            else:  # the same caller now calls another approach: its old call ends here
                self._row(now, call, "off", via, by, f"replaced by a call for {target.approach}")
            call = Call(inter.id, req.call_id, target, req.channel, req.distance_m or 0.0, now, min(sent_s, now), via,
                        by, sender, min(sent_wall, wall))
            self._calls[key] = call
            self._accepted[via] += 1
            self._placed_total += 1
            self._row(now, call, "on", via, by, f"phase {target.phase_index + 1} serves it")
        log.warning("preemption call %s at %s placed: %s approach, phase %d (via %s, by %s)", req.call_id, inter.id,
                    target.approach, target.phase_index + 1, via, by)
        return {"state": "on", "placed": True, "call": call.view(wall)}

    @staticmethod
    def _not_yours(call: Call, what: str) -> CallRefused:
        return CallRefused(409, "other_sender", f"call {call.call_id!r} at {call.device_id} was placed by another "
                                                f"sender ({call.by}, via {call.via}): only its sender may {what} it; "
                                                "give your vehicle a call id of its own")

    def _check_room(self, signal: str, sender: str) -> None:
        """`CallRefused` (409 too_many) when a new call would pass a bound on the calls in force (under the lock)."""
        here = [c for (s, _id), c in self._calls.items() if s == signal]
        if len(here) >= MAX_CALLS_PER_SIGNAL:
            raise CallRefused(409, "too_many", f"{MAX_CALLS_PER_SIGNAL} calls are in force at {signal} already (the "
                                               "most one signal takes): end some (off) or let them lapse")
        if sum(c.sender == sender for c in here) >= MAX_CALLS_PER_SENDER_AT_SIGNAL:
            raise CallRefused(409, "too_many", f"this sender has {MAX_CALLS_PER_SENDER_AT_SIGNAL} calls in force at "
                                               f"{signal} already (the most one sender holds at a signal): end some "
                                               "(off) or let them lapse")
        if sum(c.sender == sender for c in self._calls.values()) >= MAX_CALLS_PER_SENDER:
            raise CallRefused(409, "too_many", f"this sender has {MAX_CALLS_PER_SENDER} calls in force already (the "
                                               "most one sender holds): end some (off) or let them lapse")

    def _remember_off(self, signal: str, key: tuple[str, str], sent_s: float, wall: float) -> None:
        """Keep an `off` for as long as an `on` sent before it could still come in time (under the lock); the
        signal's oldest are forgotten first past MAX_OFFS_PER_SIGNAL."""
        offs = self._offs.setdefault(signal, {})
        before = offs.pop(key, None)
        offs[key] = (max(sent_s, before[0]) if before else sent_s, wall + CALL_LAPSE_S + MAX_AHEAD_S)
        while offs and (len(offs) > MAX_OFFS_PER_SIGNAL or next(iter(offs.values()))[1] <= wall):
            del offs[next(iter(offs))]

    def _sent_s(self, req: PreemptRequest, now: float, via: str) -> tuple[float, float]:
        """The call's time on the run's clock (`now` when it gives none and may: REST) and its age in wall seconds
        (run seconds for a `sim_time_s` in an unpaced run), or `CallRefused`."""
        if req.sim_time_s is not None:
            sent = req.sim_time_s
            age_s = (now - sent) / self.speed if self.speed else now - sent
        elif req.time is not None:
            if self.speed is None:
                raise CallRefused(422, "time", "the run is unpaced: its clock does not follow the wall clock, so a "
                                               "call's `time` cannot be placed on it; send sim_time_s")
            age_s = time.time() - req.time.timestamp()
            sent = now - age_s * self.speed
        elif via == "mqtt":
            raise CallRefused(422, "time", "an MQTT call carries its time (time, ISO 8601 with a zone, or "
                                           "sim_time_s), so a message the broker kept and delivered late is known")
        else:
            return now, 0.0
        if -age_s > MAX_AHEAD_S:
            raise CallRefused(422, "time", f"the call's time is {-age_s:.0f} s ahead of now (the sender's clock is "
                                           "wrong)")
        if req.state == "on" and age_s > CALL_LAPSE_S:
            raise CallRefused(422, "late", f"the call was sent {age_s:.0f} s ago, more than the "
                                           f"{CALL_LAPSE_S:g} s a call lasts without a repeat: not placed")
        return sent, age_s

    def admit_mqtt(self, device: str | None) -> bool:
        """Whether an MQTT message on `device`'s call topic may be read (MQTT_BURST, MQTT_PER_S per signal topic;
        topics of signals the run does not have share one bucket, so their names cannot grow memory). A refusal is
        counted (`flood`); the first of a burst is recorded and logged, the rest only counted."""
        name = device if device in self.intersections else ""
        wall = self.wall()
        with self._lock:
            bucket = self._mqtt_buckets.setdefault(name, [float(MQTT_BURST), wall, False])
            bucket[0] = min(float(MQTT_BURST), bucket[0] + (wall - bucket[1]) * MQTT_PER_S)
            bucket[1] = wall
            if bucket[0] >= 1.0:
                bucket[0] -= 1.0
                bucket[2] = False
                return True
            self._refused[("mqtt", "flood")] += 1
            first, bucket[2] = not bucket[2], True
        if first:
            self.refused("flood", f"{device}: more than {MQTT_BURST} call messages at once, or over {MQTT_PER_S:g} a "
                                  "second: the rest of this burst is refused unread (counted, not each recorded)",
                         "mqtt", device, by="mqtt", count=False)
        return False

    def refused(self, code: str, reason: str, via: str, device_id: str | None = None, call_id: str | None = None,
                by: str = "", count: bool = True) -> None:
        """Count and record a refusal (the MQTT client's own refusals too: a payload that is no call)."""
        with self._lock:
            if count:
                self._refused[(via, code)] += 1
            self._last_refusal = reason
            self._rows.append((round(self.now(), 3), device_id or "", call_id or "", "refused", "", "", "", via, by,
                               f"{code}: {reason}"))
        log.warning("preemption call refused (%s): %s", via, reason)

    # -- the loop's side --------------------------------------------------------------------
    def any_in_force(self) -> bool:
        return bool(self._calls)  # one read of a dict's size: no lock needed to know whether to look

    def approaches(self, time_s: float) -> dict[str, list[EmergencyApproach]]:
        """The calls in force at `time_s` as emergency vehicles per signal (lapsed ones end here, recorded)."""
        out: dict[str, list[EmergencyApproach]] = {}
        lapsed = []
        wall = self.wall()
        with self._lock:
            for key, call in list(self._calls.items()):
                quiet_s = wall - call.refreshed_wall_s
                if quiet_s > CALL_LAPSE_S:
                    del self._calls[key]
                    self._lapsed += 1
                    self._row(time_s, call, "lapsed", call.via, call.by,
                              f"not refreshed for {quiet_s:.0f} s of wall-clock time (lapses after {CALL_LAPSE_S:g} s)")
                    lapsed.append(call)
                    continue
                t = call.target
                out.setdefault(call.device_id, []).append(
                    EmergencyApproach(call.call_id, t.lane, call.distance_m, t.link_index))
        for call in lapsed:
            log.warning("preemption call %s at %s lapsed: not refreshed for %g s", call.call_id, call.device_id,
                        CALL_LAPSE_S)
        return out

    def _row(self, time_s: float, call: Call, state: str, via: str, by: str, detail: str) -> None:
        self._rows.append((round(time_s, 3), call.device_id, call.call_id, state, call.target.approach,
                           call.target.phase_index + 1, "" if call.channel is None else call.channel, via, by,
                           detail))

    def drain_rows(self) -> list[tuple]:
        """The rows for preempt_calls.csv since the last drain (CSV_COLUMNS)."""
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    # -- readers ---------------------------------------------------------------------------
    def active(self) -> list[dict]:
        wall = self.wall()
        with self._lock:
            return [c.view(wall) for c in sorted(self._calls.values(), key=lambda c: (c.device_id, c.placed_s))]

    def stats(self) -> dict:
        """Counts for /status and /metrics: calls taken per transport (on, refresh, off), refused per transport and
        code, placed, ended, lapsed, in force, and the last refusal's reason."""
        with self._lock:
            by_via: dict[str, dict] = {}
            for via, n in self._accepted.items():
                by_via.setdefault(via, {"accepted": 0, "refused_by_code": {}})["accepted"] = n
            for (via, code), n in self._refused.items():
                by_via.setdefault(via, {"accepted": 0, "refused_by_code": {}})["refused_by_code"][code] = n
            return {"accepted": sum(self._accepted.values()), "refused": sum(self._refused.values()),
                    "placed": self._placed_total, "ended": self._ended, "lapsed": self._lapsed,
                    "in_force": len(self._calls), "last_refused_reason": self._last_refusal,
                    "lapse_after_s": CALL_LAPSE_S, "by_transport": by_via}


class WithPreemptCalls:
    """The loop's source with the external calls beside its own emergency vehicles (SUMO's, with `--field sumo`).

    `inner()` is the source now: a recovered simulator replaces the field's backend, and this follows it. Every
    other attribute is the inner source's."""

    def __init__(self, inner: Callable[[], Any], calls: PreemptCalls):
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner(), name)

    def observe(self, inter, time_s, need):
        return self._inner().observe(inter, time_s, need)

    @property
    def emergency_active(self) -> bool:
        return bool(self._inner().emergency_active) or self._calls.any_in_force()

    def emergency_approaches(self, intersections, within_m: float) -> dict[str, list[EmergencyApproach]]:
        inner = self._inner()
        found = inner.emergency_approaches(intersections, within_m) if inner.emergency_active else {}
        if not self._calls.any_in_force():
            return found
        external = self._calls.approaches(self._calls.now())
        if not external:
            return found
        merged = {k: list(v) for k, v in found.items()}
        for signal, calls in external.items():
            if signal in intersections:
                merged.setdefault(signal, []).extend(calls)
        return merged


#: an MQTT call payload larger than this is refused unread (a call is a few hundred bytes)
MAX_PAYLOAD_BYTES = 16 * 1024


def take_mqtt(calls: PreemptCalls, topic: str, payload: bytes, retained: bool) -> None:
    """One MQTT message on `{prefix}/{signal}/preempt` (paho's thread): taken, or refused and counted, never raised.

    Handled at once rather than queued behind the detector payloads (`mqtt.MqttFeed`): a call waits for nothing.
    A retained message is refused as the detector feed refuses one: it is the broker's copy of an old call. Past
    the burst bound (`PreemptCalls.admit_mqtt`) a message is refused unread. The MQTT input is one sender: the
    broker's ACL says who may publish calls (docs/live-feeds.md)."""
    parts = topic.split("/")
    device = parts[-2] if len(parts) >= 3 else None
    if not calls.admit_mqtt(device):
        return
    if retained:
        calls.refused("retained", f"{topic}: a retained message (the broker's stored copy of an earlier call) "
                                  "refused: publish calls without the retain flag", "mqtt", device, by="mqtt")
        return
    if len(payload) > MAX_PAYLOAD_BYTES:
        calls.refused("invalid", f"{topic}: payload of {len(payload)} bytes; a call takes at most "
                                 f"{MAX_PAYLOAD_BYTES}", "mqtt", device, by="mqtt")
        return
    try:
        data = json.loads(payload)
        req = PreemptRequest.model_validate(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors(include_url=False)[0]
            why = f"{'.'.join(map(str, err.get('loc', ()))) or 'message'}: {err.get('msg')}"
        else:
            why = f"not JSON: {exc}"
        calls.refused("invalid", f"{topic}: {why}", "mqtt", device, by="mqtt")
        return
    if req.intersection_id != device:
        calls.refused("wrong_topic", f"{topic}: the call is for {req.intersection_id!r}, published under "
                                     f"{device!r}: publish it on the signal's own topic", "mqtt", device,
                      req.call_id, by="mqtt")
        return
    try:
        calls.take(req, via="mqtt", by="mqtt", sender="mqtt")
    except CallRefused:
        pass  # counted, recorded and logged by `take`
