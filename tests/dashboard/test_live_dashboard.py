"""The live dashboard against real live runs of `corridor` and `grid` (SUMO in its worker process, speed 10).

One live run per scenario serves most tests of this module (a few simulated minutes each); the browser
checks what a person would: the page loads clean and stays on the host, every signal is on the map (with
pan and zoom), the colours drawn follow the run and agree with `/api/v1/live/snapshot` at the same moment,
the detail panel, and the controls (refused without a key, with the reason; the toggle switches the
controller with one; a model deployed and a rollback refused). Two more runs: `grid` watched from its first
second (an emergency vehicle early in the run), and a server away from loopback (reads need a key).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from dashboard_helpers import approach_signal, live_dashboard, nearest_signal_colour, open_page, wait_for

ALERT_RULES = [{"name": "dashboard_test", "metric": "fallback_share", "op": ">=", "threshold": 0, "for_s": 0,
                "level": "warning", "description": "always raised: the dashboard test acknowledges it"}]


@pytest.fixture(scope="module")
def model_training(tmp_path_factory):
    """A Q-learning model of `corridor` trained in the background from the module's start (one 10 s episode:
    a real artifact the registry accepts, not a good one), ready by the time the deploy test asks for it."""
    out = tmp_path_factory.mktemp("model")
    cli = Path(sys.executable).with_name("signalwise")
    with open(out / "train.log", "w") as log:
        proc = subprocess.Popen([str(cli), "train", "--scenario", "corridor", "--episodes", "1", "--workers", "1",
                                 "--batch", "1", "--duration", "10", "--guide-visits", "10", "--out",
                                 str(out / "train")], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_COLOR": "1"})
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# the grid is slow (`make test-all`): `make test` draws the corridor
@pytest.fixture(scope="module", params=["corridor", pytest.param("grid", marks=pytest.mark.slow)])
def live(request, tmp_path_factory, browser, model_training):
    with live_dashboard(tmp_path_factory.mktemp(f"dash-{request.param}"), request.param,
                        alert_rules=ALERT_RULES) as lv:
        yield lv


#: for tests of what the page does rather than how a network looks on it (the stream feeding the charts, the
#: detail panel, the controls): the corridor run alone (indirect parametrization narrows `live` to it)
CORRIDOR_ONLY = pytest.mark.parametrize("live", ["corridor"], indirect=True)


def _ready(page) -> None:
    wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn"
                   " && window.signalwise.map.drawn.seq !== null", 20)


def test_page_loads_clean_on_the_host_and_draws_every_signal(live, browser):
    scenario = live.runtime.cfg.scenario_label
    with open_page(browser, live.url + "/") as p:
        _ready(p.page)
        wait_for(p.page, "window.signalwise.feed.mode === 'stream'", 10)  # the stream exists: no polling
        heads = p.page.evaluate("window.signalwise.map.heads")
        expected = {i.id for i in live.runtime.stepper.intersections}
        assert {h["id"] for h in heads} == expected
        net = httpx.get(live.url + "/api/v1/network").json()
        assert len(heads) == sum(len([a for a in i["approaches"] if a["lanes"]]) for i in net["intersections"])
        inside = p.page.evaluate("[document.getElementById('map').clientWidth, document.getElementById('map').clientHeight]")
        assert all(0 <= h["x"] <= inside[0] and 0 <= h["y"] <= inside[1] for h in heads), "a signal is off the map"
        p.page.wait_for_timeout(1500)  # a few more snapshots and chart redraws: still nothing logged as an error
        assert p.errors == [], p.errors
        p.shot(f"live-{scenario}")
        # a queue shows at the fitted zoom too: every bar reaches past its approach's signal head, and a bar drawn
        # outward from the head (a queue too short to reach past it to scale) is in the queue's colour there
        got = wait_for(p.page, READ_QUEUE_BARS, 30)
        heads = {(h["id"], h["direction"]): h for h in got["heads"]}
        for bar in got["bars"]:
            head = heads[(bar["id"], bar["direction"])]
            head_px = ((head["x"] - bar["cx"]) ** 2 + (head["y"] - bar["cy"]) ** 2) ** 0.5
            reach_px = ((bar["x1"] - bar["cx"]) ** 2 + (bar["y1"] - bar["cy"]) ** 2) ** 0.5
            assert reach_px > head_px + got["head_r"], (bar, head)
            if not bar["to_scale"]:
                r, g, b = bar["rgb"]
                assert b > r + 25 and b > g + 60, (bar, "not the queue's colour: hidden under something")
        # pan and zoom: the wheel zooms in about the pointer, a drag moves the map, `fit` brings it all back
        box = p.page.locator("#map").bounding_box()
        fitted = p.page.evaluate("({...window.signalwise.map.view})")
        p.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        p.page.mouse.wheel(0, -400)
        zoomed = wait_for(p.page, f"window.signalwise.map.view.s > {fitted['s']} * 1.5 && window.signalwise.map.view")
        p.page.mouse.down()
        p.page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 40, steps=5)
        p.page.mouse.up()
        moved = p.page.evaluate("window.signalwise.map.view")
        assert (round(moved["ox"] - zoomed["ox"]), round(moved["oy"] - zoomed["oy"])) == (120, 40)
        p.page.click("#zoom-fit")
        assert p.page.evaluate("window.signalwise.map.view") == fitted
        # a smaller window: the map fits it again, every signal still on it
        p.page.set_viewport_size({"width": 1000, "height": 640})
        wait_for(p.page, f"window.signalwise.map.view.s < {fitted['s']}")
        p.page.wait_for_timeout(300)  # the next frame draws the heads where they now are
        size = p.page.evaluate("[document.getElementById('map').clientWidth, document.getElementById('map').clientHeight]")
        heads = p.page.evaluate("window.signalwise.map.heads")
        assert heads and all(0 <= h["x"] <= size[0] and 0 <= h["y"] <= size[1] for h in heads), "a signal fell off the map"
    with open_page(browser, live.url + "/dashboard") as p:  # the same page under its other address
        _ready(p.page)
        assert p.errors == []


@CORRIDOR_ONLY
@pytest.mark.slow
def test_live_charts_are_fed_by_the_stream(live, browser):
    with open_page(browser, live.url + "/") as p:
        page = p.page
        asked = []
        page.on("request", lambda r: asked.append(r.url) if "/api/v1/live/intervals" in r.url else None)
        _ready(page)
        t_open = page.evaluate("window.signalwise.state.snapshot.sim_time_s")
        # an interval closes while the page is open: the snapshot brings it, the charts take it
        wait_for(page, f"window.signalwise.state.intervals.some(i => i.end_s > {t_open})", 30)
        got = page.evaluate(f"window.signalwise.state.intervals.find(i => i.end_s > {t_open})")
        closed = httpx.get(live.url + "/api/v1/live/intervals", params={"limit": 60}).json()["intervals"]
        assert got in closed  # the same figures the run's records.jsonl gives
        page.wait_for_timeout(700)  # the charts redraw at most twice a second
        delay = page.evaluate("window.signalwise.charts.delay.toCSV()")
        assert f"{got['end_s']:g},{got['mean_wait_s']:g}" in delay.splitlines()
        assert delay.splitlines()[0] == "run_time_s,mean wait (s)"  # the x column says what it is
        # the queue chart holds every snapshot's network queue since the page opened, the newest last
        queue, newest = wait_for(page, "window.signalwise.charts.queue.series[0].points.length >= 5 && "
                                       "[window.signalwise.charts.queue.series[0].points,"
                                       " window.signalwise.state.snapshot.network_queue_veh]")
        assert queue[-1][1] == newest and all(a[0] < b[0] for a, b in zip(queue, queue[1:], strict=False))
        assert len(asked) <= 1, f"the page polled the intervals: {asked}"  # the history, once
        assert p.errors == [], p.errors


READ_QUEUE_BARS = """(() => {
  const map = window.signalwise.map;
  if (!map.queueBars.length) return null;
  const ctx = document.getElementById('map').getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  const bars = map.queueBars.map(b => {
    const len = Math.hypot(b.x1 - b.x0, b.y1 - b.y0) || 1;
    const [x, y] = [b.x0 + (b.x1 - b.x0) / len * 2, b.y0 + (b.y1 - b.y0) / len * 2];  // 2 px past the bar's start
    return {...b, rgb: Array.from(ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data).slice(0, 3)};
  });
  return {bars, heads: map.heads, head_r: map.headR};
})()"""


READ_DRAWN = """async () => {
  const api = await (await fetch('/api/v1/live/snapshot')).json();
  const map = window.signalwise.map;
  if (!map.drawn || map.drawn.seq !== api.seq) return null;   // a newer snapshot arrived meanwhile: try again
  const ctx = document.getElementById('map').getContext('2d');
  const heads = map.heads.map(h => ({...h, rgb: Array.from(ctx.getImageData(Math.round(h.x), Math.round(h.y), 1, 1).data).slice(0, 3)}));
  return {api, heads};
}"""


@pytest.mark.slow
def test_signal_colours_follow_the_run_and_agree_with_the_snapshot(live, browser):
    net = httpx.get(live.url + "/api/v1/network").json()
    links = {(i["id"], a["direction"]): a["links"] for i in net["intersections"] for a in i["approaches"]}
    agreeing, colours_seen = set(), {}  # the snapshots (by seq) where the page and the API agreed
    deadline = time.monotonic() + 40
    with open_page(browser, live.url + "/") as p:
        _ready(p.page)
        while time.monotonic() < deadline and (len(agreeing) < 6 or len(_changed(colours_seen)) < 2):
            got = p.page.evaluate(READ_DRAWN)
            if got is None:
                continue
            states = {s["intersection_id"]: s["state"] for s in got["api"]["signals"]}
            for h in got["heads"]:
                drawn, distance = nearest_signal_colour(h["rgb"])
                expected = approach_signal(states[h["id"]], links[(h["id"], h["direction"])])
                assert distance < 40, f"{h['id']} {h['direction']}: pixel {h['rgb']} is no signal colour"
                assert drawn == expected == h["colour"], (
                    f"snapshot {got['api']['seq']} (t={got['api']['sim_time_s']}): {h['id']} {h['direction']} "
                    f"drawn {drawn}, page thinks {h['colour']}, the snapshot's state says {expected}")
                colours_seen.setdefault((h["id"], h["direction"]), set()).add(drawn)
            agreeing.add(got["api"]["seq"])
            p.page.wait_for_timeout(250)  # the next snapshot (4 a second): another moment
        p.shot(f"colours-{live.runtime.cfg.scenario_label}")
        assert p.errors == [], p.errors
    assert len(agreeing) >= 6, f"only {len(agreeing)} moments where the page and the API showed the same snapshot"
    assert len(_changed(colours_seen)) >= 2, f"signal colours did not change as the run went: {colours_seen}"


def _changed(seen: dict) -> list:
    return [k for k, v in seen.items() if len(v) > 1]


@CORRIDOR_ONLY
def test_clicking_a_signal_opens_its_detail(live, browser):
    target = live.runtime.stepper.intersections[len(live.runtime.stepper.intersections) // 2].id
    with open_page(browser, live.url + "/") as p:
        _ready(p.page)
        x, y = p.page.evaluate(f"window.signalwise.map.screenOf({target!r})")
        box = p.page.locator("#map").bounding_box()
        p.page.mouse.click(box["x"] + x, box["y"] + y)
        assert p.page.text_content("#detail-id") == target
        wait_for(p.page, "document.querySelectorAll('#d-decisions li').length > 0"
                         " && !document.querySelector('#d-decisions li.note')", 15)
        phase = p.page.text_content("#d-phase")
        snap = httpx.get(live.url + "/api/v1/live/snapshot", params={"intersection_id": target}).json()
        number = phase.split(" ")[0]
        assert number.isdigit() and 1 <= int(number) <= len(live.runtime.stepper.by_id[target].phases), phase
        assert p.page.text_content("#d-controller") == snap["signals"][0]["controller"]
        assert p.page.locator("#d-approaches .qbar").count() >= 2  # a queue bar per approach
        # phase, time in phase, confidence and fallback as the runtime's snapshot says, at the same snapshot
        shown = _detail_at_the_snapshot(p.page, target)
        view = shown["api"]
        assert shown["phase"].split(" ")[0] == str(view["phase_number"]) and shown["interval"] == view["interval"]
        assert shown["phase_elapsed"] == f"{view['phase_elapsed_s']:.1f} s"
        assert view["phase_elapsed_s"] >= view["elapsed_s"]
        assert shown["confidence"] == f"{view['confidence']:.2f}" and 0 <= view["confidence"] <= 1
        assert shown["fallback"].startswith("yes" if view["fallback"] else "no")
        # the ATSPM charts come as PNGs, or as the reason there is none yet (a young run)
        wait_for(p.page, "!document.getElementById('atspm-split-msg').textContent.includes('computing')", 20)
        split = p.page.evaluate("document.getElementById('atspm-split').naturalWidth")
        assert split > 100 or "no" in p.page.text_content("#atspm-split-msg")
        p.shot(f"detail-{live.runtime.cfg.scenario_label}")
        # a young run may have no complete cycle yet: the chart route answers 404 with the reason, which the
        # page shows and Chromium logs as a failed load
        assert [e for e in p.errors if not ("/api/v1/live/atspm/" in e and "404" in e)] == [], p.errors


READ_DETAIL = """async (id) => {
  const api = (await (await fetch('/api/v1/live/snapshot?intersection_id=' + id)).json());
  const page = window.signalwise.state.snapshot;
  if (!page || page.seq !== api.seq) return null;
  const text = k => document.getElementById(k).textContent;
  return {api: api.signals[0], phase: text('d-phase'), interval: text('d-interval'),
          phase_elapsed: text('d-phase-elapsed'), confidence: text('d-confidence'), fallback: text('d-fallback')};
}"""


def _detail_at_the_snapshot(page, intersection_id: str) -> dict:
    """The detail panel and the API's snapshot read at one moment (tried until the page holds that snapshot)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = page.evaluate(READ_DETAIL, intersection_id)
        if got is not None:
            return got
        page.wait_for_timeout(100)
    raise AssertionError("the page never held the snapshot the API served")


