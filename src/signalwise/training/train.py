"""Training: episodes of the real run loop (shield included) with a controller that learns online.

Episodes run in rounds of `batch`. Every episode of a round starts from the
same snapshot of the tables and runs in its own worker process (libsumo
allows one simulation per process; `spawn` + `max_tasks_per_child=1`, as
`runtime/compare.py`). After the round the workers' tables are merged: for
every (state, action) the changes of the workers that touched it are
averaged, weighted by their new visits + 1, and visits add up. With
`batch=1` this is plain sequential Q-learning.

Determinism: episode `e` simulates SUMO seed `training_seed(seed, e)` and
draws its exploration from a generator seeded by (seed, e, intersection),
the rounds are fixed by `batch` (not by how many workers run them) and the
merge goes in episode order, so the same seed and batch give the same model
whatever `--workers` is, and `--resume` continues exactly.

Where a round's episodes run is an executor (`executors.py`): local worker
processes, or Ray tasks with `ray_address` (`--ray`); both return the same
dicts in episode order, so the model does not depend on it.

The rounds write checkpoints (`OUT/checkpoints/ep-NNNNN`), each a model whose
`meta.json` says how many episodes it holds of how many were asked
(`training.episodes`, `training.episodes_asked`); the next round starts from
the last one. `OUT/model` is installed only when the training has run every
episode asked: an interrupted training leaves its checkpoints and
`train_state.json` for `--resume`, never a model that looks finished (one
installed by an earlier, finished session stays as it was until this one
ends).

Every episode is a whole run through `execute_run`: its event log is audited
by the independent checker, and the violations are reported per episode. It
records what training reads and no more (`record: lean`): the trips for the
delay, the signal events and states for the audit; the rewards come from the
controllers' own observations.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..control.learning.agent import Hyper
from ..control.learning.controller import TABULAR, TrainingSession
from ..control.learning.qtable import (
    Model,
    ModelError,
    QTable,
    StateEncoding,
    demand_record,
    load_model,
    save_model,
    used_seeds,
)
from ..core.seeds import training_seed
from .executors import EpisodeExecutor, make_executor

CHECKPOINTS_KEPT = 3


@dataclass
class TrainConfig:
    scenario: str = "single"
    episodes: int = 40
    seed: int = 1
    workers: int = 2
    batch: int = 2
    out: Path = Path("models/train")
    duration_s: float | None = None
    shared: bool = False  # one table for all intersections with the same encoding
    hyper: Hyper = field(default_factory=Hyper)
    # StateFeatures keywords. Default: learn when to end a green (hold / hand over to
    # max-pressure's pick) from the compact state; see features.py for why.
    features: dict = field(default_factory=lambda: {"actions": "switch", "state": "compact"})
    #: a user's network instead of `scenario` (as `signalwise run --sumocfg / --net --routes`)
    sumocfg: Path | None = None
    net: Path | None = None
    routes: list[Path] = field(default_factory=list)
    ray_address: str | None = None  # None: local worker processes; "local", "auto", "ray://host:port": Ray

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        # absolute: a --resume from another directory, or with the path spelled another way, names the same files
        for k in ("sumocfg", "net"):
            d[k] = _str_or_none(d[k])
        d["routes"] = [str(Path(r).resolve()) for r in self.routes]
        d["hyper"] = self.hyper.to_json()
        return d


@dataclass
class EpisodeRecord:
    episode: int
    sumo_seed: int
    epsilon: float
    reward: float
    avg_delay_s: float
    violations: int
    fallback_fraction: float
    updates: int
    wall_s: float
    peak_rss_mb: float


# ---------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------


def run_episode(payload: str) -> dict:
    """Worker: one training episode from the snapshot in `payload`; returns the tables it trained."""
    from ..runtime.config import RunConfig
    from ..runtime.run import execute_run

    p = json.loads(payload)
    hyper = Hyper(**p["hyper"])
    session = TrainingSession(hyper, p["seed"], p["episode"], p["shared"], p["features"])
    if p["snapshot"]:
        model = load_model(Path(p["snapshot"]), mmap=False)
        session.tables = {n: t.writable() for n, t in model.tables.items()}
        session.table_of = dict(model.table_of)
        session.layouts = dict(model.layouts)
    # "ql-train" labels the run; its controllers are the session's, handed to the loop here. On a user's network
    # `scenario` is only the model's name for it: the run names the files alone (RunConfig refuses both)
    own = p.get("sumocfg") is not None or p.get("net") is not None
    cfg = RunConfig(scenario=None if own else p["scenario"], controller="ql-train", seed=p["sumo_seed"], duration_s=p["duration_s"],
                    sumocfg=p.get("sumocfg"), net=p.get("net"), routes=p.get("routes", []),
                    out_dir=Path(p["run_dir"]).parent, emissions=False, record="lean",
                    shield={"confidence_threshold": 0.5})
    t0 = time.perf_counter()
    result = execute_run(cfg, Path(p["run_dir"]), controllers=lambda inter, ctx: session.controller_for(inter))
    wall = time.perf_counter() - t0
    shutil.rmtree(Path(p["run_dir"]) / "sumo", ignore_errors=True)  # raw SUMO files: large, not needed
    ctrls = session.controllers.values()
    m = result.metrics
    return {
        "episode": p["episode"],
        "tables": {n: (t.q, t.visits) for n, t in session.tables.items()},
        "encodings": {n: (t.encoding.to_json(), t.n_actions) for n, t in session.tables.items()},
        "table_of": session.table_of,
        "layouts": session.layouts,
        "record": asdict(EpisodeRecord(
            p["episode"], p["sumo_seed"], session.epsilon,
            round(sum(c.learner.total_reward for c in ctrls), 3),
            m["network"]["avg_delay_s"], m.get("safety", {}).get("violations", -1),
            m["network"]["fallback_fraction"], sum(c.learner.updates for c in ctrls), round(wall, 2),
            round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))),
    }


# ---------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------


def merge_tables(base: dict[str, QTable], results: list[dict]) -> dict[str, QTable]:
    """Average the workers' changes per (state, action), weighted by new visits + 1; visits add up."""
    out: dict[str, QTable] = {}
    names = sorted({n for r in results for n in r["tables"]} | set(base))
    for name in names:
        if name in base:
            t0 = base[name]
            q0, n0 = np.asarray(t0.q, np.float64), np.asarray(t0.visits, np.int64)
            enc, n_actions = t0.encoding, t0.n_actions
        else:
            enc_json, n_actions = next(r["encodings"][name] for r in results if name in r["tables"])
            enc = StateEncoding.from_json(enc_json)
            q0 = np.zeros((enc.n_states, n_actions))
            n0 = np.zeros((enc.n_states, n_actions), np.int64)
        wsum = np.zeros_like(q0)
        dq = np.zeros_like(q0)
        visits = n0.copy()
        for r in sorted(results, key=lambda r: r["episode"]):
            if name not in r["tables"]:
                continue
            qk, nk = r["tables"][name]
            new = np.asarray(nk, np.int64) - n0
            changed = (np.asarray(qk, np.float64) != q0) | (new > 0)
            w = np.where(changed, new + 1.0, 0.0)
            dq += w * (np.asarray(qk, np.float64) - q0)
            wsum += w
            visits += new
        q = q0 + np.divide(dq, wsum, out=np.zeros_like(dq), where=wsum > 0)
        out[name] = QTable(enc, n_actions, q.astype(np.float32), visits.clip(0, 2**32 - 1).astype(np.uint32))
    return out


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

