"""`signalwise models import | list | history | show | remove` against the registry in the database (small real
models)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise
from support.models import write_model

from signalwise.envs.episode import probe_network
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _cli(*args, env: dict) -> subprocess.CompletedProcess:
    return signalwise("models", *args, env=env)


def _directory_registry(root: Path, model: Path) -> Path:
    """Two versions of one model, v2 active at C after v1: a registry as `signalwise models` kept it on disk."""
    root.mkdir(parents=True)
    for name in ("v1", "v2"):
        shutil.copytree(model, root / name)
    (root / "registry.json").write_text(json.dumps({
        "versions": [{"version": v, "path": str(root / v)} for v in ("v1", "v2")], "history": {"C": ["v1", "v2"]}}))
    return root


def test_a_directory_registry_is_imported_by_command_and_on_first_use(tmp_path):
    cfg = RunConfig(scenario="single")
    inters, _ = probe_network(cfg, resolve_scenario(cfg))
    root = _directory_registry(tmp_path / "old", write_model(tmp_path / "m", inters))
    env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp_path / "c"),
           "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}
    r = _cli("import", str(root), env=env)
    assert r.returncode == 0, r.stderr
    assert "v1: imported" in r.stdout and "C: v2 active (history v1 -> v2)" in r.stdout
    again = _cli("import", str(root), env=env)
    assert "v1: already registered" in again.stdout and "left out: C: deployments already" in again.stdout
    listing = _cli("list", env=env).stdout
    assert "v2" in listing and "cli:" in listing  # who ran the import
    history = _cli("history", env=env).stdout
    assert history.count("cli:") == 2 and "C" in history
    assert json.loads(_cli("show", "v1", env=env).stdout)["scenario"] == "single"
    bad = _cli("import", str(tmp_path / "m"), env=env)
    assert bad.returncode == 2 and "not a model registry directory (no registry.json)" in bad.stderr
    # v2 is active and v1 lies under it: neither goes; after a rollback v2 does, and v1 runs on
    for version, why in (("v2", "v2 is active at C"), ("v1", "v1 is deployed under a newer version at C")):
        r = _cli("remove", version, env=env)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr
    assert _cli("rollback", env=env).returncode == 0
    r = _cli("remove", "v2", env=env)
    assert r.returncode == 0 and "removed v2 (single): 0 KiB freed" in r.stdout  # v1 holds the same files
    assert " v2 " not in _cli("list", env=env).stdout
    assert "removed" in _cli("list", "--removed", env=env).stdout
    assert json.loads(_cli("show", "v2", env=env).stdout)["removed_by"].startswith("cli:")
    r = _cli("deploy", "v2", env=env)
    assert r.returncode == 2 and "'v2' was removed from the registry" in r.stderr
    # the directory the settings name is imported by itself the first time, into an empty database
    first = {**env, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "SIGNALWISE_MODEL_REGISTRY": str(root)}
    r = _cli("list", env=first)
    assert r.returncode == 0 and "C" in r.stdout and "imported the directory registry" in r.stderr
    assert "import:" in _cli("history", env=first).stdout  # who: the import, naming the directory


def test_a_policy_for_every_signal_says_so_when_added_and_listed(tmp_path):
    """A phase-score model names no signal: it runs at every one, and the registry says that, not ''."""
    from signalwise.control.learning.shipped import shipped_model_path

    env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp_path / "c")}
    p = _cli("add", str(shipped_model_path("corridor")), env=env)
    assert p.returncode == 0, p.stderr
    assert "(corridor, every signal;" in p.stdout
    listed = _cli("list", env=env)
    assert listed.returncode == 0 and "every signal" in listed.stdout


@pytest.mark.slow
def test_run_and_compare_read_the_registry_of_their_own_db(tmp_path):
    """`--db URL` is the database: `ql:@active` resolves in its registry (as `live --db` does), not in the
    configured default's."""
    from signalwise.control.learning.shipped import shipped_model_path

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    env = {k: v for k, v in os.environ.items() if k != "SIGNALWISE_DATABASE_URL"}

    def cli(*args):
        return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)

    unset = ("SIGNALWISE_DATABASE_URL",)
    assert signalwise("models", "add", str(shipped_model_path("single")), "--db", url, unset=unset,
                      cwd=tmp_path).returncode == 0
    assert signalwise("models", "deploy", "v1", "--intersection", "C", "--db", url, unset=unset,
                      cwd=tmp_path).returncode == 0
    p = cli("run", "-s", "single", "-c", "ql:@active", "--duration", "60", "--db", url, "--run-dir", "r")
    assert p.returncode == 0, p.stderr[-2000:]
    config = (tmp_path / "r" / "config.yaml").read_text()
    assert "registry_models" in config and "ops.db" in config
    p = cli("compare", "-s", "single", "--controllers", "fixed,ql:@active", "--seeds", "1", "--duration", "60",
            "--db", url, "--out", "c")
    assert p.returncode == 0, p.stderr[-2000:]
    assert not (tmp_path / "signalwise.db").exists()  # nothing looked in the default database


