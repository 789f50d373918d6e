"""Alert rules over the live loop's figures: raised once when a condition has held long enough, cleared with
hysteresis, acknowledged by an operator, reloaded without a restart.

The loop hands `AlertEngine.evaluate` two clocks and a flat dict of figures. Conditions are held on the first,
wall seconds (a live run's `time.monotonic()`: at `--speed 10` a simulated minute is six seconds, too short to
mean anything to an operator); alerts are stamped with the second, the run's simulated seconds (`raised_at_s`,
`cleared_at_s`, as every other `_s` time of the run: changes, interventions), beside wall-clock ISO times
(`wall_time`, `cleared_wall_time`). The figures are `LiveRuntime.metrics()`: `fallback_share`, `stale_sources`,
`queue_spillback.<id>`, `decision_latency_p99_ms`, ... A rule names one figure, or every figure under a prefix (`queue_spillback.*`:
one alert per intersection). A rule on `X_per_min` that the loop does not report is read as the increase of
the counter `X` over the last 60 s of the stamping clock (a live run's simulated minute: the counters count what
the run did, and at `--speed 10` a wall minute holds ten simulated ones), so cumulative counters
(`shield_interventions`) can be alerted on as rates.

Written by hand, not with a library: the state machine (pending → active → cleared, per rule and key) is
forty lines, and the alerting libraries in Python (Prometheus' Alertmanager is a service, not a library)
would bring a server for what the loop does in-process.

An operator changes the rules through the API (`operator_rules`): the rules the run started with (built in, and
its `--config`'s) stay, a rule of the same name adjusts one, within `SAFETY_LIMITS` for the built-in safety
alerts, and a rule must name a figure the run reports or can report later (`metric_problem`): a misspelt one
would wait silently forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import operator
import os
import queue
import resource
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import PREEMPT_MAX_DWELL_S
from .changes import ChangeRefused
from .loosening import HIGHER, live_bound

log = logging.getLogger("signalwise.live.alerts")

Level = Literal["info", "warning", "error", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}

#: at most this many subjects are named in an alert's message (all of them, up to `MAX_SUBJECTS`, in `subjects`)
SHOWN_SUBJECTS = 3
MAX_SUBJECTS = 100

#: a derived rate: `X_per_min` is the increase of the counter `X` over this many seconds of the stamping clock
#: (`evaluate`'s run_time_s: simulated seconds in a live run)
RATE_WINDOW_S = 60.0
RATE_SUFFIX = "_per_min"
WILDCARD = ".*"

Finite = Annotated[float, Field(allow_inf_nan=False)]


class AlertRule(BaseModel):
    """One condition on one figure (or, with a `.*` metric, on each figure under a prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$",
                      description="unique among the rules; no spaces or slashes")
    metric: str = Field(min_length=1, max_length=200, pattern=r"^[^\s*]+(\.\*)?$",
                        description="a figure's dotted name, or `prefix.*` for one alert per key under it")
    op: Op = Field(">", description="how the figure is compared with `threshold`: the alert raises while "
                                     "`figure op threshold` holds")
    threshold: Finite = Field(description="the value the figure is compared with")
    for_s: float = Field(0.0, ge=0, allow_inf_nan=False,
                         description="seconds the condition must hold before the alert is raised, on the clock "
                                     "conditions are held on (a live run's: wall seconds)")
    level: Level = Field("warning", description="how serious: `info`, `warning`, `error` or `critical`")
    clear_threshold: Finite | None = Field(None, description="the alert clears only when the figure no longer "
                                                             "satisfies `op` against this (default: threshold)")
    description: str = Field("", max_length=500, description="why this matters, in one line")
    until_acknowledged: bool = Field(False, description=(
        "for a count that only grows (simulator_restarts): the alert stays until acknowledged, which clears it; "
        "the count growing past what was acknowledged raises a new one"))

    @model_validator(mode="after")
    def _clear_on_the_quiet_side(self) -> AlertRule:
        c = self.clear_threshold
        if c is None or c == self.threshold:
            return self
        if self.op in ("==", "!="):
            raise ValueError(f"clear_threshold makes no sense with op {self.op!r}; leave it out")
        if self.op in (">", ">=") and c > self.threshold:
            raise ValueError(f"clear_threshold {c:g} must not be above threshold {self.threshold:g} for op {self.op!r}")
        if self.op in ("<", "<=") and c < self.threshold:
            raise ValueError(f"clear_threshold {c:g} must not be below threshold {self.threshold:g} for op {self.op!r}")
        return self

    @property
    def wildcard(self) -> bool:
        return self.metric.endswith(WILDCARD)

    @property
    def clear_at(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold

    def holds(self, value: float) -> bool:
        """The raising condition."""
        return _OPS[self.op](value, self.threshold)

    def cleared(self, value: float) -> bool:
        """The clearing condition: the figure is back across `clear_threshold`."""
        return not _OPS[self.op](value, self.clear_at)

    def matches(self, key: str) -> bool:
        if self.wildcard:
            prefix = self.metric[:-1]  # keeps the dot: 'queue_spillback.'
            return key.startswith(prefix) and len(key) > len(prefix)
        return key == self.metric


def _rule(name: str, metric: str, op: str, threshold: float, for_s: float, level: str, description: str,
          clear_threshold: float | None = None, until_acknowledged: bool = False) -> AlertRule:
    return AlertRule(name=name, metric=metric, op=op, threshold=threshold, for_s=for_s, level=level,
                     clear_threshold=clear_threshold, description=description, until_acknowledged=until_acknowledged)


#: what an operator is told about without writing a rule; a rule of the same name in the configuration replaces
#: one of these (`with_builtins`)
BUILTIN_RULES: tuple[AlertRule, ...] = (
    _rule("fallback_share", "fallback_share", ">=", 0.5, 60, "warning",
          "half the signals or more have followed their Webster fallback for a minute: the controller or its "
          "data is not trusted there", clear_threshold=0.25),
    _rule("stale_data", "stale_sources", ">", 0, 10, "warning",
          "a signal's observation is stale or unhealthy (a feed went silent or sends impossible values); each "
          "signal named says what it runs on meanwhile (its fallback plan, an operator's hold, a plan that reads "
          "no data)"),
    # not a safety alert (SAFETY_LIMITS): stale_data raises on what the lost broker does to the signals; this one
    # says why, naming the broker and its last connection error
    _rule("mqtt_disconnected", "mqtt_disconnected", ">=", 1, 10, "warning",
          "the detector feed's MQTT broker (--mqtt) has not been connected for 10 s: no detector messages come "
          "over MQTT, and the signals they feed go stale and onto their fallback plan (stale_data); the client "
          "keeps retrying, the delay growing to 60 s"),
    _rule("queue_spillback", "queue_spillback.*", ">=", 1, 30, "warning",
          "the queue has reached the advance detector for 30 s: the approach is spilling back towards the "
          "upstream signal", clear_threshold=0.5),
    _rule("decision_latency", "decision_latency_p99_ms", ">", 100, 30, "warning",
          "p99 from observation to actuation is above 100 ms: decisions reach the signals late",
          clear_threshold=50),
    _rule("pacing_lateness", "pacing_lateness_p99_ms", ">", 250, 30, "warning",
          "p99 tick lateness is above 250 ms: the loop is falling behind the wall clock", clear_threshold=100),
    _rule("process_cpu", "process_cpu_pct", ">", 90, 60, "warning",
          "the runtime has used more than 90% of a core for a minute: ticks will start late", clear_threshold=70),
    _rule("process_memory", "process_rss_mb", ">", 2048, 60, "warning",
          "the runtime holds more than 2 GB: a leak, or a store buffer growing while the database is away",
          clear_threshold=1536),
    _rule("shield_interventions", "shield_interventions_per_min", ">", 30, 0, "warning",
          "the shield overrode the controller more than 30 times in a simulated minute: a green the controller held "
          "ended by the cycle bound or maximum green, a preemption, the fallback taking over, a phase the signal "
          "lacks (interventions.csv names the rule each time). The signals stay safe; the controller and the "
          "timing disagree often",
          clear_threshold=10),
    # not safety alerts (SAFETY_LIMITS): what the shield served instead raises fallback_share; these say why
    _rule("controller_errors", "controller_errors", ">", 0, 0, "warning",
          "the controller's decide raised an error: the shield's Webster fallback served the signal in its place "
          "until a decision of the controller could be followed again. controller_errors.csv in the run directory "
          "lists each kind (type, message, file and line, count, signals), and stderr said it (controller ... "
          "failed at ...); stays until acknowledged, and each error after that raises it again",
          until_acknowledged=True),
    _rule("controller_invalid_proposals", "controller_invalid_proposals", ">", 0, 0, "warning",
          "the controller proposed what the shield cannot follow: a phase the signal does not have, a decision "
          "for another signal or a decision it cannot read (the Webster fallback served). "
          "controller_errors.csv in the run directory lists each kind with its count, and stderr said it "
          "(controller ... made a proposal the shield cannot follow); stays until acknowledged, and each one after "
          "that raises it again", until_acknowledged=True),
    _rule("simulator_restarted", "simulator_restarts", ">", 0, 0, "warning",
          "the simulator crashed and the run resumed from its last saved state (up to --state-every seconds "
          "rewound); stays until acknowledged, and each crash after that raises it again",
          until_acknowledged=True),
    _rule("simulator_crash_loop", "simulator_restarts", ">=", 3, 0, "error",
          "the simulator crashed three times or more: look at the scenario or SUMO before trusting this run"),
    _rule("store_buffer_overflow", "store_buffer_overflow", ">", 0, 0, "error",
          "the database was away longer than the store buffer holds: rows were dropped and are lost"),
    _rule("store_unavailable", "store_unavailable_s", ">", 30, 0, "warning",
          "the database (--db) has not taken a write for 30 s: the run's rows wait in its store buffer "
          "(store_buffered_rows) and are written once it answers; past 1,000,000 rows they are dropped "
          "(store_buffer_overflow)", clear_threshold=0),
    _rule("shield_changed", "shield_changes", ">", 0, 0, "info",
          "an operator changed the shield's settings (confidence threshold, data age, preemption distance or dwell), "
          "or a restart applied such a change again: the alert names who and each setting old -> new, as the "
          "change log and stderr do. Preemption and the confidence fallback cannot be switched off at run time "
          "(docs/live.md); stays until acknowledged, and each change after that raises it again",
          until_acknowledged=True),
    # a preemption holds one green past the maximum green and the cycle bound: one of 2 minutes is past any entry
    # (a minimum green and a change interval) plus the default 60 s dwell, so a call that does not end (a vehicle
    # standing at a scene, an input never switched off) is named while it lasts, not only at its 110
    _rule("preempt_long", "preempt_active_s", ">", 120, 0, "warning",
          "a preemption has been active for more than 120 s at a signal (from its call, 102): the cross streets "
          "wait red while it lasts; the alert names each signal and since when, and clears when the preemption "
          "ends (104). Look for a stuck call: a vehicle standing inside the preemption distance, an external call "
          "never switched off", clear_threshold=0),
    _rule("preempt_timeout", "preempt_timeouts", ">", 0, 0, "warning",
          "a preemption reached its maximum presence (shield.preempt_max_dwell_s) and was ended by the shield "
          "(110, then 104): a call held longer than the dwell allows, which a passing vehicle does not do; the "
          "alert names each signal and when; stays until acknowledged, and each timeout after that raises it again",
          until_acknowledged=True),
    _rule("previous_run_died", "previous_run_died", ">", 0, 0, "warning",
          "the previous live run of this corridor ended without a word (SIGKILL, out of memory, a power cut): its "
          "run.json now says died; the evidence between its last moment and this run's start is missing",
          until_acknowledged=True),
    # camera streams (signalwise.vision.monitoring): only where a server runs cameras
    _rule("vision_stream_down", "vision_stream_down.*", ">=", 1, 10, "error",
          "a camera stream has delivered nothing for 10 s and is reconnecting (or gave up). In a live run with "
          "--field none its camera is a source of the loop: the signal it watches is on its Webster fallback "
          "plan until frames come again. Elsewhere (--field sumo, no live run) it drives no signal: only its "
          "counts, crossings and violations stop"),
    # the 10 s hold is the stream's own (monitoring.IMAGE_BAD_AFTER_S or the camera file's image_bad_after_s, in
    # its frames' seconds), so that the live
    # run's fallback and the alert start together: the rules raise at once
    _rule("vision_stream_blank", "vision_stream_blank.*", ">=", 1, 0, "error",
          "a camera stream delivers frames but no picture (blank: one flat colour, e.g. black) for 10 s (its "
          "camera file's image_bad_after_s): the lens "
          "is covered, there is no light (IR failed at night) or the encoder sends blank frames. In a live run "
          "with --field none the signal it watches is on its Webster fallback plan until the picture is back; "
          "elsewhere its counts, crossings and violations are missing. It holds while the stream is down after it, "
          "until a frame with a picture comes"),
    _rule("vision_stream_frozen", "vision_stream_frozen.*", ">=", 1, 0, "error",
          "a camera stream has repeated the same frame for 10 s (its camera file's image_bad_after_s): its "
          "encoder has hung. In a live run with "
          "--field none the signal it watches is on its Webster fallback plan until the picture moves again; "
          "elsewhere its counts, crossings and violations are missing. It holds while the stream is down after "
          "it, until a frame that moves comes"),
    _rule("vision_low_fps", "vision_pipeline_fps.*", "<", 5, 30, "warning",
          "a camera's pipeline has processed fewer than 5 frames/s for 30 s: tracks and speeds degrade",
          clear_threshold=6),
    _rule("vision_frame_time", "vision_frame_ms_p95.*", ">", 200, 30, "warning",
          "p95 time per camera frame is above 200 ms: the machine cannot keep up with its cameras",
          clear_threshold=150),
)


def with_builtins(rules: Iterable[AlertRule]) -> list[AlertRule]:
    """The built-in rules with the given ones added; a given rule named like a built-in replaces it."""
    rules = list(rules)
    names = {r.name for r in rules}
    return [r for r in BUILTIN_RULES if r.name not in names] + rules


BUILTIN_NAMES = frozenset(r.name for r in BUILTIN_RULES)

_LEVELS: tuple[str, ...] = ("info", "warning", "error", "critical")


@dataclass(frozen=True)
class SafetyLimits:
    """How far an operator may adjust a built-in safety alert through the API. Each of these rules raises on a
    figure that grows (`>`, `>=`), so looser is a higher threshold, a longer hold or a lower level."""

    max_threshold: float
    max_for_s: float
    min_level: Level = "warning"
    #: an alert held until acknowledged stays silent after one acknowledgement while its figure does not grow:
    #: on a safety alert, one click would silence four stale signals for the rest of the run
    may_wait_for_acknowledgement: bool = False

    def problem(self, rule: AlertRule) -> str | None:
        if rule.until_acknowledged and not self.may_wait_for_acknowledgement:
            return ("until_acknowledged would let one acknowledgement silence it while its figure stays up; "
                    "it clears when the figure does")
        if rule.threshold > self.max_threshold:
            return f"threshold {rule.threshold:g} is above its limit {self.max_threshold:g}"
        if rule.for_s > self.max_for_s:
            return f"for_s {rule.for_s:g} is above its limit {self.max_for_s:g}"
        if _LEVELS.index(rule.level) < _LEVELS.index(self.min_level):
            return f"level {rule.level!r} is below its limit {self.min_level!r}"
        return None


#: the built-in alerts whose silence would hide that signals run without trusted data (fallback, stale) or that the
#: run is crashing or losing its record: an operator may tighten or retune them through the API, never remove
#: them or loosen them past these (a run's `--config` still may: it is read before the run starts, by whoever
#: deploys it, and the restart banner does not have to explain it). `mqtt_disconnected` is not one: `stale_data`
#: already raises on what a lost broker does to the signals, and a run fed over HTTP or by cameras as well may have
#: a broker away without any signal losing its data, so an operator may quiet it (a longer hold) for its upkeep
SAFETY_LIMITS: dict[str, SafetyLimits] = {
    "fallback_share": SafetyLimits(max_threshold=1.0, max_for_s=300),  # every signal on fallback still raises
    "stale_data": SafetyLimits(max_threshold=0, max_for_s=60),  # one stale signal is enough
    "simulator_crash_loop": SafetyLimits(max_threshold=5, max_for_s=0),
    "store_buffer_overflow": SafetyLimits(max_threshold=0, max_for_s=0),  # one row lost is enough
    # a preemption held as long as the longest dwell the configuration allows (config.PREEMPT_MAX_DWELL_S) still
    # raises it
    "preempt_long": SafetyLimits(max_threshold=PREEMPT_MAX_DWELL_S, max_for_s=60),
}

#: the figures `LiveRuntime.metrics()` reports under a fixed name (`store_buffer_overflow` with a store only,
#: `mqtt_disconnected` with `--mqtt` only)
FIXED_FIGURES: tuple[str, ...] = (
    "fallback_share", "stale_sources", "decision_latency_p99_ms", "pacing_lateness_p99_ms", "simulator_restarts",
    "shield_interventions", "controller_errors", "controller_invalid_proposals", "store_buffer_overflow",
    "store_unavailable_s", "store_buffered_rows", "previous_run_died", "shield_changes", "process_cpu_pct", "process_rss_mb", "mqtt_disconnected",
    "preempt_active", "preempt_active_s", "preempt_calls", "preempt_timeouts")
#: figures reported once per key (`family.<key>`), and what the key is. A camera's figures appear when a stream is
#: added to the server, so a rule may name a camera not there yet; a signal's are there from the start.
KEYED_FIGURES: dict[str, str] = {
    "queue_spillback": "signal",
    **{f"vision_{f}": "camera" for f in ("stream_down", "stream_blank", "stream_frozen", "stream_fps",
                                         "drop_share", "pipeline_fps", "frame_ms_p95")},
}


def known_metrics() -> list[str]:
    """What a rule may name, as an operator reads it in a refusal and `GET /api/v1/live/config/alerts`."""
    return [*FIXED_FIGURES, *(f"{family}.<{key}>" for family, key in KEYED_FIGURES.items()),
            f"<counter>{RATE_SUFFIX}"]


def metric_problem(metric: str, reported: Iterable[str] = ()) -> str | None:
    """Why a rule on `metric` would never raise in this run (None: it can). `reported`: the figures reported now.

    A figure reported now, a fixed one (or its `_per_min` rate), a keyed family's wildcard, a camera's figure
    (the camera may be added later) pass; a signal's figure must name one of the run's signals that has it."""
    reported = set(reported)
    if metric in reported or metric.removesuffix(RATE_SUFFIX) in FIXED_FIGURES:
        return None
    if metric.endswith(WILDCARD) and any(k.startswith(metric[:-1]) for k in reported):
        return None  # a family some other source of figures reports
    family, dot, key = metric.partition(".")
    if dot and family in KEYED_FIGURES:
        if key == "*" or KEYED_FIGURES[family] == "camera":
            return None
        have = sorted(k.partition(".")[2] for k in reported if k.startswith(family + "."))
        return (f"metric {metric!r}: no signal {key!r} reports {family} in this run (signals that do: "
                f"{', '.join(have) or 'none'}; {family}.* covers every one)")
    return f"unknown metric {metric!r}; known: {', '.join(known_metrics())}"


def operator_rules(started: Iterable[AlertRule], requested: Iterable[AlertRule | Mapping],
                   reported: Iterable[str] | None = None) -> list[AlertRule]:
    """The rules an operator's change leaves in force: those the run `started` with, each replaced by a `requested`
    rule of its name, then the other requested rules. Raises `AlertConfigError` (nothing applied) for a rule that
    does not validate, names an unknown metric (`reported`: the figures now; None: not checked), or changes a
    built-in rule's metric or operator, or loosens a safety alert past its `SAFETY_LIMITS`.

    Why the started rules stay rather than a change replacing them all: an operations centre's safety alerts must
    not vanish because one request listed a few rules (an empty list removed every one, and the change, lasting,
    was applied again at every restart). Listing only one's own rules also keeps the built-ins' own values (and
    their improvements in a later version) out of the corridor's stored changes."""
    base = {r.name: r for r in started}
    # a rule named like one the run started with adjusts it: the fields left out are that rule's
    wanted = parse_rules([{**base[r["name"]].model_dump(), **r} if isinstance(r, Mapping) and r.get("name") in base
                          else r for r in requested])
    if reported is not None:
        for i, r in enumerate(wanted):
            why = metric_problem(r.metric, reported)
            if why:
                raise AlertConfigError(f"rules[{i}] ({r.name}): {why}")
    by_name = {r.name: r for r in wanted}
    for i, r in enumerate(wanted):
        was = base.get(r.name)
        if was is None or r.name not in BUILTIN_NAMES:
            continue
        if (r.metric, r.op) != (was.metric, was.op):
            raise AlertConfigError(
                f"rules[{i}] ({r.name}): a built-in rule keeps its metric and operator ({was.metric} {was.op}); "
                f"send it with those to adjust it, or give your rule another name")
        limits = SAFETY_LIMITS.get(r.name)
        if limits is not None:
            # what the run started with may be looser already (its --config): never refused for keeping that (the
            # rule the shield and the clearances follow too: `loosening.live_bound`)
            bound = SafetyLimits(live_bound(limits.max_threshold, was.threshold, HIGHER),
                                 live_bound(limits.max_for_s, was.for_s, HIGHER),
                                 min(limits.min_level, was.level, key=_LEVELS.index),
                                 limits.may_wait_for_acknowledgement or was.until_acknowledged)
            why = bound.problem(r)
            if why:
                raise AlertConfigError(f"rules[{i}] ({r.name}) is a built-in safety alert: {why}; it can be "
                                       "tightened, not removed or loosened through the API")
    return [by_name.pop(name, rule) for name, rule in base.items()] + list(by_name.values())


def describe_rules_change(payload: Mapping) -> str:
    """An operator's rules change in one line (the restart banner): `{}` read as if every rule had gone."""
    rules = [r for r in payload.get("rules") or () if isinstance(r, Mapping)]
    if not rules:
        return "no operator rules (the run's own and built-in rules are in force)"
    shown = []
    for r in rules[:4]:
        if r.get("name") in BUILTIN_NAMES:  # only what was changed is sent
            changed = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("name", "description"))
            shown.append(f"{r.get('name')} (adjusted: {changed or 'as built in'})")
            continue
        held = f" for {r.get('for_s')} s" if r.get("for_s") else ""
        shown.append(f"{r.get('name')} (added: {r.get('metric')} {r.get('op', '>')} {r.get('threshold')}{held})")
    more = f", and {len(rules) - 4} more" if len(rules) > 4 else ""
    return f"operator rules {', '.join(shown)}{more}; the built-in rules stay"


