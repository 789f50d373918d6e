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


@contextlib.contextmanager
def serving_live(settings, run_dir, *, in_process: bool = True, timeout_s: float = 20.0, cfg=None,
                 speed: float = 10.0, headers: dict | None = None, app=None):
    """A real uvicorn serving the app with a live run attached and ticking (`cfg`, default `single`; `speed`
    simulated seconds a second); yields (httpx client on its base URL, sending `headers`, the runtime); the run is
    stopped and its loop joined after. `in_process=False`: SUMO in a process of its own; `app`: one made by the
    caller (`create_app(settings)`), to look at its state while it serves."""
    import httpx

    from signalwise.api import create_app
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    app = create_app(settings) if app is None else app
    rt = LiveRuntime(cfg or RunConfig(scenario="single"),
                     LiveOptions(speed=speed, duration_s=3600, in_process=in_process), run_dir)
    rt.open()
    app.state.live = rt
    loop = threading.Thread(target=rt.run, name="live-loop", daemon=True)
    loop.start()
    try:
        with serving_port(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                                     timeout=timeout_s) as client:
            yield client, rt
    finally:
        rt.stop()
        loop.join(timeout=20)
        assert not loop.is_alive(), "the live loop did not stop"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def signalwise_serving(args: list[str], ready_path: str, port: int, *, env: dict | None = None, cwd=None,
                       start_timeout_s: float = 60.0, stderr=None) -> Iterator:
    """`signalwise ARGS` (a command that serves the API on `port`: `live`, `serve`) as an operator starts it;
    yields the process once `ready_path` answers 200, and kills it if the block leaves it running. Its stderr is a
    pipe unless `stderr` (a file) is given: a command kept across tests may write more than a pipe holds."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    command = [str(Path(sys.executable).with_name("signalwise")), *args]
    # its own process group: `serve --workers N` forks uvicorn workers, which a kill of the command alone left
    # running (orphans serving on the port after the test)
    proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if stderr is None else stderr, text=True, start_new_session=True)
    # one client for the whole poll: `httpx.get` builds a TLS context per call, about 50 ms of CPU each
    client = httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=0))
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, f"signalwise {args[0]} did not serve"
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://127.0.0.1:{port}{ready_path}").status_code == 200:
                    break
            time.sleep(0.2)
        client.close()
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):  # the command and whatever it started
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
