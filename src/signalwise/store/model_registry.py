"""The model registry, in the database: versions, the active version per intersection, and its history.

One set of functions for everyone: `signalwise models …`, the API's
`/api/v1/ml/*` and `/api/v1/live/deploy|rollback` routes, and the runs that
read `ql:@active` / `ql:@v3` (`runtime.commands.registry_options`) all go
through `ModelRegistry`.

- A version (`v1`, `v2`, …) is a model directory's files, stored by content
  (`model_blobs`, keyed by SHA-256, so a file shared by versions is stored
  once) with the model's `meta.json` as registered, and the model's identity
  (`model_id`, `provenance.model_id`: what decides its behaviour, not its
  metadata's times, paths or evaluations), by which `versions_of` finds the
  same model registered before under any name. A registered version
  never changes. Removing one (`remove`) deletes its files but keeps its row,
  marked: the deployment history still names it, `models show` still reads
  its metadata, and its name is never given to another version (a run's
  recorded `ql:@v3` keeps meaning one model).
- The active version of an intersection is its newest deployment not rolled
  back (`model_deployments`): deploying pushes, rolling back pops, and every
  row keeps who did what and when.
- To run a version, its files are written once to a directory of the cache
  (`Settings.model_cache`, `<version>-<content hash>/`), checked against
  their hashes whenever they are handed out again; controllers memory-map
  their tables from there. The directory can be deleted at any time.
- A directory registry (`registry.json` + `v1/`, `v2/` …, the format
  `signalwise models` wrote before the registry moved into the database) is
  imported with `signalwise models import DIR`, and automatically on first use
  from `Settings.model_registry` when the database holds no version yet.

The store does not import the controllers: a model is checked here for what
the registry needs (a `meta.json` of a signalwise Q-table model naming its
intersections); `signalwise models add` loads the tables before registering.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..core.redaction import shown_url
from ..provenance import manifest_sha256
from ..provenance import model_id as model_identity
from .tables import ModelBlob, ModelDeployment, ModelFile, ModelVersionRow

log = logging.getLogger("signalwise.models")

MODEL_FORMAT = "signalwise.qtable"
#: meta.json `agent` of a phase-score policy (control/learning/controller.py PHASE_SCORE), which fits any
#: signal: deployed where it is named
POLICY_AGENT = "phase-score"
REGISTRY_FILE = "registry.json"  # a directory registry's index
#: refs a controller spec may name after `ql:@`: the active version, or a version
ACTIVE = "active"
ALL_INTERSECTIONS = "*"  # key of a version's path in a resolved map: every intersection

V, F, B, D = ModelVersionRow.__table__, ModelFile.__table__, ModelBlob.__table__, ModelDeployment.__table__


class RegistryError(ValueError):
    """A registry operation that cannot be done: the reason, in one line."""


class UnknownVersion(RegistryError):
    """No such version (the API answers 404)."""


class DoesNotFit(RegistryError):
    """A version asked to run where it has no table, or the wrong layout (the API answers 409)."""


class InUse(RegistryError):
    """A version that runs somewhere, or that a rollback would return to (the API answers 409)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    scenario: str
    intersections: list[str]
    layouts: dict[str, str]  # intersection id -> layout fingerprint
    episodes: int
    registered_at: dt.datetime
    registered_by: str
    source: str
    content_sha256: str
    size_bytes: int = 0
    meta: dict = field(default_factory=dict, repr=False, compare=False)
    removed_at: dt.datetime | None = None  # removed: its files are gone, its metadata kept
    removed_by: str | None = None
    #: the model's identity (`provenance.model_id`); None only for a version registered before ids were kept
    #: whose files were removed since (the id of a version without one is worked out from its files)
    model_id: str | None = None

    @property
    def registered(self) -> str:
        """When it was registered, local time to the second (for tables)."""
        return self.registered_at.astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Deployment:
    """One row of the history: a version deployed at an intersection, and its rollback if any."""

    intersection_id: str
    version: str
    deployed_at: dt.datetime
    deployed_by: str
    rolled_back_at: dt.datetime | None
    rolled_back_by: str | None


