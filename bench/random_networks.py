"""Networks nobody tuned a rule on: made by SUMO's own generators, every classical controller.

    .venv/bin/python bench/random_networks.py                          # 4 networks, 5 seeds, safety profile
    .venv/bin/python bench/random_networks.py --variants density,shared_lanes=skip  # max-pressure variants beside

Every rule of max-pressure was tried on the eleven networks of bench/resco.py. A user's network is none of
them, so this sweep builds four more with `netgenerate` and `randomTrips.py`, which ship in the eclipse-sumo
package (nothing is downloaded), each with a fixed seed:

    rand-turns      a random network, 2 lanes, a left-turn pocket at every approach (34 signals)
    rand-1lane      a random network of single-lane roads, no pockets (29 signals)
    rand-incoming   a random network, 2 lanes, one phase per approach (tls.layout incoming; 47 signals)
    grid-turns      a 4 x 4 grid of 200 m blocks, 2 lanes and 40 m left-turn pockets (12 signals)

Demand: random trips over 1,800 s, more of them from the fringe. The generated files are kept under
OUT/nets and their digest keys the cached cells, so a SUMO that generates another network runs afresh.
Each cell is one lean `signalwise run` in a fresh process (bench/resco.py's machinery). Prints mean ± 95%
CI over seeds 1..N, change against the network's fixed program and Welch's p, and writes OUT/table.md.
`--variants` adds max-pressure with another `measure`, or another option as KEY=VALUE (controller_options),
beside the default.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from resco import add_sweep_options, keep_table, load_cells, run_sweep, table

#: name -> (netgenerate arguments, randomTrips.py arguments); every random choice has its seed
NETWORKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rand-turns": (("--rand", "--rand.iterations", "60", "--seed", "7", "-L", "2", "--turn-lanes", "1"),
                   ("-p", "1.5", "--seed", "42")),
    # SUMO's guess puts a signal where the approaches' speeds add up to 69 m/s: on single-lane roads at one
    # junction in 50; a threshold of 20 m/s signals 29 of them
    "rand-1lane": (("--rand", "--rand.iterations", "50", "--seed", "11", "-L", "1", "--tls.guess.threshold", "20"),
                   ("-p", "1.2", "--fringe-factor", "5", "--seed", "5")),
    "rand-incoming": (("--rand", "--rand.iterations", "80", "--seed", "3", "-L", "2", "--tls.layout", "incoming"),
                      ("-p", "1.2", "--fringe-factor", "5", "--seed", "5")),
    "grid-turns": (("--grid", "--grid.number", "4", "--grid.length", "200", "-L", "2", "--turn-lanes", "1",
                    "--turn-lanes.length", "40"),
                   ("-p", "1.2", "--fringe-factor", "5", "--seed", "5")),
}
DURATION_S = 1800.0
CONTROLLERS = ("fixed", "actuated", "max-pressure")


def generate(name: str, out: Path) -> tuple[Path, Path]:
    """The network and routes of `name` under OUT/nets/NAME, made once."""
    from signalwise.sim.sumo_home import sumo_home

    home = sumo_home()
    folder = out.resolve() / "nets" / name  # randomTrips runs in it: its paths must not be relative
    net, routes = folder / "net.net.xml", folder / "trips.rou.xml"  # randomTrips --validate writes routes.rou.xml
    if net.exists() and routes.exists():
        return net, routes
    folder.mkdir(parents=True, exist_ok=True)
    net_args, trip_args = NETWORKS[name]
    env = {**os.environ, "SUMO_HOME": str(home)}
    subprocess.run([str(home / "bin" / "netgenerate"), *net_args, "--tls.guess", "-o", str(net)],
                   check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net), "-e", f"{DURATION_S:g}",
                    "--validate", "-o", str(routes), *trip_args],
                   check=True, capture_output=True, env=env, cwd=folder)
    return net, routes


def _options(variant: str) -> dict:
    """max-pressure's options for a variant: `KEY=VALUE` (shared_lanes=skip), or a measure's name alone."""
    key, sep, value = variant.partition("=")
    return {key: value} if sep else {"measure": variant}


def plan(names, variants, seeds, out: Path) -> list[dict]:
    cells = []
    for name in names:
        net, routes = generate(name, out)
        digest = hashlib.sha256(net.read_bytes() + routes.read_bytes()).hexdigest()
        files = {"scenario": None, "net": str(net), "routes": [str(routes)], "duration_s": DURATION_S}
        for seed in seeds:
            for controller in CONTROLLERS:
                cells.append({"network": name, "net_sha256": digest, "profile": "safety", "controller": controller,
                              "seed": seed, "config": files})
            for variant in variants:
                cells.append({"network": name, "net_sha256": digest, "profile": f"safety:{variant}",
                              "controller": "max-pressure", "seed": seed,
                              "config": {**files, "timing": "safety", "controller_options": _options(variant)}})
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=",".join(NETWORKS), help=f"comma-separated, from: {', '.join(NETWORKS)}")
    ap.add_argument("--variants", default="",
                    help="comma-separated max-pressure variants to run beside the default: a measure (density, "
                         "demand, ...) or KEY=VALUE of its options (shared_lanes=skip)")
    add_sweep_options(ap, "random_networks")
    args = ap.parse_args()
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        ap.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    cells = plan(names, variants, range(1, args.seeds + 1), args.out)
    run_sweep(cells, args)
    grouped = {}
    for (net, profile, controller), rows in load_cells(args.out, cells).items():
        label = controller if profile == "safety" else f"{controller} ({profile.split(':', 1)[1]})"
        grouped[(net, "safety", label)] = rows
    labels = [*CONTROLLERS, *(f"max-pressure ({v})" for v in variants)]
    text = (f"Generated networks, safety profile, {DURATION_S:g} s: average delay (RESCO definition), s, mean ± 95% "
            f"CI over seeds 1–{args.seeds}; change vs the network's fixed program, Welch p.\n\n"
            + table(grouped, names, ["safety"], labels, args.seeds))
    keep_table(args.out, text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
