"""The dashboard over stored runs (`signalwise serve`, no live run): the comparison view side by side, with
confidence intervals, the delay-over-time chart and PNG / CSV exports, and a stored run's network on the map."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dashboard_helpers import open_page, serving, wait_for


@dataclass
class Stored:
    url: str
    run_dirs: dict[tuple[str, int], Path]  # (controller, seed) -> run directory


@pytest.fixture(scope="module")
def stored(tmp_path_factory, browser):
    """Four short offline runs of `corridor` (fixed and max-pressure, seeds 1 and 2), published."""
    from signalwise.api import create_app
    from signalwise.runtime.compare import compare_controllers
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.records import publish_runs
    from signalwise.store import Settings

    tmp = tmp_path_factory.mktemp("dash-stored")
    result = compare_controllers(RunConfig(scenario="corridor", duration_s=240), ["fixed", "max-pressure"], [1, 2],
                                 tmp / "cmp", workers=2)
    assert not result.failures, result.failures
    url = f"sqlite:///{tmp / 'stored.db'}"
    publish_runs(sorted(result.run_dirs.values()), url)
    app = create_app(Settings(database_url=url, cache_ttl_s=0))
    with serving(app) as base:
        yield Stored(base, result.run_dirs)


def _delay_by_interval(run_dir: Path) -> dict[float, float]:
    with open(run_dir / "timeseries.csv") as fh:
        return {float(r["begin_s"]): float(r["avg_delay_s"]) for r in csv.DictReader(fh)
                if r["scope"] == "network" and r["avg_delay_s"] not in ("", "None")}  # no vehicle arrived: no delay


@pytest.mark.slow
def test_comparison_view_side_by_side_with_intervals_and_exports(stored, browser):
    with open_page(browser, stored.url + "/") as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 15)
        assert page.evaluate("document.body.dataset.live") == "false"  # no live run: never asked for one
        wait_for(page, "document.querySelectorAll('#cmp-bars canvas').length >= 2", 15)
        assert page.is_visible("#compare-view") and not page.is_visible("#live-view")
        bars = page.locator("#cmp-bars figure")
        assert bars.count() == len(page.evaluate("[...document.getElementById('cmp-metrics').selectedOptions]"
                                                 ".map(o => o.value)"))
        rows = page.locator("#cmp-table tr")
        assert rows.count() >= 2 and "max-pressure vs fixed" in page.text_content("#cmp-table")
        assert "[" in rows.nth(1).text_content()  # mean [95% CI]
        # both tests the comparison makes over the same seeds, and what a figure is where its name does not say
        assert [th.text_content() for th in rows.nth(0).locator("th").all()][-2:] == ["Welch p", "paired p"]
        captions = page.text_content("#cmp-bars")
        assert "not vehicles per hour" in captions and "co2_saved" not in captions  # 0 for the baseline itself
        assert "avg_delay_s" in page.evaluate("[...document.getElementById('cmp-metrics').selectedOptions].map(o => o.value)")
        wait_for(page, "document.querySelectorAll('.trend-pick:checked').length === 4", 10)  # every run, ticked
        wait_for(page, "window.signalwise.compare.trend.series.length === 2", 10)
        p.page.set_viewport_size({"width": 1400, "height": 1500})
        p.shot("compare-corridor")
        # exports: the table as CSV, a bar chart as PNG, the trend as CSV
        with page.expect_download() as dl:
            page.click("#cmp-table-csv")
        table = list(csv.DictReader(io.StringIO(dl.value.path().read_text())))
        assert table and {"controller", "metric", "candidate_ci_low", "candidate_ci_high", "p_value",
                          "p_value_paired"} <= set(table[0])
        assert all(row["p_value_paired"] != "" for row in table)  # two seeds each side: a paired test ran
        with page.expect_download() as dl:
            bars.first.locator("button", has_text="PNG").click()
        assert dl.value.suggested_filename.endswith(".png")
        assert dl.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # delay over time: one line per controller, the mean of its runs' interval delays (timeseries.csv)
        with page.expect_download() as dl:
            page.click("#cmp-trend-csv")
        trend = list(csv.DictReader(io.StringIO(dl.value.path().read_text())))
        assert set(trend[0]) == {"x", "fixed (2 runs)", "max-pressure (2 runs)"} and len(trend) >= 4
        for controller in ("fixed", "max-pressure"):
            runs = [_delay_by_interval(d) for (c, _seed), d in stored.run_dirs.items() if c == controller]
            expected = {t: sum(r[t] for r in runs if t in r) / sum(t in r for r in runs) for t in set().union(*runs)}
            drawn = {float(row["x"]): float(v) for row in trend if (v := row[f"{controller} (2 runs)"]) != ""}
            assert drawn == pytest.approx(expected, abs=1e-3)
        # unticking a controller's runs takes its line out
        page.locator(".trend-pick[value*='fixed']").first.uncheck()
        wait_for(page, "window.signalwise.compare.trend.series.some(s => s.name === 'fixed (1 run)')", 10)
        with page.expect_download() as dl:
            page.click("#cmp-trend-csv")
        assert "fixed (1 run)" in dl.value.path().read_text().splitlines()[0]
        with page.expect_download() as dl:
            page.click("#cmp-trend-png")
        assert dl.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.errors == [], p.errors


def test_a_stored_runs_network_on_the_map(stored, browser):
    sims = httpx.get(stored.url + "/api/v1/analytics/simulations").json()["items"]
    net = httpx.get(stored.url + "/api/v1/network", params={"simulation_id": sims[0]["simulation_id"]}).json()
    assert net["source"] == "stored" and {i["id"] for i in net["intersections"]} == {"J1", "J2", "J3", "J4", "J5"}
    assert httpx.get(stored.url + "/api/v1/network").status_code == 404  # no live run, no run named
    assert httpx.get(stored.url + "/api/v1/network", params={"simulation_id": "nope"}).status_code == 404
    with open_page(browser, stored.url + "/") as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 15)
        page.click("button[data-view=live]")
        wait_for(page, "window.signalwise.map.heads.length >= 5", 10)
        assert not page.is_visible("#map-pane .legend")  # signal colours, queues, preemption: none drawn here
        assert {h["id"] for h in page.evaluate("window.signalwise.map.heads")} == {"J1", "J2", "J3", "J4", "J5"}
        x, y = page.evaluate("window.signalwise.map.screenOf('J3')")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        wait_for(page, "document.querySelectorAll('#d-approaches .qbar').length >= 2", 10)  # mean wait per approach
        assert page.is_hidden("#controls") and page.is_hidden("#detail-live")
        assert page.is_hidden("#changes")  # a live run's change log: nothing of a stored run
        p.shot("stored-map-corridor")
        assert p.errors == [], p.errors


def test_delay_over_time_route_names_runs_it_cannot_read(stored):
    sims = [s["simulation_id"] for s in httpx.get(stored.url + "/api/v1/analytics/simulations").json()["items"]]
    r = httpx.get(stored.url + "/api/v1/dashboard/delay-over-time", params={"simulation": [*sims[:1], "nope"]})
    assert r.status_code == 200
    body = r.json()
    assert [s["runs"] for s in body["series"]] == [sims[:1]] and body["missing"] == [
        {"simulation_id": "nope", "reason": "not found"}]
    assert httpx.get(stored.url + "/api/v1/dashboard/delay-over-time").status_code == 422  # no run named


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, browser):
    """fixed and max-pressure on `corridor`, seeds 1 and 2 (a whisker to draw), over 120 s and over 180 s,
    published together."""
    from signalwise.api import create_app
    from signalwise.runtime.compare import compare_controllers
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.records import publish_runs
    from signalwise.store import Settings

    tmp = tmp_path_factory.mktemp("dash-mixed")
    dirs = []
    for duration in (120, 180):
        result = compare_controllers(RunConfig(scenario="corridor", duration_s=duration, record="lean"),
                                     ["fixed", "max-pressure"], [1, 2], tmp / f"cmp{duration}", workers=2)
        assert not result.failures, result.failures
        dirs += result.run_dirs.values()
    url = f"sqlite:///{tmp / 'stored.db'}"
    publish_runs(sorted(dirs), url)
    with serving(create_app(Settings(database_url=url, cache_ttl_s=0))) as base:
        yield base


@pytest.mark.slow
def test_runs_made_under_other_conditions_are_compared_apart_and_said_to_be(mixed, browser):
    """A 120 s run was paired with a 180 s one; now each duration is its own comparison, the table says which, and
    the bars, which average over every run, carry no whisker of one of them."""
    with open_page(browser, mixed + "/") as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 15)
        wait_for(page, "document.querySelectorAll('#cmp-bars canvas').length >= 1", 15)
        wait_for(page, "document.getElementById('cmp-message').textContent.includes('sets of conditions')", 10)
        table = page.text_content("#cmp-table")
        assert "max-pressure vs fixed (duration_s 120)" in table and "max-pressure vs fixed (duration_s 180)" in table
        assert "made under 2 sets of conditions" in page.text_content("#cmp-message")
        whiskers = page.evaluate("window.signalwise.compare.bars.flatMap(c => c.bars.map(b => b.lo))")
        assert whiskers and all(w is None for w in whiskers)


@pytest.mark.slow
def test_comparison_whiskers_stay_within_what_a_figure_can_be_and_every_plot_keeps_its_height(stored, browser):
    """A 95% t-interval over two seeds can reach below 0 (a wait) or above 1 (a share): the whisker stops at the
    bound, the caption says where it was cut (`t-interval cut at 0`, as `signalwise compare`'s ci_note), and the table
    gives the cut interval. A long caption (avg_wait_time's definition) takes room under its plot, not from it."""
    with open_page(browser, stored.url + "/", viewport={"width": 1366, "height": 768}) as p:
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 15)
        wait_for(page, "document.querySelectorAll('#cmp-bars canvas').length >= 4", 15)
        metrics = page.evaluate("[...document.getElementById('cmp-metrics').selectedOptions].map(o => o.value)")
        assert {"avg_wait_time", "throughput"} <= set(metrics), metrics
        heights = page.evaluate("[...document.querySelectorAll('#cmp-bars canvas')].map(c => c.clientHeight)")
        assert len(set(heights)) == 1 and heights[0] >= 150, heights
        bars = page.evaluate("window.signalwise.compare.bars.map(c => [c.opts.title, c.bars])")
        bva = httpx.get(stored.url + "/api/v1/analytics/comparison/baseline-vs-ai",
                        params={"scenario": "corridor", "metric": metrics}).json()
        raw = {}
        for item in bva["items"]:
            for m in item["metrics"]:
                raw[(item["baseline_controller"], m["metric"])] = (m["baseline"]["ci_low"], m["baseline"]["ci_high"])
                raw[(item["controller"], m["metric"])] = (m["candidate"]["ci_low"], m["candidate"]["ci_high"])
        captions = page.evaluate("[...document.querySelectorAll('#cmp-bars figcaption')].map(n => n.textContent)")
        for (title, drawn), caption in zip(bars, captions, strict=True):
            metric = title.split(" · ")[1]
            low, high = (0, 1) if metric == "throughput" else (0, float("inf"))
            for b in drawn:
                lo, hi = raw[(b["label"], metric)]
                assert b["lo"] == pytest.approx(max(lo, low)) and b["hi"] == pytest.approx(min(hi, high)), (metric, b)
                assert bool(b.get("loCut")) == (lo < low) and bool(b.get("hiCut")) == (hi > high), (metric, b)
                if lo < low:
                    assert f"{b['label']}: t-interval cut at 0" in caption, caption
                if hi > high:
                    assert "t-interval cut at 1" in caption, caption
        # the metrics list names each figure with the unit the API gives (`fields`), its definition as the tooltip
        fields = httpx.get(stored.url + "/api/v1/analytics/simulations").json()["fields"]
        options = page.evaluate("[...document.getElementById('cmp-metrics').options].map(o => [o.value, o.text, o.title])")
        for value, text, title in options:
            unit, what = fields[value].split(": ", 1)
            assert text == (f"{value} ({unit})" if unit != "?" else value) and title == what, (value, text, title)
        p.shot("compare-cut-corridor")
        assert p.errors == [], p.errors
