"""A young live run's ATSPM charts: until the selected signal has a complete cycle the page says so without asking
for the charts, so no 404 lands in the browser's console; once it has one, the charts come.

Found in a trial: every new run's dashboard logged `Failed to load resource: 404` for `/api/v1/live/atspm/pcd?...`
until the first complete cycle, which looks like an error to anyone who opens the developer tools. Debian's
Chromium driven by Playwright, a real `corridor` live run (SUMO in its worker process) served as `signalwise live`
serves it, paced so that its first cycle takes a few seconds.
"""

from __future__ import annotations

import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

from signalwise.core import EventCode, read_events

pytestmark = pytest.mark.slow

CAPTIONS = "['atspm-pcd-msg', 'atspm-split-msg'].map(id => document.getElementById(id).textContent)"


def _has_complete_cycle(rt, tls: str) -> bool:
    """A phase green twice and then another phase green, in the run's own event log."""
    counts: dict[int, int] = {}
    for e in read_events(rt.run_dir / "events.csv"):
        if e.device_id == tls and e.event_code == EventCode.PHASE_BEGIN_GREEN:
            if any(n >= 2 for p, n in counts.items() if p != e.parameter):
                return True
            counts[e.parameter] = counts.get(e.parameter, 0) + 1
    return False


def test_a_young_run_asks_for_no_chart_until_a_cycle_is_complete(tmp_path, browser):
    with live_dashboard(tmp_path, "corridor", speed=5.0, start=False) as live:
        target = live.runtime.stepper.intersections[0].id
        with open_page(browser, live.url + "/") as p:
            page = p.page
            charts_asked: list[str] = []
            page.on("request", lambda r: charts_asked.append(r.url) if "/api/v1/live/atspm/" in r.url else None)
            live.start()
            wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                           " && window.signalwise.map.drawn.seq !== null", 20)
            page.select_option("#signal-pick", target)
            wait_for(page, f"{CAPTIONS}.every(t => !t.includes('computing'))", 15)
            assert not _has_complete_cycle(live.runtime, target), "the run was not young enough for this test"
            pcd, split = page.evaluate(CAPTIONS)
            assert pcd == (f"Purdue Coordination Diagram: no complete cycle of {target} yet (refresh once its "
                           "phases have come round)"), pcd
            assert split.startswith(f"Split monitor: no complete cycle of {target} yet"), split
            assert charts_asked == [] and p.errors == [], (charts_asked, p.errors)

            # once the signal has come round, a refresh brings both charts, and still no error
            deadline_s = 60
            waited = 0.0
            while not _has_complete_cycle(live.runtime, target) and waited < deadline_s:
                page.wait_for_timeout(250)
                waited += 0.25
            assert _has_complete_cycle(live.runtime, target), "no complete cycle within a minute"
            page.click("#atspm-refresh")
            wait_for(page, "document.getElementById('atspm-split').naturalWidth > 100", 30)
            wait_for(page, f"{CAPTIONS}.every(t => !t.includes('computing'))", 30)
            assert page.evaluate("document.getElementById('atspm-pcd').naturalWidth") > 100, page.evaluate(CAPTIONS)
            assert len(charts_asked) == 2 and p.errors == [], (charts_asked, p.errors)
