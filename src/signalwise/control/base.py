"""The one interface every controller implements: Observation in, Decision out.

A controller is made per intersection by a factory registered under a name
(`fixed`, `webster`, ...). It says how often it wants to be asked
(`period_s`) and how much of the lane data it needs (`observation`), so the
runtime reads no more from SUMO than it must.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..core.types import Decision, Intersection, Observation


class Controller(Protocol):
    name: str
    period_s: float  # ask every this many seconds of green (>= one step)
    observation: str  # "full" | "counts" | "stopped" | "none": lane data needed (`ObservationNeed.lane_detail`)
    wants_detectors: bool  # needs detector idle times

    def decide(self, obs: Observation) -> Decision: ...


@dataclass(frozen=True)
class ControlContext:
    """What a controller factory may know besides the intersection itself."""

    step_length_s: float = 1.0
    #: expected demand per incoming lane, veh/h, before anything is measured
    nominal_lane_flow_vph: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    options: dict = field(default_factory=dict)
    #: length of each movement's incoming and outgoing lane, and of the lanes of their zones (for measures
    #: per metre of lane)
    lane_length_m: dict[str, float] = field(default_factory=dict)
    #: per incoming lane, the lanes feeding it and per outgoing lane the lanes it feeds, each with its
    #: distance from the junction, nearest first, not across another signal's stop line (`sim.lane_zones`):
    #: where a queue stands when the lane at the stop line is shorter than it
    lane_upstream: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    lane_downstream: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    #: per incoming lane, the lanes feeding it as `lane_upstream` lists them and on through lanes that feed
    #: several lanes, each with its distance and the share of its vehicles counted here
    #: (`sim.lane_zones.split_zones`): where a turn pocket's queue stands
    lane_upstream_split: dict[str, tuple[tuple[str, float, float], ...]] = field(default_factory=dict)


Factory = Callable[[Intersection, ControlContext], Controller]
_REGISTRY: dict[str, Factory] = {}
#: registered names a user never chooses (a label the training session gives its own runs), left out of the
#: choices an unknown name is answered with
_INTERNAL: set[str] = set()


class UnknownController(ValueError):
    pass


class ControllerUnavailable(ValueError):
    """A controller that cannot run here (a missing or mismatched model): the reason, in one line.

    Raised before a run starts; a controller that fails during a run is the
    shield's to handle (it falls back), not this.
    """


def check_usable(controller, where: str) -> None:
    """Refuse a controller that was built only to say it cannot run (it carries `unavailable_reason`)."""
    reason = getattr(controller, "unavailable_reason", None)
    if reason:
        raise ControllerUnavailable(f"{where}: {reason}")


def register(name: str, *, internal: bool = False) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        if internal:
            _INTERNAL.add(name)
        return factory

    return deco


def available() -> list[str]:
    """The controllers a user may choose."""
    _load_builtin()
    return sorted(set(_REGISTRY) - _INTERNAL)


def is_known(kind: str) -> bool:
    """Whether a controller of this kind is registered (the learning ones are loaded only to look them up)."""
    _load_builtin(learning=False)
    if kind not in _REGISTRY:
        _load_builtin()
    return kind in _REGISTRY


#: every key a controller reads from `ControlContext.options` (a run configuration's `controller_options`), so a
#: misspelt one is refused rather than silently ignored: actuated's, max-pressure's (and the phase-score agent's
#: period), a learned model's path and the registry's resolved models
CONTROLLER_OPTIONS = frozenset({
    "passage_s",
    "period_s", "min_hold_s", "measure", "lost_time_s", "ties", "serving", "zone_m", "shared_lanes",
    "model", "registry_models", "model_registry",
})


def options_error(options) -> str | None:
    """Why `options` cannot be a controller's (keys no controller reads, named); None when they can."""
    unknown = sorted(set(options) - CONTROLLER_OPTIONS)
    if not unknown:
        return None
    return f"unknown controller option(s) {', '.join(unknown)}; known: {', '.join(sorted(CONTROLLER_OPTIONS))}"


def make(name: str, inter: Intersection, ctx: ControlContext) -> Controller:
    """Build controller `name` for one intersection; `kind:ARG` passes ARG as options['arg']."""
    kind, _, arg = name.partition(":")
    if not is_known(kind):
        raise UnknownController(f"unknown controller {name!r}; choose from {', '.join(available())}")
    if arg:
        ctx = dataclasses.replace(ctx, options={**ctx.options, "arg": arg})
    return _REGISTRY[kind](inter, ctx)


def _load_builtin(learning: bool = True) -> None:
    """Register the built-in controllers; the learning ones (numpy and their tables) only when asked."""
    from . import actuated, fixed, max_pressure, webster  # noqa: F401  (they register themselves)

    if not learning:
        return
    try:
        from . import learning  # noqa: F401
    except ImportError:
        pass
