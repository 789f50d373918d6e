"""The one interface every controller implements: Observation in, Decision out.

A controller is made per intersection by a factory registered under a name
(`fixed`, `webster`, ...), installed as a plugin, or named by its module
(`py:MODULE:FACTORY`: `plugins.py`). It says how often it wants to be asked
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
    #: the simulated second the run began (a .sumocfg's begin, 25200 for 07:00): counting periods, the
    #: detectors' and Webster's planning period, run from here, not from 0
    begin_s: float = 0.0


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
    """The controllers a user may choose by name: the built-in ones and the installed plugins."""
    _load_builtin()
    return sorted(set(_REGISTRY) - _INTERNAL | set(_plugins()[0]))


#: the learned controller's kind: the help texts name it apart, with the models it runs (`ql`, `ql:PATH`, `ql:@REF`)
LEARNED_KIND = "ql"


def builtin_choices() -> list[str]:
    """The built-in controllers that run without a model, by name, from the registry: what the help texts list
    (`--controller`, `--controllers`, `--baseline`) beside the learned one and the user's. Loads no learning module
    and reads no plugin's metadata (each command's start would pay for them); a few milliseconds."""
    _load_builtin(learning=False)
    return sorted(set(_REGISTRY) - _INTERNAL - {LEARNED_KIND})


def is_known(kind: str) -> bool:
    """Whether a controller of this kind is registered or installed as a plugin (the learning ones are loaded
    only to look them up, the plugins' metadata only for a name no built-in has)."""
    _load_builtin(learning=False)
    if kind not in _REGISTRY:
        _load_builtin()
    return kind in _REGISTRY or kind in _plugins()[0]


def spec_error(spec: str) -> str | None:
    """Why `spec` names no controller a user may choose, or None; imports nothing of a user's (a run
    configuration is checked with it, over the API too): a `py:` spec is only read."""
    from .plugins import is_module_spec, parse_module_spec

    try:
        if is_module_spec(spec):
            parse_module_spec(spec)
        elif not is_known(spec.partition(":")[0]):
            raise UnknownController(_unknown_text(spec))
    except UnknownController as exc:
        return str(exc)
    return None


def _unknown_text(spec: str) -> str:
    import difflib

    refused = _plugins()[1]
    not_loaded = f"; plugins not loaded: {'; '.join(f'{n}: {why}' for n, why in refused.items())}" if refused else ""
    near = difflib.get_close_matches(spec.partition(":")[0], available(), n=1)
    meant = f" (did you mean {near[0]}?)" if near else ""
    return (f"unknown controller {spec!r}{meant}; choose from {', '.join(available())}, py:MODULE:FACTORY or "
            f"py:FILE.py:FACTORY{not_loaded}")


def _plugins() -> tuple[dict, dict[str, str]]:
    """The installed plugins ({name: entry point}) and those refused ({name: why}): `plugins.plugins`."""
    from .plugins import plugins

    _load_builtin()
    return plugins(frozenset(_REGISTRY))


def factory_of(spec: str) -> Factory:
    """The factory `spec` names, loaded: a built-in's, an installed plugin's (imported) or a `py:` module's
    (imported). UnknownController or ControllerUnavailable in one line; used to refuse a spec before a run."""
    from .plugins import is_module_spec, module_factory, plugin_factory

    if is_module_spec(spec):
        return module_factory(spec)
    kind = spec.partition(":")[0]
    if not is_known(kind):
        raise UnknownController(_unknown_text(spec))
    if kind in _REGISTRY:
        return _REGISTRY[kind]
    return plugin_factory(kind, _plugins()[0][kind])


#: every key a controller reads from `ControlContext.options` (a run configuration's `controller_options`), so a
#: misspelt one is refused rather than silently ignored: actuated's, max-pressure's (and the phase-score agent's
#: period), a learned model's path, the registry's resolved models, and a user's controller's own (`user`)
CONTROLLER_OPTIONS = frozenset({
    "passage_s",
    "period_s", "min_hold_s", "measure", "lost_time_s", "ties", "serving", "zone_m", "shared_lanes",
    "permitted_weight",
    "model", "registry_models", "model_registry",
    "user",  # a mapping of a user's own controller's options (docs/controllers.md), passed on unread
})


def options_error(options) -> str | None:
    """Why `options` cannot be a controller's (keys no controller reads, named); None when they can."""
    unknown = sorted(set(options) - CONTROLLER_OPTIONS)
    if not unknown:
        return None
    return f"unknown controller option(s) {', '.join(unknown)}; known: {', '.join(sorted(CONTROLLER_OPTIONS))}"


def make(name: str, inter: Intersection, ctx: ControlContext) -> Controller:
    """Build controller `name` for one intersection; `kind:ARG` passes ARG as options['arg'] (not `py:`, whose
    ARG is its module). A user's controller (a plugin, `py:`) is held to what the loop needs of one here."""
    from .plugins import build, is_module_spec

    factory = factory_of(name)
    kind, _, arg = name.partition(":")
    if arg and not is_module_spec(name):
        ctx = dataclasses.replace(ctx, options={**ctx.options, "arg": arg})
    if is_module_spec(name) or kind not in _REGISTRY:
        return build(name, factory, inter, ctx)
    return factory(inter, ctx)


def _load_builtin(learning: bool = True) -> None:
    """Register the built-in controllers; the learning ones (numpy and their tables) only when asked."""
    from . import actuated, coordinated, fixed, max_pressure, webster  # noqa: F401  (they register themselves)

    if not learning:
        return
    try:
        from . import learning  # noqa: F401
    except ImportError:
        pass
