r"""The phase-score agent under both timing profiles: train, compare on held-out seeds, price of safety.

For each network and each profile (`safety`, the default, and `benchmark`,
RESCO's rules): `signalwise train --agent phase-score --timing PROFILE`
(seed 1; the features measured over max-pressure's 50 m lane zones unless
--zone-m says otherwise), then `signalwise compare --timing PROFILE
--controllers fixed,max-pressure,ql:MODEL --seeds 5` on held-out seeds 1-5. Prints mean
delay (RESCO definition) per controller and profile, ql's change against
max-pressure with Welch and paired p, the price of safety (delay under
safety / delay under benchmark) of max-pressure and ql, the training wall
time, and the best published RESCO result where there is one.

    .venv/bin/python bench/learning_profiles.py --networks resco:cologne1,resco:ingolstadt1
    .venv/bin/python bench/learning_profiles.py --networks resco:cologne1 --generations 10 --measure count
    .venv/bin/python bench/learning_profiles.py --networks resco:cologne3 --measure density \
        --start max-pressure-hold --out bench/out/learning_profiles_hold
    .venv/bin/python bench/learning_profiles.py --networks resco:cologne3,resco:ingolstadt1 --measure density \
        --start auto --profiles safety --out bench/out/learning_profiles_auto
    .venv/bin/python bench/learning_profiles.py --networks resco:cologne1 --zone-m 0   # each lane alone
    .venv/bin/python bench/learning_profiles.py --networks resco:cologne8 --measure density --popsize 12 \
        --generations 16 --add-feature switch_red_min --add-feature switch_halt_red \
        --out bench/out/learning_profiles_wait        # docs/learning.md: cologne8's price of safety 1.21x
    .venv/bin/python bench/learning_profiles.py --networks resco:arterial4x4 --measure count --start actuated \
        --cycle-calls --out bench/out/learning_profiles_calls   # the safety side's cycle bound runs from calls
    .venv/bin/python bench/learning_profiles.py --networks gen:grid-turns,gen:rand-turns --measure density \
        --start max-pressure-hold --shared-lanes split --profiles safety --out bench/out/learning_generated_split
    .venv/bin/python bench/learning_profiles.py            # all 8 RESCO networks and the 3 built-ins: hours

`gen:NAME` is one of bench/random_networks.py's generated networks (made
under bench/out/random_networks/nets on first use), run for its 1,800 s of
demand with `--net`/`--routes`. `--shared-lanes split` trains the agent
with the lane before a turn pocket counted for each pocket, as the default
max-pressure counts it.

With --cycle-calls the safety side trains (`signalwise train --cycle-calls`)
and compares (`--config` with `timing: {cycle_calls: true}`) under a cycle
bound counted from calls, for every controller; the benchmark profile has
no cycle bound, so its side is the same either way. The safety side's
results are kept under `safety+calls/`, apart from the default rule's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from scipy import stats

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
NETWORKS = ("resco:cologne1", "resco:cologne3", "resco:cologne8", "resco:ingolstadt1", "resco:ingolstadt7",
            "resco:ingolstadt21", "resco:grid4x4", "resco:arterial4x4", "single", "corridor", "grid")
#: the best published learned result per RESCO network (RESCO's paper and leaderboard), average delay in s
BEST_PUBLISHED_S = {"resco:cologne1": 26.1, "resco:cologne3": 24.0, "resco:cologne8": 21.6,
                    "resco:ingolstadt1": 20.9, "resco:ingolstadt7": 31.2, "resco:ingolstadt21": 59.6,
                    "resco:grid4x4": 33.0, "resco:arterial4x4": 654.0}
PROFILES = ("safety", "benchmark")


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def network_args(network: str) -> list[str]:
    """`-s NAME`, or for `gen:NAME` the generated network's files and demand window."""
    if not network.startswith("gen:"):
        return ["-s", network]
    from random_networks import DURATION_S, NETWORKS, generate

    name = network.removeprefix("gen:")
    if name not in NETWORKS:
        raise SystemExit(f"error: {network}: generated networks are {', '.join('gen:' + n for n in NETWORKS)}")
    net, routes = generate(name, Path("bench/out/random_networks"))
    return ["--net", str(net.resolve()), "--routes", str(routes.resolve()), "--duration", f"{DURATION_S:g}"]