# -- configuration -------------------------------------------------------------------------------------------


class AlertConfigError(ChangeRefused):
    """Alert rules that cannot be applied: the reason, in one line. Nothing of them was applied.

    A `ChangeRefused` (a ValueError), so a rules change the loop applies is refused like any other change."""


class AlertConfig(BaseModel):
    """The `alerts:` section of a run configuration."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule] = Field(default_factory=list, description=(
        "the run's own rules (fields below); a rule named like a built-in one adjusts it, and may give only the "
        "fields it changes (`{name: stale_data, for_s: 2}`), as `PUT /api/v1/live/config/alerts` takes it"))
    builtin: bool = Field(True, description="also apply the built-in rules (`BUILTIN_RULES` in "
                                            "runtime/live/alerts.py; a rule of the same name replaces one)")
    webhook_url: str | None = Field(None, description=(
        "POST every raised and cleared alert here as JSON: the alert's fields (`id`, `rule`, `level`, `metric`, "
        "`value`, `threshold`, `message`, `subjects`, `raised_at_s`, `wall_time`, `cleared_at_s`, "
        "`cleared_wall_time`, `cleared_reason`, ...), `state` (`active` or `cleared`), and the run's "
        "`simulation_id` (its run directory's name) and `scenario`; not retried"))
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="seconds one webhook POST may take")

    @field_validator("rules", mode="before")
    @classmethod
    def _builtins_adjusted(cls, rules):  # noqa: ANN001, ANN206
        """A rule named like a built-in one takes that rule's fields for those it leaves out, as an operator's
        change through the API does: `{name: stale_data, for_s: 2}` is the built-in with a 2 s hold."""
        if not isinstance(rules, list):
            return rules
        builtins = {r.name: r for r in BUILTIN_RULES}
        return [{**builtins[r["name"]].model_dump(), **r}
                if isinstance(r, Mapping) and isinstance(r.get("name"), str) and r["name"] in builtins else r
                for r in rules]

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[AlertRule]) -> list[AlertRule]:
        _check_unique(rules)
        return rules

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url {url!r} must start with http:// or https://")
        return url

    def all_rules(self) -> list[AlertRule]:
        return with_builtins(self.rules) if self.builtin else list(self.rules)


def _check_unique(rules: Iterable[AlertRule]) -> None:
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise ValueError(f"rule name {r.name!r} appears more than once")
        seen.add(r.name)


def load_alert_config(source: Mapping | list | str | Path | None) -> AlertConfig:
    """Validate an alerts configuration: a run configuration holding `alerts:`, the `alerts:` section itself,
    a bare list of rules, or a YAML file of any of these. Raises `AlertConfigError` naming the first problem."""
    data = source
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))):
        import yaml

        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise AlertConfigError(f"{path}: {str(exc).strip().splitlines()[0]}") from None
    elif isinstance(source, str):
        import yaml

        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise AlertConfigError(f"alerts: not YAML: {str(exc).strip().splitlines()[0]}") from None
    if data is None:
        return AlertConfig()
    if isinstance(data, Mapping) and "alerts" in data:
        data = data["alerts"] or {}
    if isinstance(data, list):
        data = {"rules": data}
    try:
        return AlertConfig.model_validate(data)
    except ValidationError as exc:
        raise AlertConfigError(f"alerts: {_first_problem(exc)}") from None


def parse_rules(rules: Iterable[AlertRule | Mapping]) -> list[AlertRule]:
    """Validated rules (all or nothing); raises `AlertConfigError` naming the rule and the field."""
    out: list[AlertRule] = []
    for i, r in enumerate(rules):
        try:
            out.append(r if isinstance(r, AlertRule) else AlertRule.model_validate(r))
        except ValidationError as exc:
            name = r.get("name") if isinstance(r, Mapping) else None
            raise AlertConfigError(f"rules[{i}]{f' ({name})' if name else ''}: {_first_problem(exc)}") from None
    try:
        _check_unique(out)
    except ValueError as exc:
        raise AlertConfigError(str(exc)) from None
    return out


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


# -- alerts ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertEvent:
    """One alert: raised once, cleared once, acknowledged by someone.

    `raised_at_s` / `cleared_at_s`: the run's simulated seconds (as `sim_time_s` of its changes; a recovery from a
    simulator crash rewinds them), or the caller's clock where there is no run (a server's cameras alone: its
    monotonic seconds). `wall_time` / `cleared_wall_time`: when, on the wall clock."""

    id: str
    rule: str
    level: str
    metric: str
    value: float
    threshold: float
    raised_at_s: float
    cleared_at_s: float | None
    wall_time: str  # when it was raised, ISO 8601 with the local offset
    message: str
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None  # ISO 8601
    cleared_wall_time: str | None = None  # ISO 8601
    cleared_value: float | None = None
    #: why it cleared: the figure back across the clear threshold, an acknowledgement, its rule removed or changed
    cleared_reason: str | None = None
    #: what the figure counts, when the loop says (`stale_sources`: the signals whose data are stale), at the raise
    subjects: tuple[str, ...] = ()
    #: what it says now: `value`, `subjects` and `message` stay the raise's record, these follow the subjects while
    #: the alert is up (a second signal stale, the first one back), each change sent as an `update`; from the raise
    #: they equal the raise's, and `now_since_s` (run seconds, as `raised_at_s`) is when they last changed
    now_value: float | None = None
    now_subjects: tuple[str, ...] = ()
    now_message: str | None = None
    now_since_s: float | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at_s is None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _wall_now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


class AlreadyAcknowledged(ValueError):
    """An alert someone has acknowledged already: the first acknowledgement stays the record."""


@dataclass
class _Track:
    """A rule's state for one key: since when its condition holds, and its alert while active."""

    pending_since_s: float | None = None
    alert: AlertEvent | None = None
    #: the figure at its last evaluation, and (an until_acknowledged rule) what was acknowledged: no new alert
    #: until the figure passes it
    last_value: float | None = None
    acknowledged_value: float | None = None