def _status(live) -> dict:
    return httpx.get(live.url + "/api/v1/live/status").json()


def _wait_status(live, page, controller: str, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while (st := _status(live))["controller"] != controller and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # not time.sleep: the page's requests pass the route guard only meanwhile
    return st


@CORRIDOR_ONLY
def test_controls_refuse_without_a_key_and_the_toggle_switches_the_controller(live, browser):
    configured = live.runtime.cfg.controller
    assert _status(live)["controller"] == configured
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        wait_for(page, "!document.getElementById('toggle-controller').disabled", 10)
        # no key: the dialog asks for one; sent without, the server's reason is shown and nothing changes
        page.click("#toggle-controller")
        page.wait_for_selector("#key-dialog[open]")
        page.click("#key-without")
        wait_for(page, "document.getElementById('control-result').textContent.includes('401')", 10)
        assert "needs an API key or token with scope 'operate'" in page.text_content("#control-result")
        assert _status(live)["controller"] == configured
        # a key without the operate scope: refused with 403 and the reason
        page.click("#toggle-controller")
        page.fill("#key-input", live.read_key)
        page.click("#key-submit")
        wait_for(page, "document.getElementById('control-result').textContent.includes('403')", 10)
        assert "lacks scope 'operate'" in page.text_content("#control-result")
        p.shot(f"refused-{live.runtime.cfg.scenario_label}")
        page.click("#sign-out")
        # with an operate key: baseline, then back to the run's own controller
        page.click("#toggle-controller")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        assert _wait_status(live, page, "fixed")["controller"] == "fixed", page.text_content("#control-result")
        wait_for(page, "document.getElementById('toggle-controller').textContent === 'baseline: fixed'", 10)
        page.click("#toggle-controller")  # the token is kept: no second question
        assert _wait_status(live, page, configured)["controller"] == configured
        wait_for(page, f"document.getElementById('toggle-controller').textContent === 'adaptive: {configured}'", 10)
        assert page.locator("#key-dialog[open]").count() == 0
        changes = httpx.get(live.url + "/api/v1/live/changes").json()
        applied = [c for c in changes if c["kind"] == "controller" and c["result"] == "applied"]
        assert [c["payload"]["controller"] for c in applied[-2:]] == ["fixed", configured]
        assert {c["who"] for c in applied[-2:]} == {"operator"}


def test_override_and_alert_acknowledgement(live, browser):
    if live.runtime.cfg.scenario_label != "corridor":
        pytest.skip("once is enough: the corridor run covers it")
    target = live.runtime.stepper.intersections[0].id
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        x, y = page.evaluate(f"window.signalwise.map.screenOf({target!r})")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.select_option("#ov-action", "hold")
        page.select_option("#ov-phase", "1")
        page.fill("#ov-duration", "90")
        page.click("#ov-apply")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        wait_for(page, "document.getElementById('override-result').textContent.includes('applied')", 10)
        assert target in _status(live)["overrides"]
        wait_for(page, "document.getElementById('d-override').textContent.startsWith('hold phase 1')", 10)
        # the alert panel: the always-raised test rule, acknowledged from the page
        # (a loaded machine may raise a built-in rule too, pacing for one: acknowledge the test's own)
        ack = "#alert-list li.active:has(b:text-is('dashboard_test')) button.ack"
        page.wait_for_selector(ack, timeout=15000)
        # with a signal selected the alerts panel is out of sight below its detail: the top bar counts them
        top = page.text_content("#alerts-top")
        assert page.is_visible("#alerts-top") and top.endswith(("active alert", "active alerts")), top
        page.click(ack)
        # the answer beside the alert, not under the controls
        wait_for(page, "[...document.querySelectorAll('#alert-list .ack-result')]"
                       ".some(n => n.textContent === 'acknowledged by operator')", 10)
        alerts = httpx.get(live.url + "/api/v1/live/alerts").json()
        assert any(a["rule"] == "dashboard_test" and a["acknowledged_by"] == "operator" for a in alerts["active"]), alerts
        p.shot("override-and-alerts-corridor")
        page.click("#ov-cancel")
        wait_for(page, "document.getElementById('override-result').textContent.includes('end override')"
                       " && document.getElementById('override-result').textContent.includes('applied')", 10)
        assert target not in _status(live)["overrides"]
        # a young run may have no complete cycle: the selected signal's ATSPM charts answer 404 with the reason
        assert [e for e in p.errors if "/api/v1/live/atspm/" not in e] == [], p.errors


def _config(live) -> dict:
    return httpx.get(live.url + "/api/v1/live/config").json()


def _text(page, selector: str) -> str:
    return page.text_content(selector)


def _setting(value, unit: str) -> str:
    """A setting as the form shows it in force (the page prints numbers as JavaScript's String does)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "derived"
    return f"{value:g}{' ' + unit if unit else ''}"


TIMING_UNITS = {"min_green_s": "s", "max_green_s": "s", "yellow_s": "s", "all_red_s": "s", "ped_walk_s": "s",
                "ped_clearance_s": "s", "cycle_min_s": "s", "cycle_max_s": "s", "cycle_calls": ""}
SHIELD_UNITS = {"confidence_threshold": "", "max_observation_age_s": "s", "preempt_distance_m": "m",
                "preempt_max_dwell_s": "s", "preempt_ends_walk": ""}


def _answer(page, part: str, expected: str, timeout_s: float = 10) -> str:
    """The form's answer once it holds `expected` (the server's words, not 'sending…')."""
    wait_for(page, f"document.getElementById('{part}-result').textContent.includes({expected!r})", timeout_s)
    return _text(page, f"#{part}-result")


@pytest.mark.slow
def test_timing_and_shield_in_force_changed_from_the_page(live, browser):
    """The form shows the run's timing and shield in force; without a key, and with a read key, it is refused
    with the server's reason; a change the run configuration refuses (minimum green above maximum green, a
    preemption distance of 0) is shown with its reason and changes nothing; a valid one is applied, logged under
    the key's name, and shown in force; a request the server never answers says so in words."""
    if live.runtime.cfg.scenario_label != "corridor":
        pytest.skip("once is enough: the corridor run covers it")
    before = _config(live)
    # the route reports the runtime's own configuration, and which revision each signal runs
    assert before["timing"] == live.runtime.cfg.timing.model_dump(mode="json")
    assert before["shield"] == live.runtime.cfg.shield.model_dump(mode="json")
    assert before["timing_revision"] == 0
    assert set(before["signal_timing_revisions"]) == set(live.runtime.stepper.by_id)
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        page.click("#safety-details summary")
        wait_for(page, "!document.getElementById('timing-apply').disabled"
                       " && document.getElementById('shield-now-preempt_distance_m').textContent !== '–'", 10)
        # every value in force beside its field, and in the field
        for part, units in (("timing", TIMING_UNITS), ("shield", SHIELD_UNITS)):
            for key, unit in units.items():
                value = before[part][key]
                shown = _text(page, f"#{part}-now-{key}")
                # a derived clearance: with the numbers the phases run where the server gives them
                assert shown == _setting(value, unit) or (value is None and shown.startswith("derived: ")), (part, key)
                if isinstance(value, bool):
                    assert page.is_checked(f"#{part}-{key}") is value
                else:
                    assert page.input_value(f"#{part}-{key}") == ("" if value is None else f"{value:g}"), (part, key)
        assert "the timing the run started with" in _text(page, "#timing-revision")

        # without a key: the server's 401, nothing changed
        page.fill("#timing-min_green_s", "6")
        page.click("#timing-apply")
        page.wait_for_selector("#key-dialog[open]")
        page.click("#key-without")
        said = _answer(page, "timing", "401")
        assert "needs an API key or token with scope 'operate'" in said, said
        # a key that may only read: 403
        page.click("#timing-apply")
        page.fill("#key-input", live.read_key)
        page.click("#key-submit")
        said = _answer(page, "timing", "403")
        assert "lacks scope 'operate'" in said, said
        page.click("#sign-out")
        assert _config(live) == before

        # refused by the server's validation (each field within its own bounds, the two together not): the
        # reason shown whole, nothing applied
        page.fill("#timing-max_green_s", "40")
        page.fill("#timing-min_green_s", "50")
        page.click("#timing-apply")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        said = _answer(page, "timing", "422")
        assert "422 refused: change refused: timing: minimum green (50) exceeds maximum green (40)" in said, said
        assert page.get_attribute("#timing-result", "class") == "result refused"
        assert _config(live) == before
        timing_log = [c for c in httpx.get(live.url + "/api/v1/live/changes").json() if c["kind"] == "timing"]
        assert [(c["result"], c["who"]) for c in timing_log] == [("refused", "operator")]
        assert "min_green_s (50) exceeds max_green_s (40)" in timing_log[0]["reason"]

        # a valid change: applied (only the field that differs is sent), logged, and in force after
        page.fill("#timing-max_green_s", "60")
        page.fill("#timing-min_green_s", "6")
        page.click("#timing-apply")  # the token is kept: no second question
        said = _answer(page, "timing", "applied")
        assert "applied by operator; taken by each signal at its next green; kept for later runs" in said, said
        assert page.locator("#key-dialog[open]").count() == 0
        after = _config(live)
        assert after["timing"] == {**before["timing"], "min_green_s": 6.0}
        assert after["timing_revision"] == 1 and after["shield"] == before["shield"]
        applied = [c for c in httpx.get(live.url + "/api/v1/live/changes").json()
                   if c["kind"] == "timing" and c["result"] == "applied"]
        # sent with the revision it was made from: one another operator's change has passed would be refused
        assert [(c["payload"], c["who"]) for c in applied] == [
            ({"kind": "timing", "timing": {"min_green_s": 6}, "based_on_revision": 0}, "operator")]
        wait_for(page, "document.getElementById('timing-now-min_green_s').textContent === '6 s'", 5)
        assert page.input_value("#timing-min_green_s") == "6"
        assert "timing revision 1" in _text(page, "#timing-revision")

        # one signal's own value, while another operator gives another signal its own through the API (between
        # the page's last read and its request): the page sends its signal's alone, so neither change is lost
        other, target = (i.id for i in live.runtime.stepper.intersections[:2])
        operate = {"X-API-Key": live.operate_key}
        meanwhile: list[int] = []

        def another_signal_meanwhile(route):
            meanwhile.append(httpx.put(f"{live.url}/api/v1/live/config/timing/intersections/{other}",
                                       json={"timing": {"all_red_s": 3}}, headers=operate, timeout=10).status_code)
            route.continue_()

        page.route("**/api/v1/live/config/timing**", another_signal_meanwhile)
        page.select_option("#timing-scope", target)
        page.fill("#timing-all_red_s", "3")
        page.click("#timing-apply")
        _answer(page, "timing", f"timing ({target}): all-red 3 s: applied")
        page.unroute("**/api/v1/live/config/timing**")
        assert meanwhile == [200]
        mine = [c for c in httpx.get(live.url + "/api/v1/live/changes").json() if c["kind"] == "signal_timing"][-1]
        assert mine["payload"] == {"kind": "signal_timing", "intersection_id": target, "timing": {"all_red_s": 3},
                                   "based_on_revision": 1}
        in_force = _config(live)
        assert in_force["timing"] == {**after["timing"], "per_intersection": {other: {"all_red_s": 3.0},
                                                                              target: {"all_red_s": 3.0}}}
        assert in_force["timing_revision"] == 3
        wait_for(page, "document.getElementById('timing-now-all_red_s').textContent === '3 s'", 5)
        assert "own" in page.get_attribute("#timing-now-all_red_s", "class")

        # the defaults changed from a revision another operator's change has passed: 409, said as such, nothing
        # of it applied, the values in force read again (the other's among them) and the edit kept; sent again,
        # applied over both
        page.select_option("#timing-scope", "")
        meanwhile.clear()

        def defaults_meanwhile(route):
            meanwhile.append(httpx.put(live.url + "/api/v1/live/config/timing", json={"timing": {"max_green_s": 55}},
                                       headers=operate, timeout=10).status_code)
            route.continue_()

        page.route("**/api/v1/live/config/timing", defaults_meanwhile)
        page.fill("#timing-ped_walk_s", "8")
        page.click("#timing-apply")
        said = _answer(page, "timing", "(timing revision 4 in force)")
        page.unroute("**/api/v1/live/config/timing")
        assert meanwhile == [200]
        assert "not applied: someone else changed the timing since you read it" in said, said
        assert page.get_attribute("#timing-result", "class") == "result refused"
        assert "409 conflict" in page.get_attribute("#timing-result", "title")
        stale = _config(live)
        assert stale["timing_revision"] == 4 and stale["timing"] == {**in_force["timing"], "max_green_s": 55.0}
        wait_for(page, "document.getElementById('timing-now-max_green_s').textContent === '55 s'", 5)
        assert page.input_value("#timing-ped_walk_s") == "8" and page.input_value("#timing-max_green_s") == "55"
        refused_409 = [c for c in httpx.get(live.url + "/api/v1/live/changes").json() if c["kind"] == "timing"][-1]
        assert refused_409["result"] == "refused" and "changed after revision 3" in refused_409["reason"]
        page.click("#timing-apply")
        _answer(page, "timing", "timing (every signal): pedestrian walk 8 s: applied")
        assert _config(live)["timing"] == {**stale["timing"], "ped_walk_s": 8.0}

        # the shield: a distance must be at least 30 m, as the server's limits say: the field refuses 10 itself
        # and nothing is sent; then a valid change, taken at once by every shield
        page.fill("#shield-preempt_distance_m", "10")
        assert "30" in page.evaluate("document.getElementById('shield-preempt_distance_m').validationMessage")
        page.click("#shield-apply")
        page.wait_for_timeout(300)
        assert _config(live)["shield"] == before["shield"]
        page.fill("#shield-preempt_distance_m", f"{before['shield']['preempt_distance_m']:g}")
        page.fill("#shield-confidence_threshold", "0.6")
        page.fill("#shield-max_observation_age_s", "12")
        page.click("#shield-apply")
        said = _answer(page, "shield", "applied")
        assert "applied by operator; in force at once; kept for later runs of this corridor" in said, said
        assert _config(live)["shield"] == {**before["shield"], "confidence_threshold": 0.6, "max_observation_age_s": 12.0}
        assert {sh.cfg.confidence_threshold for sh in live.runtime.stepper.shields.values()} == {0.6}
        wait_for(page, "document.getElementById('shield-now-confidence_threshold').textContent === '0.6'", 5)
        p.shot("timing-and-shield-corridor")

        # the server does not answer: said in words, the browser's own in the tooltip
        page.route("**/api/v1/live/config/shield", lambda route: route.abort())
        page.fill("#shield-confidence_threshold", "0.65")
        page.click("#shield-apply")
        said = _answer(page, "shield", "the server did not answer (network error)")
        assert "Failed to fetch" not in said
        assert "Failed to fetch" in page.get_attribute("#shield-result", "title")
        page.unroute("**/api/v1/live/config/shield")
        assert _config(live)["shield"]["confidence_threshold"] == 0.6
        # the refusals (401, 403, 422) and the aborted request are logged by Chromium as failed loads; nothing else
        assert [e for e in p.errors if not ("Failed to load resource" in e and any(
            code in e for code in ("401", "403", "409", "422", "net::ERR_FAILED")))] == [], p.errors


