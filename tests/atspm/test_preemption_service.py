"""The preemption table's time to service and dwell, on a synthetic log and on a real run's."""

from __future__ import annotations

import math

from atspm_cases import make_events

from signalwise.analytics.atspm import cycles as C
from signalwise.analytics.atspm import events_from_frame


def test_time_to_service_and_dwell_from_the_begin_dwell():
    """As the shield logs it: call on and entry started together, the vehicle's green (107) 12 s later, call off
    8 s after that. A second call that times out (110) before its call off; a third that never reached its dwell."""
    rows = [(0.0, "7", 102, 1), (0.0, "7", 105, 1), (12.0, "7", 107, 1), (20.0, "7", 104, 1),
            (40.0, "7", 102, 1), (40.0, "7", 105, 1), (46.0, "7", 107, 1), (57.0, "7", 110, 1), (57.0, "7", 104, 1),
            (90.0, "7", 102, 1), (90.0, "7", 105, 1), (93.0, "7", 104, 1)]
    pre = C.preemption(events_from_frame(make_events(rows)))
    assert pre["EntryDelay_s"].tolist() == [0.0, 0.0, 0.0]  # kept as it was
    assert pre["TimeToService_s"].tolist()[:2] == [12.0, 6.0] and math.isnan(pre["TimeToService_s"].iloc[2])
    assert pre["Dwell_s"].tolist()[:2] == [8.0, 11.0] and math.isnan(pre["Dwell_s"].iloc[2])
    assert pre["MaxPresence"].tolist() == [False, True, False]
    assert pre["Duration_s"].tolist() == [20.0, 17.0, 3.0]


def test_track_clearance_and_exit_take_precedence_when_logged():
    """A controller that logs track clearance (106) and exit (111): service at 106, dwell ends at 111."""
    rows = [(0.0, "7", 102, 1), (1.0, "7", 105, 1), (5.0, "7", 106, 1), (15.0, "7", 107, 1), (40.0, "7", 111, 1),
            (45.0, "7", 104, 1)]
    pre = C.preemption(events_from_frame(make_events(rows)))
    assert pre[["EntryDelay_s", "TimeToService_s", "Dwell_s"]].values.tolist() == [[1.0, 5.0, 25.0]]
