"""Vehicles that touch in the mask are still told apart: closing along the lane (side by side), and a stopped
vehicle stays detected. Hand-drawn frames at 6 px/m on a road that runs left to right."""

from __future__ import annotations

import cv2
import numpy as np

from signalwise.vision.camera import camera_from_dict

W, H = 240, 120
PX_PER_M = 6.0
LANES_Y = (40, 57)  # top edges of two adjacent lanes' cars: 11 px tall, 6 px (1 m) apart
CAR = (27, 11)  # 4.5 x 1.8 m


def _camera() -> object:
    """The road along x; the approach zone covers both lanes, its stop line at x = 20 px (traffic goes west)."""
    pairs = [{"px": [x, y], "m": [x / PX_PER_M, -y / PX_PER_M]} for x in (0, 120, 239) for y in (0, 60, 119)]
    return camera_from_dict({
        "camera_id": "c", "device_id": "d", "calibration": pairs,
        "stop_lines": [{"name": "e", "approach": "east", "px": [[20, 36], [20, 72]], "links": [0]}],
        "zones": [{"name": "e-queue", "approach": "east", "px": [[20, 36], [20, 72], [230, 72], [230, 36]]}],
        "frame_size": [W, H]})


def _car(image: np.ndarray, x: int, y: int, colour=(40, 160, 220)) -> tuple[int, int, int, int]:
    """A car with a dark windscreen across it: two parts in a difference mask, one vehicle."""
    w, h = CAR
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, -1)
    cv2.rectangle(image, (x + 8, y + 1), (x + 10, y + h - 2), (0, 0, 0), -1)
    return x, y, x + w, y + h


def _detect(detector, frames: list[np.ndarray], fps: float = 5.0):
    out = None
    for i, f in enumerate(frames):
        out = detector.detect(f, i / fps)
    return out


def _blob_detector(camera, closer: bool):
    from signalwise.vision.blobs import BlobDetector
    from signalwise.vision.lanes import LaneCloser, road_arms

    empty = np.zeros((H, W, 3), np.uint8)
    return BlobDetector(reference=empty, min_area_px=60, close_px=9,
                        closer=LaneCloser(road_arms(camera)) if closer else None)


def _matched(truth_boxes, dets, iou_min=0.5) -> int:
    from signalwise.vision.boxes import box_iou

    iou = box_iou(np.asarray(truth_boxes, np.float32), dets.xyxy)
    return int((iou.max(axis=1) >= iou_min).sum()) if iou.shape[1] else 0


def test_the_arm_runs_along_the_lane_at_the_cameras_scale():
    from signalwise.vision.lanes import road_arms

    (arm,) = road_arms(_camera())
    assert np.allclose(arm.direction, [-1.0, 0.0])  # towards the stop line
    assert abs(arm.px_per_m - PX_PER_M) < 1e-6


def test_cars_side_by_side_in_adjacent_lanes_are_two_detections_with_their_parts_joined():
    frame = np.zeros((H, W, 3), np.uint8)
    truth = [_car(frame, 100, LANES_Y[0]), _car(frame, 104, LANES_Y[1], (200, 80, 80))]
    dets = _detect(_blob_detector(_camera(), closer=True), [frame] * 3)
    assert len(dets) == 2 and _matched(truth, dets) == 2, dets.xyxy
    # a round kernel wide enough to join a car's parts joins the two cars too
    joined = _detect(_blob_detector(_camera(), closer=False), [frame] * 3)
    assert len(joined) == 1


def test_a_queue_in_one_lane_is_one_detection_per_car():
    frame = np.zeros((H, W, 3), np.uint8)
    truth = [_car(frame, x, LANES_Y[0]) for x in (30, 30 + 27 + 15, 30 + 2 * (27 + 15))]  # 2.5 m gaps
    dets = _detect(_blob_detector(_camera(), closer=True), [frame] * 3)
    assert len(dets) == 3 and _matched(truth, dets) == 3, dets.xyxy