def test_the_page_says_its_data_are_old_while_none_come_and_recovers(live, browser):
    """The network drops (the stream closes, new ones are refused, every read fails): within seconds the page
    greys the map and says how old what it shows is, rather than show the last signal states as current;
    when data come again it is live again."""
    if live.runtime.cfg.scenario_label != "corridor":
        pytest.skip("once is enough: the corridor run covers it")
    # the page's clock runs as a wall clock does, but the test can run it on past the page's 8 s of silence
    with open_page(browser, live.url + "/", before=lambda page: page.clock.install()) as p:
        page = p.page
        _ready(page)
        wait_for(page, "window.signalwise.feed.mode === 'stream'", 10)
        target = live.runtime.stepper.intersections[0].id
        x, y = page.evaluate(f"window.signalwise.map.screenOf({target!r})")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        cut = {"reads": True}

        def reads(route):  # one handler for the whole test: unrouting it while a read was in it raced the guard
            route.abort() if cut["reads"] else route.fallback()

        page.route_web_socket("**/api/v1/ws/live**", lambda ws: ws.close())
        page.route("**/api/v1/live/**", reads)
        page.evaluate("window.signalwise.feed.ws.close()")
        page.clock.fast_forward("00:09")  # nothing comes meanwhile: every read is cut
        wait_for(page, "document.body.classList.contains('stale')", 20)
        message = page.text_content("#map-message")
        assert message.startswith("no data for ") and "the map shows the run as it was at t = " in message, message
        assert page.text_content("#run-status") == "no data"
        # the stream's pill too: a silent stream is no live one
        assert page.text_content("#feed-mode").endswith(": silent") and "bad" in page.get_attribute("#feed-mode", "class")
        assert page.text_content("#detail-age").startswith("no data for "), "the detail shows old states as current"
        p.shot("stale-corridor")
        cut["reads"] = False  # the reads answer again, through the host guard (the stream still refused: polling)
        wait_for(page, "!document.body.classList.contains('stale')", 20)
        assert page.is_hidden("#map-message") and page.text_content("#run-status") == "running"


