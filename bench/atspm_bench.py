"""`signalwise atspm` against the `atspm` package (ODOT), whole processes, on the same files.

    .venv/bin/python bench/atspm_bench.py [--events 1100000] [--repeats 5] [--format parquet|csv]
                                          [-- extra signalwise atspm options, e.g. --no-charts]

Writes a synthetic hi-res log (tests/support/atspm_synthetic.py, 4 hours of
~23 signals with 8 phases each) and its detector configuration (stop-bar
detectors also count yellow/red actuations), then times, alternating, as
separate processes started from scratch (interpreter start and imports
included):

- ours:   `signalwise atspm --events F --detectors D --out O` — every measure,
          tables and its default PNG charts;
- theirs: a Python process running the atspm package's pipeline
          (`SignalDataProcessor(...).run()`: load, aggregate, save as CSV) with
          the aggregations we agree with (actuations, arrivals on green,
          platoon ratio, split failures, yellow/red, terminations, ped).

Prints each process's median wall time over the repeats, every run, and the
ratio theirs / ours (the target is >= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*: test and bench helpers

from support import atspm_reference as R  # noqa: E402
from support import atspm_synthetic as synthetic  # noqa: E402

TARGET = 1.5

#: the atspm package's whole pipeline, as a user runs it: files in, tables out
ATSPM_SCRIPT = """
import json, sys
from atspm import SignalDataProcessor
events, detectors, out, aggregations = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
SignalDataProcessor(raw_data=events, detector_config=detectors, bin_size=15, output_dir=out,
                    output_format="csv", output_to_separate_folders=False, verbose=0,
                    aggregations=aggregations).run()
"""


def signalwise_command() -> list[str]:
    script = Path(sys.executable).with_name("signalwise")
    return [str(script)] if script.exists() else [sys.executable, "-m", "signalwise.cli"]


def timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """-> (wall s, CPU s of the process and its children). CPU seconds move less with the machine's
    load than wall time, so both are printed."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd[:4])} …\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="event log file format")
    ap.add_argument("ours_options", nargs="*", help="extra `signalwise atspm` options (after --)")
    args = ap.parse_args()

    import json

    devices = args.events // 50_000 + 1  # ~12.8k events per device-hour, 4 hours
    frame, config = synthetic.synthetic_events(n_devices=devices, hours=4, seed=42)
    frame = frame.iloc[: args.events]
    config = synthetic.with_yellow_red(config)
    aggregations = json.dumps(R.atspm_aggregations())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        events = tmp / f"events.{args.format}"
        if args.format == "parquet":
            frame.to_parquet(events, index=False)
        else:
            frame.to_csv(events, index=False)
        detectors = tmp / "detectors.csv"
        config.to_csv(detectors, index=False)
        atspm_detectors = tmp / "atspm_detectors.csv"  # the four columns atspm reads
        config[["DeviceId", "Phase", "Parameter", "Function"]].to_csv(atspm_detectors, index=False)
        ours_cmd = signalwise_command() + ["atspm", "--events", str(events), "--detectors", str(detectors),
                                           "--out", str(tmp / "ours")] + args.ours_options
        theirs_cmd = [sys.executable, "-c", ATSPM_SCRIPT, str(events), str(atspm_detectors), str(tmp / "theirs"),
                      aggregations]
        print(f"{len(frame):,} events ({args.format}), {devices} devices; "
              f"{args.repeats} alternating runs of each whole process")
        print(f"ours:   signalwise atspm --events F --detectors D --out O {' '.join(args.ours_options)}".rstrip())
        print("theirs: python -c 'SignalDataProcessor(raw_data=F, detector_config=D, output_dir=O, ...).run()'")
        timed(ours_cmd, tmp / "ours")  # warm-up: file cache, .pyc, font cache
        timed(theirs_cmd, tmp / "theirs")
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):
            theirs_t.append(timed(theirs_cmd, tmp / "theirs"))
            ours_t.append(timed(ours_cmd, tmp / "ours"))
        n_png = len(list((tmp / "ours").glob("*.png")))
        n_tables = len([p for p in (tmp / "ours").iterdir() if p.suffix != ".png"])
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for label, runs, extra in (("atspm package", theirs_t, ""),
                               ("signalwise   ", ours_t, f"; {n_tables} tables, {n_png} charts")):
        print(f"{label}: median {statistics.median(w for w, _ in runs):.2f} s wall, "
              f"{statistics.median(c for _, c in runs):.2f} s CPU   "
              f"(wall: {', '.join(f'{w:.2f}' for w, _ in runs)}{extra})")
    wall = statistics.median(w for w, _ in theirs_t) / statistics.median(w for w, _ in ours_t)
    cpu = statistics.median(c for _, c in theirs_t) / statistics.median(c for _, c in ours_t)
    print(f"speed-up: {wall:.2f}x wall (target >= {TARGET}x), {cpu:.2f}x CPU time")


if __name__ == "__main__":
    main()
