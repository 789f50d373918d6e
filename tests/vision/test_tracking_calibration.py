"""Tracker ID continuity, homography calibration and speed on known geometry."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from vision_scenes import small_scene

from signalwise.vision.boxes import box_iou
from signalwise.vision.bytetrack import ByteTracker
from signalwise.vision.calibration import CalibrationError, Homography
from signalwise.vision.detections import Detections
from signalwise.vision.speed import SpeedEstimator


def _ids_per_vehicle(frames):
    ids = collections.defaultdict(collections.Counter)
    for truth, tracked in frames:
        gt = [v for v in truth if (v.box_px[2] - v.box_px[0]) * (v.box_px[3] - v.box_px[1]) >= 60]
        iou = box_iou(np.array([v.box_px for v in gt]).reshape(-1, 4), tracked.xyxy)
        for k, v in enumerate(gt):
            if iou.shape[1] and iou[k].max() >= 0.3:
                ids[v.id][int(tracked.tracker_id[iou[k].argmax()])] += 1
    return ids


@pytest.mark.slow
def test_each_vehicle_keeps_one_track_through_stops_and_starts():
    from signalwise.vision.blobs import BlobDetector

    det, tracker = BlobDetector(min_area_px=40, close_px=5), ByteTracker()
    frames = []
    for image, t, truth, _s in small_scene(seed=3).frames(60):
        frames.append((truth, tracker.update(det.detect(image, t), t)))
    ids = _ids_per_vehicle(frames)
    assert len(ids) >= 15
    matched = sum(sum(c.values()) for c in ids.values())
    # share of matched vehicle-frames that carry the vehicle's own (majority) track id
    continuity = sum(max(c.values()) for c in ids.values()) / matched
    owners = collections.defaultdict(collections.Counter)
    for vid, c in ids.items():
        for tid, n in c.items():
            owners[tid][vid] += n
    # share of a track's frames spent on its main vehicle (a track that jumps to another vehicle loses here)
    purity = sum(max(c.values()) for c in owners.values()) / matched
    assert continuity >= 0.95 and purity >= 0.95, (continuity, purity)
    assert sum(len(c) - 1 for c in ids.values()) <= 3  # id switches and fragments over a minute, 15+ vehicles


def test_a_track_survives_missed_frames_and_low_scores():
    tracker = ByteTracker(lost_s=1.0)
    seen = []
    for k in range(40):
        t = k * 0.1
        x = 10 + 30 * t  # 30 px/s to the right
        box = np.array([[x, 50, x + 20, 60]])
        if 15 <= k < 20:
            dets = Detections.empty()  # hidden for 0.5 s
        elif 25 <= k < 30:
            dets = Detections(box, [0.2])  # partly hidden: low score, kept by the second association
        else:
            dets = Detections(box, [0.9])
        out = tracker.update(dets, t)
        seen.extend(out.tracker_id.tolist())
    assert set(seen) == {1} and len(seen) >= 30


def test_two_crossing_vehicles_keep_their_ids():
    tracker = ByteTracker()
    ids = collections.defaultdict(set)
    for k in range(30):
        t = k * 0.1
        a = 10 + 40 * t  # rightwards
        b = 130 - 40 * t  # leftwards, one lane below
        dets = Detections(np.array([[a, 50, a + 20, 60], [b, 62, b + 20, 72]]), [0.9, 0.9])
        out = tracker.update(dets, t)
        for box, tid in zip(out.xyxy, out.tracker_id, strict=True):
            ids["a" if box[1] < 61 else "b"].add(int(tid))
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"]


# -- calibration --------------------------------------------------------------------------------------------
H_TRUE = np.array([[0.05, 0.01, -5.0], [0.002, 0.09, -12.0], [0.0001, 0.0012, 1.0]])


def _warp(points_px):
    p = np.hstack([np.asarray(points_px, float), np.ones((len(points_px), 1))]) @ H_TRUE.T
    return p[:, :2] / p[:, 2:]


def test_a_homography_from_four_or_more_pairs_maps_exactly():
    px = np.array([[100, 400], [500, 410], [420, 150], [180, 140], [300, 260]], float)
    h = Homography.from_pairs(px, _warp(px))
    probe = np.array([[250.0, 300.0], [50.0, 450.0], [600.0, 100.0]])
    np.testing.assert_allclose(h.to_road(probe), _warp(probe), atol=1e-6)
    np.testing.assert_allclose(h.to_image(h.to_road(probe)), probe, atol=1e-5)
    assert h.rms_error_m < 1e-6


@pytest.mark.parametrize("px,m,match", [
    ([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], "3 point pair.*at least 4"),
    ([[0, 0], [10, 0], [20, 0], [30, 0]], [[0, 0], [1, 0], [2, 0], [3, 0]], "degenerate.*one line"),
    ([[0, 0], [10, 0], [20, 0], [0, 10]], [[0, 0], [1, 0], [2, 0], [0, 1]], "degenerate"),
    ([[0, 0], [10, 0], [10, 10], [10, 10]], [[0, 0], [1, 0], [1, 1], [0, 1]], "same px point"),
    ([[0, 0], [10, 0], [10, 10], [0, 10]], [[0, 0], [1, 0], [1, 1]], "4 pixel points but 3 road points"),
    ([[0, 0], [10, 0], [10, 10], [0, float("nan")]], [[0, 0], [1, 0], [1, 1], [0, 1]], "finite"),
    # wrong units: degrees of latitude/longitude (a 50 m survey), millimetres
    ([[0, 0], [100, 0], [100, 100], [0, 100]], [[52.5, 13.4], [52.5, 13.4007], [52.5004, 13.4007], [52.5004, 13.4]],
     "span 0.0007, not road metres.*not degrees or millimetres"),
    ([[0, 0], [100, 0], [100, 100], [0, 100]], [[0, 0], [50000, 0], [50000, 40000], [0, 40000]],
     "span 50000, not road metres"),
])
def test_bad_calibrations_are_refused_with_the_reason(px, m, match):
    with pytest.raises(CalibrationError, match=match):
        Homography.from_pairs(px, m)


def test_a_near_singular_fit_is_refused():
    # road points almost on a line (1 mm off over 100 m): a fit exists but cannot be trusted
    px = [[0, 0], [100, 0], [100, 100], [0, 100]]
    m = [[0, 0], [100, 0.0], [50, 0.0004], [0, 0.0008]]
    with pytest.raises(CalibrationError, match="degenerate|near-singular"):
        Homography.from_pairs(px, m)


def test_speed_through_a_perspective_view_needs_the_homography():
    """A vehicle at 12 m/s seen through a perspective warp: exact with the homography; a single metres-per-pixel
    scale (fitted on the same survey points) is badly off, as the issue warns."""
    px_survey = np.array([[100, 400], [500, 410], [420, 150], [180, 140], [300, 260]], float)
    h = Homography.from_pairs(px_survey, _warp(px_survey))
    road = np.array([[0.0 + 12.0 * t, 8.0] for t in np.arange(0, 3, 0.04)])
    inv = np.linalg.inv(H_TRUE)
    img = np.hstack([road, np.ones((len(road), 1))]) @ inv.T
    img = img[:, :2] / img[:, 2:]
    est = SpeedEstimator(window_s=1.0)
    speeds = [est.add(1, t, *h.to_road([p])[0]) for t, p in zip(np.arange(0, 3, 0.04), img, strict=True)]
    good = [s for s in speeds if not math.isnan(s)]
    assert good and max(abs(s - 12.0) for s in good) < 0.05
    # one scale for the whole image: metres between survey points over pixels between them
    d_px = np.linalg.norm(np.diff(px_survey, axis=0), axis=1).sum()
    d_m = np.linalg.norm(np.diff(_warp(px_survey), axis=0), axis=1).sum()
    flat = SpeedEstimator(window_s=1.0)
    scaled = [flat.add(1, t, *(p * d_m / d_px)) for t, p in zip(np.arange(0, 3, 0.04), img, strict=True)]
    err = max(abs(s - 12.0) for s in scaled if not math.isnan(s))
    assert err > 1.5, err


def test_speed_needs_a_window_of_a_second_and_gives_none_before():
    with pytest.raises(ValueError, match="at least 1"):
        SpeedEstimator(window_s=0.5)
    est = SpeedEstimator(window_s=1.5)
    out = [est.add(7, k * 0.1, 2.0 * k * 0.1, 0.0) for k in range(20)]
    assert all(math.isnan(s) for s in out[:15]) and out[15] == pytest.approx(2.0)
    still = SpeedEstimator()
    rng = np.random.default_rng(0)
    jitter = [still.add(1, k * 0.1, *rng.normal(0, 0.05, 2)) for k in range(30)]
    assert jitter[-1] == 0.0  # 5 cm of jitter is a vehicle standing still
