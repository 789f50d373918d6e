"""SIGTERM stops a run the way Ctrl-C does.

`docker stop`, systemd and Kubernetes stop a process with SIGTERM, whose
default action ends it on the spot: no evidence flushed, `run.json` left at
`running`, a run directory that looks like a crash (and a container's PID 1
has no default action at all, so it would wait for SIGKILL). Inside
`sigterm_as_interrupt()` SIGTERM raises `Terminated`, a KeyboardInterrupt, so
every path written for Ctrl-C handles it too, and `stop_reason` tells the two apart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator


class Terminated(KeyboardInterrupt):
    """A termination signal arrived: stop as on Ctrl-C."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_reason(exc: BaseException) -> str:
    """What a run directory says stopped the run: `terminated (SIGTERM)`, or Ctrl-C's `interrupted`."""
    if isinstance(exc, Terminated):
        return f"terminated ({signal.Signals(exc.signum).name})"
    return "interrupted"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises `Terminated` once; the previous handler is restored on leaving.

    Only the main thread may set handlers; elsewhere this does nothing. A second SIGTERM while the
    first is being handled is ignored, so it cannot cut the evidence flush short (SIGKILL still can).
    """
    raised = False
    owner_pid = os.getpid()

    def on_sigterm(signum, frame) -> None:
        nonlocal raised
        if _died_in_a_forked_child(owner_pid, signum):
            return
        if not raised:
            raised = True
            raise Terminated(signum)

    with _handling({signal.SIGTERM: on_sigterm}):
        yield


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """While active, Ctrl-C and SIGTERM are ignored: the flush a first one started is not cut short by a
    second (a terminal's repeated Ctrl-C, `timeout` signalling the child and then its group). SIGKILL still
    ends the process. Only the main thread may set handlers; elsewhere this does nothing."""
    with _handling({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN}):
        yield


class SignalFlag:
    """A flag a signal handler sets and the main thread waits on, with no lock.

    `threading.Event` takes a lock in `set` and in `wait`. A handler runs in the main thread between two
    bytecodes, so it can land while that same thread holds the Event's lock inside `wait`: its `set` then
    waits for ever on a lock its own thread holds. The next signal interrupts that wait and nests another
    handler doing the same, until the recursion limit (a `live` run pressed with Ctrl-C every 20 ms while it
    stopped died so, its run.json left `running`). Setting an attribute needs no lock; `wait` polls.
    """

    POLL_S = 0.01

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout_s: float) -> bool:
        """Whether the flag was set within `timeout_s` (it returns as soon as it is, within POLL_S)."""
        deadline = time.monotonic() + timeout_s
        while not self._set:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(self.POLL_S, left))
        return self._set


class StopOnce:
    """Ctrl-C and SIGTERM for a command that stops once (`signalwise live`).

    While active, the first Ctrl-C or SIGTERM stops the work as in `sigterm_as_interrupt` (KeyboardInterrupt,
    or `Terminated`), unless `ended()` says it has already ended; every later one, and any after the end, only
    sets `hurry`. So a user pressing Ctrl-C again, or `timeout` signalling the child and then its group, cannot
    cut short the flush and close the first one began, at any moment of it, and what merely waits (for the
    pages' last look) sees `hurry` and stops waiting. A forked child that inherited the handler dies of the
    signal as before. Only the main thread may set handlers; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.hurry = SignalFlag()
        self.ended: Callable[[], bool] = lambda: False
        #: the first stop, kept while `deferred()` was active instead of raised (None: none came then)
        self.requested: KeyboardInterrupt | None = None
        self._deferring = False
        self._raised = False
        self._owner_pid = os.getpid()
        self._handlers: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def deferred(self) -> Iterator[StopOnce]:
        """While active, the first Ctrl-C or SIGTERM is kept in `requested` instead of raised, for the caller to
        act on where it can stop cleanly: a live run starting (its lock taken, its simulator, API and feeds
        starting) stops once it has started, with its run directory complete, rather than being cut at
        whatever line the signal landed on. A later one still only sets `hurry`."""
        self._deferring = True
        try:
            yield self
        finally:
            self._deferring = False

    def _on_signal(self, signum, frame) -> None:
        if _died_in_a_forked_child(self._owner_pid, signum):
            return
        if self._raised or self.ended():
            self.hurry.set()
            return
        self._raised = True
        stop = Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt()
        if self._deferring:
            self.requested = stop
            return
        raise stop

    def __enter__(self) -> StopOnce:
        self._handlers = contextlib.ExitStack()
        self._handlers.enter_context(_handling({signal.SIGINT: self._on_signal, signal.SIGTERM: self._on_signal}))
        return self

    def __exit__(self, *exc) -> None:
        self._handlers.close()


def _died_in_a_forked_child(owner_pid: int, signum: int) -> bool:
    """In a forked child (evidence replay, audit) that inherited a handler of `owner_pid`'s, die of the signal as
    a process without the handler would (True: never returns there); in the owner, False."""
    if os.getpid() == owner_pid:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


@contextlib.contextmanager
def _handling(handlers: dict) -> Iterator[None]:
    """`handlers` (signal -> handler) while active, the previous ones back on leaving. Only the main thread may
    set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s, handler in handlers.items()}
    try:
        yield
    finally:  # None: a handler not set from Python, which cannot be put back; the default is the closest
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
