"""What `signalwise atspm RUN_DIR`'s PNG charts cost: the charts of a run's signals, drawn in one process.

    .venv/bin/python bench/atspm_charts.py [-s corridor] [-c actuated] [--duration 1800] [--devices 5 25 all]
                                           [--repeat 3] [--run-dir DIR]

Runs `signalwise run -s S -c C --duration D` (or reads the run in `--run-dir`), computes the measures the charts
read from its events.csv and detectors.csv as `signalwise atspm` does (`worker.CHART_GROUP`, `compute_options`),
then times `charts.plan_charts` and `charts.draw_charts` for each `--devices` value (a count, or `all`: as
`--chart-devices`), the median of `--repeat` times, and prints the charts drawn, the time, and the time per chart
and per device. The measures' own computation is not timed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-s", "--scenario", default="corridor")
    ap.add_argument("-c", "--controller", default="actuated")
    ap.add_argument("--duration", type=float, default=1800.0, help="simulated seconds of the run")
    ap.add_argument("--devices", nargs="+", default=["5", "25", "all"], help="counts, or all")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--run-dir", type=Path, help="a finished run's directory (no run is made)")
    args = ap.parse_args()

    from signalwise.analytics.atspm.charts import draw_charts, plan_charts
    from signalwise.analytics.atspm.compute import compute_all
    from signalwise.analytics.atspm.inputs import read_detectors, read_event_log, with_stopbar_yellow_red
    from signalwise.analytics.atspm.phase_labels import labels_beside
    from signalwise.analytics.atspm.worker import CHART_GROUP, Job, compute_options

    tmp = Path(tempfile.mkdtemp(prefix="atspm-charts-"))
    try:
        run = args.run_dir
        if run is None:
            t0 = time.perf_counter()
            subprocess.run([SIGNALWISE, "run", "-s", args.scenario, "-c", args.controller, "--duration",
                            f"{args.duration:g}", "--out", str(tmp / "runs")], check=True, capture_output=True,
                           text=True)
            print(f"signalwise run -s {args.scenario} -c {args.controller} --duration {args.duration:g}: "
                  f"{time.perf_counter() - t0:.1f} s")
            (run,) = (p.parent for p in (tmp / "runs").rglob("events.csv"))  # --out is the run's parent
        events = run / "events.csv"
        detectors = run / "detectors.csv" if (run / "detectors.csv").exists() else None
        job = Job(events=events, detectors=detectors, options={}, out_dir=tmp / "out", fmt="csv", charts=True,
                  run_clock=True)
        log = read_event_log(events)
        config = with_stopbar_yellow_red(read_detectors(detectors)) if detectors is not None else None
        results = compute_all(log, config, only=CHART_GROUP, **compute_options(job))
        labels, _notes = labels_beside(events, detectors)
        print(f"{run}: {len(log.devices)} signals, {len(log):,} events")
        for wanted in args.devices:
            devices = "all" if wanted == "all" else int(wanted)
            times, drawn = [], 0
            for k in range(args.repeat):
                out = tmp / f"charts-{wanted}-{k}"
                t0 = time.perf_counter()
                items, axis, _more = plan_charts(results, devices)
                axis["run_clock"] = True
                drawn = len(draw_charts(items, axis, labels, out))
                times.append(time.perf_counter() - t0)
                shutil.rmtree(out)
            chosen = len({device for _kind, device, _data in items})
            t = statistics.median(times)
            print(f"  --chart-devices {wanted}: {chosen} signals, {drawn} charts in {t:.2f} s (median of "
                  f"{args.repeat}; {t / max(drawn, 1) * 1000:.0f} ms a chart, {t / max(chosen, 1) * 1000:.0f} ms "
                  "a signal)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
