"""Where a run's delay is: standing, moving, entering, and how much of it the signals' own queues hold.

    .venv/bin/python bench/delay_split.py RUN_DIR [RUN_DIR ...]

Reads a run directory (`signalwise run`, any `--record`): `trips.csv` gives
each vehicle's delay (RESCO's: time loss plus insertion delay), its waiting
time (seconds below 0.1 m/s, anywhere) and its insertion delay;
`queues.csv` the halting vehicles on each signal's approach lanes, sampled
every 5 s. All per vehicle of the run, so the parts compare:

- waiting on a signal's approach lanes: the queues' vehicle-seconds over
  the vehicles, what a per-signal search's score (`--per-signal`) sees;
- waiting elsewhere: standing beyond those lanes (a queue longer than the
  approach lane, a priority junction, a merge);
- moving: time loss at speed (slowing, accelerating, following);
- entering: insertion delay.

Why: a controller, or a search, that lowers the signals' queues can lower
only their part of the delay; this says how large it is on a network.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def split(run_dir: Path) -> dict[str, float]:
    """Seconds per vehicle: delay, its parts, and the signals' queues (vehicle-seconds over vehicles)."""
    with (run_dir / "trips.csv").open() as f:
        trips = list(csv.DictReader(f))
    if not trips:
        raise SystemExit(f"{run_dir}: no vehicles in trips.csv")
    n = len(trips)
    mean = lambda key: sum(float(t[key]) for t in trips) / n  # noqa: E731
    with (run_dir / "queues.csv").open() as f:
        samples = [(float(r["time_s"]), int(r["halting_veh"])) for r in csv.DictReader(f)]
    times = sorted({t for t, _ in samples})
    period_s = times[1] - times[0] if len(times) > 1 else 0.0
    queued = sum(h for _, h in samples) * period_s / n
    delay, waiting, entering = mean("delay_s"), mean("waiting_s"), mean("depart_delay_s")
    return {"vehicles": n, "delay_s": delay, "signal_queues_s": queued, "waiting_elsewhere_s": waiting - queued,
            "moving_s": delay - waiting - entering, "entering_s": entering}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", type=Path)
    args = ap.parse_args()
    print("| run | vehicles | delay | on signals' approaches | waiting elsewhere | moving | entering |")
    print("|---|---|---|---|---|---|---|")
    for run_dir in args.run_dirs:
        s = split(run_dir)
        parts = " | ".join(f"{s[k]:.1f} s ({100 * s[k] / s['delay_s']:.0f} %)"
                           for k in ("signal_queues_s", "waiting_elsewhere_s", "moving_s", "entering_s"))
        run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        name = f"{run['scenario']}, {run['controller']}, seed {run['seed']}" if "scenario" in run else run_dir.name
        print(f"| {name} | {s['vehicles']} | {s['delay_s']:.1f} s | {parts} |")


if __name__ == "__main__":
    main()
