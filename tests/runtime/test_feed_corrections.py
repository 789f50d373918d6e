"""A detector feed's corrections, late messages and message types (a signal engineer's trial of `--field none`).

- a second count for the same detector and interval with another value replaces the first in what the live
  records count (pending or already drained), and is counted and logged; an exact repeat stays a repeat;
- a message more than `late_after_s` behind the run's clock is taken, counted as late, and the batch's result
  says what was done with it;
- `channel` is a number: text is refused by name.
"""

from __future__ import annotations

import logging

import pytest

from signalwise.runtime.live.feeds import DetectorFeed, DetectorMessage


def _count(ch, n, t, interval=60.0, dev="J1"):
    return {"device_id": dev, "channel": ch, "count_veh": n, "occupancy": 0.1, "interval_s": interval,
            "sim_time_s": t}


def _stopbar(corridor):
    inter = next(i for i in corridor if i.id == "J1")
    return next(d for d in inter.detectors if d.kind == "stopbar").channel


def _counted(drained):
    """The vehicles the records take from drained counts, per (device, channel, interval end)."""
    out: dict = {}
    for c in drained:
        out[(c.device_id, c.channel, c.time_s)] = out.get((c.device_id, c.channel, c.time_s), 0) + c.count_veh
    return out


def test_a_corrected_count_replaces_the_first_before_the_loop_drains_it(corridor, caplog):
    feed = DetectorFeed(corridor)
    ch = _stopbar(corridor)
    with caplog.at_level(logging.WARNING, logger="signalwise.live.feeds"):
        for _ in range(3):  # exact repeats: one count
            assert feed.accept(_count(ch, 6, 30.0)).ok
        assert feed.accept(_count(ch, 7, 30.0)).ok  # the gateway corrects its count
    assert _counted(feed.drain_counts()) == {("J1", ch, 30.0): 7}
    stats = feed.stats()
    assert stats["repeated_counts"] == 2 and stats["corrected_counts"] == 1 and stats["late_corrections"] == 0
    assert f"J1 channel {ch}: the count of the 60 s interval ending at 30.0 s corrected from 6 to 7 vehicles" \
        in caplog.text


def test_a_correction_after_the_loop_took_the_first_counts_the_difference(corridor, caplog):
    feed = DetectorFeed(corridor)
    ch = _stopbar(corridor)
    assert feed.accept(_count(ch, 6, 30.0)).ok
    records = _counted(feed.drain_counts())  # the loop's tick: the records have 6
    with caplog.at_level(logging.WARNING, logger="signalwise.live.feeds"):
        assert feed.accept(_count(ch, 7, 30.0)).ok
        assert feed.accept(_count(ch, 6, 30.0)).ok  # the first delivered again: a repeat, not a correction back
    for key, n in _counted(feed.drain_counts()).items():
        records[key] = records.get(key, 0) + n
    assert records == {("J1", ch, 30.0): 7}
    # a lower value, twice corrected before the next drain: the records end with the last
    assert feed.accept(_count(ch, 4, 30.0)).ok and feed.accept(_count(ch, 5, 30.0)).ok
    for key, n in _counted(feed.drain_counts()).items():
        records[key] = records.get(key, 0) + n
    assert records == {("J1", ch, 30.0): 5}
    stats = feed.stats()
    assert stats["corrected_counts"] == 3 and stats["late_corrections"] == 3 and stats["repeated_counts"] == 1
    assert "after the records took 6: the difference (+1) is counted" in caplog.text
    # the detector's observation has the corrected count
    inter = next(i for i in corridor if i.id == "J1")
    det = next(d for d in inter.detectors if d.channel == ch)
    from signalwise.core.types import ObservationNeed

    assert feed.observe(inter, 31.0, ObservationNeed(detector_count_ids=(det.id,))).detector_counts_veh == {det.id: 5}


def test_another_interval_is_no_correction(corridor):
    feed = DetectorFeed(corridor)
    ch = _stopbar(corridor)
    assert feed.accept([_count(ch, 6, 30.0), _count(ch, 7, 35.0), _count(ch, 2, 35.0, interval=30.0)]).ok
    assert _counted(feed.drain_counts()) == {("J1", ch, 30.0): 6, ("J1", ch, 35.0): 9}
    assert feed.stats()["corrected_counts"] == 0


