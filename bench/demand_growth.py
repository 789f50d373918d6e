"""Controllers as demand grows: the same seeds' traffic times 1, 1.1, 1.2 (SUMO's --scale).

For each scenario and each scale: `signalwise compare --demand-scale X
--controllers fixed,actuated,max-pressure,ql --seeds 5` (the default safety
profile; `ql` is the scenario's shipped model, trained on the routes as
written). Prints each controller's mean delay (RESCO's definition) per scale,
the learning agent's change against max-pressure with Welch and paired p,
and every controller's delay at each scale over its delay at scale 1: how
fast it degrades. A model that only fits the hour it trained on loses
ground as the demand grows; one that learned the network's control keeps it.

    .venv/bin/python bench/demand_growth.py                       # single, corridor, grid; 1, 1.1, 1.2
    .venv/bin/python bench/demand_growth.py --scenarios grid --scales 1,1.3 --seeds 3
    .venv/bin/python bench/demand_growth.py --scales 0.8,0.9,1,1.1,1.2     # off-peak hours too
    .venv/bin/python bench/demand_growth.py --scenarios resco:cologne8 --controllers fixed,max-pressure

Resumable: a scale whose compare finished (its summary.json) is not run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from scipy import stats

from signalwise.runtime.config import MAX_DEMAND_SCALE, valid_demand_scale

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def compare(scenario: str, scale: float, controllers: str, seeds: int, workers: int, out: Path) -> dict:
    """Each controller's per-seed delays at this scale (from the compare's summary.json)."""
    summary = out / "summary.json"
    if not summary.is_file():
        cmd = [SIGNALWISE, "compare", "-s", scenario, "--controllers", controllers, "--seeds", str(seeds),
               "--demand-scale", f"{scale:g}", "--workers", str(workers), "--out", str(out)]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr.strip()[-2000:]}")
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    delay = json.loads(summary.read_text())["metrics"]["avg_delay_s"]["controllers"]
    return {c: e["values"] for c, e in delay.items()}


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="single,corridor,grid")
    ap.add_argument("--scales", default="1,1.1,1.2", help="demand scales, comma-separated (1 = as written)")
    ap.add_argument("--controllers", default="fixed,actuated,max-pressure,ql",
                    help="as signalwise compare --controllers; ql = the scenario's shipped model")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/out/demand_growth"))
    args = ap.parse_args()
    try:
        scales = [float(x) for x in args.scales.split(",") if x]
    except ValueError:
        raise SystemExit(f"error: --scales takes numbers, comma-separated; got {args.scales!r}") from None
    if not scales or not all(map(valid_demand_scale, scales)):
        raise SystemExit(f"error: each scale is above 0 and at most {MAX_DEMAND_SCALE:g}")
    scales = sorted(set(scales))
    reference = 1.0 if 1.0 in scales else scales[0]  # each controller's growth is against the routes as written
    names = [c for c in args.controllers.split(",") if c]
    rows = {}
    for scenario in [s for s in args.scenarios.split(",") if s]:
        for scale in scales:
            rows[(scenario, scale)] = compare(scenario, scale, args.controllers, args.seeds, args.workers,
                                              args.out / scenario.replace(":", "-") / f"x{scale:g}")
    (args.out / "demand_growth.json").write_text(json.dumps(
        [{"scenario": s, "scale": x, "delay_s": v} for (s, x), v in rows.items()], indent=1))
    print(f"\nmean delay over seeds 1-{args.seeds}, s (times its delay at scale {reference:g})\n")
    print("| scenario | demand | " + " | ".join(names) + " | ql vs max-pressure, p Welch / paired |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for (scenario, scale), values in rows.items():
        first = rows[(scenario, reference)]
        cells = [f"{mean(values[c]):.1f}" + ("" if scale == reference else f" ({mean(values[c]) / mean(first[c]):.2f}×)")
                 for c in names]
        versus = ""
        if "ql" in values and "max-pressure" in values:
            ql, mp = values["ql"], values["max-pressure"]
            versus = (f"{100 * (mean(ql) / mean(mp) - 1):+.1f} %, "
                      f"{stats.ttest_ind(ql, mp, equal_var=False).pvalue:.3f} / {stats.ttest_rel(ql, mp).pvalue:.3f}")
        print(f"| {scenario} | ×{scale:g} | " + " | ".join(cells) + f" | {versus} |")


if __name__ == "__main__":
    main()
