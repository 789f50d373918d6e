"""The live runtime's targets (issue "Live operations"), measured on this machine.

    .venv/bin/python bench/live_bench.py [--only pacing,decision,recovery,memory,grid] [--in-process]

- pacing: `corridor` at --speed 1 (120 simulated s) and --speed 10 (600 s): tick lateness p50/p99/max
  (target p99 < 20 ms);
- decision: the decision path inside the runtime, from an observation in hand to the actuation command
  issued, p50/p99 per intersection that decided (target p99 < 1 ms), and the simulator round trip
  (`field_step`) beside it;
- recovery: one live run of `corridor` in which the SUMO process is killed (SIGKILL) 3 times: each
  recovery's wall time (target < 5 s), events the runtime had written before each crash that are not in
  the log before that recovery's marker (target 0), and the independent audit's violations over the whole
  run (target 0). (The replay after a restore is not the uninterrupted run's: SUMO's state load does not
  reproduce it event for event.)
- memory: 24 simulated hours of `corridor` with repeating demand at --speed max: RSS after the first
  simulated hour and at the end (target growth < 10 %);
- grid: 100 intersections (`grid10x10`) at --speed 1 for 60 simulated s: tick lateness p99 (target < 50 ms).

Every figure is printed with what produced it; the machine is shared, so run it more than once.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import tempfile
import threading
import time
from pathlib import Path

from signalwise.analytics.safety_audit import audit_run
from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def _live(tmp: Path, name: str, scenario: str, in_process: bool, **opts) -> LiveRuntime:
    rt = LiveRuntime(RunConfig(scenario=scenario, controller="max-pressure", seed=1),
                     LiveOptions(in_process=in_process, **opts), tmp / name)
    rt.open()
    return rt


def _fig(rt: LiveRuntime, stage: str) -> dict:
    return rt.profiler.figures().get(stage, {})


def pacing(tmp: Path, in_process: bool) -> None:
    for speed, duration in ((1.0, 120.0), (10.0, 600.0)):
        rt = _live(tmp, f"pace-{speed:g}", "corridor", in_process, speed=speed, duration_s=duration)
        t0 = time.monotonic()
        rt.run()
        wall = time.monotonic() - t0
        f = _fig(rt, "lateness")
        print(f"pacing  corridor --speed {speed:g}: {duration:.0f} sim-s in {wall:.1f} wall-s; tick lateness "
              f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, max {f['max_ms']:.2f} ms over {f['count']} ticks "
              f"(target p99 < 20 ms)")


def decision(tmp: Path, in_process: bool) -> None:
    rt = _live(tmp, "decision", "corridor", in_process, speed=None, duration_s=1800.0)
    rt.run()
    d, s = _fig(rt, "decision_path"), _fig(rt, "field_step")
    print(f"decision corridor: decision path p50 {d['p50_ms']:.3f} ms, p99 {d['p99_ms']:.3f} ms over the last "
          f"{d['count']} decisions (target p99 < 1 ms); simulator round trip p50 {s['p50_ms']:.3f} ms, "
          f"p99 {s['p99_ms']:.3f} ms")


def recovery(tmp: Path, in_process: bool) -> None:
    if in_process:
        print("recovery: needs SUMO in its own process (drop --in-process)")
        return
    rt = _live(tmp, "kills", "corridor", False, speed=40.0, duration_s=1800.0, state_every_s=30.0)
    kills_at = [300.0, 800.0, 1300.0]

    def killer():
        while not rt.running:
            time.sleep(0.01)
        for at in kills_at:
            while rt.stepper.t < at and rt.running:
                time.sleep(0.01)
            pid = rt.field.backend.pid
            os.kill(pid, signal.SIGKILL)
            while rt.restarts < kills_at.index(at) + 1:
                time.sleep(0.01)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    rt.run()
    th.join(timeout=5)
    logged = list(read_events(rt.run_dir / "events.csv"))
    marks = [i for i, e in enumerate(logged) if e.event_code == EventCode.RUNTIME_RECOVERY]
    firsts = [m for k, m in enumerate(marks) if k == 0 or marks[k - 1] != m - 1]  # one group per recovery
    # every event the runtime had written before each crash is in the file, before that recovery's marker
    lost = sum(max(0, rec["events_logged_before"] - first) for rec, first in zip(rt.recoveries, firsts, strict=False))
    report = audit_run(rt.run_dir)
    took = ", ".join(f"{r['took_s']:.2f} s (rewound {r['rewound_s']:.0f} sim-s)" for r in rt.recoveries)
    print(f"recovery corridor, {len(rt.recoveries)} SIGKILLs of the SUMO process: recovered in {took} "
          f"(target < 5 s each); events written before a crash and missing from the log after it: {lost} "
          f"(target 0); audit violations over the whole run: {len(report.violations)}")


def memory(tmp: Path, in_process: bool) -> None:
    rt = _live(tmp, "memory", "corridor", in_process, speed=None, duration_s=24 * 3600.0, repeat_demand=True)
    marks: dict[str, float] = {}

    def watch():
        while rt.running is not False and rt.stepper.t < 3600.0:
            time.sleep(0.2)
        marks["1h"] = _rss_mb(rt)
    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t0 = time.monotonic()
    rt.run()
    marks["24h"] = _rss_mb(rt)
    wall = time.monotonic() - t0
    growth = (marks["24h"] - marks["1h"]) / marks["1h"] * 100
    print(f"memory  corridor 24 sim-h with repeating demand at --speed max ({wall:.0f} wall-s): RSS after 1 h "
          f"{marks['1h']:.0f} MB, after 24 h {marks['24h']:.0f} MB: {growth:+.1f} % (target < 10 %; runtime "
          f"process{'' if in_process else ' plus the SUMO worker'})")


def _rss_mb(rt: LiveRuntime) -> float:
    own = _proc_rss_mb(os.getpid())
    pid = getattr(rt.field.backend, "pid", None)
    return own + (_proc_rss_mb(pid) if pid else 0.0)


def _proc_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grid(tmp: Path, in_process: bool) -> None:
    rt = _live(tmp, "grid", "grid10x10", in_process, speed=1.0, duration_s=60.0)
    rt.run()
    f, s = _fig(rt, "lateness"), _fig(rt, "tick")
    print(f"grid    grid10x10 (100 signals) --speed 1: tick lateness p99 {f['p99_ms']:.2f} ms, max {f['max_ms']:.2f} ms "
          f"(target p99 < 50 ms); tick work p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="pacing,decision,recovery,memory,grid",
                    help="comma-separated: pacing, decision, recovery, memory, grid")
    ap.add_argument("--in-process", action="store_true", help="SUMO in this process (no crash isolation)")
    args = ap.parse_args()
    parts = {"pacing": pacing, "decision": decision, "recovery": recovery, "memory": memory, "grid": grid}
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in parts]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    with tempfile.TemporaryDirectory(prefix="signalwise-live-bench-") as tmp:
        for name in chosen:
            parts[name](Path(tmp), args.in_process)


if __name__ == "__main__":
    main()
