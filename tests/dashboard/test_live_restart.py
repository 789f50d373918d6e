"""The dashboard open while `signalwise live` dies, or stops, and is started again on the same address: the page shows
the new run alone (its alerts, its charts) and says that a new run started, rather than mix the dead run into it.

The command itself, as an operator runs it (`corridor` at speed 20, SUMO in its worker process), killed with
SIGKILL (no end of the run, no stream closed for it: as a crash or a killed container leaves it).

The tests of this module take turns with one command on one address (`servers`): each ends the command it found
running and starts the next, which the next test opens its page on (or starts one itself, when run alone).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dashboard_helpers import open_page, wait_for
from support.loopback import free_port, signalwise_serving

CONFIG = """alerts:
  rules:
    - {name: restart_test, metric: fallback_share, op: ">=", threshold: 0, for_s: 0, level: warning,
       description: always raised}
"""


class Servers:
    """`signalwise live` on one port and one database, started again as a test asks; a key made before the first."""

    def __init__(self, tmp_path: Path, stack: contextlib.ExitStack):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "NO_COLOR": "1"}
        (tmp_path / "live.yaml").write_text(CONFIG)
        self.args = ["live", "--scenario", "corridor", "--speed", "20", "--port", str(self.port), "--out",
                     str(tmp_path / "runs"), "--config", str(tmp_path / "live.yaml")]
        self.tmp_path, self.stack, self.proc = tmp_path, stack, None
        self.key = _key(tmp_path, self.env)

    def running(self) -> subprocess.Popen:
        """The command serving now: the one the last test started, or a new one."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self.proc

    def start(self) -> subprocess.Popen:
        log = self.stack.enter_context(open(self.tmp_path / "live-stderr.log", "a"))  # kept across tests: no pipe
        self.proc = self.stack.enter_context(signalwise_serving(self.args, "/api/v1/live/status", self.port,
                                                                cwd=self.tmp_path, env=self.env, stderr=log))
        return self.proc


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        yield Servers(tmp_path_factory.mktemp("restart"), stack)


@pytest.mark.slow
def test_a_new_run_behind_the_same_address_replaces_the_dead_one(browser, servers):
    base = servers.base
    with contextlib.ExitStack() as stack:
        first = servers.running()
        p = stack.enter_context(open_page(browser, base + "/"))
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 40)
        wait_for(page, "[...window.signalwise.state.alerts.values()].some(a => a.rule === 'restart_test')", 40)
        wait_for(page, "window.signalwise.state.series.queue.length > 8", 40)
        dead = set(page.evaluate("[...window.signalwise.state.alerts.keys()]"))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = servers.start()
        status = httpx.get(base + "/api/v1/live/status").json()
        # the page takes the new run's alert; the dead run's are gone, not left active beside it
        wait_for(page, "[...window.signalwise.state.alerts.values()].some(a => a.rule === 'restart_test' && "
                       f"!{sorted(dead)!r}.includes(a.id))", 30)
        held = set(page.evaluate("[...window.signalwise.state.alerts.keys()]"))
        assert not held & dead, f"the dead run's alerts are still shown: {held & dead}"
        alerts = httpx.get(base + "/api/v1/live/alerts").json()
        assert held <= {a["id"] for a in alerts["active"] + alerts["history"]}
        wait_for(page, "!document.getElementById('run-notice').hidden", 30)
        notice = page.text_content("#run-notice-text")
        assert notice.startswith(f"a new run started: {Path(status['run_dir']).name}"), notice
        # the new run found the old one dead: its alert's message gives when it was last seen alive as every
        # wall-clock time on the page (`23:14:22 wall clock`), not the server's ISO instant
        died = wait_for(page, "(n => n && n.textContent)([...document.querySelectorAll('#alert-list li')]"
                              ".find(n => n.querySelector('b')?.textContent === 'previous_run_died'))", 30)
        assert "last seen alive at" in died and "wall clock" in died, died
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", died), died
        p.shot("restarted-corridor")
        # the charts hold the new run only: nothing of the dead run's later times
        page.wait_for_timeout(1000)
        # one read of both: between two reads the page may take the next snapshot, and the series would be ahead
        now, queue = page.evaluate("[window.signalwise.state.snapshot.sim_time_s, window.signalwise.state.series.queue]")
        assert queue and all(a[0] < b[0] for a, b in zip(queue, queue[1:], strict=False)) and queue[-1][0] <= now
        # the dead server's failed reads (it was killed) are all Chromium logged
        assert [e for e in p.errors if "net::ERR_CONNECTION_REFUSED" not in e] == [], p.errors
        assert second.poll() is None


