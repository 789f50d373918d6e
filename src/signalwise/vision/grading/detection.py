"""Detection recall (moving and stopped vehicles apart) and precision, by box overlap per frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .matching import iou_matrix, match_with_ignored

#: boxes this much overlapping are the same vehicle. Lower than the usual 0.5: a car is about 18 x 7 pixels
#: in the rendered frames, and a box two pixels too wide on each side already has IoU 0.5 with it.
IOU_MIN = 0.3
#: a vehicle less than this share inside the frame is "don't care": finding it or missing it does not count
MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class DetectionGrade:
    recall_moving: float
    recall_stopped: float
    precision: float
    true_positives: int
    false_positives: int
    missed_moving: int
    missed_stopped: int
    truth_moving: int
    truth_stopped: int
    on_dont_care: int  # detections on pedestrians or vehicles mostly out of frame: not counted either way
    iou_min: float

    def as_dict(self) -> dict:
        return asdict(self)


def care_mask(objects: pd.DataFrame, min_visible: float = MIN_VISIBLE) -> np.ndarray:
    """The truth rows a camera is graded on: vehicles at least `min_visible` inside the frame."""
    return ((objects["kind"] == "vehicle") & (objects["visible"] >= min_visible)).to_numpy()


def grade_detections(objects: pd.DataFrame, detections: pd.DataFrame, iou_min: float = IOU_MIN,
                     min_visible: float = MIN_VISIBLE, frames: range | None = None) -> DetectionGrade:
    """Match detections to truth boxes frame by frame; `frames` limits the frames graded (all truth frames)."""
    objects = objects.assign(care=care_mask(objects, min_visible))
    if frames is not None:
        objects = objects[objects["frame"].isin(frames)]
        detections = detections[detections["frame"].isin(frames)]
    truth_by_frame = {f: g for f, g in objects.groupby("frame")}
    dets_by_frame = {f: g for f, g in detections.groupby("frame")}
    tp = fp = ignored = 0
    hit_moving = hit_stopped = 0
    n_moving = int((objects["care"] & (objects["stopped"] == 0)).sum())
    n_stopped = int((objects["care"] & (objects["stopped"] == 1)).sum())
    for f in sorted(set(truth_by_frame) | set(dets_by_frame)):
        dets = dets_by_frame.get(f)
        if dets is None or dets.empty:
            continue
        truth = truth_by_frame.get(f)
        boxes = dets[["x1", "y1", "x2", "y2"]].to_numpy(float)
        if truth is None or truth.empty:
            fp += len(boxes)
            continue
        care = truth[truth["care"]]
        other = truth[~truth["care"]]
        pairs, on_ignored = match_with_ignored(iou_matrix(care[["x1", "y1", "x2", "y2"]].to_numpy(float), boxes),
                                               iou_matrix(other[["x1", "y1", "x2", "y2"]].to_numpy(float), boxes),
                                               iou_min)
        stopped = care["stopped"].to_numpy()
        for r, _c in pairs:
            if stopped[r]:
                hit_stopped += 1
            else:
                hit_moving += 1
        tp += len(pairs)
        ignored += len(on_ignored)
        fp += len(boxes) - len(pairs) - len(on_ignored)
    return DetectionGrade(
        recall_moving=_ratio(hit_moving, n_moving), recall_stopped=_ratio(hit_stopped, n_stopped),
        precision=_ratio(tp, tp + fp), true_positives=tp, false_positives=fp,
        missed_moving=n_moving - hit_moving, missed_stopped=n_stopped - hit_stopped, truth_moving=n_moving,
        truth_stopped=n_stopped, on_dont_care=ignored, iou_min=iou_min)


def _ratio(a: int, b: int) -> float:
    return float(a) / b if b else float("nan")
