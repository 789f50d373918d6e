"""How many worker processes serve this app, as far as this process can tell.

What lives in one process's memory (camera streams: `routers/cameras.py`) must know whether it is one of several.

- `uvicorn --workers N` (and `uvicorn.run(..., workers=N)`, which `signalwise serve --workers N` calls) starts each
  worker as a `multiprocessing` spawn child whose process object carries uvicorn's `Config`, the worker count in it,
  and the supervisor's own `Process` as its target: read there, it is exact, whatever the environment says.
  `uvicorn --reload` starts its one server the same way with uvicorn's `Server` as its target: one process.
- Otherwise `WEB_CONCURRENCY`: uvicorn and gunicorn take it as their worker count when `--workers` / `-w` is not
  given, and `signalwise serve --workers N` sets it for its workers. A gunicorn worker (forked by its arbiter,
  which leaves nothing in the worker that holds the count) cannot tell `-w N` from one worker: run gunicorn with
  `WEB_CONCURRENCY=N` instead of `-w N` (docs/deployment.md).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
from typing import NamedTuple


class Workers(NamedTuple):
    count: int
    #: how the count is known: `WEB_CONCURRENCY` (it says so, or agrees with uvicorn's: `signalwise serve`),
    #: `uvicorn --workers` or `uvicorn --reload` (uvicorn's own, WEB_CONCURRENCY unset or saying otherwise)
    source: str


def worker_processes() -> Workers:
    """The worker processes serving this app: uvicorn's own count when this is one of its supervised processes,
    else WEB_CONCURRENCY, else 1."""
    try:
        told = max(1, int(os.environ.get("WEB_CONCURRENCY", "1")))
    except ValueError:
        told = 1
    supervised = _uvicorn_supervised()
    if supervised is not None and supervised.count != told:
        return supervised
    return Workers(told, "WEB_CONCURRENCY")


@functools.cache
def _uvicorn_supervised() -> Workers | None:
    """From the spawn child's process object (`uvicorn._subprocess.get_subprocess` passes `config` and `target`):
    fixed for the process's life, so read once. None when this process was not started by uvicorn's supervisors
    (a single uvicorn, a gunicorn worker, a test client, `signalwise live`)."""
    if multiprocessing.parent_process() is None:
        return None
    kwargs = getattr(multiprocessing.current_process(), "_kwargs", None)
    config_module = sys.modules.get("uvicorn.config")
    if not isinstance(kwargs, dict) or config_module is None:
        return None
    config = kwargs.get("config")
    if not isinstance(config, config_module.Config):
        return None
    supervisor = sys.modules.get("uvicorn.supervisors.multiprocess")
    if supervisor is not None and isinstance(getattr(kwargs.get("target"), "__self__", None), supervisor.Process):
        count = max(1, int(getattr(config, "workers", None) or 1))
        return Workers(count, "uvicorn --workers")
    return Workers(1, "uvicorn --reload")  # the reloader's one server process
