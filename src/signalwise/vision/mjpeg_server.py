"""A small MJPEG-over-HTTP server on loopback: a camera stand-in for tests, benchmarks and trying streams.

`MjpegServer(frames, fps).start()` serves `http://127.0.0.1:PORT/stream.mjpg`
(`multipart/x-mixed-replace`, what many IP cameras send); each client gets
the frames in turn at `fps`. `stop()` closes the socket and every client, as
a camera that goes dark; `start()` again on the same port brings it back.
Loopback only: it binds 127.0.0.1.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "signalwiseframe"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MjpegServer:
    def __init__(self, frames: list[np.ndarray], fps: float = 25.0, port: int = 0, quality: int = 80):
        if not frames:
            raise ValueError("an MJPEG server needs at least one frame")
        self._jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]
        self.fps = fps
        self.port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._alive = threading.Event()
        self.clients_served = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path.split("?")[0] != "/stream.mjpg":
                    self.send_error(404)
                    return
                owner.clients_served += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                period = 1.0 / owner.fps
                next_t = time.monotonic()
                try:
                    for jpg in itertools.cycle(owner._jpegs):
                        if not owner._alive.is_set():
                            return
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         f"{len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                        next_t += period
                        delay = next_t - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return

        self._httpd = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._alive.set()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="signalwise-mjpeg", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every client (the camera goes dark)."""
        self._alive.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
