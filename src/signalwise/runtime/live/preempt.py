"""Preemption calls from outside the loop: a fire department's dispatch or an emitter's gateway calls a signal.

A call names a signal, the approach the vehicle comes from (its compass name,
as the snapshot names approaches, or an incoming edge id) or the phase to
serve, `on` or `off`, and the caller's call id (the vehicle or device). It
comes over REST (`POST /api/v1/live/preempt`) or MQTT
(`{mqtt_topic_prefix}/{signal}/preempt`, `mqtt.MqttFeed`). While on, the
loop's source answers it as one more approaching emergency vehicle
(`EmergencyApproach`, its vehicle id the call id, on a link of the called
approach that the called phase serves): the shield takes it as it takes a
simulated emergency vehicle, so its rules (entry through minimum green and
clearances, max dwell), the event log (102/105/107/104, 110), the audit and
the dashboard see one kind of preemption. The preemption distance does not
apply: the sender decides when to call.

A call is a heartbeat. It lapses CALL_LAPSE_S after its last `on` (on the
run's clock) unless that is sent again, so a lost `off` (a radio gone quiet, a
gateway that crashed) never holds a signal; the shield's `preempt_max_dwell_s`
still ends a call kept on for ever. A call for a signal whose preemption is
off is refused with the reason, never taken and ignored.

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

from ...core.types import EmergencyApproach, Intersection
from .feeds import _iso_text

log = logging.getLogger("signalwise.live.preempt")

#: a call not sent again (`on`) within this many seconds of the run's clock lapses, as if `off` had come: senders
#: repeat `on` every few seconds (docs/live-feeds.md says every 5 s); an emitter's optical or radio call drops as
#: soon as the signal stops receiving it, and 20 s leaves room for three lost repeats
CALL_LAPSE_S = 20.0
#: a call's time more than this ahead of the run's clock is refused (the sender's clock is wrong)
MAX_AHEAD_S = 5.0
#: calls in force at once, over all signals: a sender that never ends its calls cannot grow the run's memory
MAX_ACTIVE_CALLS = 1000
#: why a call was refused
REFUSAL_CODES = ("invalid", "unknown_signal", "unknown_approach", "unknown_phase", "preempt_off", "late", "time",
                 "wrong_topic", "retained", "too_many")
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
        f"{CALL_LAPSE_S:g} s of the run's clock lapses); `off` ends it"))
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
        "the vehicle's distance from the stop line when the sender knows it (shown in the snapshot; nearer "
        "calls are served first); default 0"))
    time: Annotated[AwareDatetime | None, BeforeValidator(_iso_text)] = Field(
        None, description="when the sender sent it, ISO 8601 with a zone; a call older than the lapse time is "
                          "refused as late. Over MQTT this or sim_time_s is required; over REST the arrival time "
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

    def view(self) -> dict:
        return {"intersection_id": self.device_id, "call_id": self.call_id,
                "approach": self.target.approach, "phase": self.target.phase_index + 1,
                "channel": self.channel, "distance_m": self.distance_m, "placed_s": round(self.placed_s, 3),
                "refreshed_s": round(self.refreshed_s, 3), "lapses_at_s": round(self.refreshed_s + CALL_LAPSE_S, 3),
                "via": self.via, "by": self.by}


def serving_phase(inter: Intersection, link: int) -> int | None:
    """The phase the shield serves a link's call with (`Shield._phase_serving_link`): the first phase giving it a
    protected green ('G'), else the first giving it a permitted one ('g')."""
    best = None
    for p in inter.phases:
        ch = p.green_state[link] if link < len(p.green_state) else "r"
        if ch == "G":
            return p.index
        if ch == "g" and best is None:
            best = p.index
    return best


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
    served = {m.link_index: serving_phase(inter, m.link_index) for m in links}
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
    `speed`: simulated seconds per wall second (None: unpaced, where a wall-clock `time` has no meaning).
    One lock around a few dictionary updates; nothing under it waits.
    """

    def __init__(self, intersections: Mapping[str, Intersection], direction: Mapping[str, str],
                 preempt_on: Callable[[str], bool], now: Callable[[], float], speed: float | None = 1.0):
        self.intersections = dict(intersections)
        self.direction = dict(direction)
        self.preempt_on = preempt_on
        self.now = now
        self.speed = speed
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], Call] = {}
        self._last_off_s: dict[tuple[str, str], float] = {}  # an `on` stamped before its call's last `off` is old
        self._rows: list[tuple] = []
        self._accepted: Counter = Counter()  # via -> calls taken (on, refresh, off)
        self._refused: Counter = Counter()  # (via, code) -> refusals
        self._placed_total = 0
        self._ended = 0
        self._lapsed = 0
        self._last_refusal: str | None = None

    # -- calls in -------------------------------------------------------------------------
    def take(self, req: PreemptRequest, via: str = "rest", by: str = "local") -> dict:
        """Place, refresh or end a call; the answer for the sender, or `CallRefused` (counted, recorded)."""
        try:
            return self._take(req, via, by)
        except CallRefused as exc:
            self.refused(exc.code, exc.reason, via, req.intersection_id, req.call_id, by)
            raise

    def _take(self, req: PreemptRequest, via: str, by: str) -> dict:
        now = self.now()
        inter = self.intersections.get(req.intersection_id)
        if inter is None:
            raise CallRefused(404, "unknown_signal", f"this run has no signal {req.intersection_id!r} "
                                                     f"(signals: {', '.join(sorted(self.intersections))})")
        sent_s = self._sent_s(req, now, via)
        key = (inter.id, req.call_id)
        if req.state == "off":
            with self._lock:
                call = self._calls.pop(key, None)
                self._last_off_s[key] = max(sent_s, self._last_off_s.get(key, sent_s))
                self._accepted[via] += 1
                if call is not None:
                    self._ended += 1
                    self._row(now, call, "off", via, by, "")
            if call is None:
                return {"state": "off", "call": None,
                        "note": f"no call {req.call_id!r} was in force at {inter.id} (it had ended or lapsed, or was "
                                "never placed)"}
            log.warning("preemption call %s at %s ended (off, via %s, by %s)", req.call_id, inter.id, via, by)
            return {"state": "off", "call": call.view()}
        if not self.preempt_on(inter.id):
            raise CallRefused(409, "preempt_off", f"preemption is off at signal {inter.id} in this run (shield."
                                                  "preempt: false), so the call would be ignored; a run that takes "
                                                  "calls keeps shield.preempt true")
        target = resolve_target(inter, self.direction, req.approach, req.phase)
        with self._lock:
            if sent_s <= self._last_off_s.get(key, -float("inf")):
                raise CallRefused(409, "late", f"call {req.call_id!r} at {inter.id} was ended by an `off` sent after "
                                               "this `on` (a message delivered out of order or again): not placed")
            call = self._calls.get(key)
            if call is not None and call.target == target:  # a heartbeat
                call.refreshed_s = max(call.refreshed_s, min(sent_s, now))
                call.distance_m = req.distance_m if req.distance_m is not None else call.distance_m
                call.channel = req.channel if req.channel is not None else call.channel
                self._accepted[via] += 1
                return {"state": "on", "placed": False, "call": call.view()}
            if call is None and len(self._calls) >= MAX_ACTIVE_CALLS:
                raise CallRefused(409, "too_many", f"{MAX_ACTIVE_CALLS} calls are in force already: end some (off) "
                                                   "or let them lapse")
            if call is not None:  # the same caller now calls another approach: its old call ends here
                self._row(now, call, "off", via, by, f"replaced by a call for {target.approach}")
            call = Call(inter.id, req.call_id, target, req.channel, req.distance_m or 0.0, now, min(sent_s, now), via,
                        by)
            self._calls[key] = call
            self._accepted[via] += 1
            self._placed_total += 1
            self._row(now, call, "on", via, by, f"phase {target.phase_index + 1} serves it")
        log.warning("preemption call %s at %s placed: %s approach, phase %d (via %s, by %s)", req.call_id, inter.id,
                    target.approach, target.phase_index + 1, via, by)
        return {"state": "on", "placed": True, "call": call.view()}

    def _sent_s(self, req: PreemptRequest, now: float, via: str) -> float:
        """The call's time on the run's clock (`now` when it gives none and may: REST), or `CallRefused`."""
        if req.sim_time_s is not None:
            sent = req.sim_time_s
        elif req.time is not None:
            if self.speed is None:
                raise CallRefused(422, "time", "the run is unpaced: its clock does not follow the wall clock, so a "
                                               "call's `time` cannot be placed on it; send sim_time_s")
            sent = now + (req.time.timestamp() - time.time()) * self.speed
        elif via == "mqtt":
            raise CallRefused(422, "time", "an MQTT call carries its time (time, ISO 8601 with a zone, or "
                                           "sim_time_s), so a message the broker kept and delivered late is known")
        else:
            return now
        if sent - now > MAX_AHEAD_S:
            raise CallRefused(422, "time", f"the call's time is {sent - now:.0f} s ahead of the run's clock (the "
                                           "sender's clock is wrong)")
        if req.state == "on" and now - sent > CALL_LAPSE_S:
            raise CallRefused(422, "late", f"the call was sent {now - sent:.0f} s ago, more than the "
                                           f"{CALL_LAPSE_S:g} s a call lasts without a repeat: not placed")
        return sent

    def refused(self, code: str, reason: str, via: str, device_id: str | None = None, call_id: str | None = None,
                by: str = "") -> None:
        """Count and record a refusal (the MQTT client's own refusals too: a payload that is no call)."""
        with self._lock:
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
        with self._lock:
            for key, call in list(self._calls.items()):
                if time_s - call.refreshed_s > CALL_LAPSE_S:
                    del self._calls[key]
                    self._lapsed += 1
                    self._row(time_s, call, "lapsed", call.via, call.by,
                              f"not refreshed for {time_s - call.refreshed_s:.0f} s (lapses after {CALL_LAPSE_S:g} s)")
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
        with self._lock:
            return [c.view() for c in sorted(self._calls.values(), key=lambda c: (c.device_id, c.placed_s))]

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
    A retained message is refused as the detector feed refuses one: it is the broker's copy of an old call."""
    parts = topic.split("/")
    device = parts[-2] if len(parts) >= 3 else None
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
        calls.take(req, via="mqtt", by="mqtt")
    except CallRefused:
        pass  # counted, recorded and logged by `take`
