"""What made a result: the software (signalwise's version, and its git commit when it runs from a checkout, with
whether the checkout has changes; SUMO's and Python's versions), the command line, and the digest of a model.

A figure is reproduced with the code and the simulator that made it: run.json (a batch run's and a live run's), a
comparison's summary.json and report.md, an evaluation's record in its model's meta.json, and `bench/resco.py`'s
cells keep this. The software is read once per process and cached: `git` runs
twice (about 10 ms) in each process that asks, never per step. Each worker process (a comparison's run, a
training episode, a bench cell) asks for itself rather than trusting an answer handed down: it imports the code on
disk when it starts, which a checkout changed since its parent started would make another commit. A missing `git`,
or a tree that is no checkout, leaves the commit to what `.git` says on its own (and its changes unknown), or
unknown.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from . import __version__

#: the repository a checkout runs from: src/signalwise/ is two levels below it
_CHECKOUT = Path(__file__).resolve().parent.parent.parent
#: untracked files here are code that runs (elsewhere, a run's own outputs left in the checkout are not)
_CODE_DIRS = ("src/", "bench/")
#: seconds a `git` call may take before the commit is read from .git's files and the changes are unknown
_GIT_TIMEOUT_S = 5.0


@functools.cache
def software() -> dict:
    """{"signalwise", "commit", "dirty", "sumo", "python"}: `commit` None outside a checkout (an installed
    package), `dirty` None where it cannot be told (no `git`)."""
    commit, dirty = _git_state()
    info = {"signalwise": __version__, "commit": commit, "dirty": dirty,
            "sumo": _sumo_version(), "python": platform.python_version()}
    return info


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed, quoted for a shell (the program by its name: `signalwise compare ...`)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def provenance(argv: list[str] | None = None) -> dict:
    """The software, the command line and the directory it ran in (its relative paths are from there)."""
    return {**software(), "command": command_line(argv), "cwd": os.getcwd()}


def software_text(info: dict) -> str:
    """`signalwise 0.1.0 (commit 1a2b3c4d5e6f, with uncommitted changes), SUMO 1.28.0, Python 3.11.2`."""
    commit = info.get("commit")
    where = ""
    if commit:
        state = {True: ", with uncommitted changes", False: "", None: ", changes unknown"}[info.get("dirty")]
        where = f" (commit {commit[:12]}{state})"
    return (f"signalwise {info.get('signalwise') or 'unknown'}{where}, SUMO {info.get('sumo') or 'unknown'}, "
            f"Python {info.get('python') or 'unknown'}")


def model_digest(path: Path | str) -> str | None:
    """SHA-256 of a model directory's files as the model registry digests them (`content_sha256`: the sorted
    names with each file's SHA-256), so a report's digest finds the registered version; None when there is no
    such directory."""
    path = Path(path)
    if not path.is_dir():
        return None
    hashes = {f.relative_to(path).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
              for f in sorted(path.rglob("*"))
              if f.is_file() and not f.name.endswith(".tmp") and ".tmp." not in f.name}
    return hashlib.sha256(json.dumps(sorted(hashes.items()), separators=(",", ":")).encode()).hexdigest()


def models_run(controllers: list[str], controller_options: dict) -> dict[str, list[dict]]:
    """Per learned controller of `controllers`, the model directories it runs with their digests
    (`[{"path", "sha256"}]`): `ql` the shipped or active model its options name, `ql:PATH` that directory,
    `ql:@REF` the registry's directories for it."""
    out: dict[str, list[dict]] = {}
    for spec in controllers:
        kind, _, arg = spec.partition(":")
        if kind != "ql":
            continue
        arg = arg.partition("?")[0]
        if arg.startswith("@"):
            resolved = (controller_options.get("registry_models") or {}).get(arg[1:]) or {}
            paths = sorted(set(resolved.values())) if isinstance(resolved, dict) else []
        else:
            model = arg or controller_options.get("model")
            paths = [model] if model else []
        out[spec] = [{"path": str(Path(p).resolve()), "sha256": model_digest(p)} for p in paths]
    return out


def _sumo_version() -> str | None:
    """The version of the SUMO runs use: libsumo's when the process loaded it, else the `eclipse-sumo` wheel's
    (from its dist-info's name beside the `sumo` package: `importlib.metadata` reads every installed package's
    metadata to find one, tens of milliseconds)."""
    loaded = sys.modules.get("libsumo")
    if isinstance(getattr(loaded, "__version__", None), str):
        return loaded.__version__
    import importlib.util

    try:
        spec = importlib.util.find_spec("sumo")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        site = Path(spec.origin).parent.parent
        with contextlib.suppress(OSError):
            for name in os.listdir(site):
                if name.startswith("eclipse_sumo-") and name.endswith(".dist-info"):
                    return name[len("eclipse_sumo-"):-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("eclipse-sumo", "libsumo"):
        with contextlib.suppress(PackageNotFoundError):
            return version(dist)
    return None


def _git_state() -> tuple[str | None, bool | None]:
    """(commit, uncommitted changes) of the checkout this package runs from; (None, None) outside one."""
    if not ((_CHECKOUT / ".git").exists() and (_CHECKOUT / "pyproject.toml").is_file()):
        return None, None
    try:
        commit = _git("rev-parse", "HEAD").strip() or None
        changes = _git("status", "--porcelain", "--untracked-files=normal").splitlines()
    except (OSError, subprocess.SubprocessError):  # no git, a checkout git refuses (another owner), too slow
        return _head_from_files(_CHECKOUT / ".git"), None
    dirty = any(not line.startswith("??") or line[3:].startswith(_CODE_DIRS) for line in changes if line.strip())
    return commit, dirty


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True, text=True, check=True,
                          timeout=_GIT_TIMEOUT_S, stdin=subprocess.DEVNULL).stdout


def _head_from_files(git_dir: Path) -> str | None:
    """The commit HEAD names, read from .git's own files (HEAD, the branch's ref or packed-refs), for a machine
    without `git`; None when they do not say (a worktree's .git file, a damaged repository)."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        loose = git_dir / ref
        if loose.is_file():
            return loose.read_text().strip() or None
        for line in (git_dir / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None