@dataclass(frozen=True)
class ActiveVersion:
    """What runs at an intersection, since when and because of whom (a deploy, or a rollback that uncovered it)."""

    intersection_id: str
    version: str
    since: dt.datetime
    by: str
    how: str  # deploy | rollback


@dataclass(frozen=True)
class Removal:
    """What `remove` did: the version as it now stands (marked removed), and the bytes its blobs freed."""

    version: ModelVersion
    freed_bytes: int  # less than its size where another version shares a file


@dataclass
class ImportReport:
    """What `import_file_registry` did: versions by their old name -> new name, and what it left alone."""

    root: str
    versions: dict[str, str] = field(default_factory=dict)
    same_as: dict[str, str] = field(default_factory=dict)  # old name -> existing version with the same files
    deployments: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_actor() -> str:
    """Who a command-line change is recorded as: `cli:<user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _version_number(version: str) -> int | None:
    return int(version[1:]) if version[:1] == "v" and version[1:].isdigit() else None


# ---------------------------------------------------------------------------
# A model directory
# ---------------------------------------------------------------------------


def read_model_dir(path: Path) -> tuple[dict, dict[str, bytes]]:
    """(meta, files by relative name) of a model directory; RegistryError when it is not a complete model."""
    path = Path(path)
    if not path.is_dir():
        raise RegistryError(f"{path}: no such model directory")
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        inside = path / "model"  # a training's --out holds its model in model/
        raise RegistryError(f"{path}: not a model (no meta.json; "
                         + (f"did you mean {inside}, the model a training writes there?)" if (inside / "meta.json").is_file()
                            else "an interrupted save?)"))
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{meta_file}: unreadable model metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise RegistryError(f"{meta_file}: not a signalwise Q-table model")
    policy = meta.get("agent") == POLICY_AGENT  # a few weights shared by every signal: no per-signal table
    if not isinstance(meta.get("intersections"), dict) or not (meta["intersections"] or policy):
        raise RegistryError(f"{meta_file}: the model names no intersection")
    training = meta.get("training")
    training = {} if training is None else training
    if not isinstance(training, dict):
        raise RegistryError(f"{meta_file}: training must be a mapping, not {training!r}")
    episodes = training.get("episodes")
    if episodes is not None and (not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 0):
        raise RegistryError(f"{meta_file}: training.episodes must be a whole number of episodes, not {episodes!r}")
    files = {}
    for f in sorted(path.rglob("*")):
        if f.is_file() and not f.name.endswith(".tmp") and ".tmp." not in f.name:
            files[f.relative_to(path).as_posix()] = f.read_bytes()
    for name in meta.get("tables") or {}:
        for kind in ("q", "n"):
            if f"{kind}-{name}.npy" not in files:
                raise RegistryError(f"{path}: table file {kind}-{name}.npy missing")
    return meta, files


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


class ModelRegistry:
    """The registry in the database behind `engine`.

    `cache_dir`: where versions are unpacked to run. `file_registry`: a
    directory registry imported on first use when the database holds no
    version. `where`: how messages name this registry (the database URL
    without its password).
    """

    def __init__(self, engine: Engine, cache_dir: Path, file_registry: Path | None = None, where: str = ""):
        self.engine = engine
        self.cache_dir = Path(cache_dir)
        self.file_registry = Path(file_registry) if file_registry is not None else None
        self.where = where or shown_url(engine.url)
        self._checked_import = file_registry is None

    # -- versions -------------------------------------------------------------------
    def add(self, path: Path, who: str | None = None, source: str | None = None) -> ModelVersion:
        """Register a model directory as the next version (`v<n+1>`); its files are stored, never changed."""
        self._ready()
        meta, files = read_model_dir(Path(path))
        return self._insert_version(meta, files, who or default_actor(), source or str(Path(path).resolve()))

    def _insert_version(self, meta: dict, files: dict[str, bytes], who: str, source: str,
                        version: str | None = None) -> ModelVersion:
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        inters = sorted(meta["intersections"])
        layouts = {i: str((meta["intersections"][i] or {}).get("layout_fingerprint", "")) for i in inters}
        episodes = int((meta.get("training") or {}).get("episodes") or 0)
        for attempt in range(5):  # two writers numbering at once: the unique version name decides, retry
            try:
                with self.engine.begin() as conn:
                    known = set(conn.execute(select(B.c.sha256).where(B.c.sha256.in_(set(hashes.values())))).scalars())
                    blobs = {}
                    for name, data in files.items():
                        h = hashes[name]
                        if h not in known and h not in blobs:
                            blobs[h] = {"sha256": h, "size_bytes": len(data), "data": data}
                    if blobs:
                        conn.execute(insert(B), list(blobs.values()))
                    name = version
                    if name is None:
                        numbers = [_version_number(v) for v in conn.execute(select(V.c.version)).scalars()]
                        name = f"v{1 + max((n for n in numbers if n is not None), default=0)}"
                    row = {"version": name, "content_sha256": manifest_sha256(hashes),
                           "model_id": model_identity(meta, hashes), "scenario": str(meta.get("scenario") or ""), "intersections": inters, "layouts": layouts,
                           "episodes": episodes, "meta": meta, "source": source[:1000],
                           "registered_at": _now(), "registered_by": who[:128]}
                    version_id = conn.execute(insert(V).values(**row).returning(V.c.id)).scalar_one()
                    conn.execute(insert(F), [{"version_id": version_id, "name": n, "sha256": hashes[n],
                                              "size_bytes": len(files[n])} for n in sorted(files)])
                return ModelVersion(**{k: v for k, v in row.items() if k != "meta"},
                                    size_bytes=sum(map(len, files.values())), meta=meta)
            except IntegrityError:
                if version is not None or attempt == 4:
                    raise RegistryError(f"version {version or 'number'} was taken by another writer; "
                                        "try again") from None
        raise AssertionError("unreachable")

    def versions(self, include_removed: bool = False) -> list[ModelVersion]:
        """Every registered version, oldest first; the removed ones too when asked."""
        self._ready()
        q = select(V).order_by(V.c.id)
        if not include_removed:
            q = q.where(V.c.removed_at.is_(None))
        with self.engine.connect() as conn:
            sizes = dict(conn.execute(select(F.c.version_id, func.sum(F.c.size_bytes)).group_by(F.c.version_id)).all())
            rows = conn.execute(q).mappings().all()
            ids = self._ids_of_old_rows(conn, rows)
        return [self._version(r, int(sizes.get(r["id"]) or 0), ids.get(r["id"])) for r in rows]

    def versions_of(self, model_id: str) -> list[ModelVersion]:
        """The versions (not removed) of the model whose identity is `model_id`, oldest first: the same weights
        registered before, whatever their files' metadata says since."""
        return [v for v in self.versions() if v.model_id == model_id]

    @staticmethod
    def _ids_of_old_rows(conn, rows) -> dict[int, str | None]:  # noqa: ANN001
        """version row id -> the model id of each row registered before ids were kept (`model_id` NULL), from its
        stored metadata and file hashes; None for one whose files were removed (a phase-score policy's id
        needs none: its metadata holds it all)."""
        old = [r for r in rows if r["model_id"] is None]
        if not old:
            return {}
        files: dict[int, dict[str, str]] = {}
        for vid, name, digest in conn.execute(select(F.c.version_id, F.c.name, F.c.sha256)
                                              .where(F.c.version_id.in_([r["id"] for r in old]))):
            files.setdefault(vid, {})[name] = digest
        out = {}
        for r in old:
            meta = dict(r["meta"] or {})
            has_tables = bool(meta.get("tables"))
            out[r["id"]] = None if r["removed_at"] is not None and has_tables \
                else model_identity(meta, files.get(r["id"], {}))
        return out

    def get(self, version: str, include_removed: bool = False) -> ModelVersion:
        """The version; UnknownVersion naming the known ones when there is none, or saying who removed it."""
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(select(V).where(V.c.version == version)).mappings().first()
            if row is None:
                known = list(conn.execute(select(V.c.version).where(V.c.removed_at.is_(None))
                                          .order_by(V.c.id)).scalars())
                raise UnknownVersion(f"no model version {version!r} in the registry ({self.where}; "
                                     f"{', '.join(known) or 'none registered'})")
            if row["removed_at"] is not None and not include_removed:
                raise UnknownVersion(f"model version {version!r} was removed from the registry ({self.where}) "
                                     f"by {row['removed_by']} at {row['removed_at']:%Y-%m-%d %H:%M:%S} UTC")
            size = conn.execute(select(func.sum(F.c.size_bytes)).where(F.c.version_id == row["id"])).scalar()
            ids = self._ids_of_old_rows(conn, [row])
        return self._version(row, int(size or 0), ids.get(row["id"]))

    @staticmethod
    def _version(r, size: int, worked_out_id: str | None = None) -> ModelVersion:  # noqa: ANN001 - a row mapping
        return ModelVersion(r["version"], r["scenario"], list(r["intersections"]), dict(r["layouts"]),
                            int(r["episodes"]), r["registered_at"], r["registered_by"], r["source"],
                            r["content_sha256"], size, dict(r["meta"]), r["removed_at"], r["removed_by"],
                            r["model_id"] or worked_out_id)

    def remove(self, version: str, who: str | None = None) -> Removal:
        """Delete a version's files (and the blobs no other version shares); its row stays, marked removed.

        Refused (InUse) while any deployment of it stands: where it is active,
        and where a newer version was deployed over it, since a rollback there
        would return to files that are gone. Roll back or deploy another
        version first; the history, which names it, is never rewritten.
        """
        self.get(version)  # raises for an unknown or removed version, naming the known ones
        who = (who or default_actor())[:128]
        with self.engine.begin() as conn:
            # the row locked (PostgreSQL) so that a deploy of it waits for this and then sees it removed
            vid = conn.execute(select(V.c.id).where(V.c.version == version, V.c.removed_at.is_(None))
                               .with_for_update()).scalar()
            if vid is None:
                raise UnknownVersion(f"model version {version!r} was removed meanwhile by another writer")
            standing = sorted(set(conn.execute(select(D.c.intersection_id).where(
                D.c.version_id == vid, D.c.rolled_back_at.is_(None))).scalars()))
            if standing:
                top = self._active_rows(conn, standing)
                active = [i for i in standing if top[i][1] == vid]
                under = [i for i in standing if top[i][1] != vid]
                where = "; ".join(part for part in (
                    f"active at {', '.join(active)}" if active else "",
                    f"deployed under a newer version at {', '.join(under)} (a rollback there would return to it)"
                    if under else "") if part)
                raise InUse(f"{version} is {where}: roll back there, or deploy another version, before removing it")
            conn.execute(update(V).where(V.c.id == vid).values(removed_at=_now(), removed_by=who))
            hashes = set(conn.execute(select(F.c.sha256).where(F.c.version_id == vid)).scalars())
            conn.execute(delete(F).where(F.c.version_id == vid))
            shared = set(conn.execute(select(F.c.sha256).where(F.c.sha256.in_(hashes))).scalars())
            alone = hashes - shared
            freed = int(conn.execute(select(func.sum(B.c.size_bytes)).where(B.c.sha256.in_(alone))).scalar() or 0)
            if alone:
                conn.execute(delete(B).where(B.c.sha256.in_(alone)))
        for copy in self.cache_dir.glob(f"{version}-*"):  # its unpacked copies; a running controller keeps its maps
            shutil.rmtree(copy, ignore_errors=True)
        return Removal(self.get(version, include_removed=True), freed)

    def files(self, version: str) -> dict[str, bytes]:
        """A version's files by relative name, as registered."""
        self._ready()
        with self.engine.connect() as conn:
            vid = conn.execute(select(V.c.id).where(V.c.version == version)).scalar()
            if vid is None:
                self.get(version)  # raises, naming the known versions
            rows = conn.execute(select(F.c.name, B.c.data).join(B, B.c.sha256 == F.c.sha256)
                                .where(F.c.version_id == vid)).all()
        return {name: bytes(data) for name, data in rows}

    # -- deployments ----------------------------------------------------------------
    def deploy(self, version: str, intersections: list[str] | None = None, who: str | None = None) -> dict[str, str]:
        """Make `version` active at `intersections` (default: all it has a table for). DoesNotFit names what
        it lacks; whether a table fits an intersection's layout is checked by the caller that knows the
        intersection (the API against the live run or a scenario; a run when it builds its controllers)."""
        mv = self.get(version)
        if not mv.intersections:  # a phase-score policy: no tables, it fits any signal it is deployed to
            if not intersections:
                raise DoesNotFit(f"{version} is a phase-score policy that fits any signal: name where it runs "
                                 "(--intersection ID, repeatable)")
        targets = list(dict.fromkeys(intersections or mv.intersections))
        unknown = [i for i in targets if mv.intersections and i not in mv.intersections]
        if unknown:
            raise DoesNotFit(f"{version} has no table for {', '.join(unknown)} "
                             f"(it was trained for {', '.join(mv.intersections)})")
        who = (who or default_actor())[:128]
        now = _now()
        with self.engine.begin() as conn:
            # locked as `remove` locks it: a removal that came first leaves no row to deploy
            vid = conn.execute(select(V.c.id).where(V.c.version == version, V.c.removed_at.is_(None))
                               .with_for_update()).scalar()
            if vid is None:
                raise UnknownVersion(f"model version {version!r} was removed meanwhile by another writer")
            current = self._active_rows(conn, targets)
            rows = [{"intersection_id": i, "version_id": vid, "deployed_at": now, "deployed_by": who}
                    for i in targets if current.get(i, (None, None))[1] != vid]
            if rows:
                conn.execute(insert(D), rows)
        return {i: version for i in targets}

    def rollback(self, intersections: list[str] | None = None, who: str | None = None) -> dict[str, str | None]:
        """Back to the version active before the last deployment, at each intersection (default: all with one).

        Returns what is active afterwards (None: no model; the signal runs its fallback plan)."""
        self._ready()
        who = (who or default_actor())[:128]
        now = _now()
        with self.engine.begin() as conn:
            targets = intersections or sorted(self._active_rows(conn, None))
            current = self._active_rows(conn, targets)
            if not current:
                where = f" at {', '.join(targets)}" if intersections else ""
                raise RegistryError(f"nothing deployed{where} to roll back")
            for _i, (row_id, _vid) in sorted(current.items()):
                done = conn.execute(update(D).where(D.c.id == row_id, D.c.rolled_back_at.is_(None))
                                    .values(rolled_back_at=now, rolled_back_by=who)).rowcount
                if done != 1:
                    raise RegistryError("another rollback of the same deployment came first; look again")
            after = self._active_rows(conn, targets)
            names = dict(conn.execute(select(V.c.id, V.c.version)).all())
        return {i: names[after[i][1]] if i in after else None for i in targets}

    @staticmethod
    def _active_rows(conn, intersections: list[str] | None) -> dict[str, tuple[int, int]]:  # noqa: ANN001
        """intersection -> (deployment row id, version id) of what is active there."""
        newest = (select(D.c.intersection_id, func.max(D.c.id).label("id"))
                  .where(D.c.rolled_back_at.is_(None)).group_by(D.c.intersection_id))
        if intersections is not None:
            newest = newest.where(D.c.intersection_id.in_(intersections))
        sub = newest.subquery()
        q = select(D.c.intersection_id, D.c.id, D.c.version_id).join(sub, sub.c.id == D.c.id)
        return {i: (row_id, vid) for i, row_id, vid in conn.execute(q)}

    def active(self) -> dict[str, str]:
        """Intersection id -> the version active there."""
        self._ready()
        with self.engine.connect() as conn:
            rows = self._active_rows(conn, None)
            names = dict(conn.execute(select(V.c.id, V.c.version)).all())
        return {i: names[vid] for i, (_row, vid) in sorted(rows.items())}

    def active_at(self, intersection_id: str) -> ActiveVersion | None:
        """The version active at one intersection, since when and by whom; None when none is."""
        history = self.history(intersection_id)
        live = [d for d in history if d.rolled_back_at is None]
        if not live:
            return None
        top = live[-1]
        # a rollback after `top` was deployed is what made it active again
        uncovered = [d for d in history if d.rolled_back_at is not None and d.rolled_back_at >= top.deployed_at]
        if uncovered:
            last = max(uncovered, key=lambda d: d.rolled_back_at)
            return ActiveVersion(intersection_id, top.version, last.rolled_back_at, last.rolled_back_by or "?",
                                 "rollback")
        return ActiveVersion(intersection_id, top.version, top.deployed_at, top.deployed_by, "deploy")

    def history(self, intersection_id: str | None = None) -> list[Deployment]:
        """Every deployment (and its rollback), oldest first; of one intersection, or all."""
        self._ready()
        q = select(D, V.c.version).join(V, V.c.id == D.c.version_id).order_by(D.c.id)
        if intersection_id is not None:
            q = q.where(D.c.intersection_id == intersection_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [Deployment(r["intersection_id"], r["version"], r["deployed_at"], r["deployed_by"],
                           r["rolled_back_at"], r["rolled_back_by"]) for r in rows]

    # -- running a version ------------------------------------------------------------
    def materialize(self, version: str) -> Path:
        """The directory holding `version`'s files, written once to the cache and checked on every call."""
        mv = self.get(version)
        target = self.cache_dir / copy_name(mv)
        with self.engine.connect() as conn:
            vid = conn.execute(select(V.c.id).where(V.c.version == version)).scalar_one()
            manifest = dict(conn.execute(select(F.c.name, F.c.sha256).where(F.c.version_id == vid)).all())
        if target.is_dir() and _matches(target, manifest):
            return target.resolve()
        files = self.files(version)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".tmp-{uuid.uuid4().hex}"
        for name, data in files.items():
            if hashlib.sha256(data).hexdigest() != manifest[name]:
                raise RegistryError(f"{version}: stored file {name} does not match its hash (database damaged?)")
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        if target.exists():  # a copy that was changed or cut short: set aside, then replaced
            stale = self.cache_dir / f".stale-{uuid.uuid4().hex}"
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process put the same version there first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
        return target.resolve()

    def resolve(self, ref: str) -> dict[str, str]:
        """What `ql:@<ref>` runs: `active` -> {intersection: directory} of the versions active now;
        `vN` -> {"*": its directory}."""
        if ref == ACTIVE:
            paths: dict[str, Path] = {}
            out = {}
            for inter, version in self.active().items():
                if version not in paths:
                    paths[version] = self.materialize(version)
                out[inter] = str(paths[version])
            return out
        return {ALL_INTERSECTIONS: str(self.materialize(ref))}

    # -- directory registries ----------------------------------------------------------
    def _ready(self) -> None:
        """Import the configured directory registry the first time, if the database has no version yet."""
        if self._checked_import:
            return
        self._checked_import = True
        root = self.file_registry
        if root is None or not (root / REGISTRY_FILE).is_file():
            return
        with self.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(V)).scalar_one():
                return
        try:
            report = self.import_file_registry(root, who=f"import:{root}")
        except RegistryError as exc:
            log.warning("the directory registry %s was not imported: %s", root, exc)
            return
        log.warning("imported the directory registry %s into the database (%s): versions %s, active %s",
                    root, self.where, ", ".join(f"{a}->{b}" for a, b in report.versions.items()) or "none",
                    ", ".join(f"{i}: {h[-1]}" for i, h in report.deployments.items() if h) or "none")

    def import_file_registry(self, root: Path, who: str | None = None) -> ImportReport:
        """Import a directory registry (`registry.json`, `v1/`, …): its versions and active versions.

        Versions keep their names where free; a name already taken by other
        files gets the next number (the report says which). A version whose
        files are already registered under its name, or that an earlier import
        of the same directory added under another, is not added twice, so
        importing again changes nothing. Each intersection's deployments are
        imported, in order, only when the database has none for it. Every
        version is read and checked before anything is written.
        """
        self._checked_import = True
        root = Path(root)
        index = root / REGISTRY_FILE
        if not index.is_file():
            raise RegistryError(f"{root}: not a model registry directory (no {REGISTRY_FILE})")
        try:
            data = json.loads(index.read_text())
            entries = list(data["versions"])
            stacks = {str(i): list(h) for i, h in (data.get("history") or {}).items()}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RegistryError(f"{index}: corrupted registry file ({type(exc).__name__})") from None
        who = who or default_actor()
        read = []
        for e in entries:
            name = str(e.get("version", ""))
            where = Path(e["path"]) if e.get("path") and Path(e["path"]).is_dir() else root / name
            meta, files = read_model_dir(where)
            read.append((name, meta, files, str(where.resolve()), e.get("registered")))
        report = ImportReport(str(root.resolve()))
        with self.engine.connect() as conn:
            taken = dict(conn.execute(select(V.c.version, V.c.content_sha256)).all())
            removed = set(conn.execute(select(V.c.version).where(V.c.removed_at.is_not(None))).scalars())
            # what earlier imports of these files added, whatever name a taken one was given instead
            imported = {(src, content): version for version, src, content in conn.execute(
                select(V.c.version, V.c.source, V.c.content_sha256).where(V.c.removed_at.is_(None)))}
        for name, meta, files, where, _registered in read:
            content = manifest_sha256({n: hashlib.sha256(d).hexdigest() for n, d in files.items()})
            source = f"{where} (imported from {root.resolve()})"
            if taken.get(name) == content and name in removed:
                report.skipped.append(f"{name}: removed from the registry, not imported again")
                continue
            if taken.get(name) == content or (source, content) in imported:  # imported before (renamed, maybe)
                report.same_as[name] = imported.get((source, content), name)
                report.versions[name] = report.same_as[name]
                continue
            keep = name if _version_number(name) is not None and name not in taken else None
            mv = self._insert_version(meta, files, who, source, version=keep)
            taken[mv.version] = content
            report.versions[name] = mv.version
        with self.engine.begin() as conn:
            has = set(conn.execute(select(D.c.intersection_id).distinct()).scalars())
            ids = dict(conn.execute(select(V.c.version, V.c.id)).all())
            now = _now()
            for inter, stack in sorted(stacks.items()):
                if not stack:
                    continue
                if inter in has:
                    report.skipped.append(f"{inter}: deployments already in the database, the directory's left out")
                    continue
                unknown = [v for v in stack if v not in report.versions]
                if unknown:
                    report.skipped.append(f"{inter}: refers to version(s) not imported {', '.join(unknown)}")
                    continue
                conn.execute(insert(D), [{"intersection_id": inter, "version_id": ids[report.versions[v]],
                                          "deployed_at": now, "deployed_by": who[:128]} for v in stack])
                report.deployments[inter] = [report.versions[v] for v in stack]
        return report


def copy_name(mv: ModelVersion) -> str:
    """The name of a version's directory in the cache: a path ending in it runs exactly that version."""
    return f"{mv.version}-{mv.content_sha256[:12]}"


def _matches(directory: Path, manifest: dict[str, str]) -> bool:
    """Every file of the manifest is there with its hash, and nothing else."""
    present = {f.relative_to(directory).as_posix() for f in directory.rglob("*") if f.is_file()}
    if present != set(manifest):
        return False
    return all(hashlib.sha256((directory / n).read_bytes()).hexdigest() == h for n, h in manifest.items())


def open_registry(settings=None, database_url: str | None = None) -> ModelRegistry:  # noqa: ANN001
    """The registry of the configured database (or `database_url`), with the configured cache and the
    directory registry to import on first use."""
    from .engine import get_engine
    from .settings import Settings

    settings = settings or Settings()
    engine = get_engine(database_url or settings.database_url)
    return ModelRegistry(engine, settings.model_cache, settings.model_registry)
