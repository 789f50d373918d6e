"""Controllers a user brings without forking signalwise: an installed plugin, or a module named on the command line.

- A plugin is a Python entry point in the group `signalwise.controllers`
  (name = factory), chosen by its name like a built-in (`-c NAME`). A plugin
  never replaces a built-in: one named like a built-in (or `py`) is refused,
  and the built-in runs.
- `py:MODULE:FACTORY` imports MODULE (from the current directory or the
  Python path, as `python -m` finds it) and `py:FILE.py:FACTORY` loads a file;
  the prefix keeps them apart from the built-ins' `kind:ARG` (`ql:PATH`).

A factory is `(Intersection, ControlContext) -> Controller`, as a built-in's
is. What it returns is held to what the loop reads of a controller
(`controller_problems`) before the run starts; a controller that raises while
the run goes on is the shield's to handle (it falls back), as any is. The loop
holds it wrapped (`UserController`): it decides on its own copy of the
observation, a `SystemExit` it raises is an error like any other (a `KeyboardInterrupt` stops the run), and a `period_s` it
leaves unusable is an error too, the last usable one kept.

Loading a module runs its code: `py:` is for the person at the command line,
never for a caller over the network (the API refuses it: `network_refusal`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import logging
import math
import numbers
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .base import ControllerUnavailable, Factory, UnknownController

#: the entry point group an installed plugin registers its factories in
ENTRY_POINT_GROUP = "signalwise.controllers"
#: the prefix of a controller loaded from a module or a file: `py:mypkg.ctl:make`, `py:./my_ctl.py:make`
MODULE_PREFIX = "py"
#: the lane data a controller may ask for (`Controller.observation`; `ObservationNeed.lane_detail`, or none)
OBSERVATIONS = ("full", "counts", "stopped", "none")
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

log = logging.getLogger(__name__)


def is_module_spec(spec: str) -> bool:
    return spec.partition(":")[0] == MODULE_PREFIX


def parse_module_spec(spec: str) -> tuple[str, str]:
    """`py:TARGET:FACTORY` -> (TARGET, FACTORY), without importing anything; UnknownController saying why not."""
    target, _, factory = spec.partition(":")[2].rpartition(":")
    usage = "py:MODULE:FACTORY (py:mypkg.ctl:make) or py:FILE.py:FACTORY (py:./my_ctl.py:make)"
    if not target or not factory:
        raise UnknownController(f"controller {spec!r}: name a module or a .py file and its factory: {usage}")
    if not _MODULE_NAME.fullmatch(factory):
        raise UnknownController(f"controller {spec!r}: the factory {factory!r} is not a Python name: {usage}")
    if not target.endswith(".py") and not _MODULE_NAME.fullmatch(target):
        raise UnknownController(f"controller {spec!r}: {target!r} is neither a dotted module name nor a .py "
                                f"file: {usage}")
    return target, factory


#: the factories `module_factory` has loaded, by (where the module is, factory name): a controller is built for
#: every intersection and by each /ml/predict, and a lookup here changes nothing process-wide (`sys.path`)
_factories: dict[tuple[str, str], Factory] = {}
#: held while a module loads: `sys.path` is the process's, and API threads may load at the same time
_loading = threading.Lock()


def module_factory(spec: str) -> Factory:
    """The factory `py:TARGET:FACTORY` names, its module imported once per process; ControllerUnavailable with
    the module's own error in one line when it cannot be (not kept: a fixed module loads on the next try)."""
    target, name = parse_module_spec(spec)
    key = (str(Path(target).resolve()) if target.endswith(".py") else target, name)
    factory = _factories.get(key)
    if factory is None:
        with _loading:
            factory = _factories.get(key)
            if factory is None:
                factory = _factories[key] = _loaded_factory(spec, target, name)
    return factory


