"""Xvfb for tests that render with sumo-gui: installed from Debian when missing, else a skip with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.debian import install


def xvfb_unavailable_reason() -> str | None:
    """None when Xvfb is there (installing Debian's xvfb if we can), else why not."""
    if shutil.which("Xvfb"):
        return None
    return install(["xvfb"], Path("/usr/bin/Xvfb"))
