"""`X-Forwarded-For` names the client only when it comes from a proxy listed in SIGNALWISE_FORWARDED_ALLOW_IPS:
otherwise any local process (or a proxy passing a client's header through) could write any address into the
logs and the evidence access log, and leave every per-address limit. On a real `signalwise serve`, and on the
API `signalwise live` serves (its `_serve`)."""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
from support.loopback import free_port, signalwise_serving
from test_streams import _FakeRuntime  # the stand-in runtime of the stream tests

from signalwise.api.live_command import _serve

FORGED = "203.0.113.77"
BAD_KEY = "sw_0123456789_" + "x" * 43  # refused: counts against its client address (`auth_failure`)
#: refusals an hour per client address, low so the test reaches it fast; an hour's window, as a minute's was
#: crossed now and then by five calls on a loaded machine, whose sliding count then let the fourth through
LIMITS = {"SIGNALWISE_RATE_LIMITS": json.dumps({"auth_failure": "3/hour"}), "SIGNALWISE_JWT_SECRET": "j" * 40}


def _refused_from_rotating_addresses(base: str, n: int = 5) -> list[int]:
    """Status of `n` calls with a bad key, each naming another client address in X-Forwarded-For."""
    return [httpx.get(f"{base}/api/v1/system/info",
                      headers={"X-API-Key": BAD_KEY, "X-Forwarded-For": f"10.9.0.{i}"}).status_code
            for i in range(1, n + 1)]


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"], ids=["default", "proxy-on-127.0.0.1"])
@pytest.mark.slow
def test_serve_believes_x_forwarded_for_only_from_a_listed_proxy(tmp_path, trusted):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**LIMITS, **({"SIGNALWISE_FORWARDED_ALLOW_IPS": trusted} if trusted else {})}
    args = ["serve", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", "--port", str(port)]
    with signalwise_serving(args, "/health/live", port, env=env) as proc:
        assert httpx.get(f"{base}/api/v1/system/info", headers={"X-Forwarded-For": FORGED}).status_code == 200
        statuses = _refused_from_rotating_addresses(base)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        err = proc.stderr.read()
    access = [line for line in err.splitlines() if "signalwise.access: " in line and "/system/info 200 " in line]
    assert len(access) == 1, err
    if trusted:
        assert f"signalwise.access: {FORGED} GET /api/v1/system/info 200" in access[0]
        assert statuses == [401] * 5  # each address has its own count
    else:
        assert "signalwise.access: 127.0.0.1 GET /api/v1/system/info 200" in access[0]
        assert FORGED not in err
        assert statuses == [401, 401, 401, 429, 429]  # one client, 127.0.0.1, past its 3 refusals


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"], ids=["default", "proxy-on-127.0.0.1"])
def test_live_believes_x_forwarded_for_only_from_a_listed_proxy(tmp_path, monkeypatch, trusted):
    for name, value in {**LIMITS, **({"SIGNALWISE_FORWARDED_ALLOW_IPS": trusted} if trusted else {})}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # the embedded database of `--db default`, were it asked, lands here
    runtime = _FakeRuntime()
    runtime.feed = None
    port = free_port()
    server, thread = _serve(runtime, "127.0.0.1", port, None)
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            thread.join(0.02)
        statuses = _refused_from_rotating_addresses(f"http://127.0.0.1:{port}")
    finally:
        server.config.app.state.streams.close()
        server.should_exit = True
        thread.join(timeout=10)
    assert statuses == ([401] * 5 if trusted else [401, 401, 401, 429, 429])
