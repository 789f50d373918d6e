"""Training the phase-score policy by direct policy search (CMA-ES) on the evaluation's own measure.

Why policy search and not Q-learning for these weights: the measure that
matters is the average delay of every vehicle (RESCO's: time loss plus
insertion delay), which a per-decision reward only approximates, and the
policy has few parameters (`phase_score.FEATURES`), where an evolution
strategy needs few episodes. CMA-ES (the `cma` package, Hansen's reference
implementation) adapts the step size and the search directions itself, so
there is no learning rate to tune per network.

A generation: CMA-ES proposes `popsize` weight vectors; each runs the same
`seeds_per_generation` training seeds (common random numbers: the candidates
are ranked on the same traffic, so the ranking measures the policy, not the
seed); the mean delay of each is told back. Every episode is a full
`execute_run` (loop, shield, audit) in a fresh worker process (libsumo is one
simulation per process), locally or on Ray, as Q-learning's episodes.

The weight on `in_halt` is fixed at 1 (scores are only compared, so the
scale is free) and the search starts at max-pressure (`max_pressure_weights`),
at a named controller written as weights (`search_starts.STARTS`, `signalwise
train --start`), or at weights learned elsewhere (`start`, with a smaller
`sigma0`: fine-tuning).
At the end the distribution's mean and the starting weights run on
validation seeds (neither training nor the held-out seeds `evaluate` uses),
and the better is the model: the search never ships something that lost to
its starting point on traffic it had not seen.

`--start auto` (`search(..., starts=STARTS)`): before the first generation
every named start's weights run, each with its own features and period, on
those same validation seeds; the search starts from the lowest mean delay
(a tie goes to the start named first) and the chosen start's validation
figure is reused at the end instead of being run again. Which start is best
depends on the network, and running each start once costs a few episodes
where a search runs a hundred.

The features are measured over the lane zones max-pressure uses
(`control.zones`; `zone_m`, by default max-pressure's under the episodes'
timing profile: 50 m, 0 under reference), so a stop-line lane shorter than
a car does not hide the queue behind it; the model records its `zone_m`.
The lane before a turn pocket counts as max-pressure counts it under the
episodes' profile (`shared_lanes`: split, each pocket's zone taking its
share of it, under every profile), or as `signalwise train
--shared-lanes` says; the model records it (a model without the key skips).

`restarts` > 1 (`signalwise train --restarts N`): N independent searches,
the k-th with seed `seed` + k, each into `restarts/seed-S/` with its own
training and validation seeds; then every search's model runs on the first
one's validation seeds and the lowest mean delay is the model. One search's
result depends on its seed, not only on its settings (docs/learning.md
gives the figures); choosing among several on traffic none trained on
keeps that choice off the held-out seeds, which only `evaluate` runs.

`per_signal` (`signalwise train --per-signal`): every signal gets its own
weights, each from its own CMA-ES told its own approaches' queues
(`per_signal.py`); the model keeps them as `policy.signal_weights` beside the
shared `weights`, which any signal it does not name runs.

Determinism: CMA-ES draws from its own seeded generator and episode SUMO
seeds follow from (seed, generation, k), so the same seed, popsize and
seeds_per_generation give the same model whatever the workers or Ray.

Resuming (`search(..., resume=True)`, `signalwise train --resume`): the
search as asked is kept in `search_config.json` when it begins, and at the
end of every generation `search_state.pkl` keeps the CMA-ES (mean, step
size, covariance and paths, its counters and best so far: the `cma`
object, pickled as its author documents), numpy's generator it draws from,
the generations' records, the chosen start and the episodes and wall time
so far. A resume runs the generations after the last one kept, up to the
new `generations`, then validates again, so 2 generations then a resume to
4 give the weights of 4 in a row. It takes the same settings (only
`generations`, `workers` and `ray_address` may change); a search already
at its `generations` keeps its model.
"""

from __future__ import annotations

import datetime as dt
import inspect
import io
import json
import math
import pickle
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..control.learning.phase_score import (
    FEATURES,
    FEATURES_V1,
    SHARED_LANES,
    check_features,
    max_pressure_weights,
)
from ..control.learning.qtable import Model, ModelError, load_model, save_model
from ..control.max_pressure import SHARED_LANES_DEFAULT, ZONE_M
from ..runtime.config import MAX_DEMAND_SCALE, valid_demand_scale
from ..runtime.profiles import SAFETY, profile_controller_options
from ..sim.lane_zones import signal_neighbours
from .cmaes import load_cma
from .executors import EpisodeExecutor, make_executor
from .search_starts import SearchStart, search_starts
from .train import TrainingError, no_vehicle_due, training_demand, training_seed, training_window_s

AGENT = "phase-score"
#: initial search spread per weight: about the size of a change that moves a decision (a vehicle per
#: vehicle; a bonus of a few vehicles for the 0/1 and per-minute features)
INITIAL_STDS = {"out_halt": 0.5, "in_moving": 0.5, "hold": 4.0, "hold_green_min": 4.0, "hold_moving": 0.5,
                "hold_halt": 0.5, "hold_young": 4.0, "switch_min_green_min": 4.0, "switch_clearance_10s": 4.0,
                "hold_gap": 4.0, "switch_red_min": 4.0, "switch_halt_red": 0.5, "switch_cut_halt": 0.5,
                "switch_cut_moving": 0.5, "switch_new_halt": 0.5, "in_halt_blocked": 0.5, "hold_load": 0.5}


