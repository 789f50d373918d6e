"""Our Q-learning agent side by side with sumo-rl's tabular QLAgent, on sumo-rl's own single intersection.

    .venv/bin/python bench/sumo_rl_side_by_side.py [--train-s 100000] [--episodes 25] [--seeds 5]
                                                   [--eval-s 3600] [--out bench/out/sumo_rl]
    .venv/bin/python bench/sumo_rl_side_by_side.py --agent phase-score [--generations 4 --popsize 6]
                                                   [--start max-pressure|actuated|max-pressure-hold|auto]
                                                   [--period 1] [--seeds-per-generation 2]
                                                   [--add-feature switch_red_min ...]
    .venv/bin/python bench/sumo_rl_side_by_side.py ... --training-seeds 5   # both agents from 5 training seeds
    .venv/bin/python bench/sumo_rl_side_by_side.py --agent phase-score ... --rules sumo-rl   # ours held to sumo-rl's rules

sumo-rl side: the settings of its `experiments/ql_single-intersection.py`
(sumo-rl 1.4.x): network and routes `sumo_rl/nets/single-intersection/
single-intersection.{net,rou}.xml`, one run of `num_seconds` 100,000, min
green 10 s, max green 50 s, `delta_time` 5 s, yellow 2 s (env defaults),
reward `diff-waiting-time` (default), QLAgent alpha 0.1, gamma 0.99,
EpsilonGreedy(initial 0.05, min 0.005, decay 1.0), i.e. a constant 5 %
exploration. It runs on libsumo (`LIBSUMO_AS_TRACI`, sumo-rl's own switch), as
ours does, so training times compare the agents, not the SUMO connection.

Our side: `signalwise train --net ... --routes ...` (CLI defaults) on the same
files for the same total simulated time, split into `--episodes` episodes,
2 worker processes (sumo-rl's experiment runs in one). With `--agent
phase-score`: the policy search, `--generations` x `--popsize` episodes of
`--eval-s` simulated seconds plus 2 x 3 validation episodes (4 x 6 x 3600 +
6 x 3600 = 108,000 s, about sumo-rl's 100,000).

Evaluation: both greedy with a frozen table, on the same held-out SUMO seeds
1..N (neither agent trained on them), `--eval-s` simulated seconds each, with
the same delay: RESCO's (timeLoss + departDelay over every vehicle, those
still driving and never inserted included) from SUMO's tripinfo, read by
`signalwise.sim.outputs` / `sim.metrics`. sumo-rl writes its tripinfo through
`additional_sumo_cmd`. Fixed time (the network's program) and max-pressure run
under our shield for reference, and the same fixed program once more in
sumo-rl's environment (`fixed_ts`, its 2 s yellows, no shield): the two fixed
rows show what the shield's clearances cost on this network.

A learned model depends on its training seed, sumo-rl's as ours. `--training-seeds K` trains both agents
from training seeds --seed .. --seed + K - 1 (sumo-rl's seed sets its SUMO seed, 1,000,000 + 100,000 x
seed, its exploration and its action space's draws; ours is `signalwise train --seed`), evaluates every
model on the same held-out seeds, and compares the two methods over their K models (Welch's test on
each model's mean delay). sumo-rl's agent acts WITHOUT our safety
shield: its own 10 s min green and 2 s yellow, no all-red, no max green
enforced by sumo-rl 1.4.5 (documented as ignored); it also disables
teleporting (ours: after 300 s stuck).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

#: experiments/ql_single-intersection.py of sumo-rl 1.4.x (argparse defaults, env defaults)
SUMO_RL_SETTINGS = {"alpha": 0.1, "gamma": 0.99, "epsilon": 0.05, "min_epsilon": 0.005, "decay": 1.0,
                    "min_green": 10, "max_green": 50, "delta_time": 5, "yellow_time": 2,
                    "reward_fn": "diff-waiting-time", "num_seconds": 100_000, "runs": 1}
#: the default training seed of both agents; sumo-rl's training run has SUMO seed 1,000,000 + 100,000 x seed
#: (never an evaluation seed)
TRAIN_SEED = 1
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def network_files() -> tuple[Path, Path]:
    from signalwise.sim.sumo_home import sumo_home

    sumo_home()  # sumo-rl refuses to import without SUMO_HOME
    import importlib.util

    root = Path(importlib.util.find_spec("sumo_rl").origin).parent / "nets" / "single-intersection"
    return root / "single-intersection.net.xml", root / "single-intersection.rou.xml"


def _sumo_rl_env(num_seconds: int, sumo_seed: int, extra_cmd: str | None = None, fixed_ts: bool = False):
    """sumo-rl's environment with the experiment's settings, on libsumo (one per process)."""
    os.environ["LIBSUMO_AS_TRACI"] = "1"
    net, routes = network_files()
    from sumo_rl import SumoEnvironment

    s = SUMO_RL_SETTINGS
    return SumoEnvironment(net_file=str(net), route_file=str(routes), num_seconds=num_seconds,
                           min_green=s["min_green"], max_green=s["max_green"], delta_time=s["delta_time"],
                           yellow_time=s["yellow_time"], reward_fn=s["reward_fn"], sumo_seed=sumo_seed,
                           sumo_warnings=False, additional_sumo_cmd=extra_cmd, fixed_ts=fixed_ts)


def encode(env, state, ts: str) -> tuple:
    """sumo-rl's `SumoEnvironment.encode`, item for item; its own `int(np.where(...)[0])` raises on
    numpy >= 2.4 (int() of a 1-element array), so the phase index is taken with `[0][0]` here."""
    n = env.traffic_signals[ts].num_green_phases
    phase = int(np.where(state[:n] == 1)[0][0])
    return tuple([phase, state[n]] + [env._discretize_density(d) for d in state[n + 1:]])


def train_sumo_rl(job: tuple[int, int]) -> dict:
    """Worker: the experiment's training loop, one run of `num_seconds` from training seed `seed` (its SUMO
    seed, numpy's and the action space's); returns the Q-table and the wall time."""
    num_seconds, seed = job
    t0 = time.perf_counter()
    env = _sumo_rl_env(num_seconds, 1_000_000 + seed * 100_000)
    from sumo_rl.agents import QLAgent
    from sumo_rl.exploration import EpsilonGreedy

    np.random.seed(seed)  # EpsilonGreedy draws from numpy's global generator
    s = SUMO_RL_SETTINGS
    states = env.reset()
    env.action_space.seed(seed)
    agents = {ts: QLAgent(starting_state=encode(env, states[ts], ts), state_space=env.observation_space,
                          action_space=env.action_space, alpha=s["alpha"], gamma=s["gamma"],
                          exploration_strategy=EpsilonGreedy(initial_epsilon=s["epsilon"],
                                                             min_epsilon=s["min_epsilon"], decay=s["decay"]))
              for ts in env.ts_ids}
    done = {"__all__": False}
    while not done["__all__"]:
        actions = {ts: agent.act() for ts, agent in agents.items()}
        obs, rewards, done, _ = env.step(action=actions)
        for ts, agent in agents.items():
            agent.learn(next_state=encode(env, obs[ts], ts), reward=rewards[ts])
    env.close()
    return {"tables": {ts: {k: list(map(float, v)) for k, v in a.q_table.items()} for ts, a in agents.items()},
            "wall_s": time.perf_counter() - t0}


def evaluate_sumo_rl(job: tuple[dict | None, int, int, str]) -> dict:
    """Worker: greedy on the frozen table (unseen state: action 0, as a fresh sumo-rl row), or with no
    table the network's own program in sumo-rl's env (`fixed_ts`); RESCO delay."""
    from signalwise.sim.metrics import network_metrics
    from signalwise.sim.outputs import read_tripinfo

    tables, seed, num_seconds, tripinfo = job
    env = _sumo_rl_env(num_seconds, seed, f"--tripinfo-output {tripinfo} --tripinfo-output.write-unfinished true "
                                          "--tripinfo-output.write-undeparted true", fixed_ts=tables is None)
    obs = env.reset()
    decisions = unseen = 0
    done = {"__all__": False}
    while not done["__all__"]:
        actions = {}
        for ts in env.ts_ids if tables is not None else ():
            row = tables[ts].get(encode(env, obs[ts], ts))
            decisions += 1
            unseen += row is None
            actions[ts] = int(np.argmax(row)) if row is not None else 0
        obs, _, done, _ = env.step(action=actions or {})
    env.close()
    trips, _ = read_tripinfo(Path(tripinfo))
    return {"seed": seed, "avg_delay_s": network_metrics(trips, [], [], []).avg_delay_s,
            "unseen_share": unseen / max(1, decisions)}


def in_fresh_processes(fn, jobs: list, workers: int) -> list:
    """libsumo allows one simulation per process: every job in its own spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1) as pool:
        return list(pool.map(fn, jobs))


