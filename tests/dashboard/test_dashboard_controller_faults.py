"""The dashboard says, under its header and in words, when the run's controller raised errors or made proposals
the shield could not follow, with their counts and where each kind is listed (controller_errors.csv); while
both counts are 0 it says nothing.

`signalwise live` itself on `single` (SUMO in its worker process), paced, with a `py:` controller written for the
test that fails while the test leaves it a cue file; the page open in Chromium.
"""

from __future__ import annotations

import re

import pytest
from dashboard_helpers import open_page, wait_for
from support.faulty_controller import write_faulty_controller
from support.loopback import free_port, signalwise_serving

#: each live region's texts (aria-live, or role status, alert or log), a new entry whenever its text changes:
#: what a screen reader would read out
RECORD_LIVE_REGIONS = """
window.__regions = new Map();
new MutationObserver(records => {
  for (const r of records) {
    const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    const region = node && node.closest('[aria-live], [role=status], [role=alert], [role=log]');
    if (!region) continue;
    const texts = window.__regions.get(region) || [];
    const text = region.textContent.replace(/\\s+/g, ' ').trim();
    if (texts.at(-1) !== text) texts.push(text);
    window.__regions.set(region, texts);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
#: how many texts each live region has taken so far, by its id (or its tag)
LIVE_TEXTS = "() => [...window.__regions].map(([region, texts]) => [region.id || region.tagName, texts])"

#: what the page shows and what its latest snapshot counted, read in one go (the run goes on meanwhile)
SHOWN = """() => ({
  hidden: document.getElementById('controller-faults-notice').hidden,
  visible: document.getElementById('controller-faults-notice').checkVisibility(),
  // what it says (a screen reader reads no hidden text)
  region: document.getElementById('controller-faults').innerText.replace(/\\s+/g, ' ').trim(),
  role: document.getElementById('controller-faults').getAttribute('role'),
  counted: window.signalwise.state.snapshot.controller_faults,  // the latest snapshot's
  faults: window.signalwise.state.faults,  // the counts the page shows (a snapshot's or a status's, the newer)
})"""


@pytest.mark.slow
def test_the_page_names_the_controllers_faults_with_their_counts_and_nothing_while_there_are_none(browser, tmp_path):
    cue = tmp_path / "fail"
    module = write_faulty_controller(tmp_path, cue)
    port = free_port()
    with signalwise_serving(["live", "-s", "single", "-c", f"py:{module}:faulty", "--speed", "10", "--port",
                             str(port), "--out", str(tmp_path / "runs")], "/api/v1/live/status", port, cwd=tmp_path,
                            env={"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "NO_COLOR": "1"}):
        (run_dir,) = [d for d in (tmp_path / "runs").iterdir() if d.is_dir()]
        with open_page(browser, f"http://127.0.0.1:{port}/",
                       before=lambda pg: pg.add_init_script(RECORD_LIVE_REGIONS)) as p:
            wait_for(p.page, "window.signalwise && window.signalwise.ready"
                             " && (window.signalwise.state.snapshot?.controller_faults?.decisions || 0) > 2", 20)
            clean = p.page.evaluate(SHOWN)
            assert clean["hidden"] and not clean["visible"] and clean["region"] == "", clean
            assert clean["counted"]["errors"] == clean["counted"]["invalid_proposals"] == 0

            cue.touch()
            wait_for(p.page, "(window.signalwise.state.snapshot.controller_faults.errors || 0) > 1"
                             " && window.signalwise.state.snapshot.controller_faults.invalid_proposals > 1", 20)
            shown = p.page.evaluate(SHOWN)
            # seen, not said: its counts change with every snapshot (a live region would read them out each time)
            assert shown["visible"] and shown["role"] is None, shown
            f = shown["faults"]
            counted = re.fullmatch(r"Controller faults: (\d+) errors? raised by the controller's decide \(the shield's "
                                   r"Webster fallback served in its place\) and (\d+) invalid proposals? the shield "
                                   r"could not follow as given, of (\d+) decisions? since the run began\. "
                                   r"controller_errors\.csv in the run directory \((.+)\) lists each kind with its "
                                   r"count, signals, file and line\.", shown["region"])
            assert counted, shown["region"]
            assert [int(n) for n in counted.groups()[:3]] == [f["errors"], f["invalid_proposals"], f["decisions"]]
            assert counted.group(4) == run_dir.name
            assert p.page.get_attribute("#controller-faults-notice", "title") == f"run directory: {run_dir}"
            # near the header: right under the top bar, above the map
            top = p.page.locator("#topbar").bounding_box()
            notice = p.page.locator("#controller-faults-notice").bounding_box()
            assert top["y"] + top["height"] <= notice["y"] < p.page.locator("#map-pane").bounding_box()["y"]
            # said once instead, through the live region, in a short sentence: each kind when it first appears
            said = [t for _, texts in p.page.evaluate(LIVE_TEXTS) for t in texts if "Controller faults" in t]
            kinds = ["the controller's decide raised an error", "the shield could not follow a controller's proposal"]
            assert said and all(len(t.split()) <= 30 for t in said), said
            assert sorted(k for t in said for k in kinds if k in t) == sorted(kinds), said
            # with the faults standing (their alerts raised and said, once each), two seconds of snapshots change no
            # live region's text more than once
            wait_for(p.page, "[...window.__regions.values()].flat().filter(t => /^warning alert: controller_(errors|"
                             "invalid_proposals) /.test(t)).length === 2", 20)
            before = dict(p.page.evaluate(LIVE_TEXTS))
            seen = p.page.evaluate("window.signalwise.snapshotsReceived")
            p.page.wait_for_timeout(2000)
            assert p.page.evaluate("window.signalwise.snapshotsReceived") > seen  # snapshots did come
            changed = {region: texts[len(before.get(region, [])):] for region, texts in p.page.evaluate(LIVE_TEXTS)}
            assert all(len(texts) <= 1 for texts in changed.values()), changed
            p.shot("dashboard-controller-faults")
            assert p.errors == [], p.errors
