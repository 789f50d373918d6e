"""The dashboard open while `signalwise live` dies and is started again on the same address: the page shows the new
run alone (its alerts, its charts) and says that a new run started, rather than mix the dead run into it.

The command itself, as an operator runs it (`corridor` at speed 20, SUMO in its worker process), killed with
SIGKILL (no end of the run, no stream closed for it: as a crash or a killed container leaves it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
from dashboard_helpers import open_page, wait_for
from support.loopback import free_port, signalwise_serving

CONFIG = """alerts:
  rules:
    - {name: restart_test, metric: fallback_share, op: ">=", threshold: 0, for_s: 0, level: warning,
       description: always raised}
"""


def test_a_new_run_behind_the_same_address_replaces_the_dead_one(browser, tmp_path):
    port = free_port()
    (tmp_path / "live.yaml").write_text(CONFIG)
    args = ["live", "--scenario", "corridor", "--speed", "20", "--port", str(port), "--out", str(tmp_path / "runs"),
            "--config", str(tmp_path / "live.yaml")]
    env = {"SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "NO_COLOR": "1"}
    base = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(signalwise_serving(args, "/api/v1/live/status", port, cwd=tmp_path, env=env))
        p = stack.enter_context(open_page(browser, base + "/"))
        page = p.page
        wait_for(page, "window.signalwise && window.signalwise.ready", 20)
        wait_for(page, "[...window.signalwise.state.alerts.values()].some(a => a.rule === 'restart_test')", 20)
        wait_for(page, "window.signalwise.state.series.queue.length > 8", 20)
        dead = set(page.evaluate("[...window.signalwise.state.alerts.keys()]"))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = stack.enter_context(signalwise_serving(args, "/api/v1/live/status", port, cwd=tmp_path, env=env))
        status = httpx.get(base + "/api/v1/live/status").json()
        # the page takes the new run's alert; the dead run's are gone, not left active beside it
        wait_for(page, "[...window.signalwise.state.alerts.values()].some(a => a.rule === 'restart_test' && "
                       f"!{sorted(dead)!r}.includes(a.id))", 30)
        held = set(page.evaluate("[...window.signalwise.state.alerts.keys()]"))
        assert not held & dead, f"the dead run's alerts are still shown: {held & dead}"
        alerts = httpx.get(base + "/api/v1/live/alerts").json()
        assert held <= {a["id"] for a in alerts["active"] + alerts["history"]}
        wait_for(page, "!document.getElementById('run-notice').hidden", 10)
        notice = page.text_content("#run-notice-text")
        assert notice.startswith(f"a new run started: {Path(status['run_dir']).name}"), notice
        p.shot("restarted-corridor")
        # the charts hold the new run only: nothing of the dead run's later times
        page.wait_for_timeout(1000)
        # one read of both: between two reads the page may take the next snapshot, and the series would be ahead
        now, queue = page.evaluate("[window.signalwise.state.snapshot.sim_time_s, window.signalwise.state.series.queue]")
        assert queue and all(a[0] < b[0] for a, b in zip(queue, queue[1:], strict=False)) and queue[-1][0] <= now
        # the dead server's failed reads (it was killed) are all Chromium logged
        assert [e for e in p.errors if "net::ERR_CONNECTION_REFUSED" not in e] == [], p.errors
        assert second.poll() is None