#: sumo-rl's own rules as our shield's settings (`--rules sumo-rl`): its TrafficSignal's 2 s yellow and, in the
#: experiment, 10 s minimum green after it; no all-red, no maximum green enforced (sumo-rl 1.4.5 documents max_green
#: as ignored), no cycle bounds or pedestrian intervals, no teleports. The `reference` profile is the one without
#: limits; its 3 s yellow and 5 s minimum green are replaced.
SUMO_RL_RULES = {"timing": {"profile": "reference", "yellow_s": 2.0, "min_green_s": 10.0}, "time_to_teleport_s": -1}


def train_ours(net: Path, routes: Path, train_s: int, episodes: int, out: Path, agent: str = "tabular",
               generations: int = 4, popsize: int = 6, episode_s: int = 3600, start: str = "max-pressure",
               period: float | None = None, seeds_per_generation: int = 1, seed: int = TRAIN_SEED,
               restarts: int = 1, add_features: tuple[str, ...] = (), demand_scales: tuple[float, ...] = (),
               config: Path | None = None) -> float:
    """`signalwise train` on the user network; returns its wall time."""
    cmd = [SIGNALWISE, "train", "--net", str(net), "--routes", str(routes), "--workers", "2",
           "--seed", str(seed), "--out", str(out), "--agent", agent]
    if agent == "tabular":
        cmd += ["--episodes", str(episodes), "--duration", f"{train_s / episodes:g}", "--batch", "2"]
    else:
        cmd += ["--generations", str(generations), "--popsize", str(popsize), "--duration", str(episode_s),
                "--start", start, "--seeds-per-generation", str(seeds_per_generation), "--restarts", str(restarts)]
        cmd += ["--period", f"{period:g}"] if period is not None else []
        cmd += [a for f in add_features for a in ("--add-feature", f)]
        cmd += [a for x in demand_scales for a in ("--demand-scale", f"{x:g}")]
        cmd += ["--config", str(config)] if config is not None else []
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"signalwise train failed: {p.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - t0


