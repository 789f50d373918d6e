"""Small real model artifacts for registry tests: a zero-valued Q-table made for given intersections.

A table of zeros is a complete model (`load_model` reads it, `ql:PATH` runs
it: every state looks unknown, so the controller follows its max-pressure
guide with low confidence). It is built for an intersection's real layout,
or for another intersection's layout under the same id, which is how a model
"made for another layout" looks to the registry and the runtime.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from signalwise.control.learning.features import StateFeatures
from signalwise.control.learning.qtable import Model, QTable, save_model
from signalwise.core.types import Intersection

FEATURES = {"actions": "switch", "state": "compact"}  # what `signalwise train` uses by default


def write_model(path: Path, intersections: list[Intersection], scenario: str = "single", episodes: int = 1,
                evaluations: list[dict] | None = None) -> Path:
    """A model directory with one zero table per intersection, for exactly their layouts."""
    tables, table_of, layouts = {}, {}, {}
    for inter in intersections:
        f = StateFeatures(inter, **FEATURES)
        tables[inter.id] = QTable(f.encoding, f.n_actions)
        table_of[inter.id] = inter.id
        layouts[inter.id] = f.layout()
    meta = {"scenario": scenario, "features": dict(FEATURES), "hyperparameters": {"guide": "max-pressure",
                                                                                   "guide_mode": "each-action",
                                                                                   "guide_visits": 30},
            "training": {"episodes": episodes, "seeds": [], "violations": 0}, "evaluations": evaluations or []}
    return save_model(Path(path), Model(None, tables, table_of, layouts, meta))


def renamed(inter: Intersection, new_id: str) -> Intersection:
    """The same signal under another id: a model for it has the layout of `inter`, named `new_id`."""
    return dataclasses.replace(inter, id=new_id)


def damaged_copy(path: Path, change) -> Path:
    """The shipped `single` model copied to `path`, its meta.json passed through `change` (which edits the dict
    in place and returns None, or returns the new value): a model as a hand or a half-copied file leaves it."""
    import json
    import shutil

    from signalwise.control.learning.shipped import shipped_model_path

    shutil.copytree(shipped_model_path("single"), path)
    meta = json.loads((path / "meta.json").read_text())
    changed = change(meta)
    (path / "meta.json").write_text(json.dumps(meta if changed is None else changed))
    return path
