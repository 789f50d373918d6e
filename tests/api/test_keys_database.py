"""Keys live in the database the server uses (its --db, else SIGNALWISE_DATABASE_URL, else signalwise.db here).

An operator made a key with `signalwise keys create` (so into sqlite:///signalwise.db) and started
`signalwise live --db postgresql://…`: every call got `401 unknown or wrong API key`, and nothing said
which database was checked. A key made in another database is still refused; what changed is that the
servers say at start-up where they check keys (the password masked) and how many are active, warn
with the command that makes one there when there are none, the `keys` commands repeat the --db they were
given, and the 401 tells the caller where keys come from without naming the database.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from support.loopback import free_port
from typer.testing import CliRunner

from signalwise.cli import app
from signalwise.store import Settings, get_engine

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _create_key(db: str, name: str = "ops") -> str:
    result = CliRunner().invoke(app, ["keys", "create", "--name", name, "--scope", "operate", "--scope", "read",
                                      "--scope", "ingest", "--db", db])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[0]


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited early: {proc.stderr.read()[-2000:]}")
        try:
            status = httpx.get(url, timeout=2)
            if status.status_code == 200 and status.json().get("running", True):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{url} did not answer in {timeout_s:g} s")


def _refused_as_unknown(response: httpx.Response, *secrets: str) -> None:
    assert response.status_code == 401, response.text
    message = response.json()["message"]
    assert message.startswith("unknown or wrong API key; keys are checked in this server's own database")
    assert "signalwise keys list --db URL" in message
    for secret in secrets:  # an unauthenticated caller learns nothing of where the database is
        assert secret not in response.text


@pytest.mark.slow
def test_live_checks_keys_in_its_db_and_says_so_at_start(db_url, tmp_path):
    elsewhere = f"sqlite:///{tmp_path / 'signalwise.db'}"  # where `keys create` without --db would have put it
    foreign = _create_key(elsewhere)
    port = free_port()
    proc = subprocess.Popen([SIGNALWISE, "live", "--scenario", "single", "--port", str(port), "--out",
                             str(tmp_path / "runs"), "--db", db_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/v1/live/status", proc)
        r = httpx.get(f"{base}/api/v1/live/status", headers={"X-API-Key": foreign}, timeout=5)
        _refused_as_unknown(r, str(tmp_path), make_url(db_url).host or "sqlite", "store.db")
        own = _create_key(db_url)  # made for the server's database while it runs: accepted at once
        assert httpx.get(f"{base}/api/v1/live/status", headers={"X-API-Key": own}, timeout=5).status_code == 200
    finally:
        _, err = _stop(proc)
    lines = [" ".join(line.split()) for line in err.splitlines()]
    [count] = [line for line in lines if line.startswith("API keys: checked in")]
    assert count == f"API keys: checked in {_masked(db_url)} (--db): 0 active", err
    [warning] = [line for line in lines if line.startswith("warning: no active API key")]
    assert "on 127.0.0.1 (loopback) `read` routes are open without a key" in warning
    assert warning.endswith("create one there: signalwise keys create --name ops --scope operate --scope read "
                            f"--db {shlex.quote(_masked(db_url))}"), warning


@pytest.mark.slow
def test_serve_away_from_loopback_names_its_db_and_refuses_a_key_of_another(db_url, tmp_path):
    foreign = _create_key(f"sqlite:///{tmp_path / 'other.db'}")
    port = free_port()
    proc = subprocess.Popen([SIGNALWISE, "serve", "--host", "0.0.0.0", "--port", str(port), "--db", db_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", proc)
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/analytics/speeds", headers={"X-API-Key": foreign}, timeout=5)
        _refused_as_unknown(r, str(tmp_path), "other.db")
    finally:
        out, err = _stop(proc)
    assert f"API keys: checked in {_masked(db_url)} (--db): 0 active" in out.splitlines(), out
    [warning] = [line for line in err.splitlines() if line.startswith("warning: no active API key")]
    assert "on 0.0.0.0 every /api/v1 call is refused with 401" in warning
    assert warning.endswith(f"--db {shlex.quote(_masked(db_url))}"), warning


def test_the_startup_line_masks_the_password_and_counts_active_keys(db_url):
    from signalwise.store.key_commands import create_command, key_store_lines

    _create_key(db_url)
    [line] = key_store_lines(Settings(database_url=db_url), db_url)
    assert line == (f"API keys: checked in {_masked(db_url)} (--db): 1 active", False)
    away = "postgresql://signal:s3cret@127.0.0.1:1/city"  # nobody listens on port 1
    [(line, warning)] = key_store_lines(Settings(database_url=away), away)
    assert warning and line.startswith("API keys: checked in postgresql://signal:***@127.0.0.1:1/city (--db), "
                                       "which cannot be read now: "), line
    assert "s3cret" not in line
    command = create_command(away)
    assert "s3cret" not in command and "--db 'postgresql://signal:***@127.0.0.1:1/city'" in command


def test_keys_list_and_create_repeat_the_db_they_were_given(db_url, tmp_path, monkeypatch):
    get_engine(db_url)  # an empty database (for SQLite, the file `keys list` reads)
    monkeypatch.delenv("SIGNALWISE_DATABASE_URL", raising=False)
    listed = CliRunner().invoke(app, ["keys", "list", "--db", db_url])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.strip() == (f"no API keys in {_masked(db_url)} (--db) yet: signalwise keys create --name NAME --scope read "
                                       f"--db {shlex.quote(_masked(db_url))}")
    created = CliRunner().invoke(app, ["keys", "create", "--name", "ops", "--scope", "read", "--db", db_url])
    assert created.exit_code == 0, created.output
    assert f"only a server using this database accepts it (signalwise serve / live --db " \
           f"{shlex.quote(_masked(db_url))})" in created.stderr

    other = f"sqlite:///{tmp_path / 'env.db'}"
    get_engine(other)
    monkeypatch.setenv("SIGNALWISE_DATABASE_URL", other)
    listed = CliRunner().invoke(app, ["keys", "list"])
    assert listed.stdout.strip() == (f"no API keys in {other} (SIGNALWISE_DATABASE_URL) yet: signalwise keys "
                                     "create --name NAME --scope read (with SIGNALWISE_DATABASE_URL set as here)")
    assert os.environ["SIGNALWISE_DATABASE_URL"] == other