def fmt(values: list[float]) -> str:
    from signalwise.analytics.stats import mean_ci

    ci = mean_ci(values)
    return f"{ci.mean:6.1f} ± {ci.half_width:5.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-s", type=int, default=SUMO_RL_SETTINGS["num_seconds"],
                    help="simulated seconds of training, each agent")
    ap.add_argument("--episodes", type=int, default=25, help="our agent's episodes in --train-s")
    ap.add_argument("--seeds", type=int, default=5, help="held-out evaluation seeds 1..N")
    ap.add_argument("--eval-s", type=int, default=3600, help="simulated seconds per evaluation run")
    ap.add_argument("--out", type=Path, default=Path("bench/out/sumo_rl"))
    ap.add_argument("--agent", default="tabular", help="our agent: tabular | phase-score")
    ap.add_argument("--generations", type=int, default=4, help="phase-score: CMA-ES generations")
    ap.add_argument("--popsize", type=int, default=6, help="phase-score: candidates per generation")
    ap.add_argument("--start", default="max-pressure",
                    help="phase-score: where the search starts (signalwise train --start)")
    ap.add_argument("--seeds-per-generation", type=int, default=1,
                    help="phase-score: training seeds every candidate runs (signalwise train --seeds-per-generation)")
    ap.add_argument("--seed", type=int, default=TRAIN_SEED,
                    help="the training seed of both agents (sumo-rl's: its SUMO seed and exploration; ours: "
                         "signalwise train --seed)")
    ap.add_argument("--training-seeds", type=int, default=1, metavar="K",
                    help="train both agents K times, from training seeds --seed .. --seed + K - 1, evaluate each "
                         "model on the same held-out seeds, and compare the two methods over their K models: a "
                         "learning method's result depends on its training seed, for sumo-rl as for us")
    ap.add_argument("--period", type=float, default=None,
                    help="phase-score: seconds between decisions (signalwise train --period; default: the start's)")
    ap.add_argument("--restarts", type=int, default=1,
                    help="phase-score: searches from seeds --seed, --seed + 1, ..., the best on validation seeds kept "
                         "(signalwise train --restarts)")
    ap.add_argument("--add-feature", action="append", default=[], metavar="NAME",
                    help="phase-score: weigh this feature too (signalwise train --add-feature; repeatable)")
    ap.add_argument("--demand-scale", action="append", type=float, default=[], metavar="X",
                    help="phase-score: training episodes on the demand times X (signalwise train --demand-scale; "
                         "repeatable); the evaluation runs the routes as written")
    ap.add_argument("--rules", choices=("safety", "sumo-rl"), default="safety",
                    help="the rules our shield enforces on ours and the references: safety (the default profile: "
                         "ITE yellow, all-red, max green, cycle bounds) | sumo-rl (sumo-rl's own: 2 s yellow, 10 s "
                         "min green, no all-red, no max green, no teleports; phase-score only): the two agents "
                         "on equal rules")
    args = ap.parse_args()
    if args.rules == "sumo-rl" and args.agent == "tabular":
        ap.error("--rules sumo-rl is for --agent phase-score (the tabular agent trains under the default profile)")
    if args.training_seeds < 1:
        ap.error("--training-seeds must be at least 1")
    out = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    net, routes = network_files()
    seeds = list(range(1, args.seeds + 1))
    training_seeds = list(range(args.seed, args.seed + args.training_seeds))
    from signalwise.runtime.compare import compare_controllers
    from signalwise.runtime.config import RunConfig

    rules = SUMO_RL_RULES if args.rules == "sumo-rl" else {}
    config = None
    if rules:
        import yaml

        config = out / "sumo-rl-rules.yaml"
        config.write_text(yaml.safe_dump(rules, sort_keys=False))
    base = RunConfig.model_validate({"net": net, "routes": [routes], "duration_s": args.eval_s, "emissions": False,
                                     **rules})
    per_training_seed = []
    for k in training_seeds:
        tag = f"training seed {k}: " if len(training_seeds) > 1 else ""
        print(f"{tag}sumo-rl QLAgent: training {args.train_s} simulated s in one run ...", flush=True)
        t0 = time.perf_counter()
        trained = in_fresh_processes(train_sumo_rl, [(args.train_s, k)], 1)[0]
        sumo_rl_wall = time.perf_counter() - t0
        if args.agent == "tabular":
            print(f"{tag}ours: training {args.train_s} simulated s in {args.episodes} episodes ...", flush=True)
        else:
            print(f"{tag}ours: phase-score search from --start {args.start}, {args.generations} x {args.popsize} "
                  f"episodes of {args.eval_s} s + validation episodes ...", flush=True)
        run_dir = out / (f"seed-{k}" if len(training_seeds) > 1 else ".")
        our_wall = train_ours(net, routes, args.train_s, args.episodes, run_dir / "ours", args.agent,
                              args.generations, args.popsize, args.eval_s, args.start, args.period,
                              args.seeds_per_generation, k, args.restarts, tuple(args.add_feature),
                              tuple(args.demand_scale), config)
        model = run_dir / "ours" / "model"
        print(f"{tag}evaluating on held-out seeds {seeds}, {args.eval_s} s each ...", flush=True)
        references = ["fixed", "max-pressure"] if k == training_seeds[0] else []  # the same every time: once
        ql = f"ql:{model}"
        res = compare_controllers(base, [*references, ql], seeds, run_dir / "eval", workers=2)
        if res.failures:
            raise SystemExit(f"evaluation runs failed: {res.failures}")
        (run_dir / "sumo_rl_eval").mkdir()
        kinds = [("ql", trained["tables"])] + ([("fixed", None)] if references else [])
        evals = in_fresh_processes(
            evaluate_sumo_rl, [(tables, s, args.eval_s, str(run_dir / "sumo_rl_eval" / f"tripinfo-{kind}-s{s}.xml"))
                               for kind, tables in kinds for s in seeds], 2)
        if references:
            delay_refs = {c: [res.runs[(c, s)]["network"]["avg_delay_s"] for s in seeds] for c in references}
            sumo_rl_fixed = evals[len(seeds):]
        per_training_seed.append({
            "training_seed": k, "model": str(model), "meta": json.loads((model / "meta.json").read_text()),
            "sumo_rl": {"wall_s": sumo_rl_wall, "states": {ts: len(t) for ts, t in trained["tables"].items()},
                        "eval": evals[:len(seeds)]},
            "ours": {"wall_s": our_wall, "delay": [res.runs[(ql, s)]["network"]["avg_delay_s"] for s in seeds],
                     "fallback": float(np.mean([res.runs[(ql, s)]["network"]["fallback_fraction"] for s in seeds])),
                     "violations": sum(res.runs[(ql, s)].get("safety", {}).get("violations", 0) for s in seeds)}})

    report(args, seeds, per_training_seed, delay_refs, sumo_rl_fixed)
    (out / "summary.json").write_text(json.dumps({
        "settings": SUMO_RL_SETTINGS, "train_s": args.train_s, "episodes": args.episodes, "seeds": seeds,
        "eval_s": args.eval_s, "training_seeds": [
            {k: v for k, v in r.items() if k != "meta"} for r in per_training_seed],
        "max_pressure": delay_refs["max-pressure"], "fixed": delay_refs["fixed"], "sumo_rl_fixed": sumo_rl_fixed},
        indent=1))
    print(f"runs: {out}")


