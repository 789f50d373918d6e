"""The live dashboard for a keyboard and screen-reader operator (WCAG 2.2 AA): names and roles read from Chromium's
accessibility tree (CDP `Accessibility.getPartialAXTree`; Playwright 1.65 has no `page.accessibility`), and what the
live regions say (aria-live, or role status, alert or log), recorded by a MutationObserver as a screen reader
would hear it.

One `corridor` live run (speed 10, SUMO in its worker process, an alert rule raised at once) and one page serve the
module.
"""

from __future__ import annotations

import re

import pytest
from dashboard_helpers import RECORD_LIVE_REGIONS, accessible, live_dashboard, open_page, wait_for

ALERT_RULES = [{"name": "a11y_test", "metric": "fallback_share", "op": ">=", "threshold": 0, "for_s": 0,
                "level": "warning", "description": "always raised: the page announces it"}]



@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-a11y"), "corridor", alert_rules=ALERT_RULES) as lv:
        yield lv


@pytest.fixture(scope="module")
def page(live, browser):
    def before(pg):
        pg.add_init_script(RECORD_LIVE_REGIONS)
        pg.clock.install()  # runs as a wall clock does; a test runs it on past the page's 8 s of silence

    with open_page(browser, live.url + "/", before=before) as p:
        wait_for(p.page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                         " && window.signalwise.map.drawn.seq !== null", 20)
        yield p.page


def _said(page) -> list[str]:
    return page.evaluate("window.__said")


@pytest.mark.slow
def test_alerts_and_the_signal_chosen_with_the_arrows_are_announced_politely(live, page):
    region = page.locator("[aria-live=polite]")
    assert region.count() == 1 and region.get_attribute("role") == "status"
    # the always-raised rule: said once, short (level, rule), when the page first reads the list
    wait_for(page, "window.__said.some(t => t.startsWith('warning alert: a11y_test'))", 15)
    # the map focused: an arrow chooses a signal, and the region says which and its state
    page.focus("#map")
    page.keyboard.press("ArrowRight")
    chosen = wait_for(page, "window.signalwise.state.selected")
    said = wait_for(page, f"window.__said.find(t => t.startsWith('signal {chosen}: '))", 5)
    assert re.fullmatch(rf"signal {chosen}: phase \d+( \(.+\))?, [a-z-]+(, [a-z ]+)*", said), said
    # no flooding: two seconds of snapshots (the detail table redrawn on each) add nothing to any live region
    before = len(_said(page))
    page.wait_for_timeout(2000)
    assert _said(page)[before:] == [], _said(page)[before:]


def test_the_sign_in_dialog_is_named_labelled_and_says_a_wrong_key(live, page):
    page.set_viewport_size({"width": 320, "height": 640})
    try:
        page.click("#sign-in")
        wait_for(page, "document.getElementById('key-dialog').open")
        assert accessible(page, "#key-dialog")["name"] == "API key"
        field = accessible(page, "#key-input")
        assert field["name"] == "API key", field  # its label, not the placeholder `sw_…`
        # at 320 px the dialog and its field fit the window (no sideways overflow under a modal)
        boxes = page.evaluate("['key-dialog', 'key-input'].map(id => document.getElementById(id)"
                              ".getBoundingClientRect().right)")
        assert max(boxes) <= 320, boxes
        page.fill("#key-input", "sw_wrong_key")
        page.keyboard.press("Enter")
        wait_for(page, "document.getElementById('key-error').textContent.length > 0", 10)
        field = accessible(page, "#key-input")
        assert field["invalid"] == "true", field
        assert page.get_attribute("#key-input", "aria-describedby") == "key-error"
        assert accessible(page, "#key-error")["role"] == "alert"  # said at once
        page.fill("#key-input", live.operate_key)
        page.keyboard.press("Enter")
        wait_for(page, "!document.getElementById('key-dialog').open", 10)
    finally:
        if page.evaluate("document.getElementById('key-dialog').open"):
            page.keyboard.press("Escape")  # the next checks need the page, not the dialog
        page.set_viewport_size({"width": 1400, "height": 860})


