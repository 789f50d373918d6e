"""The timing editor's per-phase values: a signal's phases with their own minimum and maximum green
(`timing.per_intersection.<id>.phases.<n>`) and the passage the actuated controller gives each
(`controller_options.passage_s`), one phase's maximum green edited from the page and reaching the run, the change
said phase by phase (never `phases [object Object]`), and the server's refusals of a phase's values shown in the
editor on that phase's fields.

One `corridor` live run (speed 10, SUMO in its worker process) under `actuated` with per-phase passages, switched
through the API as an operator would, and one page in Debian's Chromium.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from dashboard_helpers import live_dashboard, open_page, wait_for

#: the passages the run's controller is switched to (J1's phases 1 and 2 their own, the others the default)
PASSAGES = {"default": 3.0, "J1": {"1": 5.0, "2": 2.0}}
#: a signal the page is told (by its network, altered on the way) has a fifth phase the run does not have
FAKE_PHASE_AT = "J3"


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    with live_dashboard(tmp_path_factory.mktemp("dash-phase-timing"), "corridor") as lv:
        yield lv


def _config(live) -> dict:
    return httpx.get(live.url + "/api/v1/live/config").json()


def _until(what, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := what()):
        assert time.monotonic() < deadline, f"still not true after {timeout_s:g} s"
        time.sleep(0.2)
    return value


def _text(page, selector: str) -> str:
    return page.evaluate(f"document.querySelector({selector!r}).textContent")


def _one_more_phase(route) -> None:
    """The network as served, with a phase 5 at FAKE_PHASE_AT: a page that believes the signal has it."""
    response = route.fetch()
    network = response.json()
    for inter in network["intersections"]:
        if inter["id"] == FAKE_PHASE_AT:
            inter["phases"].append({"number": 5, "green_state": inter["phases"][0]["green_state"],
                                    "label": "phase 5 (not in the run)"})
    route.fulfill(response=response, body=json.dumps(network))


@pytest.mark.slow
def test_a_signals_phases_are_shown_edited_and_refused_phase_by_phase(live, browser):
    key = {"X-API-Key": live.operate_key}
    # the run under actuated with its own passage per phase at J1, and J1's phase 2 with its own maximum green:
    # another operator's changes through the API
    r = httpx.post(live.url + "/api/v1/live/controller", headers=key,
                   json={"controller": "actuated", "controller_options": {"passage_s": PASSAGES}})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    r = httpx.put(live.url + "/api/v1/live/config/timing/intersections/J1", headers=key,
                  json={"timing": {"phases": {"2": {"max_green_s": 40}}}})
    assert r.status_code == 200 and r.json()["result"] == "applied", r.text
    passages = _until(lambda: _config(live)["passage_s"].get("J1"))  # each signal takes it at its next green
    assert passages == [5.0, 2.0, 3.0, 3.0], passages
    # J1 runs its phase 2's 40 s once it takes the change, at its next green; until then the page rightly adds
    # "runs 60 s" beside the 40 s configured
    _until(lambda: _config(live)["derived"]["J1"]["max_green_s"][1] == 40)
    signal_max = _config(live)["timing"]["max_green_s"]
    network = {i["id"]: i for i in httpx.get(live.url + "/api/v1/network").json()["intersections"]}

    def before(page):
        page.route("**/api/v1/network", _one_more_phase)

    with open_page(browser, live.url + "/", before=before) as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.map.drawn", 20)
        # the change list says the API's change phase by phase
        listed = wait_for(page, "(t => t.includes('timing of J1') && t)(document.getElementById('change-list')"
                                ".textContent)", 10)
        assert "timing of J1: phase 2 maximum green 40 s: applied" in listed, listed
        assert "object" not in listed, listed

        page.click("#safety summary")
        wait_for(page, "window.signalwise.safety.config !== null", 10)
        page.select_option("#timing-scope", "J1")
        heads = page.evaluate("[...document.querySelectorAll('#timing-phases tr.phase-head')].map(n => n.textContent)")
        assert heads == [f"J1 {ph['label']}" for ph in network["J1"]["phases"]], heads
        # phase 2's own maximum green, in bold; phase 1's the signal's; each phase's passage from the controller
        assert _text(page, "#timing-phase-now-2-max_green_s") == "40 s"
        assert page.evaluate("document.getElementById('timing-phase-now-2-max_green_s').classList.contains('own')")
        assert _text(page, "#timing-phase-now-1-max_green_s") == f"{signal_max:g} s (the signal's)"
        assert page.input_value("#timing-phase-2-max_green_s") == "40"
        assert page.input_value("#timing-phase-1-max_green_s") == ""  # none of its own: the signal's
        shown = [_text(page, f"#timing-phase-now-{n}-passage_s") for n in (1, 2, 3, 4)]
        assert shown == ["5 s", "2 s", "3 s", "3 s"], shown
        # every phase field within the side column, as the signal's are
        out = page.evaluate("""(() => { const side = document.getElementById('safety').getBoundingClientRect();
          return [...document.querySelectorAll('#timing-phases input')].filter(n => { const r = n.getBoundingClientRect();
            return r.left < side.left || r.right > side.right + 0.5 || r.width < 40; }).map(n => n.id); })()""")
        assert out == [], out

        # one phase's maximum green edited: what will change, from -> to, before anything is sent
        page.fill("#timing-phase-2-max_green_s", "35")
        pending = _text(page, "#timing-pending")
        assert pending == "will change: J1 phase 2 maximum green 40 → 35 s", pending
        p.shot("phase-timing-pending-corridor")
        page.click("#timing-apply")
        wait_for(page, "document.getElementById('key-dialog').open || "
                       "document.getElementById('timing-result').textContent.includes('applied')", 10)
        if page.evaluate("document.getElementById('key-dialog').open"):
            page.fill("#key-input", live.operate_key)
            page.keyboard.press("Enter")
        answer = wait_for(page, "(t => t.includes('applied') && t)(document.getElementById('timing-result').textContent)",
                          10)
        assert answer.startswith("timing (J1): phase 2 maximum green 40 → 35 s: applied by operator"), answer
        # in the run: its timing in force, and J1's shield runs 35 s at phase 2 once it takes the revision
        own = _config(live)["timing"]["per_intersection"]["J1"]
        assert own == {"phases": {"2": {"max_green_s": 35.0}}}, own
        runs = _until(lambda: (m := _config(live)["derived"]["J1"]["max_green_s"])[1] == 35.0 and m)
        assert runs[0] == signal_max, runs
        wait_for(page, "document.getElementById('timing-phase-now-2-max_green_s').textContent === '35 s'"
                       " && document.getElementById('timing-pending').textContent === ''", 10)
        listed = wait_for(page, "(t => t.includes('maximum green 35 s') && t)(document.getElementById('change-list')"
                                ".textContent)", 10)
        assert "timing of J1: phase 2 maximum green 35 s: applied" in listed and "object" not in listed, listed

        # refused by the server, said in the form's words on that phase's fields, nothing applied: a minimum green
        # above the phase's maximum (each within its bounds)
        page.fill("#timing-phase-2-min_green_s", "50")
        page.click("#timing-apply")
        said = wait_for(page, "(t => t.includes('refused') && t)(document.getElementById('timing-result').textContent)",
                        10)
        assert "J1 phase 2: minimum green (50) exceeds maximum green (35)" in said, said
        assert "per_intersection" not in said and "min_green_s" not in said, said
        assert page.get_attribute("#timing-phase-2-min_green_s", "aria-invalid") == "true"
        assert page.get_attribute("#timing-phase-2-min_green_s", "aria-describedby") == "timing-result"
        assert page.get_attribute("#timing-min_green_s", "aria-invalid") is None  # the signal's own is not at fault
        # a maximum green looser than the safety profile's: the field's bound refuses it in the browser, and a
        # page whose bound is out of date (no bound) has it refused by the server
        page.click("#timing-reset")
        page.fill("#timing-phase-3-max_green_s", "400")
        assert page.evaluate("document.getElementById('timing-phase-3-max_green_s').validity.valid") is False
        page.evaluate("document.getElementById('timing-phase-3-max_green_s').removeAttribute('max')")
        page.click("#timing-apply")
        said = wait_for(page, "(t => t.includes('300') && t)(document.getElementById('timing-result').textContent)", 10)
        assert said.startswith(f"timing (J1): phase 3 maximum green {signal_max:g} → 400 s: "), said
        assert "J1 phase 3: maximum green (400) must be at most 300 under the safety profile" in said, said
        assert page.get_attribute("#timing-phase-3-max_green_s", "aria-invalid") == "true"
        assert _config(live)["timing"]["per_intersection"]["J1"] == own  # nothing of either applied

        # a phase the signal does not have (the page was told J3 has a fifth): the server's reason, nothing applied
        page.click("#timing-reset")
        page.select_option("#timing-scope", FAKE_PHASE_AT)
        page.fill("#timing-phase-5-max_green_s", "30")
        page.click("#timing-apply")
        said = wait_for(page, "(t => t.includes('refused') && t)(document.getElementById('timing-result').textContent)",
                        10)
        assert f"{FAKE_PHASE_AT}'s phase timing names phase 5, which signal '{FAKE_PHASE_AT}' does not have" in said, said
        assert "it has phases 1..4" in said, said
        assert FAKE_PHASE_AT not in _config(live)["timing"]["per_intersection"]
        p.shot("phase-timing-refused-corridor")
        assert [e for e in p.errors if "/api/v1/live/atspm/" not in e and "422" not in e] == [], p.errors