def report(args, seeds: list[int], results: list[dict], delay_refs: dict, sumo_rl_fixed: list[dict]) -> None:
    """The table of each training seed's two models, and with several, the two methods over their models."""
    for r in results:
        k, meta, model = r["training_seed"], r["meta"], Path(r["model"])
        sumo_rl, ours = r["sumo_rl"], r["ours"]
        rows = [
            ("sumo-rl QLAgent (no shield)", fmt([e["avg_delay_s"] for e in sumo_rl["eval"]]),
             f"{sumo_rl['wall_s']:7.1f} s, 1 process",
             f"{sum(sumo_rl['states'].values())} states seen; unseen at eval "
             f"{np.mean([e['unseen_share'] for e in sumo_rl['eval']]):.1%}"),
            (f"signalwise ql, {args.agent} (shielded)", fmt(ours["delay"]), f"{ours['wall_s']:7.1f} s, 2 workers",
             (f"{states_visited(model)} states visited; " if args.agent == "tabular" else
              "weights " + ", ".join(f"{w:+.2f}" for w in meta["policy"]["weights"]) + "; ") +
             f"fallback {ours['fallback']:.1%}; violations {ours['violations']}"),
            ("max-pressure (shielded)", fmt(delay_refs["max-pressure"]), "-", ""),
            ("fixed, network program", fmt(delay_refs["fixed"]), "-",
             "our shield's clearances: " + ("sumo-rl's 2 s yellow" if args.rules == "sumo-rl" else
                                            "ITE yellow + all-red")),
            ("fixed in sumo-rl's env", fmt([e["avg_delay_s"] for e in sumo_rl_fixed]), "-",
             "same program, its own 2 s yellows, no shield (fixed_ts)"),
        ]
        ran = (f"{args.episodes} x {args.train_s / args.episodes:g} s" if args.agent == "tabular" else
               f"{meta['training']['episodes']} x {args.eval_s} s, from --start {args.start}, decisions every "
               f"{meta['policy']['period_s']:g} s")
        print(f"\nsumo-rl single-intersection, training seed {k}, {args.train_s} simulated s of training for "
              f"sumo-rl (ours: {ran}), evaluation: seeds {seeds[0]}-{seeds[-1]}, "
              f"{args.eval_s} s each; average delay (RESCO, tripinfo), mean ± 95% CI over seeds")
        if "starts" in meta["selection"]:
            print("starts on the validation seeds: " + ", ".join(
                f"{n} {d:.1f} s" for n, d in meta["selection"]["starts"]["candidates"].items()))
        if args.agent != "tabular":
            sel = meta["selection"]
            print(f"validation: learned {sel['learned_avg_delay_s']:.1f} s, start "
                  f"({meta['training']['config']['start_name']}) {sel['start_avg_delay_s']:.1f} s -> {sel['chosen']}")
        print(f"{'agent':30} {'avg delay':>18}  {'training wall time':22} notes")
        for name, d, wall, note in rows:
            print(f"{name:30} {d:>18}  {wall:22} {note}")
        print(f"per seed: sumo-rl {[e['avg_delay_s'] for e in sumo_rl['eval']]}; ours {ours['delay']}; "
              f"max-pressure {delay_refs['max-pressure']}; fixed {delay_refs['fixed']}; "
              f"fixed in sumo-rl's env {[e['avg_delay_s'] for e in sumo_rl_fixed]}")
        print(f"our model: {model} (wall_s in meta {meta['training']['wall_s']})")
    if args.rules == "sumo-rl":
        print("sumo-rl's agent acts in its own environment: 10 s min green and 2 s yellow, no all-red, no max green\n"
              "enforced, no teleporting; ours and the references pass our shield holding them to those same rules "
              "(timing: reference\nprofile with yellow_s 2, min_green_s 10; no teleports) and the independent audit.")
    else:
        print("sumo-rl's agent acts without our safety shield: its own 10 s min green and 2 s yellow, no all-red,\n"
              "no max green enforced, no teleporting; ours and the references pass the shield (ITE yellow, all-red, "
              "5 s min green,\nmax green, max cycle) and the independent audit.")
    if len(results) > 1:
        from signalwise.analytics.stats import welch_p_value

        theirs = [float(np.mean([e["avg_delay_s"] for e in r["sumo_rl"]["eval"]])) for r in results]
        ours = [float(np.mean(r["ours"]["delay"])) for r in results]
        print(f"\nover {len(results)} training seeds ({results[0]['training_seed']}-{results[-1]['training_seed']}), "
              "each model's mean over the held-out seeds:")
        print(f"  sumo-rl QLAgent: {fmt(theirs)}  ({', '.join(f'{d:.1f}' for d in theirs)})")
        print(f"  signalwise ql:   {fmt(ours)}  ({', '.join(f'{d:.1f}' for d in ours)})")
        diff = float(np.mean(ours) - np.mean(theirs))
        print(f"  ours - sumo-rl: {diff:+.2f} s ({diff / np.mean(theirs):+.1%}), Welch p = {welch_p_value(ours, theirs):.3f}"
              " over the training seeds")


def states_visited(model: Path) -> int:
    """States of our model's tables with at least one visit (the table itself is dense)."""
    from signalwise.control.learning.qtable import load_model

    m = load_model(model)
    if not m.tables:  # a phase-score policy: weights, no states
        return 0
    return sum(int((np.asarray(t.visits) > 0).any(axis=1).sum()) for t in m.tables.values())


if __name__ == "__main__":
    main()
