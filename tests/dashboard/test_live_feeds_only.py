"""The live dashboard over a run on detector feeds alone (`signalwise live --field none`: no simulator, the
signals decided from what the feeds post; here nobody posts). Such a run measures no waits, and every signal's
data go stale: the delay chart says the run does not measure waits, and the stale-data alert names every signal
it covers, not three and a count.
"""

from __future__ import annotations

import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

#: the built-in stale_data alert held 0 s: raised as soon as the signals' data are older than the shield allows
ALERT_RULES = [{"name": "stale_data", "for_s": 0}]


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-feeds"), "corridor", alert_rules=ALERT_RULES,
                        field="none") as lv:
        yield lv


def _ready(page) -> None:
    wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                   " && window.signalwise.map.drawn.seq !== null", 20)


@pytest.mark.slow
def test_the_delay_chart_says_a_feed_only_run_measures_no_waits(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        # an interval closes (60 simulated s: 6 s at speed 10), with no wait in it
        wait_for(page, "window.signalwise.state.intervals.length > 0", 30)
        assert page.evaluate("window.signalwise.state.intervals.every(i => i.mean_wait_s === null)")
        # the charts redraw at most twice a second: the text the next draws show, once it is another than the first
        said = wait_for(page, "(t => t !== 'after the first interval' && t)(window.signalwise.charts.delay.emptyShown)", 5)
        assert said == "not measured: this run's detector feeds carry no waits", said
        p.shot("feeds-only-delay-corridor")
        assert p.errors == [], p.errors


@pytest.mark.slow
def test_a_stale_data_alert_over_every_signal_names_each_one(live, browser):
    signals = sorted(i.id for i in live.runtime.stepper.intersections)
    assert len(signals) > 3  # more than the alert's message names
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        # once every signal is stale the server's message names three and counts the rest
        text, title = wait_for(page, "(n => n && n.textContent.includes('and 2 more') && [n.textContent, n.title])"
                                     "([...document.querySelectorAll('#alert-list li.active')]"
                                     ".find(n => n.querySelector('b').textContent === 'stale_data'))", 30)
        assert all(s in text for s in signals), text  # the page names every one
        assert title == f"signals: {', '.join(signals)}"
        p.shot("feeds-only-stale-corridor")
        assert p.errors == [], p.errors


@pytest.mark.slow
def test_missing_data_read_as_no_data_not_as_empty_roads(live, browser):
    """Nobody posts: the server has no observation of any queue (null), and the shield's fallback serves every
    signal. The detail writes `no data` for each approach (not 0), the network queue chart draws nothing and says
    why, and the controller's confidence is not shown as trust beside `fallback: yes`."""
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        page.select_option("#signal-pick", "J3")
        wait_for(page, "document.getElementById('d-fallback').textContent.startsWith('yes')", 30)
        cells = page.evaluate("[...document.querySelectorAll('#d-approaches > span')].slice(4).map(n => n.textContent)")
        values = cells[1::2]  # direction, value, direction, value, ...
        assert values and all(v == "no data" for v in values), cells
        confidence = page.inner_text("#d-confidence")
        assert confidence != "1.00" and ("not used" in confidence or "fallback" in confidence), confidence
        assert "fallback serves" in page.get_attribute("#d-confidence", "title")
        said = wait_for(page, "(t => t && t.startsWith('no data:') && t)(window.signalwise.charts.queue.emptyShown)", 5)
        assert said == "no data: no queue observed"
        assert page.evaluate("window.signalwise.state.series.queue.every(p => p[1] === null)")
        p.shot("feeds-only-no-data-corridor")
        assert p.errors == [], p.errors
