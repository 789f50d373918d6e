"""What the image must hold for compose.yaml's services to start and keep their data (no Docker here: the files are
read, and what they would do is checked against the package's own sources).

- every environment variable a signalwise service is given that needs an optional extra
  (`store.redis_check.EXTRA_FOR_VARIABLE`, from which the refusal at start is written) has that extra installed by
  the Dockerfile's `pip install`: compose set SIGNALWISE_REDIS_URL on an image without the redis package, so both
  services refused to start, in a restart loop;
- every volume a signalwise service mounts has its mount point made in the image and given to the image's user
  before `USER` (Docker makes a missing one root's, and the non-root runtime could not write its runs there);
- what a live run writes under its working directory (runs, evidence, camera alerts waiting for the database,
  models) is on a volume.

Not tested here: that Docker really builds the image, and the owner Docker gives a volume's first mount (it copies
the image directory's owner; documented, not run).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import yaml

from signalwise.store.redis_check import EXTRA_FOR_VARIABLE
from signalwise.store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SIGNALWISE_SERVICES = ("runtime", "api")


def _dockerfile_runs() -> list[str]:
    """The Dockerfile's RUN instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [line[4:].strip() for line in text.splitlines() if line.startswith("RUN ")]


def _installed_extras() -> set[str]:
    """The extras of `pip install .[a,b]` (quoted or not) in the Dockerfile."""
    extras: set[str] = set()
    for run in _dockerfile_runs():
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:2] != ["pip", "install"]:
                continue
            for word in words[2:]:
                found = re.fullmatch(r"\.(?:\[([^\]]*)\])?", word)
                if found:
                    extras |= {e.strip() for e in (found.group(1) or "").split(",") if e.strip()}
    return extras


def _user_and_workdir() -> tuple[str, PurePosixPath]:
    text = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", text, re.M)[-1]
    workdir = PurePosixPath(re.findall(r"^WORKDIR (\S+)", text, re.M)[-1])
    return user, workdir


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_extra_a_service_environment_needs_is_installed_in_the_image():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    installed = _installed_extras()
    services = _compose()["services"]
    needed = {}
    for name in SIGNALWISE_SERVICES:
        for variable in services[name]["environment"]:
            if variable in EXTRA_FOR_VARIABLE:
                module, extra = EXTRA_FOR_VARIABLE[variable]
                assert extra in extras, (variable, extra)  # the refusal names an extra that exists
                assert any(re.match(rf"{re.escape(module)}\b", req) for req in extras[extra]), (extra, module)
                needed[variable] = extra
    assert needed, "compose.yaml sets no variable that needs an extra: this test checks nothing"
    missing = {v: e for v, e in needed.items() if e not in installed}
    assert not missing, f"compose.yaml sets {sorted(missing)}, the Dockerfile installs extras {sorted(installed)}"


def test_every_volume_mount_point_is_made_in_the_image_and_owned_by_its_user():
    user, _workdir = _user_and_workdir()
    text = (ROOT / "Dockerfile").read_text()
    before_user = text[:text.index(f"\nUSER {user}")]
    runs_before_user = [r for r in _dockerfile_runs() if r in re.sub(r"\\\n\s*", " ", before_user)]
    made: set[PurePosixPath] = set()
    owned: set[PurePosixPath] = set()
    for run in runs_before_user:
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:1] == ["mkdir"]:
                made |= {PurePosixPath(w) for w in words[1:] if not w.startswith("-")}
            if words[:1] == ["chown"] and any(w.split(":")[0] == user for w in words[1:]):
                recursive = "-R" in words
                for w in words[1:]:
                    if w.startswith("/"):
                        owned.add(PurePosixPath(w) / ("**" if recursive else ""))
    mounts = {PurePosixPath(v.split(":")[1]) for name in SIGNALWISE_SERVICES
              for v in _compose()["services"][name].get("volumes", []) if not v.startswith(".")}
    assert mounts
    for target in mounts:
        assert target in made, f"{target}: mounted by compose.yaml, not made in the image (Docker makes it root's)"
        assert any(target == o or (o.name == "**" and target.is_relative_to(o.parent)) for o in owned), \
            f"{target}: not given to {user} before USER"


def test_what_a_live_run_writes_under_its_working_directory_is_on_a_volume():
    """Relative paths resolve under the image's WORKDIR; the runtime's run directories (`--out` default `runs`)
    and the directories of the settings it writes into must outlive a recreated container."""
    _user, workdir = _user_and_workdir()
    defaults = Settings.model_fields
    written = [PurePosixPath("runs")] + [PurePosixPath(str(defaults[name].default)) for name in
                                         ("evidence_dir", "camera_alerts_buffer_dir", "model_registry", "model_cache",
                                          "ml_jobs_dir")]
    runtime = _compose()["services"]["runtime"]
    mounted = [PurePosixPath(v.split(":")[1]) for v in runtime["volumes"]]
    declared = set(_compose()["volumes"])
    assert {v.split(":")[0] for v in runtime["volumes"]} <= declared
    for path in written:
        assert not path.is_absolute()
        assert any((workdir / path).is_relative_to(m) for m in mounted), f"{workdir / path} is on no volume"