OnEpisode = Callable[[EpisodeRecord], None]


class TrainingError(ValueError):
    pass


def no_vehicle_due(delays_s, duration_s: float | None) -> None:
    """Refuse episodes in which no vehicle was due (their delay is null, `sim.metrics`): a delay measured on nobody
    says nothing of a policy, and learning on it only wastes the episodes that follow."""
    if delays_s and any(d is None for d in delays_s):
        window = f" (--duration {duration_s:g} s: give a longer one)" if duration_s else " (the scenario's window)"
        raise TrainingError(f"no vehicle was due to enter the network in an episode{window}: a delay measured on "
                            "nobody says nothing of the policy")


def check_out(cfg: TrainConfig, resume: bool = False) -> dict | None:
    """What `train` refuses before any episode (TrainingError, one line): with `resume`, nothing to resume, other
    options than the training resumed or fewer episodes than it has done; without, a training or a model already
    in `cfg.out`. Returns the state a resume goes on from, `cfg` then holding the table's options it was begun
    with (an option left out goes on). `signalwise train` calls it before it draws any progress."""
    out = Path(cfg.out)
    state_file = out / "train_state.json"
    if not resume:
        if state_file.exists():
            raise TrainingError(f"{out}: a training run is already there; use --resume or another --out")
        if (out / "model").exists():
            raise TrainingError(f"{out}: a model is already there; use another --out")
        return None
    if not state_file.is_file():
        candidates = sorted(f.parent.name for f in out.glob("guide-*/train_state.json"))
        if candidates:  # as `selection.train_selected` says the other way round
            raise TrainingError(f"{out} holds a --guide-visits auto training ({', '.join(candidates)}): resume "
                                "it with --guide-visits auto, the default")
        raise TrainingError(f"{out}: nothing to resume (no train_state.json)")
    state = json.loads(state_file.read_text())
    prev = {**state["config"], **_network_files(state, out)}
    now = cfg.to_json()
    for k in ("scenario", "seed", "batch", "shared", "net", "sumocfg", "duration_s", "routes"):
        if prev.get(k, now[k] if k == "routes" else None) != now[k]:  # runs from before routes were kept
            raise TrainingError(f"--resume with another {k.removesuffix('_s')} ({now[k]!r}) than the run "
                                f"being resumed ({prev.get(k)!r})")
    # the options that shape the table are the resumed run's: one left out (at its default) is taken from it,
    # one given with another value is refused, not silently dropped
    defaults = Hyper().to_json()
    for k, was in prev["hyper"].items():
        if k in now["hyper"] and now["hyper"][k] not in (was, defaults.get(k)):
            raise TrainingError(f"--resume with another --{k.replace('_', '-')} ({now['hyper'][k]!r}) than the "
                                f"run being resumed ({was!r}): leave it out, or give the value it was started with")
    if now["features"] not in (prev["features"], TrainConfig.__dataclass_fields__["features"].default_factory()):
        raise TrainingError(f"--resume with other --actions/--state ({now['features']}) than the run being "
                            f"resumed ({prev['features']})")
    cfg.hyper = Hyper(**{"guide_mode": "state", **prev["hyper"]})  # runs from before guide_mode existed
    cfg.features = prev["features"]
    done = state["episodes_done"]
    if cfg.episodes < done:  # (as many as done: a resume killed in its validation validates again)
        raise TrainingError(f"--resume with --episodes {cfg.episodes}, fewer than the {done} this training has "
                            f"done: give at least {done} (more to train on)")
    return state


