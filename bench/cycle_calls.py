"""Whom the cycle bound forces round, and what a bound that runs from calls (`timing.cycle_calls`) changes.

    .venv/bin/python bench/cycle_calls.py                                    # arterial4x4, max-pressure, seeds 1-5
    .venv/bin/python bench/cycle_calls.py --scenario resco:cologne3 --controller actuated --seeds 3

For each seed, two runs under the safety profile:

- the default bound (every link served within cycle_max_s of its last green):
  each force-off by the cycle bound is checked for a vehicle on any loop of
  the phase it forced (the stop-bar and advance loops' events in the log),
  at that moment and in the 30 s before;
- the same with `timing: {cycle_calls: true}`: a covering phase is forced
  only after a vehicle was seen on its lanes.

Both record in full (without emissions), so that their delays come from the
same outputs.

Prints per seed and the mean over seeds: the delay (RESCO's definition),
vehicles never inserted, force-offs by the cycle bound, the share of them
that served a phase whose loops saw nobody in the 30 s before, and
max-outs. Runs in parallel worker processes (`--workers`), each run in a
fresh one: libsumo runs one simulation per process, and a second one in the
same process can differ from the same run alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import re
import statistics
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

LOOKBACK_S = (0.0, 30.0)


def _occupied_intervals(run_dir: Path) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(device, detector channel) -> the intervals its loop was occupied, from the log's 82 (on) / 81 (off)."""
    from signalwise.core import read_events

    on: dict[tuple[str, int], float] = {}
    out: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for e in read_events(run_dir / "events.csv"):
        key = (e.device_id, e.parameter)
        if e.event_code == 82:
            on[key] = e.time_s
        elif e.event_code == 81 and key in on:
            out[key].append((on.pop(key), e.time_s))
    for key, s in on.items():
        out[key].append((s, float("inf")))
    return out


def forced_empty(run_dir: Path) -> dict[str, int]:
    """Force-offs by the cycle bound, and how many forced a phase none of whose loops saw a vehicle lately."""
    model = {i["id"]: i for i in json.loads((run_dir / "signal_model.json").read_text())}
    loops: dict[tuple[str, str], list[int]] = defaultdict(list)
    with open(run_dir / "detectors.csv") as f:
        for row in csv.DictReader(f):
            loops[(row["DeviceId"], row["Lane"])].append(int(row["Parameter"]))
    occupied = _occupied_intervals(run_dir)
    counts = {"forced": 0, **{f"nobody_{int(w)}s": 0 for w in LOOKBACK_S}}
    with open(run_dir / "interventions.csv") as f:
        for row in csv.DictReader(f):
            if row["rule"] != "cycle_max":
                continue
            m = re.search(r"replaced by phase (\d+)", row["detail"]) or re.search(r"^phase (\d+) must", row["detail"])
            dev, t = row["device_id"], float(row["time_s"])
            phase = next(p for p in model[dev]["phases"] if p["number"] == int(m.group(1)))
            lanes = {model[dev]["links"][k]["in_lane"] for k in phase["green_links"]}
            channels = [ch for lane in lanes for ch in loops[(dev, lane)]]
            counts["forced"] += 1
            for w in LOOKBACK_S:
                seen = any(a <= t and b >= t - w for ch in channels for a, b in occupied.get((dev, ch), ()))
                counts[f"nobody_{int(w)}s"] += not seen
    return counts


def one(scenario: str, controller: str, seed: int, calls: bool, measure: str | None = None) -> dict:
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.run import execute_run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(scenario=scenario, controller=controller, seed=seed, record="full", emissions=False,
                        timing={"profile": "safety", "cycle_calls": calls},
                        controller_options={"measure": measure} if measure else {})
        r = execute_run(cfg, Path(tmp) / "run")
        net, iv = r.metrics["network"], r.metrics["shield_interventions"]
        out = {"seed": seed, "calls": calls, "delay_s": net["avg_delay_s"],
               "never_inserted": net.get("never_inserted", 0), "cycle_max": iv.get("cycle_max", 0),
               "max_green": iv.get("max_green", 0), "violations": r.metrics["safety"]["violations"]}
        if not calls:
            out.update(forced_empty(r.run_dir))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="resco:arterial4x4")
    ap.add_argument("--controller", default="max-pressure")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--measure", default=None, help="max-pressure's measure (controller_options), default its own")
    args = ap.parse_args()
    jobs = [(args.scenario, args.controller, s, c, args.measure) for s in range(1, args.seeds + 1)
            for c in (False, True)]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        rows = list(pool.map(one, *zip(*jobs, strict=True)))
    print(f"{args.scenario}, {args.controller}, safety profile, seeds 1-{args.seeds}")
    print("| seed | bound | delay (s) | never inserted | cycle-bound force-offs | of them, nobody on the "
          "forced phase's loops now / in the 30 s before | max-outs | audit violations |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        empty = f"{r['nobody_0s']} / {r['nobody_30s']}" if "nobody_0s" in r else "–"
        print(f"| {r['seed']} | {'from calls' if r['calls'] else 'every link'} | {r['delay_s']:.1f} | "
              f"{r['never_inserted']} | {r['cycle_max']} | {empty} | {r['max_green']} | {r['violations']} |")
    for calls in (False, True):
        sel = [r for r in rows if r["calls"] == calls]
        mean = statistics.mean(r["delay_s"] for r in sel)
        forced = sum(r["cycle_max"] for r in sel)
        line = f"{'from calls' if calls else 'every link'}: mean delay {mean:.1f} s, {forced} force-offs"
        if not calls:
            line += (f", {sum(r['nobody_30s'] for r in sel) / max(forced, 1):.0%} of them with nobody on the "
                     f"forced phase's loops in the 30 s before")
        print(line)


if __name__ == "__main__":
    main()
