"""sumo-gui as a camera: start it on a display, take a screenshot every step, read the frames back.

TraCI (not libsumo: libsumo has no GUI) asks for `gui.screenshot` before each
`simulationStep`; sumo-gui draws the network once that step has moved every
vehicle, so the file asked for before step k shows the simulation at the time
step k returns, and it is on disk when the step returns (or a few
milliseconds later: we wait for the BMP header's size to match). BMP, not
PNG: sumo-gui writes it 30 % faster and reading it needs no decompression.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ..sumo_home import sumo_binary

VIEW_ID = "View #0"
#: the display scheme: asphalt, grass, markings; vehicles drawn in their own colour
SCHEME = "real world"


class RenderError(RuntimeError):
    """sumo-gui could not render, or its frames do not line up with the simulation: says which."""


def start_sumo_gui(sumo_args: list[str], display: str, window_px: tuple[int, int], log_path: Path) -> tuple[
        subprocess.Popen, int]:
    """Start sumo-gui serving TraCI on a free port; returns the process and the port."""
    from sumolib.miscutils import getFreeSocketPort

    port = getFreeSocketPort()
    settings = Path(tempfile.mkdtemp(prefix="signalwise-gui-")) / "view.xml"
    settings.write_text(f'<viewsettings><scheme name="{SCHEME}"/><delay value="0"/></viewsettings>\n')
    cmd = [sumo_binary("sumo-gui"), *sumo_args, "--remote-port", str(port), "--start", "--quit-on-end",
           "--window-size", f"{window_px[0]},{window_px[1]}", "--window-pos", "0,0",
           "--gui-settings-file", str(settings)]
    log = open(log_path, "w")  # noqa: SIM115 - kept open for the process's life, closed by stop_sumo_gui
    proc = subprocess.Popen(cmd, env={**os.environ, "DISPLAY": display}, stdout=log, stderr=subprocess.STDOUT)
    proc.log_file = log  # type: ignore[attr-defined]
    return proc, port


def stop_sumo_gui(proc: subprocess.Popen) -> None:
    with contextlib.suppress(Exception):
        proc.terminate()
        proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with contextlib.suppress(Exception):
        proc.log_file.close()  # type: ignore[attr-defined]


def connect(port: int, proc: subprocess.Popen):
    """A TraCI connection to the sumo-gui just started (it takes a few seconds to load the network).

    SUMO accepts exactly one client, so we cannot probe the port first; TraCI's
    own retries print a line per attempt, which we keep off the user's terminal.
    """
    import io

    import traci

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return traci.connect(port, numRetries=120, proc=proc, waitBetweenRetries=0.5)
        except Exception as exc:  # traci raises FatalTraCIError or OSError
            raise RenderError(f"could not connect to sumo-gui (exit code {proc.poll()}): {exc}; see its log") from None


class Screenshots:
    """Ask sumo-gui for one frame per step and hand the frames back as BGR arrays."""

    def __init__(self, api, width_px: int, height_px: int, directory: Path | None = None):
        self.api = api
        self.width_px = width_px
        self.height_px = height_px
        # frames go through memory when /dev/shm exists: 2 MB a frame, 20 frames a second
        base = directory or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
        self._dir = Path(tempfile.mkdtemp(prefix="signalwise-frames-", dir=base))
        self._pending: Path | None = None
        self._k = 0

    def request(self) -> None:
        """Ask for the frame that the next `simulationStep` will show."""
        self._k += 1
        path = self._dir / f"f{self._k % 2}.bmp"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.api.gui.screenshot(VIEW_ID, str(path), self.width_px, self.height_px)
        self._pending = path

    def collect(self, timeout_s: float = 10.0) -> np.ndarray:
        """The frame asked for before the last step, once sumo-gui has written it whole."""
        import cv2

        path, self._pending = self._pending, None
        if path is None:
            raise RenderError("no frame was asked for before this step")
        deadline = time.monotonic() + timeout_s
        while not _complete_bmp(path):
            if time.monotonic() > deadline:
                raise RenderError(f"sumo-gui wrote no frame to {path} within {timeout_s:g} s")
            time.sleep(0.001)
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        path.unlink()
        if frame is None or frame.shape[:2] != (self.height_px, self.width_px):
            got = "unreadable" if frame is None else f"{frame.shape[1]}x{frame.shape[0]}"
            raise RenderError(f"sumo-gui's frame is {got}, not {self.width_px}x{self.height_px}")
        return frame

    def close(self) -> None:
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)


def _complete_bmp(path: Path) -> bool:
    """Whether a BMP file is all there: its header names its own size."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(6)
        return len(header) == 6 and header[:2] == b"BM" and struct.unpack("<I", header[2:6])[0] == path.stat().st_size
    except FileNotFoundError:
        return False
