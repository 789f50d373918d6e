"""A local model registry: numbered versions, and which one is active per intersection.

Kept behind the small `ModelRegistry` interface so the store can later hold
it in the database; `LocalModelRegistry` keeps everything in one directory:

    <root>/registry.json      versions and the activation history per intersection
    <root>/v1/, v2/, ...      copies of the artifacts (a registered model never changes)

`ql:@active` runs, at every intersection, the version active there;
`ql:@v3` runs version 3.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from .qtable import ModelError, load_model

DEFAULT_ROOT = Path("models/registry")


def default_root() -> Path:
    return Path(os.environ.get("SIGNALWISE_MODEL_REGISTRY", DEFAULT_ROOT))


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
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._file = self.root / "registry.json"

    # -- storage --------------------------------------------------------------------
    def _read(self) -> dict:
        if not self._file.is_file():
            return {"versions": [], "history": {}}
        try:
            return json.loads(self._file.read_text())
        except json.JSONDecodeError:
            raise ModelError(f"{self._file}: corrupted registry file") from None

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
        for v in self.versions():
            if v.version == version:
                return v
        known = ", ".join(v.version for v in self.versions()) or "none registered"
        raise ModelError(f"no model version {version!r} in {self.root} ({known})")

    def deploy(self, version: str, intersections: list[str] | None = None) -> dict[str, str]:
        mv = self.get(version)
        targets = intersections or mv.intersections
        unknown = [i for i in targets if i not in mv.intersections]
        if unknown:
            raise ModelError(f"{version} has no table for {', '.join(unknown)} (it knows {', '.join(mv.intersections)})")
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
        return {i: h[-1] for i, h in self._read()["history"].items() if h}

    def path_for(self, ref: str, intersection_id: str) -> Path:
        """`active` -> the version active at that intersection; `vN` -> that version."""
        if ref == "active":
            version = self.active().get(intersection_id)
            if version is None:
                raise ModelError(f"no model deployed at intersection {intersection_id!r}")
        else:
            version = ref
        return Path(self.get(version).path)