def test_names_of_the_charts_tabs_zoom_and_override_controls(page):
    # each live chart: an image named with its latest value in words
    label = wait_for(page, "(c => /^network queue: \\d+ vehicles at t = /.test(c.getAttribute('aria-label') || '')"
                           " && c.getAttribute('aria-label'))(document.getElementById('chart-queue'))", 10)
    queue = accessible(page, "#chart-queue")
    # Chromium's role for role=img; the name is the label, which the next snapshot may have moved on since
    assert queue["role"] == "image", queue
    assert re.fullmatch(r"network queue: \d+ vehicles at t = [\d:]+", queue["name"]), (queue, label)
    assert re.match(r"fallback share: \d+ % of signals at t = ", accessible(page, "#chart-fallback")["name"])
    assert [accessible(page, f"#zoom-{w}")["name"] for w in ("in", "out")] == ["zoom in", "zoom out"]
    page.locator("#signal-pick").select_option(index=1)
    wait_for(page, "!document.getElementById('detail-body').hidden")
    assert accessible(page, "#ov-action")["name"] == "override action"
    tabs = "[...document.querySelectorAll('#views .tab')].map(t => t.getAttribute('aria-pressed'))"
    assert page.evaluate(tabs) == ["true", "false"]
    page.click("#views .tab[data-view=compare]")
    assert page.evaluate(tabs) == ["false", "true"]
    page.click("#views .tab[data-view=live]")
    assert page.evaluate(tabs) == ["true", "false"]


def test_focus_goes_to_the_alerts_and_stays_there_after_an_acknowledgement(live, page):
    page.wait_for_selector("#alerts-top:not([hidden])", timeout=15000)
    page.focus("#alerts-top")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "alerts-heading"
    ack = "#alert-list li.active:has(b:text-is('a11y_test')) button.ack"
    page.wait_for_selector(ack, timeout=15000)
    page.focus(ack)
    page.keyboard.press("Enter")
    if page.evaluate("document.getElementById('key-dialog').open"):  # not signed in on this worker yet
        page.fill("#key-input", live.operate_key)
        page.keyboard.press("Enter")
    wait_for(page, "[...document.querySelectorAll('#alert-list .ack-result')]"
                   ".some(n => n.textContent.startsWith('acknowledged by'))", 10)
    focused = page.evaluate("[document.activeElement.id, document.activeElement.tagName,"
                            " document.activeElement.closest('#alerts') !== null]")
    assert focused[1] != "BODY" and focused[2], focused


def test_an_enlarged_atspm_chart_shrinks_on_tab_and_on_escape_anywhere(page):
    page.locator("#signal-pick").select_option(index=1)
    wait_for(page, "!document.getElementById('atspm-pcd-msg').textContent.includes('computing')", 10)
    # a young run has no complete cycle yet (the server answers 404): the image is given a picture to enlarge
    page.evaluate("document.getElementById('atspm-pcd').src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='")
    zoomed = "document.getElementById('atspm-pcd').classList.contains('zoomed')"
    page.focus("#atspm-pcd")
    page.keyboard.press("Enter")
    assert page.evaluate(zoomed)
    page.keyboard.press("Tab")  # focus leaves it: it no longer covers the control focused
    assert not page.evaluate(zoomed)
    page.focus("#atspm-pcd")
    page.keyboard.press("Enter")
    page.evaluate("document.getElementById('atspm-refresh').focus({preventScroll: true})")  # moved by script, not by Tab
    page.evaluate("document.getElementById('atspm-pcd').classList.add('zoomed')")
    page.keyboard.press("Escape")  # Escape with the focus elsewhere
    assert not page.evaluate(zoomed)


def test_lost_data_and_their_return_are_announced_once(page):
    cut = {"reads": True}
    page.route_web_socket("**/api/v1/ws/live**", lambda ws: ws.close())
    page.route("**/api/v1/live/**", lambda route: route.abort() if cut["reads"] else route.fallback())
    page.evaluate("window.signalwise.feed.ws && window.signalwise.feed.ws.close()")
    page.clock.fast_forward("00:09")
    wait_for(page, "document.body.classList.contains('stale')", 20)
    page.clock.fast_forward("00:03")  # "no data for N s" counts on: said once, not every second
    lost = [t for t in _said(page) if t.startswith("no data from the server")]
    assert len(lost) == 1 and "as it was at t = " in lost[0], _said(page)
    cut["reads"] = False  # reads answer again (the stream still refused: polling)
    wait_for(page, "window.__said.includes('data back: the page is live again')", 20)


def test_the_end_of_the_run_is_announced(live, page):
    live.runtime.stop()
    said = wait_for(page, "window.__said.find(t => t.startsWith('the live run ended'))", 20)
    assert re.match(r"the live run ended \(\w+\) at t = \d+:\d\d", said), said