#: the search as asked (its settings, before `--start auto` chose), written when it begins: what a resume compares
CONFIG_FILE = "search_config.json"
#: where the search stands after its last generation (`save_state`): what a resume goes on from
STATE_FILE = "search_state.pkl"
#: what a resume may change: the new total of generations, and where the episodes run
RESUMABLE = ("generations", "workers", "ray_address", "out")


def weights_by_name(policy: dict, features=FEATURES) -> tuple[float, ...]:
    """A model's weights for `features`, 0 for the features it did not have (to start a search from it)."""
    known = dict(zip(policy["features"], policy["weights"], strict=True))
    return tuple(float(known.get(f, 0.0)) for f in features)


def _max_pressure_options(run: dict) -> dict:
    """Max-pressure's options under a run configuration: its timing profile's, then its own."""
    timing = run.get("timing")
    name = timing if isinstance(timing, str) else timing.get("profile", SAFETY) if isinstance(timing, dict) else SAFETY
    return {**profile_controller_options(name), **(run.get("controller_options") or {})}


def default_zone_m(run: dict) -> float:
    """Max-pressure's measuring zone under a run configuration: its `controller_options.zone_m`, else its
    timing profile's (`runtime.profiles`: 0 under reference, whose pressure reads each lane alone), else
    max-pressure's default (50 m). A search measures over the zones the baseline it is compared with does."""
    return float(_max_pressure_options(run).get("zone_m", ZONE_M))


def default_shared_lanes(run: dict) -> str:
    """How max-pressure counts the lane before a turn pocket under a run configuration: split, unless its
    `controller_options` say otherwise (`runtime.profiles`). On bench/random_networks.py's rand-turns, whose pockets are
    shorter than a car, a search from max-pressure-pays gave 51.5 s with the split and 87.9 s without."""
    return str(_max_pressure_options(run).get("shared_lanes", SHARED_LANES_DEFAULT))


def validation_seeds(seed: int, n: int) -> list[int]:
    """Seeds the choice between the learned and the starting weights is made on."""
    return [600_000 + 1_000 * seed + k for k in range(n)]


