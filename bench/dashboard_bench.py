"""The live dashboard's targets (issue 15), measured in Debian's Chromium driven by Playwright.

    .venv/bin/python bench/dashboard_bench.py [--only responsive,first-map] [--seconds 30] [--loads 5]

- responsive: `grid10x10` (100 signals) live, SUMO in this process at --speed 5, snapshots published
  twice a wall second; the page open on it for 30 s with a PerformanceObserver('longtask') installed
  before the page's scripts run. Target: no long task (a task over 50 ms) in the browser's timeline.
  Also printed: snapshots the page received, the map's draw time (p50 / p99 / max).
- first-map: `resco:ingolstadt21` (sumo-rl's RESCO network, 21 signals, 1,918 lanes) live; time from the
  navigation's start to the first map drawn (the page's `signalwise:first-map` performance mark), over
  fresh page loads in new browser contexts: the first (the server reads the network file) and the median.
  Target: < 2 s.

Both run the server in this process as `signalwise live` does (uvicorn in a thread beside the loop) and
the browser as the tests do (/usr/bin/chromium, never `playwright install`); the machine is shared, so run
it more than once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def responsive(browser, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp, \
            live_dashboard(Path(tmp), "grid10x10", speed=5.0, snapshot_hz=2.0) as live:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.add_init_script(LONGTASKS)
        page = context.new_page()
        page.goto(live.url + "/")
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                       " && window.signalwise.map.drawn.seq !== null", 30)
        observed = page.evaluate("window.__longtaskObserved")
        seq0 = page.evaluate("window.signalwise.map.drawn.seq")
        page.evaluate("window.__longtasks = []; window.signalwise.map.drawMs = []")
        t0 = time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        wall = time.monotonic() - t0
        tasks = page.evaluate("window.__longtasks")
        draws = page.evaluate("window.signalwise.map.drawMs")
        seq1 = page.evaluate("window.signalwise.map.drawn.seq")
        mode = page.evaluate("window.signalwise.feed.mode")
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "dashboard-bench-grid10x10.png"))
        context.close()
    worst = max((t["ms"] for t in tasks), default=0.0)
    print(f"responsive  grid10x10 (100 signals) at --speed 5, snapshots at 2 Hz, page open {wall:.0f} s "
          f"(feed: {mode}; longtask observer: {observed}): {len(tasks)} long task(s) over 50 ms"
          f"{f', the longest {worst:.0f} ms' if tasks else ''} (target: none); snapshots drawn "
          f"{seq1 - seq0} ({(seq1 - seq0) / wall:.1f}/s); map draw p50 {_pct(draws, 0.5):.1f} ms, "
          f"p99 {_pct(draws, 0.99):.1f} ms, max {max(draws, default=float('nan')):.1f} ms over {len(draws)} draws")


def first_map(browser, loads: int) -> None:
    times = []
    with tempfile.TemporaryDirectory(prefix="dash-bench-") as tmp, \
            live_dashboard(Path(tmp), "resco:ingolstadt21", speed=1.0) as live:
        signals = len(live.runtime.stepper.intersections)
        for _ in range(loads):
            with open_page(browser, live.url + "/") as p:
                wait_for(p.page, "performance.getEntriesByName('signalwise:first-map').length > 0", 30)
                times.append(p.page.evaluate("performance.getEntriesByName('signalwise:first-map')[0].startTime"))
                lanes = p.page.evaluate("window.signalwise.state.network.lanes.length")
                heads = p.page.evaluate("new Set(window.signalwise.map.heads.map(h => h.id)).size")
    print(f"first-map   resco:ingolstadt21 ({signals} signals, {lanes} lanes; {heads} signals drawn): navigation "
          f"start to first map drawn: first load {times[0]:.0f} ms, median of {len(times)} "
          f"{statistics.median(times):.0f} ms, max {max(times):.0f} ms (target < 2000 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="responsive,first-map")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--loads", type=int, default=5)
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
                    responsive(browser, args.seconds)
                elif name == "first-map":
                    first_map(browser, args.loads)
                else:
                    sys.exit(f"--only takes responsive, first-map; not {name!r}")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
