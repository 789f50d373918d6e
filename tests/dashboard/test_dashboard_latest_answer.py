"""The dashboard shows the answer to the operator's latest request, and a field for every bound the server gives.

- ATSPM charts: a signal's charts still on their way when another signal is chosen are dropped when they come, so
  the images (and their alt text) are the chosen signal's, whatever order the server answers in. The late answer
  is made late by holding its request in Playwright's router, then letting it through.
- Shield form: every shield setting the server bounds (GET /api/v1/live/config `limits.shield`) has a field, its
  bounds the server's, with a label in words.

One `corridor` live run (speed 20, SUMO in its worker process) and a real Chromium.
"""

from __future__ import annotations

import httpx
import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

CHARTS_SETTLED = ("!['atspm-pcd-msg', 'atspm-split-msg'].some(id => "
                  "document.getElementById(id).textContent.includes('computing'))")


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-latest"), "corridor", speed=20.0) as lv:
        yield lv


def _ready(page) -> None:
    wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn", 20)


@pytest.mark.slow
def test_a_signals_late_atspm_answer_does_not_replace_the_chosen_signals_charts(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        first, second = page.evaluate("[...document.querySelectorAll('#signal-pick option')].map(o => o.value)"
                                      ".filter(Boolean).slice(0, 2)")
        held = []

        def hold_first(route):
            if f"intersection_id={first}" in route.request.url:
                held.append(route)  # answered later, after the second signal's charts
            else:
                route.continue_()

        page.route("**/api/v1/live/atspm/**", hold_first)
        page.locator("#signal-pick").select_option(first)
        for _ in range(60):  # a young run has no complete cycle yet: ask again, as the refresh button does
            if held:
                break
            page.wait_for_timeout(500)
            if page.evaluate("document.getElementById('atspm-pcd-msg').textContent.includes('no complete cycle')"):
                page.click("#atspm-refresh")
        assert held, f"{first}'s charts were never asked for"
        page.locator("#signal-pick").select_option(second)
        wait_for(page, CHARTS_SETTLED, 30)
        shown = page.evaluate("[document.getElementById('atspm-pcd').alt, document.getElementById('atspm-split').alt]")
        released = 0
        while held:  # the first signal's answers come now, late (each let through may ask for the next)
            route = held.pop()
            with page.expect_event("requestfinished", lambda r, u=route.request.url: r.url == u):
                route.continue_()
            released += 1
            page.evaluate("new Promise(done => setTimeout(done, 0))")  # its handling, a task after its body came
            page.evaluate("new Promise(done => setTimeout(done, 0))")
        assert released >= 1
        now = page.evaluate("[document.getElementById('atspm-pcd').alt, document.getElementById('atspm-split').alt]")
        assert now == shown, (shown, now)
        assert all(f", {first}," not in alt for alt in now), now  # no chart of the signal left
        assert page.evaluate("document.getElementById('signal-pick').value") == second
        assert p.errors == [], p.errors


def test_the_shield_form_has_a_field_for_every_setting_the_server_bounds(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        page.click("#safety summary")
        wait_for(page, "window.signalwise.safety.config !== null "
                       "&& document.getElementById('shield-max_observation_age_s').max !== ''")
        bounded = httpx.get(live.url + "/api/v1/live/config").json()["limits"]["shield"]
        in_force = httpx.get(live.url + "/api/v1/live/config").json()["shield"]
        assert "preempt_entry_min_green_s" in bounded  # the setting the form did not know
        for key, bounds in bounded.items():
            field = page.evaluate(f"(i => i && [i.min, i.max, i.value, i.labels[0].textContent])"
                                  f"(document.getElementById('shield-{key}'))")
            assert field is not None, f"no field for the shield's {key}"
            low = bounds.get("min", bounds.get("above"))
            assert field[:2] == [f"{low:g}" if low is not None else "", f"{bounds['max']:g}" if "max" in bounds
                                 else ""], (key, field, bounds)
            assert float(field[2]) == in_force[key], (key, field, in_force[key])  # the value in force, to edit
            assert "_" not in field[3], field  # a label in words
        label = page.text_content("label[for='shield-preempt_entry_min_green_s']")
        assert label == "preemption entry minimum green (s)", label
        assert p.errors == [], p.errors


def test_a_signal_in_green_says_when_its_next_phase_is_chosen(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        signal = page.evaluate("[...document.querySelectorAll('#signal-pick option')].map(o => o.value)"
                               ".filter(Boolean)[0]")
        page.locator("#signal-pick").select_option(signal)
        view = (f"window.signalwise.state.snapshot.signals.find(s => s.intersection_id === '{signal}')")
        # read in one evaluation: the interval the snapshot gives and what the detail shows for it
        said = wait_for(page, f"(v => v && v.interval === 'green' && !v.next_phase_number && "
                              f"document.getElementById('d-interval').textContent.startsWith('green') && "
                              f"document.getElementById('d-next').textContent)({view})", 30)
        assert said == "chosen when this green ends", said
        cleared = wait_for(page, f"(v => v && v.interval !== 'green' && v.next_phase_number && "
                                 f"!document.getElementById('d-interval').textContent.startsWith('green') && "
                                 f"document.getElementById('d-next').textContent)({view})", 60)
        assert cleared not in ("–", "chosen when this green ends"), cleared  # the phase, named, once it is known
        assert p.errors == [], p.errors


#: the text of a field, measured in the field's own font, against the room its box leaves for text (a select's
#: arrow takes about 24 px); [text, text width, room] for each field that cuts its text
CUT_TEXT = """[...arguments[0]].map(sel => document.querySelector(sel)).map(f => {
  const text = f.tagName === 'SELECT' ? f.options[f.selectedIndex].text : (f.value || f.placeholder);
  const cs = getComputedStyle(f), ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  const room = f.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - (f.tagName === 'SELECT' ? 24 : 0);
  return [text, Math.ceil(ctx.measureText(text).width), Math.floor(room)];
}).filter(([, width, room]) => width > room)"""


def test_the_controls_show_their_whole_text(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        wait_for(page, "document.getElementById('model-version').options.length > 0 && "
                       "document.getElementById('model-version').options[0].text !== '–'", 20)
        cut = page.evaluate(CUT_TEXT.replace("arguments[0]", "['#model-version', '#controller-spec']"))
        assert cut == [], cut
        assert p.errors == [], p.errors
