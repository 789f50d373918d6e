"""A local model registry: numbered versions, and which one is active per intersection.

Kept behind the small `ModelRegistry` interface so the store can later hold
it in the database; `LocalModelRegistry` keeps everything in one directory:

    <root>/registry.json      versions and the activation history per intersection
    <root>/v1/, v2/, ...      copies of the artifacts (a registered model never changes)

`ql:@active` runs, at every intersection, the version active there;
`ql:@v3` runs version 3. Those runs read the registry with the functions of
`signalwise.control.learning.deployed`, and so does this class: one reader.
The root is given by the caller (the CLI takes it from `Settings`,
`SIGNALWISE_MODEL_REGISTRY`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ..control.learning.deployed import (
    DEFAULT_REGISTRY_ROOT,
    REGISTRY_FILE,
    active_versions,
    deployed_model_path,
    read_registry,
    version_entry,
)
from ..control.learning.qtable import ModelError, load_model


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: str
    scenario: str
    intersections: list[str]
    episodes: int
    registered: str
    source: str


class ModelRegistry(Protocol):
    def add(self, path: Path) -> ModelVersion: ...
    def versions(self) -> list[ModelVersion]: ...
    def get(self, version: str) -> ModelVersion: ...
    def deploy(self, version: str, intersections: list[str] | None = None) -> dict[str, str]: ...
    def rollback(self, intersections: list[str] | None = None) -> dict[str, str | None]: ...
    def active(self) -> dict[str, str]: ...


class LocalModelRegistry:
    def __init__(self, root: Path = DEFAULT_REGISTRY_ROOT):
        self.root = Path(root)
        self._file = self.root / REGISTRY_FILE

    # -- storage --------------------------------------------------------------------
    def _read(self) -> dict:
        return read_registry(self.root)

    def _write(self, data: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self._file)

    # -- interface ---------------------------------------------------------------------
    def add(self, path: Path) -> ModelVersion:
        model = load_model(Path(path))  # refuse to register what cannot be loaded
        data = self._read()
        number = 1 + max((int(v["version"][1:]) for v in data["versions"]), default=0)
        version = f"v{number}"
        target = self.root / version
        shutil.copytree(path, target)
        mv = ModelVersion(version, str(target.resolve()), str(model.meta.get("scenario", "")),
                          sorted(model.table_of), int(model.meta.get("training", {}).get("episodes", 0)),
                          dt.datetime.now().isoformat(timespec="seconds"), str(Path(path).resolve()))
        data["versions"].append(asdict(mv))
        self._write(data)
        return mv

    def versions(self) -> list[ModelVersion]:
        return [ModelVersion(**v) for v in self._read()["versions"]]

    def get(self, version: str) -> ModelVersion:
        return ModelVersion(**version_entry(self._read(), self.root, version))

    def deploy(self, version: str, intersections: list[str] | None = None) -> dict[str, str]:
        mv = self.get(version)
        if not mv.intersections:  # a phase-score policy: no tables, it fits any signal it is deployed to
            if not intersections:
                raise ModelError(f"{version} is a phase-score policy that fits any signal: name where it runs "
                                 "(--intersection ID, repeatable)")
            return self._record_deploy(version, intersections)
        targets = intersections or mv.intersections
        unknown = [i for i in targets if i not in mv.intersections]
        if unknown:
            raise ModelError(f"{version} has no table for {', '.join(unknown)} (it knows {', '.join(mv.intersections)})")
        return self._record_deploy(version, targets)

    def _record_deploy(self, version: str, targets: list[str]) -> dict[str, str]:
        data = self._read()
        for i in targets:
            hist = data["history"].setdefault(i, [])
            if not hist or hist[-1] != version:
                hist.append(version)
        self._write(data)
        return {i: version for i in targets}

    def rollback(self, intersections: list[str] | None = None) -> dict[str, str | None]:
        data = self._read()
        targets = intersections or sorted(data["history"])
        if not any(data["history"].get(i) for i in targets):
            raise ModelError("nothing deployed to roll back")
        out: dict[str, str | None] = {}
        for i in targets:
            hist = data["history"].get(i, [])
            if hist:
                hist.pop()
            out[i] = hist[-1] if hist else None
        self._write(data)
        return out

    def active(self) -> dict[str, str]:
        return active_versions(self._read())

    def path_for(self, ref: str, intersection_id: str) -> Path:
        """`active` -> the version active at that intersection; `vN` -> that version (what `ql:@ref` runs)."""
        return deployed_model_path(self.root, ref, intersection_id)
