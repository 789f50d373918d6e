"""What made a result: the software (signalwise's version, and its git commit when it runs from a checkout, with
whether the checkout has changes; SUMO's and Python's versions), the command line, and the identity of a model.

A model's identity (`model_id`) is the SHA-256 of what decides its behaviour and nothing else: a tabular model's
tables (`q-*.npy`, `n-*.npy`: values and visit counts, which set the confidence) with the encoding, layouts and
run options its controller reads (decision period, guide and guide threshold); a phase-score model's policy
(features, weights, per-signal weights, measure, zones, shared lanes, decision period). Not its metadata's times,
paths, wall time, training record or evaluations: two trainings that make the same weights make the same id,
and an evaluation kept in `meta.json` leaves it as it was. run.json, a comparison's or an evaluation's
summary.json and report.md, and the model registry all compute it here. The digest of every file
(`model_digest`, the registry's `content_sha256`) is kept beside it: it names the files exactly as they were.

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
import re
import shlex
import subprocess
import sys
from pathlib import Path

from . import __version__
from .core.redaction import redacted

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
    """The command as typed, quoted for a shell (the program by its name: `signalwise compare ...`), its secrets
    written `***` (`redacted_argv`): run.json and summaries are copied and attached to reports."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(redacted_argv(argv))


#: an option whose value is a secret itself (`--api-key K`, `--token=T`, `--password P`); `--mqtt-key-file` names
#: a file, not a secret, and stays
_SECRET_OPTION = re.compile(r"^--?[\w-]*(?:key|token|secret|password|passwd|pass|pwd|credential)s?$", re.IGNORECASE)


