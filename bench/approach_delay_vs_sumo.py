"""UDOT's approach delay (`signalwise atspm`'s `approach_delay`) beside SUMO's own delay per signal.

    .venv/bin/python bench/approach_delay_vs_sumo.py [-s corridor] [-c fixed,actuated] [--seeds 2]
                                                     [--duration 900] [--compare-dir DIR]

Runs `signalwise compare` (or reads the finished one in `--compare-dir`), then for every run and signal sums
`approach_delay`'s `Total_Delay_veh_h` and `Volume` over the bins and phases and divides, and sets that beside
the run's `metrics.json` `intersections.<id>.delay_per_veh_s` (SUMO's time lost on the signal's approaches).
Prints one row per signal-run, then the gap (SUMO's minus ours), the share (ours over SUMO's), their
correlation, and each controller's means. The approach delay counts only the wait for green at the stop bar,
so it reads lower; the question is whether the two move together.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def per_signal_approach_delay_s(run_dir: Path) -> dict[str, float]:
    """Each signal's approach delay per vehicle over the whole run: total delay over total volume, seconds."""
    from signalwise.analytics.atspm.approach_delay import approach_delay
    from signalwise.analytics.atspm.inputs import read_detectors, read_event_log

    rows = approach_delay(read_event_log(run_dir / "events.csv"), read_detectors(run_dir / "detectors.csv"))
    sums = rows.groupby("DeviceId")[["Total_Delay_veh_h", "Volume"]].sum()
    return {str(dev): 3600.0 * r.Total_Delay_veh_h / r.Volume for dev, r in sums.iterrows() if r.Volume > 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-s", "--scenario", default="corridor")
    ap.add_argument("-c", "--controllers", default="fixed,actuated")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=900.0, help="simulated seconds of each run")
    ap.add_argument("--compare-dir", type=Path, help="a finished `signalwise compare` directory (no runs are made)")
    args = ap.parse_args()

    compare_dir = args.compare_dir
    if compare_dir is None:
        compare_dir = Path(tempfile.mkdtemp(prefix="apdelay-")) / "compare"
        subprocess.run([SIGNALWISE, "compare", "-s", args.scenario, "-c", args.controllers, "--seeds",
                        str(args.seeds), "--duration", f"{args.duration:g}", "--workers", "2", "--out",
                        str(compare_dir)], check=True, stdout=subprocess.DEVNULL)
    pairs: list[tuple[str, str, float, float]] = []
    for metrics_file in sorted(compare_dir.glob("*/metrics.json")):
        run_dir = metrics_file.parent
        sumo = {k: v.get("delay_per_veh_s") for k, v in json.loads(metrics_file.read_text())
                .get("intersections", {}).items()}
        ours = per_signal_approach_delay_s(run_dir)
        for signal in sorted(set(ours) & {k for k, v in sumo.items() if v is not None}):
            pairs.append((run_dir.name, signal, ours[signal], float(sumo[signal])))
    if not pairs:
        sys.exit(f"error: no run in {compare_dir} has both an approach delay and SUMO's per-signal delay")

    print(f"{'run':<28} {'signal':<8} {'approach delay s':>17} {'SUMO delay s':>13}")
    for run, signal, ours, sumo in pairs:
        print(f"{run:<28} {signal:<8} {ours:>17.2f} {sumo:>13.2f}")
    gaps = [s - o for _, _, o, s in pairs]
    shares = [o / s for _, _, o, s in pairs if s > 0]
    print(f"\nsignal-runs: {len(pairs)}; SUMO's minus approach delay: {min(gaps):.1f} to {max(gaps):.1f} s "
          f"(mean {statistics.mean(gaps):.1f}); approach delay / SUMO's: {min(shares):.0%} to {max(shares):.0%} "
          f"(mean {statistics.mean(shares):.0%})")
    if len(pairs) > 2:
        print(f"correlation: {statistics.correlation([p[2] for p in pairs], [p[3] for p in pairs]):.3f}")
    for controller in args.controllers.split(","):
        mine = [p for p in pairs if p[0].startswith(f"{controller}-")]
        if mine:
            print(f"{controller}: approach delay {statistics.mean(p[2] for p in mine):.1f} s, "
                  f"SUMO's {statistics.mean(p[3] for p in mine):.1f} s")
    print(f"runs in {compare_dir}")


if __name__ == "__main__":
    main()
