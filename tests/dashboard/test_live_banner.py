"""`signalwise live` names the dashboard's address when it starts: the operator who started it reads where to
open the page (the real command, a short unpaced `single` run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.loopback import free_port


@pytest.mark.slow
def test_the_start_up_banner_gives_the_dashboard_url(tmp_path):
    port = free_port()
    done = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "live", "--scenario", "single", "--speed",
                           "max", "--duration", "20", "--out", str(tmp_path / "runs"), "--port", str(port)],
                          env={**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                               "NO_COLOR": "1", "COLUMNS": "300"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr  # the banner goes to the console (stderr)
    assert f"dashboard: http://127.0.0.1:{port}/," in said, said
