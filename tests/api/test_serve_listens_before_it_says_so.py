"""`signalwise serve` prints its address only once the socket listens.

The trial: under load, `signalwise API on http://127.0.0.1:8732` came 12 to 24 s before uvicorn listened, and a
page opened in that window got the browser's connection-refused page. Here a real `signalwise serve` is
connected to the moment its banner is read: the connection is taken (it waits in the socket's queue while the
app loads), and the first request on it is answered.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.loopback import free_port


@pytest.mark.slow
def test_the_address_is_announced_once_it_takes_connections(tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("signalwise")), "serve", "--port", str(port),
                             "--db", f"sqlite:///{tmp_path / 'api.db'}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"signalwise API on http://127.0.0.1:{port}"), line
        # at once: no wait, no retry
        with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130, -signal.SIGINT), proc.returncode  # Ctrl-C: as uvicorn.run ends
