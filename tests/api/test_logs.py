"""Logs an operator can use: every line with time, level and logger (text or JSON lines), an access log,
each refused credential at WARNING by its key's public id, never a key. On a real `signalwise serve`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal

import httpx
import pytest
from support.loopback import free_port, signalwise_serving
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


def _served_log(tmp_path, env: dict, workers: int) -> tuple[str, dict[str, str]]:
    """Start `signalwise serve`, make a good call, a 403, two 401s (a wrong secret for a real id, a stray
    string); its stderr once stopped, and the keys used."""
    url = migrated_sqlite(tmp_path / "logs.db")
    engine = get_engine(url)
    _, reader = create_key(engine, "reader", ["read"])
    wrong = reader.rsplit("_", 1)[0] + "_" + "x" * 43  # the real id with a secret that is not its own
    stray = "not-a-key-but-a-password-someone-pasted"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with signalwise_serving(["serve", "--db", url, "--workers", str(workers), "--host", "0.0.0.0", "--port",
                             str(port)], "/health/live", port, env=env) as proc:
        assert httpx.get(f"{base}/api/v1/system/info", headers={"X-API-Key": reader}).status_code == 200
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": reader}).status_code == 403
        assert httpx.get(f"{base}/api/v1/system/info?x=1", headers={"X-API-Key": wrong}).status_code == 401
        assert httpx.get(f"{base}/api/v1/system/info", headers={"X-API-Key": stray}).status_code == 401
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        err = proc.stderr.read()
    return err, {"reader": reader, "wrong": wrong, "stray": stray}


@pytest.mark.slow
def test_serve_logs_json_lines_from_every_worker_with_access_refusals_and_never_a_key(tmp_path):
    err, keys = _served_log(tmp_path, {"SIGNALWISE_LOG_FORMAT": "json", "SIGNALWISE_JWT_SECRET": "j" * 40}, 2)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert lines, err
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert dt.datetime.fromisoformat(line["time"]).tzinfo is not None
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines too, from workers
    access = [line for line in lines if line["logger"] == "signalwise.access"]
    info = next(line for line in access if line["path"] == "/api/v1/system/info" and line["status"] == 200)
    assert info["level"] == "INFO" and info["caller"] == "reader" and info["method"] == "GET"
    assert not any("?" in line["path"] for line in access)  # never the query (streams carry ?token=)
    refused = [line for line in lines if line["logger"] == "signalwise.api.auth" and line["level"] == "WARNING"]
    key_id = keys["reader"].split("_")[1]
    assert any("refused 403 POST /api/v1/admin/clear-cache" in r["message"] and f"key sw_{key_id}" in r["message"]
               for r in refused), refused
    assert any("refused 401" in r["message"] and f"key sw_{key_id}" in r["message"] for r in refused), refused
    assert any("not a signalwise key" in r["message"] for r in refused), refused
    for name, key in keys.items():
        assert key not in err, name
    assert keys["reader"].split("_", 2)[2] not in err  # nor the secret part


def test_serve_logs_text_lines_with_time_level_and_logger_and_the_access_log_can_be_turned_off(tmp_path):
    env = {"SIGNALWISE_ACCESS_LOG": "off", "SIGNALWISE_LOG_LEVEL": "INFO", "SIGNALWISE_JWT_SECRET": "j" * 40}
    err, keys = _served_log(tmp_path, env, 1)
    lines = [line for line in err.splitlines() if line.strip()]
    stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                         r"[\w.]+: ")
    # the lines `serve` prints itself (the address, the key store) are no log records
    records = [line for line in lines if not line.startswith(("signalwise API on", "API keys:"))]
    assert records and all(stamped.match(line) for line in records), "\n".join(records)
    assert not any(" signalwise.access: " in line for line in records)
    assert any("INFO uvicorn.error: Application startup complete" in line for line in records), records
    assert any("WARNING signalwise.api.auth: refused 401" in line for line in records)
    assert all(key not in err for key in keys.values())


def test_a_public_address_without_a_jwt_secret_is_warned_of(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.api")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_app(Settings(database_url=db, bind_host="0.0.0.0", jwt_secret="kX7#pQ2@vL9!mR4$wT6%zY1^nB8&cD3*"))
    create_app(Settings(database_url=db))  # loopback: tokens of one local process
    assert not [r for r in caplog.records if "SIGNALWISE_JWT_SECRET" in r.getMessage()]
    create_app(Settings(database_url=db, bind_host="0.0.0.0"))
    said = [r.getMessage() for r in caplog.records if "SIGNALWISE_JWT_SECRET" in r.getMessage()]
    assert len(said) == 1 and "listening on 0.0.0.0 without SIGNALWISE_JWT_SECRET" in said[0]


def test_a_short_jwt_secret_is_refused_naming_its_variable():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        Settings(jwt_secret="short")
    assert "SIGNALWISE_JWT_SECRET has 5 characters, it needs at least 32" in str(refused.value)


def test_refused_credentials_past_the_limit_answer_429_and_a_good_key_still_passes(tmp_path):
    from fastapi.testclient import TestClient

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, good = create_key(get_engine(db), "ops", ["admin"])
    app = create_app(Settings(database_url=db, bind_host="0.0.0.0", rate_limits={"auth_failure": "3/minute"}))
    with TestClient(app) as c:
        bad = [c.get("/api/v1/system/info", headers={"X-API-Key": "sw_0000000000_nope"}) for _ in range(4)]
        assert [r.status_code for r in bad] == [401, 401, 401, 429]
        assert int(bad[-1].headers["Retry-After"]) >= 1 and "too many refused credentials" in bad[-1].json()["message"]
        assert c.get("/api/v1/system/info", headers={"X-API-Key": good}).status_code == 200
        assert c.post("/api/v1/auth/token", headers={"X-API-Key": "sw_0000000000_nope"}).status_code == 429


def test_the_access_log_is_on_for_serve_and_off_for_live_unless_asked(monkeypatch):
    """`live` prints to an operator's terminal, which a dashboard polling every few seconds would fill."""
    from signalwise.logs import access_log_on

    monkeypatch.delenv("SIGNALWISE_ACCESS_LOG", raising=False)
    assert access_log_on("serve") and not access_log_on("live")
    monkeypatch.setenv("SIGNALWISE_ACCESS_LOG", "on")
    assert access_log_on("live")
    monkeypatch.setenv("SIGNALWISE_ACCESS_LOG", "off")
    assert not access_log_on("serve")


def test_a_newline_in_a_path_cannot_forge_an_access_log_line(tmp_path, caplog):
    """The access log writes the decoded path; a %0A in it would otherwise end the line and start a forged one."""
    from fastapi.testclient import TestClient

    caplog.set_level(logging.INFO, logger="signalwise.access")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with TestClient(app) as c:
        c.get("/health%0A2026-01-01T00:00:00.000+00:00 WARNING signalwise.api.auth: forged")
    lines = [r.getMessage() for r in caplog.records if r.name == "signalwise.access"]
    assert lines and all("\n" not in line for line in lines), lines
    assert any("/health\\n2026-01-01" in line for line in lines), lines
