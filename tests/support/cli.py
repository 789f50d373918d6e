"""`signalwise ARGS` run inside the test's own process, for tests about what a command says and does rather than
about its process.

A `signalwise` process spends about a second importing SQLAlchemy, the store's tables, numpy and Typer before
it reads its arguments; here those imports are paid once per test worker. The same entry point
(`signalwise.cli.main`, with its one-line error handling) runs with the `sys.argv`, environment, working
directory, standard streams and logging of a process of its own, and the answer has the shape `subprocess.run`
gives. What stays a real process: anything about signals, exit on kill, what a process imports, output written
by C++ (libsumo, OpenCV) or by child processes, and commands that start worker processes or SUMO (a
forkserver keeps the environment it started with, so a later test's environment would not reach them; libsumo
is one simulation per process), refusals made after SUMO has probed the network included.

Shared with the test, unlike a process: a database engine the test already holds open is the command's too
(a process would open its own and check its revision), every command module the test imported is registered
(tests/test_cli_help.py runs `signalwise X` as a process to see that X loads only its own), and a write hook a
served app set in this process sees the command's writes.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def _environment(env: dict[str, str] | None, unset: tuple[str, ...]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in unset:
            os.environ.pop(key, None)
        os.environ.update(env or {})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _process_logging() -> Iterator[None]:
    """No handler on the root logger, as in a `signalwise` process: warnings reach stderr through logging's
    last resort. pytest's log capture is taken off for the call and put back after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


@contextlib.contextmanager
def _process_warnings() -> Iterator[None]:
    """Python's default warning filters, each warning printed to stderr as a process prints it (pytest would
    otherwise record it for its own summary, and a test counting stderr lines would miss it)."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")

        def show(message, category, filename, lineno, file=None, line=None):
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _working_directory(cwd: str | Path | None) -> Iterator[None]:
    saved = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved)


def _text_stream() -> io.TextIOWrapper:
    # a buffer underneath, as a process's streams have: some commands write bytes to sys.stdout.buffer
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", newline=None, write_through=True)
    stream.mode = "w"  # type: ignore[misc]  # rich and click look at it
    return stream


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    # as `text=True` reads a pipe: universal newlines
    return stream.buffer.getvalue().decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _exit_code(exc: SystemExit, stderr: io.TextIOWrapper) -> int:
    """What the interpreter makes of SystemExit: None is 0, a number is itself, anything else is printed and 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    stderr.write(f"{exc.code}\n")
    return 1


def signalwise(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
               cwd: str | Path | None = None, stdin: str = "", timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """Run `signalwise ARGS` here; `env` is added to this process's environment and `unset` taken from it.

    A command still running after `timeout_s` ends the test worker with every thread's traceback (a hang
    fails the suite rather than stalling it, as `subprocess.run`'s timeout would)."""
    from signalwise.cli import main

    stdout, stderr = _text_stream(), _text_stream()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_argv = sys.argv
    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    opened_before = _open_databases()
    code = 0
    faulthandler.dump_traceback_later(timeout_s, exit=True, file=sys.__stderr__)
    with _environment(env, unset), _working_directory(cwd), _process_logging(), _process_warnings():
        sys.argv = ["signalwise", *args]
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), stdout, stderr
        try:
            main()
        except SystemExit as exc:
            code = _exit_code(exc, stderr)
        except Exception:  # noqa: BLE001 - a process would print the traceback and exit 1; so does this
            traceback.print_exc(file=stderr)
            code = 1
        finally:
            faulthandler.cancel_dump_traceback_later()
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            sys.argv = saved_argv
            for s, handler in saved_handlers.items():
                signal.signal(s, handler)
            _close_databases(opened_before)
    return subprocess.CompletedProcess(["signalwise", *args], code, _read(stdout), _read(stderr))


def in_a_process(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
                 cwd: str | Path | None = None, timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """The same command as `signalwise`, with the same arguments, in a process of its own."""
    environment = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
    return subprocess.run([str(Path(sys.executable).with_name("signalwise")), *args], capture_output=True,
                          text=True, env=environment, cwd=cwd, timeout=timeout_s)


def _open_databases() -> set[str]:
    engine = sys.modules.get("signalwise.store.engine")
    return set() if engine is None else set(engine._engines)


def _close_databases(opened_before: set[str]) -> None:
    """A process's end closes the database connections it opened; those the test held open before stay."""
    engine = sys.modules.get("signalwise.store.engine")
    for url in _open_databases() - opened_before:
        engine.dispose_engines(url)


def stop_if_running(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """End a command a test left running (its own run failed, or it hangs): Ctrl-C first, so it shuts down what
    it started (a local Ray, say), then a kill after `grace_s`. Its output is read, so pipes never block it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
