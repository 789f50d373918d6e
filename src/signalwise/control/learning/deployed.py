"""Which model a registry reference means: `ql:@active` and `ql:@v3`.

The model registry lives in the database (`signalwise.store.model_registry`).
Control imports core only and reads no environment, so the caller resolves
the references before the run and hands the model directories over in
`ControlContext.options`:

    options["registry_models"] = {"active": {"C": "/…/models/cache/v2-ab12…", "D": …},
                                  "v3": {"*": "/…/models/cache/v3-cd34…"}}
    options["model_registry"] = "sqlite:///signalwise.db"   (how messages name the registry)

`signalwise run | compare | live | evaluate` and the API do this with
`runtime.commands.registry_options`; a run's `config.yaml` then records
exactly which directories (versions) it ran.
"""

from __future__ import annotations

from pathlib import Path

from .qtable import ModelError

ACTIVE = "active"
ALL_INTERSECTIONS = "*"  # a version's directory, for every intersection


def registry_model_path(options: dict, ref: str, intersection_id: str) -> Path:
    """The model directory `ql:@<ref>` runs at `intersection_id`; ModelError saying why there is none."""
    where = options.get("model_registry") or "the model registry"
    resolved = (options.get("registry_models") or {}).get(ref)
    if resolved is None:
        raise ModelError(f"ql:@{ref}: the registry's models were not handed to this run ({where}); "
                         "resolve them with signalwise.runtime.commands.registry_options")
    path = resolved.get(intersection_id) or resolved.get(ALL_INTERSECTIONS)
    if path is None:
        if ref == ACTIVE:
            raise ModelError(f"no model deployed at intersection {intersection_id!r} (registry {where})")
        raise ModelError(f"ql:@{ref} has no model for intersection {intersection_id!r} (registry {where})")
    return Path(path)
