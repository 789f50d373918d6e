"""A dense numpy Q-table, mixed-radix state indices, and its durable artifact.

A state is a tuple of small integers (digits), each below its radix:
current phase, time-in-phase bucket, a queue level per phase... The
`StateEncoding` turns the digits into one integer index (mixed radix,
first digit most significant), so a lookup is one row of a dense
`(n_states, n_actions)` float32 array: O(1), no hashing, no dict.

Why numpy and not a dict of states: a dict costs ~100 bytes per entry and a
hash per lookup; the dense table costs 4 bytes per value and lets the table
be memory-mapped from disk, so a large model loads in milliseconds without
being read (pages come in as states are visited).

An artifact is a directory:

    meta.json          format + version, scenario, intersections and their
                       layouts, encoding, hyperparameters, training seeds,
                       episodes, evaluation results, package version, created
    q-<table>.npy      action values, float32 (n_states, n_actions)
    n-<table>.npy      visit counts, uint32 (n_states, n_actions)

`meta.json` is written last (after the tables, via a temporary name and a
rename), so a directory with a readable meta.json is complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import __version__
from ..base import ControllerUnavailable

FORMAT = "signalwise.qtable"
FORMAT_VERSION = 1


class ModelError(ControllerUnavailable):
    """A model artifact is missing, corrupted, or made for something else. One line, for people."""


@dataclass(frozen=True)
class StateEncoding:
    """Mixed-radix encoding of a state made of named digits."""

    names: tuple[str, ...]
    radices: tuple[int, ...]
    strides: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(self.names) != len(self.radices):
            raise ValueError("one radix per digit name")
        if any(r < 1 for r in self.radices):
            raise ValueError(f"radices must be >= 1, got {self.radices}")
        strides, s = [], 1
        for r in reversed(self.radices):
            strides.append(s)
            s *= r
        object.__setattr__(self, "strides", tuple(reversed(strides)))

    @property
    def n_states(self) -> int:
        return int(np.prod(self.radices, dtype=np.int64)) if self.radices else 1

    def encode(self, digits: Sequence[int]) -> int:
        """Digits -> index. Raises ValueError on a digit outside its radix (a bug, not data)."""
        idx = 0
        for d, r, s in zip(digits, self.radices, self.strides, strict=True):
            if not 0 <= d < r:
                raise ValueError(f"digit {d} outside radix {r}")
            idx += d * s
        return idx

    def decode(self, index: int) -> tuple[int, ...]:
        if not 0 <= index < self.n_states:
            raise ValueError(f"state index {index} outside 0..{self.n_states - 1}")
        out = []
        for r, s in zip(self.radices, self.strides, strict=True):
            out.append((index // s) % r)
        return tuple(out)

    def to_json(self) -> dict:
        return {"names": list(self.names), "radices": list(self.radices)}

    @classmethod
    def from_json(cls, data: dict) -> StateEncoding:
        return cls(tuple(data["names"]), tuple(int(r) for r in data["radices"]))


class QTable:
    """Action values and visit counts of one encoding, dense.

    `q[s, a]` starts at 0. Rewards are negative (costs), so an action never
    tried looks optimistic while training, which explores; the controller
    only trusts actions that were actually visited.
    """

    def __init__(self, encoding: StateEncoding, n_actions: int, q: np.ndarray | None = None,
                 visits: np.ndarray | None = None):
        self.encoding = encoding
        self.n_actions = int(n_actions)
        shape = (encoding.n_states, self.n_actions)
        self.q = np.zeros(shape, np.float32) if q is None else q
        self.visits = np.zeros(shape, np.uint32) if visits is None else visits
        if self.q.shape != shape or self.visits.shape != shape:
            raise ModelError(f"table shape {self.q.shape}/{self.visits.shape} does not match encoding {shape}")

    # -- O(1) access --------------------------------------------------------------
    def values(self, state: int) -> np.ndarray:
        return self.q[state]

    def best_action(self, state: int) -> int:
        return int(self.q[state].argmax())

    def update(self, state: int, action: int, target: float, alpha: float, count: bool = True) -> float:
        """Move q[state, action] toward `target`; returns the TD error before the move.

        `count=False` for replayed transitions: visits count real experience only
        (the controller's confidence rests on them).
        """
        row = self.q[state]
        td = target - float(row[action])
        row[action] += alpha * td
        if count:
            self.visits[state, action] += 1
        return td

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes + self.visits.nbytes)

    def writable(self) -> QTable:
        """An in-memory copy that can be trained (memory-mapped tables are read-only)."""
        return QTable(self.encoding, self.n_actions, np.array(self.q, np.float32), np.array(self.visits, np.uint32))


# ---------------------------------------------------------------------------
# The artifact.
# ---------------------------------------------------------------------------


def layout_fingerprint(layout: dict) -> str:
    """A short stable hash of an intersection layout (phases and the lanes they serve)."""
    text = json.dumps(layout, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Model:
    """A loaded artifact: tables by name, which intersection uses which table, and the metadata."""

    path: Path | None
    tables: dict[str, QTable]
    table_of: dict[str, str]  # intersection id -> table name
    layouts: dict[str, dict]  # intersection id -> layout (what the encoding was built from)
    meta: dict

    def table_for(self, intersection_id: str) -> QTable:
        name = self.table_of.get(intersection_id)
        if name is None:
            raise ModelError(f"{self.path}: no table for intersection {intersection_id!r} "
                             f"(the model knows {', '.join(sorted(self.table_of)) or 'none'})")
        return self.tables[name]

    def check_layout(self, intersection_id: str, layout: dict) -> None:
        """Fail clearly when the intersection is not the one the model was trained for."""
        known = self.layouts.get(intersection_id)
        if known is None:
            raise ModelError(f"{self.path}: model was trained for {', '.join(sorted(self.layouts))}, "
                             f"not intersection {intersection_id!r}")
        if layout_fingerprint(known) != layout_fingerprint(layout):
            diff = [k for k in sorted(set(known) | set(layout)) if known.get(k) != layout.get(k)]
            raise ModelError(f"{self.path}: intersection {intersection_id!r} has another layout than the one the "
                             f"model was trained for (differs in: {', '.join(diff)})")


def save_model(path: Path, model: Model) -> Path:
    """Write the artifact directory; meta.json last so a partial write is never taken for a model."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta_file = path / "meta.json"
    if meta_file.exists():
        meta_file.unlink()  # the directory is incomplete until the new meta lands
    tables_meta = {}
    for name, t in model.tables.items():
        _save_npy(path / f"q-{name}.npy", np.ascontiguousarray(t.q, np.float32))
        _save_npy(path / f"n-{name}.npy", np.ascontiguousarray(t.visits, np.uint32))
        tables_meta[name] = {"encoding": t.encoding.to_json(), "n_actions": t.n_actions,
                             "states_visited": int((t.visits.sum(axis=1) > 0).sum()),
                             "bytes": t.nbytes}
    meta = dict(model.meta)
    meta.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "signalwise": __version__,
        "created": meta.get("created") or dt.datetime.now().isoformat(timespec="seconds"),
        "tables": tables_meta,
        "intersections": {i: {"table": model.table_of[i], "layout": model.layouts[i],
                              "layout_fingerprint": layout_fingerprint(model.layouts[i])}
                          for i in sorted(model.table_of)},
    })
    tmp = path / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, meta_file)
    model.path = path
    model.meta = meta
    return path


