"""A real uvicorn serving an app on 127.0.0.1 (a free port), in a thread, for tests that talk HTTP to it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def serving_port(app, *, sndbuf: int | None = None, start_timeout_s: float = 15.0) -> Iterator[int]:
    """Yields the port; the app's streams are closed and the server stopped when the block ends.

    `sndbuf` makes every accepted socket's kernel send buffer small (Linux copies it from the
    listening socket), so a client that stops reading fills the path within seconds, not megabytes.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        streams = getattr(app.state, "streams", None)
        if streams is not None:
            streams.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serving(app, **kw) -> Iterator[str]:
    """As `serving_port`, yielding the base URL (`http://127.0.0.1:PORT`)."""
    with serving_port(app, **kw) as port:
        yield f"http://127.0.0.1:{port}"
