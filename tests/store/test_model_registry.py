"""The model registry in the database: versions, deployments as a stack with their history, the cache the
runs read, and the import of directory registries. SQLite always, PostgreSQL when it answers."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.models import renamed, write_model

from signalwise.control.learning.qtable import load_model
from signalwise.envs.episode import probe_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario
from signalwise.store.model_registry import DoesNotFit, InUse, ModelRegistry, RegistryError, UnknownVersion
from signalwise.store.tables import ModelBlob, ModelDeployment


@pytest.fixture(scope="module")
def single_c():
    cfg = RunConfig(scenario="single")
    inters, _ = probe_network(cfg, resolve_scenario(cfg))
    return inters[0]


@pytest.fixture
def model_dir(tmp_path, single_c) -> Path:
    return write_model(tmp_path / "m", [single_c])


@pytest.fixture
def registry(engine, tmp_path) -> ModelRegistry:
    return ModelRegistry(engine, tmp_path / "cache")


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_versions_deployments_rollbacks_and_their_history(registry, model_dir, engine):
    v1 = registry.add(model_dir, "alice")
    v2 = registry.add(model_dir, "alice")
    assert (v1.version, v2.version) == ("v1", "v2")
    assert v1.intersections == ["C"] and v1.scenario == "single" and v1.episodes == 1 and v1.registered_by == "alice"
    assert v1.content_sha256 == v2.content_sha256  # the same files, recognisably
    files = sorted(p.name for p in model_dir.iterdir())
    assert _count(engine, ModelBlob.__table__) == len(files)  # ... and stored once
    assert [v.version for v in registry.versions()] == ["v1", "v2"]

    assert registry.deploy("v1", who="alice") == {"C": "v1"}
    assert registry.deploy("v2", who="bob") == {"C": "v2"}
    registry.deploy("v2", who="bob")  # already active there: no new deployment
    assert registry.active() == {"C": "v2"}
    now = registry.active_at("C")
    assert (now.version, now.by, now.how) == ("v2", "bob", "deploy")
    assert len(registry.history("C")) == 2

    assert registry.rollback(who="carol") == {"C": "v1"}
    now = registry.active_at("C")
    assert (now.version, now.by, now.how) == ("v1", "carol", "rollback")
    assert now.since == registry.history("C")[-1].rolled_back_at
    assert registry.rollback(["C"], who="carol") == {"C": None}
    assert registry.active() == {} and registry.active_at("C") is None
    with pytest.raises(RegistryError, match="nothing deployed at C to roll back"):
        registry.rollback(["C"])
    history = registry.history("C")
    assert [(d.version, d.deployed_by, d.rolled_back_by) for d in history] == [("v1", "alice", "carol"),
                                                                              ("v2", "bob", "carol")]
    # a deployment after rollbacks pushes again; rolling it back uncovers nothing rolled back before
    registry.deploy("v1", who="dave")
    assert registry.rollback(who="erin") == {"C": None}

    with pytest.raises(DoesNotFit, match="v1 has no table for X"):
        registry.deploy("v1", ["X"])
    with pytest.raises(UnknownVersion, match=r"no model version 'v9'.*v1, v2"):
        registry.deploy("v9")
    assert _count(engine, ModelDeployment.__table__) == 3


def test_a_registered_version_never_changes_and_its_running_copy_is_checked(registry, model_dir, engine):
    original = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    registry.add(model_dir)
    (model_dir / "meta.json").write_text("{}")  # the source changes afterwards: the version does not
    assert registry.files("v1") == original
    registry.deploy("v1")
    path = Path(registry.resolve("active")["C"])
    assert path.name.startswith("v1-") and path.parent == (registry.cache_dir).resolve()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == original
    assert load_model(path).table_of == {"C": "C"}
    assert registry.resolve("v1") == {"*": str(path)}
    # a copy that was changed (or cut short) is put back from the database when it is used next
    (path / "meta.json").write_text('{"tampered": true}')
    (path / "extra.txt").write_text("x")
    again = Path(registry.resolve("active")["C"])
    assert again == path and {p.name: p.read_bytes() for p in again.iterdir()} == original
    shutil.rmtree(registry.cache_dir)  # the cache is disposable
    assert load_model(Path(registry.resolve("v1")["*"])).meta["scenario"] == "single"


def test_a_version_is_removed_only_where_no_rollback_could_return_to_it(registry, model_dir, tmp_path, engine,
                                                                         single_c):
    """Its files go (those it shares stay), its row and name stay: the history names it, and no later
    version takes the name."""
    other = write_model(tmp_path / "other", [single_c], episodes=5)  # the same tables, another meta.json
    registry.add(model_dir, "alice")
    registry.add(other, "alice")
    blobs = _count(engine, ModelBlob.__table__)
    registry.deploy("v1", who="alice")
    registry.deploy("v2", who="bob")
    cached = Path(registry.resolve("v2")["*"])
    with pytest.raises(InUse, match="v2 is active at C"):
        registry.remove("v2")
    with pytest.raises(InUse, match=r"v1 is deployed under a newer version at C \(a rollback there would return"):
        registry.remove("v1")
    assert registry.rollback(who="carol") == {"C": "v1"}
    done = registry.remove("v2", who="dave")
    assert done.version.removed_by == "dave" and done.version.removed_at is not None
    assert done.freed_bytes == len((other / "meta.json").read_bytes())  # the tables are v1's too
    assert _count(engine, ModelBlob.__table__) == blobs - 1 and not cached.exists()
    assert [v.version for v in registry.versions()] == ["v1"]
    assert [(v.version, v.removed_by) for v in registry.versions(include_removed=True)] == [("v1", None),
                                                                                           ("v2", "dave")]
    with pytest.raises(UnknownVersion, match="'v2' was removed from the registry .* by dave"):
        registry.get("v2")
    assert registry.get("v2", include_removed=True).episodes == 5  # its metadata stays readable
    for refused in (lambda: registry.deploy("v2"), lambda: registry.resolve("v2"), lambda: registry.remove("v2")):
        with pytest.raises(UnknownVersion, match="removed"):
            refused()
    assert [d.version for d in registry.history("C")] == ["v1", "v2"]  # the history is never rewritten
    assert registry.add(other).version == "v3"  # the name is not given again
    # v1 still runs from its own files, shared ones included
    assert load_model(Path(registry.resolve("v1")["*"])).table_of == {"C": "C"}
    # importing a directory that holds the removed files under the removed name brings nothing back
    root = _directory_registry(tmp_path / "dir", {"v2": other}, {})
    report = registry.import_file_registry(root)
    assert report.versions == {} and report.skipped == ["v2: removed from the registry, not imported again"]


def test_what_is_not_a_model_is_refused_and_nothing_is_written(registry, tmp_path, engine):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="no meta.json"):
        registry.add(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(RegistryError, match="not a signalwise Q-table model"):
        registry.add(tmp_path / "other")
    assert registry.versions() == [] and _count(engine, ModelBlob.__table__) == 0


def _directory_registry(root: Path, versions: dict[str, Path], history: dict[str, list[str]]) -> Path:
    """A registry as `signalwise models` kept it in a directory: registry.json, and a copy per version."""
    root.mkdir(parents=True)
    entries = []
    for name, src in versions.items():
        shutil.copytree(src, root / name)
        entries.append({"version": name, "path": str((root / name).resolve()), "scenario": "single",
                        "intersections": ["C"], "episodes": 1, "registered": "2025-01-01T00:00:00", "source": str(src)})
    (root / "registry.json").write_text(json.dumps({"versions": entries, "history": history}))
    return root


def test_a_directory_registry_is_imported_once_with_what_was_active(registry, model_dir, tmp_path, single_c):
    other = write_model(tmp_path / "other", [single_c], episodes=5)
    root = _directory_registry(tmp_path / "dir", {"v1": model_dir, "v2": other}, {"C": ["v1", "v2"], "X": []})
    report = registry.import_file_registry(root, who="import-test")
    assert report.versions == {"v1": "v1", "v2": "v2"} and report.deployments == {"C": ["v1", "v2"]}
    assert registry.active() == {"C": "v2"} and registry.get("v2").episodes == 5
    assert [d.deployed_by for d in registry.history("C")] == ["import-test", "import-test"]
    assert registry.rollback() == {"C": "v1"}  # the directory's stack came along
    # again: the same files under the same names are not added twice, and deployments made since stay
    again = registry.import_file_registry(root)
    assert again.same_as == {"v1": "v1", "v2": "v2"} and [v.version for v in registry.versions()] == ["v1", "v2"]
    assert again.deployments == {} and "C: deployments already in the database" in again.skipped[0]
    assert registry.active() == {"C": "v1"}
    # a name taken by other files: the imported version gets the next number, and its deployments follow it
    third = write_model(tmp_path / "third", [renamed(single_c, "D")], episodes=9)
    root2 = _directory_registry(tmp_path / "dir2", {"v1": third}, {"D": ["v1"]})
    report = registry.import_file_registry(root2)
    assert report.versions == {"v1": "v3"} and registry.active() == {"C": "v1", "D": "v3"}
    # ... and imported again, its files are found under the name they were given (they were added again each time)
    again = registry.import_file_registry(root2)
    assert again.same_as == {"v1": "v3"} and [v.version for v in registry.versions()] == ["v1", "v2", "v3"]


def test_the_configured_directory_registry_is_imported_on_first_use_only_into_an_empty_database(
        engine, model_dir, tmp_path):
    root = _directory_registry(tmp_path / "models" / "registry", {"v1": model_dir}, {"C": ["v1"]})
    first = ModelRegistry(engine, tmp_path / "cache", file_registry=root)
    assert first.active() == {"C": "v1"}  # first use: imported
    assert first.history("C")[0].deployed_by == f"import:{root}"
    first.rollback()
    later = ModelRegistry(engine, tmp_path / "cache", file_registry=root)
    assert later.active() == {} and len(later.versions()) == 1  # the database has versions: nothing imported


def test_a_broken_directory_registry_is_refused_whole(registry, model_dir, tmp_path):
    root = _directory_registry(tmp_path / "dir", {"v1": model_dir}, {"C": ["v1"]})
    (root / "registry.json").write_text("{broken")
    with pytest.raises(RegistryError, match="corrupted registry file"):
        registry.import_file_registry(root)
    root2 = _directory_registry(tmp_path / "dir2", {"v1": model_dir, "v2": model_dir}, {"C": ["v1"]})
    shutil.rmtree(root2 / "v2")
    data = json.loads((root2 / "registry.json").read_text())
    data["versions"][1]["path"] = str(tmp_path / "gone")
    (root2 / "registry.json").write_text(json.dumps(data))
    with pytest.raises(RegistryError, match="no such model directory"):
        registry.import_file_registry(root2)
    assert registry.versions() == [] and registry.active() == {}  # nothing half-imported
    with pytest.raises(RegistryError, match="not a model registry directory"):
        registry.import_file_registry(tmp_path)


def test_content_hash_is_the_hash_of_names_and_file_hashes(registry, model_dir):
    mv = registry.add(model_dir)
    hashes = sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in model_dir.iterdir())
    assert mv.content_sha256 == hashlib.sha256(json.dumps(hashes, separators=(",", ":")).encode()).hexdigest()
