"""Which truth events a clip holds, and a target with nothing to grade reads n/a, not MISSED."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from signalwise.vision.grading import Target, report_json, targets
from signalwise.vision.grading.violations import clip_event_counts, clip_events

COLUMNS = ["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s", "end_s", "injected"]


def test_an_event_in_the_clip_is_one_it_shows_for_the_sustain_time():
    # times from the first frame; 10 fps, 10 s: the last frame at 9.9 s; events need 1 s over the threshold
    events = pd.DataFrame([
        (-0.7, "A", "speeding", "north", 19.0, -1.7, 8.6, 1),  # begun in the warm-up, seen 8.6 s: in
        (-5.0, "B", "speeding", "north", 19.0, -6.0, -0.1, 1),  # over until the last warm-up step: out
        (-1.0, "C", "speeding", "north", 19.0, -2.0, 0.4, 0),  # seen over for 0.4 s: too briefly
        (3.0, "D", "speeding", "north", 19.0, 2.0, 5.0, 1),  # wholly in
        (-0.05, "E", "red_light", "west", 9.0, -0.05, -0.05, 1),  # crossed before the first frame: out
        (4.0, "F", "red_light", "west", 9.0, 4.0, 4.0, 1),  # in
    ], columns=COLUMNS)
    in_clip, brief = clip_events(events, fps=10.0, duration_s=10.0, sustain_s=1.0)
    assert list(events.loc[in_clip, "vehicle_id"]) == ["A", "D", "F"]
    assert list(events.loc[brief, "vehicle_id"]) == ["C"]
    assert clip_event_counts(events, 10.0, 10.0, 1.0) == {
        "red_light": {"events": 1, "injected_events": 1, "seen_too_briefly": 0},
        "speeding": {"events": 2, "injected_events": 2, "seen_too_briefly": 1}}


def _report(counts):
    return {"view": "topdown", "speed": {"rmse_mps": 0.5}, "tracking": {"truth_points": 10}, "counts": counts,
            "violations": {}}


def test_a_count_with_nothing_to_grade_is_not_missed():
    report = _report({"east": {"truth": 0, "counted": 0, "relative_error": float("nan")},
                      "north": {"truth": 0, "counted": 3, "relative_error": float("nan")},
                      "west": {"truth": 4, "counted": 4, "relative_error": 0.0}})
    by = {t.name.split(",")[1].split()[0]: t for t in targets(report) if "count error" in t.name}
    east, north, west = by["east"], by["north"], by["west"]
    assert (east.status, east.graded, east.met) == ("n/a", False, False)
    assert "MISSED" not in east.line() and east.line().rstrip().endswith(
        "n/a (nothing to grade: none crossed, none counted)")
    # vehicles counted where none crossed is a failure, whatever the ratio cannot say
    assert (north.status, north.graded) == ("MISSED", True) and "3 counted where none crossed" in north.line()
    assert west.status == "met"
    # bench.json keeps the difference, and reads back the same
    kept = json.loads(report_json([t.as_dict() for t in (east, north)]))
    assert [(t["met"], t["graded"]) for t in kept] == [(False, False), (False, True)]
    assert Target.from_dict(kept[0]).line() == east.line()
    assert Target.from_dict({k: v for k, v in kept[1].items() if k != "graded"}).status == "MISSED"


def test_a_speed_rmse_with_no_speed_is_missed_unless_nothing_was_in_view():
    no_speed = {**_report({}), "speed": {"rmse_mps": float("nan")}}
    (t,) = targets(no_speed)
    assert t.status == "MISSED" and "no matched track point had a speed" in t.line()
    empty = {**no_speed, "tracking": {"truth_points": 0}}
    (t,) = targets(empty)
    assert t.status == "n/a" and "nothing to grade" in t.line()


@pytest.mark.parametrize("events", [5, 40])
def test_a_violation_precision_with_nothing_reported(events):
    g = {"precision": float("nan"), "recall": 0.0, "truth_events": events}
    precision = [t for t in targets({**_report({}), "violations": {"speeding": g}}) if "precision" in t.name][0]
    # an undefined precision is not graded, whatever the number of events: the recall says the miss
    assert precision.status == "n/a" and precision.line().rstrip().endswith("n/a (nothing to grade: no report to "
                                                                             "score)")


def _violation_lines(g):
    return {t.name.split()[2]: t for t in targets({**_report({}), "violations": {"speeding": g}})
            if "speeding" in t.name}


def test_a_violation_target_says_one_verdict():
    # no event and no report: nothing to grade either way, never "n/a ... MISSED (too few events)"
    none = _violation_lines({"precision": float("nan"), "recall": float("nan"), "truth_events": 0})
    for t in none.values():
        assert t.status == "n/a" and "MISSED" not in t.line(), t.line()
    assert "no true event in the clip" in none["recall"].line()
    # reports with no event: a precision of 0 is missed; the recall has nothing to grade
    false_alarms = _violation_lines({"precision": 0.0, "recall": float("nan"), "truth_events": 0})
    assert false_alarms["precision"].status == "MISSED" and "0.000" in false_alarms["precision"].line()
    assert false_alarms["recall"].status == "n/a"
    # a figure over too few events is missed, and the note counts them
    few = _violation_lines({"precision": 1.0, "recall": 1.0, "truth_events": 4})
    assert all(t.status == "MISSED" and "too few events to grade: 4 of the 30 needed" in t.line()
               for t in few.values())
