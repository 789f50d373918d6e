"""The command line a run records (run.json's `provenance.command`) keeps no secret: a database URL's password, a
`password=`/`token=` value, an option named for a secret and an API key's secret are written `***`, as `live`
and `serve` print them. Run directories are copied, zipped and attached to reports.

A real `signalwise run` into PostgreSQL (a schema of its own, the password in the URL: the test server trusts
local connections, so the password is sent and not needed), and the redaction of argument lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.databases import isolated_database, postgres_unavailable_reason

from signalwise.provenance import command_line, provenance

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_a_database_password_in_a_url_is_written_as_stars():
    line = command_line(["/usr/bin/signalwise", "run", "--db", "postgresql://postgres:pgs3cret@127.0.0.1:5432/test"])
    assert line == "signalwise run --db 'postgresql://postgres:***@127.0.0.1:5432/test'"
    # a password holding @ is cut at the last @ of the address, not the first
    assert "ss@" not in command_line(["signalwise", "run", "--db=postgresql://u:p@ss@h/db"])
    assert command_line(["signalwise", "run", "--db=postgresql://u:p@ss@h/db"]) == \
        "signalwise run '--db=postgresql://u:***@h/db'"


def test_secret_options_pairs_and_keys_are_written_as_stars():
    argv = ["signalwise", "live", "--camera", "rtsp://admin:cam-pass@10.0.0.5/stream?token=abc123&fps=5",
            "--api-key", "sw_0123456789_AbCdEfGhIjKlMnOp", "--token=eyJhbGciOi.x.y", "--mqtt-key-file", "/etc/k.pem",
            "--password", "hunter2", "redis://:redispw@127.0.0.1:6379/5", "X-API-Key: sw_abcdef0123_secretpart"]
    line = command_line(argv)
    for secret in ("cam-pass", "abc123", "AbCdEfGhIjKlMnOp", "eyJhbGciOi", "hunter2", "redispw", "secretpart"):
        assert secret not in line, (secret, line)
    # what is no secret stays as typed: a key file's path, a key's public id, the hosts
    assert "--mqtt-key-file /etc/k.pem" in line and "sw_abcdef0123_***" in line
    assert "rtsp://admin:***@10.0.0.5/stream?token=***&fps=5" in line
    assert "--password '***'" in line and "'--token=***'" in line
    assert provenance(argv)["command"] == line


def test_a_command_without_secrets_is_kept_as_typed():
    argv = ["signalwise", "run", "--scenario", "single", "--db", "sqlite:///runs/store.db", "--out", "a=b"]
    assert command_line(argv) == "signalwise run --scenario single --db sqlite:///runs/store.db --out a=b"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_into_postgresql_keeps_no_password_in_run_json(tmp_path):
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with isolated_database("postgresql", tmp_path) as url:
        with_password = url.replace("postgresql+psycopg://postgres@", "postgresql+psycopg://postgres:pgs3cret@", 1)
        assert "pgs3cret" in with_password
        out = tmp_path / "runs"
        p = subprocess.run([SIGNALWISE, "run", "--scenario", "single", "--controller", "fixed", "--duration", "60",
                            "--out", str(out), "--db", with_password], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    run_json = next(out.rglob("run.json"))
    assert "pgs3cret" not in run_json.read_text()
    command = json.loads(run_json.read_text())["provenance"]["command"]
    assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/test" in command, command
    leaked = [str(f) for f in out.rglob("*") if f.is_file() and b"pgs3cret" in f.read_bytes()]
    assert leaked == []
