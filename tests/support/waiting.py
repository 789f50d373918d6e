"""Polling a condition the code under test makes true in another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], object], timeout_s: float, every_s: float = 0.02) -> bool:
    """Whether `condition()` became true within `timeout_s` (asked once more at the end)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return bool(condition())


def value_within(condition: Callable[[], object], timeout_s: float = 10.0, every_s: float = 0.05) -> object:
    """The first true value `condition()` gives within `timeout_s`, else None (for a test that reads what it
    waited for)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    return None
