"""The graders on hand-computed cases: truth against perturbed copies whose scores follow by arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from signalwise.vision.grading import (
    FramePairs,
    clear_mot,
    frame_pairs,
    grade_counts,
    grade_detections,
    grade_speed,
    grade_violations,
    hota,
)
from signalwise.vision.grading.detection import care_mask
from signalwise.vision.grading.matching import iou_matrix


def _objects(rows):
    cols = ["frame", "time_s", "object_id", "kind", "x_m", "y_m", "x1", "y1", "x2", "y2", "speed_mps", "stopped",
            "visible"]
    return pd.DataFrame(rows, columns=cols)


def _dets(rows):
    return pd.DataFrame(rows, columns=["frame", "time_s", "x1", "y1", "x2", "y2", "score"])


def _tracks(rows):
    return pd.DataFrame(rows, columns=["frame", "time_s", "track_id", "x_px", "y_px", "x_m", "y_m", "speed_mps"])


# -- detection ---------------------------------------------------------------------------------------------

def test_iou_of_known_boxes():
    m = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert m[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])


def test_detection_recall_moving_and_stopped_apart_and_precision():
    truth = _objects([
        # frame 0: A moving, B stopped, a pedestrian P, and C barely inside the frame (don't care)
        (0, 0.0, "A", "vehicle", 0, 0, 0, 0, 10, 10, 10.0, 0, 1.0),
        (0, 0.0, "B", "vehicle", 0, 0, 20, 20, 30, 30, 0.0, 1, 1.0),
        (0, 0.0, "P", "person", 0, 0, 50, 50, 52, 52, 1.0, 0, 1.0),
        (0, 0.0, "C", "vehicle", 0, 0, 90, 0, 100, 4, 10.0, 0, 0.3),
        # frame 1: A moved one pixel, B still there
        (1, 0.1, "A", "vehicle", 0, 0, 1, 0, 11, 10, 10.0, 0, 1.0),
        (1, 0.1, "B", "vehicle", 0, 0, 20, 20, 30, 30, 0.0, 1, 1.0),
    ])
    dets = _dets([
        (0, 0.0, 0, 0, 10, 10, 0.9),  # A: hit
        (0, 0.0, 50, 50, 52, 52, 0.9),  # the pedestrian: neither right nor wrong
        (0, 0.0, 90, 0, 100, 4, 0.9),  # C, mostly out of frame: neither
        (0, 0.0, 100, 100, 110, 110, 0.9),  # nothing there: false positive
        (1, 0.1, 5, 0, 15, 10, 0.9),  # A with IoU 5*10/(150) = 0.33: a hit at 0.3, a miss at 0.5
    ])
    g = grade_detections(truth, dets, iou_min=0.3)
    assert (g.recall_moving, g.recall_stopped) == (1.0, 0.0)  # A found twice, B never
    assert g.precision == pytest.approx(2 / 3)
    assert (g.true_positives, g.false_positives, g.on_dont_care) == (2, 1, 2)
    assert (g.truth_moving, g.truth_stopped, g.missed_stopped) == (2, 2, 2)
    strict = grade_detections(truth, dets, iou_min=0.5)
    assert strict.recall_moving == 0.5 and strict.precision == pytest.approx(1 / 3)


def test_perfect_detections_score_one_and_shifted_ones_score_zero():
    rng = np.random.default_rng(3)
    rows = []
    for f in range(20):
        for k in range(5):
            x, y = rng.uniform(0, 700, 2)
            rows.append((f, f / 10, f"v{k}", "vehicle", 0, 0, x, y, x + 18, y + 7, 5.0 * (k % 2), int(k % 2 == 0), 1))
    truth = _objects(rows)
    same = _dets([(r[0], r[1], r[6], r[7], r[8], r[9], 1.0) for r in rows])
    g = grade_detections(truth, same)
    assert (g.recall_moving, g.recall_stopped, g.precision) == (1.0, 1.0, 1.0)
    shifted = same.assign(x1=same.x1 + 30, x2=same.x2 + 30)  # no overlap with any vehicle
    g = grade_detections(truth, shifted)
    assert (g.recall_moving, g.recall_stopped, g.precision) == (0.0, 0.0, 0.0)


# -- tracking ---------------------------------------------------------------------------------------------

def _pairs(frames):
    """frames: list of (truth {id: (x, y)}, hyps {id: (x, y)}) -> FramePairs via the public function."""
    trows, hrows = [], []
    for f, (truth, hyps) in enumerate(frames):
        trows += [(f, f / 10, tid, "vehicle", x, y, 0, 0, 1, 1, 5.0, 0, 1.0) for tid, (x, y) in truth.items()]
        hrows += [(f, f / 10, hid, 0, 0, x, y, 5.0) for hid, (x, y) in hyps.items()]
    objects, tracks = _objects(trows), _tracks(hrows)
    return frame_pairs(objects, tracks, care_mask(objects), match_m=2.0)


def test_mota_and_idf1_of_a_switch_and_a_false_positive():
    # A followed by track 1 throughout; B by track 2, then by track 3 (an ID switch); track 9 is a ghost in frame 1
    frames = _pairs([
        ({"A": (0, 0), "B": (50, 0)}, {"1": (0, 0), "2": (50, 0)}),
        ({"A": (1, 0), "B": (51, 0)}, {"1": (1, 0), "2": (51, 0), "9": (200, 200)}),
        ({"A": (2, 0), "B": (52, 0)}, {"1": (2, 0), "3": (52, 0)}),
    ])
    m = clear_mot(frames)
    assert (m["misses"], m["false_positives"], m["id_switches"], m["truth_points"]) == (0, 1, 1, 6)
    assert m["mota"] == pytest.approx(1 - 2 / 6)
    # best one-to-one identities: A-1 (3 frames), B-2 (2): IDTP 5, IDFN 1, IDFP 2 -> 2*5 / (2*5 + 2 + 1)
    assert m["idf1"] == pytest.approx(10 / 13)


def test_hota_is_one_for_perfect_tracks_and_zero_for_ghosts():
    perfect = _pairs([({"A": (i, 0), "B": (40, i)}, {"a": (i, 0), "b": (40, i)}) for i in range(5)])
    assert hota(perfect)["hota"] == pytest.approx(1.0)
    ghosts = _pairs([({"A": (i, 0)}, {"a": (100 + i, 0)}) for i in range(5)])
    assert hota(ghosts)["hota"] == 0.0


def test_hota_halves_association_when_a_track_changes_identity():
    # one vehicle, tracked as "1" in frames 0-1 and "2" in frames 2-3, exactly placed: DetA = 1,
    # each pair has A = 2 / (4 + 2 - 2) = 0.5, so AssA = 0.5 and HOTA = sqrt(0.5)
    frames = _pairs([({"A": (i, 0)}, {"1" if i < 2 else "2": (i, 0)}) for i in range(4)])
    h = hota(frames)
    assert h["deta"] == pytest.approx(1.0)
    assert h["assa"] == pytest.approx(0.5)
    assert h["hota"] == pytest.approx(math.sqrt(0.5))


def test_hota_localisation_counts_the_alphas_a_match_clears():
    # every point 1.6 m off with match_m = 2: similarity 1 - 1.6 / 4 = 0.6, a match for alpha 0.05 ... 0.60
    # (12 of the 19 thresholds), none above: HOTA = 12 / 19
    frames = _pairs([({"A": (i, 0)}, {"a": (i, 1.6)}) for i in range(6)])
    assert frames[0].similarity[0, 0] == pytest.approx(0.6)
    h = hota(frames)
    assert h["hota"] == pytest.approx(12 / 19)
    assert h["hota_per_alpha"][:12] == [1.0] * 12 and h["hota_per_alpha"][12:] == [0.0] * 7


def test_hota_counts_misses_and_false_positives_in_deta():
    # 4 frames of A; the tracker finds it in 3 and adds a ghost in one: TP 3, FN 1, FP 1 -> DetA 3/5;
    # A and track 1 share 3 frames of A's 4 and track 1's 3: A = 3 / (4 + 3 - 3), so AssA = 3/4
    frames = [FramePairs(np.array(["A"]), np.array(["1"]), np.array([[1.0]]), np.array([[0.0]]))] * 3 + [
        FramePairs(np.array(["A"]), np.array(["9"]), np.array([[0.0]]), np.array([[50.0]]))]
    h = hota(frames)
    assert h["deta"] == pytest.approx(3 / 5)
    assert h["assa"] == pytest.approx(3 / 4)
    assert h["hota"] == pytest.approx(math.sqrt(3 / 5 * 3 / 4))


def test_tracks_on_pedestrians_are_left_out():
    objects = _objects([(0, 0.0, "A", "vehicle", 0, 0, 0, 0, 1, 1, 5.0, 0, 1.0),
                        (0, 0.0, "P", "person", 30, 0, 0, 0, 1, 1, 1.0, 0, 1.0)])
    tracks = _tracks([(0, 0.0, "1", 0, 0, 0.5, 0, 5.0), (0, 0.0, "2", 0, 0, 30.2, 0, 1.0)])
    (fp,) = frame_pairs(objects, tracks, care_mask(objects))
    assert fp.hyp_ids.tolist() == ["1"] and fp.truth_ids.tolist() == ["A"]
    assert clear_mot([fp])["false_positives"] == 0


# -- speed, counts, violations ---------------------------------------------------------------------------

def test_speed_rmse_bias_and_coverage():
    pairs = np.array([[11.0, 10.0], [9.0, 10.0], [12.0, 10.0], [np.nan, 10.0]])
    g = grade_speed(pairs)
    assert g.rmse_mps == pytest.approx(math.sqrt((1 + 1 + 4) / 3))
    assert g.bias_mps == pytest.approx(2 / 3)
    assert (g.pairs, g.coverage) == (3, 0.75)


def test_counts_per_approach_relative_error():
    crossings = pd.DataFrame({"time_s": [1, 2, 3, 4, 5, 70, 130, -5],
                              "approach": ["north"] * 5 + ["south", "south", "north"]})
    counts = pd.DataFrame({"interval_start_s": [0, 60, 0], "approach": ["north", "south", "south"],
                           "count": [4, 1, 0]})
    c = grade_counts(crossings, counts, duration_s=120)
    # the crossing at 130 s is after the video, the one at -5 s before it
    assert c["north"] == {"truth": 5, "counted": 4, "relative_error": pytest.approx(-0.2)}
    assert c["south"] == {"truth": 1, "counted": 1, "relative_error": 0.0}


def test_violations_by_vehicle_kind_and_time():
    objects = _objects([(f, f / 10, vid, "vehicle", x + f, 0, 0, 0, 1, 1, 10.0, 0, 1.0)
                        for f in range(0, 200) for vid, x in (("V1", 0), ("V2", 100), ("V3", 200))])
    tracks = _tracks([(f, f / 10, tid, 0, 0, x + f, 0, 10.0)
                      for f in range(0, 200) for tid, x in (("t1", 0), ("t2", 100), ("t3", 200))])
    truth = pd.DataFrame([
        (5.0, "V1", "red_light", "north", 10.0, 5.0, 5.0, 1),
        (8.0, "V2", "red_light", "south", 10.0, 8.0, 8.0, 1),
        (3.0, "V3", "speeding", "east", 20.0, 2.0, 9.0, 1),
    ], columns=["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s", "end_s", "injected"])
    reports = pd.DataFrame([
        (5.5, "t1", "red_light", "north", 10.0, ""),  # right vehicle, 0.5 s off: hit
        (5.6, "t1", "red_light", "north", 10.0, ""),  # the same event again: a false positive
        (8.0, "t3", "red_light", "south", 10.0, ""),  # wrong vehicle at V2's time: false positive (V2 missed)
        (10.5, "t3", "speeding", "east", 20.0, ""),  # within V3's 2..9 s over, plus 2 s tolerance: hit
        (15.0, "t2", "speeding", "south", 20.0, ""),  # V2 never sped: false positive
    ], columns=["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"])
    g = grade_violations(truth, reports, tracks, objects, fps=10, duration_s=20)
    red, speed = g["red_light"], g["speeding"]
    assert (red.true_positives, red.false_positives, red.missed) == (1, 2, 1)
    assert (red.precision, red.recall) == (pytest.approx(1 / 3), 0.5)
    assert (speed.true_positives, speed.false_positives, speed.missed) == (1, 1, 0)
    assert (speed.precision, speed.recall) == (0.5, 1.0)


def test_a_speeding_event_that_began_before_the_first_frame_is_owed_when_the_clip_shows_it():
    """The simulation runs before the video starts: V1 sped from -3 s to 4 s, its event established at -1 s.
    The clip shows it speeding for 4 s (more than the 1 s that makes an event): a true event, and a report of it
    is right. V3 sped from -2 s to 0.5 s: the clip shows 0.5 s of it, too little to establish, so a report of it
    counts neither way and it is not owed."""
    objects = _objects([(f, f / 10, vid, "vehicle", x + f, 0, 0, 0, 1, 1, 20.0, 0, 1.0)
                        for f in range(0, 100) for vid, x in (("V1", 0), ("V2", 100), ("V3", 200))])
    tracks = _tracks([(f, f / 10, tid, 0, 0, x + f, 0, 20.0) for f in range(0, 100) for tid, x in (("t1", 0),
                                                                                                      ("t2", 100),
                                                                                                      ("t3", 200))])
    truth = pd.DataFrame([
        (-1.0, "V1", "speeding", "east", 20.0, -3.0, 4.0, 1),
        (5.0, "V2", "speeding", "east", 20.0, 4.0, 8.0, 1),
        (-9.0, "V2", "speeding", "east", 20.0, -12.0, -8.0, 1),  # over before the video: a report of V2 at 1 s
        (-1.0, "V3", "speeding", "east", 20.0, -2.0, 0.5, 1),  # seen over for 0.5 s of the clip
    ], columns=["time_s", "vehicle_id", "kind", "approach", "speed_mps", "start_s", "end_s", "injected"])
    reports = pd.DataFrame([
        (1.0, "t1", "speeding", "east", 20.0, ""),  # V1, speeding in the clip for 4 s: a hit
        (6.0, "t2", "speeding", "east", 20.0, ""),  # V2's event in the video: a hit
        (0.5, "t2", "speeding", "east", 20.0, ""),  # V2 before its event, its earlier one long over: wrong
        (1.0, "t3", "speeding", "east", 20.0, ""),  # V3, seen too briefly: unscored
    ], columns=["time_s", "track_id", "kind", "approach", "speed_mps", "evidence_path"])
    speed = grade_violations(truth, reports, tracks, objects, fps=10, duration_s=10)["speeding"]
    assert (speed.true_positives, speed.false_positives, speed.unscored_reports, speed.missed) == (2, 1, 1, 0)
    assert (speed.precision, speed.recall, speed.truth_events, speed.reported) == (2 / 3, 1.0, 2, 4)
