"""A bounded frame buffer between a stream's reader thread and whoever processes its frames.

Live (`drop_oldest=True`): when the consumer falls behind, the oldest frame
goes, so memory stays bounded; each drop is counted. A live consumer takes
`get_latest()`: the newest frame, the older ones waiting behind it dropped
and counted, so a slow pipeline skips ahead instead of working through a
backlog that is already stale. Offline (`drop_oldest=False`): the reader
waits, so a file is processed whole.
"""

from __future__ import annotations

import collections
import threading
import time


class FrameBuffer:
    def __init__(self, size: int = 8, drop_oldest: bool = True):
        if size < 1:
            raise ValueError("buffer size must be at least 1")
        self.size = size
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item, stop: threading.Event | None = None) -> bool:
        """Add an item; True when an older one had to go (or, blocking, False once closed or stopped)."""
        with self._cond:
            if self.drop_oldest:
                dropped = False
                if len(self._items) >= self.size:
                    self._items.popleft()
                    self.dropped += 1
                    dropped = True
                self._items.append(item)
                self._cond.notify()
                return dropped
            while len(self._items) >= self.size and not self._closed and not (stop is not None and stop.is_set()):
                self._cond.wait(0.1)
            if self._closed or (stop is not None and stop.is_set()):
                return False
            self._items.append(item)
            self._cond.notify()
            return False

    def get(self, timeout_s: float | None = None):
        """The oldest item, or None after `timeout_s` (or once closed and empty)."""
        with self._cond:
            if not self._wait_for_items(timeout_s):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_latest(self, timeout_s: float | None = None):
        """The newest item (the older ones are dropped and counted), or None as `get` gives it."""
        with self._cond:
            if not self._wait_for_items(timeout_s):
                return None
            item = self._items.pop()
            self.dropped += len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return item

    def _wait_for_items(self, timeout_s: float | None) -> bool:
        """Under the lock: wait until an item is there; False when closed and empty, or out of time."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._items:
            if self._closed:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._cond.wait(left if left is not None else 0.5)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    def __len__(self) -> int:
        return len(self._items)
