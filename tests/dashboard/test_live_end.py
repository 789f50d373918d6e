"""The dashboard when `signalwise live` reaches the end of its run: the command itself, as an operator runs
it, a short `corridor` run at speed 10 (SUMO in its worker process), the page open in Chromium.

The page learns the end from the stream (close 1001 with the reason), shows it, takes one last look at the
run, and then asks nothing more of a server that has stopped: no request every two seconds failing into the
console for as long as the tab stays open.
"""

from __future__ import annotations

import time

import pytest
from dashboard_helpers import open_page, wait_for
from support.loopback import free_port, signalwise_serving


@pytest.mark.slow
def test_the_page_shows_the_end_of_the_run_and_then_asks_nothing_more(browser, tmp_path):
    port = free_port()
    with signalwise_serving(["live", "--scenario", "corridor", "--speed", "20", "--duration", "150", "--port",
                             str(port), "--out", str(tmp_path)], "/api/v1/live/status", port, cwd=tmp_path,
                            env={"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                                 "NO_COLOR": "1"}) as proc:
        # the page's clock runs as a wall clock does, and the test can run it on past the page's polls
        with open_page(browser, f"http://127.0.0.1:{port}/", before=lambda page: page.clock.install()) as p:
            wait_for(p.page, "window.signalwise && window.signalwise.feed && window.signalwise.feed.mode === 'stream'")
            wait_for(p.page, "window.signalwise.map.drawn && window.signalwise.map.drawn.seq !== null", 20)
            x, y = p.page.evaluate("window.signalwise.map.screenOf('J3')")
            box = p.page.locator("#map").bounding_box()
            p.page.mouse.click(box["x"] + x, box["y"] + y)
            assert p.page.is_hidden("#detail-age")  # live: nothing to say over the detail
            wait_for(p.page, "window.signalwise.feed.mode === 'ended'", 60)
            assert p.page.get_attribute("#feed-mode", "title") == "the live run ended (complete)"
            # the map, the detail and the charts say it is over, and look it, not only the top bar
            wait_for(p.page, "document.body.classList.contains('ended')", 5)
            assert p.page.text_content("#detail-age").startswith("the run has ended: this is its last state, at t = ")
            assert p.page.text_content("#map-message").startswith("the live run ended (complete) at t = ")
            assert p.page.evaluate("getComputedStyle(document.getElementById('detail-facts')).filter") != "none"
            assert proc.wait(timeout=30) == 0, proc.stderr.read()[-2000:]
            wait_for(p.page, "document.querySelector('#run-status').textContent === 'complete'", 5)
            # nothing left to operate: every control sleeps, not only the controller toggle
            assert p.page.evaluate("[...document.querySelectorAll(['#controls', '#override-form', '#timing-form', "
                                   "'#shield-form'].flatMap(f => [f + ' button', f + ' input', f + ' select'])"
                                   ".join(', '))].every(n => n.disabled)")
            stopped = time.monotonic()
            asked: list[str] = []
            p.page.on("request", lambda r: asked.append(r.url))
            # 6 s of the page's time: three status polls and one alerts poll, had they gone on (each timer due in
            # them fires), then a moment of wall time for a request they would make to go out
            p.page.clock.fast_forward("00:06")
            p.page.wait_for_timeout(500)
            assert asked == [], f"asked a stopped server {len(asked)} times in {time.monotonic() - stopped:.0f} s"
            # a young run has no complete cycle: the ATSPM charts of the signal selected answer 404 with the reason
            assert [e for e in p.errors if "/api/v1/live/atspm/" not in e] == [], p.errors