class _Rate:
    """The increase of a cumulative counter over the last `RATE_WINDOW_S` of the stamping clock (simulated seconds
    in a live run)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, now_s: float, value: float) -> float:
        s = self.samples
        while s and s[-1][0] > now_s:  # the clock went back (a recovery rewinds simulated time)
            s.pop()
        if s and value < s[-1][1]:  # the counter restarted
            s.clear()
        s.append((now_s, value))
        # baseline: the newest sample at least a window old, else the oldest we have
        while len(s) > 1 and s[1][0] <= now_s - RATE_WINDOW_S:
            s.popleft()
        return value - s[0][1]


Callback = Callable[[AlertEvent], object]


#: how the clear of an alert its run left open begins: at the run's end (`AlertEngine.end_run`, the runtime's
#: reason) and, for a run that died, at the corridor's next start (`live.previous`); the API's `cleared_because`
#: reads `run_ended` from them
RUN_ENDED_REASON = "the run ended"
RUN_DIED_REASON = "its run died"


class AlertEngine:
    """Evaluates rules each time the loop calls `evaluate`; thread-safe for readers (`active`, `history`,
    `acknowledge`) in API threads. Callbacks run on the caller's thread and must not block (a
    `WebhookNotifier.notify` does not); an exception in one is logged, never raised into the loop."""

    def __init__(self, rules: Iterable[AlertRule | Mapping] = (), on_raise: Callback | None = None,
                 on_clear: Callback | None = None, *, on_acknowledge: Callback | None = None,
                 on_update: Callback | None = None, history_size: int = 1000):
        self._rules: dict[str, AlertRule] = {r.name: r for r in parse_rules(rules)}
        self.on_raise, self.on_clear, self.on_acknowledge = on_raise, on_clear, on_acknowledge
        #: an active alert whose subjects changed (`AlertEvent.now_subjects`)
        self.on_update = on_update
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._rates: dict[str, _Rate] = {}
        self._history: OrderedDict[str, AlertEvent] = OrderedDict()
        self._history_size = history_size
        self._lock = threading.RLock()
        self._now_s = 0.0
        self._run_s = 0.0  # the clock alerts are stamped with (`evaluate`'s run_time_s)
        #: the rules it started with (built-in and configured): an operator's change adjusts them, never drops them
        self._started: dict[str, AlertRule] = dict(self._rules)
        self._operator_names: set[str] = set()
        self._subjects: Mapping[str, Mapping[str, str]] = {}

    @property
    def rules(self) -> list[AlertRule]:
        with self._lock:
            return list(self._rules.values())

    # -- the loop's side --------------------------------------------------------------------------------------
    def evaluate(self, now_s: float, metrics: Mapping[str, float], *, run_time_s: float | None = None,
                 subjects: Mapping[str, Mapping[str, str]] | None = None) -> list[AlertEvent]:
        """Advance every rule to `now_s` with these figures; returns the alerts raised, updated and cleared by this
        call.

        `now_s` is the clock conditions are held on (`for_s`); `run_time_s` the one alerts are stamped with (a
        live run's simulated seconds; default `now_s`). `subjects`: for a figure that counts things, what it
        counts now and why (`{"stale_sources": {"J3": "detectors stale: 14 s old"}}`), named in its alert; an
        active alert whose subjects are no longer the ones it names is updated (`_updated`).
        A figure that is missing (or NaN) says nothing: a pending condition starts over, an active alert stays.
        """
        out: list[tuple[str, AlertEvent]] = []
        with self._lock:
            self._now_s = now_s
            self._run_s = now_s if run_time_s is None else run_time_s
            self._subjects = subjects or {}
            # per simulated minute: a rate of what the run did, not of how fast the wall clock paces it
            derived = self._derived(self._run_s, metrics)
            seen: set[tuple[str, str]] = set()
            for rule in self._rules.values():
                for key, value in self._values(rule, metrics, derived):
                    seen.add((rule.name, key))
                    event = self._step(rule, key, value, now_s)
                    if event is not None:
                        out.append(event)
            for tk, track in self._tracks.items():
                if tk not in seen:
                    track.pending_since_s = None
            self._tracks = {k: t for k, t in self._tracks.items()
                            if t.alert is not None or t.pending_since_s is not None or t.acknowledged_value is not None}
        self._notify(out)
        return [e for _, e in out]

    def _derived(self, now_s: float, metrics: Mapping[str, float]) -> dict[str, float]:
        """`X_per_min` for the rules that ask for it and the counters `X` the loop reports."""
        out = {}
        for rule in self._rules.values():
            m = rule.metric
            if rule.wildcard or not m.endswith(RATE_SUFFIX) or m in metrics or m in out:
                continue
            base = m[: -len(RATE_SUFFIX)]
            value = _number(metrics.get(base))
            if value is not None:
                out[m] = self._rates.setdefault(base, _Rate()).add(now_s, value)
        return out

    @staticmethod
    def _values(rule: AlertRule, metrics: Mapping[str, float], derived: Mapping[str, float]):
        if rule.wildcard:
            for key, raw in metrics.items():
                if rule.matches(key):
                    value = _number(raw)
                    if value is not None:
                        yield key, value
            return
        value = _number(metrics.get(rule.metric, derived.get(rule.metric)))
        if value is not None:
            yield rule.metric, value

    def _step(self, rule: AlertRule, key: str, value: float, now_s: float) -> tuple[str, AlertEvent] | None:
        track = self._tracks.setdefault((rule.name, key), _Track())
        track.last_value = value
        if track.alert is not None and rule.until_acknowledged:
            # cleared by its acknowledgement, not by the figure; a figure that moved on before it (a second shield
            # change) is told as an update, or acknowledging the first would clear the second unseen
            return self._updated(rule, key, value, track, moved=value != track.alert.now_value)
        if rule.until_acknowledged and track.acknowledged_value is not None and value <= track.acknowledged_value:
            return None  # what was acknowledged: nothing new
        if track.alert is not None:
            if rule.cleared(value):
                cleared = dataclasses.replace(
                    track.alert, cleared_at_s=self._run_s, cleared_wall_time=_wall_now(), cleared_value=value,
                    cleared_reason=f"{key} = {value:g}, no longer {rule.op} {rule.clear_at:g}")
                track.alert = None
                track.pending_since_s = None
                self._remember(cleared)
                return "clear", cleared
            return self._updated(rule, key, value, track)
        if not rule.holds(value):
            track.pending_since_s = None
            return None
        if track.pending_since_s is None:
            track.pending_since_s = now_s
        if now_s - track.pending_since_s + 1e-9 < rule.for_s:
            return None
        subjects = dict(self._subjects.get(key) or {})
        message, names = _message(rule, key, value, subjects), _names(subjects)
        alert = AlertEvent(
            id=uuid.uuid4().hex[:16], rule=rule.name, level=rule.level, metric=key, value=value,
            threshold=rule.threshold, raised_at_s=self._run_s, cleared_at_s=None, wall_time=_wall_now(),
            message=message, subjects=names, now_value=value, now_subjects=names, now_message=message,
            now_since_s=self._run_s)
        track.alert = alert
        self._remember(alert)
        return "raise", alert

    def _updated(self, rule: AlertRule, key: str, value: float, track: _Track,
                 moved: bool = False) -> tuple[str, AlertEvent] | None:
        """An active alert whose figure now counts other subjects (a second signal stale, the first back): its
        `now_*` say so, once per change. Only a change of the names counts: a reason's wording (`14 s old`,
        `15 s old`) or a figure that moves with the same subjects (`store_unavailable_s`) would send one every
        evaluation, unless the caller says the figure's move is news (`moved`: an until-acknowledged count that
        grew). A figure whose subjects the loop did not give this time says nothing."""
        if key not in self._subjects:
            return None
        subjects = dict(self._subjects[key] or {})
        names = _names(subjects)
        if names == track.alert.now_subjects and not moved:
            return None
        updated = dataclasses.replace(track.alert, now_value=value, now_subjects=names,
                                      now_message=_message(rule, key, value, subjects), now_since_s=self._run_s)
        track.alert = updated
        self._remember(updated)
        return "update", updated

    def _remember(self, alert: AlertEvent) -> None:
        self._history[alert.id] = alert
        self._history.move_to_end(alert.id)
        while len(self._history) > self._history_size:
            oldest = next(iter(self._history))
            if self._history[oldest].active:
                # an active alert stays reachable (acknowledge) until it clears; drop the oldest cleared one
                cleared = next((k for k, a in self._history.items() if not a.active), None)
                if cleared is None:
                    break
                oldest = cleared
            del self._history[oldest]

    def _notify(self, events: list[tuple[str, AlertEvent]]) -> None:
        callbacks = {"raise": self.on_raise, "clear": self.on_clear, "update": self.on_update}
        for kind, event in events:
            callback = callbacks.get(kind, self.on_acknowledge)
            if callback is None:
                continue
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a broken notifier must not stop the loop
                log.exception("alert callback failed for %s", event.rule)

    def end_run(self, reason: str, *, at_s: float | None = None) -> list[AlertEvent]:
        """The run ends: every active alert is cleared with `reason` (nothing watches its figure any more, and a
        receiver of the webhook would keep it open for ever), each told to `on_clear`; returns them. An
        until-acknowledged one stays open: it waits for a person, not for its figure."""
        out: list[tuple[str, AlertEvent]] = []
        with self._lock:
            when = self._run_s if at_s is None else at_s
            for (name, _metric), track in self._tracks.items():
                rule = self._rules.get(name)
                if track.alert is None or (rule is not None and rule.until_acknowledged):
                    continue  # one waiting for a person (a run that died, a shield change) stays until seen
                cleared = dataclasses.replace(track.alert, cleared_at_s=when, cleared_wall_time=_wall_now(),
                                              cleared_reason=reason)
                track.alert = None
                track.pending_since_s = None
                self._remember(cleared)
                out.append(("clear", cleared))
        self._notify(out)
        return [e for _, e in out]

    # -- readers and operators ------------------------------------------------------------------------------
    def active(self) -> list[AlertEvent]:
        """Alerts raised and not cleared, oldest first."""
        with self._lock:
            return sorted((t.alert for t in self._tracks.values() if t.alert is not None),
                          key=lambda a: (a.raised_at_s, a.rule, a.metric))

    def history(self, limit: int = 100) -> list[AlertEvent]:
        """The most recent alerts, active or cleared, newest first (each alert once, in its latest state): in the
        order they were raised or cleared, not by their `_s` times, which a recovery from a crash rewinds."""
        with self._lock:
            items = list(self._history.values())
        return items[::-1][: max(0, limit)]

    def get(self, alert_id: str) -> AlertEvent:
        with self._lock:
            return self._history[alert_id]

    def acknowledge(self, alert_id: str, who: str, *, at_s: float | None = None) -> AlertEvent:
        """Record that `who` has seen the alert (active or cleared); KeyError when there is no such alert,
        `AlreadyAcknowledged` when someone has (the first acknowledgement is the record, never replaced). An
        `until_acknowledged` rule's alert clears with it, at `at_s` (default: the last evaluation's run time)."""
        if not who:
            raise ValueError("acknowledge: who must not be empty")
        events: list[tuple[str, AlertEvent]] = []
        with self._lock:
            alert = self._history.get(alert_id)
            if alert is None:
                raise KeyError(alert_id)
            if alert.acknowledged_by is not None:
                raise AlreadyAcknowledged(f"alert {alert_id} was acknowledged by {alert.acknowledged_by!r} at "
                                          f"{alert.acknowledged_at}")
            acked = dataclasses.replace(alert, acknowledged_by=who, acknowledged_at=_wall_now())
            self._history[alert_id] = acked
            events.append(("ack", acked))
            for (name, _metric), track in self._tracks.items():
                if track.alert is None or track.alert.id != alert_id:
                    continue
                track.alert = acked
                rule = self._rules.get(name)
                if rule is not None and rule.until_acknowledged:
                    value = track.last_value if track.last_value is not None else acked.value
                    cleared = dataclasses.replace(
                        acked, cleared_at_s=self._run_s if at_s is None else at_s, cleared_wall_time=_wall_now(),
                        cleared_value=value, cleared_reason=f"acknowledged by {who}")
                    track.alert, track.pending_since_s, track.acknowledged_value = None, None, value
                    self._remember(cleared)
                    events.append(("clear", cleared))
                    acked = cleared
        self._notify(events)
        return acked

    def replace_rules(self, rules: Iterable[AlertRule | Mapping], *, at_s: float | None = None,
                      why: str = "") -> list[AlertEvent]:
        """New rules, without a restart: all of them (an operator's change goes through `apply_operator_rules`).
        Validated whole first (`AlertConfigError`, nothing applied). A rule whose name remains keeps its pending
        conditions and active alerts (those its metric still covers); the alerts of removed rules are cleared at
        `at_s` (default: the last evaluation's run time), saying so and `why`. Returns the alerts cleared."""
        new = {r.name: r for r in parse_rules(rules)}
        out: list[tuple[str, AlertEvent]] = []
        with self._lock:
            now_s = self._run_s if at_s is None else at_s
            for key in list(self._tracks):
                name, metric = key
                rule = new.get(name)
                if rule is not None and rule.matches(metric):
                    continue
                track = self._tracks.pop(key)
                if track.alert is not None:
                    what = "its rule was removed" if rule is None else f"its rule now reads {rule.metric}"
                    mark = " (rule removed)" if rule is None else " (rule changed)"
                    cleared = dataclasses.replace(
                        track.alert, cleared_at_s=now_s, cleared_wall_time=_wall_now(),
                        cleared_value=track.last_value, cleared_reason=f"{what}{f' ({why})' if why else ''}",
                        message=track.alert.message + mark,
                        now_message=(track.alert.now_message or track.alert.message) + mark)
                    self._remember(cleared)
                    out.append(("clear", cleared))
            self._rules = new
        self._notify(out)
        return [e for _, e in out]

    def operator_rules(self, rules: Iterable[AlertRule | Mapping],
                       reported: Iterable[str] | None = None) -> list[AlertRule]:
        """The rules an operator's change would leave in force (`operator_rules`), or `AlertConfigError`."""
        with self._lock:
            started = list(self._started.values())
        return operator_rules(started, rules, reported)

    def apply_operator_rules(self, rules: Iterable[AlertRule | Mapping], reported: Iterable[str] | None = None, *,
                             at_s: float | None = None, why: str = "") -> list[AlertEvent]:
        """An operator's rules in place of the previous operator's: the run's own rules stay (`operator_rules`).
        Returns the alerts cleared (an operator rule dropped)."""
        requested = list(rules)
        in_force = self.operator_rules(requested, reported)
        cleared = self.replace_rules(in_force, at_s=at_s, why=why)
        with self._lock:
            self._operator_names = {r["name"] if isinstance(r, Mapping) else r.name for r in requested}
        return cleared

    def rules_in_force(self) -> list[dict]:
        """Each rule with where it comes from (`origin`: built-in, configuration, operator), whether an operator's
        change can drop it (`removable`), and for a safety alert how far it may be adjusted (`limits`)."""
        with self._lock:
            rules, operator, started = list(self._rules.values()), set(self._operator_names), set(self._started)
        out = []
        for r in rules:
            origin = ("operator" if r.name not in started else "built-in" if r.name in BUILTIN_NAMES
                      else "configuration")
            limits = SAFETY_LIMITS.get(r.name) if r.name in started else None
            out.append({**r.model_dump(mode="json"), "origin": origin, "adjusted": r.name in operator and r.name in
                        started, "removable": r.name not in started,
                        "limits": dataclasses.asdict(limits) if limits is not None else None})
        return out


def _number(raw) -> float | None:  # noqa: ANN001
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _names(subjects: Mapping[str, str]) -> tuple[str, ...]:
    """What an alert's `subjects` hold: the names, sorted, at most `MAX_SUBJECTS`."""
    return tuple(sorted(subjects))[:MAX_SUBJECTS]


def _message(rule: AlertRule, key: str, value: float, subjects: Mapping[str, str] | None = None) -> str:
    held = f" for {rule.for_s:g} s" if rule.for_s else ""
    text = f"{rule.name}: {key} = {value:g} {rule.op} {rule.threshold:g}{held}"
    if subjects:
        names = sorted(subjects)
        more = f" and {len(names) - SHOWN_SUBJECTS} more" if len(names) > SHOWN_SUBJECTS else ""
        groups: dict[str, list[str]] = {}  # one reason said once for the subjects that share it
        for n in names[:SHOWN_SUBJECTS]:
            groups.setdefault(subjects[n], []).append(n)
        shown = [", ".join(ns) + (f" ({why})" if why else "") for why, ns in groups.items()]
        text += f" at {'; '.join(shown)}{more}"
    return f"{text}: {rule.description}" if rule.description else text


# -- webhook -------------------------------------------------------------------------------------------------


class WebhookNotifier:
    """POSTs each alert as JSON to `url` from a background thread.

    Each payload is the alert (`AlertEvent.as_dict`) with `state` (`active` or `cleared`) and `event`: `raised`,
    `updated` (an active alert's subjects changed: `now_subjects` / `now_message` say what it counts now, e.g. a
    second signal stale while the first still is) or `cleared` (`cleared_reason` says why, the run's end
    included).

    `notify` never blocks: alerts wait in a bounded queue; when it is full the alert is dropped and counted
    (`dropped`). A failed POST is logged and counted (`failed`), not retried: the store keeps the record, the
    webhook is a nudge. Uses urllib (stdlib) so the core install needs nothing more.
    """

    def __init__(self, url: str, timeout_s: float = 5.0, max_queue: int = 100):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r} must start with http:// or https://")
        self.url = url
        self.timeout_s = timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.sent = self.failed = self.dropped = 0
        self.last_error: str | None = None
        #: what every payload says of its run (`set_origin`): a receiver serving several runs tells them apart
        self.origin: dict[str, str] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="signalwise-alert-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: AlertEvent | Mapping) -> bool:
        return self.notify(alert)

    def set_origin(self, **origin: str) -> None:
        """Fields every payload carries from now on (a live run: `simulation_id`, `scenario`)."""
        self.origin = dict(origin)

    def update(self, alert: AlertEvent | Mapping) -> bool:
        """`notify` for an active alert whose subjects changed (`AlertEngine.on_update`): `event: updated`."""
        return self.notify(alert, event="updated")

    def notify(self, alert: AlertEvent | Mapping, *, event: str | None = None,
               origin: Mapping[str, str] | None = None) -> bool:
        """Queue the alert for posting; False when it was dropped (queue full or notifier closed). `event`: what
        happened (default `raised` for an active alert, `cleared` for a cleared one); `origin`: the run it is of,
        when not this notifier's (an alert a killed run left open, cleared at the next start)."""
        if self._closed:
            self.dropped += 1
            return False
        body = alert.as_dict() if isinstance(alert, AlertEvent) else dict(alert)
        body["state"] = "active" if body.get("cleared_at_s") is None else "cleared"
        body["event"] = event or ("raised" if body["state"] == "active" else "cleared")
        body.update(self.origin if origin is None else origin)
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                data = json.dumps(body, default=str).encode()
                req = urllib.request.Request(self.url, data=data, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "User-Agent": "signalwise-alerts"})
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) checked
                    resp.read()
                self.sent += 1
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failed += 1
                self.last_error = str(exc)
                log.warning("alert webhook %s failed: %s", self.url, exc)
            finally:
                self._queue.task_done()

    def stats(self) -> dict:
        return {"queued": self._queue.qsize(), "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
                "last_error": self.last_error}

    def close(self, timeout_s: float = 5.0) -> None:
        """Post what is queued (up to `timeout_s`), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
                break
            except queue.Full:
                return  # the thread is stuck on a slow endpoint; it is a daemon and ends with the process
        self._thread.join(max(0.0, deadline - time.monotonic()))


def engine_from_config(config: AlertConfig) -> tuple[AlertEngine, WebhookNotifier | None]:
    """The engine a run configuration's `alerts:` asks for, with its webhook (or None) wired to raise, update (a
    signal joining or leaving an active alert's subjects) and clear."""
    notifier = WebhookNotifier(config.webhook_url, config.webhook_timeout_s) if config.webhook_url else None
    engine = AlertEngine(config.all_rules(), on_raise=notifier, on_clear=notifier,
                         on_update=notifier.update if notifier is not None else None)
    return engine, notifier


