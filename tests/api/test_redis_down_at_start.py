"""A Redis that does not answer when `signalwise live` or `serve` starts is an outage, not a reason to stop signal
control: the command says so in one `warning:` line, starts with rate limits counted in memory and the stream relay
off (said in /health), and asks Redis again as it does after a loss mid-run. A URL set without the redis package
is a configuration error and still refused. The real commands, on 127.0.0.1; Redis URLs on a port where nothing
listens, and the real Redis on 127.0.0.1:6379 when it answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.waiting import value_within

from signalwise.api.streams import redis_unavailable_reason

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
REAL_REDIS = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, redis_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    return {**env, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "SIGNALWISE_REDIS_URL": redis_url}


def _health(port: int) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    except httpx.HTTPError:
        return None


def _live(tmp_path: Path, redis_url: str, port: int) -> subprocess.Popen:
    return subprocess.Popen([SIGNALWISE, "live", "--scenario", "single", "--duration", "60", "--speed", "10",
                             "--port", str(port), "--out", str(tmp_path / "runs")],
                            env=_env(tmp_path, redis_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _health_while_running(port: int, proc: subprocess.Popen) -> dict:
    """/health once the live loop runs (its `live` object says so)."""
    def running():
        if proc.poll() is not None:
            pytest.fail(f"live ended, exit {proc.returncode}: {proc.stderr.read()[-2000:]}")
        return (h := _health(port)) and (h.get("live") or {}).get("running") and h

    answer = value_within(running, 60, 0.2)
    assert answer, "the live run's /health never answered with a running loop"
    return answer


def _run_json(tmp_path: Path) -> dict:
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.slow
def test_live_starts_runs_and_ends_when_redis_does_not_answer(tmp_path):
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    port = _free_port()
    proc = _live(tmp_path, url, port)
    try:
        health = _health_while_running(port, proc)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if "does not answer" in line and line.startswith("warning: ")]
    assert len(warnings) == 1, err[-3000:]
    assert warnings[0].startswith(f"warning: Redis at {url} (SIGNALWISE_REDIS_URL) does not answer: ")
    assert "rate limits are counted in each process's memory" in warnings[0]
    assert not [line for line in err.splitlines() if line.startswith("error:")], err[-3000:]
    assert health["status"] == "degraded", health
    assert health["checks"]["rate_limits"]["state"] in ("unreachable", "memory-fallback"), health
    streams = health["checks"]["streams"]
    assert streams["relay"] == "off" and streams["error"] == "connection refused", streams
    assert "stream relay off" in health["message"]
    assert _run_json(tmp_path)["status"] == "complete"
    assert _run_json(tmp_path)["sim_time_s"] == 60.0


@pytest.mark.slow
def test_serve_starts_and_serves_when_redis_does_not_answer(tmp_path):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    port = _free_port()
    proc = subprocess.Popen([SIGNALWISE, "serve", "--port", str(port)], env=_env(tmp_path, url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = value_within(lambda: _health(port), 60, 0.2)
        info = httpx.get(f"http://127.0.0.1:{port}/api/v1/system/info", timeout=10)
        # a wrong key counts against `auth_failure`, in Redis, or in memory while it does not answer
        limited = [httpx.get(f"http://127.0.0.1:{port}/api/v1/keys", headers={"X-API-Key": "not-a-key"},
                             timeout=10).status_code for _ in range(2)]
        health_after = _health(port)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert health and health["status"] == "degraded" and health["checks"]["rate_limits"]["state"] == "unreachable"
    assert info.status_code == 200
    assert limited == [401, 401]  # refused for its wrong key, not for the Redis it cannot reach
    assert health_after["checks"]["rate_limits"]["state"] == "memory-fallback", health_after
    assert err.count(f"warning: Redis at {url} (SIGNALWISE_REDIS_URL) does not answer") == 1, err[-3000:]
    assert "signalwise API on" in out


@pytest.mark.slow
def test_with_the_real_redis_live_starts_as_before(tmp_path):
    why = redis_unavailable_reason(REAL_REDIS)
    if why is not None:
        pytest.skip(why)
    port = _free_port()
    proc = _live(tmp_path, REAL_REDIS, port)
    try:
        health = _health_while_running(port, proc)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "does not answer" not in err and "streams: publishing to Redis failed" not in err, err[-3000:]
    assert health["checks"]["rate_limits"]["state"] == "redis", health
    assert health["checks"]["streams"]["relay"] == "on", health
    assert _run_json(tmp_path)["status"] == "complete"


def test_a_redis_url_without_the_redis_package_is_still_refused(tmp_path):
    """A configuration error, not an outage: one `error:` line naming the extra, exit 1, nothing served."""
    port = _free_port()
    code = ("import sys; sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
            f"sys.argv = ['signalwise', 'serve', '--port', '{port}']\n"
            "from signalwise.cli import main\nmain()\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, REAL_REDIS), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: SIGNALWISE_REDIS_URL names Redis at {REAL_REDIS}, but the redis package is not "
                     "installed (pip install 'signalwise[redis]')"], done.stderr
    assert "signalwise API on" not in done.stdout and time.monotonic() - started < 60