def one(network: str, profile: str, out: Path, generations: int, measure: str, seeds: int,
        start: str = "max-pressure", zone_m: float | None = None, extra: tuple[str, ...] = (),
        cycle_calls: bool = False) -> dict:
    model = out / "train" / "model"
    wall = None
    calls = cycle_calls and profile == "safety"  # the benchmark profile has no cycle bound to count from calls
    if not model.is_dir():  # resumable: a trained model is kept
        wall = run([SIGNALWISE, "train", "--agent", "phase-score", *network_args(network), "--timing", profile,
                    "--generations", str(generations), "--measure", measure, "--seed", "1",
                    "--start", start, "--out", str(out / "train"),
                    *(["--zone-m", f"{zone_m:g}"] if zone_m is not None else []), *extra,
                    *(["--cycle-calls"] if calls else [])])
    summary = out / "compare" / "summary.json"
    if not summary.is_file():
        config = []
        if calls:
            out.mkdir(parents=True, exist_ok=True)
            (out / "calls.yaml").write_text("timing: {cycle_calls: true}\n")
            config = ["--config", str(out / "calls.yaml")]
        run([SIGNALWISE, "compare", *network_args(network), "--timing", profile, "--seeds", str(seeds), *config,
             "--controllers", f"fixed,max-pressure,ql:{model.resolve()}", "--out", str(out / "compare")])
    delay = json.loads(summary.read_text())["metrics"]["avg_delay_s"]["controllers"]
    values = {c.split(":", 1)[0]: e["values"] for c, e in delay.items()}
    meta = json.loads((model / "meta.json").read_text())
    ql, mp = values["ql"], values["max-pressure"]
    return {"network": network, "profile": profile, "fixed": values["fixed"], "max_pressure": mp, "ql": ql,
            **dict(zip(("p_welch", "p_paired"), p_values(ql, mp), strict=True)),
            "train_wall_s": wall if wall is not None else meta["training"]["wall_s"],
            "weights": meta["policy"]["weights"], "zone_m": meta["policy"].get("zone_m", 0.0),
            "start": meta["training"]["config"].get("start_name"), "starts": meta["selection"].get("starts"),
            "selection": {k: meta["selection"][k] for k in ("learned_avg_delay_s", "start_avg_delay_s", "chosen")}}


