"""The live dashboard's targets (issue 15), measured in Debian's Chromium driven by Playwright.

    .venv/bin/python bench/dashboard_bench.py [--only responsive,first-map] [--seconds 30] [--loads 5] [--trace]

- responsive: `grid10x10` (100 signals) live at --speed 5, snapshots published twice a wall second;
  the page open on it for 30 s with a PerformanceObserver('longtask') installed before the page's
  scripts run, one intersection's detail open (its panel follows every snapshot). Target: no long task
  (a task over 50 ms) in the browser's timeline. Also printed: snapshots the page drew per second, the
  map's draw time (p50 / p99 / max).
- first-map: `resco:ingolstadt21` (sumo-rl's RESCO network, 21 signals, 1,918 lanes) live; time from the
  navigation's start to the first map drawn (the page's `signalwise:first-map` performance mark), over
  fresh page loads in new browser contexts: the first (the server reads the network file) and the median.
  Target: < 2 s.

Both run the server in this process as `signalwise live` does (uvicorn in a thread beside the loop, SUMO
in its worker process) and the browser as the tests do (/usr/bin/chromium, never `playwright install`).
A long task is wall time: on a machine whose cores are busy with other work the renderer waits for a
core in the middle of a task, so the load average is printed beside the figures, and `--trace` records
Chromium's trace meanwhile and gives the longest tasks' wall and main-thread CPU time (what the page
itself cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the dashboard tests' helpers, and `support.*` (test and benchmark helpers) which they import, live in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "dashboard"))

from dashboard_helpers import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    install_chromium,
    live_dashboard,
    open_page,
    wait_for,
)

LONGTASKS = """
window.__longtasks = [];
try {
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__longtasks.push({start: e.startTime, ms: e.duration, name: e.name});
  }).observe({type: 'longtask', buffered: true});
  window.__longtaskObserved = true;
} catch (e) { window.__longtaskObserved = String(e); }
"""


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _longest_tasks(trace_file: Path, n: int = 5) -> list[tuple[float, float]]:
    """(wall ms, main-thread CPU ms) of the `n` longest tasks on the renderer's main thread, from a trace."""
    data = json.loads(trace_file.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}
    return sorted(((e["dur"] / 1000, e.get("tdur", 0) / 1000) for e in events
                   if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in main),
                  reverse=True)[:n]


def responsive(browser, seconds: float, trace: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp, \
            live_dashboard(Path(tmp), "grid10x10", speed=5.0, snapshot_hz=2.0) as live:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.add_init_script(LONGTASKS)
        page = context.new_page()
        page.goto(live.url + "/")
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                       " && window.signalwise.map.drawn.seq !== null", 30)
        observed = page.evaluate("window.__longtaskObserved")
        middle = live.runtime.stepper.intersections[len(live.runtime.stepper.intersections) // 2].id
        x, y = page.evaluate(f"window.signalwise.map.screenOf({middle!r})")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        wait_for(page, "!document.getElementById('atspm-split-msg').textContent.includes('computing')", 30)
        page.evaluate("window.__longtasks = []; window.signalwise.map.drawMs = []; window.signalwise.snapshotsReceived = 0")
        load0 = _load()
        trace_file = Path(tmp) / "trace.json"
        if trace:
            browser.start_tracing(page=page, path=str(trace_file),
                                  categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
        t0 = time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        wall = time.monotonic() - t0
        if trace:
            browser.stop_tracing()
            longest = _longest_tasks(trace_file)
        tasks = page.evaluate("window.__longtasks")
        draws = page.evaluate("window.signalwise.map.drawMs")
        received = page.evaluate("window.signalwise.snapshotsReceived")
        mode = page.evaluate("window.signalwise.feed.mode")
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "dashboard-bench-grid10x10.png"))
        context.close()
    worst = max((t["ms"] for t in tasks), default=0.0)
    print(f"responsive  grid10x10 (100 signals) at --speed 5, snapshots at 2 Hz, page open {wall:.0f} s "
          f"(feed: {mode}; longtask observer: {observed}; load average {load0} before, {_load()} after): "
          f"{len(tasks)} long task(s) over 50 ms"
          f"{f', the longest {worst:.0f} ms' if tasks else ''} (target: none); detail of {middle} open; "
          f"{received} snapshots received ({received / wall:.2f}/s); map drawn {len(draws)} times, draw p50 {_pct(draws, 0.5):.1f} ms, p99 {_pct(draws, 0.99):.1f} ms, "
          f"max {max(draws, default=float('nan')):.1f} ms")
    if trace:
        print("            traced, the longest tasks on the renderer's main thread, (wall, CPU) ms: "
              + ", ".join(f"({w:.0f}, {c:.0f})" for w, c in longest))


def first_map(browser, loads: int) -> None:
    times, steps = [], []
    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp, \
            live_dashboard(Path(tmp), "resco:ingolstadt21", speed=1.0) as live:
        signals = len(live.runtime.stepper.intersections)
        for _ in range(loads):
            with open_page(browser, live.url + "/") as p:
                wait_for(p.page, "performance.getEntriesByName('signalwise:first-map').length > 0", 30)
                times.append(p.page.evaluate("performance.getEntriesByName('signalwise:first-map')[0].startTime"))
                steps.append(p.page.evaluate(FIRST_MAP_STEPS))
                lanes = p.page.evaluate("window.signalwise.state.network.lanes.length")
                heads = p.page.evaluate("new Set(window.signalwise.map.heads.map(h => h.id)).size")
    first = steps[0]
    print(f"first-map   resco:ingolstadt21 ({signals} signals, {lanes} lanes; {heads} signals drawn; load average "
          f"{_load()}): navigation start to first map drawn: first load {times[0]:.0f} ms, median of {len(times)} "
          f"{statistics.median(times):.0f} ms, max {max(times):.0f} ms (target < 2000 ms)")
    print(f"            first load, ms from navigation start: page {first['page']:.0f}, scripts {first['scripts']:.0f}, "
          f"network asked {first['asked']:.0f}, received {first['received']:.0f} ({first['kib']:.0f} KiB), "
          f"status asked {first['status_asked']:.0f}, received {first['status_received']:.0f}, "
          f"map drawn {times[0]:.0f} (the draw itself {first['draw_ms']:.0f})")


FIRST_MAP_STEPS = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const net = res.find(r => r.name.includes('/api/v1/network'));
  const js = res.filter(r => r.name.includes('/static/dashboard/js/'));
  const st = res.find(r => r.name.includes('/api/v1/live/status'));
  return {page: nav.responseEnd, scripts: Math.max(...js.map(r => r.responseEnd)), asked: net.requestStart,
          received: net.responseEnd, kib: net.encodedBodySize / 1024, status_asked: st.requestStart,
          status_received: st.responseEnd, draw_ms: window.signalwise.map.drawMs[0]};
})()"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="responsive,first-map")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--trace", action="store_true", help="record Chromium's trace: each long task's CPU time")
    args = ap.parse_args()
    reason = install_chromium()
    if reason:
        sys.exit(f"no Chromium: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name in args.only.split(","):
                if name == "responsive":
                    responsive(browser, args.seconds, args.trace)
                elif name == "first-map":
                    first_map(browser, args.loads)
                else:
                    sys.exit(f"--only takes responsive, first-map; not {name!r}")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
