"""The dashboard in a real browser: Debian's Chromium driven by Playwright for Python.

Chromium is Debian's package (`apt-get install chromium chromium-driver`, done here once per machine when
/usr/bin/chromium is missing; the tests skip with the reason when that fails). Playwright never downloads
a browser of its own: it launches /usr/bin/chromium.

Every page runs behind route interception: a request to any host but 127.0.0.1 is aborted and fails the
test, and so does a WebSocket to another host. Screenshots go to tests/dashboard/artifacts/ (gitignored).
"""

from __future__ import annotations

import pytest
from dashboard_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, install_chromium


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, not per session: Playwright's sync API keeps its asyncio loop marked
    running in the main thread while it is open, so a session-wide browser would make every later
    `asyncio.run` on the same xdist worker (the stream tests) fail with "cannot be called from a running
    event loop"."""
    reason = install_chromium()
    if reason:
        pytest.skip(f"no Chromium for the dashboard tests: {reason}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
