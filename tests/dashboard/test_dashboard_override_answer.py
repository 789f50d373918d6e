"""The dashboard's override form shows, with "applied", what the shield does with the override: when its phase is
green (deferred by the green in force, or green now) and what ends a hold's green, the answer's `reason` in the
page's run times (`t = 0:11`).

Found in a trial: the form said only "applied", which reads as "done now" for a hold the shield deferred by the
minimum green and clearance, or cuts at each max-out. Debian's Chromium driven by Playwright, a real `corridor`
live run (SUMO in its worker process) served as `signalwise live` serves it, the operate key given in the page's
key dialog.
"""

from __future__ import annotations

import re

import httpx
import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

pytestmark = pytest.mark.slow


def test_the_override_form_says_what_the_shield_does_with_it(tmp_path, browser):
    with live_dashboard(tmp_path, "corridor", speed=5.0) as live:
        target = live.runtime.stepper.intersections[1].id
        with open_page(browser, live.url + "/") as p:
            page = p.page
            wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                           " && window.signalwise.map.drawn.seq !== null", 20)
            page.select_option("#signal-pick", target)
            wait_for(page, f"document.getElementById('detail-id').textContent === {target!r}")
            page.select_option("#ov-action", "hold")
            page.select_option("#ov-phase", "2")
            page.fill("#ov-duration", "600")
            page.click("#ov-apply")
            page.wait_for_selector("#key-dialog[open]", timeout=10000)
            page.fill("#key-input", live.operate_key)
            page.click("#key-submit")
            shown = wait_for(page, "(t => t.includes('applied (by operator): ') && t)"
                                   "(document.getElementById('override-result').textContent)", 15)
            # the answer the page was given, as the change log holds it
            (entry,) = [c for c in httpx.get(live.url + "/api/v1/live/changes").json() if c["kind"] == "override"]
            assert entry["reason"], entry
            page_times = re.sub(r"\bt=(\d+(?:\.\d+)?) s\b",
                                lambda m: "t = {}:{:02d}".format(*divmod(round(float(m.group(1))), 60)),
                                entry["reason"])
            assert shown.endswith(f"applied (by operator): {page_times}"), (shown, entry["reason"])
            # a 600 s hold: the page says when phase 2 is green (or that it is), and that max green cuts it
            assert re.search(r"phase 2 (green at (about )?t = \d+:\d\d|is green now)", shown), shown
            assert re.search(r"max green 60 s ends each hold \(first at t = \d+:\d\d\)", shown), shown
            assert p.errors == [] or all("/api/v1/live/atspm/" in e for e in p.errors), p.errors
