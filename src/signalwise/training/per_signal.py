"""Refining the phase-score weights signal by signal: one CMA-ES per signal, all in the same episodes.

Why: a shared model weighs every signal of a network alike, and ingolstadt21's
21 signals run from a two-phase crossing to a six-phase cluster. One CMA-ES
over every signal's weights at once (21 × 14 numbers there) would need far
more episodes than a search has. Here each signal has its own CMA-ES over
its own weights (cooperative coevolution): candidate k of a generation is
every signal's k-th proposal, run together in one episode, and each signal's
search is told the halting vehicles on its own approaches in that episode
(`metrics.intersections[id].avg_queue_veh`, sampled every 5 s). One episode
thus ranks a candidate for every signal, and a generation costs what a
shared one costs.

What the local measure misses: a queue a signal pushes onto its neighbour's
approach counts at the neighbour, and a vehicle that could not enter counts
nowhere. `neighbour_weight` (`--neighbour-weight`) adds each neighbouring
signal's queue to a signal's score, that much of it (the neighbours:
`sim.lane_zones.signal_neighbours`, read in the episodes themselves), so a
signal is ranked also by what it does to the signals beside it. Yet in a
shared episode a signal's queue moves with its neighbours' candidates too;
`hold_neighbours` (`--hold-neighbours`) lets one colour class of the signal
graph try its candidates per episode while the others run their search's
mean, at a round of episodes per class. docs/learning.md measures both:
neither lowered the held-out delay. The validation decides on the
network's average delay (RESCO's), as the shared search does, so a
refinement that loses there to its start is not kept
(`policy_search.search`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..control.learning.qtable import ModelError
from .cmaes import load_cma
from .executors import EpisodeExecutor
from .policy_search import (
    INITIAL_STDS,
    Checkpoint,
    GenerationRecord,
    OnGeneration,
    SearchConfig,
    full_weights,
    generation_seeds,
    run_episodes,
    signal_graph,
    training_overrides,
    validation_seeds,
)


def start_on_validation(cfg: SearchConfig, start: list[float], executor: EpisodeExecutor,
                        folder: Path) -> tuple[float, dict[str, tuple[str, ...]], int]:
    """The start (with its own per-signal weights) on the validation seeds: its mean delay, the signals the
    episodes controlled (each gets a search) with their neighbours, and the episodes run. The final validation
    reuses the figure."""
    vseeds = validation_seeds(cfg.seed, cfg.validation_seeds)
    jobs = [("start", s, start, {"signal_weights": dict(cfg.start_signal_weights)}) for s in vseeds]
    res = run_episodes(cfg, executor, jobs, folder)
    return float(np.mean([r["avg_delay_s"] for r in res.values()])), signal_graph(list(res.values())), len(jobs)


def colour_classes(neighbours: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """The signals split into classes no two neighbours share (greedy colouring, most neighbours first, ties
    by id: the same classes every time). Written here: a dozen lines, where networkx would be a dependency
    for one function."""
    colour: dict[str, int] = {}
    for tls in sorted(neighbours, key=lambda t: (-len(neighbours[t]), t)):
        taken = {colour[o] for o in neighbours[tls] if o in colour}
        colour[tls] = next(c for c in range(len(neighbours) + 1) if c not in taken)
    return [sorted(t for t, c in colour.items() if c == k) for k in range(max(colour.values(), default=-1) + 1)]


def signal_score(queues: dict[str, float], tls: str, neighbours: tuple[str, ...], neighbour_weight: float) -> float:
    """What a signal's search minimises for one episode: its approaches' mean queue, plus `neighbour_weight`
    times each neighbour's."""
    return queues[tls] + neighbour_weight * sum(queues.get(other, 0.0) for other in neighbours)


def search_per_signal(cfg: SearchConfig, features: tuple[str, ...], start: list[float],
                      signals: dict[str, tuple[str, ...]], executor: EpisodeExecutor, out: Path,
                      on_generation: OnGeneration | None = None, saved: dict | None = None,
                      checkpoint: Checkpoint | None = None) -> tuple[dict[str, list[float]], list[dict], int]:
    """`cfg.generations` generations of one CMA-ES per signal (`signals`: each with its neighbours); each
    signal's distribution mean at the end and the generations' records (network delays of the candidates,
    the signals' mean step size and weights) and the episodes this call ran. `saved`: the strategies and records of the generations done (a
    resume); `checkpoint` is called after each generation with the strategies, the records and its episodes."""
    if not signals:
        raise ModelError("a per-signal search needs signals the controller decides; the episodes had none")
    if saved:
        ess, history = saved["strategies"], saved["history"]
    else:
        cma = load_cma()
        opts = {"popsize": cfg.popsize, "verbose": -9, "CMA_stds": [INITIAL_STDS[f] for f in features[1:]]}
        # each signal its own seed (cma's 0 means "from the clock"), created in a fixed order: the same model again
        ess = {tls: cma.CMAEvolutionStrategy(np.asarray(cfg.start_signal_weights.get(tls, start)[1:], float),
                                             cfg.sigma0, {**opts, "seed": 1 + 1_000 * cfg.seed + i})
               for i, tls in enumerate(signals)}
        history = []
    # every signal tries its candidates at once, or (hold_neighbours) one colour class at a time
    groups = colour_classes(signals) if cfg.hold_neighbours else [list(signals)]
    group_of = {tls: gi for gi, group in enumerate(groups) for tls in group}
    episodes = 0
    for g in range(len(history), cfg.generations):
        t0 = time.perf_counter()
        xs = {tls: es.ask() for tls, es in ess.items()}
        seeds = generation_seeds(cfg, g)
        jobs = [(f"{gi}-{k}", s, start,
                 {"signal_weights": {tls: full_weights(x[k] if group_of[tls] == gi else ess[tls].mean)
                                     for tls, x in xs.items()}, **training_overrides(cfg, j)})
                for gi in range(len(groups)) for k in range(cfg.popsize) for j, s in enumerate(seeds)]
        res = run_episodes(cfg, executor, jobs, out / "episodes" / f"gen-{g:04d}")
        episodes += len(res)
        for tls, es in ess.items():
            es.tell(xs[tls], [float(np.mean([signal_score(res[(f"{group_of[tls]}-{k}", s)]["queues"], tls,
                                                          signals[tls], cfg.neighbour_weight) for s in seeds]))
                              for k in range(cfg.popsize)])
        delay = np.array([np.mean([res[(key, s)]["avg_delay_s"] for s in seeds])
                          for key in dict.fromkeys(key for key, _ in res)])
        means = np.array([full_weights(es.mean) for es in ess.values()])
        rec = GenerationRecord(g, seeds, round(float(delay.min()), 3), round(float(delay.mean()), 3),
                               round(float(np.mean([es.sigma for es in ess.values()])), 4),
                               [round(float(w), 4) for w in means.mean(axis=0)],
                               sum(max(0, r["violations"]) for r in res.values()),
                               round(time.perf_counter() - t0, 1))
        history.append(asdict(rec))
        if checkpoint:
            checkpoint(ess, history, len(res))
        if on_generation:
            on_generation(rec)
    return {tls: full_weights(es.mean) for tls, es in ess.items()}, history, episodes