# -- the process's own figures ------------------------------------------------------------------------------


class _ProcessMeter:
    """CPU % since the previous reading (100 = one core) and resident memory, from the stdlib alone
    (psutil is not a dependency): `os.times` for CPU, /proc/self/statm for the current RSS on Linux, else
    `getrusage`'s peak RSS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = self._sample()
        self._pct = 0.0

    @staticmethod
    def _sample() -> tuple[float, float]:
        t = os.times()
        return time.monotonic(), t.user + t.system

    def cpu_pct(self) -> float:
        with self._lock:
            now = self._sample()
            wall, cpu = now[0] - self._last[0], now[1] - self._last[1]
            if wall < 0.05:  # too short to say anything; keep the previous baseline
                return self._pct
            self._last = now
            self._pct = round(100.0 * cpu / wall, 2)
            return self._pct

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as fh:
                pages = int(fh.read().split()[1])
            return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 2)
        except (OSError, ValueError, IndexError):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
            return round(peak / (2**20 if os.uname().sysname == "Darwin" else 2**10), 2)


_meter = _ProcessMeter()


def process_figures() -> dict[str, float]:
    """`process_cpu_pct` (since the previous call; 100 = one whole core) and `process_rss_mb`."""
    return {"process_cpu_pct": _meter.cpu_pct(), "process_rss_mb": _meter.rss_mb()}
