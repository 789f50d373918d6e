"""What each safety rule costs: the benchmark profile with one of the safety profile's rules added at a time.

    .venv/bin/python bench/safety_price.py                                   # 4 networks, max-pressure and fixed
    .venv/bin/python bench/safety_price.py --networks resco:cologne1 --seeds 2 --controllers max-pressure

The price of safety (docs/benchmarks.md) is a controller's delay under the
safety profile over its delay under the benchmark profile (RESCO's rules).
The two profiles differ in several rules at once; this sweep starts from the
benchmark profile and adds one rule of the safety profile per variant, so
each rule's share of the price is measured on the same seeds:

    benchmark    RESCO's rules: 3 s yellow, no all-red, no pedestrian intervals,
                 no maximum green or cycle bound, no teleports, a decision every 10 s
    +yellow      each phase's ITE yellow from the speed limits of the approaches it serves (3-6 s)
    +all_red     each phase's ITE all-red from its links' paths across the junction (1-4 s)
    +clearance   both: the whole change interval of the safety profile
    +protected_yellow  a protected green arrow going to a permitted green shows yellow
                 and red clearance first (at the benchmark's 3 s yellow, no all-red)
    +ped         pedestrian walk and clearance on phases serving a crosswalk
    +max_green   60 s maximum green
    +cycle       cycle bounds 40-150 s (every link served within 150 s)
    +teleport    SUMO's teleport after 300 s of standstill
    +rules       max-pressure only: the safety profile's decision rules (every 5 s,
                 10 s hold, a change must pay for its clearance) and its pressure
                 (every vehicle in and halting vehicles out, per 100 m, where the
                 benchmark's is RESCO's halting vehicles in and out; both split the
                 lane before a pocket among the pockets)
    safety       all of them

Each cell is one lean `signalwise run` in a fresh process, cached under OUT
as bench/resco.py caches its cells (the same code runs them), so an
interrupted sweep resumes. Prints, per network and controller, the mean delay
of each variant over seeds 1..N and its ratio to the benchmark's, and writes
the table to OUT/table.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from resco import (
    _stats,
    add_sweep_options,
    cell_notes,
    cell_path,
    keep_table,
    load_cells,
    run_sweep,
    say_nothing_kept,
)

from signalwise.control.max_pressure import MEASURE, SHARED_LANES_DEFAULT

#: variant -> RunConfig keys it sets beside the benchmark profile; None = a whole named profile
VARIANTS: dict[str, dict | None] = {
    "benchmark": None,
    "+yellow": {"timing": {"profile": "benchmark", "yellow_s": None}},
    "+all_red": {"timing": {"profile": "benchmark", "all_red_s": None}},
    "+ped": {"timing": {"profile": "benchmark", "ped_intervals": True}},
    "+clearance": {"timing": {"profile": "benchmark", "yellow_s": None, "all_red_s": None}},
    "+protected_yellow": {"timing": {"profile": "benchmark", "protected_yellow": True}},
    "+max_green": {"timing": {"profile": "benchmark", "max_green_s": 60.0}},
    "+cycle": {"timing": {"profile": "benchmark", "cycle_min_s": 40.0, "cycle_max_s": 150.0}},
    "+teleport": {"timing": "benchmark", "time_to_teleport_s": 300.0},
    "+rules": {"timing": "benchmark", "controller_options": {"period_s": 5.0, "min_hold_s": 10.0,
                                                             "lost_time_s": "clearance", "measure": MEASURE,
                                                             "shared_lanes": SHARED_LANES_DEFAULT}},
    "safety": None,
}
#: variants that only mean something for one controller
ONLY_FOR = {"+rules": "max-pressure"}


def plan(networks, controllers, seeds, variants=tuple(VARIANTS)) -> list[dict]:
    cells = []
    for network in networks:
        for seed in seeds:
            for variant in variants:
                config = VARIANTS[variant]
                for controller in controllers:
                    if ONLY_FOR.get(variant, controller) != controller:
                        continue
                    cell = {"network": network, "profile": variant, "controller": controller, "seed": seed}
                    if config is not None:
                        cell["config"] = config
                    cells.append(cell)
    return cells


def table(grouped, networks, controllers, seeds: int, variants=tuple(VARIANTS)) -> str:
    lines = ["| network | controller | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    for net in networks:
        for ctrl in controllers:
            base = grouped.get((net, "benchmark", ctrl))
            base_mean = _stats(base)[0] if base else None
            row = []
            for v in variants:
                rows = grouped.get((net, v, ctrl))
                if not rows:
                    row.append("–")
                    continue
                mean = _stats(rows)[0]
                text = f"{mean:.1f}"
                if base_mean and v != "benchmark":
                    text += f" ({mean / base_mean:.2f}×)"
                row.append(text + cell_notes(rows, seeds))
            if any(t != "–" for t in row):
                lines.append(f"| {net} | {ctrl} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="resco:cologne1,resco:ingolstadt1,resco:cologne8,single",
                    help="comma-separated scenarios (resco:NAME or built-in names)")
    ap.add_argument("--controllers", default="max-pressure,fixed", help="comma-separated controller specs")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, from: {', '.join(VARIANTS)} (default: all; ratios need benchmark)")
    add_sweep_options(ap, "safety_price")
    args = ap.parse_args()
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    cells = plan(networks, controllers, range(1, args.seeds + 1), variants)
    run_sweep(cells, args)
    grouped = load_cells(args.out, cells)
    if not grouped:
        say_nothing_kept(args.out, f"networks {', '.join(networks)}; controllers {', '.join(controllers)}; "
                                   f"variants {', '.join(variants)}; seeds 1–{args.seeds}")
        return 0
    text = (f"Average delay (RESCO definition), s, mean of seeds 1–{args.seeds}; in brackets the ratio to the "
            "benchmark profile's (the price of that rule alone).\n\n" + table(grouped, networks, controllers,
                                                                                args.seeds, variants))
    keep_table(args.out, text)
    missing = [c for c in cells if not cell_path(args.out, c).exists()]
    if missing:
        print(f"\n{len(missing)} cell(s) failed; run the command again to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