def p_values(ql: list[float], mp: list[float]) -> tuple[float | None, float | None]:
    """Welch's and the paired p-value of ql against max-pressure over the same seeds; None with one seed, which
    has no variance (scipy would warn and give NaN)."""
    if len(ql) < 2:
        return None, None
    return float(stats.ttest_ind(ql, mp, equal_var=False).pvalue), float(stats.ttest_rel(ql, mp).pvalue)


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3f}"


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--measure", default="count", help="count | density (the phase-score features)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--start", default="max-pressure", help="where the search starts (signalwise train --start)")
    ap.add_argument("--zone-m", type=float, default=None,
                    help="the features' measuring zone, metres (signalwise train --zone-m); default: max-pressure's "
                         "under each profile (50); 0 reads each lane alone")
    ap.add_argument("--out", type=Path, default=Path("bench/out/learning_profiles"))
    ap.add_argument("--profiles", default=",".join(PROFILES), help="timing profiles to run (comma-separated)")
    ap.add_argument("--add-feature", action="append", default=[], metavar="NAME",
                    help="a phase-score feature to weigh too (signalwise train --add-feature; repeatable)")
    ap.add_argument("--period", type=float, default=None, help="seconds between decisions (signalwise train --period)")
    ap.add_argument("--restarts", type=int, default=1, help="independent searches (signalwise train --restarts)")
    ap.add_argument("--popsize", type=int, default=None, help="candidates per generation (signalwise train --popsize)")
    ap.add_argument("--seeds-per-generation", type=int, default=1,
                    help="training seeds every candidate runs (signalwise train --seeds-per-generation)")
    ap.add_argument("--shared-lanes", default=None, choices=("skip", "split"),
                    help="the lane before a turn pocket (signalwise train --shared-lanes)")
    ap.add_argument("--demand-scale", action="append", type=float, default=[], metavar="X",
                    help="the training episodes' demand times X (signalwise train --demand-scale; repeatable)")
    ap.add_argument("--cycle-calls", action="store_true",
                    help="the safety side's cycle bound runs from calls (timing key cycle_calls), in training and "
                         "in the comparison")
    args = ap.parse_args()
    profiles = [p for p in args.profiles.split(",") if p]
    if not set(profiles) <= set(PROFILES):
        raise SystemExit(f"error: --profiles takes {', '.join(PROFILES)}")
    extra = (*(a for f in args.add_feature for a in ("--add-feature", f)),
             *(("--period", f"{args.period:g}") if args.period is not None else ()),
             *(("--restarts", str(args.restarts)) if args.restarts != 1 else ()),
             *(("--popsize", str(args.popsize)) if args.popsize is not None else ()),
             *(("--seeds-per-generation", str(args.seeds_per_generation)) if args.seeds_per_generation != 1 else ()),
             *(("--shared-lanes", args.shared_lanes) if args.shared_lanes else ()),
             *(a for x in args.demand_scale for a in ("--demand-scale", f"{x:g}")))
    rows = []
    for network in [n for n in args.networks.split(",") if n]:
        for profile in profiles:
            side = f"{profile}+calls" if args.cycle_calls and profile == "safety" else profile
            rows.append(one(network, profile, args.out / network.replace(":", "-") / side, args.generations,
                            args.measure, args.seeds, args.start, args.zone_m, extra, args.cycle_calls)
                        | {"side": side})
    (args.out / "learning_profiles.json").write_text(json.dumps(rows, indent=1))
    print("\n| network | profile | fixed | max-pressure | ql | ql vs max-pressure, p Welch / paired | best published | "
          "training wall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        change = 100 * (mean(r["ql"]) / mean(r["max_pressure"]) - 1)
        pub = BEST_PUBLISHED_S.get(r["network"]) if r["profile"] == "benchmark" else None
        print(f"| {r['network']} | {r['side']} | {mean(r['fixed']):.1f} | {mean(r['max_pressure']):.1f} | "
              f"{mean(r['ql']):.1f} | {change:+.1f} %, {_p(r['p_welch'])} / {_p(r['p_paired'])} | "
              f"{'' if pub is None else pub} | {r['train_wall_s']:.0f} s |")
    for r in rows:
        sel = r["selection"]
        tried = (", ".join(f"{n} {d:.1f} s" for n, d in r["starts"]["candidates"].items()) + " -> "
                 if r["starts"] else "")
        print(f"{r['network']} {r['side']}: start {tried}{r['start']}; validation: learned "
              f"{sel['learned_avg_delay_s']:.1f} s, start {sel['start_avg_delay_s']:.1f} s -> {sel['chosen']}")
    print(f"\nprice of safety (delay under safety{'+calls' if args.cycle_calls else ''} / under benchmark):")
    by = {(r["network"], r["profile"]): r for r in rows}
    for network in dict.fromkeys(r["network"] for r in rows):
        if (network, "safety") not in by or (network, "benchmark") not in by:
            continue
        s, b = by[(network, "safety")], by[(network, "benchmark")]
        print(f"  {network}: max-pressure {mean(s['max_pressure']) / mean(b['max_pressure']):.2f}x, "
              f"ql {mean(s['ql']) / mean(b['ql']):.2f}x, fixed {mean(s['fixed']) / mean(b['fixed']):.2f}x")


if __name__ == "__main__":
    main()
