"""signalwise ATSPM measures vs the atspm package (ODOT) on the same 1,000,000-event log.

    .venv/bin/python bench/atspm_bench.py [--events 1000000] [--repeats 5]

Both read the same Parquet file and compute the agreement-bound measures
(actuations, arrivals on green, platoon ratio, split failures, yellow/red
actuations, terminations, pedestrian services/actuations), alternating runs
in one process; prints the median wall time of each and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers

from support import atspm_reference as R  # noqa: E402
from support import atspm_synthetic as synthetic  # noqa: E402

from signalwise.analytics.atspm import measures as M  # noqa: E402
from signalwise.analytics.atspm.inputs import detectors_from_frame, read_event_log  # noqa: E402


def ours(path: Path, cfg) -> dict:
    log = read_event_log(path)
    aog = M.arrival_on_green(log, cfg, 15, project=False)
    return {"actuations": M.actuations(log, 15, True), "arrival_on_green": aog,
            "platoon_ratio": M.platoon_ratio(log, cfg, aog, 15), "split_failures": M.split_failures(log, cfg, 15),
            "yellow_red": M.yellow_red(log, cfg, 15), "terminations": M.terminations(log, 15),
            "ped": M.pedestrian(log, 15)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    devices = args.events // 50_000 + 1  # ~12.8k events per device-hour, 4 hours
    frame, config = synthetic.synthetic_events(n_devices=devices, hours=4, seed=42)
    frame = frame.iloc[: args.events]
    config = synthetic.with_yellow_red(config)
    cfg = detectors_from_frame(config)
    atspm_cfg = config[["DeviceId", "Phase", "Parameter", "Function"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        frame.to_parquet(path, index=False)
        print(f"{len(frame):,} events, {devices} devices; {args.repeats} alternating runs each")
        theirs_t, ours_t = [], []
        R.run_atspm(str(path), atspm_cfg)  # warm-up (imports, caches) for both
        ours(path, cfg)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            R.run_atspm(str(path), atspm_cfg)
            theirs_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ours(path, cfg)
            ours_t.append(time.perf_counter() - t0)
    a, b = statistics.median(theirs_t), statistics.median(ours_t)
    print(f"atspm package: median {a:.3f} s   (runs: {', '.join(f'{x:.2f}' for x in theirs_t)})")
    print(f"signalwise:    median {b:.3f} s   (runs: {', '.join(f'{x:.2f}' for x in ours_t)})")
    print(f"speed-up: {a / b:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
