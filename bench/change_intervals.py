"""Each phase's change interval against one value for the whole junction, per network.

    .venv/bin/python bench/change_intervals.py                         # the 8 RESCO networks and the 3 built-ins
    .venv/bin/python bench/change_intervals.py --networks resco:cologne8

ITE works the yellow and the red clearance out per approach: the yellow from
its speed limit, the red clearance from the time to cross the junction on its
path at that speed. The shield gives each phase the longest its own links
need (`sim/signal_model.py`, `phase_change_intervals_s`). One value for the
whole junction would take the fastest approach's speed and the longest path.

For every ordered pair of green phases (a change from one to the other) this
prints the mean change interval (yellow + red clearance) under both rules,
the per-phase one as a 1 s simulation shows it (the shield rounds the yellow
and the red clearance each up to whole steps, `control/shield.py`; the
benchmark profile's whole-second yellow loses nothing to that),
the one the links that end their green need (ITE per link, the finest
possible), and how many changes the junction-wide value gives less than
those links need, and how many changes keep some vehicle link green
throughout (the phase-score agent's `switch_cut_*` features tell those apart).
Reads the networks only (no traffic), in a few seconds.
"""

from __future__ import annotations

import argparse
import statistics

import libsumo

from signalwise.control.shield import ceil_to_step
from signalwise.core import ite_all_red_s, ite_yellow_s
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import timing_defaults
from signalwise.sim.scenario import load
from signalwise.sim.signal_model import link_speed_and_path, read_all

#: the simulation step the benchmarks run at (RunConfig's default)
STEP_S = RunConfig(scenario="grid").step_length_s
NETWORKS = ("resco:cologne1,resco:cologne3,resco:cologne8,resco:ingolstadt1,resco:ingolstadt7,"
            "resco:ingolstadt21,resco:grid4x4,resco:arterial4x4,single,corridor,grid")


def per_link_change_s(inter) -> dict[int, float]:
    """Vehicle link -> its own ITE yellow + red clearance (its approach's speed, its path across)."""
    out = {}
    for m in inter.movements:
        if m.is_crosswalk:
            continue
        speed, path = link_speed_and_path(m, inter.approach_speed_mps, inter.width_m)
        out[m.link_index] = ite_yellow_s(speed) + ite_all_red_s(path, speed)
    return out


def network_row(name: str) -> tuple[str, int, float, float, float, float, int, int]:
    scenario = load(name)
    libsumo.start(["sumo", "-n", str(scenario.net_file), "--no-warnings", "--no-step-log"])
    try:
        inters, _refused = read_all(libsumo, timing_defaults(RunConfig(scenario=name)))  # the safety profile
    finally:
        libsumo.close()
    wide, per_phase, shown, needed, short, keeping = [], [], [], [], 0, 0
    for inter in inters:
        junction_s = ite_yellow_s(inter.approach_speed_mps) + ite_all_red_s(inter.width_m, inter.approach_speed_mps)
        link_s = per_link_change_s(inter)
        for a in inter.phases:
            for b in inter.phases:
                ending = [i for i in a.green_links - b.green_links if i in link_s]
                if a is b or not ending:
                    continue
                need = max(link_s[i] for i in ending)
                wide.append(junction_s)
                per_phase.append(inter.timing.clearance_of(a.index))
                shown.append(ceil_to_step(inter.timing.yellow_of(a.index), STEP_S)
                             + ceil_to_step(inter.timing.all_red_of(a.index), STEP_S))
                needed.append(need)
                short += junction_s < need - 1e-9
                keeping += any(i in link_s for i in a.green_links & b.green_links)
    return (name, len(wide), statistics.fmean(wide), statistics.fmean(per_phase), statistics.fmean(shown),
            statistics.fmean(needed), short, keeping)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=NETWORKS, help="comma-separated scenarios")
    args = ap.parse_args()
    print("| network | phase changes | junction-wide, s | each phase its own, s | the same at 1 s steps, s "
          "| what the ending links need, s "
          "| changes the junction-wide value under-clears | changes that keep a vehicle link green |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.networks.split(","):
        net, n, wide, own, shown, need, short, keeping = network_row(name.strip())
        print(f"| {net} | {n} | {wide:.2f} | {own:.2f} | {shown:.2f} | {need:.2f} | {short} | {keeping} |")


if __name__ == "__main__":
    main()
