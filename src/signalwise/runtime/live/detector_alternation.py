"""A detector's on (82) and off (81) events alternate in a live run's hi-res log.

A feed can say a detector is on while the log has it on already: a gateway that resends its state, a flood,
two messages whose times differ below the log's 0.1 s (each a row of its own, identical once written). An
ATSPM reader counts every 82 as a vehicle, so a second "on" while on (or "off" while off) is counted
(`repeated_state`) and not logged. The feed's own rule (`feeds.DetectorFeed`: the same event at the same time
is a redelivery) runs on arrival; this one runs as the events are written, after the run has put them in time
order (`core.eventlog.TimeOrderedEvents`): a pair that arrives shuffled (on at 10 s, on at 14 s, off at 12 s,
off at 16 s) alternates once ordered, and on arrival would have looked like a repeat.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...core.types import EventCode, SignalEvent

#: the detector events whose state must alternate
DETECTOR_STATES = frozenset({int(EventCode.DETECTOR_ON), int(EventCode.DETECTOR_OFF)})


class DetectorAlternation:
    """Keeps each detector's events alternating as they are written. Only the loop's thread calls `keep`;
    `repeated_state` is read from any."""

    def __init__(self) -> None:
        #: (device, channel) -> (tenth of a second, code) of its latest event written in time order
        self._last: dict[tuple[str, int], tuple[int, int]] = {}
        self.repeated_state = 0

    def keep(self, events: Iterable[SignalEvent]) -> list[SignalEvent]:
        """The events to write, in their order: each detector event whose detector is in that state already
        (its latest event written, at this time or before, has the same code) left out and counted. An event
        written behind a later one of its detector (it came later than the run holds events for) is written
        as it is and not taken as the detector's state: the state is its latest in time."""
        out = []
        for e in events:
            code = int(e.event_code)
            if code not in DETECTOR_STATES:
                out.append(e)
                continue
            key = (e.device_id, int(e.parameter))
            tenth = round(e.time_s * 10)
            last = self._last.get(key)
            if last is None or tenth >= last[0]:
                if last is not None and last[1] == code:
                    self.repeated_state += 1
                    continue
                self._last[key] = (tenth, code)
            out.append(e)
        return out

    def reset(self) -> None:
        """A recovery begins a new timeline in the log (the 240 marker): the states are learnt again from it."""
        self._last.clear()