def test_adding_the_same_files_again_says_which_version_holds_them(tmp_path):
    cfg = RunConfig(scenario="single")
    inters, _ = probe_network(cfg, resolve_scenario(cfg))
    model = write_model(tmp_path / "m", inters)
    env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp_path / "c"),
           "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}
    first = _cli("add", str(model), env=env)
    assert first.returncode == 0 and "registered v1" in first.stdout and "same files" not in first.stdout
    second = _cli("add", str(model), "--again", env=env)  # the same model is not added again unless asked
    assert second.returncode == 0 and "registered v2" in second.stdout
    assert "the same files as v1 (stored once)" in second.stdout


def test_models_show_prefers_the_registered_version_to_a_directory_of_its_name_and_creates_no_database(
        tmp_path, monkeypatch):
    """Inside a directory registry (v1/, v2/ beside registry.json) `models show v1` showed the directory; and a
    mistyped path left an empty signalwise.db in the working directory."""
    cfg = RunConfig(scenario="single")
    inters, _ = probe_network(cfg, resolve_scenario(cfg))
    registered = write_model(tmp_path / "m", inters)
    monkeypatch.chdir(tmp_path)
    env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "SIGNALWISE_MODEL_CACHE": str(tmp_path / "c"),
           "SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")}
    absent = {**env, "SIGNALWISE_DATABASE_URL": "sqlite:///signalwise.db"}
    for args, code in ((["show", "bad/nonexist"], 2), (["show", "v3"], 1), (["history"], 1)):
        r = _cli(*args, env=absent)
        assert r.returncode == code and "Traceback" not in r.stderr, r.stderr
    assert "no such model directory" in _cli("show", "bad/nonexist", env=absent).stderr
    assert "no model registered: no database at signalwise.db" in _cli("list", env=absent).stdout
    assert not (tmp_path / "signalwise.db").exists()
    for args in (["list"], ["show", "v1"], ["history"], ["rollback"]):  # not a URL: one line, no traceback
        r = _cli(*args, "--db", "bogus", env=env)
        assert r.returncode != 0 and "Traceback" not in r.stderr and "error: cannot open database" in r.stderr
    assert _cli("add", str(registered), env=env).returncode == 0
    shutil.copytree(registered, tmp_path / "v1")
    (tmp_path / "v1" / "meta.json").write_text(json.dumps({**json.loads((registered / "meta.json").read_text()),
                                                           "scenario": "elsewhere"}))
    shown = json.loads(_cli("show", "v1", env=env).stdout)
    assert shown["version"] == "v1" and shown["scenario"] == "single" and "path" not in shown
    beside = json.loads(_cli("show", "./v1", env=env).stdout)
    assert beside["path"] == "v1" and beside["scenario"] == "elsewhere"
