"""Do the adaptive controllers beat fixed time? And how do we compare with RESCO's published figures?

Runs `signalwise compare` (5 seeds) on the built-in scenarios with all four
controllers, and fixed vs max-pressure on RESCO networks, then prints the
average delay (RESCO definition) with 95% CI and, against fixed over the same seeds, the paired t-test's
p (`p_paired`) and Welch's (`p_welch`).

    .venv/bin/python bench/quality.py [--seeds 5] [--builtin single,corridor,grid]
                                      [--resco cologne1,ingolstadt1,grid4x4] [--out bench/out/quality]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig

#: RESCO (Ault & Sharon, NeurIPS 2021) average delay, seconds
PUBLISHED = {
    "cologne1": {"fixed-time": 56.6, "best learned": 26.1},
    "ingolstadt1": {"fixed-time": 39.4, "best learned": 20.9},
    "grid4x4": {"best learned": 33.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--builtin", default="single,corridor,grid")
    ap.add_argument("--resco", default="cologne1,ingolstadt1,grid4x4")
    ap.add_argument("--out", type=Path, default=Path("bench/out/quality"))
    args = ap.parse_args()
    seeds = list(range(1, args.seeds + 1))
    report = {}
    jobs = [(s, ["fixed", "webster", "actuated", "max-pressure"]) for s in args.builtin.split(",") if s]
    jobs += [(f"resco:{s}", ["fixed", "max-pressure"]) for s in args.resco.split(",") if s]
    for scenario, controllers in jobs:
        res = compare_controllers(RunConfig(scenario=scenario, emissions=True), controllers, seeds,
                                  args.out / scenario.replace(":", "-"))
        delay = res.summary["metrics"]["avg_delay_s"]["controllers"]
        row = {c: {"mean": e["mean"], "ci": [e["ci_low"], e["ci_high"]], "change_pct": e.get("change_pct"),
                   "p_paired": e.get("p_paired"), "p_welch": e.get("p_welch")} for c, e in delay.items()}
        row["safety_violations"] = res.summary["safety_violations"]
        name = scenario.split(":")[-1]
        if scenario.startswith("resco:") and name in PUBLISHED:
            row["published_resco"] = PUBLISHED[name]
        report[scenario] = row
        print(scenario, json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
