"""What `SIGNALWISE_RATE_LIMITS` names and what each route counts against.

- A route counts against the limit of the scope it needs, its reads included: `GET /api/v1/keys` and
  `GET /api/v1/evidence/access` are `admin` calls, an evidence image an `evidence` one (they were all counted
  as `read`, so with the default table, which has no `read` limit, the admin listings were not limited at all).
- A table that leaves `auth_failure` out keeps the limit on wrong keys (the docs' own example left it out, and
  copying it removed the brute-force limit); only `"auth_failure": null` lifts it.
- An unknown kind, a limit `limits` cannot read, or text that is not JSON stops `signalwise serve` and
  `signalwise live` with one `error:` line (they were taken silently, or a traceback); so does a
  `SIGNALWISE_REDIS_URL` that is not a Redis URL (it was reported as a Redis that "does not answer").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.databases import redis_unavailable_reason
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import SCOPES, create_key

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
DOCS_API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
#: the kinds SIGNALWISE_RATE_LIMITS takes, in the order the refusal of an unknown one lists them
KINDS = ("read", "predict", "feed", "ingest", "operate", "admin", "evidence", "preempt", "auth_failure")
REDIS_DB = 12  # a database of the test Redis nobody else's tests use; this test's keys are removed after it
#: low limits, each its own, so a count that lands in the wrong bucket shows in X-RateLimit-Limit
LOW = {"read": "50/minute", "admin": "3/minute", "evidence": "2/minute"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clear_of_a_minute_boundary(needed_s: float = 10.0) -> None:
    """The sliding-window counter weighs the past minute's hits by how much of it is still in the window: a burst
    across a minute boundary is partly forgotten. Wait, when needed, until `needed_s` fit before the next one."""
    left = 60.0 - time.time() % 60.0
    if left < needed_s:
        time.sleep(left + 0.5)


def _app(tmp_path: Path, **settings):
    url = migrated_sqlite(tmp_path / f"rl-{uuid.uuid4().hex[:8]}.db")
    return create_app(Settings(database_url=url, bind_host="0.0.0.0", **settings)), get_engine(url)


def _burst(c: TestClient, path: str, key: str, n: int) -> list:
    return [c.get(path, headers={"X-API-Key": key}) for _ in range(n)]


def _admin_and_evidence_reads_count_as_theirs(app, engine) -> list[str]:
    """Runs the burst; returns the key ids it counted under (for a shared store to clean)."""
    admin_info, admin = create_key(engine, f"adm-{uuid.uuid4().hex[:8]}", ["admin"])
    ev_info, evidence = create_key(engine, f"ev-{uuid.uuid4().hex[:8]}", ["evidence"])
    _clear_of_a_minute_boundary()
    with TestClient(app) as c:
        # a read first: it counts as `read`, and leaves the admin count alone
        read = c.get("/api/v1/analytics/violations", headers={"X-API-Key": admin})
        assert read.status_code == 200 and read.headers["X-RateLimit-Limit"] == "50", read.text[:300]
        keys = _burst(c, "/api/v1/keys", admin, 3)
        assert [r.status_code for r in keys] == [200, 200, 200]
        assert [r.headers["X-RateLimit-Limit"] for r in keys] == ["3", "3", "3"]
        assert [r.headers["X-RateLimit-Remaining"] for r in keys] == ["2", "1", "0"]
        # the log of who read evidence is an admin read too: the same `admin` count, now spent
        access = c.get("/api/v1/evidence/access", headers={"X-API-Key": admin})
        assert access.status_code == 429, access.text[:300]
        assert access.headers["X-RateLimit-Limit"] == "3"
        assert "for admin calls" in access.json()["message"], access.json()
        # reads are still counted on their own
        assert c.get("/api/v1/analytics/violations", headers={"X-API-Key": admin}).status_code == 200
        # an evidence image (no such violation: 404, counted before the route answers) counts as `evidence`
        images = _burst(c, "/api/v1/evidence/violations/987654", evidence, 3)
        assert [r.status_code for r in images] == [404, 404, 429], [r.text[:200] for r in images]
        assert images[0].headers["X-RateLimit-Limit"] == "2"
        assert "for evidence calls" in images[2].json()["message"]
    return [admin_info.id, ev_info.id]


def test_admin_and_evidence_reads_count_against_their_own_limits_in_memory(tmp_path):
    app, engine = _app(tmp_path, rate_limits=LOW)
    _admin_and_evidence_reads_count_as_theirs(app, engine)


@pytest.mark.redis
def test_admin_and_evidence_reads_count_against_their_own_limits_in_redis(tmp_path):
    reason = redis_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import redis

    app, engine = _app(tmp_path, rate_limits=LOW, redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}")
    assert app.state.rate_limits.where.startswith("Redis at")
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    ids: list[str] = []
    try:
        ids = _admin_and_evidence_reads_count_as_theirs(app, engine)
        assert any(client.scan_iter(match=f"*{ids[0]}*")), "the counts were not kept in Redis"
    finally:
        for key_id in ids:
            for name in client.scan_iter(match=f"*{key_id}*"):
                client.delete(name)
        client.close()


def test_a_redis_socket_url_counts_in_that_redis(tmp_path):
    """`unix://` is a Redis URL the settings take (and the stream fan-out and the check at start): the rate
    limits' store, which `limits` names `redis+unix://`, failed to build from it, so the app did not start."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="swrl", dir="/tmp"))  # a socket path must stay short
    sock = directory / "redis.sock"
    proc = subprocess.Popen([server, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        app, engine = _app(tmp_path, rate_limits={"admin": "3/minute"}, redis_url=f"unix://{sock}?db=3")
        _, admin = create_key(engine, "adm", ["admin"])
        _clear_of_a_minute_boundary()
        with TestClient(app) as c:
            assert [r.status_code for r in _burst(c, "/api/v1/keys", admin, 4)] == [200, 200, 200, 429]
            health = c.get("/health").json()
            assert health["rate_limits"] == "redis", health
        import redis

        counted = redis.Redis(unix_socket_path=str(sock), db=3)
        assert any(counted.scan_iter(match="*admin*")), "the counts were not kept in that Redis"
        counted.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_table_without_auth_failure_keeps_the_limit_on_wrong_keys_and_null_lifts_it(tmp_path):
    _clear_of_a_minute_boundary(15.0)
    kept, _ = _app(tmp_path, rate_limits={"read": "30/minute", "admin": "20/minute"})
    with TestClient(kept) as c:
        codes = [c.get("/api/v1/analytics/violations", headers={"X-API-Key": "sw_0000000000_xxxx"}).status_code
                 for _ in range(61)]
    assert codes == [401] * 60 + [429]
    lifted, _ = _app(tmp_path, rate_limits={"read": "30/minute", "auth_failure": None})
    with TestClient(lifted) as c:
        codes = [c.get("/api/v1/analytics/violations", headers={"X-API-Key": "sw_0000000000_xxxx"}).status_code
                 for _ in range(70)]
    assert codes == [401] * 70


def test_a_table_naming_some_kinds_keeps_the_defaults_of_the_others(tmp_path, monkeypatch):
    """SIGNALWISE_RATE_LIMITS is set over the defaults kind by kind: a table raising the `read` limit replaced the
    whole table, so `admin`, `operate`, `ingest`, `predict` and `feed` lost their limits unnoticed. `null` still
    lifts the one kind it names. Settings read from the environment, as `serve` reads them, on a real server."""
    from support.loopback import serving

    url = migrated_sqlite(tmp_path / "merged.db")
    engine = get_engine(url)
    _, admin = create_key(engine, "adm", ["admin"])
    monkeypatch.setenv("SIGNALWISE_RATE_LIMITS", json.dumps({"read": "3/hour", "operate": None}))
    settings = Settings(database_url=url, bind_host="0.0.0.0")
    assert settings.rate_limits == {"read": "3/hour", "operate": None, "predict": "100/minute",
                                    "feed": "6000/minute", "ingest": "100/minute", "admin": "100/minute",
                                    "auth_failure": "60/minute"}
    import httpx

    with serving(create_app(settings)) as base, httpx.Client(base_url=base, headers={"X-API-Key": admin}) as c:
        read = c.get("/api/v1/analytics/simulations")
        assert (read.status_code, read.headers["X-RateLimit-Limit"]) == (200, "3")
        keys = c.get("/api/v1/keys")  # an admin call: its default limit holds
        assert (keys.status_code, keys.headers["X-RateLimit-Limit"]) == (200, "100"), dict(keys.headers)
        posted = c.post("/api/v1/ingest/batch", content=b"[]", headers={"Content-Type": "application/json"})
        assert posted.headers["X-RateLimit-Limit"] == "100", (posted.status_code, dict(posted.headers))
        # operate set to null: not limited, so no limit headers (counted before the route's 503: no live run)
        override = c.delete("/api/v1/live/override/J1")
        assert override.status_code == 503 and "X-RateLimit-Limit" not in override.headers, dict(override.headers)


def test_the_documented_example_table_names_every_kind_and_is_taken():
    """docs/api.md's example is the one people copy: it left out `auth_failure`."""
    found = re.search(r"SIGNALWISE_RATE_LIMITS='(\{.*\})'", DOCS_API.read_text())
    assert found, "docs/api.md has no SIGNALWISE_RATE_LIMITS example"
    table = json.loads(found.group(1))
    assert set(table) == set(KINDS)
    assert Settings(rate_limits=table).rate_limits == table


def test_every_scope_is_a_kind_of_rate_limit():
    """A route counts against the limit of the scope it needs: a scope with no kind could never be limited."""
    from signalwise.store.settings import RATE_LIMIT_KINDS

    assert tuple(RATE_LIMIT_KINDS) == KINDS and set(SCOPES) <= set(KINDS)


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {key: value for key, value in os.environ.items() if key not in ("SIGNALWISE_REDIS_URL",
                                                                           "SIGNALWISE_RATE_LIMITS")}
    full.update(SIGNALWISE_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}", **env)
    # bounded: each of these is refused before the server starts (an old release started, and ran to the timeout)
    return subprocess.run([SIGNALWISE, "serve", "--port", str(_free_port())], env=full, capture_output=True,
                          text=True, timeout=30)


def _one_error_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert "signalwise API on" not in done.stdout
    return lines[0]


BAD_TABLES = [
    ('{"opreate": "5/minute"}', "error: SIGNALWISE_RATE_LIMITS: unknown kind(s) opreate; known: "
                                + ", ".join(KINDS)),
    ('{"read": "lots"}', "error: SIGNALWISE_RATE_LIMITS: read: couldn't parse rate limit string 'lots'"),
    ("not json", "error: SIGNALWISE_RATE_LIMITS: not valid JSON (Expecting value"),
    ('{"read": "1/second;10/minute"}', "error: SIGNALWISE_RATE_LIMITS: read: '1/second;10/minute' names 2 limits"),
]


@pytest.mark.parametrize(("table", "says"), BAD_TABLES, ids=["unknown-kind", "unreadable-limit", "not-json", "two"])
def test_serve_refuses_a_bad_rate_limit_table_with_one_line(tmp_path, table, says):
    line = _one_error_line(_serve(tmp_path, SIGNALWISE_RATE_LIMITS=table))
    assert line.startswith(says), line


@pytest.mark.parametrize(("table", "says"), BAD_TABLES[:3], ids=["unknown-kind", "unreadable-limit", "not-json"])
def test_live_refuses_a_bad_rate_limit_table_with_one_line_before_the_run(tmp_path, table, says):
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "SIGNALWISE_RATE_LIMITS": table}
    env.pop("SIGNALWISE_REDIS_URL", None)
    done = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--speed", "max", "--duration", "30",
                           "--out", str(tmp_path / "runs"), "--port", str(_free_port())],
                          env=env, capture_output=True, text=True, timeout=60)
    assert _one_error_line(done).startswith(says)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "http://someone:s3cret@127.0.0.1:6379/0", "127.0.0.1:6379"])
def test_serve_says_a_url_that_is_not_redis_is_not_a_redis_url(tmp_path, url):
    line = _one_error_line(_serve(tmp_path, SIGNALWISE_REDIS_URL=url))
    shown = url.replace("s3cret", "***")
    assert line == f"error: SIGNALWISE_REDIS_URL: {shown} is not a Redis URL (redis://, rediss:// or unix://)", line
    assert "s3cret" not in line
