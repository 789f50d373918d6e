"""The live dashboard as a traffic operator uses it (a city operator's trial): a phone-size screen, a simulator
crash that rewinds time, another operator's changes, a sign-in that runs out, answers beside their controls, the
forms' bounds, and changes that outlive the run. One `corridor` live run (speed 10, SUMO in its worker process)
serves the module.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import time

import httpx
import pytest
from dashboard_helpers import approach_signal, live_dashboard, open_page, wait_for

ALERT_RULES = [{"name": "operator_test", "metric": "fallback_share", "op": ">=", "threshold": 0, "for_s": 0,
                "level": "warning", "description": "always raised: the test acknowledges it"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-operator"), "corridor", alert_rules=ALERT_RULES) as lv:
        yield lv


def _ready(page) -> None:
    wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                   " && window.signalwise.map.drawn.seq !== null", 20)


def _operate(live) -> dict:
    return {"X-API-Key": live.operate_key}


def _select(page, intersection_id: str) -> None:
    x, y = page.evaluate(f"window.signalwise.map.screenOf({intersection_id!r})")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    wait_for(page, f"document.getElementById('detail-id').textContent === {intersection_id!r}")


@pytest.mark.slow
def test_a_phone_size_screen_shows_the_map_wide_with_no_sideways_scroll(live, browser):
    with open_page(browser, live.url + "/", viewport={"width": 390, "height": 844}) as p:
        page = p.page
        _ready(page)
        page.wait_for_timeout(700)  # the charts drawn
        got = page.evaluate("""(() => {
          const box = id => { const r = document.getElementById(id).getBoundingClientRect();
                              return {x: r.left, y: r.top + scrollY, w: r.width, h: r.height}; };
          return {scroll: document.scrollingElement.scrollWidth, inner: innerWidth, map: box('map'),
                  topbar: [document.getElementById('topbar').scrollWidth, document.getElementById('topbar').clientWidth],
                  charts: [...document.querySelectorAll('#charts .chart')].map(f => { const r = f.getBoundingClientRect();
                          return {x: r.left, y: r.top + scrollY, w: r.width, h: r.height}; })};
        })()""")
        p.shot("phone-corridor")
        assert got["scroll"] <= got["inner"], f"sideways scroll: {got['scroll']} px wide in {got['inner']}"
        assert got["map"]["w"] >= 0.85 * got["inner"] and got["map"]["h"] >= 250, got["map"]
        assert got["topbar"][0] <= got["topbar"][1], "the header's band does not cover its contents"
        charts = got["charts"]
        assert len(charts) == 4 and all(c["w"] >= 150 and c["h"] >= 120 for c in charts), charts
        for i, a in enumerate(charts):  # no chart over another
            for b in charts[i + 1:]:
                overlap_x = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
                overlap_y = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
                assert overlap_x <= 0 or overlap_y <= 0, (a, b)
        heads = page.evaluate("window.signalwise.map.heads")
        spread = max(h["x"] for h in heads) - min(h["x"] for h in heads)
        assert spread >= 0.5 * got["map"]["w"], f"the signals squeezed into {spread:.0f} px"
        # the timing and shield panel open: still nothing wider than the screen, every field on it
        page.click("#safety summary")
        wait_for(page, "window.signalwise.safety.config !== null")
        page.wait_for_timeout(300)
        opened = page.evaluate(FIELDS_IN_VIEW)
        p.shot("phone-timing-open-corridor")
        assert opened["scroll"] <= opened["inner"], f"sideways scroll with the panel open: {opened}"
        assert opened["out"] == [], f"fields off the screen: {opened['out']}"
        assert p.errors == [], p.errors


#: every field of the timing and shield forms within the window and its panel, and no sideways scroll
FIELDS_IN_VIEW = """(() => {
  const side = document.getElementById('safety').getBoundingClientRect();
  const fields = [...document.querySelectorAll('#timing-form input, #timing-form select, #shield-form input')]
    .filter(n => n.offsetParent !== null);
  const out = fields.map(n => [n.id, n.getBoundingClientRect()])
    .filter(([id, r]) => r.left < side.left || r.right > side.right + 0.5 || r.right > innerWidth
                         || (r.width < 40 && document.getElementById(id).type !== 'checkbox'))
    .map(([id, r]) => `${id} ${Math.round(r.left)}..${Math.round(r.right)}`);
  const col = document.getElementById('side');
  return {scroll: document.scrollingElement.scrollWidth, inner: innerWidth, fields: fields.length, out,
          side: [col.scrollWidth, col.clientWidth]};
})()"""


def test_the_timing_form_fits_the_side_column_on_a_laptop_screen(live, browser):
    with open_page(browser, live.url + "/", viewport={"width": 1440, "height": 900}) as p:
        page = p.page
        _ready(page)
        page.click("#safety summary")
        wait_for(page, "window.signalwise.safety.config !== null")
        page.wait_for_timeout(300)
        got = page.evaluate(FIELDS_IN_VIEW)
        p.shot("laptop-timing-open-corridor")
        assert got["fields"] >= 15, got
        assert got["out"] == [], f"fields off the side column: {got['out']}"
        assert got["side"][0] <= got["side"][1], f"the side column scrolls sideways: {got['side']}"
        assert p.errors == [], p.errors


def test_another_operators_change_is_listed_and_marked_on_the_map(live, browser):
    run_controller = live.runtime.cfg.controller
    target = live.runtime.stepper.intersections[-1].id
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        wait_for(page, "document.querySelectorAll('#change-list li').length > 0")
        r = httpx.post(live.url + "/api/v1/live/controller", headers=_operate(live),
                       json={"controller": "fixed", "intersections": [target]})
        assert r.status_code == 200, r.text
        first = wait_for(page, "(t => t.includes('controller → fixed') && t)"
                               "(document.querySelector('#change-list li').textContent)", 10)
        assert re.match(r"t = \d+:\d\d operator: controller → fixed at " + target + ": applied$", first), first
        label = f"{run_controller} ({target}: fixed)"
        wait_for(page, f"document.getElementById('controller-label').textContent === {label!r}", 30)
        marks = wait_for(page, f"window.signalwise.map.labels.some(l => l.text === '{target} · fixed')"
                               " && window.signalwise.map.labels", 10)
        assert [m["id"] for m in marks if "·" in m["text"]] == [target], marks
        p.shot("other-operator-corridor")
        r = httpx.post(live.url + "/api/v1/live/controller", headers=_operate(live),
                       json={"controller": run_controller, "intersections": [target]})
        assert r.status_code == 200, r.text
        wait_for(page, f"document.getElementById('controller-label').textContent === {run_controller!r}", 30)
        assert p.errors == [], p.errors


def test_an_expired_sign_in_says_so(live, browser):
    """The page's clock runs on 16 minutes (the token lasts 15): the header says the sign-in expired, and the
    next control asks for the key again because it expired, not because a key lacks a scope."""
    with open_page(browser, live.url + "/", before=lambda page: page.clock.install()) as p:
        page = p.page
        _ready(page)
        page.click("#sign-in")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        shown = wait_for(page, "(t => t.includes('until') && t)(document.getElementById('auth-who').textContent)", 10)
        token = httpx.post(live.url + "/api/v1/auth/token", headers=_operate(live)).json()["access_token"]
        exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"]
        until = dt.datetime.strptime(shown.rsplit("until ", 1)[1], "%H:%M:%S").time()
        expected = dt.datetime.fromtimestamp(exp)
        gap_s = (expected - dt.datetime.combine(expected.date(), until)).total_seconds() % 86400
        assert shown.startswith("operator (operate)") and gap_s <= 5, (shown, expected)
        page.clock.fast_forward("16:00")
        wait_for(page, "document.getElementById('auth-who').textContent.includes('sign-in expired at')", 10)
        page.click("#toggle-controller")
        page.wait_for_selector("#key-dialog[open]")
        why = page.text_content("#key-why")
        assert why.startswith("Your sign-in as operator expired at") and "scope" in why, why
        p.shot("expired-corridor")
        page.click("#key-cancel")
        assert p.errors == [], p.errors


@pytest.mark.slow
def test_answers_stand_beside_their_control_and_an_override_s_goes_when_it_ends(live, browser):
    target = live.runtime.stepper.intersections[1].id
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        _select(page, target)
        # phases named by what they serve, as the ATSPM charts name them
        options = page.eval_on_selector_all("#ov-phase option", "os => os.map(o => o.textContent)")
        assert options and all(re.match(r"\d+ \(.+\)$", o) for o in options), options
        assert re.match(r"\d+ \(.+\)$", page.text_content("#d-phase")), page.text_content("#d-phase")
        ack = "#alert-list li.active:has(b:text-is('operator_test'))"
        page.wait_for_selector(f"{ack} button.ack", timeout=15000)
        assert not page.text_content(f"{ack}").count("operator_test operator_test")  # the rule, not twice
        page.click(f"{ack} button.ack")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        wait_for(page, "[...document.querySelectorAll('#alert-list .ack-result')]"
                       ".some(n => n.textContent === 'acknowledged by operator')", 10)
        assert page.text_content("#control-result") == ""
        page.select_option("#ov-action", "hold")
        page.fill("#ov-duration", "20")
        page.click("#ov-apply")
        wait_for(page, "document.getElementById('override-result').textContent.includes('applied')", 10)
        # 20 simulated seconds: 2 s at speed 10, then the answer says the override has ended
        ended = wait_for(page, "(t => t.includes('ended') && t)(document.getElementById('override-result').textContent)", 15)
        assert "applied" not in ended and re.search(r"t = \d+:\d\d", ended), ended
        assert target not in httpx.get(live.url + "/api/v1/live/status").json()["overrides"]
        # a young run has no complete cycle: the ATSPM chart route answers 404 with the reason (a failed load)
        assert [e for e in p.errors if "/api/v1/live/atspm/" not in e] == [], p.errors


def test_the_forms_take_their_bounds_from_the_server_and_a_lasting_change_says_so(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        page.click("#safety summary")
        wait_for(page, "window.signalwise.safety.config !== null && document.getElementById('timing-max_green_s').max !== ''")
        limits = httpx.get(live.url + "/api/v1/live/config").json()["limits"]
        assert limits["timing"]["max_green_s"]["max"] == 300 and limits["timing"]["cycle_max_s"]["max"] == 600
        for part in ("timing", "shield"):
            for key, bounds in limits[part].items():
                got = page.evaluate(f"[document.getElementById('{part}-{key}').min, "
                                    f"document.getElementById('{part}-{key}').max]")
                assert got == [f"{bounds.get('min', bounds.get('above')):g}" if {"min", "above"} & set(bounds) else "",
                               f"{bounds['max']:g}" if "max" in bounds else ""], (part, key, got, bounds)
        age = "#shield-max_observation_age_s"
        page.fill(age, "0")
        assert page.evaluate(f"document.querySelector('{age}').validity.valid") is False  # the server wants > 0
        page.fill(age, "301")
        assert page.evaluate(f"document.querySelector('{age}').validity.valid") is False
        page.click("#shield-reset")
        # a derived clearance shows the numbers the phases run
        yellow = page.text_content("#timing-now-yellow_s")
        assert re.match(r"(derived: [\d.]+(–[\d.]+)? s|[\d.]+ s)", yellow), yellow
        dwell = live.runtime.cfg.shield.preempt_max_dwell_s
        page.fill("#shield-preempt_max_dwell_s", f"{dwell + 1:g}")
        page.click("#shield-apply")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        answer = wait_for(page, "(t => t.includes('applied') && t)(document.getElementById('shield-result').textContent)", 10)
        lasting = httpx.get(live.url + "/api/v1/live/status").json()["lasting_changes_file"]
        assert "in force at once; kept for later runs of this corridor" in answer and lasting in answer, answer
        assert lasting.endswith("live-corridor.changes.jsonl")
        assert p.errors == [], p.errors


@pytest.mark.slow
def test_a_crash_recovery_keeps_the_charts_history_before_the_rewind(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        series = "window.signalwise.state.series.queue"
        # 45 simulated seconds of history; the simulator killed midway between two saved states (every 30 s),
        # so the recovery rewinds by more than the 2.5 simulated s between two snapshots
        wait_for(page, f"{series}.length > 2 && {series}[{series}.length - 1][0] - {series}[0][0] > 45"
                       f" && (t => t % 30 >= 14 && t % 30 <= 22)(window.signalwise.state.snapshot.sim_time_s)", 40)
        restarts = httpx.get(live.url + "/api/v1/live/status").json()["restarts"]
        before = page.evaluate(f"{series}.slice()")
        page.evaluate("""window.seenTimes = []; setInterval(() => { const t = window.signalwise.state.snapshot.sim_time_s;
          if (window.seenTimes[window.seenTimes.length - 1] !== t) window.seenTimes.push(t); }, 20)""")
        os.kill(httpx.get(live.url + "/api/v1/live/status").json()["sim_pid"], signal.SIGKILL)
        # the page saw the time go back
        wait_for(page, "window.seenTimes.some((t, i) => i > 0 && t < window.seenTimes[i - 1])", 30)
        deadline = time.monotonic() + 20
        while httpx.get(live.url + "/api/v1/live/status").json()["restarts"] == restarts:
            assert time.monotonic() < deadline, "the simulator was not restarted"
            page.wait_for_timeout(200)
        page.wait_for_timeout(500)
        after = page.evaluate(f"{series}.slice()")
        assert after[0] == before[0], "the history before the rewind was dropped"
        assert all(a[0] < b[0] for a, b in zip(after, after[1:], strict=False)), "a point of the dead timeline stayed"
        assert p.errors == [], p.errors



@pytest.mark.slow
def test_a_signal_is_chosen_with_the_keyboard_alone(live, browser):
    """Tab to the list of signals and choose one with the arrows: the detail and its override form follow, as after
    a click on the map; the map itself, focused, takes the arrow keys to the next signal that way."""
    ids = [i.id for i in live.runtime.stepper.intersections]
    target = ids[2]
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "signal-pick":
                break
        else:
            raise AssertionError("Tab never reached a list of the signals")
        for _ in range(len(ids) + 1):
            if page.evaluate("document.activeElement.value") == target:
                break
            page.keyboard.press("ArrowDown")
        wait_for(page, f"document.getElementById('detail-id').textContent === {target!r}")
        assert page.is_visible("#override-form") and page.evaluate("window.signalwise.map.selected") == target
        for _ in range(15):  # the override form is next in the Tab order
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "ov-action":
                break
        else:
            raise AssertionError("Tab never reached the override form")
        # the map: focused, the right arrow chooses the nearest signal east of the selected one
        screen = {i: page.evaluate(f"window.signalwise.map.screenOf({i!r})") for i in ids}
        east = min((i for i in ids if screen[i][0] > screen[target][0] + 5),
                   key=lambda i: (screen[i][0] - screen[target][0]) ** 2 + (screen[i][1] - screen[target][1]) ** 2)
        page.focus("#map")
        page.keyboard.press("ArrowRight")
        wait_for(page, f"document.getElementById('detail-id').textContent === {east!r}")
        assert page.evaluate("document.getElementById('signal-pick').value") == east
        p.shot("keyboard-choice-corridor")
        assert [e for e in p.errors if "/api/v1/live/atspm/" not in e] == [], p.errors


#: each state's shape on the map (js/map.js SIGNAL_SHAPES) and letter in the detail
SHAPES = {"green": "circle", "yellow": "triangle", "red": "square"}
LETTERS = {"green": "G", "yellow": "Y", "red": "R"}


@pytest.mark.slow
def test_signal_states_are_told_apart_without_their_colours(live, browser):
    """Under Chromium's emulated deuteranopia (red and green alike): each approach's head on the map has its state's
    shape (circle, triangle, square), read against the snapshot drawn; the detail writes its letter; the legend's
    three dots have three shapes."""
    target = live.runtime.stepper.intersections[2].id
    links = {(i["id"], a["direction"]): a["links"]
             for i in httpx.get(live.url + "/api/v1/network").json()["intersections"] for a in i["approaches"]}
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Emulation.setEmulatedVisionDeficiency", {"type": "deuteranopia"})
        _select(page, target)
        drawn = wait_for(page, "(m => m.drawn.seq === m.snapshot.seq && new Set(m.heads.map(h => h.colour)).size >= 2"
                               " && {heads: m.heads, signals: m.snapshot.signals})(window.signalwise.map)", 20)
        states = {s["intersection_id"]: s["state"] for s in drawn["signals"]}
        for head in drawn["heads"]:
            expected = approach_signal(states[head["id"]], links[(head["id"], head["direction"])])
            assert (head["colour"], head.get("shape")) == (expected, SHAPES[expected]), head
        dots = wait_for(page, "(ds => ds.length && ds)([...document.querySelectorAll('#d-approaches i.dot')]"
                              ".map(n => [n.title, n.textContent]))")
        assert dots and all(letter == LETTERS[state] for state, letter in dots), dots
        legend = page.evaluate("['green', 'yellow', 'red'].map(c => (s => [s.borderRadius, s.clipPath])"
                               "(getComputedStyle(document.querySelector('.legend .dot.' + c))))")
        assert len({tuple(x) for x in legend}) == 3, legend
        p.shot("deuteranopia-corridor")
        assert [e for e in p.errors if "/api/v1/live/atspm/" not in e] == [], p.errors
