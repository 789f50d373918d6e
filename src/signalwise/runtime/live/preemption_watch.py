"""What preemption does at a live run's signals, read from the hi-res events the shields log: 102 (preempt call
on), 104 (call off), 110 (max presence exceeded), per signal and channel.

Read from the log rather than from the shields' state, so that the figures count what the evidence records (and
what ATSPM's preemption measures read): the alert rules' `preempt_active`, `preempt_active_s`, `preempt_calls` and
`preempt_timeouts`, the same in /metrics, and the preemptions still on when a run ends (its end message and
run.json), which the log leaves without a 104.

`preempt_active_s` is a signal's, not a call's: from the first 102 of the preemption in force there (calls that
overlap one another, or follow at the same instant, are one preemption), as the shield's maximum dwell and the
audit bound it. A call's own age would stay short while overlapping calls hold the signal.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...core.types import EventCode, SignalEvent

_CALL_ON, _CALL_OFF = int(EventCode.PREEMPT_CALL_ON), int(EventCode.PREEMPT_CALL_OFF)
_TIMEOUT = int(EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED)
_RECOVERY = int(EventCode.RUNTIME_RECOVERY)


class PreemptionWatch:
    """The preemptions active now (signal, channel -> when its 102 came) and the calls and timeouts so far."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, int], float] = {}
        self.calls = 0
        self.timeouts: dict[str, list[float]] = {}
        #: per signal preempted now: when its preemption (overlapping calls) began, its first 102
        self.since: dict[str, float] = {}
        #: per signal: when its last preemption ended (a 102 at that instant continues it), and when it began
        self._ended: dict[str, float] = {}
        self._ended_start: dict[str, float] = {}
        #: a recovery replays the intervals in force with their first times: a 102 before this is not a new call
        self._replayed_before_s = -1.0

    def observe(self, events: Iterable[SignalEvent]) -> None:
        """Take the events the loop logs (any codes: the others are skipped). Within an instant a call off ends
        the earlier call before a new one starts, as the audit reads it."""
        for e in sorted(events, key=lambda e: (e.time_s, e.event_code != _CALL_OFF)):
            key = (e.device_id, e.parameter)
            tls = e.device_id
            if e.event_code == _RECOVERY:
                self.active.clear()  # the replay opens with the calls in force again
                self.since.clear()
                self._ended.clear()
                self._ended_start.clear()
                self._replayed_before_s = e.time_s
            elif e.event_code == _CALL_ON and key not in self.active:
                self.active[key] = e.time_s
                if tls not in self.since:
                    ended = self._ended.pop(tls, None)
                    self.since[tls] = self._ended_start.pop(tls) if ended == e.time_s else e.time_s
                self.calls += e.time_s >= self._replayed_before_s
            elif e.event_code == _CALL_OFF:
                self.active.pop(key, None)
                if tls in self.since and not any(t == tls for t, _ch in self.active):
                    self._ended[tls] = e.time_s
                    self._ended_start[tls] = self.since.pop(tls)
            elif e.event_code == _TIMEOUT and e.time_s >= self._replayed_before_s:
                self.timeouts.setdefault(e.device_id, []).append(e.time_s)

    def figures(self, now_s: float) -> dict[str, float]:
        """`preempt_active` (signals preempted now), `preempt_active_s` (the longest a signal has been preempted
        without a break, from its first 102; 0 with none), `preempt_calls` and `preempt_timeouts` (counts that only
        grow)."""
        return {"preempt_active": float(len(self.since)),
                "preempt_active_s": max((now_s - t for t in self.since.values()), default=0.0),
                "preempt_calls": float(self.calls),
                "preempt_timeouts": float(sum(len(t) for t in self.timeouts.values()))}

    def subjects(self, now_s: float) -> dict[str, dict[str, str]]:
        """What the figures count, for their alerts to name: each signal preempted now and since when, each signal
        whose preemption timed out and when last."""
        active: dict[str, str] = {}
        for tls, t in sorted(self.since.items(), key=lambda kv: kv[1]):
            channels = sorted(ch for s, ch in self.active if s == tls)
            active[tls] = f"preempt {', '.join(map(str, channels))} on since t={t:.0f} s ({now_s - t:.0f} s)"
        timeouts = {tls: f"{len(times)} max-presence timeout(s) (110), the last at t={times[-1]:.0f} s"
                    for tls, times in sorted(self.timeouts.items())}
        return {"preempt_active_s": active, "preempt_timeouts": timeouts}

    def in_force(self, now_s: float) -> list[str]:
        """The preemptions still on, a line each, for a run ending now: its log has their 102 and no 104."""
        return [f"{tls}: preempt {ch} on since t={t:.0f} s ({now_s - t:.0f} s) when the run ended: events.csv has "
                "its 102 and no 104 (signalwise audit warns preempt_unterminated)"
                for (tls, ch), t in sorted(self.active.items(), key=lambda kv: (kv[1], kv[0]))]
