"""Fresh processes for simulations, forked from a server that has imported what they run.

libsumo holds one simulation per process, so every run, training episode and
SUMO worker gets a process of its own. Spawning one imports signalwise,
numpy and libsumo again, about 0.5 s: longer than a short episode's
simulation. A fork server (the standard library's `forkserver` start method)
imports them once and forks each child from there. The children still start
clean: no simulation ever runs in the server, and no thread of the caller is
forked.

The server keeps the environment and working directory of the moment it
started; `in_callers_env` sends the caller's current ones with every task,
so a child sees what a spawned one would.

`SIGNALWISE_START_METHOD=spawn` spawns every simulation process instead: for
a platform where the fork server misbehaves, and for `bench/process_start.py`,
which measures what the server saves.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.context import BaseContext

#: imported once in the server; each caller adds the module its children run
PRELOAD = ("numpy", "libsumo", "signalwise.sim.backend")
#: `forkserver` (the default) or `spawn`
START_METHOD_ENV = "SIGNALWISE_START_METHOD"

log = logging.getLogger(__name__)


def fresh_process_context(*modules: str) -> BaseContext:
    """A start method for clean simulation processes: the fork server where the platform has one, else spawn.

    `modules` (the caller's worker module) are imported in the server when
    this call starts it; the server is one per process, so a later caller's
    modules are imported by each child instead, as under spawn.
    """
    wanted = os.environ.get(START_METHOD_ENV, "forkserver")
    if wanted not in ("forkserver", "spawn"):
        log.warning("%s=%r is neither forkserver nor spawn: the fork server is used", START_METHOD_ENV, wanted)
    if wanted == "spawn" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, *modules])
    return ctx


def in_callers_env(fn: Callable) -> Callable:
    """`fn`, to run in a child with this process's current environment variables and working directory."""
    return functools.partial(_call_in, dict(os.environ), os.getcwd(), fn)


def _call_in(env: dict[str, str], cwd: str, fn: Callable, *args, **kwargs):
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    return fn(*args, **kwargs)