def load_model(path: Path, mmap: bool = True) -> Model:
    """Read an artifact; tables are memory-mapped read-only unless `mmap=False`. Raises ModelError."""
    path = Path(path)
    meta_file = path / "meta.json"
    if not path.exists():
        raise ModelError(f"{path}: no such model{_no_model_yet(path)}")
    if not meta_file.is_file():
        inside = path / "model"  # a training's --out holds its model in model/
        raise ModelError(f"{path}: not a model (no meta.json; "
                         + (f"did you mean {inside}, the model a training writes there?)" if (inside / "meta.json").is_file()
                            else "an interrupted save?)"))
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{meta_file}: unreadable model metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{meta_file}: not a signalwise Q-table model")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{meta_file}: model format version {meta.get('format_version')} is not supported "
                         f"(this signalwise reads version {FORMAT_VERSION})")
    try:
        tables = {}
        for name, tm in meta["tables"].items():
            enc = StateEncoding.from_json(tm["encoding"])
            q = _load_npy(path / f"q-{name}.npy", mmap, np.float32)
            n = _load_npy(path / f"n-{name}.npy", mmap, np.uint32)
            tables[name] = QTable(enc, int(tm["n_actions"]), q, n)
        table_of = {i: v["table"] for i, v in meta["intersections"].items()}
        layouts = {i: v["layout"] for i, v in meta["intersections"].items()}
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # AttributeError: a list where a mapping goes
        raise ModelError(f"{meta_file}: incomplete model metadata ({type(exc).__name__}: {exc})") from None
    for i, name in table_of.items():
        if name not in tables:
            raise ModelError(f"{meta_file}: intersection {i!r} refers to missing table {name!r}")
    return Model(path, tables, table_of, layouts, meta)


def _save_npy(file: Path, arr: np.ndarray) -> None:
    tmp = file.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, file)


def _load_npy(file: Path, mmap: bool, dtype) -> np.ndarray:
    if not file.is_file():
        raise ModelError(f"{file}: table file missing")
    try:
        arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{file}: corrupted table ({type(exc).__name__})") from None
    if arr.dtype != dtype or arr.ndim != 2:
        raise ModelError(f"{file}: corrupted table (dtype {arr.dtype}, {arr.ndim} dimensions)")
    return arr


