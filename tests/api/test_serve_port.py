"""`signalwise serve` on a port someone else listens on: one error line and exit 1, not uvicorn's log."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from support.loopback import free_port


def test_serve_on_a_port_in_use_says_so_in_one_line_and_exits_1(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "serve", "--port", str(port),
                               "--db", f"sqlite:///{tmp_path / 'api.db'}"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (f"error: cannot listen on 127.0.0.1:{port} for the API: the port is in use "
                                   "(choose another with --port)")
    assert "signalwise API on" not in done.stdout