def test_the_map_and_detail_routes(live):
    net = httpx.get(live.url + "/api/v1/network").json()
    assert net["source"] == "live" and net["run"]["controller_configured"] == live.runtime.cfg.controller
    st = live.runtime.stepper
    for inter in net["intersections"]:
        model = st.by_id[inter["id"]]
        served = sorted(i for a in inter["approaches"] for i in a["links"])
        assert served == sorted(m.link_index for m in model.movements if not m.is_crosswalk)
        for a in inter["approaches"]:
            assert a["direction"] in ("north", "south", "east", "west")
            assert all(len(lane["shape"]) >= 2 for lane in a["lanes"])
    assert len(net["lanes"]) >= sum(len(i.in_lanes) for i in st.intersections)
    r = httpx.get(live.url + "/api/v1/live/interventions", params={"intersection_id": "nope"})
    assert r.status_code == 404 and "unknown intersection 'nope'" in r.json()["message"]
    r = httpx.get(live.url + "/api/v1/live/atspm/pcd", params={"intersection_id": st.intersections[0].id},
                  timeout=60)  # drawn on request: allow for a loaded machine
    assert r.status_code in (200, 404)
    assert r.headers["content-type"] == "image/png" if r.status_code == 200 else "yet" in r.json()["message"]
    assert httpx.get(live.url + "/static/dashboard/js/app.js").headers["content-type"].startswith("text/javascript")