def _loaded_factory(spec: str, target: str, name: str) -> Factory:
    try:
        module = _load_file(Path(target).resolve()) if target.endswith(".py") else _import_module(target)
    except FileNotFoundError:
        raise ControllerUnavailable(f"controller {spec!r}: no file {target}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's module: whatever it raised (sys.exit too), in one line
        raise ControllerUnavailable(f"controller {spec!r}: cannot import {target}: {_one_line(exc)}") from None
    factory = getattr(module, name, None)
    if factory is None:
        raise ControllerUnavailable(f"controller {spec!r}: {target} defines no {name!r}")
    return _callable_factory(spec, factory)


def _import_module(name: str):
    """Import `name` as `python -m` would find it: the current directory first, then the Python path (the
    `signalwise` script's own directory is on the path, not the directory it runs in). A module already imported
    is taken as it is, the path left alone."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    cwd = str(Path.cwd())
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(cwd)


@functools.lru_cache(maxsize=32)
def _load_file(path: Path):
    """The module of a .py file, loaded once per process under a name of its own (so that two files called
    `ctl.py` do not collide); the file's directory is on the path while it loads, as `python FILE` has it."""
    if not path.is_file():
        raise FileNotFoundError(path)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"signalwise_user_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass or a pickle in the module looks its module up by name
    here = str(path.parent)
    sys.path.insert(0, here)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(here)
    return module


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _callable_factory(spec: str, factory) -> Factory:
    if not callable(factory):
        raise ControllerUnavailable(f"controller {spec!r}: {factory!r} is not callable (a factory takes an "
                                    "Intersection and a ControlContext and returns a controller)")
    return factory


# ---------------------------------------------------------------------------------------------------------------
# installed plugins
# ---------------------------------------------------------------------------------------------------------------


def plugins(builtin: frozenset[str]) -> tuple[dict, dict[str, str]]:
    """The installed plugins a user may choose ({name: entry point}) and those refused ({name: why}).

    `builtin`: every name registered in signalwise (a plugin cannot take one). Read from the installed
    packages' metadata (no plugin is imported), once per `sys.path`.
    """
    return _plugins(builtin, tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _plugins(builtin: frozenset[str], _path: tuple[str, ...]) -> tuple[dict, dict[str, str]]:
    from importlib.metadata import entry_points

    by_name: dict[str, list] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    usable, refused = {}, {}
    for name, eps in sorted(by_name.items()):
        why = _refusal(name, eps, builtin)
        if why:
            refused[name] = why
            _warn_once(name, why)
        else:
            usable[name] = eps[0]
    return usable, refused


_warned: set[tuple[str, str]] = set()


def _warn_once(name: str, why: str) -> None:
    """Say once per process that a plugin is not loaded (the table is read again when `sys.path` grows)."""
    if (name, why) not in _warned:
        _warned.add((name, why))
        log.warning("controller plugin %r not loaded: %s", name, why)


def _refusal(name: str, eps: list, builtin: frozenset[str]) -> str | None:
    """Why an entry point of this name cannot be a controller, or None."""
    where = ", ".join(f"{_dist_name(ep)} ({ep.value})" for ep in eps)
    if name in builtin:
        return f"{where} is named like the built-in controller {name!r}, which runs instead; rename its entry point"
    if name == MODULE_PREFIX:
        return f"{where}: {MODULE_PREFIX!r} is the prefix of py:MODULE:FACTORY; rename its entry point"
    if not name or any(c in name for c in ":,") or name != name.strip():
        return f"{where}: a name with ':', ',' or spaces cannot be chosen with -c; rename its entry point"
    if len(eps) > 1:
        return f"installed by {where}: two plugins of one name; uninstall one"
    return None


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "a package"


def plugin_factory(name: str, ep) -> Factory:
    """The factory entry point `ep` names, imported; ControllerUnavailable in one line when it cannot be."""
    try:
        factory = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the plugin's own import error (sys.exit too), in one line
        raise ControllerUnavailable(f"controller plugin {name!r} ({_dist_name(ep)}, {ep.value}): cannot load: "
                                    f"{_one_line(exc)}") from None
    return _callable_factory(name, factory)


# ---------------------------------------------------------------------------------------------------------------
# what the loop needs of a controller
# ---------------------------------------------------------------------------------------------------------------


def controller_problems(ctrl) -> list[str]:
    """What `ctrl` lacks of what the loop reads (`base.Controller`): its name, how often to ask it, what to
    observe for it, whether it reads detectors, and `decide`. Empty when it has all."""
    problems = []
    name = getattr(ctrl, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("name (a str: the controller's label in logs) is " + _shown(ctrl, "name"))
    if not usable_period(getattr(ctrl, "period_s", None)):
        problems.append(f"period_s ({PERIOD_IS}) is " + _shown(ctrl, "period_s"))
    if hasattr(ctrl, "needs_counts_at") and not usable_counts_at(ctrl.needs_counts_at):
        problems.append(f"needs_counts_at ({COUNTS_AT_IS}) is " + _shown(ctrl, "needs_counts_at"))
    if getattr(ctrl, "observation", None) not in OBSERVATIONS:
        problems.append(f"observation (one of {', '.join(OBSERVATIONS)}) is " + _shown(ctrl, "observation"))
    if not isinstance(getattr(ctrl, "wants_detectors", None), bool):
        problems.append("wants_detectors (a bool) is " + _shown(ctrl, "wants_detectors"))
    if not callable(getattr(ctrl, "decide", None)):
        problems.append("decide(observation) -> Decision is " + ("missing" if not hasattr(ctrl, "decide")
                                                                  else "not callable"))
    return problems


#: what `period_s` must be, in the words of a refusal
PERIOD_IS = "seconds of green between decisions, > 0"
#: what `needs_counts_at` must be, where a controller has it
COUNTS_AT_IS = "the simulated second its next stop-bar counts are due, a number"


def usable_period(value) -> bool:  # noqa: ANN001 - whatever the controller holds
    """Whether `value` can be a controller's `period_s`: a finite number > 0. NaN or +inf would stop the loop asking
    it for good (`t >= next decision` never holds), the shield following its last proposal."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0)


def usable_counts_at(value) -> bool:  # noqa: ANN001
    """Whether `value` can be a controller's `needs_counts_at` (+inf: no counts due); NaN compares false with
    every time, so the counts would silently never come."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _shown(ctrl, attr: str) -> str:
    return "missing" if not hasattr(ctrl, attr) else repr(getattr(ctrl, attr))[:40]


def build(spec: str, factory: Callable, inter, ctx) -> UserController:  # noqa: ANN001 - Intersection, ControlContext
    """A user's controller for one intersection, held to what the loop needs and wrapped (`UserController`);
    ControllerUnavailable saying what is wrong, in one line, when its factory fails or what it made is not a
    controller."""
    where = f"controller {spec!r} at signal {inter.id!r}"
    try:
        ctrl = factory(inter, ctx)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's factory: whatever it raised (sys.exit too), in one line
        raise ControllerUnavailable(f"{where}: its factory failed: {_one_line(exc)}") from None
    problems = controller_problems(ctrl)
    if problems:
        raise ControllerUnavailable(f"{where}: {type(ctrl).__name__} is no controller: {'; '.join(problems)}")
    return UserController(ctrl, spec, float(ctrl.period_s),
                          float(ctrl.needs_counts_at) if hasattr(ctrl, "needs_counts_at") else None)


class ControllerExited(RuntimeError):
    """A user's `decide` raised a BaseException that is not an Exception (a library's `sys.exit()`, a
    `GeneratorExit` let out): raised as an error instead, so that the loop counts it and the shield falls back, as
    for any error. A `KeyboardInterrupt` stops the run, as Ctrl-C does."""


class ControllerAttributeError(RuntimeError):
    """After `decide`, an attribute the loop reads of a user's controller (`period_s`, `needs_counts_at`) is not
    usable, or reading it raised (then chained, its traceback kept). The last usable value is kept: the loop
    goes on asking the controller, and the shield falls back for this decision."""


class UserController:
    """A user's controller as the loop holds it: whatever the loop reads of a controller (`observation`,
    `zone_lane_ids`, ...) is read from `inner`, as it is at that moment, but for `period_s` and
    `needs_counts_at`, which the loop reads outside any guard: those are `inner`'s as of its last decision,
    kept only while usable.

    `decide` hands `inner` a copy of the observation: the shield registers its calls from the same observation
    after the controller has decided, so a controller editing its lanes in place would otherwise decide which
    phases are called. A `SystemExit`, or any BaseException but a `KeyboardInterrupt` (the operator's stop), is
    raised as `ControllerExited`; a `period_s` (or `needs_counts_at`) it left unusable
    as `ControllerAttributeError`: neither must end the run or stop it being asked. Built-in controllers are not
    wrapped and pay for none of it. Deep-copied (a live run's saved state) and pickled as `inner` is."""

    __slots__ = ("inner", "spec", "period_s", "needs_counts_at", "_reads_counts")

    def __init__(self, inner, spec: str, period_s: float, needs_counts_at: float | None = None):
        self.inner = inner
        self.spec = spec
        self.period_s = period_s  # inner's last usable one
        self._reads_counts = needs_counts_at is not None
        if self._reads_counts:  # unset otherwise: the loop asks `hasattr` whether a controller plans on counts
            self.needs_counts_at = needs_counts_at

    def __getattr__(self, name: str):
        if name in UserController.__slots__ or name.startswith("__"):  # not set (a copy being made; no counts)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __reduce__(self):
        return UserController, (self.inner, self.spec, self.period_s,
                                self.needs_counts_at if self._reads_counts else None)

    def decide(self, obs):  # noqa: ANN001, ANN201 - an Observation in, the controller's Decision (or None) out
        try:
            decision = self.inner.decide(own_copy(obs))
            self._keep_schedule()
        except Exception:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit and the like: an error of this controller
            if isinstance(exc, KeyboardInterrupt):
                # Ctrl-C is the operator's stop, whoever raised it: a KeyboardInterrupt a library raises itself
                # cannot be told apart from one a signal raised (no flag records a plain run's Ctrl-C), and an
                # operator's stop taken for an error would leave the run going
                raise
            # its traceback kept: the error is placed where the controller raised it
            raise ControllerExited(f"{self.spec}: decide raised {_one_line(exc)}").with_traceback(
                exc.__traceback__) from exc
        return decision

    def _keep_schedule(self) -> None:
        """Take `inner`'s `period_s` (and `needs_counts_at`) as its decision left them; ControllerAttributeError,
        the last usable value kept, when one is not usable or cannot be read."""
        self.period_s = self._usable("period_s", PERIOD_IS, usable_period)
        if self._reads_counts:
            self.needs_counts_at = self._usable("needs_counts_at", COUNTS_AT_IS, usable_counts_at)

    def _usable(self, attr: str, must_be: str, usable: Callable[[object], bool]) -> float:
        kept = getattr(self, attr)
        said = f"{type(self.inner).__name__}.{attr}"
        try:
            value = getattr(self.inner, attr)
            if usable(value):
                return float(value)
        except Exception as exc:  # a property that raises: the user's own error, placed where it was raised
            raise ControllerAttributeError(f"reading {said} after decide raised {_one_line(exc)}; the last usable "
                                           f"one, {kept:g}, is kept").with_traceback(exc.__traceback__) from exc
        raise ControllerAttributeError(f"{said} is {_value_shown(value)} after decide; it must be {must_be}: the "
                                       f"last usable one, {kept:g}, is kept")


def _value_shown(value) -> str:  # noqa: ANN001
    try:
        return repr(value)[:40]
    except Exception:  # noqa: BLE001 - a value whose repr raises is still to be named
        return f"a {type(value).__name__}"




def own_copy(obs):  # noqa: ANN001, ANN201 - an Observation
    """`obs` with dicts of its own (its lanes, detector idle times and counts): editing them changes nothing the
    loop or the shield reads. Their values (`LaneState`, numbers) are frozen, so a shallow copy suffices."""
    return dataclasses.replace(obs, lanes=dict(obs.lanes), detector_idle_s=dict(obs.detector_idle_s),
                               detector_counts_veh=dict(obs.detector_counts_veh))


def network_refusal(spec: str, own: str | None = None) -> str | None:
    """Why a caller over the network may not name controller `spec`, or None. A `py:` spec would run code from a
    module the caller names; only the one the operator started the run with (`own`) is allowed. An installed
    plugin is code the operator installed, chosen by name as a built-in is: allowed."""
    if is_module_spec(spec) and spec != own:
        return (f"controller {spec!r}: a request loads no code on the server; {MODULE_PREFIX}: controllers are "
                "chosen where the run starts (signalwise run, compare, live -c), installed plugins and built-ins "
                "by name")
    return None