def redacted_argv(argv: list[str]) -> list[str]:
    """`argv` with each secret written `***`: the value of an option named for one (`--api-key K`,
    `--token=T`) whole, and in every other argument what `core.redaction.redacted` finds (the rule every place
    that shows a URL follows: a URL's password, a `password=`/`token=` pair, an `Authorization` header's
    credentials, a JWT, an API key's secret)."""
    out: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next:
            out.append("***")
            secret_next = False
            continue
        name, eq, _value = arg.partition("=")
        if arg.startswith("-") and _SECRET_OPTION.match(name):
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(arg)
                secret_next = True
            continue
        out.append(redacted(arg))
    return out


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
    names with each file's SHA-256), `meta.json` included, so it changes with every evaluation kept there: the
    files as they were, where `model_id` is the model; None when there is no such directory."""
    path = Path(path)
    if not path.is_dir():
        return None
    return manifest_sha256(_file_hashes(path))


def manifest_sha256(file_sha256: dict[str, str]) -> str:
    """SHA-256 of a file list: the sorted (relative name, the file's SHA-256) pairs, as the registry's
    `content_sha256` and `model_digest` take it."""
    return hashlib.sha256(json.dumps(sorted(file_sha256.items()), separators=(",", ":")).encode()).hexdigest()


#: what `model_id` covers, and how: part of what is hashed, so an id computed another way never equals one of these
MODEL_ID_SCHEME = 1
#: the metadata file of a model directory: the only file its id does not hash whole
META_FILE = "meta.json"


def model_id(meta: dict, file_sha256: dict[str, str]) -> str | None:
    """The identity of a model: SHA-256 of what decides its behaviour (the module's docstring), from its metadata
    (`meta.json` as a mapping) and the SHA-256 of each of its files by relative name (`meta.json`'s own is left
    out); None for metadata that is no mapping."""
    if not isinstance(meta, dict):
        return None
    files = {name: digest for name, digest in file_sha256.items() if name != META_FILE}
    agent = meta.get("agent") or "tabular-q"  # tabular models from before the label have none
    what: dict = {"scheme": MODEL_ID_SCHEME, "format": meta.get("format"),
                  "format_version": meta.get("format_version"), "agent": agent, "files": dict(sorted(files.items()))}
    if agent == "phase-score":
        what["policy"] = _policy_decides(meta.get("policy"))
    else:
        what.update(_table_decides(meta))
    text = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _policy_decides(policy: object) -> object:
    """A phase-score policy as its controller reads it, each option left out at the value it runs with
    (`control.learning.controller.controller_from_model`), numbers as floats: the same policy written either way
    is the same."""
    if not isinstance(policy, dict):
        return policy
    out = dict(policy)
    out["weights"] = _numbers(policy.get("weights"))
    out["measure"] = policy.get("measure", "count")
    out["period_s"] = _number(policy.get("period_s", 5.0))
    out["zone_m"] = _number(policy.get("zone_m") or 0.0)
    out["shared_lanes"] = str(policy.get("shared_lanes", "skip"))
    signal_weights = policy.get("signal_weights") or {}
    out["signal_weights"] = {str(k): _numbers(v) for k, v in sorted(signal_weights.items())} \
        if isinstance(signal_weights, dict) else signal_weights
    return out


def _number(value: object) -> object:
    """A number as a float (1 and 1.0 are one weight); anything else as it is."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _numbers(values: object) -> object:
    return [_number(v) for v in values] if isinstance(values, list | tuple) else values


def _table_decides(meta: dict) -> dict:
    """What of a tabular model's metadata its controller reads: the state encoding, each table's shape, which
    intersection runs which table on which layout, the decision period and the guide with its threshold (the
    validated one of `--guide-visits auto`, `deployment.guide_visits`)."""
    hyper = meta.get("hyperparameters") if isinstance(meta.get("hyperparameters"), dict) else {}
    features = meta.get("features") if isinstance(meta.get("features"), dict) else {}
    deployment = meta.get("deployment") if isinstance(meta.get("deployment"), dict) else {}
    guided = hyper.get("guide_mode") == "each-action" and hyper.get("guide") == "max-pressure"
    visits = deployment.get("guide_visits")
    visits = visits if visits is not None else hyper.get("guide_visits", 3)
    tables = meta.get("tables") if isinstance(meta.get("tables"), dict) else {}
    inters = meta.get("intersections") if isinstance(meta.get("intersections"), dict) else {}
    return {
        "features": {"actions": features.get("actions", "phases"), "state": features.get("state", "lane-groups"),
                     "time_edges_s": features.get("time_edges_s"), "queue_edges": features.get("queue_edges")},
        "tables": {name: {"encoding": t.get("encoding"), "n_actions": t.get("n_actions")} if isinstance(t, dict)
                   else t for name, t in sorted(tables.items())},
        "intersections": {i: {"table": v.get("table"), "layout": v.get("layout")} if isinstance(v, dict) else v
                          for i, v in sorted(inters.items())},
        "period_s": _number(hyper.get("period_s", 5.0)),
        "guide": "max-pressure" if guided else "none",
        "guide_visits": _number(visits) if guided else None,
    }


def model_dir_id(path: Path | str) -> str | None:
    """The identity (`model_id`) of a model directory; None when there is no such directory or its meta.json does
    not read as a mapping."""
    return _dir_id_and_digest(Path(path))[0]


def _dir_id_and_digest(path: Path) -> tuple[str | None, str | None]:
    """(`model_dir_id`, `model_digest`) of a model directory, its files read and hashed once for both."""
    if not path.is_dir():
        return None, None
    hashes = _file_hashes(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None, manifest_sha256(hashes)
    return model_id(meta, hashes), manifest_sha256(hashes)


def _file_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of each file of a model directory by relative name, as the registry stores them (temporary files of
    an unfinished write left out)."""
    return {f.relative_to(path).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*"))
            if f.is_file() and not f.name.endswith(".tmp") and ".tmp." not in f.name}


def models_run(controllers: list[str], controller_options: dict) -> dict[str, list[dict]]:
    """Per learned controller of `controllers`, the model directories it runs with their identity and digest
    (`[{"path", "model_id", "sha256"}]`): `ql` the shipped or active model its options name, `ql:PATH` that
    directory, `ql:@REF` the registry's directories for it."""
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
        out[spec] = []
        for p in paths:
            ident, digest = _dir_id_and_digest(Path(p))
            out[spec].append({"path": str(Path(p).resolve()), "model_id": ident, "sha256": digest})
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