# -- models: deploy and rollback from the page --------------------------------------------------------------
@pytest.fixture(scope="module")
def corridor_model(model_training) -> Path:
    proc, out = model_training
    assert proc.wait(timeout=300) == 0, (out / "train.log").read_text()
    return out / "train" / "model"


def test_deploy_a_model_and_a_refused_rollback_from_the_page(live, browser, request):
    if live.runtime.cfg.scenario_label != "corridor":
        pytest.skip("once is enough: the corridor run covers it")
    from signalwise.store.model_registry import open_registry

    version = open_registry(live.app.state.settings).add(request.getfixturevalue("corridor_model")).version
    configured = live.runtime.cfg.controller
    with open_page(browser, live.url + "/") as p:
        page = p.page
        _ready(page)
        wait_for(page, f"[...document.querySelectorAll('#model-version option')].some(o => o.value === '{version}')", 10)
        page.select_option("#model-version", version)
        page.click("#deploy-model")
        page.fill("#key-input", live.operate_key)
        page.click("#key-submit")
        wait_for(page, f"document.getElementById('control-result').textContent.startsWith('deploy {version}: applied')", 15)
        assert _wait_status(live, page, "ql:@active")["controller"] == "ql:@active"
        wait_for(page, "document.getElementById('toggle-controller').textContent === 'adaptive: ql:@active'", 10)
        # rolling back the only version leaves no model: the run goes back to the Webster plan
        page.click("#rollback-model")
        wait_for(page, "document.getElementById('control-result').textContent.startsWith('rollback: applied')", 15)
        assert _wait_status(live, page, "webster")["controller"] == "webster"
        # nothing is deployed any more: a second rollback is refused, and the page says why
        page.click("#rollback-model")
        wait_for(page, "document.getElementById('control-result').classList.contains('refused')", 10)
        assert "409 conflict: nothing deployed to roll back" in page.text_content("#control-result")
        assert _status(live)["controller"] == "webster"
        p.shot("deploy-and-refused-rollback-corridor")
        # back to the run's own controller through "switch to"
        page.fill("#controller-spec", configured)
        page.click("#apply-controller")
        assert _wait_status(live, page, configured)["controller"] == configured
        # the refused rollback is logged by Chromium as a failed load; nothing else is
        assert [e for e in p.errors if not ("/api/v1/live/rollback" in e and "409" in e)] == [], p.errors
    changes = httpx.get(live.url + "/api/v1/live/changes").json()
    applied = [c["payload"]["controller"] for c in changes if c["kind"] == "controller" and c["result"] == "applied"]
    assert applied[-3:] == ["ql:@active", "webster", configured]


