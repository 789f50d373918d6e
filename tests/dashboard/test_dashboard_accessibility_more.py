"""The live dashboard for a keyboard and screen-reader operator (WCAG 2.2 AA), continued: the ATSPM images' figures
in their alt text (and the route that gives them), a refused timing change marking its fields in their labels'
words, the legend's yellow triangle outlined and an override named on the map, and a warning before the sign-in
runs out with a way to extend it.

One `corridor` live run (speed 20, SUMO in its worker process: complete cycles within seconds) and one page serve
the module; what the live regions say is recorded by a MutationObserver, as a screen reader would hear it.
"""

from __future__ import annotations

import io
import json
import re
import urllib.request

import pytest
from dashboard_helpers import RECORD_LIVE_REGIONS, accessible, live_dashboard, open_page, wait_for

#: one phase's panel title on the PCD, as the image prints it
PCD_PHASE = r"phase \d+( \([^)]+\))?: [\d,]+ arrivals(, \d+ % on green)?"
SPLIT_PHASE = r"phase \d+( \([^)]+\))?: mean split (\d+\.\d|nan) s over \d+ cycles?"


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-a11y-more"), "corridor", speed=20.0) as lv:
        yield lv


@pytest.fixture(scope="module")
def page(live, browser):
    def before(pg):
        pg.add_init_script(RECORD_LIVE_REGIONS)
        pg.clock.install()  # runs as a wall clock does; the sign-in test runs it on to the token's last minutes

    with open_page(browser, live.url + "/", before=before) as p:
        wait_for(p.page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                         " && window.signalwise.map.drawn.seq !== null", 20)
        yield p.page


def _sign_in_if_asked(page, key: str) -> None:
    if page.evaluate("document.getElementById('key-dialog').open"):
        page.fill("#key-input", key)
        page.keyboard.press("Enter")
        wait_for(page, "!document.getElementById('key-dialog').open", 10)


@pytest.mark.slow
def test_the_atspm_images_alt_text_carries_the_figures_they_print(live, page):
    signal = page.locator("#signal-pick option").nth(1).get_attribute("value")
    page.locator("#signal-pick").select_option(signal)
    alt = "document.getElementById('atspm-pcd').alt"
    for _ in range(40):  # a young run has no complete cycle yet: ask again, as the refresh button does
        # both charts answered (they are asked one after the other): the split monitor's alt is read below
        wait_for(page, "!['atspm-pcd-msg', 'atspm-split-msg'].some(id => "
                       "document.getElementById(id).textContent.includes('computing'))", 10)
        if "arrivals" in page.evaluate(alt):
            break
        page.wait_for_timeout(500)
        page.click("#atspm-refresh")
    pcd = page.evaluate(alt)
    assert re.fullmatch(rf"Purdue Coordination Diagram, {signal}, last simulated hour: {PCD_PHASE}(; {PCD_PHASE})*",
                        pcd), pcd
    assert accessible(page, "#atspm-pcd")["name"] == pcd  # what a screen reader says of the image
    split = page.evaluate("document.getElementById('atspm-split').alt")
    assert re.fullmatch(rf"Split monitor, {signal}, last simulated hour: {SPLIT_PHASE}(; {SPLIT_PHASE})*", split), split
    # the route gives the figures beside the PNG, in a header, for any client
    with urllib.request.urlopen(f"{live.url}/api/v1/live/atspm/pcd?intersection_id={signal}", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "image/png" and resp.read(8) == b"\x89PNG\r\n\x1a\n"
        figures = resp.headers["X-Chart-Figures"]
    assert re.fullmatch(rf"{PCD_PHASE}(; {PCD_PHASE})*", figures), figures


def test_a_refused_timing_change_marks_its_fields_in_their_labels_words(live, page):
    page.click("#safety-details summary")
    wait_for(page, "document.getElementById('timing-min_green_s').value !== ''", 10)
    page.fill("#timing-min_green_s", "20")
    page.fill("#timing-max_green_s", "19")  # each within its bounds; together refused by the server
    page.click("#timing-apply")
    wait_for(page, "document.getElementById('key-dialog').open || "
                   "document.getElementById('timing-result').textContent.includes('refused')", 10)
    _sign_in_if_asked(page, live.operate_key)
    said = wait_for(page, "(t => t.includes('refused') && t)(document.getElementById('timing-result').textContent)", 10)
    assert "min_green_s" not in said and "max_green_s" not in said, said
    assert "minimum green (20) exceeds maximum green (19)" in said, said
    for key in ("min_green_s", "max_green_s"):
        field = accessible(page, f"#timing-{key}")
        assert field["invalid"] == "true", field
        assert page.get_attribute(f"#timing-{key}", "aria-describedby") == "timing-result"
        assert field["description"] == said, field  # said on the field, with its name
    assert page.get_attribute("#timing-yellow_s", "aria-invalid") is None  # a field the refusal does not name
    page.fill("#timing-max_green_s", "40")  # a new edit: the marks go with the answer
    assert page.evaluate("document.querySelectorAll('#timing-form [aria-invalid]').length") == 0
    page.click("#timing-reset")
    page.click("#safety-details summary")


def test_the_legend_triangle_is_outlined_and_an_override_is_named_on_the_map(live, page):
    from PIL import Image

    def luminance(rgb):
        c = [v / 255 for v in rgb[:3]]
        c = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    shot = Image.open(io.BytesIO(page.locator(".legend .dot.yellow").screenshot())).convert("RGB")
    background = luminance(shot.getpixel((0, 0)))  # the box's corner lies outside the triangle: the legend
    contrast = max((max(luminance(p), background) + 0.05) / (min(luminance(p), background) + 0.05)
                   for p in shot.get_flattened_data())
    assert contrast >= 3.0, contrast  # WCAG 1.4.11: the graphic's edge against the legend
    ids = page.evaluate("[...document.querySelectorAll('#signal-pick option')].map(o => o.value).filter(Boolean)")
    target = ids[-1]
    request = urllib.request.Request(
        f"{live.url}/api/v1/live/override", method="POST", headers={"X-API-Key": live.operate_key,
                                                                    "Content-Type": "application/json"},
        data=json.dumps({"intersection_id": target, "action": "hold", "phase_number": 1,
                         "duration_s": 600}).encode())
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read())["result"] == "applied"
    label = wait_for(page, f"(window.signalwise.map.labels || []).find(l => l.id === '{target}'"
                           " && l.text.includes('OVERRIDE'))", 10)
    assert label["text"].startswith(f"{target} · ") and "OVERRIDE" in label["text"], label


