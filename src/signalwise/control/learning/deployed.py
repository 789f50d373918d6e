"""Which model a registry reference means: `ql:@active` and `ql:@v3`, read-only.

The model registry (`signalwise models`, `signalwise.training.registry`)
keeps one file, `<root>/registry.json`:

    {"versions": [{"version": "v1", "path": "/abs/models/registry/v1", ...}, ...],
     "history": {"<intersection id>": ["v1", "v2", ...]}}   (last = active there)

A controller only needs to read it, so reading lives here, next to the
controller, and the registry's workflows (add, deploy, rollback) in training
use these same functions. Where the registry is comes from the caller
(`ControlContext.options["model_registry"]`): control reads no environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from .qtable import ModelError

#: the registry's root when nobody says otherwise
DEFAULT_REGISTRY_ROOT = Path("models/registry")
REGISTRY_FILE = "registry.json"


def read_registry(root: Path) -> dict:
    """The registry's contents; an empty registry when the file does not exist yet."""
    file = Path(root) / REGISTRY_FILE
    if not file.is_file():
        return {"versions": [], "history": {}}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError:
        raise ModelError(f"{file}: corrupted registry file") from None


def active_versions(data: dict) -> dict[str, str]:
    """Intersection id -> the version active there (the last one deployed and not rolled back)."""
    return {i: h[-1] for i, h in data["history"].items() if h}


def version_entry(data: dict, root: Path, version: str) -> dict:
    """The record of `version`; ModelError naming the known versions when there is none."""
    for v in data["versions"]:
        if v["version"] == version:
            return v
    known = ", ".join(v["version"] for v in data["versions"]) or "none registered"
    raise ModelError(f"no model version {version!r} in {root} ({known})")


def deployed_model_path(root: Path, ref: str, intersection_id: str) -> Path:
    """`active` -> the directory of the version active at that intersection; `vN` -> that version's."""
    data = read_registry(root)
    if ref == "active":
        version = active_versions(data).get(intersection_id)
        if version is None:
            raise ModelError(f"no model deployed at intersection {intersection_id!r} (registry {root})")
    else:
        version = ref
    return Path(version_entry(data, root, version)["path"])