# -- emergency vehicles: grid, watched from the run's first second -------------------------------------------
EMERGENCY_RGB = (0xE0, 0x1F, 0xB0)

READ_EMERGENCY = """() => {
  const map = window.signalwise.map, snap = window.signalwise.state.snapshot;
  if (!snap || !map.drawn || map.drawn.seq !== snap.seq) return null;
  const wanted = snap.signals.flatMap(s => s.emergency.map(e => ({id: s.intersection_id, ...e, preempted: s.preempted})));
  if (!wanted.length) return null;
  const ctx = document.getElementById('map').getContext('2d');
  const marks = map.emergency.map(m => {
    const px = [];
    for (let dx = -3; dx <= 3; dx++) for (let dy = -3; dy <= 3; dy++)
      px.push(Array.from(ctx.getImageData(Math.round(m.x) + dx, Math.round(m.y) + dy, 1, 1).data).slice(0, 3));
    return {...m, px};
  });
  // each preempted signal's ring, read where it crosses the horizontal through the signal
  const rings = snap.signals.filter(s => s.preempted).map(s => {
    const inter = map.byId.get(s.intersection_id), [cx, cy] = map.screenOf(s.intersection_id);
    const px = [];
    for (let dx = -2; dx <= 2; dx++) px.push(Array.from(ctx.getImageData(Math.round(cx + inter.ringR + 8) + dx, Math.round(cy), 1, 1).data).slice(0, 3));
    return {id: s.intersection_id, px};
  });
  return {wanted, marks, rings};
}"""


