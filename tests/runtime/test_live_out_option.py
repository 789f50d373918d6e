"""`signalwise live --out DIR` where the run's directory cannot be made is refused before the run starts, naming
the option: it came out as `error: [Errno 2] No such file or directory: '/proc/nope'` once the run had started
(root may write everywhere by the permission bits, so only making a directory tells). The real command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("out", "says"), [
    ("/proc/nope", "error: --out /proc/nope: cannot make a directory in /proc: "),
    ("FILE/runs", "error: --out {tmp}/FILE/runs: {tmp}/FILE is not a directory"),
])
def test_an_out_where_no_directory_can_be_made_is_refused_naming_the_option(tmp_path, out, says):
    (tmp_path / "FILE").write_text("a file, not a directory")
    out = out if out.startswith("/") else str(tmp_path / out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    env["SIGNALWISE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    done = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--duration", "10", "--out", out,
                           "--port", str(_free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says.format(tmp=tmp_path)), done.stderr