def test_a_late_message_is_taken_counted_and_said_late(corridor):
    feed = DetectorFeed(corridor, now=lambda: 100.0)
    ch = _stopbar(corridor)
    result = feed.accept([{"device_id": "J1", "channel": ch, "event": "on", "sim_time_s": 35.0},
                          {"device_id": "J1", "channel": ch, "event": "off", "sim_time_s": 95.0}])
    assert result.ok and result.accepted == 2
    (late,) = result.late
    assert (late.index, late.device_id, late.channel, late.behind_s) == (0, "J1", ch, 65.0)
    assert late.note == ("its time (simulation second 35.0) is 65 s behind the run's clock, more than 10 s: logged "
                         "in events.csv at its own time; too old to steer a decision")
    assert [(e.time_s, e.event_code) for e in feed.drain_events()] == [(35.0, 82), (95.0, 81)]
    assert feed.stats()["late_messages"] == 1


def test_a_channel_in_text_is_refused_by_name(corridor):
    with pytest.raises(ValueError, match='channel\n  Input should be a valid integer, not text: send 1, not "1"'):
        DetectorMessage.model_validate({"device_id": "J1", "channel": "1", "event": "on", "sim_time_s": 1})
    feed = DetectorFeed(corridor)
    result = feed.accept({"device_id": "J1", "channel": "1", "event": "on", "sim_time_s": 1})
    assert not result.ok
    rej = result.rejected[0]
    assert (rej.code, rej.field) == ("invalid", "channel")
    assert rej.reason == 'channel: Input should be a valid integer, not text: send 1, not "1"'
    assert DetectorMessage.model_validate({"device_id": "J1", "channel": 1, "event": "on", "sim_time_s": 1}).channel == 1


def _feed_and_records(corridor):
    """A feed and the live records a `--field none` run keeps from it (one-minute intervals from 0 s), and J1's
    stop-bar channel."""
    import datetime as dt

    from signalwise.runtime.live.records import LiveRecords

    directions = {m.in_lane: "north" for i in corridor for m in i.movements}
    stopbars = {(i.id, d.channel): d.lane for i in corridor for d in i.detectors if d.kind == "stopbar"}
    records = LiveRecords(corridor, directions, 60.0, 0.0, dt.datetime.now().astimezone(), "run",
                          feed_stopbars=stopbars)
    return DetectorFeed(corridor), records, _stopbar(corridor)


def _tick(feed, records) -> None:
    """The loop's drain: the counts the feed took go to the records."""
    for c in feed.drain_counts():
        records.feed_count(c.device_id, c.channel, c.count_veh, c.time_s)


def _crossed(rows) -> int:
    (row,) = [r for r in rows if r["intersection_id"] == "J1"]
    return sum(s["vehicles_crossed"] for s in row["signals"])


def test_a_lowered_correction_of_a_closed_interval_takes_nothing_from_the_open_one(corridor):
    """6 vehicles at J1's stop bar in the minute to 60 s; the interval's record is written; then the gateway
    corrects them to 2. The record written stands, and the next interval does not lose 4 vehicles it never had
    (it read -4 vehicles crossed, a record the store refuses)."""
    feed, records, ch = _feed_and_records(corridor)

    assert feed.accept(_count(ch, 6, 60.0)).accepted == 1
    _tick(feed, records)
    assert _crossed(records.close_interval()) == 6
    assert feed.accept([_count(ch, 2, 60.0), _count(ch, 3, 120.0)]).accepted == 2
    _tick(feed, records)
    assert _crossed(records.close_interval()) == 3  # the next minute's own 3, not 3 - 4
    assert feed.stats()["late_corrections"] == 1


def test_a_lowered_correction_of_a_late_count_the_open_interval_took_is_taken_there(corridor):
    """A gateway's count for the minute to 60 s comes just after that record was written, so the open interval
    takes it (late data count where they arrive); corrected from 6 to 2, the open interval holds 2, not 6."""
    feed, records, ch = _feed_and_records(corridor)

    records.close_interval()  # the minute to 60 s is written before its count arrives
    assert feed.accept(_count(ch, 6, 60.0)).accepted == 1
    _tick(feed, records)
    assert feed.accept(_count(ch, 2, 60.0)).accepted == 1
    _tick(feed, records)
    assert _crossed(records.close_interval()) == 2