def test_a_stopped_car_stays_detected_for_a_long_red():
    """60 s standing (300 frames at 5 frames/s): MOG2 has long forgotten it, the road background has not."""
    from signalwise.vision.motion import MovingBlobDetector

    camera = _camera()
    empty = np.zeros((H, W, 3), np.uint8)
    frame = empty.copy()
    truth = [_car(frame, 60, LANES_Y[0])]
    frames = [empty] * 5 + [frame] * 300
    dets = _detect(_blob_detector(camera, closer=True), frames)
    assert _matched(truth, dets) == 1 and not dets.moving.any()
    assert len(_detect(MovingBlobDetector(min_area_px=60), frames)) == 0


def test_a_thin_changing_line_is_no_vehicle_and_does_not_stretch_the_box_of_one_it_touches():
    """A signal's lamp bar across the lanes changes colour like a vehicle arriving; it is 3 px (0.5 m) thin."""
    from signalwise.vision.blobs import BlobDetector
    from signalwise.vision.lanes import LaneCloser, road_arms

    camera = _camera()
    empty = np.zeros((H, W, 3), np.uint8)
    frame = empty.copy()
    cv2.rectangle(frame, (17, 36), (19, 72), (0, 0, 255), -1)  # alone, at the stop line
    cv2.rectangle(frame, (149, 30), (151, 80), (0, 255, 0), -1)  # across the lanes, touching the car's front
    truth = [_car(frame, 152, LANES_Y[0])]
    closer = LaneCloser(road_arms(camera), min_width_m=0.8)
    dets = _detect(BlobDetector(reference=empty, min_area_px=20, closer=closer), [frame] * 3)
    assert len(dets) == 1 and _matched(truth, dets, iou_min=0.7) == 1, dets.xyxy
    loose = _detect(BlobDetector(reference=empty, min_area_px=20, closer=LaneCloser(road_arms(camera))), [frame] * 3)
    # without the width rule the bar alone is a blob, and the car's box is stretched over the bar's length
    assert len(loose) == 2 and _matched(truth, loose, iou_min=0.5) == 0, loose.xyxy


def test_a_vehicle_that_stood_long_leaves_no_ghost_when_it_drives_off():
    """The slow background takes in a long-standing car (here within seconds: standing_memory_s=20); the spot it
    uncovers matches the road as last seen bare, so it is no blob."""
    from signalwise.vision.standing import StandingBlobDetector

    empty = np.zeros((H, W, 3), np.uint8)
    frame = empty.copy()
    truth = [_car(frame, 60, LANES_Y[0], (220, 220, 220))]
    det = StandingBlobDetector(reference=empty, standing_memory_s=20.0, min_area_px=60)
    stood = _detect(det, [empty] * 5 + [frame] * 100)  # 20 s standing
    assert _matched(truth, stood) == 1
    t0 = 105 / 5.0
    after = [det.detect(empty, t0 + k / 5.0) for k in range(3)]
    assert all(len(d) == 0 for d in after), [d.xyxy for d in after]


def test_the_default_detector_sizes_its_smallest_vehicle_from_the_calibration():
    """At 4 px/m a car is 18 x 7 pixels: a fixed 120-pixel minimum area would drop it."""
    from signalwise.vision.pipeline import default_detector

    ppm = 4.0
    pairs = [{"px": [x, y], "m": [x / ppm, -y / ppm]} for x in (0, 120, 239) for y in (0, 60, 119)]
    camera = camera_from_dict({
        "camera_id": "c", "device_id": "d", "calibration": pairs,
        "stop_lines": [{"name": "e", "approach": "east", "px": [[20, 40], [20, 66]], "links": [0]}],
        "zones": [{"name": "e-queue", "approach": "east", "px": [[20, 40], [20, 66], [230, 66], [230, 40]]}],
        "frame_size": [W, H]})
    empty = np.zeros((H, W, 3), np.uint8)
    frame = empty.copy()
    cv2.rectangle(frame, (100, 44), (117, 50), (40, 160, 220), -1)
    dets = _detect(default_detector(camera), [empty] * 3 + [frame] * 3)
    assert _matched([(100, 44, 118, 51)], dets) == 1, dets.xyxy
