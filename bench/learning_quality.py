"""Does the trained Q-learning agent beat max-pressure? Train, then evaluate on held-out seeds.

For each scenario: `signalwise train --agent tabular` with its default
settings — `--guide-visits auto`: one model trained with guide threshold 10
and one with 30, the better on 3 validation seeds kept (see
training/selection.py) — then `signalwise evaluate` on 5 held-out seeds against
max-pressure. Prints average delay (RESCO definition) with 95% CI, change,
Welch and paired p-values, the fallback share, shield violations in training
and evaluation (independent audit), training wall time, worker peak RSS and
Q-table size.

    .venv/bin/python bench/learning_quality.py                       # single, corridor, grid
    .venv/bin/python bench/learning_quality.py --scenarios resco:cologne1,resco:ingolstadt1,resco:grid4x4
    .venv/bin/python bench/learning_quality.py --scenarios single --episodes 120 --seeds 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from signalwise.training.evaluate import evaluate
from signalwise.training.selection import train_selected
from signalwise.training.train import TrainConfig, train

#: episodes per scenario (per candidate threshold) when --episodes is not given: enough for the
#: table to settle on each (corridor: 40 gave -16 % at p = 0.06, 80 gave -17.6 % at p = 0.047)
EPISODES = {"single": 120, "corridor": 80, "grid": 24, "resco:cologne1": 40, "resco:ingolstadt1": 40,
            "resco:grid4x4": 24}


def run_one(scenario: str, episodes: int, seeds: int, out: Path, workers: int, guide_visits: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    cfg = TrainConfig(scenario=scenario, episodes=episodes, seed=1, workers=workers, batch=workers, out=out)
    if guide_visits == "auto":
        model = train_selected(cfg)
    else:
        cfg.hyper = replace(cfg.hyper, guide_visits=int(guide_visits))
        model = train(cfg)
    train_wall = time.perf_counter() - t0
    res = evaluate(out / "model", scenario, seeds, workers=workers)
    ev = res.evaluation
    delay = res.summary["metrics"]["avg_delay_s"]["controllers"]
    ql = next(c for c in delay if c.startswith("ql:"))
    t = model.meta["training"]
    sel = model.meta.get("selection")
    return {
        "scenario": scenario, "episodes": episodes, "seeds": ev["seeds"],
        "guide_visits": guide_visits, "selection": sel,
        "runs_with": (None if sel is None else "max-pressure alone" if sel["guide_visits"] != sel["trained_with"]
                      else f"guide {sel['guide_visits']}"),
        "ql": [delay[ql]["mean"], delay[ql]["ci_low"], delay[ql]["ci_high"]],
        "max_pressure": [delay["max-pressure"]["mean"], delay["max-pressure"]["ci_low"],
                         delay["max-pressure"]["ci_high"]],
        "change_pct": ev["change_pct"], "p_welch": ev["p_welch"], "p_paired": ev["p_paired"],
        "fallback_fraction": ev["fallback_fraction"],
        "violations_training": t["violations"], "violations_evaluation": ev["violations"],
        "train_wall_s": round(train_wall, 1), "worker_peak_rss_mb": t["peak_worker_rss_mb"],
        "qtable_kib": round(sum(tb.nbytes for tb in model.tables.values()) / 1024, 1),
        "tables": len(model.tables),
    }


def _mean_ci(v: list) -> str:
    """mean ± half the 95 % CI; the mean alone where there is no CI (one seed)."""
    mean, low, high = v
    return f"{mean:.1f} s" if low is None or high is None else f"{mean:.1f} ± {(high - low) / 2:.1f} s"


def _p(p) -> str:
    return "n/a" if p is None else f"{p:.3f}"


def fmt(r: dict) -> str:
    return (f"| {r['scenario']} | {r['episodes']} | {r['runs_with'] or 'guide ' + r['guide_visits']} | "
            f"{_mean_ci(r['ql'])} | {_mean_ci(r['max_pressure'])} | {r['change_pct']:+.1f} % | {_p(r['p_welch'])} | "
            f"{_p(r['p_paired'])} | {r['fallback_fraction']:.3f} | "
            f"{r['violations_training']} / {r['violations_evaluation']} | {r['train_wall_s']:.0f} s | "
            f"{r['worker_peak_rss_mb']} MB | {r['qtable_kib']} KiB |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="single,corridor,grid")
    ap.add_argument("--episodes", type=int, default=None, help="episodes per scenario (default: per scenario)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/learning"))
    ap.add_argument("--guide-visits", default="auto", help="auto (train 10 and 30, choose on validation seeds) "
                    "or a number")
    args = ap.parse_args()
    rows = []
    print("| scenario | episodes per candidate | model runs | ql delay | max-pressure | change | Welch p | paired p | fallback | "
          "violations train / eval | training wall | worker peak RSS | Q-table |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for scenario in [s for s in args.scenarios.split(",") if s]:
        episodes = args.episodes or EPISODES.get(scenario, 40)
        r = run_one(scenario, episodes, args.seeds, args.out / scenario.replace(":", "-"), args.workers,
                    args.guide_visits)
        rows.append(r)
        print(fmt(r), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_quality.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