@dataclass
class SearchConfig:
    scenario: str | None = "single"
    generations: int = 12
    popsize: int = 8
    seeds_per_generation: int = 1
    validation_seeds: int = 3
    seed: int = 1
    workers: int = 2
    out: Path = Path("models/train")
    duration_s: float | None = None
    period_s: float = 5.0
    #: RunConfig fields every episode runs with (timing profile, shield, controller options)
    run: dict = field(default_factory=dict)
    sumocfg: Path | None = None
    net: Path | None = None
    routes: list[Path] = field(default_factory=list)
    ray_address: str | None = None
    features: tuple[str, ...] = FEATURES
    measure: str = "count"  # or "density": vehicles per 100 m of lane
    #: measuring zone of the features, metres (`control.zones`); None = max-pressure's under `run`'s profile
    zone_m: float | None = None
    #: the lane before a turn pocket: skip (in no zone) | split (each pocket's zone counts its share); None =
    #: max-pressure's under `run`'s profile
    shared_lanes: str | None = None
    #: where the search starts (one weight per feature, `in_halt`'s 1 first); None = max-pressure
    start: tuple[float, ...] | None = None
    #: the start's name (`search_starts.STARTS`) when it is a named one, for the record
    start_name: str | None = None
    #: initial spread, times INITIAL_STDS (smaller to fine-tune weights learned elsewhere)
    sigma0: float = 1.0
    #: independent searches (seeds `seed`, `seed` + 1, ...); the model is the one that validates best
    restarts: int = 1
    #: the demand of the training episodes, times SUMO's --scale: the k-th seed of each generation runs the
    #: (k mod n)-th; () = the routes as written. Validation always runs the routes as written.
    demand_scales: tuple[float, ...] = ()
    #: a per-signal start's own weights, signal id -> one weight per feature (the others start at `start`)
    start_signal_weights: dict[str, list[float]] = field(default_factory=dict)
    #: one search per signal, each told its own approaches' queues (`per_signal.py`); else one shared search
    per_signal: bool = False
    #: per signal: how much each neighbouring signal's queue counts in a signal's score (0: its own only)
    neighbour_weight: float = 0.0
    #: per signal: in each episode only signals no two of which are neighbours try candidates, the others run
    #: their search's mean, so a signal's score moves with its own candidate (a round per colour class)
    hold_neighbours: bool = False

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        for k in ("sumocfg", "net"):
            d[k] = str(Path(d[k]).resolve()) if d[k] is not None else None
        d["routes"] = [str(Path(r).resolve()) for r in self.routes]
        d["features"] = list(self.features)
        d["start"] = list(self.start_weights())
        d["zone_m"] = self.zone()
        d["shared_lanes"] = self.shared()
        return d

    @classmethod
    def from_json(cls, d: dict) -> SearchConfig:
        """The configuration `to_json` wrote (the zone and shared lanes it resolved stay resolved)."""
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("out", "sumocfg", "net"):
            if d.get(k) is not None:
                d[k] = Path(d[k])
        d["routes"] = [Path(r) for r in d.get("routes", [])]
        for k in ("features", "start", "demand_scales"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def zone(self) -> float:
        """The zone the episodes measure over: `zone_m`, else max-pressure's under the episodes' profile."""
        return float(self.zone_m) if self.zone_m is not None else default_zone_m(self.run)

    def shared(self) -> str:
        """How the episodes count the lane before a turn pocket: `shared_lanes`, else max-pressure's."""
        return self.shared_lanes if self.shared_lanes is not None else default_shared_lanes(self.run)

    def start_weights(self) -> tuple[float, ...]:
        return tuple(self.start) if self.start is not None else max_pressure_weights(self.features)


@dataclass
class GenerationRecord:
    generation: int
    seeds: list[int]
    best_avg_delay_s: float
    mean_avg_delay_s: float
    sigma: float
    weights: list[float]  # the distribution's mean after the update
    violations: int
    wall_s: float


def run_policy_episode(payload: str) -> dict:
    """Worker: one episode of the phase-score policy with the payload's weights; its delay and audit."""
    from ..control.learning.phase_score import PhaseScoreController
    from ..runtime.config import RunConfig
    from ..runtime.run import execute_run

    p = json.loads(payload)
    cfg = RunConfig.model_validate({
        **p["run"], "scenario": p["scenario"], "controller": "ql", "seed": p["sumo_seed"],
        "duration_s": p["duration_s"], "sumocfg": p["sumocfg"], "net": p["net"], "routes": p["routes"],
        "out_dir": str(Path(p["run_dir"]).parent), "emissions": False, "record": "lean"})
    weights, period = p["weights"], p["period_s"]
    signal_weights = p.get("signal_weights") or {}
    features = tuple(p["features"]) if "features" in p else FEATURES_V1  # a search started before features grew
    measure = p.get("measure", "count")
    zone_m = float(p.get("zone_m", 0.0))  # a search started before zones read each lane alone
    shared_lanes = p.get("shared_lanes", "skip")
    lanes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    downstream: dict[str, tuple[tuple[str, float], ...]] = {}

    def controller(inter, ctx):
        nonlocal downstream
        lanes[inter.id] = (inter.in_lanes, inter.out_lanes)  # the signal graph, for a per-signal search
        downstream = ctx.lane_downstream  # the run's one context: every signal's zones
        return PhaseScoreController(
            inter, signal_weights.get(inter.id, weights), float(ctx.options.get("period_s", period)), "ql-train",
            features, measure, ctx.lane_length_m, zone_m, ctx.lane_upstream, ctx.lane_downstream, shared_lanes,
            ctx.lane_upstream_split)

    t0 = time.perf_counter()
    result = execute_run(cfg, Path(p["run_dir"]), controllers=controller)
    wall = time.perf_counter() - t0
    shutil.rmtree(Path(p["run_dir"]), ignore_errors=True)  # a search runs hundreds: keep the figures only
    m = result.metrics
    return {"key": p["key"], "avg_delay_s": m["network"]["avg_delay_s"],
            # vehicles that entered the network (vehicles_total counts those never inserted too)
            "vehicles": int(m["network"].get("vehicles_total", 0)) - int(m["network"].get("never_inserted", 0)),
            "violations": m.get("safety", {}).get("violations", -1),
            "fallback_fraction": m["network"]["fallback_fraction"], "wall_s": round(wall, 2),
            # halting vehicles on each signal's own approaches: what a per-signal search tells that signal
            "queues": {tls: v["avg_queue_veh"] for tls, v in m.get("intersections", {}).items()
                       if "avg_queue_veh" in v},
            "neighbours": signal_neighbours(lanes, downstream)}


def generation_seeds(cfg: SearchConfig, generation: int) -> list[int]:
    """The training seeds every candidate of a generation runs (common random numbers)."""
    return [training_seed(cfg.seed, generation * cfg.seeds_per_generation + k) for k in range(cfg.seeds_per_generation)]


def training_overrides(cfg: SearchConfig, k: int) -> dict:
    """What the k-th training seed of a generation changes in the episode: its demand scale, if any.

    Why a scale: a network's seeds differ in how heavy their hour is, and a search told only the
    training seeds' traffic may learn what pays there and loses on a heavier hour; scaled copies of the
    same routes put heavier hours among the candidates' episodes, every candidate on the same ones.
    """
    if not cfg.demand_scales:
        return {}
    return {"run": {**cfg.run, "demand_scale": cfg.demand_scales[k % len(cfg.demand_scales)]}}


def full_weights(free: np.ndarray) -> list[float]:
    return [1.0, *map(float, free)]


OnGeneration = Callable[[GenerationRecord], None]
#: called after each generation with the strategies (what `save_state` keeps), the records so far and the
#: generation's episodes
Checkpoint = Callable[[object, list[dict], int], None]


def choose_start(cfg: SearchConfig, starts: dict[str, SearchStart], executor: EpisodeExecutor) -> dict:
    """Every start's weights (its own features and period) on the search's validation seeds; the lowest wins.

    Returns the record: seeds, every start's mean delay (`candidates`, in the order given), `chosen` (a tie
    goes to the start named first), the episodes' wall time.
    """
    if not starts:
        raise TrainingError("choosing a start needs at least one start")
    vseeds = validation_seeds(cfg.seed, cfg.validation_seeds)
    t0 = time.perf_counter()
    jobs = [(name, s, list(st.vector(st.features())), {"features": list(st.features()), "period_s": st.period_s})
            for name, st in starts.items() for s in vseeds]
    res = run_episodes(cfg, executor, jobs, Path(cfg.out) / "episodes" / "starts")
    delay = {name: float(np.mean([res[(name, s)]["avg_delay_s"] for s in vseeds])) for name in starts}
    chosen = min(starts, key=delay.get)
    return {"seeds": vseeds, "metric": "avg_delay_s", "candidates": delay, "chosen": chosen,
            "episodes": len(jobs), "wall_s": round(time.perf_counter() - t0, 1),
            # the signals the controller decided and their neighbours (a per-signal search gives each its own)
            "signals": signal_graph([res[(chosen, s)] for s in vseeds])}


def signal_graph(results: list[dict]) -> dict[str, tuple[str, ...]]:
    """The signals some episode of `results` reports a queue for, each with its neighbours among them."""
    signals = {tls for r in results for tls in r["queues"]}
    near: dict[str, set[str]] = {tls: set() for tls in signals}
    for r in results:
        for tls, others in r.get("neighbours", {}).items():
            if tls in near:
                near[tls].update(o for o in others if o in signals)
    return {tls: tuple(sorted(others)) for tls, others in sorted(near.items())}


def starts_for(name: str, period_s: float | None = None,
               add_features: Sequence[str] = ()) -> dict[str, SearchStart]:
    """The starts of `signalwise train --start NAME --period S --add-feature F` (and of a training job's start,
    period and add_feature): `search_starts(name)`, each with its decision period replaced and the features
    added from weight 0. ValueError (one line) for an unknown start or feature."""
    starts = search_starts(name)
    if period_s is not None:
        starts = {n: replace(st, period_s=float(period_s)) for n, st in starts.items()}
    if add_features:
        starts = {n: st.adding(add_features) for n, st in starts.items()}
    return starts


def option_errors(zone_m: float | None = None, shared_lanes: str | None = None,
                  demand_scales: Sequence[float] = ()) -> list[tuple[tuple, str]]:
    """Why a search's zone_m, shared_lanes or demand scales cannot run: (where, reason) pairs, `where` the
    option's name (`signalwise train --zone-m`, a job's `zone_m`) and a scale's index. One check for the
    command line and the API, so both refuse the same values for the same reason before any episode."""
    errors: list[tuple[tuple, str]] = []
    if zone_m is not None and not (zone_m >= 0 and math.isfinite(zone_m)):
        errors.append((("zone_m",), "must be a distance in metres, 0 or more"))
    if shared_lanes not in (None, *SHARED_LANES):
        errors.append((("shared_lanes",), f"must be {' or '.join(SHARED_LANES)}"))
    errors += [(("demand_scale", k), f"must be above 0 and at most {MAX_DEMAND_SCALE:g} (1 = the routes as written)")
               for k, scale in enumerate(demand_scales) if not valid_demand_scale(scale)]
    return errors


def config_from_starts(starts: dict[str, SearchStart], **options) -> SearchConfig:
    """A search's configuration from its start(s) (`search_starts`): the first start's features, weights and
    decision period (with several, `auto`, the one chosen replaces them); `options`: the other fields."""
    name, begin = next(iter(starts.items()))
    features = begin.features()
    return SearchConfig(features=features, start=begin.vector(features), start_name=name, period_s=begin.period_s,
                        start_signal_weights=begin.signal_vectors(features), **options)


def search(cfg: SearchConfig, on_generation: OnGeneration | None = None,
           executor: EpisodeExecutor | None = None, starts: dict[str, SearchStart] | None = None,
           on_start: Callable[[dict], None] | None = None, resume: bool = False) -> Model:
    """Run the search into `cfg.out` (model/, search.json, and what a resume needs); returns the chosen model.

    With `starts`, the search starts from the one that validates best (`choose_start`): `cfg`'s own start,
    features and period are replaced by its; `on_start` gets the choice before the first generation.
    `resume`: go on from what `cfg.out` keeps (the module's docstring) up to `cfg.generations`, `cfg` holding the
    settings the search began with; the model there is replaced when the search ends.
    """
    out = Path(cfg.out)
    state = check_search(cfg, resume)
    if resume and _generations_of(out / "model") == cfg.generations:
        return load_model(out / "model")  # nothing left to search: the model as it is, its evaluations kept
    if cfg.restarts > 1:
        return _search_restarts(cfg, on_generation, executor, starts, on_start, resume)
    if not starts:
        _checked_start(cfg)  # before any episode runs
    own = executor is None
    executor = executor or make_executor(cfg.ray_address, cfg.workers)
    t_start = time.perf_counter()
    wall_before = state["wall_s"] if state else 0.0
    # the episodes the search ran so far, its earlier sessions' too, but not the validations that ended them: a
    # resumed search counts what the same search run in one go counts (the validations it replaced apart)
    ran = [state["episodes"] if state else 0]
    replaced_validations = (state or {}).get("ended_validations", 0)
    start_choice = state["start_choice"] if state else None
    known: dict[str, float] = {}
    graph = state["graph"] if state else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        # an interrupted generation's episodes (a resume runs that generation again; a search begun again, all)
        shutil.rmtree(out / "episodes", ignore_errors=True)
        if not resume:  # a killed search's state is not this one's
            (out / STATE_FILE).unlink(missing_ok=True)
            _write_json(out / CONFIG_FILE, cfg.to_json())
        if state:  # the settings after the start chosen, and the generations' generator where it stood
            cfg = replace(SearchConfig.from_json(state["config"]),
                          **{k: getattr(cfg, k) for k in RESUMABLE})
            restore_globals(state)
        elif starts:
            start_choice = choose_start(cfg, starts, executor)
            ran[0] += start_choice["episodes"]
            begin = starts[start_choice["chosen"]]
            cfg = replace(cfg, features=begin.features(), start=begin.vector(begin.features()),
                          start_name=start_choice["chosen"], period_s=begin.period_s,
                          start_signal_weights=begin.signal_vectors(begin.features()))
        if start_choice and on_start:
            on_start(start_choice)
        features, start = _checked_start(cfg)
        vseeds = validation_seeds(cfg.seed, cfg.validation_seeds)
        # the chosen start ran on these very seeds already: the same episodes, so not again
        if start_choice:
            known["start"] = start_choice["candidates"][cfg.start_name]
        if state and state.get("known_start") is not None:
            known["start"] = state["known_start"]

        def checkpoint(strategies, history: list[dict], episodes: int) -> None:
            ran[0] += episodes
            save_state(out, {"config": cfg.to_json(), "generations_done": len(history), "strategies": strategies,
                             "history": history, "episodes": ran[0],
                             "wall_s": wall_before + time.perf_counter() - t_start, "start_choice": start_choice,
                             "known_start": known.get("start"), "graph": graph,
                             "ended_validations": replaced_validations})

        saved = state and {"strategies": state["strategies"], "history": state["history"]}
        if cfg.per_signal:
            from .per_signal import search_per_signal, start_on_validation

            if graph is None and start_choice:  # the chosen start's episodes said which signals there are
                graph = start_choice["signals"]
            elif graph is None:  # the start's validation episodes say it; their figure is the one compared at the end
                known["start"], graph, n = start_on_validation(cfg, list(start), executor,
                                                               out / "episodes" / "validation-start")
                ran[0] += n
            learned_signals, history, _ = search_per_signal(cfg, features, list(start), graph, executor, out,
                                                            on_generation, saved, checkpoint)
            learned = list(start)  # what a signal the model does not name runs
        else:
            learned, history = _shared_generations(cfg, features, start, executor, out, on_generation, saved,
                                                   checkpoint)
            learned_signals = {}
        # validated as saved: on a network that jams, the 7th decimal of a weight can move the delay by percent
        candidates = {"learned": _saved(learned), "start": _saved(start)}
        signal_weights = {"learned": {tls: _saved(w) for tls, w in learned_signals.items()},
                          "start": {tls: _saved(w) for tls, w in cfg.start_signal_weights.items()}}
        jobs = [(name, s, w, {"signal_weights": signal_weights[name]})
                for name, w in candidates.items() if name not in known for s in vseeds]
        res = run_episodes(cfg, executor, jobs, out / "episodes" / "validation")
        if res and not any(r.get("vehicles", 1) for r in res.values()):
            window = f" (--duration {cfg.duration_s:g} s: give a longer one)" if cfg.duration_s else ""
            raise TrainingError(f"no vehicle entered the network in the validation runs{window}: a delay of 0 s "
                                "says nothing of the weights")
        vdelay = {name: known[name] if name in known else
                  float(np.mean([res[(name, s)]["avg_delay_s"] for s in vseeds])) for name in candidates}
        # a tie keeps the start, the rule a reader can check; the search has to win to replace it
        chosen = "learned" if vdelay["learned"] < vdelay["start"] else "start"
    finally:
        if own:
            executor.close()
    shutil.rmtree(out / "episodes", ignore_errors=True)
    ran[0] += len(jobs)
    wall = wall_before + time.perf_counter() - t_start
    if (out / STATE_FILE).is_file():  # a later resume counts this validation's time, and its episodes apart
        update_state(out, wall_s=wall, ended_validations=replaced_validations + len(jobs))
    policy = {"features": list(features), "measure": cfg.measure, "weights": candidates[chosen],
              "period_s": cfg.period_s, "zone_m": cfg.zone(), "shared_lanes": cfg.shared()}
    if signal_weights[chosen]:
        policy["signal_weights"] = dict(sorted(signal_weights[chosen].items()))
    meta = {
        "scenario": cfg.scenario if cfg.scenario is not None else Path(cfg.sumocfg or cfg.net).name,
        "agent": AGENT,
        "policy": policy,
        "training": {
            "method": "cma-es per signal" if cfg.per_signal else "cma-es", "seed": cfg.seed,
            "generations": cfg.generations, "popsize": cfg.popsize,
            "seeds_per_generation": cfg.seeds_per_generation,
            "episodes": ran[0],
            # a resumed search's earlier validations, whose models this one replaced: run, not in `episodes`
            **({"replaced_validation_episodes": replaced_validations} if replaced_validations else {}),
            # the search's whole wall time: its sessions summed when it was resumed
            "seeds": [s for h in history for s in h["seeds"]], "run": cfg.run, "wall_s": round(wall, 1),
            "violations": sum(h["violations"] for h in history) + sum(max(0, r["violations"]) for r in res.values()),
            "config": cfg.to_json(),
            # the window its episodes covered (the network's whole one without --duration): `compare` and
            # `evaluate` say when runs cover another length
            "window_s": training_window_s(cfg.scenario, cfg.sumocfg, cfg.net, cfg.routes, cfg.duration_s),
            # what traffic it learned on: `evaluate` and `compare` say when a model runs on other route files
            "demand": training_demand(cfg.scenario, cfg.sumocfg, cfg.net, cfg.routes,
                                      float(cfg.run.get("demand_scale", 1.0) or 1.0),
                                      scales=[1.0, *cfg.demand_scales] if cfg.demand_scales else None),
        },
        "selection": {"seeds": vseeds, "metric": "avg_delay_s",
                      "learned_avg_delay_s": round(vdelay["learned"], 3),
                      "start_avg_delay_s": round(vdelay["start"], 3), "chosen": chosen,
                      **({"starts": {"candidates": {n: round(d, 3) for n, d in start_choice["candidates"].items()},
                                     "chosen": start_choice["chosen"], "wall_s": start_choice["wall_s"]}}
                         if start_choice else {})},
        "evaluations": [],
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }
    (out / "search.json").write_text(json.dumps({"config": cfg.to_json(), "history": history,
                                                 "selection": meta["selection"],
                                                 **({"neighbours": graph} if graph is not None else {})}, indent=1))
    model = Model(None, {}, {}, {}, meta)
    save_model(out / "model", model)
    return load_model(out / "model")


def check_search(cfg: SearchConfig, resume: bool = False) -> dict | None:
    """What `search` refuses before any episode (TrainingError, one line): settings that cannot run, a model
    already in `cfg.out`, and with `resume` nothing to resume, other settings than the search began with or
    fewer generations than it has done. Returns the state a single search goes on from (None: from its start).
    `signalwise train` calls it before it draws any progress."""
    out = Path(cfg.out)
    if not resume and (out / "model").exists():
        again = ", or --resume to search on" if (out / CONFIG_FILE).is_file() else ""
        raise TrainingError(f"{out}: a model is already there; use another --out{again}")
    if cfg.popsize < 2 or cfg.generations < 1 or cfg.seeds_per_generation < 1 or cfg.validation_seeds < 1 \
            or cfg.restarts < 1:
        raise TrainingError("popsize must be at least 2; generations, seeds per generation, validation seeds "
                            "and restarts at least 1")
    if not all(map(valid_demand_scale, cfg.demand_scales)):
        raise TrainingError(f"a demand scale is above 0 and at most {MAX_DEMAND_SCALE:g}; "
                            f"got {list(cfg.demand_scales)}")
    if not cfg.neighbour_weight >= 0 or ((cfg.neighbour_weight or cfg.hold_neighbours) and not cfg.per_signal):
        raise TrainingError("neighbour_weight is 0 or more; it and hold_neighbours are for a per-signal search only")
    if cfg.restarts == 1 and not cfg.zone() >= 0:
        raise TrainingError(f"zone_m is a distance in metres, 0 or more; got {cfg.zone()}")
    if cfg.restarts == 1 and cfg.shared() not in SHARED_LANES:
        raise TrainingError(f"shared_lanes {cfg.shared()!r}; choose from {', '.join(SHARED_LANES)}")
    if not resume:
        return None
    try:
        began = json.loads((out / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        kept = " holds a search without the settings a resume needs" if (out / "search.json").is_file() \
            else ": nothing to resume"
        raise TrainingError(f"{out}{kept} ({CONFIG_FILE}: {getattr(exc, 'strerror', None) or exc}); to go on "
                            "from a model's weights, search into a new --out with --start OUT/model --sigma 0.3") \
            from None
    now = json.loads(json.dumps(cfg.to_json()))
    for key in (k for k in began if k not in RESUMABLE):
        if now.get(key) != began[key]:
            raise TrainingError(f"--resume with another {key} ({now.get(key)!r}) than the search being resumed "
                                f"({began[key]!r}): give the settings it began with (only the generations, the "
                                "workers and Ray may change)")
    dirs = [out] if cfg.restarts == 1 else [out / "restarts" / f"seed-{cfg.seed + k}" for k in range(cfg.restarts)]
    for d in dirs:
        done = generations_done(d)
        if done > cfg.generations:
            raise TrainingError(f"--resume to {cfg.generations} generations, fewer than the {done} this search has "
                                f"done: give at least {done}")
    return load_state(out) if cfg.restarts == 1 else None


def save_state(out: Path, state: dict) -> None:
    """`state` into out/search_state.pkl, whole or not at all, with what the CMA-ES read from the process and
    not from themselves: numpy's generator where it stands, and `cma`'s verbosity (set when a strategy is made;
    unset, a resumed one prints warnings the search never asked for)."""
    _write_state(out, {**state, "rng": np.random.get_state(),
                       "cma_verbosity": load_cma().utilities.utils.global_verbosity})


def restore_globals(state: dict) -> None:
    """Numpy's generator and `cma`'s verbosity as `save_state` found them: the generations go on as if the
    process had never stopped."""
    np.random.set_state(state["rng"])
    load_cma().utilities.utils.global_verbosity = state["cma_verbosity"]


def update_state(out: Path, **fields) -> None:
    """The saved state with `fields` changed (its generator as it was saved)."""
    _write_state(out, {**load_state(out), **fields})


def load_state(out: Path) -> dict | None:
    """What `save_state` kept in `out`; None when the search there ended no generation. Its CMA-ES draw from
    numpy's own generator again; `restore_globals` puts that back where it stood."""
    try:
        data = (Path(out) / STATE_FILE).read_bytes()
    except FileNotFoundError:
        return None
    load_cma()  # the pickled strategies are `cma`'s, loaded without its extras
    try:
        return _StateUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line, whatever pickle raised
        raise TrainingError(f"{Path(out) / STATE_FILE}: not a search's state ({exc}); search into a new --out") from None


def generations_done(out: Path) -> int:
    """The generations the state in `out` counts (0 without one)."""
    state = load_state(out)
    return state["generations_done"] if state else 0


def _generations_of(model_dir: Path) -> int | None:
    try:
        return int(json.loads((model_dir / "meta.json").read_text())["training"]["generations"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: the name numpy's global generator is pickled under: a CMA-ES draws from it (`randn` is its bound method), and a
#: resumed one has to draw from it again, not from a copy
_NUMPY_RNG = "numpy.random.mtrand._rand"


class _StatePickler(pickle.Pickler):
    def persistent_id(self, obj):  # noqa: ANN001, ANN201
        return _NUMPY_RNG if obj is np.random.mtrand._rand else None


#: the modules a search state's objects come from (the `cma` package's, numpy's arrays and generator state), and
#: the few builtins its pickle names (a bound method is pickled as `getattr(object, name)`): a file that names
#: anything else (planted, or from elsewhere) is refused before anything in it runs. It narrows what a planted
#: file can reach; a pickle stays a pickle, and the docs say to resume only your own directories
_STATE_MODULES = ("cma", "numpy")
_STATE_BUILTINS = frozenset({"getattr", "range", "slice", "complex", "set", "frozenset", "bytearray", "object"})


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        allowed = name in _STATE_BUILTINS if module == "builtins" else module.split(".", 1)[0] in _STATE_MODULES
        found = super().find_class(module, name) if allowed else None
        if found is None or inspect.ismodule(found):
            raise pickle.UnpicklingError(f"{STATE_FILE} names {module}.{name}, which no search state holds")
        return found

    def persistent_load(self, pid):  # noqa: ANN001, ANN201
        if pid != _NUMPY_RNG:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return np.random.mtrand._rand


def _write_state(out: Path, state: dict) -> None:
    buf = io.BytesIO()
    _StatePickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    tmp = Path(out) / (STATE_FILE + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(Path(out) / STATE_FILE)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _saved(weights) -> list[float]:
    """The weights as the model stores them (6 decimals)."""
    return [round(float(w), 6) for w in weights]


def _shared_generations(cfg: SearchConfig, features: tuple[str, ...], start: tuple[float, ...],
                        executor: EpisodeExecutor, out: Path, on_generation: OnGeneration | None,
                        saved: dict | None = None, checkpoint: Checkpoint | None = None,
                        ) -> tuple[list[float], list[dict]]:
    """`cfg.generations` generations of one CMA-ES over the shared weights: its mean at the end, the records.
    `saved`: the strategy and records of the generations done (a resume); `checkpoint` is called after each."""
    if saved:
        es, history = saved["strategies"], saved["history"]
    else:
        cma = load_cma()
        es = cma.CMAEvolutionStrategy(np.asarray(start[1:], float), cfg.sigma0,
                                      {"popsize": cfg.popsize, "seed": cfg.seed, "verbose": -9,
                                       "CMA_stds": [INITIAL_STDS[f] for f in features[1:]]})
        history = []
    for g in range(len(history), cfg.generations):
        t0 = time.perf_counter()
        xs = es.ask()
        seeds = generation_seeds(cfg, g)
        jobs = [(i, s, full_weights(x), training_overrides(cfg, k)) for i, x in enumerate(xs)
                for k, s in enumerate(seeds)]
        res = run_episodes(cfg, executor, jobs, out / "episodes" / f"gen-{g:04d}")
        delay = np.array([np.mean([res[(i, s)]["avg_delay_s"] for s in seeds]) for i in range(len(xs))])
        es.tell(xs, delay.tolist())
        rec = GenerationRecord(g, seeds, round(float(delay.min()), 3), round(float(delay.mean()), 3),
                               round(float(es.sigma), 4), [round(w, 4) for w in full_weights(es.mean)],
                               sum(max(0, r["violations"]) for r in res.values()),
                               round(time.perf_counter() - t0, 1))
        history.append(asdict(rec))
        if checkpoint:
            checkpoint(es, history, len(res))
        if on_generation:
            on_generation(rec)
    return full_weights(es.mean), history


def _search_restarts(cfg: SearchConfig, on_generation: OnGeneration | None, executor: EpisodeExecutor | None,
                     starts: dict[str, SearchStart] | None, on_start: Callable[[dict], None] | None,
                     resume: bool = False) -> Model:
    """`cfg.restarts` searches with seeds `cfg.seed`, `cfg.seed` + 1, ...; the model of the one whose weights
    give the lowest mean delay on the first search's validation seeds (the first already ran there).
    `resume`: each search goes on from what its directory keeps (one that never began, from its start)."""
    out = Path(cfg.out)
    if not resume:
        # a killed run's searches (out/model is not there, so they never ended in a model): run again, as a
        # single search runs again into its --out
        shutil.rmtree(out / "restarts", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / CONFIG_FILE, cfg.to_json())
    own = executor is None
    executor = executor or make_executor(cfg.ray_address, cfg.workers)
    try:
        models = {}
        for k in range(cfg.restarts):
            seed = cfg.seed + k
            sub = out / "restarts" / f"seed-{seed}"
            models[seed] = search(replace(cfg, seed=seed, restarts=1, out=sub), on_generation, executor, starts,
                                  on_start, resume=resume and (sub / CONFIG_FILE).is_file())
        vseeds = validation_seeds(cfg.seed, cfg.validation_seeds)
        jobs = [(seed, s, m.meta["policy"]["weights"], {"features": m.meta["policy"]["features"],
                                                        "period_s": m.meta["policy"]["period_s"],
                                                        "signal_weights": m.meta["policy"].get("signal_weights")})
                for seed, m in models.items() if seed != cfg.seed for s in vseeds]
        t_validation = time.perf_counter()
        res = run_episodes(cfg, executor, jobs, out / "episodes" / "restarts")
        validation_s = time.perf_counter() - t_validation
    finally:
        if own:
            executor.close()
    shutil.rmtree(out / "episodes", ignore_errors=True)
    first = models[cfg.seed].meta["selection"]  # the first search ran on these seeds already
    delay = {seed: first[f"{first['chosen']}_avg_delay_s"] if seed == cfg.seed
             else float(np.mean([res[(seed, s)]["avg_delay_s"] for s in vseeds])) for seed in models}
    chosen = min(models, key=lambda seed: (delay[seed], seed))
    meta = json.loads(json.dumps(models[chosen].meta))
    trainings = [m.meta["training"] for m in models.values()]
    # the chosen search's own settings (its start, with --start auto), under the seed and restarts that redo it
    meta["training"].update({
        "seed": cfg.seed,
        "episodes": sum(t["episodes"] for t in trainings) + len(jobs),
        "seeds": [s for t in trainings for s in t["seeds"]],
        "violations": sum(t["violations"] for t in trainings) + sum(max(0, r["violations"]) for r in res.values()),
        # every search's, over all its sessions, and this choice among them
        "wall_s": round(sum(t["wall_s"] for t in trainings) + validation_s, 1),
        "config": {**meta["training"]["config"], "seed": cfg.seed, "restarts": cfg.restarts, "out": str(out)},
    })
    meta["selection"]["restarts"] = {"seeds": vseeds, "metric": "avg_delay_s",
                                     "candidates": {str(seed): round(d, 3) for seed, d in delay.items()},
                                     "chosen": chosen}
    meta["created"] = dt.datetime.now().isoformat(timespec="seconds")
    save_model(out / "model", Model(None, {}, {}, {}, meta))
    return load_model(out / "model")


def _checked_start(cfg: SearchConfig) -> tuple[tuple[str, ...], tuple[float, ...]]:
    features = check_features(cfg.features)
    start = cfg.start_weights()
    if features[0] != "in_halt" or len(start) != len(features) or start[0] != 1.0:
        raise TrainingError(f"a search weighs in_halt first, at 1, and starts with one weight per feature "
                            f"({', '.join(features)}); got {list(start)}")
    return features, start


def run_episodes(cfg: SearchConfig, executor: EpisodeExecutor, jobs: list[tuple], folder: Path) -> dict:
    """Run jobs (key, seed, weights[, overrides of the payload: features, period_s]) in one round."""
    payloads = [json.dumps({
        "key": [key, s], "weights": w, "features": list(cfg.features), "measure": cfg.measure, "zone_m": cfg.zone(),
        "shared_lanes": cfg.shared(), "sumo_seed": s, "scenario": cfg.scenario, "run": cfg.run,
        "duration_s": cfg.duration_s, "period_s": cfg.period_s, "run_dir": str(folder / f"{key}-s{s}"),
        "sumocfg": _abs(cfg.sumocfg), "net": _abs(cfg.net), "routes": [str(Path(r).resolve()) for r in cfg.routes],
        **(more[0] if more else {}),
    }) for key, s, w, *more in jobs]
    results = executor.run_round(run_policy_episode, payloads)
    out = {}
    for r in results:
        key, s = r["key"]
        if r["violations"] > 0:
            raise ModelError(f"episode {key} on seed {s}: the safety audit found {r['violations']} violation(s)")
        out[(key, s)] = r
    no_vehicle_due([r["avg_delay_s"] for r in out.values()], cfg.duration_s)
    return out


def _abs(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None
