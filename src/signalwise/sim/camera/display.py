"""A virtual X display for sumo-gui: rendering needs a screen, a server has none.

We start our own Xvfb (Debian package `xvfb`) rather than borrow the user's
desktop, so a render never opens a window in front of anyone and its frames
do not depend on a window manager.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator


class DisplayUnavailable(RuntimeError):
    """No Xvfb to render into: says how to get one."""


def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


@contextlib.contextmanager
def virtual_display(width_px: int = 1280, height_px: int = 1024) -> Iterator[str]:
    """Start Xvfb on a free display number; yields the DISPLAY value (":N") and stops it on exit."""
    binary = shutil.which("Xvfb")
    if binary is None:
        raise DisplayUnavailable("rendering needs Xvfb, and it is not installed: apt-get install -y xvfb")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([binary, "-displayfd", str(write_fd), "-screen", "0", f"{width_px}x{height_px}x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as fh:
            number = fh.readline().strip()  # Xvfb writes the display number once it accepts clients
        if not number:
            raise DisplayUnavailable(f"Xvfb exited before opening a display (exit code {proc.poll()})")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
