"""The model registry's workflows that need the models themselves: register a loadable model, check a fit.

The registry (versions, the active version per intersection, its history)
lives in the database: `signalwise.store.model_registry.ModelRegistry`, whose
functions the CLI, the API and the runs all call. The store does not load
Q-tables; what does is here:

- `register_model`: load the tables (a phase-score model: read its policy,
  features, weights and options as its controller will) before registering,
  so what cannot run is refused at the door (`signalwise models add`, a
  finished training job), and so is a checkpoint of an unfinished training
  (`qtable.unfinished`) unless asked for;
- `register_once`: the same, unless the same model (the same model id) is
  registered already: then its first version, not added again (`signalwise
  models add`, `POST /api/v1/ml/models`, a training job), unless asked again;
- `fits`: whether a version can run at given intersections, by building its
  controller for each exactly as a run would (the table, the layout: phases
  and the lanes they serve, the state encoding), so a model made for another
  layout is refused by name before it is deployed anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..control.learning.controller import PHASE_SCORE, controller_from_model
from ..control.learning.phase_score import check_features, check_options, check_weights
from ..control.learning.qtable import Model, ModelError, load_model, unfinished
from ..core.types import Intersection
from ..store.model_registry import (
    DoesNotFit,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    UnknownVersion,
    open_registry,
)

__all__ = ["DoesNotFit", "ModelRegistry", "ModelVersion", "Registered", "RegistryError", "UnknownVersion",
           "already_registered_message", "fits", "open_registry", "register_model", "register_once"]


def register_model(registry: ModelRegistry, path: Path, who: str | None = None,
                   source: str | None = None, allow_unfinished: bool = False) -> ModelVersion:
    """Register the model directory `path` as a new version, once its tables load (ModelError if not). A
    checkpoint of an unfinished training is refused (ModelError) unless `allow_unfinished`."""
    model = load_model(Path(path))
    if model.meta.get("agent") == PHASE_SCORE:
        check_policy(model)
    why = unfinished(model.meta, Path(path))
    if why and not allow_unfinished:
        raise ModelError(f"{path}: not registered: {why} (finish it with `signalwise train ... --resume`, or "
                         "register it all the same with --unfinished)")
    return registry.add(Path(path), who, source)


@dataclass(frozen=True, slots=True)
class Registered:
    """What `register_once` did: `version` is the one added, or (`already`) the first version of the same model
    registered before; `same_model_as`, the other versions (not removed) of the same model id."""
    version: ModelVersion
    already: bool
    same_model_as: list[str]


def register_once(registry: ModelRegistry, path: Path, again: bool = False, who: str | None = None,
                  source: str | None = None, allow_unfinished: bool = False) -> Registered:
    """Register the model directory `path` (`register_model`) unless the same model is registered already (the
    same model id: the same weights and the options that decide, whatever its meta.json says since: evaluations,
    times): then its first version, not added again, unless `again`. A directory that is no model says so in its
    own words (ModelError) before any look-up."""
    from ..provenance import model_dir_id

    if not again:
        load_model(Path(path))
        known = registry.versions_of(model_dir_id(path) or "")
        if known:
            return Registered(known[0], True, [v.version for v in known[1:]])
    mv = register_model(registry, path, who=who, source=source, allow_unfinished=allow_unfinished)
    same = [v.version for v in registry.versions() if v.version != mv.version and mv.model_id
            and v.model_id == mv.model_id]
    return Registered(mv, False, same)


def already_registered_message(first: ModelVersion, again: str) -> str:
    """What a caller says of a model `register_once` found registered already; `again`: how it asks to register
    it all the same (`--again`, `"again": true`)."""
    return (f"already registered as {first.version} (model id {first.model_id}; registered {first.registered}): "
            f"not added again ({again} registers it as a new version)")


def check_policy(model: Model) -> None:
    """A phase-score model's policy as its controller reads it (`controller_from_model`); ModelError if it cannot run.

    A phase-score model has no table for `load_model` to check: its weights fit any signal, so nothing else
    would read them before a run starts, and a broken one would be registered and deployed."""
    policy = model.meta.get("policy")
    if not isinstance(policy, dict):
        raise ModelError(f"{model.path}: a phase-score model without its policy (meta.json: policy)")
    try:
        features = policy.get("features") or ()
        if not isinstance(features, list | tuple):
            raise ValueError(f"features must be a list of feature names, got {features!r}")
        features = check_features(features)
        check_weights(policy.get("weights"), features)
        signal_weights = policy.get("signal_weights") or {}
        if not isinstance(signal_weights, dict):
            raise ValueError("signal_weights must map signal ids to weights")
        for signal, weights in signal_weights.items():
            try:
                check_weights(weights, features)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"signal {signal}: {exc}") from None
        check_options(policy.get("measure", "count"), str(policy.get("shared_lanes", "skip")),
                      float(policy.get("period_s", 5.0)))  # as controller_from_model reads it
        zone_m = float(policy.get("zone_m") or 0.0)
        if not (math.isfinite(zone_m) and zone_m >= 0):
            raise ValueError(f"zone_m must be a number of metres, 0 or more, got {policy.get('zone_m')!r}")
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{model.path}: {exc}") from None


def fits(registry: ModelRegistry, version: str, intersections: list[Intersection]) -> dict[str, str | None]:
    """Intersection id -> None when `version` can run there, else why not (one line, naming the difference)."""
    model = load_model(registry.materialize(version))
    out: dict[str, str | None] = {}
    for inter in intersections:
        try:
            controller_from_model(model, inter)
            out[inter.id] = None
        except ModelError as exc:
            out[inter.id] = str(exc).replace(f"{model.path}: ", f"{version}: ")
    return out
