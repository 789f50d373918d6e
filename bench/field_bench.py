"""The live runtime's field: SUMO in a worker process (`SumoProcess`) against in-process libsumo (`SumoBackend`).

    .venv/bin/python bench/field_bench.py [--scenario grid10x10] [--ticks 300] [--rounds 3] [--from-s 1500]

One tick is what the live loop needs from its field each step: advance SUMO
one step and have the halting and vehicle counts of every lane of the
network. In-process that is `step()` plus two libsumo calls per lane; with
the worker it is one `step()`, whose single reply carries all of it (the
lanes are registered once). Both start from the same saved state in the
peak hour (`--from-s`), so the network is loaded, and they alternate
(in-process, worker, in-process, ...) so a busy machine slows both alike.

Printed: per backend, ticks per second (median over rounds) and the tick's
wall time p50 / p99 (median over rounds), and the worker's figures divided
by the in-process ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import sumolib

from signalwise.sim.backend import SumoBackend, SumoOptions
from signalwise.sim.scenario import load
from signalwise.sim.worker import SumoProcess


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def _in_process(opts: SumoOptions, lanes: list[str], ticks: int) -> list[float]:
    times = []
    with SumoBackend(opts) as b:
        lane = b.api.lane
        halting, number = lane.getLastStepHaltingNumber, lane.getLastStepVehicleNumber
        clock = time.perf_counter
        for _ in range(ticks):
            t0 = clock()
            b.step()
            [halting(x) for x in lanes]
            [number(x) for x in lanes]
            times.append(clock() - t0)
    return times


def _worker(opts: SumoOptions, lanes: list[str], ticks: int) -> list[float]:
    times = []
    with SumoProcess(opts) as p:
        p.register_lanes(lanes)
        clock = time.perf_counter
        before = p.exchanges
        for _ in range(ticks):
            t0 = clock()
            p.step()
            times.append(clock() - t0)
        assert p.exchanges - before == ticks, "a tick must be one exchange"
        assert p.halting_veh(lanes) >= 0 and p.exchanges - before == ticks  # answered from the step's reply
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="grid10x10")
    ap.add_argument("--ticks", type=int, default=300, help="ticks per backend per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--from-s", type=float, default=1500.0, help="simulated time of the saved state both start from")
    args = ap.parse_args()

    s = load(args.scenario)
    net = sumolib.net.readNet(str(s.net_file), withInternal=False)
    lanes = sorted(ln.getID() for e in net.getEdges() for ln in e.getLanes())
    base = SumoOptions(net_file=s.net_file, route_files=s.route_files, seed=1)
    with tempfile.TemporaryDirectory(prefix="signalwise-field-bench-") as tmp:
        state = Path(tmp) / "state.xml"
        with SumoBackend(base) as b:
            while b.time_s() < args.from_s:
                b.step()
            vehicles = b.api.vehicle.getIDCount()
            b.save_state(state)
        opts = dataclasses.replace(base, load_state=state, begin_s=None)
        print(f"{args.scenario}: {len(lanes)} lanes registered, {vehicles} vehicles at t={args.from_s:g} s; "
              f"{args.rounds} rounds x {args.ticks} ticks per backend, alternating")
        runs: dict[str, list[list[float]]] = {"in-process": [], "worker": []}
        for r in range(args.rounds):
            order = ("in-process", "worker") if r % 2 == 0 else ("worker", "in-process")
            for name in order:
                fn = _in_process if name == "in-process" else _worker
                runs[name].append(fn(opts, lanes, args.ticks))

    def figures(name: str) -> tuple[float, float, float]:
        rounds = runs[name]
        tps = statistics.median(len(t) / sum(t) for t in rounds)
        p50 = statistics.median(_percentile(t, 0.50) for t in rounds) * 1e3
        p99 = statistics.median(_percentile(t, 0.99) for t in rounds) * 1e3
        return tps, p50, p99

    here, there = figures("in-process"), figures("worker")
    print(f"{'field':<24}{'ticks/s':>10}{'tick p50 ms':>14}{'tick p99 ms':>14}")
    print(f"{'SumoBackend (in-process)':<24}{here[0]:>10.0f}{here[1]:>14.2f}{here[2]:>14.2f}")
    print(f"{'SumoProcess (worker)':<24}{there[0]:>10.0f}{there[1]:>14.2f}{there[2]:>14.2f}")
    print(f"{'worker / in-process':<24}{there[0] / here[0]:>10.2f}{there[1] / here[1]:>14.2f}"
          f"{there[2] / here[2]:>14.2f}")


if __name__ == "__main__":  # the worker's child process is spawned: it must not run this again
    main()
