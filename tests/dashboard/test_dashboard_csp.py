"""The dashboard works under its Content-Security-Policy, and no other page can frame it.

A real live run of `corridor` (SUMO in its worker process) served as `signalwise live` serves it, in Debian's
Chromium: the page loads with the CSP header in force, takes its WebSocket stream (`connect-src 'self'`), draws
the map and the charts, shows a signal's ATSPM charts (PNG as blob: images), signs in with a key and switches the
controller (fetches with a token), and the browser reports no policy violation at any step. The OpenAPI page
renders under its own policy. A page of another origin that frames the dashboard gets nothing of it."""

from __future__ import annotations

import httpx
import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

pytestmark = pytest.mark.slow  # a live run of the corridor and a browser

#: every violation the browser reports, kept in the page (the event fires on the document)
WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
         "e => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));")


def _watched(page) -> None:
    page.add_init_script(WATCH)


def _violations(p) -> list[str]:
    return p.page.evaluate("window.__csp") + [e for e in p.errors if "Content Security Policy" in e]


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-csp"), "corridor") as lv:
        yield lv


def test_the_dashboard_runs_whole_under_its_policy(live, browser):
    page_answer = httpx.get(live.url + "/")
    csp = page_answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert page_answer.headers["x-frame-options"] == "DENY"
    assert page_answer.headers["x-content-type-options"] == "nosniff"
    assert page_answer.headers["referrer-policy"] == "no-referrer"
    with open_page(browser, live.url + "/", before=_watched) as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                       " && window.signalwise.map.drawn.seq !== null", 20)
        # the stream: a WebSocket to this host, its snapshots feeding the queue chart
        wait_for(page, "window.signalwise.state.feedMode.mode === 'stream'", 15)
        wait_for(page, "window.signalwise.charts.queue.series[0].points.length >= 3", 20)
        # a signal's detail with its ATSPM charts (blob: images), or the reason there is none yet
        target = live.runtime.stepper.intersections[0].id
        x, y = page.evaluate(f"window.signalwise.map.screenOf({target!r})")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        wait_for(page, "!document.getElementById('atspm-split-msg').textContent.includes('computing')", 30)
        # a key, its token, a change: fetches to this host with Authorization
        page.click("#toggle-controller")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        wait_for(page, "document.getElementById('toggle-controller').textContent.startsWith('baseline')", 15)
        page.wait_for_timeout(500)
        p.shot("dashboard-under-csp")
        assert _violations(p) == []
        # the browser enforces the policy on this page: an inline script is refused, and reported
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                      " document.body.appendChild(s); }")
        page.wait_for_timeout(200)
        assert page.evaluate("window.__ran") is None
        assert any(v.startswith("script-src") for v in page.evaluate("window.__csp"))


def test_the_openapi_page_renders_under_its_policy(live, browser):
    with open_page(browser, live.url + "/docs", before=_watched) as p:
        p.page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert "signalwise" in p.page.text_content(".swagger-ui .info .title")
        assert _violations(p) == []


def test_another_page_cannot_frame_the_dashboard(live, browser):
    with open_page(browser, live.url + "/api/v1/system/info") as p:  # any page of another origin than the frame's
        page = p.page
        page.set_content(f'<iframe id="f" src="{live.url}/" width="800" height="600"></iframe>')
        page.wait_for_timeout(1500)
        framed = [f for f in page.frames if f != page.main_frame]
        assert framed, "no frame"
        # Chromium shows its error page in place of a page that refuses to be framed
        assert all("signalwise dashboard" not in (f.title() if not f.is_detached() else "") for f in framed)
        assert any("frame-ancestors" in e or "Refused to display" in e for e in p.errors) or \
            all(f.url.startswith("chrome-error://") for f in framed), (p.errors, [f.url for f in framed])
