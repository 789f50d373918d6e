"""`--insecure-no-auth` (every route open, changes included, without a key) runs on a loopback address only: on any
other `--host` `signalwise live` and `signalwise serve` refuse it with one `error:` line and exit 2, before anything
starts; `SIGNALWISE_INSECURE_NO_AUTH` is refused on `serve` the same way. Their help said "never on a network",
but a street system's `live --host 0.0.0.0 --insecure-no-auth` only warned and let anyone on the LAN hold phases
and change the timing. The shipped deployment does not use it (checked here, as it would then refuse to start)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support.cli import in_a_process, signalwise

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused(done, given_as: str, host: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {given_as} opens every route, changes included, without a key: it is refused on --host {host}, "
        "which other machines can reach; use it on a loopback --host only (127.0.0.1, ::1, localhost), and on a "
        "network give each operator a key (signalwise keys create --name NAME --scope operate)"), done.stderr
    assert "warning: --insecure-no-auth" not in done.stderr  # refused, not warned about and run


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_live_refuses_insecure_no_auth_off_loopback(tmp_path, host):
    port = _free_port()
    done = signalwise("live", "-s", "single", "--duration", "3", "--host", host, "--port", str(port),
                      "--insecure-no-auth", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    _refused(done, "--insecure-no-auth", host)
    assert not (tmp_path / "runs").exists(), "refused before anything was made"
    with socket.socket() as s:  # nothing listens on the port it was given
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_insecure_no_auth_off_loopback_as_option_and_as_variable(tmp_path):
    db = f"sqlite:///{tmp_path / 'api.db'}"
    common = ["serve", "--host", "0.0.0.0", "--port", str(_free_port()), "--db", db]
    _refused(in_a_process(*common, "--insecure-no-auth", cwd=tmp_path, timeout_s=60), "--insecure-no-auth", "0.0.0.0")
    _refused(in_a_process(*common, env={"SIGNALWISE_INSECURE_NO_AUTH": "true"}, cwd=tmp_path, timeout_s=60),
             "SIGNALWISE_INSECURE_NO_AUTH", "0.0.0.0")
    assert not (tmp_path / "api.db").exists(), "refused before the database was touched"


def test_the_shipped_deployment_does_not_rely_on_it():
    for name in ("compose.yaml", "Dockerfile"):
        text = (ROOT / name).read_text()
        assert "insecure-no-auth" not in text and "INSECURE_NO_AUTH" not in text, name
