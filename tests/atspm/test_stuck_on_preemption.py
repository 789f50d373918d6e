"""The stuck-on detector rule does not count the greens that preemption cut short.

Chained preemption (a frequent line of vehicles that preempt) ends a cross street's greens at their minimum, and a
real queue then stands over the stop-bar zone through several of them. Those greens say nothing about whether a
queue would clear the zone, so they do not count towards `STUCK_ON_GREENS`; the split failures in them stay in.

One device, "1", phase 2 on a 60 s cycle from 07:00:00 (begin green at c, yellow at c + 20, red clearance to
c + 26); in a preempted cycle a call on preemption channel 1 (102) comes at c + 5, phase 2 goes to yellow then, and
the call goes off (104) at c + 40. The stop bar (channel 2) sees a vehicle from c + 1 to c + 3 in each cycle before
one holds it from 50 s to 290 s: through the greens of 07:01, 07:02, 07:03 and 07:04.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)
HELD = (50.0, 290.0)


def log_of(rows):
    rows = sorted(rows)
    return events_from_frame(pd.DataFrame({
        "TimeStamp": [T0 + dt.timedelta(seconds=s) for s, _c, _p in rows], "DeviceId": "1",
        "EventId": [c for _s, c, _p in rows], "Parameter": [p for _s, _c, p in rows]}))


CONFIG = detectors_from_frame(pd.DataFrame([("1", 2, 2, "Presence")],
                                           columns=["DeviceId", "Phase", "Parameter", "Function"]))


def cycle(c, preempted=False):
    end = 5 if preempted else 20
    rows = [(c, 1, 2), (c + end, 8, 2), (c + end + 4, 9, 2), (c + end + 4, 10, 2), (c + end + 6, 11, 2)]
    if preempted:
        rows += [(c + 5, 102, 1), (c + 40, 104, 1)]
    return rows


def stop_bar_log(preempted: set[int], call_between=False):
    rows = []
    for c in range(0, 600, 60):
        rows += cycle(c, c in preempted)
        if not HELD[0] <= c + 1 <= HELD[1]:
            rows += [(c + 1, 82, 2), (c + 3, 81, 2)]
        if call_between and c in (60, 120, 180, 240):
            rows += [(c + 30, 102, 1), (c + 45, 104, 1)]  # a call during the red, gone before the next green
    rows += [(HELD[0], 82, 2), (HELD[1], 81, 2)]
    return log_of(rows)


def stuck(res):
    return [w for w in res.warnings if "stuck-on detector" in w]


def test_a_queue_through_greens_cut_short_by_preemption_is_no_stuck_detector():
    res = compute_all(stop_bar_log({60, 120, 180, 240}), CONFIG)
    assert not stuck(res), res.warnings
    # the four preempted cycles the zone stays on through are split failures, counted
    sf = res.tables["split_failure_cycles"]
    failed = sf[sf["Split_Failure"].astype(bool)]["TimeStamp"].dt.strftime("%H:%M").tolist()
    assert failed == ["07:01", "07:02", "07:03", "07:04"], sf


def test_the_rule_still_holds_through_greens_no_preemption_touched():
    # the same zone on through the same four greens, run to their end: a stuck-on detector, as before
    plain = compute_all(stop_bar_log(set()), CONFIG)
    assert len(stuck(plain)) == 1 and "through 4 whole greens of phase 2" in stuck(plain)[0]
    # a call that comes and goes during the reds leaves the greens whole: they still count
    between = compute_all(stop_bar_log(set(), call_between=True), CONFIG)
    assert len(stuck(between)) == 1 and "through 4 whole greens of phase 2" in stuck(between)[0]
    # only two of the four greens preempted: two whole greens are fewer than the rule's three
    two = compute_all(stop_bar_log({60, 120}), CONFIG)
    assert not stuck(two)
    three = compute_all(stop_bar_log({60}), CONFIG)
    assert len(stuck(three)) == 1 and "through 3 whole greens of phase 2" in stuck(three)[0]


def test_a_chattering_preemption_input_is_cut_from_its_first_call_on_to_its_own_call_off():
    """A channel whose input repeats its call on (102) before the call off (104) is one span; a call never called
    off runs to the device's last event, and another channel's call off does not end it."""
    from signalwise.analytics.atspm.detector_health import _cut_spans_us

    chatter = [(100.0 + 0.5 * k, 102, 1) for k in range(400)] + [(400.0, 104, 1)]
    unclosed = [(500.0, 102, 3), (520.0, 104, 4), (530.0, 102, 4), (560.0, 104, 4), (600.0, 1, 2)]
    spans = _cut_spans_us(log_of([(0.0, 1, 2), *chatter, *unclosed]))
    starts, ends = spans[0]
    t0_us = round(T0.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    seconds = [(a - t0_us) / 1e6 for a in starts.tolist()], [(b - t0_us) / 1e6 for b in ends.tolist()]
    assert seconds == ([100.0, 500.0], [400.0, 600.0])
