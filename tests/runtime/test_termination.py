"""SIGTERM as Ctrl-C: real signals raised in this process (the commands' own tests send them to `signalwise`)."""

from __future__ import annotations

import signal
import threading

import pytest

from signalwise.termination import (
    StopOnce,
    Terminated,
    interrupts_deferred,
    sigterm_as_interrupt,
    stop_reason,
)


@pytest.fixture
def recorded_sigterms():
    """A SIGTERM handler of our own, standing for whatever the process had before; put back afterwards."""
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    yield seen
    signal.signal(signal.SIGTERM, before)


def test_sigterm_raises_once_as_a_keyboard_interrupt_then_the_previous_handler_is_back(recorded_sigterms):
    with sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt) as caught:  # what every Ctrl-C path catches
            signal.raise_signal(signal.SIGTERM)
        try:
            signal.raise_signal(signal.SIGTERM)  # a second one while stopping: ignored, the stop goes on
        except Terminated:
            pytest.fail("a second SIGTERM raised again, cutting the stop short")
    assert isinstance(caught.value, Terminated) and stop_reason(caught.value) == "terminated (SIGTERM)"
    assert stop_reason(KeyboardInterrupt()) == "interrupted"  # Ctrl-C's, as run.json has always said
    assert recorded_sigterms == []
    signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == [signal.SIGTERM]  # restored: ours again, not the one that raised


def test_outside_the_main_thread_nothing_is_installed(recorded_sigterms):
    before = signal.getsignal(signal.SIGTERM)
    errors: list[BaseException] = []
    seen_inside: list[object] = []

    def work() -> None:
        try:
            with sigterm_as_interrupt():
                seen_inside.append(signal.getsignal(signal.SIGTERM))
        except BaseException as exc:  # noqa: BLE001 - signal.signal raises ValueError off the main thread
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert errors == [] and seen_inside == [before]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler while the test runs: a suite started in the background (`make test &`)
    inherits SIGINT ignored, and the test is about what comes back, not about what the runner had."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_while_deferred_ctrl_c_and_sigterm_wait_and_the_handlers_come_back(recorded_sigterms, python_ctrl_c):
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt: the flush goes on
        signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == []
    signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == [signal.SIGTERM]
    with pytest.raises(KeyboardInterrupt):  # Python's own Ctrl-C handler is back
        signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_stop_once_raises_for_the_first_signal_and_only_hurries_for_the_rest(first, recorded_sigterms, python_ctrl_c):
    with StopOnce() as signals:
        with pytest.raises(KeyboardInterrupt) as caught:
            signal.raise_signal(first)
        assert not signals.hurry.is_set()
        try:
            signal.raise_signal(signal.SIGINT)  # pressed again while stopping
            signal.raise_signal(signal.SIGTERM)  # `timeout` signalling the group
        except KeyboardInterrupt:
            pytest.fail("a later signal raised again, cutting the stop short")
        assert signals.hurry.is_set()
    assert isinstance(caught.value, Terminated) == (first == signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == [signal.SIGTERM]  # the handlers before are back
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_stop_once_after_the_work_ended_only_hurries(recorded_sigterms, python_ctrl_c):
    """A run that ended by itself is closing: a first Ctrl-C then hurries its end instead of breaking it."""
    ended = False
    with StopOnce() as signals:
        signals.ended = lambda: ended
        ended = True
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C after the end raised")
        assert signals.hurry.is_set()
    assert recorded_sigterms == []


def test_a_later_signal_ends_a_wait_on_hurry_at_once_and_its_handler_takes_no_lock(recorded_sigterms,
                                                                                    python_ctrl_c):
    """The handler runs in the main thread, which may be inside `hurry.wait` at that moment: with a
    `threading.Event` its `set` could wait on the Event's lock held by that same thread, and the next signal
    nest another handler, until the recursion limit (a fresh-clone suite run saw `live` die so, run.json left
    `running`). The flag takes no lock: a set from the handler ends the wait within its poll."""
    import os
    import time

    with StopOnce() as signals:
        signals.ended = lambda: True
        assert not hasattr(signals.hurry, "_cond")  # nothing a handler could wait on
        assert signals.hurry.wait(0.05) is False
        timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        assert signals.hurry.wait(10.0) is True
        assert time.monotonic() - t0 < 2.0
        timer.join()
    assert recorded_sigterms == []


#: run in a fresh interpreter: a test runner's worker may not run tests on its main thread, or may have its
#: own SIGTERM handler for the child to inherit
FORKED_CHILD = """
import multiprocessing, signal, time
from signalwise.termination import sigterm_as_interrupt

def sleep_until_killed():
    time.sleep(30)

if __name__ == "__main__":
    with sigterm_as_interrupt():
        child = multiprocessing.get_context("fork").Process(target=sleep_until_killed, daemon=True)
        child.start()
        time.sleep(0.2)
        child.terminate()
        child.join(10)
    print(child.exitcode)
"""


def test_a_forked_child_stopped_with_sigterm_dies_of_it_as_before(tmp_path):
    """A child forked inside (the evidence replay, the audit) inherits the handler: SIGTERM, how the run stops
    it, must end it as it always did, not raise `Terminated` in it and print a traceback."""
    import subprocess
    import sys

    script = tmp_path / "forked_child.py"
    script.write_text(FORKED_CHILD)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(-signal.SIGTERM)
    assert "Traceback" not in p.stderr and "Terminated" not in p.stderr


def test_a_ctrl_c_during_pythons_exit_after_a_command_ends_it_without_a_traceback():
    """A second Ctrl-C as a live run ends can land in Python's own clean-up (multiprocessing's finalizers, run at
    exit): it used to raise inside an atexit callback and print that traceback after the command's last line.
    Here an exit callback registered before the command stands for that clean-up and presses Ctrl-C itself."""
    import subprocess
    import sys

    code = ("import atexit, os, signal, sys, time\n"
            "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(5)))\n"
            "sys.argv = ['signalwise', 'scenarios']\n"
            "from signalwise.cli import main\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "single" in p.stdout  # the command ran and said what it had to
    assert p.returncode == -signal.SIGINT and "Traceback" not in p.stderr, (p.returncode, p.stderr)


def test_a_ctrl_c_while_python_joins_threads_after_a_command_ends_it_without_a_traceback():
    """The same press landing earlier in Python's exit: while it joins the threads still running, before any exit
    callback (seen in `signalwise live` as a page's last look ended). A thread left running by the process
    presses Ctrl-C itself while Python waits for it."""
    import subprocess
    import sys

    code = ("import os, signal, sys, threading, time\n"
            "sys.argv = ['signalwise', 'scenarios']\n"
            "from signalwise.cli import main\n"
            "try:\n"
            "    main()\n"
            "finally:\n"
            "    threading.Thread(target=lambda: (time.sleep(0.5), os.kill(os.getpid(), signal.SIGINT),\n"
            "                                     time.sleep(5))).start()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "single" in p.stdout
    assert p.returncode == -signal.SIGINT and "Traceback" not in p.stderr, (p.returncode, p.stderr)
