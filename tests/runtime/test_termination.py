"""SIGTERM as Ctrl-C: real signals raised in this process (the commands' own tests send them to `signalwise`)."""

from __future__ import annotations

import signal
import threading

import pytest

from signalwise.runtime.termination import Terminated, interrupts_deferred, sigterm_as_interrupt, stop_reason


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


def test_while_deferred_ctrl_c_and_sigterm_wait_and_the_handlers_come_back(recorded_sigterms):
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt: the flush goes on
        signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == []
    signal.raise_signal(signal.SIGTERM)
    assert recorded_sigterms == [signal.SIGTERM]
    with pytest.raises(KeyboardInterrupt):  # Python's own Ctrl-C handler is back
        signal.raise_signal(signal.SIGINT)


def _sleep_until_killed() -> None:
    import time

    time.sleep(30)


def test_a_forked_child_stopped_with_sigterm_dies_of_it_as_before():
    """A child forked inside (the evidence replay, the audit) inherits the handler: SIGTERM, how the run stops
    it, must end it as it always did, not raise `Terminated` in it and print a traceback."""
    import multiprocessing

    with sigterm_as_interrupt():
        child = multiprocessing.get_context("fork").Process(target=_sleep_until_killed, daemon=True)
        child.start()
        child.terminate()
        child.join(10)
    assert child.exitcode == -signal.SIGTERM
