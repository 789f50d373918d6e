"""Q-table speed: lookups/s, updates/s, and decision latency (observation -> state -> lookup -> shield tick).

    .venv/bin/python bench/qtable_bench.py [--states 4096] [--n 1000000]

Targets (issue 3): >= 1,000,000 lookups/s and >= 200,000 updates/s in one
process; median decision latency <= 100 us per intersection. "Lookup" is the
greedy action of a state (q[s].argmax over a row); the batch figure is the
vectorised form a trainer replaying many transitions uses, the scalar figure
is one Python call per lookup as the controller does it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from signalwise.control.base import ControlContext
from signalwise.control.learning.controller import QLController
from signalwise.control.learning.features import StateFeatures
from signalwise.control.learning.qtable import QTable, StateEncoding
from signalwise.control.shield import IntersectionShield
from signalwise.control.webster import fallback_plan
from signalwise.core.types import Intersection, LaneState, Movement, Observation, Phase, SignalStatus, Timing
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import shield_config


def four_phase_intersection() -> Intersection:
    """A four-arm intersection like the built-in `single`: 4 phases, 12 vehicle links."""
    lanes = [f"{a}_{k}" for a in "NESW" for k in range(3)]
    moves = tuple(Movement(i, lane, f"out{i}") for i, lane in enumerate(lanes))
    groups = [[1, 2, 7, 8], [0, 6], [4, 5, 10, 11], [3, 9]]
    phases = []
    for p, links in enumerate(groups):
        state = "".join("G" if i in links else "r" for i in range(12))
        phases.append(Phase(p, state, tuple(moves[i] for i in links)))
    timing = Timing(3.3, 2.4, (22, 5, 22, 5), (60, 60, 60, 60), 7, 14.5, 77, 150)
    return Intersection("C", tuple(phases), 12, moves, (), (), timing)


def bench_lookups(table: QTable, n: int, rng) -> tuple[float, float]:
    states = rng.integers(0, table.encoding.n_states, n)
    t0 = time.perf_counter()
    table.q[states].argmax(axis=1)
    batch = n / (time.perf_counter() - t0)
    m = min(n, 200_000)
    q = table.q
    t0 = time.perf_counter()
    for s in states[:m].tolist():
        q[s].argmax()
    scalar = m / (time.perf_counter() - t0)
    return batch, scalar


def bench_updates(table: QTable, n: int, rng) -> tuple[float, float]:
    states = rng.integers(0, table.encoding.n_states, n)
    actions = rng.integers(0, table.n_actions, n)
    targets = rng.normal(size=n).astype(np.float32)
    q = table.q
    t0 = time.perf_counter()
    # vectorised TD step (duplicates resolved by np.add.at, exactly like sequential sums of deltas)
    td = targets - q[states, actions]
    np.add.at(q, (states, actions), 0.1 * td)
    np.add.at(table.visits, (states, actions), 1)
    batch = n / (time.perf_counter() - t0)
    m = min(n, 200_000)
    t0 = time.perf_counter()
    for s, a, r in zip(states[:m].tolist(), actions[:m].tolist(), targets[:m].tolist(), strict=True):
        table.update(s, a, r, 0.1)
    scalar = m / (time.perf_counter() - t0)
    return batch, scalar


def bench_decision(n: int, rng, state: str = "compact") -> tuple[float, float]:
    """`compact`: the default agent (switch actions, max-pressure guide consulted on every decision)."""
    inter = four_phase_intersection()
    if state == "compact":
        features = StateFeatures(inter, actions="switch", state="compact")
    else:
        features = StateFeatures(inter)
    table = QTable(features.encoding, features.n_actions)
    table.visits[:] = 3
    table.q[:] = rng.normal(size=table.q.shape)
    ctrl = QLController(inter, features, table, guide="max-pressure" if state == "compact" else "none")
    shield = IntersectionShield(inter, fallback_plan(inter, ControlContext()), shield_config(RunConfig()))
    lanes = list(inter.in_lanes) + list(inter.out_lanes)
    samples = []
    t = 0.0
    for _ in range(n):
        t += 1.0
        ls = {lane: LaneState(int(q), int(q) + 1, 0.0, 0.0, 0.0) for lane, q in zip(lanes, rng.integers(0, 12, len(lanes)), strict=True)}
        # past minimum green, so every decision takes the whole path: state index, lookup, confidence
        obs = Observation(t, "C", ls, signal=SignalStatus(shield.phase, "green", 40.0))
        t0 = time.perf_counter_ns()
        shield.propose(ctrl.decide(obs))
        shield.tick(t)
        samples.append(time.perf_counter_ns() - t0)
    assert ctrl.decisions == n
    return statistics.median(samples) / 1000, float(np.percentile(samples, 99)) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=4096)
    ap.add_argument("--actions", type=int, default=4)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--decisions", type=int, default=20_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    table = QTable(StateEncoding(("s",), (args.states,)), args.actions)
    lb, ls = bench_lookups(table, args.n, rng)
    ub, us = bench_updates(table, args.n, rng)
    latency = {kind: bench_decision(args.decisions, rng, kind) for kind in ("compact", "lane-groups")}
    print(f"table {args.states} states x {args.actions} actions ({table.nbytes / 1024:.0f} KiB)")
    print(f"lookups/s   batch {lb:>14,.0f}   scalar {ls:>12,.0f}   (target >= 1,000,000)")
    print(f"updates/s   batch {ub:>14,.0f}   scalar {us:>12,.0f}   (target >= 200,000)")
    for kind, (med, p99) in latency.items():
        print(f"decision latency, {kind} state (obs -> state -> lookup -> shield tick): median {med:.1f} us, "
              f"p99 {p99:.1f} us (target <= 100 us median)")


if __name__ == "__main__":
    main()
