"""What made a result is kept with it: run.json, a comparison's summary.json and report.md (and so `evaluate`'s)
name signalwise's version and git commit (with uncommitted changes or not), SUMO's and Python's versions, the
command line, and for a learned controller the model directory it ran with its digest, the one the model registry
gives it. Real SUMO runs of the smallest scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from support.cli import in_a_process

import signalwise
from signalwise.control.learning.shipped import shipped_model_path

ROOT = Path(__file__).resolve().parents[2]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("made") / "cmp"
    # a bare `ql`: the report said `ql`, not which model ran
    r = in_a_process("compare", "-s", "single", "-c", "fixed,ql", "--seeds", "1", "--duration", "60",
                     "--workers", "2", "--out", str(out), cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return out


def test_run_json_and_summary_name_the_software_and_the_command(compared):
    summary = json.loads((compared / "summary.json").read_text())
    made = summary["provenance"]
    assert made["signalwise"] == signalwise.__version__
    assert made["commit"] == git("rev-parse", "HEAD").strip()  # this checkout
    tracked_changes = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    assert made["dirty"] is True if tracked_changes else isinstance(made["dirty"], bool)
    assert made["sumo"] == version("eclipse-sumo") and made["python"] == ".".join(map(str, sys.version_info[:3]))
    assert made["command"] == f"signalwise compare -s single -c fixed,ql --seeds 1 --duration 60 --workers 2 --out {compared}"
    assert made["cwd"] == str(compared.parent)
    for name in ("fixed-s1", "ql-s1"):
        run = json.loads((compared / name / "run.json").read_text())
        assert {k: run["provenance"][k] for k in ("signalwise", "commit", "dirty", "sumo", "python")} == \
            {k: made[k] for k in ("signalwise", "commit", "dirty", "sumo", "python")}
    ql_run = json.loads((compared / "ql-s1" / "run.json").read_text())
    assert ql_run["models"] == {"ql": made["models"]["ql"]} and "models" not in \
        json.loads((compared / "fixed-s1" / "run.json").read_text())


def test_the_report_names_the_software_the_command_and_the_model_with_the_registrys_digest(compared, tmp_path):
    from signalwise.store.engine import get_engine
    from signalwise.store.model_registry import ModelRegistry

    model = shipped_model_path("single")
    (entry,) = json.loads((compared / "summary.json").read_text())["provenance"]["models"]["ql"]
    registered = ModelRegistry(get_engine(f"sqlite:///{tmp_path / 'r.db'}"), cache_dir=tmp_path / "cache").add(model)
    assert entry == {"path": str(model.resolve()), "model_id": registered.model_id,
                     "sha256": registered.content_sha256}
    report = (compared / "report.md").read_text()
    made = json.loads((compared / "summary.json").read_text())["provenance"]
    dirty = ", with uncommitted changes" if made["dirty"] else ""
    assert (f"| software | signalwise {signalwise.__version__} (commit {made['commit'][:12]}{dirty}), SUMO "
            f"{version('eclipse-sumo')}, Python {made['python']} |") in report
    assert (f"| model of ql | {model.resolve()} (model id {registered.model_id}; files SHA-256 "
            f"{registered.content_sha256}) |") in report
    assert f"| command | `{made['command']}` in {compared.parent} |" in report


def test_without_git_the_commit_is_read_from_the_repository_and_its_changes_are_unknown(tmp_path):
    """A machine without `git` (or with a checkout git refuses): the commit from .git's files, `dirty` unknown."""
    code = "import json; from signalwise.provenance import software; print(json.dumps(software()))"
    env = {**os.environ, "PATH": str(tmp_path)}  # no git on this PATH
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    made = json.loads(done.stdout)
    assert made["commit"] == git("rev-parse", "HEAD").strip() and made["dirty"] is None
    assert made["signalwise"] == signalwise.__version__ and made["sumo"] == version("eclipse-sumo")
