"""Signal states over time: what each intersection showed, from a `time_s,device_id,state` file.

The file has one row per change, SUMO link-state strings (`GGrrrGGrrr`). A
run's own `signal_states.csv` has the same columns in simulation seconds;
`offset_s` is the simulation time of the video's first frame, so video time
t reads the state at t + offset_s. Rows a live runtime writes at a recovery
(state `RECOVERY`) are not states and are skipped.

How long the log covers: a state holds from its row to the next row. After
the last row nothing says when the log stopped (an export window, a rotated
or crashed log), so the last state is trusted for at most the longest gap
between two rows of that device in the file: a change-only log's longest
phase, a log written every second's second. Before the first row and after
that, the state is unknown (`state_at` gives None) and no red light is
judged. A state pushed with each frame (`append`, the controller's own state
in a live loop) holds until the next one. Every state of a device has the
same number of links: a row whose string is longer or shorter is refused,
as is a character that is no SUMO link state (`LINK_STATES`: an unknown one
would be judged "not red" without a word) and a second row of a device at
the same time with another state (a broken export: which row won would
depend on the file's order).
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable
from pathlib import Path

from ..core.types import RECOVERY_STATE

COLUMNS = ("time_s", "device_id", "state")
#: SUMO's link-state characters (red, red-yellow, yellow, green minor/major, green right-turn arrow, off blinking,
#: off), and `R`/`Y`, which some tools write for red and yellow
LINK_STATES = frozenset("rRuyYgGsoO")


class SignalFileError(ValueError):
    """A signal-state file that cannot be read: path, line and what is wrong."""


class SignalTimeline:
    """`state_at(device_id, t)`: the state in force at video time t (None outside the log's coverage)."""

    def __init__(self, rows: Iterable[tuple[float, str, str]] = (), offset_s: float = 0.0):
        self.offset_s = offset_s
        self._times: dict[str, list[float]] = {}
        self._states: dict[str, list[str]] = {}
        for t, dev, state in sorted(rows, key=lambda r: (r[1], r[0])):
            self._times.setdefault(dev, []).append(t)
            self._states.setdefault(dev, []).append(state)
        #: device -> how long past its last row the last state is trusted (s); inf for states pushed live
        self._hold_s = {dev: longest_gap_s(times) for dev, times in self._times.items()}

    @classmethod
    def from_csv(cls, path: str | Path, offset_s: float = 0.0) -> SignalTimeline:
        path = Path(path)
        rows = []
        first_state: dict[str, tuple[int, str]] = {}  # device -> (line, state) of its first row
        at: dict[tuple[str, float], tuple[int, str]] = {}  # (device, time) -> (line, state) of its first row
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
                if missing:
                    raise SignalFileError(f"{path}: needs the columns {','.join(COLUMNS)}; missing "
                                          f"{', '.join(missing)} (header: {','.join(reader.fieldnames or ())})")
                for line, row in enumerate(reader, start=2):
                    state = (row["state"] or "").strip()
                    if state == RECOVERY_STATE:
                        continue
                    try:
                        t = float(row["time_s"])
                    except (TypeError, ValueError):
                        raise SignalFileError(f"{path}:{line}: time_s {row['time_s']!r} is not a number") from None
                    if t != t or not state or not row["device_id"]:
                        raise SignalFileError(f"{path}:{line}: needs a time, a device_id and a state")
                    device = row["device_id"].strip()
                    _check_length(path, line, device, state, first_state)
                    bad = sorted(set(state) - LINK_STATES)
                    if bad:
                        raise SignalFileError(f"{path}:{line}: state {state!r} of {device} has {', '.join(map(repr, bad))}, "
                                              f"no SUMO link state (one of {''.join(sorted(LINK_STATES))})")
                    seen = at.setdefault((device, t), (line, state))
                    if seen[1] != state:
                        raise SignalFileError(f"{path}:{line}: {device} at {t:g} s shows {state!r}; line {seen[0]} "
                                              f"gives it {seen[1]!r} at the same time: one state at a time")
                    rows.append((t, device, state))
        except OSError as exc:
            raise SignalFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise SignalFileError(f"{path}: not a text (CSV) file") from None
        if not rows:
            raise SignalFileError(f"{path}: no signal states in it")
        return cls(rows, offset_s)

    def append(self, video_time_s: float, device_id: str, state: str) -> None:
        """Record a state shown from `video_time_s` on (live: the controller's own state, frame by frame)."""
        t = video_time_s + self.offset_s
        times = self._times.setdefault(device_id, [])
        states = self._states.setdefault(device_id, [])
        if states and states[-1] == state:
            return
        if times and t < times[-1]:
            raise ValueError(f"signal state for {device_id} at {t:g} s is older than the last one ({times[-1]:g} s)")
        times.append(t)
        states.append(state)
        self._hold_s[device_id] = math.inf  # pushed with each frame: in force until the next one

    def coverage(self, device_id: str) -> tuple[float, float] | None:
        """(first, last) video time the device's states are known for (None: no row for it)."""
        times = self._times.get(device_id)
        if not times:
            return None
        return times[0] - self.offset_s, times[-1] + self._hold_s[device_id] - self.offset_s

    def _index(self, device_id: str, video_time_s: float) -> int | None:
        """The row in force at `video_time_s`, None outside the coverage."""
        times = self._times.get(device_id)
        if not times:
            return None
        t = video_time_s + self.offset_s
        i = bisect.bisect_right(times, t) - 1
        if i < 0 or (i == len(times) - 1 and t > times[-1] + self._hold_s[device_id]):
            return None
        return i

    def red_since(self, device_id: str, links: Iterable[int], video_time_s: float) -> float | None:
        """Video time since when every one of `links` has shown red at `video_time_s` (None: not all red now)."""
        links = list(links)
        i = self._index(device_id, video_time_s)
        if i is None or not all_red(self._states[device_id][i], links):
            return None
        while i > 0 and all_red(self._states[device_id][i - 1], links):
            i -= 1
        return self._times[device_id][i] - self.offset_s

    @property
    def devices(self) -> list[str]:
        return sorted(self._times)

    def n_links(self, device_id: str) -> int | None:
        states = self._states.get(device_id)
        return len(states[0]) if states else None

    def state_at(self, device_id: str, video_time_s: float) -> str | None:
        i = self._index(device_id, video_time_s)
        return self._states[device_id][i] if i is not None else None

    def changes(self, device_id: str) -> list[tuple[float, str]]:
        """(video time, state) of every change for one device."""
        return [(t - self.offset_s, s) for t, s in zip(self._times.get(device_id, []),
                                                        self._states.get(device_id, []), strict=True)]


def longest_gap_s(times: list[float]) -> float:
    """The longest time between two consecutive rows (0 for a single row: it says nothing of how long it held)."""
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def _check_length(path: Path, line: int, device: str, state: str, first: dict[str, tuple[int, str]]) -> None:
    """Every state of a device has as many links as its first: a shorter one would silently leave links unjudged."""
    seen = first.setdefault(device, (line, state))
    if len(state) != len(seen[1]):
        raise SignalFileError(f"{path}:{line}: state {state!r} of {device} has {len(state)} links; its first state "
                              f"({path.name}:{seen[0]}) has {len(seen[1])}: a device's states all have one length")


#: SUMO's link characters for red (`r`; `R` is not SUMO's but some tools write it)
RED = frozenset("rR")


def link_chars(state: str | None, links: Iterable[int]) -> str:
    """The characters of `links` in a state string ('' when the state is unknown or too short)."""
    if not state:
        return ""
    links = list(links)
    if any(k >= len(state) for k in links):
        return ""
    return "".join(state[k] for k in links)


def all_red(state: str | None, links: Iterable[int]) -> bool:
    chars = link_chars(state, links)
    return bool(chars) and all(c in RED for c in chars)
