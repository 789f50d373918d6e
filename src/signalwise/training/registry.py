"""The model registry's workflows that need the models themselves: register a loadable model, check a fit.

The registry (versions, the active version per intersection, its history)
lives in the database: `signalwise.store.model_registry.ModelRegistry`, whose
functions the CLI, the API and the runs all call. The store does not load
Q-tables; what does is here:

- `register_model`: load the tables before registering, so what cannot run
  is refused at the door (`signalwise models add`, a finished training job);
- `fits`: whether a version can run at given intersections, by building its
  controller for each exactly as a run would (the table, the layout: phases
  and the lanes they serve, the state encoding), so a model made for another
  layout is refused by name before it is deployed anywhere.
"""

from __future__ import annotations

from pathlib import Path

from ..control.learning.controller import controller_from_model
from ..control.learning.qtable import ModelError, load_model
from ..core.types import Intersection
from ..store.model_registry import (
    DoesNotFit,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    UnknownVersion,
    open_registry,
)

__all__ = ["DoesNotFit", "ModelRegistry", "ModelVersion", "RegistryError", "UnknownVersion", "fits",
           "open_registry", "register_model"]


def register_model(registry: ModelRegistry, path: Path, who: str | None = None,
                   source: str | None = None) -> ModelVersion:
    """Register the model directory `path` as a new version, once its tables load (ModelError if not)."""
    load_model(Path(path))
    return registry.add(Path(path), who, source)


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
