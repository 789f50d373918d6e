"""Helpers of the dashboard tests and bench: Chromium, guarded pages, a live run served as `signalwise live` does.

Used by tests/dashboard/ and bench/dashboard_bench.py; see conftest.py for why Chromium is Debian's.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from support.debian import install
from support.loopback import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORT = {"width": 1400, "height": 860}
#: the map's signal colours (js/map.js SIGNAL_COLOURS), as RGB
SIGNAL_RGB = {"green": (0x1A, 0x98, 0x50), "yellow": (0xF2, 0xB4, 0x00), "red": (0xD7, 0x30, 0x27)}


def install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; None when done, else why not."""
    return install(["chromium", "chromium-driver"], CHROMIUM)


@dataclass
class Page:
    """A page with what it logged: console errors, page errors, and any attempt to leave the host."""

    page: object
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@contextlib.contextmanager
def open_page(browser, url: str, *, viewport: dict | None = None, before=None):
    """A fresh browser context on `url`, guarded: only 127.0.0.1 may be reached. `viewport`: its size (default
    VIEWPORT); `before(page)`: called before the page loads (e.g. to install Playwright's clock).

    The guard is a Playwright route handler, which runs only while the test is inside a Playwright call:
    wait with `page.wait_for_timeout`, never `time.sleep`, or the page's requests wait too."""
    context = browser.new_context(viewport=viewport or VIEWPORT, device_scale_factor=1, accept_downloads=True)
    seen = Page(None)

    def guard(route):
        target = route.request.url
        if urlparse(target).hostname == "127.0.0.1":
            route.continue_()
        else:
            seen.outside.append(target)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    seen.page = page
    page.on("console", lambda m: seen.errors.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    page.on("websocket", lambda ws: None if urlparse(ws.url).hostname == "127.0.0.1" else seen.outside.append(ws.url))
    try:
        if before is not None:
            before(page)
        page.goto(url)
        yield seen
    finally:
        context.close()
    assert not seen.outside, f"the page tried to leave the host: {seen.outside}"


#: how often `wait_for` evaluates its expression
WAIT_POLL_MS = 50


def wait_for(page, expression: str, timeout_s: float = 15.0):
    """Poll a JS expression until it is truthy; the value it had then.

    Evaluated from here (`page.evaluate`, over the DevTools protocol) every WAIT_POLL_MS: Playwright's
    `wait_for_function` evaluates its predicate inside the page with `eval`, which the dashboard's
    Content-Security-Policy (`script-src 'self'`, no 'unsafe-eval') refuses, so the tests run under the policy
    the page is served with."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout_s:g} s: {expression}")
        page.wait_for_timeout(WAIT_POLL_MS)


@dataclass
class Live:
    url: str
    app: object
    runtime: object
    operate_key: str
    read_key: str
    start: object  # starts the loop, when `live_dashboard(start=False)` left that to the test
    registry: Path


@contextlib.contextmanager
def live_dashboard(tmp: Path, scenario: str, *, speed: float = 10.0, alert_rules: list[dict] | None = None,
                   snapshot_hz: float = 4.0, bind_host: str = "127.0.0.1", start: bool = True, field: str = "sumo",
                   controller: str | None = None):
    """A real live run (paced, SUMO in a worker process) in a thread, served as `signalwise live` serves it.

    `bind_host` is the address the server believes it listens on (reads are open on a loopback one); it
    serves on 127.0.0.1 whatever it says. `start=False`: the loop starts when the test calls `live.start()`
    (to have the page open from the run's first second). Models come from the registry `live.registry`.
    `field="none"`: no simulator, the signals fed by detector feeds only (`--field none`; decisions recorded, not
    actuated). `controller`: the run's controller spec (`-c`; default the run configuration's)."""
    from signalwise.api import create_app
    from signalwise.api.routers import pages
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.alerts import engine_from_config, load_alert_config
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    url = f"sqlite:///{tmp / 'dashboard.db'}"
    registry = tmp / "registry"
    app = create_app(Settings(database_url=url, cache_ttl_s=0, bind_host=bind_host, model_registry=registry,
                                 model_cache=tmp / "model-cache"))
    _, operate_key = create_key(get_engine(url), "operator", ["operate"])
    _, read_key = create_key(get_engine(url), "viewer", ["read"])
    alerts, _notifier = engine_from_config(load_alert_config({"alerts": {"rules": alert_rules or []}}))
    # SUMO in its supervised worker process, as `signalwise live` runs it (libsumo allows one simulation per
    # process: in-process runs of two fixtures alive at once would share it)
    rt = LiveRuntime(RunConfig(scenario=scenario, **({"controller": controller} if controller else {})),
                     LiveOptions(speed=speed, snapshot_hz=snapshot_hz, field=field,
                                 sink="shadow" if field == "none" else "sumo"),
                     tmp / "live", alerts=alerts)
    rt.open()
    app.state.live = rt
    app.state.streams.attach(rt)
    pages.warm(app)  # as `signalwise live` does when it starts serving
    loop = threading.Thread(target=rt.run, name=f"live-{scenario}", daemon=True)
    if start:
        loop.start()
    try:
        with serving(app) as base:
            yield Live(base, app, rt, operate_key, read_key, loop.start, registry)
    finally:
        rt.stop()
        if loop.is_alive():
            loop.join(timeout=20)
        elif loop.ident is None:
            rt.run()  # never started: run() sees the stop at once and closes the field and the files


def nearest_signal_colour(rgb) -> tuple[str, float]:
    name, dist = min(((n, sum((a - b) ** 2 for a, b in zip(rgb, ref, strict=False)) ** 0.5)
                      for n, ref in SIGNAL_RGB.items()), key=lambda x: x[1])
    return name, dist


def approach_signal(state: str, links: list[int]) -> str:
    """The colour an approach should show (an independent reading of the rule in js/map.js)."""
    chars = {state[i] for i in links if i < len(state)}
    if chars & {"G", "g"}:
        return "green"
    if chars & {"y", "Y"}:
        return "yellow"
    return "red"


#: every text a live region (aria-live, or role status, alert or log) takes, in order (as a screen reader would
#: say it)
RECORD_LIVE_REGIONS = """
window.__said = [];
new MutationObserver(records => {
  for (const r of records) {
    const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    const region = node && node.closest('[aria-live], [role=status], [role=alert], [role=log]');
    if (region && region.textContent.trim()) window.__said.push(region.textContent.trim());
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def accessible(page, selector: str) -> dict:
    """The accessible role, name and properties of the element `selector`, as Chromium gives them."""
    cdp = page.context.new_cdp_session(page)
    try:
        doc = cdp.send("DOM.getDocument", {"depth": 0})
        node = cdp.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": selector})
        ax = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node["nodeId"], "fetchRelatives": False})["nodes"][0]
    finally:
        cdp.detach()
    props = {p["name"]: p["value"].get("value") for p in ax.get("properties", [])}
    return {"role": ax["role"]["value"], "name": ax.get("name", {}).get("value", ""),
            "description": ax.get("description", {}).get("value", ""), **props}