# ---------------------------------------------------------------------------
# What a model's meta.json says of the conditions it was made under
# ---------------------------------------------------------------------------


def unfinished(meta: dict, path: Path | None = None) -> str | None:
    """Why a model is an unfinished training's, in words (`... is a checkpoint of an unfinished training: 18 of
    the 30 episodes asked`); None for a finished one, or one that does not say.

    A tabular model records the episodes it holds and those its training asked for (`training.episodes`,
    `training.episodes_asked`): fewer is a checkpoint (`OUT/checkpoints/ep-N`). A model written before it recorded
    the episodes asked is read against the training state beside it (`path`'s parent's `train_state.json`): an
    `OUT/model` an interrupted training left, which such trainings installed after every round."""
    training = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(training, dict):
        return None
    done, asked = training.get("episodes"), training.get("episodes_asked")
    where = "a checkpoint of an unfinished training"
    if asked is None and path is not None and meta.get("agent") in (None, "tabular-q"):
        try:
            state = json.loads((Path(path).parent / "train_state.json").read_text())
            asked = state["config"]["episodes"]
            where = f"the model an interrupted training left (its train_state.json in {Path(path).parent})"
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (done, asked)) or done >= asked:
        return None
    return f"{where}: {done} of the {asked} episodes asked"


def _no_model_yet(path: Path) -> str:
    """What a training directory holds instead of the model `path` names (its `model/`): a training or a search
    that has not finished, and how to finish it; "" when there is none."""
    if path.name != "model":
        return ""
    out = path.parent
    try:
        state = json.loads((out / "train_state.json").read_text())
        done, asked = int(state["episodes_done"]), int(state["config"]["episodes"])
        return (f" yet: the training in {out} stopped after {done} of {asked} episodes (its checkpoints are in "
                f"{out / 'checkpoints'}); `signalwise train --resume --out {out} --episodes {asked}` finishes it")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    if any(out.glob("guide-*/train_state.json")):
        return (f" yet: the training in {out} (--guide-visits auto) has not finished; the command that started it, "
                "with --resume, goes on from its last checkpoints")
    if (out / "search_state.pkl").is_file() or (out / "search_config.json").is_file():
        return (f" yet: the phase-score search in {out} has not finished; the command that started it, with "
                "--resume, goes on from its last generation")
    return ""


def demand_record(route_files: Sequence[Path], scale: float = 1.0) -> dict:
    """The demand a run drives: a digest of its route files' contents (in the order given) and SUMO's --scale.

    Kept in a model's meta.json (`training.demand`) and in each evaluation, so a model run on other traffic than
    it learned on can say so: the network's name alone does not change when its route file is rewritten."""
    digest = hashlib.sha256()
    for f in route_files:
        try:
            digest.update(Path(f).read_bytes())
        except OSError:
            digest.update(f"unreadable:{f}".encode())
        digest.update(b"\0")
    return {"routes_sha256": digest.hexdigest()[:16], "route_files": [Path(f).name for f in route_files],
            "scale": float(scale)}


def demand_change(trained: object, now: dict) -> str | None:
    """How the demand `now` (a `demand_record`) differs from the one a model trained on (its meta.json's
    `training.demand`), in words; None when it does not, or the model records none (one made before it did)."""
    if not isinstance(trained, dict) or not trained.get("routes_sha256"):
        return None
    said = []
    if trained["routes_sha256"] != now["routes_sha256"]:
        said.append(f"other route files than it trained on ({', '.join(now['route_files']) or 'none'}: digest "
                    f"{now['routes_sha256']}, not {trained['routes_sha256']})")
    scales = trained.get("scales") or [trained.get("scale", 1.0)]
    if now["scale"] not in scales:
        said.append(f"demand ×{now['scale']:g}, where it trained on ×{'/'.join(f'{s:g}' for s in scales)}")
    return "; ".join(said) or None


def used_seeds(meta: dict) -> set[int]:
    """Every SUMO seed the model's making saw: training, validation (`--guide-visits auto`, a policy search) and
    the validation that chose among `--restarts` (the first search's seeds, when a later search won)."""
    selection = meta.get("selection") or {}
    return (set((meta.get("training") or {}).get("seeds") or []) | set(selection.get("seeds") or [])
            | set((selection.get("restarts") or {}).get("seeds") or []))


def trained_duration_s(meta: dict) -> float | None:
    """The simulated seconds of the model's training episodes: the --duration that set them, else the window they
    covered (`training.window_s`, [begin, end] s: the network's whole one); None for a model trained before its
    window was recorded, whose episodes' length is not known."""
    training = meta.get("training") or {}
    value = training.get("duration_s", (training.get("config") or {}).get("duration_s"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    window = training.get("window_s")
    if isinstance(window, list) and len(window) == 2 and all(isinstance(t, (int, float)) for t in window):
        return float(window[1]) - float(window[0])
    return None
