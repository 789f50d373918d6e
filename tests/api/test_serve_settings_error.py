"""`signalwise serve` refuses a bad SIGNALWISE_* setting in one `error:` line naming the variable (exit 2), with
`--db` as without it, and never prints the value: a nearly right JWT secret is still a secret. As a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.loopback import free_port

SECRET_31 = "ThisIsMyProdSecret-0123456789ab"  # one character short of the 32 it needs

BAD_SETTINGS = {
    "SIGNALWISE_JWT_SECRET": (SECRET_31, "has 31 characters, it needs at least 32"),
    "SIGNALWISE_TOKEN_TTL_S": ("3", "greater than or equal to 30"),
    "SIGNALWISE_FORWARDED_ALLOW_IPS": ("*", "'*' is not an IP address or network"),
}


def _serve(tmp_path: Path, with_db: bool, variable: str, value: str) -> subprocess.CompletedProcess:
    signalwise = str(Path(sys.executable).with_name("signalwise"))
    args = [signalwise, "serve", "--port", str(free_port())]
    if with_db:
        args += ["--db", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWISE_")}
    return subprocess.run(args, cwd=tmp_path, env={**env, variable: value}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("variable", sorted(BAD_SETTINGS))
@pytest.mark.parametrize("with_db", [True, False], ids=["--db", "no --db"])
@pytest.mark.slow
def test_a_bad_setting_is_one_error_line_without_its_value(tmp_path, with_db, variable):
    value, why = BAD_SETTINGS[variable]
    done = _serve(tmp_path, with_db, variable, value)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {variable}: "), done.stderr
    assert why in lines[0]
    if variable == "SIGNALWISE_JWT_SECRET":
        assert SECRET_31 not in done.stderr + done.stdout
    assert "signalwise API on" not in done.stdout  # refused before it serves
