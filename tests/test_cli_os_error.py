"""An OSError no command caught (here a refused connection, which names no file) is one `error:` line saying where
in signalwise it happened and how to see the traceback, and SIGNALWISE_LOG_LEVEL=DEBUG logs that traceback. It
used to be the bare `error: Connection refused`, even with DEBUG.

The real `signalwise live`, whose SUMO worker process is started through multiprocessing's fork server: the
connection to the fork server goes to a port on 127.0.0.1 where nothing listens, as when that server has died
(seen running as a user who could not read the interpreter)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

#: the fork server's connection, made to a closed loopback port: a real ConnectionRefusedError, no filename
REFUSED_LIVE = """
import socket, sys
import multiprocessing.forkserver as forkserver

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

def refused(fds):
    socket.create_connection(("127.0.0.1", port), timeout=5)

forkserver.connect_to_new_process = refused
sys.argv = ["signalwise", "live", "--scenario", "single", "--duration", "10", "--speed", "max",
            "--port", sys.argv[1], "--out", sys.argv[2]]
from signalwise.cli import main
main()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refused_live(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    base.update(SIGNALWISE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", **env)
    return subprocess.run([sys.executable, "-c", REFUSED_LIVE, str(_free_port()), str(tmp_path / "runs")],
                          env=base, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_refused_connection_says_where_and_how_to_see_the_traceback(tmp_path):
    done = _refused_live(tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Connection refused (ConnectionRefusedError at signalwise/sim/worker.py:"), line
    assert "proc.start()" in line and line.endswith("SIGNALWISE_LOG_LEVEL=DEBUG logs the traceback"), line
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_debug_logs_the_traceback(tmp_path):
    done = _refused_live(tmp_path, SIGNALWISE_LOG_LEVEL="DEBUG")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "DEBUG signalwise.cli: the command ended on this error" in done.stderr, done.stderr[-3000:]
    assert "Traceback (most recent call last)" in done.stderr and "connect_to_new_process" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: Connection refused (")