#: ms from the page's clock to the end of its sign-in (the module app.js imported: one instance per page)
LEFT_MS = "async () => (await import('/static/dashboard/js/api.js')).who().expiresAt - Date.now()"


def test_a_warning_before_the_sign_in_runs_out_and_a_way_to_extend_it(live, page):
    page.click("#sign-in")  # a sign-in of its own: an earlier test's may be minutes old
    _sign_in_if_asked(page, live.operate_key)
    until = page.text_content("#auth-who")
    # the clock runs on from what the page has left of the sign-in (the server's clock, not the test's, set it)
    left_ms = page.evaluate(LEFT_MS)
    assert left_ms > 4 * 60_000, left_ms  # the token lasts 15 minutes (token_ttl_s 900)
    page.clock.fast_forward(int(left_ms) - 4 * 60_000)  # four minutes left: not yet
    assert page.is_hidden("#signin-warning")
    page.clock.fast_forward(150_000)  # 1.5 minutes left, under two: warned, visibly and through the live region
    wait_for(page, "!document.getElementById('signin-warning').hidden", 5)
    said = wait_for(page, "window.__said.find(t => t.startsWith('Your sign-in as operator ends in'))", 5)
    assert re.search(r"ends in about \d minutes?, at \d\d:\d\d:\d\d: to extend it", said), said
    assert "API key" in said
    assert re.search(r"ends at \d\d:\d\d:\d\d.*\(\d:\d\d left\)", page.text_content("#signin-warning"), re.S)
    page.focus("#signin-extend")
    page.keyboard.press("Enter")  # the token route renews only for the key: it is asked again
    wait_for(page, "document.getElementById('key-dialog').open", 5)
    assert "give the key again to extend it" in page.text_content("#key-why")
    _sign_in_if_asked(page, live.operate_key)
    wait_for(page, "document.getElementById('signin-warning').hidden", 5)
    assert page.evaluate("document.activeElement.id") == "sign-in"
    assert page.text_content("#auth-who") != until  # a new token, until a later time
    page.clock.fast_forward("15:10")  # the new one runs out: said too
    wait_for(page, "window.__said.includes('Your sign-in as operator has expired: the next change asks for the "
                   "API key again.')", 5)
    assert page.is_hidden("#signin-warning")
