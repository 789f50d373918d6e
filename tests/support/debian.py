"""Debian packages a test needs (Chromium, Xvfb), installed on first use: one apt-get at a time on the machine.

apt-get holds dpkg's lock while it runs, so a second one started by another pytest-xdist worker fails at
once ("Unable to acquire the dpkg frontend lock") and its tests would skip on a machine that can run them.
Every installer here takes the same file lock first and looks again once it has it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

LOCK = Path("/tmp/signalwise-apt-get.lock")


def install(packages: list[str], needed: Path) -> str | None:
    """Install `packages` unless `needed` (a file they bring) exists; None when it exists, else why not."""
    if needed.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{needed} is missing and there is no apt-get to install it (Debian: {' '.join(packages)})"
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer on the machine; the others wait, then look again
        if needed.exists():
            return None
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"`{' '.join(cmd)}` failed: {exc}"
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                return f"`{' '.join(cmd)}` exited {done.returncode}: {tail[0]}"
    return None if needed.exists() else f"apt-get installed {' '.join(packages)} but {needed} is missing"