@pytest.fixture(scope="module")
def grid_from_start(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-grid-ev"), "grid", speed=2.0, start=False) as lv:
        yield lv


@pytest.mark.slow
def test_emergency_vehicles_and_preemption_are_highlighted(grid_from_start, browser):
    live = grid_from_start
    with open_page(browser, live.url + "/") as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.heads.length > 0", 20)
        live.start()
        deadline, got = time.monotonic() + 60, None
        while time.monotonic() < deadline and got is None:  # grid's first comes in its first simulated minute
            got = page.evaluate(READ_EMERGENCY)
            if got is None:
                page.wait_for_timeout(50)
        assert got is not None, "no emergency vehicle approached a signal in the first simulated minutes"
        drawn = {(m["id"], m["vehicle_id"]) for m in got["marks"]}
        assert drawn == {(w["id"], w["vehicle_id"]) for w in got["wanted"]}
        for m in got["marks"]:
            closest = min(sum((a - b) ** 2 for a, b in zip(px, EMERGENCY_RGB, strict=True)) ** 0.5 for px in m["px"])
            assert closest < 40, f"{m['vehicle_id']} at {m['id']}: no emergency colour drawn near ({m['x']:.0f}, {m['y']:.0f})"
        ev = got["wanted"][0]
        # in the same snapshot its signal preempts for it (the shield's rule), and the map rings it in magenta
        rings = {r["id"]: r["px"] for r in got["rings"]}
        assert ev["id"] in rings, f"{ev['id']} does not preempt for {ev['vehicle_id']}"
        closest = min(sum((a - b) ** 2 for a, b in zip(px, EMERGENCY_RGB, strict=True)) ** 0.5 for px in rings[ev["id"]])
        assert closest < 40, f"no preemption ring drawn around {ev['id']}"
        # its signal's detail names the vehicle and the preemption
        x, y = page.evaluate(f"window.signalwise.map.screenOf('{ev['id']}')")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        wait_for(page, f"document.getElementById('d-emergency').textContent.includes('{ev['vehicle_id']} from the')"
                       " && document.getElementById('d-fallback').textContent.includes('PREEMPTION')", 5)
        p.shot("emergency-grid")
        # the detail asks for its ATSPM charts: a young run may have no complete cycle yet (404 with the reason)
        assert [e for e in p.errors if not ("/api/v1/live/atspm/" in e and "404" in e)] == [], p.errors


# -- away from loopback: reads need a key, the stream takes the token -----------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-guarded"), "corridor", bind_host="0.0.0.0") as lv:
        yield lv


@pytest.mark.slow
def test_away_from_loopback_the_page_asks_for_a_key_and_streams_with_the_token(guarded, browser):
    live = guarded
    assert httpx.get(live.url + "/api/v1/live/status").status_code == 401  # the server really is guarded
    sockets = []
    with open_page(browser, live.url + "/") as p:
        page = p.page
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.wait_for_selector("#key-dialog[open]", timeout=15000)
        assert "not on a loopback address" in page.text_content("#key-why")
        page.fill("#key-input", live.read_key)
        page.click("#key-submit")
        _ready(page)
        wait_for(page, "window.signalwise.feed.mode === 'stream'", 10)
        assert page.text_content("#auth-who").startswith("viewer (read) · until ")
        assert sockets and all("token=" in url for url in sockets)
        # the token lives in the page's memory only
        assert page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
        p.shot("guarded-corridor")
        # the read-only token changes nothing
        page.click("#toggle-controller")
        wait_for(page, "document.getElementById('control-result').textContent.includes('403')", 10)
        assert _status_with(live, live.read_key)["controller"] == live.runtime.cfg.controller
        # the refused reads (401, before signing in) and change (403) are logged by Chromium as failed loads
        assert [e for e in p.errors if not ("Failed to load resource" in e and ("401" in e or "403" in e))] == [], \
            p.errors


def _status_with(live, key: str) -> dict:
    return httpx.get(live.url + "/api/v1/live/status", headers={"X-API-Key": key}).json()
