"""Xvfb for tests that render with sumo-gui: installed from Debian when missing, else a skip with the reason."""

from __future__ import annotations

import shutil
import subprocess


def xvfb_unavailable_reason() -> str | None:
    """None when Xvfb is there (installing it with apt-get if we can), else why not."""
    if shutil.which("Xvfb"):
        return None
    if shutil.which("apt-get") is None:
        return "Xvfb is not installed and there is no apt-get to install it (Debian package xvfb)"
    try:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, check=False)
        p = subprocess.run(["apt-get", "install", "-y", "-qq", "xvfb"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not install Xvfb (apt-get install xvfb): {exc}"
    if shutil.which("Xvfb") is None:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"could not install Xvfb (apt-get install xvfb exited {p.returncode}: {tail[0]})"
    return None