def _key(tmp_path, env) -> str:
    """A key with read and operate, made as an operator makes one (`signalwise keys create`)."""
    done = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "keys", "create", "--name", "ops",
                           "--scopes", "read,operate"], cwd=tmp_path, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


WATCH_DIALOG = """window.keyDialogOpened = [];
new MutationObserver(() => { const d = document.getElementById('key-dialog');
  if (d.open) window.keyDialogOpened.push(document.getElementById('key-why').textContent); })
  .observe(document.getElementById('key-dialog'), {attributes: true});"""


@pytest.mark.slow
def test_a_signed_in_page_across_a_restart_drops_the_sign_in_without_a_key_dialog(browser, servers):
    """The page holds a token the restarted server cannot verify (it signs with another secret): its reads go on bare
    (open on loopback) with no dialog blaming a server away from loopback, the new-run notice says the sign-in was
    dropped, and the feed's pill says `stream` once the stream is back."""
    base, key = servers.base, servers.key
    with contextlib.ExitStack() as stack:
        first = servers.running()
        p = stack.enter_context(open_page(browser, base + "/"))
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.feed.mode === 'stream'", 40)
        page.click("#sign-in")
        page.fill("#key-input", key)
        page.click("#key-submit")
        wait_for(page, "document.getElementById('auth-who').textContent.startsWith('ops (read, operate) · until')", 30)
        # the stream again, with the token: its socket open (the mode alone still said `stream` while the page
        # reopened it, and a kill meanwhile left Chromium logging a handshake cut short)
        wait_for(page, "window.signalwise.feed.mode === 'stream' && window.signalwise.feed.ws &&"
                       " window.signalwise.feed.ws.url.includes('token=') && window.signalwise.feed.ws.readyState === 1", 40)
        page.evaluate(WATCH_DIALOG)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        servers.start()
        wait_for(page, "!document.getElementById('run-notice').hidden", 30)
        notice = page.text_content("#run-notice-text")
        assert notice.startswith("a new run started: ") and notice.endswith(
            "; ops's sign-in was for that run: sign in again for the controls."), notice
        # the stream comes back (tried again every 10 s), and the pill says so: nothing left from a refused read
        wait_for(page, "window.signalwise.feed.mode === 'stream'", 40)
        page.wait_for_timeout(1500)
        assert page.text_content("#feed-mode") == "stream"
        assert page.text_content("#auth-who") == "no key"
        assert page.evaluate("window.keyDialogOpened") == []
        assert page.evaluate("document.getElementById('key-dialog').open") is False
        p.shot("restarted-signed-in-corridor")
        # the dead server's failed reads, and the new one's refusal of the old token (before the bare read)
        assert [e for e in p.errors if "net::ERR_CONNECTION_REFUSED" not in e and "status of 401" not in e] == [], p.errors


@pytest.mark.slow
def test_an_ended_page_follows_a_new_run_started_behind_the_same_address(browser, servers):
    """`signalwise live` stopped (SIGTERM, as a supervisor's nightly restart does) and started again: the ended page
    looks for a new run every 20 s (the page's clock is run on), finds it and follows it live."""
    base = servers.base
    with contextlib.ExitStack() as stack:
        first = servers.running()
        p = stack.enter_context(open_page(browser, base + "/", before=lambda page: page.clock.install()))
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready && window.signalwise.feed.mode === 'stream'", 40)
        old_dir = page.evaluate("window.signalwise.state.runDir")
        first.send_signal(signal.SIGTERM)
        wait_for(page, "window.signalwise.feed.mode === 'ended' && document.body.classList.contains('ended')", 40)
        assert first.wait(timeout=30) == 0
        servers.start()
        new_dir = httpx.get(base + "/api/v1/live/status").json()["run_dir"]
        assert new_dir != old_dir
        page.clock.fast_forward("00:25")  # the ended page's look for a new run: every 20 s
        wait_for(page, "!document.getElementById('run-notice').hidden", 30)
        assert page.text_content("#run-notice-text").startswith(f"a new run started: {Path(new_dir).name}")
        wait_for(page, "window.signalwise.feed.mode === 'stream' && !document.body.classList.contains('ended')", 40)
        seen = page.evaluate("window.signalwise.snapshotsReceived")
        wait_for(page, f"window.signalwise.snapshotsReceived > {seen} + 3", 30)
        assert page.text_content("#run-status") == "running"
        assert page.is_enabled("#toggle-controller") and page.is_hidden("#map-message")
        p.shot("followed-after-sigterm-corridor")
        assert [e for e in p.errors if "net::ERR_CONNECTION_REFUSED" not in e] == [], p.errors
