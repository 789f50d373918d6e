"""The signal's detail says its coordination pattern, as `GET /api/v1/live/status`'s `coordination` gives it: the plan's
cycle and offset, or why the signal runs Free; a signal whose log names no pattern has no such row.

Debian's Chromium driven by Playwright; a real `corridor` live run under `coordinated` (SUMO in its worker process,
paced), J2 switched to `fixed` by an operator's change, served on 127.0.0.1 with its streams.
"""

from __future__ import annotations

import threading

import pytest
from dashboard_helpers import open_page, wait_for
from support.loopback import serving

pytestmark = pytest.mark.slow

ROW = "(id => { const row = document.getElementById('d-coordination-row'); return !row.hidden && " \
      "document.getElementById('detail-id').textContent === id && document.getElementById('d-coordination').textContent; })"


def test_the_detail_says_the_signals_plan_or_why_it_runs_free(tmp_path, browser):
    from signalwise.api import create_app
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live import changes as ch
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'dashboard.db'}", cache_ttl_s=0,
                              bind_host="127.0.0.1"))
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="coordinated"),
                     LiveOptions(speed=10.0, snapshot_hz=4.0), tmp_path / "live")
    rt.open()
    rt.submit(ch.ControllerChange(controller="fixed", intersections=["J2"]), who="ops")  # at J2's first green
    app.state.live = rt
    app.state.streams.attach(rt)
    loop = threading.Thread(target=rt.run, name="live-corridor", daemon=True)
    loop.start()
    try:
        with serving(app) as base, open_page(browser, base + "/") as p:
            page = p.page
            wait_for(page, "window.signalwise && window.signalwise.ready", 30)
            page.select_option("#signal-pick", "J1")
            assert wait_for(page, f"{ROW}('J1')", 20) == "cycle 90 s, offset 0 s"
            wait_for(page, "(window.signalwise.state.status?.coordination?.J2 || {}).not_coordinated", 20)
            page.select_option("#signal-pick", "J2")
            assert wait_for(page, f"{ROW}('J2')", 20) == \
                "Free: its controller 'fixed' runs no coordination pattern"
            assert page.locator("#d-coordination-row th").inner_text() == "coordination"
            p.shot("detail-coordination-free")
            assert not p.errors, p.errors
    finally:
        rt.stop()
        loop.join(timeout=20)
