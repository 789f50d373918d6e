"""Box arithmetic shared by the detectors and the tracker: IoU and non-maximum suppression.

NMS is OpenCV's (`cv2.dnn.NMSBoxes`, class-aware with `NMSBoxesBatched`);
IoU between two sets is a few numpy lines, needed as a matrix by the tracker.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), xyxy: (N, M)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, class_id: np.ndarray | None = None,
        score_threshold: float = 0.0) -> np.ndarray:
    """Indices of the boxes kept, best score first; per class when `class_id` is given."""
    import cv2

    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    if not len(xyxy):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    boxes = [list(map(float, b)) for b in xywh]
    conf = [float(s) for s in np.asarray(scores).reshape(-1)]
    if class_id is None:
        keep = cv2.dnn.NMSBoxes(boxes, conf, score_threshold, iou_threshold)
    else:
        keep = cv2.dnn.NMSBoxesBatched(boxes, conf, [int(c) for c in class_id], score_threshold, iou_threshold)
    return np.asarray(keep, np.int64).reshape(-1)