def _network_files(state: dict, out: Path) -> dict:
    """The resumed run's network files, absolute. A state written before it kept them absolute holds them as they
    were typed: its checkpoint's meta.json has them absolute (`training.config`); else they are read from here."""
    config = state["config"]
    try:
        kept = json.loads((_checkpoint_dir(out, state["episodes_done"]) / "meta.json").read_text())
        files = kept["training"]["config"]
        return {"sumocfg": files["sumocfg"], "net": files["net"], "routes": list(files["routes"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"sumocfg": _str_or_none(config.get("sumocfg")), "net": _str_or_none(config.get("net")),
                "routes": [str(Path(r).resolve()) for r in config.get("routes") or []]}


def resumed_network(out: Path) -> dict | None:
    """The network a training in `out` (one threshold, or `--guide-visits auto`'s candidates) was started on:
    {"scenario", "sumocfg", "net", "routes"}, the files absolute; None when `out` holds no training state.
    `train --resume` takes it when the command names no network, as it takes the other options left out."""
    out = Path(out)
    for state_file in [out / "train_state.json", *sorted(out.glob("guide-*/train_state.json"))]:
        try:
            state = json.loads(state_file.read_text())
            return {"scenario": state["config"]["scenario"], **_network_files(state, state_file.parent)}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def train(cfg: TrainConfig, resume: bool = False, on_episode: OnEpisode | None = None,
          executor: EpisodeExecutor | None = None) -> Model:
    """Train, checkpointing after every round into `cfg.out`; returns the final model, installed in out/model
    once every episode asked has run (an interrupted training installs none: its checkpoints are for --resume).

    `executor`: where episodes run (the caller closes it); default: made from `cfg` and closed here."""
    out = Path(cfg.out)
    history: list[dict] = []
    start = 0
    model: Model | None = None
    state = check_out(cfg, resume)
    if state is not None:
        history = state["history"]
        start = state["episodes_done"]
        # the checkpoint the state names, not out/model: that is the model of an earlier session that finished
        # (a training from before checkpoints alone were resumed may have left it a round ahead of the state)
        ck = _checkpoint_dir(out, start)
        model = load_model(ck if ck.is_dir() else out / "model", mmap=False)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    # the sessions before this one, as the resumed checkpoint counted them (the episodes' own wall_s are each
    # worker's time inside its episode, not the training's)
    wall_before = float((model.meta.get("training") or {}).get("wall_s") or 0.0) if model is not None else 0.0

    own = executor is None
    executor = executor or make_executor(cfg.ray_address, cfg.workers)
    try:
        model = _rounds(cfg, executor, out, start, model, history, on_episode, t_start, wall_before)
    finally:
        if own:
            executor.close()
    if model is None:
        raise TrainingError("no episode to run (--episodes must exceed the episodes already done)")
    return _finish(out, cfg.episodes)


def _finish(out: Path, episodes: int) -> Model:
    """out/model, the training's last checkpoint now that it holds every episode asked (`episodes`). A model
    already there of that many episodes, finished (a resume with nothing left to train), stays as it is, with
    the evaluations recorded in it since."""
    there = out / "model"
    if _episodes_of(there) == episodes and _asked_of(there) in (episodes, None):
        return load_model(there)
    ck = _checkpoint_dir(out, episodes)
    meta = json.loads((ck / "meta.json").read_text())
    if meta["training"].get("episodes_asked") != episodes:  # asked for more once, finished at fewer on a resume
        meta["training"]["episodes_asked"] = episodes
        _install(out, ck, meta)
    else:
        _install(out, ck)
    return load_model(there)


def _rounds(cfg: TrainConfig, executor, out: Path, episode: int, model: Model | None, history: list[dict],
            on_episode: OnEpisode | None, t_start: float, wall_before: float) -> Model | None:
    while episode < cfg.episodes:
        batch = list(range(episode, min(cfg.episodes, episode + cfg.batch)))
        for e in batch:  # left by an interrupted round: no checkpoint holds it, and the run is redone exactly
            shutil.rmtree(_episode_dir(out, e), ignore_errors=True)
        # the last round's checkpoint (a resume's, the one its state names): out/model is installed at the end
        snapshot = str(model.path) if model is not None else ""
        payloads = [json.dumps({
            "scenario": cfg.scenario, "seed": cfg.seed, "episode": e, "sumo_seed": training_seed(cfg.seed, e),
            "hyper": cfg.hyper.to_json(), "shared": cfg.shared, "features": cfg.features, "snapshot": snapshot,
            "duration_s": cfg.duration_s, "run_dir": str(_episode_dir(out, e)),
            "sumocfg": _str_or_none(cfg.sumocfg), "net": _str_or_none(cfg.net), "routes": [str(r) for r in cfg.routes],
        }) for e in batch]
        results = executor.run_round(run_episode, payloads)
        no_vehicle_due([r["record"]["avg_delay_s"] for r in results], cfg.duration_s)
        base = model.tables if model is not None else {}
        tables = merge_tables(base, results)
        table_of, layouts = {}, {}
        for r in results:
            table_of.update(r["table_of"])
            layouts.update(r["layouts"])
        if model is not None:
            table_of = {**model.table_of, **table_of}
            layouts = {**model.layouts, **layouts}
        for r in sorted(results, key=lambda r: r["episode"]):
            history.append(r["record"])
            if on_episode:
                on_episode(EpisodeRecord(**r["record"]))
        episode = batch[-1] + 1
        meta = _meta(cfg, history, episode, wall_before + time.perf_counter() - t_start)
        model = Model(None, tables, table_of, layouts, meta)
        _checkpoint(out, model, episode, cfg, history)
    return model


def _episode_dir(out: Path, episode: int) -> Path:
    return out / "episodes" / f"ep-{episode:05d}"


def _str_or_none(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def _meta(cfg: TrainConfig, history: list[dict], episodes_done: int, wall_s: float) -> dict:
    return {
        "scenario": cfg.scenario,
        "agent": TABULAR,
        "features": cfg.features,
        "hyperparameters": cfg.hyper.to_json(),
        "training": {
            "seed": cfg.seed,
            "episodes": episodes_done,
            # fewer done than asked: a checkpoint of a training still running, or interrupted (`qtable.unfinished`)
            "episodes_asked": cfg.episodes,
            "batch": cfg.batch,
            "workers": cfg.workers,
            "executor": "ray" if cfg.ray_address is not None else "processes",
            "shared_table": cfg.shared,
            "duration_s": cfg.duration_s,
            "window_s": training_window_s(cfg.scenario, cfg.sumocfg, cfg.net, cfg.routes, cfg.duration_s),
            # the network's files, for `evaluate` to run where it trained (`evaluate.trained_on`): on a user's
            # network `scenario` above is only a name, not one a run can load
            "config": {"sumocfg": _str_or_none(cfg.sumocfg), "net": _str_or_none(cfg.net),
                       "routes": [str(Path(r).resolve()) for r in cfg.routes]},
            "seeds": [h["sumo_seed"] for h in history],
            # what traffic it learned on: `evaluate` and `compare` say when a model runs on other route files
            "demand": training_demand(cfg.scenario, cfg.sumocfg, cfg.net, cfg.routes),
            "wall_s": round(wall_s, 1),
            "peak_worker_rss_mb": max((h["peak_rss_mb"] for h in history), default=None),
            "violations": sum(max(0, h["violations"]) for h in history),
            "last_avg_delay_s": history[-1]["avg_delay_s"] if history else None,
        },
        "evaluations": [],
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }


def training_demand(scenario: str | None, sumocfg: Path | None, net: Path | None, routes, scale: float = 1.0,
                    scales=None) -> dict | None:  # noqa: ANN001
    """The demand record (`qtable.demand_record`) of the network a training ran on; None when it cannot be read
    (the episodes said why already)."""
    sc = _training_scenario(scenario, sumocfg, net, routes)
    if sc is None:
        return None
    record = demand_record(sc.route_files, scale)
    if scales:  # a search whose episodes ran several scales
        record["scales"] = sorted({float(x) for x in scales})
    # the network it ran on: `evaluate` says when a model runs on another (its name alone may be another's too)
    return {**record, **network_record(sc.net_file)}


def network_record(net_file: Path) -> dict:
    """The network a run drives, as a model's meta.json keeps it beside its demand (`training.demand`): the file's
    name and a digest of its contents, as `qtable.demand_record` keeps the route files'."""
    import hashlib

    try:
        digest = hashlib.sha256(Path(net_file).read_bytes()).hexdigest()[:16]
    except OSError:
        digest = None
    return {"net_file": Path(net_file).name, "net_sha256": digest}


def trained_network(meta: dict) -> dict | None:
    """The network a model trained on (`network_record`): as its meta.json keeps it, else (a model made before it
    did) read from the network files its training config names, when they are still there; None when unknown."""
    training = meta.get("training") or {}
    kept = training.get("demand") or {}
    if kept.get("net_sha256"):
        return {"net_file": kept.get("net_file"), "net_sha256": kept["net_sha256"]}
    config = training.get("config") or {}
    sc = _training_scenario(meta.get("scenario") if not (config.get("sumocfg") or config.get("net")) else None,
                            config.get("sumocfg"), config.get("net"), config.get("routes") or ())
    if sc is None:
        return None
    record = network_record(sc.net_file)
    return record if record["net_sha256"] else None


def training_window_s(scenario: str | None, sumocfg: Path | None, net: Path | None, routes,  # noqa: ANN001
                      duration_s: float | None) -> list[float] | None:
    """[begin, end] in simulated seconds of the training's episodes (as `runtime.loop.run_window` makes it: the
    network's whole window unless --duration cut it), kept in meta.json as `training.window_s` so `compare` and
    `evaluate` say when runs cover another length than the model trained on; None when the network cannot be
    read."""
    sc = _training_scenario(scenario, sumocfg, net, routes)
    if sc is None:
        return None
    return [float(sc.begin_s), float(sc.begin_s + (duration_s if duration_s is not None else sc.duration_s))]


def _training_scenario(scenario: str | None, sumocfg: Path | None, net: Path | None, routes):  # noqa: ANN001, ANN202
    from ..sim.scenario import ScenarioError, from_files, from_sumocfg, load

    try:
        if sumocfg is not None:
            return from_sumocfg(Path(sumocfg))
        if net is not None:
            return from_files(Path(net), tuple(Path(r) for r in routes))
        return load(scenario)
    except (ScenarioError, OSError, ValueError):
        return None


def _checkpoint_dir(out: Path, episodes_done: int) -> Path:
    return out / "checkpoints" / f"ep-{episodes_done:05d}"


def _checkpoint(out: Path, model: Model, episodes_done: int, cfg: TrainConfig, history: list[dict]) -> None:
    """The checkpoint, then the state naming it: killed anywhere, a resume finds a whole checkpoint for the state
    it reads. out/model is not touched (`_finish` installs it when every episode asked has run)."""
    ck = _checkpoint_dir(out, episodes_done)
    save_model(ck, model)
    state = {"config": cfg.to_json(), "episodes_done": episodes_done, "history": history}
    (out / "train_state.json.tmp").write_text(json.dumps(state, indent=1))
    (out / "train_state.json.tmp").replace(out / "train_state.json")
    model.path = ck
    cks = sorted((out / "checkpoints").iterdir())
    for old in cks[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)


def _episodes_of(model_dir: Path) -> int | None:
    """The episodes a model directory's metadata says it was trained for; None when it has none."""
    try:
        return int(json.loads((model_dir / "meta.json").read_text())["training"]["episodes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _asked_of(model_dir: Path) -> int | None:
    """The episodes its training asked for, as a model directory's metadata says; None when it does not."""
    try:
        return int(json.loads((model_dir / "meta.json").read_text())["training"]["episodes_asked"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _install(out: Path, checkpoint: Path, meta: dict | None = None) -> None:
    """Copy a checkpoint to out/model (through out/model.tmp: a half-copied model is never out/model), with
    `meta` as its meta.json when given."""
    tmp = out / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp)
    if meta is not None:
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    shutil.rmtree(out / "model", ignore_errors=True)
    tmp.rename(out / "model")


def heldout_seeds(model: Model, n: int, first: int = 1) -> list[int]:
    """`n` seeds from `first` upward that the model never trained or was validated on."""
    used = used_seeds(model.meta)
    seeds, s = [], first
    while len(seeds) < n:
        if s not in used:
            seeds.append(s)
        s += 1
    return seeds


def check_heldout(model: Model, seeds: list[int]) -> None:
    used = used_seeds(model.meta) & set(seeds)
    if used:
        raise ModelError(f"seeds {sorted(used)} were used in training or validation; evaluate on held-out "
                         "seeds only")
