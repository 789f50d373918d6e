"""A `SIGNALWISE_*` variable signalwise does not read (a typo) is ignored by the settings, so `serve` and `live`
warn of it as they start, with the name it was likely meant to be: `SIGNALWISE_DATABSE_URL=…` used to leave the
server on its default database without a word. The real commands, refused afterwards by a port in use on
127.0.0.1 so that they end at once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
WARNING = ("warning: unknown environment variable(s) SIGNALWISE_DATABSE_URL (did you mean SIGNALWISE_DATABASE_URL?), "
           "SIGNALWISE_NOT_A_SETTING: ignored (docs/configuration.md lists the variables signalwise reads)")


def test_every_variable_the_package_reads_is_known():
    """The list is the settings' names and the few read elsewhere: a name the source reads and the list lacks
    would be warned of as unknown."""
    from signalwise.store.settings import known_variables

    read = set()
    for path in (ROOT / "src" / "signalwise").rglob("*.py"):
        read |= set(re.findall(r"SIGNALWISE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    assert read and not read - known_variables(), sorted(read - known_variables())


@pytest.mark.parametrize("command", [["serve"], ["live", "--scenario", "single", "--duration", "10"]])
def test_a_misspelt_variable_is_warned_of_with_the_name_it_meant(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    env.update(SIGNALWISE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
               SIGNALWISE_DATABSE_URL=f"sqlite:///{tmp_path / 'other.sqlite'}", SIGNALWISE_NOT_A_SETTING="1")
    with socket.socket() as taken:  # the port in use ends the command right after its start-up checks
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([SIGNALWISE, *command, "--port", str(port), *(["--out", str(tmp_path / "runs")]
                                                                           if command[0] == "live" else [])],
                              env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert lines.count(WARNING) == 1, done.stderr
    assert lines[-1].startswith("error: cannot listen on 127.0.0.1:"), done.stderr


def test_known_variables_only_say_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    env.update(SIGNALWISE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", SIGNALWISE_LOG_LEVEL="WARNING",
               SIGNALWISE_START_METHOD="forkserver")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([SIGNALWISE, "serve", "--port", str(taken.getsockname()[1])], env=env,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "unknown environment variable" not in done.stderr, done.stderr
