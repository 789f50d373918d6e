r"""Max-pressure under the benchmark profile with another pressure or switching rule: what each is worth.

    .venv/bin/python bench/pressure_variants.py                      # 8 RESCO networks, 4 variants, 5 seeds
    .venv/bin/python bench/pressure_variants.py --variants benchmark,count,count+lost_time,count+hold_20 --seeds 1

Issue 16's check (a) asks max-pressure under RESCO's rules (the benchmark
profile) to beat RESCO's published fixed time on every network and the best
published result on arterial4x4 (654 s). Without teleports some seeds of
ingolstadt21 lock up, and arterial4x4 leaves thousands of vehicles outside.
This sweep runs the benchmark profile's max-pressure with one of its options
changed (`controller_options`, as a `--config` file sets them), on the same
seeds, so that a rule is judged over the whole set of networks, not on the
one it was tried for:

    benchmark         the profile's max-pressure: RESCO's MAXPRESSURE pressure, halting
                      vehicles in and out of each movement's 50 m zone, the lane before a turn
                      pocket split among the pockets; no hold, no lost time
    density           every vehicle per 100 m of the zone, in and out
    demand            every vehicle in, halting vehicles out
    count             every vehicle in and out, not per 100 m
    density+lost_time density, and a change must pay for the ending phase's yellow
                      (the safety profile's rule)
    count+lost_time   count, and the same rule
    count+hold_20     count, and a green holds 20 s before it is re-decided
    stopped           RESCO's own queue: vehicles seen halting since they entered the lane,
                      in and out, so a queue moving off still counts (`LaneState.stopped_veh`)
    stopped+lost_time stopped, and a change must pay for the ending phase's yellow
    density_demand    every vehicle in, halting vehicles out, both per 100 m of the zone
    skip / split      a lane that feeds several lanes is in no zone / split among the zones of the
                      signal lanes it feeds (`shared_lanes`; both profiles split, so `split`
                      is the profile's own and `skip` is RESCO's reading of each signal's lanes)

With `--timing safety` the same variants run beside the safety profile's
max-pressure instead (density_demand, 10 s hold, a change must pay for its
clearance), whose own rules are the variant named `benchmark` there:

    .venv/bin/python bench/pressure_variants.py --timing safety --variants density,density_demand \
        --networks resco:cologne1,resco:cologne3,...,single,corridor,grid

Each cell is one lean `signalwise run` in a fresh process, cached under OUT
as bench/resco.py caches its cells (the same code runs them). Prints the mean
delay of each variant over seeds 1..N with its ratio to the first variant's
(the first column), and writes the table to OUT/table.md.
"""

from __future__ import annotations

import argparse
import os

from resco import (
    RESCO,
    _stats,
    add_sweep_options,
    cell_notes,
    keep_table,
    load_cells,
    max_pressure_target_s,
    network_sha256,
    run_sweep,
    say_nothing_kept,
)

#: variant -> max-pressure's controller options beside the benchmark profile's; None: the profile's own
VARIANTS: dict[str, dict | None] = {
    "benchmark": None,
    "density": {"measure": "density"},
    "demand": {"measure": "demand"},
    "count": {"measure": "count"},
    "density+lost_time": {"measure": "density", "lost_time_s": "clearance"},
    "count+lost_time": {"measure": "count", "lost_time_s": "clearance"},
    "count+hold_20": {"measure": "count", "min_hold_s": 20.0},
    "halting+lost_time": {"measure": "halting", "lost_time_s": "clearance"},
    "halting+hold_20": {"measure": "halting", "min_hold_s": 20.0},
    "halting+serving": {"measure": "halting", "serving": "moving"},
    "halting+serving+lost_time": {"measure": "halting", "serving": "moving", "lost_time_s": "clearance"},
    "stopped": {"measure": "stopped"},
    "stopped+lost_time": {"measure": "stopped", "lost_time_s": "clearance"},
    "density_demand": {"measure": "density_demand"},
    "skip": {"shared_lanes": "skip"},
    "split": {"shared_lanes": "split"},
    "permitted_0.75": {"permitted_weight": 0.75},
    "permitted_0.5": {"permitted_weight": 0.5},
    "permitted_0.25": {"permitted_weight": 0.25},
}
DEFAULT_VARIANTS = ("benchmark", "density", "demand", "density+lost_time")


def plan(networks, variants, seeds, timing: str = "benchmark") -> list[dict]:
    """One cell per network, seed and variant; the variant names the cell's profile (its place in the cache):
    under the benchmark profile the variant's name, under another `TIMING:variant`."""
    cells = []
    for network in networks:
        digest = network_sha256(network)
        for seed in seeds:
            for variant in variants:
                name = variant if timing == "benchmark" else f"{timing}:{variant}"
                cell = {"network": network, "net_sha256": digest, "profile": name, "controller": "max-pressure",
                        "seed": seed}
                if timing != "benchmark":
                    cell["config"] = {"timing": timing}
                if VARIANTS[variant] is not None:
                    cell["config"] = {"timing": timing, "controller_options": VARIANTS[variant]}
                cells.append(cell)
    return cells


def table(grouped, networks, variants, seeds: int, timing: str = "benchmark") -> str:
    lines = ["| network | target | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    for net in networks:
        base = grouped.get((net, variants[0]))
        base_mean = _stats(base)[0] if base else None
        goal = max_pressure_target_s(net.split(":", 1)[-1]) if timing == "benchmark" else None
        row = []
        for v in variants:
            rows = grouped.get((net, v))
            if not rows:
                row.append("–")
                continue
            mean = _stats(rows)[0]
            text = f"{mean:.1f}"
            if goal is not None and mean < goal:
                text = f"**{text}**"
            if base_mean and v != variants[0]:
                text += f" ({mean / base_mean:.2f}×)"
            row.append(text + cell_notes(rows, seeds))
        shown = f"< {goal:g}" if goal else "–"
        lines.append(f"| {net} | {shown} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=",".join(f"resco:{n}" for n in RESCO),
                    help="comma-separated scenarios (resco:NAME or built-in names)")
    ap.add_argument("--timing", default="benchmark", choices=("benchmark", "safety"),
                    help="the profile the variants change (default benchmark: RESCO's rules)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated, from: {', '.join(VARIANTS)}")
    add_sweep_options(ap, "pressure_variants")
    args = ap.parse_args()
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    cells = plan(networks, variants, range(1, args.seeds + 1), args.timing)
    run_sweep(cells, args)
    grouped = {(net, name.split(":", 1)[-1]): rows
               for (net, name, _ctrl), rows in load_cells(args.out, cells).items()}
    if not grouped:
        say_nothing_kept(args.out, f"networks {', '.join(networks)}; variants {', '.join(variants)} under "
                                   f"{args.timing}; seeds 1–{args.seeds}")
        return
    text = (f"Max-pressure under the {args.timing} profile, average delay (RESCO definition), s, mean of seeds "
            f"1–{args.seeds}; bold: below the target of check (a); in brackets the ratio to the first variant's "
            f"({variants[0]}).\n\n" + table(grouped, networks, variants, args.seeds, args.timing))
    keep_table(args.out, text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
